// harness_bench.cc — what the differential harness costs: exec/s, ops/s, and the oracles.
//
// Theory of operation
// -------------------
// The fuzz target vm_diff (fuzz/vm_diff/vm_diff_fuzzer.cc) folds an input's configuration
// and decodes and runs it in one pass (harness::decode_and_run: the program of
// decode_with_model, the verdict of run_program) on a fresh vm::Kernel and a fresh
// model::Model with a full check every 16 ops and at the end, then tears down.
// `run_input` below does exactly that, so the plain (release) figures here and the
// sanitized figures of the fuzz build (ci/bench.py runs vm_diff_fuzzer) measure one thing.
//
// Inputs:
//   corpus      every corpus/vm_diff/*.bin of the source tree (VMFUZZ_BENCH_CORPUS
//               overrides the directory), in name order.
//   random64    kRandomPrograms programs of exactly 64 ops: seeded random bytes decoded
//               (decode_with_model), cut to 64 ops and re-encoded, so the bytes decode to
//               those 64 ops again (checked). `--vmfuzz_write_programs=DIR` writes them as
//               DIR/random64-NNN.bin and exits: the sanitized run uses the same inputs.
//
// Groups (names are what ci/bench.py looks for); counters are per iteration:
//   BM_Exec/Corpus                  execs, ops, failures
//   BM_Exec/Random64/check_every:N  the same on random64, full check every N ops (0: only
//                                   at the end): the per-op price of the full check
//   BM_Oracle/{FullCheck,Invariants,Tlb}   one oracle call on each of the states left by
//                                   running random64 programs (no teardown): checks
//
// Determinism: inputs are fixed (files, fixed seeds); only the clock varies.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bench/splitmix.h"
#include "harness/lang/codec.h"
#include "harness/exec/executor.h"
#include "reference_model/model.h"
#include "vmfuzz/vocab.h"

namespace {

using namespace vmfuzz;
namespace fs = std::filesystem;

constexpr unsigned kFullCheckEvery = harness::kFuzzFullCheckEvery;  // as vm_diff
constexpr unsigned kRandomPrograms = 200;
constexpr size_t kRandomOps = 64;

using Bytes = std::vector<uint8_t>;

using vmfuzz::bench::SplitMix;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "harness_bench: %s\n", what.c_str());
  std::exit(2);
}

/// Decode as vm_diff does: names follow a run on a scratch model; config folded.
Program decode_like_vm_diff(std::span<const uint8_t> bytes) {
  Program prog;
  {
    model::Model scratch(Decoder(bytes).config());
    prog = harness::decode_with_model(bytes, scratch);
  }
  harness::fold_fuzz_config(prog.config);
  return prog;
}

/// One execution of vm_diff on `bytes` (without the abort on failure: counted instead;
/// without the VM-state feedback, which only the fuzz build reads).
harness::RunSummary run_input(std::span<const uint8_t> bytes, unsigned full_check_every) {
  SystemConfig config = Decoder(bytes).config();
  harness::fold_fuzz_config(config);
  harness::Subject vm = harness::make_vm_subject(config);
  model::Model model(config);
  harness::ExecOptions options;
  options.full_check_every = full_check_every;
  Program prog;
  return harness::decode_and_run(bytes, config, *vm.system, model, vm.observer.get(), options, {}, &prog);
}

/// corpus/vm_diff/*.bin in name order (or $VMFUZZ_BENCH_CORPUS).
const std::vector<Bytes>& corpus() {
  static const std::vector<Bytes> files = [] {
    const char* env = std::getenv("VMFUZZ_BENCH_CORPUS");
    fs::path dir = env ? fs::path(env) : fs::path(VMFUZZ_SOURCE_DIR) / "corpus" / "vm_diff";
    std::vector<fs::path> paths;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_regular_file() && e.path().extension() == ".bin") paths.push_back(e.path());
    if (ec || paths.empty()) die("no corpus files in " + dir.string());
    std::sort(paths.begin(), paths.end());
    std::vector<Bytes> out;
    for (const fs::path& p : paths) {
      std::ifstream in(p, std::ios::binary);
      out.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return out;
  }();
  return files;
}

/// Program i of random64: 4 KiB of seeded random bytes decoded, cut to 64 ops and
/// re-encoded. A draw that decodes to fewer ops (a long data argument ate the bytes) is
/// replaced by the next seed of the same program.
Bytes random_program(unsigned i) {
  for (unsigned attempt = 0; attempt < 64; ++attempt) {
    SplitMix rng{0x64064064ull + 1000ull * i + attempt};
    Bytes raw(4096);
    for (uint8_t& b : raw) b = uint8_t(rng.next());
    raw[0] = 1;  // format 1: the op mix this figure has been measured on since it began
                 // (format 2 adds `device`; the corpus figures include device seeds)
    Program cut;
    {
      model::Model scratch(Decoder(raw).config());
      cut = harness::decode_with_model(raw, scratch);  // unfolded config, as encoded
    }
    if (cut.ops.size() < kRandomOps) continue;
    cut.ops.resize(kRandomOps);
    cut.lines.resize(kRandomOps);
    Bytes enc = encode_program(cut);
    Program again = decode_like_vm_diff(enc);
    if (again.ops.size() != kRandomOps)
      die("random program " + std::to_string(i) + " does not re-decode to 64 ops");
    return enc;
  }
  die("random program " + std::to_string(i) + ": too few ops decoded");
}

