// vm_diff_fuzzer.cc — libFuzzer target: does the VM ever disagree with the reference model?
//
// Theory of operation
// -------------------
// Any input bytes are a program (harness/lang/codec.h: the decoder is total). The program
// means exactly what `vmfuzz-replay --to-text` prints for the same file: names follow a
// run on a model (executor.h: decode_with_model). Its configuration is folded
// (fold_fuzz_config: a floor on frames, now 64, the codec's smallest, since the VM pages
// out under pressure; it was 512 before pageout). vmfuzz-replay folds binary inputs the
// same way, so a crash replays identically. Decoding and running are one pass
// (executor.h: decode_and_run): the run's own model answers the decoder, so the model
// runs once, not twice; the program and the verdict are those of decoding first.
//
// The program then runs through the executor with vm::Kernel as subject (one kernel for
// the whole process, Kernel::reset to each input's config) and
// model::Model as reference: results compared after every op, assertions (none in binary
// inputs), TLB coherence after every op, a full comparison and the named invariants every
// kFuzzFullCheckEvery ops and at the end, then teardown and check_teardown. Ops the VM does
// not implement yet are not applicable (skipped on both sides).
//
// Structure-aware mutation (LLVMFuzzerCustomMutator): six times in eight the input is
// decoded (or, when it is the input just run, taken from that run), changed at the op
// level (op_mutator.h) — two of the six insert a whole shaped sequence (a fork chain, a
// snapshot under pressure, a kernel write into a shared object mapping, the edges of
// user space, ...: harness/lang/op_shapes.h), four change one op — and encoded again;
// otherwise libFuzzer's byte mutation runs. Names that the change leaves dangling are
// remapped by the decoder (codec.h), so every mutant is a valid program.
//
// VM-state feedback (vm_state_feedback.h): after every op that ran, the kernel's shape
// (chain depths, copy objects, sharers, pagers, entry shapes, mechanism counters) bumps
// libFuzzer extra counters, so reaching a new VM state counts as new coverage.
//
// On the first failure the target prints, to stderr:
//     ERROR: vmfuzz divergence: <oracle> in <op kind> [<sub>]
//     <the report of harness/exec/report.h>
//     <the program as a text trace>
//     SUMMARY: vmfuzz: <oracle> in <op kind> [<sub>]
// and calls a noinline function named after the oracle (oracle_content_mismatch, ...) that
// aborts, so the crash's top frame names the oracle and libFuzzer's dedup separates them.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <random>
#include <span>
#include <string>

#include "harness/lang/codec.h"
#include "harness/exec/executor.h"
#include "harness/exec/report.h"
#include "harness/lang/text.h"
#include "fuzz/vm_diff/op_mutator.h"
#include "fuzz/vm_diff/vm_state_feedback.h"
#include "reference_model/model.h"
#include "vm/kernel.h"

namespace {

using namespace vmfuzz;


// Where the last oracle's name is kept: each oracle function writes its own string, so
// no two of them can be folded into one by the linker.
volatile const char* g_oracle = nullptr;

// One noinline, aborting function per row of the oracle table (harness/exec/oracles.def; the
// rows of the other targets get one too, never called), and oracle_other for a harness
// bug (a decoded program the executor calls unusable).
#define VMFUZZ_ORACLE(NAME, ...)                                  \
  [[noreturn]] __attribute__((noinline)) void oracle_##NAME() { \
    g_oracle = #NAME;                                           \
    std::abort();                                               \
  }
#include "harness/exec/oracles.def"
VMFUZZ_ORACLE(other)
#undef VMFUZZ_ORACLE

[[noreturn]] void abort_in_oracle(Oracle oracle) {
  switch (oracle) {
#define VMFUZZ_ORACLE(NAME, ...) \
  case Oracle::NAME: oracle_##NAME();
#include "harness/exec/oracles.def"
#undef VMFUZZ_ORACLE
  }
  oracle_other();
}

// --- Op-level mutation ---------------------------------------------------------------------

// The input LLVMFuzzerTestOneInput ran last and its program as decode_with_model gives it
// (its own config, not folded). libFuzzer mutates the unit it has just run (mutation depth
// > 1) more often than not; mutate_program then takes the program from here instead of
// decoding it again with a model run.
//
// Kept in storage that only grows: libFuzzer counts mallocs and frees during each run and,
// when a run ends with more mallocs than frees, runs the input a second time to look for a
// leak (TryDetectingAMemoryLeak). Copying each program into a fresh Program retained more
// allocations than it freed whenever the new program was longer than the last one, and
// that second run was ~28% of all executions (12% of the samples of a sanitized campaign).
// Here the ops are copied into slots that are reused (an op's data vectors keep their
// capacity), so a run allocates for the copy only when it needs more than any earlier run.
std::vector<uint8_t> g_last_input;
std::vector<Op> g_last_ops;  // the program in [0, g_last_op_count); later slots are spare
size_t g_last_op_count = 0;
SystemConfig g_last_config;

