// linux_diff_fuzzer.cc — libFuzzer target: does the reference model ever disagree with
// the Linux kernel?
//
// Theory of operation
// -------------------
// Any input bytes are a program: decoded as vm_diff decodes them (the configuration
// folded by fold_fuzz_config), restricted to the Linux profile as it is decoded
// (threeway/three_way.h: decode_in_profile replaces every op Linux cannot run exactly by
// its nearest in-profile op, or drops it, and names follow the restricted ops). The program runs with the Linux backend
// (linux/linux_system.h) as subject and the reference model as reference: results after
// every op, a full comparison every kFullCheckEvery ops and at the end (no teardown: it
// destroys memory objects).
//
// Processes are reused: the zygote (a fork server) is started once per fuzzer process and
// each input costs one fork of it per task plus the forks the program asks for. A program
// that meets a state outside the profile (an address the helper's own image holds, more
// than a task's address-space limit) is not judged; neither is one where the kernel
// refused a call the translation needs — the first such refusal is printed once, and the
// counts are printed at exit, so a campaign that judged nothing says so.
//
// On the first disagreement the target prints, to stderr:
//     ERROR: vmfuzz linux divergence: <oracle> in <op kind> [<sub>]
//     <the report> <the program as a text trace>
//     SUMMARY: vmfuzz: <oracle> in <op kind> [<sub>]
// and aborts. (Linux is the side called "vm" in the report.)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <span>
#include <string>

#include "harness/lang/codec.h"
#include "harness/exec/executor.h"
#include "harness/exec/report.h"
#include "harness/lang/text.h"
#include "linux/linux_system.h"
#include "reference_model/model.h"
#include "threeway/three_way.h"

namespace {

using namespace vmfuzz;
constexpr unsigned kFullCheckEvery = 16;

struct Counts {
  unsigned long long judged = 0, out_of_profile = 0, skipped = 0;
  std::map<std::string, unsigned long long> reasons;  // out of profile, by the text after the call
  ~Counts() {
    if (judged + out_of_profile + skipped)
      std::fprintf(stderr, "linux_diff: %llu programs judged (model and Linux agree), %llu out of profile, "
                           "%llu skipped\n", judged, out_of_profile, skipped);
    for (const auto& [r, n] : reasons) std::fprintf(stderr, "linux_diff:   %llu out of profile: %s\n", n, r.c_str());
  }
} g_counts;

/// "mmap of 0x10000+0x1000: EEXIST: ..." -> "mmap: EEXIST: ...": the reason without numbers.
std::string reason_kind(const std::string& why) {
  size_t of = why.find(" of 0x"), colon = why.find(": ");
  if (of != std::string::npos && colon != std::string::npos && of < colon) return why.substr(0, of) + why.substr(colon);
  return why;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Program p = threeway::decode_in_profile(std::span<const uint8_t>(data, size));
  harness::ExecOptions eo;
  eo.full_check_every = kFullCheckEvery;
  std::string oop, skip;
  harness::RunSummary sum = threeway::run_linux_vs_model(p, "<input>", eo, &oop, &skip);
  if (!oop.empty()) {
    g_counts.out_of_profile++;
    g_counts.reasons[reason_kind(oop)]++;
    return 0;
  }
  if (!skip.empty()) {
    if (g_counts.skipped++ == 0) std::fprintf(stderr, "linux_diff: skipped (the kernel refused): %s\n", skip.c_str());
    return 0;
  }
  if (sum.unusable) {  // restrict_to_profile must keep every name usable
    std::fprintf(stderr, "ERROR: vmfuzz linux_diff: restricted program unusable: %s\n%s",
                 sum.unusable_reason.c_str(), print_program(p).c_str());
    std::abort();
  }
  if (sum.ok) {
    g_counts.judged++;
    return 0;
  }
  std::string sig = harness::failure_signature(*sum.failure);
  std::fprintf(stderr, "ERROR: vmfuzz linux divergence: %s\n%s\n%s\nSUMMARY: %s\n",
               harness::failure_key(*sum.failure).c_str(),
               harness::format_failure(*sum.failure).c_str(), print_program(p).c_str(), sig.c_str());
  linux_backend::shutdown_linux_backend();
  std::abort();
}
