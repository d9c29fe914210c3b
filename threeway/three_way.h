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
// delay, device -> an object, map max= -> rwx, --x -> r-x) or dropped (destroy). The
// changed ops can change which handles later ops find (see restrict_to_profile), so
// binary inputs are restricted while they are decoded (decode_in_profile).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "harness/exec/executor.h"
#include "harness/lang/program.h"

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

/// Purpose:    The in-profile op nearest to `op` (see top): op itself when it is in
///             profile; nullopt when it is dropped (destroy).
std::optional<Op> restrict_op(const Op& op);

/// Purpose:    Replace or drop every op outside the Linux profile (see top). Names may
///             then fail (a `protect` that lowered only the maximum now lowers the current
///             protection, so a later vm_read may no longer make its handle): binary
///             inputs use decode_in_profile, whose names follow the restricted ops.
/// Results:    the number of ops changed or dropped.
unsigned restrict_to_profile(vmfuzz::Program& p);

/// Purpose:    Decode a binary input as decode_with_model does, but restricting each op as
///             it is decoded, so that names follow the restricted program; the
///             configuration folded as vm_diff folds it. Results: a usable in-profile program.
vmfuzz::Program decode_in_profile(std::span<const uint8_t> bytes);

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