const std::vector<Bytes>& random64() {
  static const std::vector<Bytes> progs = [] {
    std::vector<Bytes> out;
    for (unsigned i = 0; i < kRandomPrograms; ++i) out.push_back(random_program(i));
    return out;
  }();
  return progs;
}

/// Run every input once per iteration; counters per iteration.
void exec_inputs(benchmark::State& state, const std::vector<Bytes>& inputs, unsigned check_every) {
  uint64_t ops = 0, failures = 0;
  for (auto _ : state) {
    ops = failures = 0;
    for (const Bytes& in : inputs) {
      harness::RunSummary s = run_input(in, check_every);
      ops += s.ops;
      failures += s.ok ? 0 : 1;
    }
  }
  state.counters["execs"] = double(inputs.size());
  state.counters["ops"] = double(ops);
  state.counters["failures"] = double(failures);
}

void BM_Exec_Corpus(benchmark::State& state) { exec_inputs(state, corpus(), kFullCheckEvery); }
BENCHMARK(BM_Exec_Corpus)->Name("BM_Exec/Corpus")->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_Exec_Random64(benchmark::State& state) {
  exec_inputs(state, random64(), unsigned(state.range(0)));
}
BENCHMARK(BM_Exec_Random64)
    ->Name("BM_Exec/Random64")
    ->ArgName("check_every")
    ->Arg(kFullCheckEvery)
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);

/// A system left in the state a random64 program leads to (ops run, no finish).
struct LiveRun {
  harness::Subject vm;
  std::unique_ptr<model::Model> model;
  std::unique_ptr<harness::Executor> exec;
};

std::vector<std::unique_ptr<LiveRun>> live_runs() {
  std::vector<std::unique_ptr<LiveRun>> runs;
  for (const Bytes& in : random64()) {
    Program prog = decode_like_vm_diff(in);
    auto r = std::make_unique<LiveRun>();
    r->vm = harness::make_vm_subject(prog.config);
    r->model = std::make_unique<model::Model>(prog.config);
    r->exec = std::make_unique<harness::Executor>(*r->vm.system, *r->model, prog.config);
    r->exec->set_observer(r->vm.observer.get());
    bool ok = true;
    for (const Op& op : prog.ops) {
      harness::Executor::Step st = r->exec->step(op);
      if (st == harness::Executor::Step::Failed || st == harness::Executor::Step::Unusable) {
        ok = false;
        break;
      }
    }
    if (ok) runs.push_back(std::move(r));
  }
  return runs;
}

enum class CheckKind { FullCheck, Invariants, Tlb };

void BM_Oracle(benchmark::State& state) {
  const CheckKind which = CheckKind(state.range(0));
  auto runs = live_runs();
  std::vector<Violation> findings;
  uint64_t found = 0;
  for (auto _ : state) {
    for (auto& r : runs) {
      findings.clear();
      switch (which) {
        case CheckKind::FullCheck:
          found += r->exec->full_check() ? 0 : 1;
          break;
        case CheckKind::Invariants:
          r->vm.observer->check_invariants(findings);
          break;
        case CheckKind::Tlb:
          r->vm.observer->check_tlb_coherence(findings);
          break;
      }
      found += findings.size();
    }
  }
  state.counters["checks"] = double(runs.size());
  state.counters["findings"] = double(found);
}
BENCHMARK(BM_Oracle)->Name("BM_Oracle/FullCheck")->Arg(int(CheckKind::FullCheck))->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Oracle)->Name("BM_Oracle/Invariants")->Arg(int(CheckKind::Invariants))->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Oracle)->Name("BM_Oracle/Tlb")->Arg(int(CheckKind::Tlb))->Unit(benchmark::kMicrosecond);

/// `--vmfuzz_write_programs=DIR`: write random64 as DIR/random64-NNN.bin.
int write_programs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) die("cannot create " + dir + ": " + ec.message());
  const auto& progs = random64();
  for (size_t i = 0; i < progs.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "random64-%03zu.bin", i);
    std::ofstream out(fs::path(dir) / name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(progs[i].data()), std::streamsize(progs[i].size()));
    if (!out) die("cannot write " + (fs::path(dir) / name).string());
  }
  std::printf("%zu programs of %zu ops written to %s\n", progs.size(), kRandomOps, dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string flag = "--vmfuzz_write_programs=";
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], flag.c_str(), flag.size()) == 0) return write_programs(argv[i] + flag.size());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
