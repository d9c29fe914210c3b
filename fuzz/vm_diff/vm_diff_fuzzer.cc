// vm_diff_fuzzer.cc — libFuzzer target: does the VM ever disagree with the reference model?
//
// Theory of operation
// -------------------
// Any input bytes are a program (harness/codec.h: the decoder is total). The program is
// decoded first, with names following a run on a scratch model (executor.h:
// decode_with_model), so that it means exactly what `vmfuzz-replay --to-text` prints for
// the same file. Its configuration is folded (fold_fuzz_config: a floor on frames, now 64,
// the codec's smallest, since the VM pages out under pressure; it was 512 before pageout).
// vmfuzz-replay folds binary inputs the same way, so a crash replays identically.
//
// The program then runs through the executor with vm::Kernel as subject and
// model::Model as reference: results compared after every op, assertions (none in binary
// inputs), TLB coherence after every op, a full comparison and the named invariants every
// kFullCheckEvery ops and at the end, then teardown and check_teardown. Ops the VM does
// not implement yet are not applicable (skipped on both sides).
//
// On the first failure the target prints, to stderr:
//     ERROR: vmfuzz divergence: <oracle> in <op kind> [<sub>]
//     <the report of harness/report.h>
//     <the program as a text trace>
//     SUMMARY: vmfuzz: <oracle> in <op kind> [<sub>]
// and calls a noinline function named after the oracle (oracle_content_mismatch, ...) that
// aborts, so the crash's top frame names the oracle and libFuzzer's dedup separates them.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "harness/codec.h"
#include "harness/executor.h"
#include "harness/report.h"
#include "harness/text.h"
#include "reference_model/model.h"

namespace {

using namespace vmfuzz;

constexpr unsigned kFullCheckEvery = 16;

// Where the last oracle's name is kept: each oracle function writes its own string, so
// no two of them can be folded into one by the linker.
volatile const char* g_oracle = nullptr;

// One noinline, aborting function per oracle. The list is the oracles of report.h and the
// invariants of harness/invariants.h; anything else lands in oracle_other.
#define VMFUZZ_ORACLES(X) \
  X(result_mismatch)      \
  X(assertion)            \
  X(region_mismatch)      \
  X(content_mismatch)     \
  X(object_store_mismatch) \
  X(fault_loop)           \
  X(teardown)             \
  X(ref_counts)           \
  X(resident_counts)      \
  X(page_in_one_object)   \
  X(frames_accounted)     \
  X(copy_object_shape)    \
  X(no_chain_cycles)      \
  X(no_cow_breach)        \
  X(no_stale_mapping)     \
  X(tlb_coherent)         \
  X(other)

#define VMFUZZ_DEFINE_ORACLE(name)                         \
  [[noreturn]] __attribute__((noinline)) void oracle_##name() { \
    g_oracle = #name;                                      \
    std::abort();                                          \
  }
VMFUZZ_ORACLES(VMFUZZ_DEFINE_ORACLE)
#undef VMFUZZ_DEFINE_ORACLE

[[noreturn]] void abort_in_oracle(const std::string& oracle) {
#define VMFUZZ_DISPATCH_ORACLE(name) \
  if (oracle == #name) oracle_##name();
  VMFUZZ_ORACLES(VMFUZZ_DISPATCH_ORACLE)
#undef VMFUZZ_DISPATCH_ORACLE
  oracle_other();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  Program prog;
  {
    model::Model scratch(Decoder(bytes).config());
    prog = harness::decode_with_model(bytes, scratch);
  }
  harness::fold_fuzz_config(prog.config);

  harness::Subject vm = harness::make_vm_subject(prog.config);
  model::Model model(prog.config);
  harness::ExecOptions options;
  options.full_check_every = kFullCheckEvery;
  harness::RunSummary sum = harness::run_program(prog, "<input>", *vm.system, model, vm.observer.get(), options);
  if (sum.unusable) {
    // The decoder only makes usable programs: this is a harness bug.
    std::fprintf(stderr, "ERROR: vmfuzz divergence: unusable decoded input: %s\n", sum.unusable_reason.c_str());
    std::fputs(print_program(prog).c_str(), stderr);
    oracle_other();
  }
  if (sum.failure) {
    const harness::Failure& f = *sum.failure;
    std::fprintf(stderr, "ERROR: vmfuzz divergence: %s\n", harness::failure_key(f).c_str());
    std::fputs(harness::format_failure(f).c_str(), stderr);
    std::fputs("the input as a trace (ci/vmfuzz replay FILE explains it):\n", stderr);
    std::fputs(print_program(prog).c_str(), stderr);
    std::fprintf(stderr, "SUMMARY: %s\n", harness::failure_signature(f).c_str());
    std::fflush(stderr);
    abort_in_oracle(f.oracle);
  }
  return 0;
}
