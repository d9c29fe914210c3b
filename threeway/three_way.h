// three_way.h — one program on the VM, the reference model and the Linux kernel.
//
// Theory of operation
// -------------------
// The VM and the model were both written by us; Linux is the third, independent oracle.
// `run_three_way` runs a program twice through the ordinary differential executor:
// VM against model (every VM oracle attached, as vmfuzz-replay runs it), then Linux
// against model (linux/linux_system.h as the subject, no teardown: the executor's
// teardown destroys memory objects, which is out of the Linux profile). The pair of
// outcomes gives one verdict:
//
//   all agree              both runs passed
//   VM differs             VM vs model failed, Linux vs model passed: a VM bug
//   model differs from Linux
//                          Linux vs model failed: a model bug, or a gap in the profile to
//                          document (docs/linux.md); never silenced
//   (both)                 both failed
//   out of profile         an op is outside the Linux profile (linux/profile.h), decided
//                          before Linux runs, or met while it ran; the VM-vs-model half
//                          still runs and is reported
//   skipped                a call the Linux translation needs failed (one line naming the
//                          call and errno); never counted as agreement
//
// `restrict_to_profile` is the fuzzers' and generators' way into the profile: every op
// outside it is replaced by its nearest in-profile op (protect max -> protect, call ->
// delay, device -> an object, map max= -> rwx, --x -> r-x) or dropped (destroy), which
// never makes a name unusable (destroyed objects keep their names).
#pragma once

#include <optional>
#include <string>

#include "harness/executor.h"
#include "harness/program.h"

namespace vmfuzz::threeway {

enum class Verdict : uint8_t { AllAgree, VmDiffers, ModelDiffersFromLinux, BothDiffer, OutOfProfile, Skipped };

/// "all agree", "VM differs", "model differs from Linux", "VM differs; model differs from
/// Linux", "out of profile", "skipped".
const char* verdict_name(Verdict v);
/// The JSON spelling: "agree", "vm_differs", "model_differs_from_linux", "both_differ",
/// "out_of_profile", "skipped".
const char* verdict_key(Verdict v);

struct ThreeWay {
  Verdict verdict = Verdict::AllAgree;
  std::string reason;               // out of profile / skipped: why (one line)
  harness::RunSummary vm;           // VM vs model
  bool linux_ran = false;           // Linux vs model ran to its end (agree or a failure)
  harness::RunSummary linux_run;    // Linux vs model (valid when linux_ran)
};

/// Purpose:    The first op of `p` outside the Linux profile, as "op N (line L): reason",
///             or nullopt.
std::optional<std::string> program_out_of_profile(const vmfuzz::Program& p);

/// Purpose:    Replace or drop every op outside the Linux profile (see top).
/// Results:    the number of ops changed or dropped.
unsigned restrict_to_profile(vmfuzz::Program& p);

/// Purpose:    Run Linux against the model only (the fuzz target and the random tests).
/// Conditions: `p` usable (names valid).
/// Results:    *out_of_profile / *skipped set with the reason when the run could not judge;
///             else the summary (ok: Linux and model agree).
harness::RunSummary run_linux_vs_model(const vmfuzz::Program& p, const std::string& file,
                                       harness::ExecOptions options, std::string* out_of_profile,
                                       std::string* skipped);

/// Purpose:    The three-way verdict of `p` (see top). Conditions: `p` usable.
ThreeWay run_three_way(const vmfuzz::Program& p, const std::string& file, harness::ExecOptions options);

}  // namespace vmfuzz::threeway