void keep_last(std::span<const uint8_t> bytes, const Program& prog) {
  g_last_input.assign(bytes.begin(), bytes.end());
  if (g_last_ops.size() < prog.ops.size()) g_last_ops.resize(prog.ops.size());
  std::copy(prog.ops.begin(), prog.ops.end(), g_last_ops.begin());
  g_last_op_count = prog.ops.size();
  g_last_config = Decoder(bytes).config();
}

Program decoded_program(std::span<const uint8_t> bytes) {
  if (bytes.size() == g_last_input.size() && std::equal(bytes.begin(), bytes.end(), g_last_input.begin())) {
    // As decode_and_run gave it, with the input's own config.
    Program p;
    p.config = g_last_config;
    p.has_config = true;
    p.ops.assign(g_last_ops.begin(), g_last_ops.begin() + std::ptrdiff_t(g_last_op_count));
    p.lines.assign(g_last_op_count, 0);
    return p;
  }
  model::Model scratch(Decoder(bytes).config());
  return harness::decode_with_model(bytes, scratch);
}

// Two in eight mutations insert a whole shaped sequence, four change one op (op_mutator.h),
// two are libFuzzer's byte mutations.
size_t mutate_program(uint8_t* data, size_t size, size_t max_size, std::minstd_rand& rng, bool sequence) {
  Program p = decoded_program(std::span<const uint8_t>(data, size));
  if (sequence) fuzz::insert_shaped_sequence(p, rng);
  else if (!fuzz::mutate_one_op(p, rng)) return 0;
  std::vector<uint8_t> out = encode_program(p);
  if (out.size() > max_size) return 0;
  std::copy(out.begin(), out.end(), data);
  return out.size();
}

}  // namespace

// libFuzzer's own byte mutation (absent in the plain replay build).
extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size) __attribute__((weak));

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::minstd_rand rng(seed);
  if (unsigned r = rng() % 8; r < 6) {
    size_t n = mutate_program(data, size, max_size, rng, /*sequence=*/r < 2);
    if (n != 0) return n;
  }
  return LLVMFuzzerMutate ? LLVMFuzzerMutate(data, size, max_size) : size;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  SystemConfig config = Decoder(bytes).config();
  harness::fold_fuzz_config(config);

  // One kernel for every input (Kernel::reset: nothing differs from a fresh construction,
  // tests/harness_exec/kernel_reset_test.cc), so that no input pays for mapping and
  // poisoning the frame buffer and per-frame tables. It is reset at the end of each run
  // (below), so that the run frees what it allocated (see g_last_input on libFuzzer's
  // malloc count), and again here only when this input's config differs. The model is
  // built per input: it holds no per-frame storage and costs nothing measurable.
  static harness::Subject vm = harness::make_vm_subject(config);
  vm::Kernel& reused = static_cast<vm::Kernel&>(*vm.system);
  if (!(reused.config() == config)) reused.reset(config);
  model::Model model(config);
  harness::ExecOptions options;
  options.full_check_every = harness::kFuzzFullCheckEvery;
  // VM-state feedback (vm_state_feedback.h): the shapes reached after every op that ran.
  // VMFUZZ_NO_STATE_FEEDBACK=1 switches it off (to measure what it adds).
  static const bool feedback_on = std::getenv("VMFUZZ_NO_STATE_FEEDBACK") == nullptr;
  const vm::Kernel* kernel = feedback_on ? dynamic_cast<const vm::Kernel*>(vm.system.get()) : nullptr;
  harness::StepListener feedback = [kernel](uint64_t, const Op&, harness::Executor::Step step,
                                            const harness::Executor&) {
    if (kernel && step == harness::Executor::Step::Ran) fuzz::record_vm_state(*kernel);
  };
  // Decoded and run in one pass: the same program as decode_with_model gives (the one
  // `vmfuzz-replay --to-text` prints) and the same verdict as run_program on it.
  Program prog;
  harness::RunSummary sum =
      harness::decode_and_run(bytes, config, *vm.system, model, vm.observer.get(), options, feedback, &prog);
  reused.reset(config);  // fresh for the next input of the same config
  // For the driver's progress line: the number of VM-state counters set, when it grew
  // (checked every 256 inputs to keep the cost off the hot path).
  static uint64_t runs = 0;
  static size_t reported = 0;
  if (kernel && ++runs % 256 == 0) {
    size_t seen = fuzz::vm_state_features_seen();
    if (seen != reported) {
      reported = seen;
      std::fprintf(stderr, "VMSTATE: %zu features\n", seen);
    }
  }
  // For the mutator (see g_last_input): the same program with the input's own config.
  keep_last(bytes, prog);
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
