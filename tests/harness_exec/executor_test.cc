// executor_test.cc — every oracle of the executor fires on a deliberately broken memory
// system, and stays silent when the reference model is judged against itself.
//
// The broken subject is `Broken`: a reference model behind a wrapper whose knobs each
// break one observable thing (a read byte, a result code, a returned address, a fault
// address, a region, a page seen by the side-effect-free peek, an object's store, an
// unknown byte). VM-only oracles (invariants, TLB coherence, fault loop, teardown,
// the oracle table) are driven through a scripted VmObserver and a real kernel whose
// structures are corrupted. Questions in test names.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness/lang/codec.h"
#include "tests/doc_block.h"
#include "harness/exec/dot.h"
#include "harness/exec/executor.h"
#include "harness/exec/invariants.h"
#include "harness/exec/oracles.h"
#include "harness/exec/report.h"
#include "harness/lang/text.h"
#include "reference_model/model.h"
#include "vm/kernel.h"
#include "vm/machine/bugs.h"

namespace vmfuzz::harness {
namespace {

// Owns the model Broken forwards to (constructed before the ForwardingSystem base).
struct OwnedModel {
  explicit OwnedModel(const SystemConfig& c) : m_(c) {}
  model::Model m_;
};

// A model with knobs that break it in one observable way each; every other entry point
// is forwarded unchanged by ForwardingSystem.
class Broken final : private OwnedModel, public ForwardingSystem {
 public:
  explicit Broken(const SystemConfig& c) : OwnedModel(c), ForwardingSystem(m_) {}

  bool flip_read = false;             // flip bit 0 of the first byte every read returns
  bool wrong_protect_code = false;    // protect returns KERN_FAILURE after succeeding
  bool wrong_any_addr = false;        // allocate any reports base + 0x1000
  bool wrong_fault_addr = false;      // faults reported one byte late
  bool extra_region = false;          // regions(t) reports one more region
  uint64_t flip_peek_va = 0;          // peek_page flips byte 7 of the page at this va
  bool peek_unmapped = false;         // peek_page says Unmapped for every page
  bool flip_object_peek = false;      // peek_object_page flips byte 0
  bool memory_error_on_unknown = false;  // reads stop with KERN_MEMORY_ERROR at unknown bytes
  bool memory_error_always = false;      // reads stop with KERN_MEMORY_ERROR at their start

  kern_return_t allocate(unsigned t, uint64_t* addr, uint64_t size, bool anywhere) override {
    kern_return_t kr = m_.allocate(t, addr, size, anywhere);
    if (wrong_any_addr && anywhere && kr == KERN_SUCCESS) *addr += 0x1000;
    return kr;
  }
  kern_return_t protect(unsigned t, uint64_t a, uint64_t s, bool mx, vm_prot_t p) override {
    kern_return_t kr = m_.protect(t, a, s, mx, p);
    return wrong_protect_code ? KERN_FAILURE : kr;
  }
  Access write(unsigned t, uint64_t a, std::span<const uint8_t> d, unsigned cpu) override {
    Access r = m_.write(t, a, d, cpu);
    if (wrong_fault_addr && r.kr != KERN_SUCCESS) r.fault_addr++;
    return r;
  }
  Access read(unsigned t, uint64_t a, uint64_t s, unsigned cpu) override {
    Access r = m_.read(t, a, s, cpu);
    if (flip_read && !r.bytes.empty()) r.bytes[0] ^= 1;
    if (wrong_fault_addr && r.kr != KERN_SUCCESS) r.fault_addr++;
    if (memory_error_always && s > 0) {
      r = Access{};
      r.kr = KERN_MEMORY_ERROR;
      r.fault_addr = a;
    }
    if (memory_error_on_unknown) {
      for (size_t i = 0; i < r.unknown.size(); i++) {
        if (r.unknown[i]) {
          r.kr = KERN_MEMORY_ERROR;
          r.fault_addr = a + i;
          r.bytes.resize(i);
          r.unknown.clear();
          break;
        }
      }
    }
    return r;
  }

  std::vector<RegionInfo> regions(unsigned t) const override {
    auto r = m_.regions(t);
    if (extra_region) r.push_back({0x7fff00000000, 0x7fff00001000, VM_PROT_READ, VM_PROT_ALL, vm_inherit_t::Copy});
    return r;
  }
  void pages_of_interest(unsigned t, std::vector<uint64_t>& out) const override {
    m_.pages_of_interest(t, out);
    if (flip_peek_va) out.push_back(flip_peek_va);
  }
  PeekStatus peek_page(unsigned t, uint64_t va, std::span<uint8_t, kPageSize> out) const override {
    PeekStatus s = m_.peek_page(t, va, out);
    if (peek_unmapped) return PeekStatus::Unmapped;
    if (s == PeekStatus::Mapped && va == flip_peek_va) out[7] ^= 0x80;
    return s;
  }
  PeekStatus peek_object_page(unsigned o, uint64_t off, std::span<uint8_t, kPageSize> out) const override {
    PeekStatus s = m_.peek_object_page(o, off, out);
    if (flip_object_peek && s == PeekStatus::Mapped) out[0] ^= 1;
    return s;
  }

};

// A scripted observer: each knob makes one VM-only checker report.
class ScriptedObserver final : public VmObserver {
 public:
  std::optional<Oracle> invariant;      // reported by check_invariants when set
  std::optional<Oracle> tlb;            // reported by check_tlb_coherence when set
  std::optional<Oracle> teardown_left;  // reported by check_teardown when set
  bool loop = false;  // a protection fault counts as a fault loop
  int teardown_calls = 0;

  void check_invariants(std::vector<Violation>& out) const override {
    if (invariant) out.push_back({*invariant, "scripted violation"});
  }
  void check_tlb_coherence(std::vector<Violation>& out) const override {
    if (tlb) out.push_back({*tlb, "scripted stale entry"});
  }
  void check_teardown(std::vector<Violation>& out) const override {
    const_cast<ScriptedObserver*>(this)->teardown_calls++;
    if (teardown_left) out.push_back({*teardown_left, "3 frames left"});
  }
  std::optional<std::string> fault_loop(const Access& a) const override {
    if (!loop || a.kr != KERN_PROTECTION_FAILURE) return std::nullopt;
    return "fault at " + hex_addr(a.fault_addr) + " retried without a new translation";
  }
  std::string provenance(unsigned t, uint64_t va) const override {
    return "object 7 depth 1 resident (t" + std::to_string(t) + " " + hex_addr(va) + ")";
  }
  std::string object_provenance(unsigned m, uint64_t off) const override {
    return "object of m" + std::to_string(m) + " offset " + hex_addr(off);
  }
  std::string dot(const FailureSite&) const override { return "digraph vm {}\n"; }
};

Program parse(const std::string& text) {
  Program p;
  ParseError err;
  bool ok = parse_trace(text, "test.trace", &p, &err);
  EXPECT_TRUE(ok) << err.what();
  return p;
}

RunSummary run(const std::string& text, Broken& vm, VmObserver* obs = nullptr, ExecOptions o = {}) {
  Program p = parse(text);
  model::Model model(p.config);
  return run_program(p, "test.trace", vm, model, obs, o);
}

RunSummary run_broken(const std::string& text, void (*knob)(Broken&), VmObserver* obs = nullptr,
                      ExecOptions o = {}) {
  Program p = parse(text);
  Broken vm(p.config);
  knob(vm);
  model::Model model(p.config);
  return run_program(p, "test.trace", vm, model, obs, o);
}

const char* kBasic =
    "allocate t0 0x10000 0x3000\n"
    "write t0 0x10004 \"text\"\n"
    "fork t0 t1\n"
    "write t1 0x11000 fill:0x22*0x10\n"
    "read t0 0x10000 8 == hex:0000000074657874\n"
    "read t1 0x11000 2 == hex:2222\n"
    "protect t0 0x12000 0x1000 r--\n"
    "write t0 0x12000 \"x\" => fault 0x12000 KERN_PROTECTION_FAILURE\n"
    "allocate t1 any 0x1000 => 0x13000\n"
    "object m0 0x2000 none persist fill:0x33*0x100\n"
    "map t0 any 0x2000 m0 0x0 share\n"
    "write t0 0x13000 \"obj\"\n"
    "file m0 0x0 4 == hex:6f626a33\n"
    "check\n";

// --- Silence on a correct subject ---------------------------------------------------------

TEST(Executor, WhatIfTheModelIsJudgedAgainstItselfNoOracleFires) {
  Program p = parse(kBasic);
  model::Model a(p.config), b(p.config);
  RunSummary s = run_program(p, "test.trace", a, b, nullptr, {1, true});
  ASSERT_TRUE(s.ok) << (s.failure ? format_failure(*s.failure) : s.unusable_reason);
  EXPECT_EQ(s.ops, p.ops.size());
}

TEST(Executor, WhatIfEveryHandWrittenTraceRunsModelAgainstModel) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(VMFUZZ_SOURCE_DIR) / "corpus" / "traces";
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".trace") files.push_back(e.path());
  std::ranges::sort(files);
  ASSERT_GE(files.size(), 40u);
  size_t concurrent = 0;
  for (const auto& f : files) {
    std::ifstream in(f);
    std::stringstream ss;
    ss << in.rdbuf();
    Program p;
    ParseError err;
    ASSERT_TRUE(parse_trace(ss.str(), f.string(), &p, &err)) << err.what();
    // A trace with a schedule (docs/concurrency.md) needs a concurrent subject: its
    // requests, threads and data_error assertions exist only on the VM (replay.trace.*).
    if (std::ranges::any_of(p.ops, [](const Op& op) { return op_spec(op.kind).format >= 4; })) {
      concurrent++;
      continue;
    }
    model::Model a(p.config), b(p.config);
    RunSummary s = run_program(p, f.string(), a, b, nullptr, {3, true});
    EXPECT_TRUE(s.ok) << f << "\n" << (s.failure ? format_failure(*s.failure) : s.unusable_reason);
  }
  EXPECT_LE(concurrent, files.size() / 2) << "most hand-written traces must stay sequential";
}

/// The full event log of one run of a trace on the VM: every op with its result and
/// the thread runs it caused, the final drain's runs, and the verdict.
std::vector<std::string> event_log(const Program& p) {
  Subject s = make_vm_subject(p.config);
  model::Model model(p.config);
  Executor ex(*s.system, model, p.config, {4, true});
  ex.set_observer(s.observer.get());
  std::vector<std::string> log;
  auto notes = [&] {
    for (const std::string& n : ex.thread_notes()) log.push_back("  " + n);
  };
  for (size_t i = 0; i < p.ops.size(); i++) {
    Executor::Step st = ex.step(p.ops[i]);
    log.push_back(print_op(p.ops[i]) + " " + format_result(p.ops[i], ex.vm_result()) + " " +
                  std::to_string(int(st)));
    notes();
    if (st != Executor::Step::Ran) return log;
  }
  bool ok = ex.finish_check();
  notes();
  ok = ok && ex.finish_teardown();
  log.push_back(ok ? "ok" : format_failure(*ex.failure()));
  return log;
}

TEST(Executor, WhatIfARaceTraceIsReplayedTwiceAreTheEventLogsTheSame) {
  namespace fs = std::filesystem;
  unsigned n = 0;
  for (const auto& e : fs::directory_iterator(fs::path(VMFUZZ_SOURCE_DIR) / "corpus" / "traces")) {
    if (e.path().filename().string().rfind("race_", 0) != 0) continue;
    std::ifstream in(e.path());
    std::stringstream ss;
    ss << in.rdbuf();
    Program p;
    ParseError err;
    ASSERT_TRUE(parse_trace(ss.str(), e.path().string(), &p, &err)) << err.what();
    std::vector<std::string> a = event_log(p), b = event_log(p);
    EXPECT_EQ(a, b) << e.path();
    EXPECT_EQ(a.back(), "ok") << e.path();
    // A race trace is one: some access goes on as a thread.
    EXPECT_TRUE(std::ranges::any_of(a, [](const std::string& l) { return l.find("in flight as thread") != std::string::npos; }))
        << e.path();
    n++;
  }
  EXPECT_GE(n, 20u);
}

TEST(Executor, WhatIfTheCodecChangesAreTheVmDiffSeedsStillTheTraces) {
  // corpus/vm_diff/NAME.bin is `vmfuzz-replay --encode corpus/traces/NAME.trace`: it must
  // decode to the trace's ops (assertions dropped). Re-encode the seeds when this fails.
  namespace fs = std::filesystem;
  fs::path root = fs::path(VMFUZZ_SOURCE_DIR) / "corpus";
  unsigned seeds = 0;
  for (const auto& e : fs::directory_iterator(root / "traces")) {
    if (e.path().extension() != ".trace") continue;
    fs::path bin = root / "vm_diff" / (e.path().stem().string() + ".bin");
    if (!fs::exists(bin)) continue;
    seeds++;
    std::ifstream tin(e.path()), bin_in(bin, std::ios::binary);
    std::stringstream ts;
    ts << tin.rdbuf();
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(bin_in)), std::istreambuf_iterator<char>());
    Program trace;
    ParseError err;
    ASSERT_TRUE(parse_trace(ts.str(), e.path().string(), &trace, &err)) << err.what();
    model::Model scratch(trace.config);
    Program decoded = decode_with_model(bytes, scratch);
    ASSERT_EQ(decoded.ops.size(), trace.ops.size()) << bin;
    for (size_t i = 0; i < trace.ops.size(); i++) {
      Op want = trace.ops[i];
      want.expect = Expect{};
      // Binary choices are all `~N` (codec.h, CHOICE). A usable exact `reply m N` names the
      // N-th pending request, which `~N` names too; an exact `run N` (a thread id) has no
      // binary form, so seeded traces schedule with `run ~N`.
      if (want.kind == OpKind::Reply) want.choice_exact = false;
      EXPECT_EQ(print_op(decoded.ops[i]), print_op(want)) << bin << " op " << i;
    }
  }
  EXPECT_GE(seeds, 30u);
}

// --- Per-op oracles -------------------------------------------------------------------------

TEST(Executor, WhatIfAReadReturnsAWrongByteResultMismatchOrAssertionFires) {
  // Without an assertion on the read: the sides are compared.
  RunSummary s = run_broken("allocate t0 0x10000 0x1000\nwrite t0 0x10000 \"ab\"\nread t0 0x10000 2\n",
                            [](Broken& b) { b.flip_read = true; });
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(s.failure->oracle, Oracle::result_mismatch);
  EXPECT_EQ(s.failure->op_index, 2u);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: result_mismatch in read [bytes]");
  EXPECT_NE(s.failure->diff.find("-0x000000010000  61 62"), std::string::npos) << s.failure->diff;
  EXPECT_NE(s.failure->diff.find("+0x000000010000  60 62"), std::string::npos) << s.failure->diff;
  // With one: the assertion names the side that broke it.
  s = run_broken("allocate t0 0x10000 0x1000\nwrite t0 0x10000 \"ab\"\nread t0 0x10000 2 == \"ab\"\n",
                 [](Broken& b) { b.flip_read = true; });
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: assertion in read [vm]");
}

TEST(Executor, WhatIfTheTraceAssertsSomethingFalseTheModelSideIsNamed) {
  Broken vm(SystemConfig{});
  RunSummary s = run("allocate t0 0x10000 0x1000\nprotect t0 0x10000 0x1000 r-- => KERN_NO_SPACE\n", vm);
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: assertion in protect [model]");
  EXPECT_NE(s.failure->detail.find("asserted: KERN_NO_SPACE"), std::string::npos) << s.failure->detail;
}

TEST(Executor, WhatIfACodeDiffersResultMismatchNamesBothCodes) {
  RunSummary s = run_broken("allocate t0 0x10000 0x1000\nprotect t0 0x10000 0x1000 r--\n",
                            [](Broken& b) { b.wrong_protect_code = true; });
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: result_mismatch in protect [vm KERN_FAILURE, model KERN_SUCCESS]");
}

TEST(Executor, WhatIfAReturnedAddressDiffers) {
  RunSummary s = run_broken("allocate t0 any 0x1000\n", [](Broken& b) { b.wrong_any_addr = true; });
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: result_mismatch in allocate [address]");
  EXPECT_NE(s.failure->detail.find("at 0x11000"), std::string::npos) << s.failure->detail;
}

TEST(Executor, WhatIfAFaultAddressDiffers) {
  RunSummary s = run_broken("allocate t0 0x10000 0x1000\nwrite t0 0x10ffe \"abcd\"\n",
                            [](Broken& b) { b.wrong_fault_addr = true; });
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: result_mismatch in write [fault_address]");
}

// --- Full-check oracles ----------------------------------------------------------------------

TEST(Executor, WhatIfTheVmReportsAnExtraRegion) {
  RunSummary s = run_broken("allocate t0 0x10000 0x1000\ncheck\n", [](Broken& b) { b.extra_region = true; });
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(s.failure->oracle, Oracle::region_mismatch);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: region_mismatch in check [vm has an extra region]");
  EXPECT_NE(s.failure->detail.find("0x7fff00000000-0x7fff00001000 r-- max rwx copy"), std::string::npos)
      << s.failure->detail;
}

TEST(Executor, WhatIfAPageHoldsAWrongByteOnlyTheFullCheckSeesIt) {
  const char* trace = "allocate t0 0x10000 0x2000\nwrite t0 0x11000 \"abcdefgh\"\nread t0 0x11000 1\n";
  // No check op: the end-of-program check finds it.
  RunSummary s = run_broken(trace, [](Broken& b) { b.flip_peek_va = 0x11000; });
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(s.failure->oracle, Oracle::content_mismatch);
  EXPECT_EQ(s.failure->op, "(end of program)");
  EXPECT_EQ(s.failure->op_index, 3u);
  EXPECT_EQ(s.failure->site.addr, 0x11007u);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: content_mismatch in end");
  EXPECT_NE(s.failure->diff.find("-0x000000011000  61 62 63 64 65 66 67 68 00"), std::string::npos);
  EXPECT_NE(s.failure->diff.find("+0x000000011000  61 62 63 64 65 66 67 e8 00"), std::string::npos);
  // Periodic checks find it at the op where the period ends.
  s = run_broken(trace, [](Broken& b) { b.flip_peek_va = 0x11000; }, nullptr, {2, true});
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(s.failure->op_index, 1u);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: content_mismatch in write");
}

TEST(Executor, WhatIfThePeekSaysUnmappedWhereTheModelHasMemory) {
  RunSummary s = run_broken("allocate t0 0x10000 0x1000\nwrite t0 0x10000 \"a\"\ncheck\n",
                            [](Broken& b) { b.peek_unmapped = true; });
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: content_mismatch in check [vm unmapped, model mapped]");
}

TEST(Executor, WhatIfAMemoryObjectStoreDiffers) {
  RunSummary s = run_broken("object m0 0x1000 none persist hex:01\ncheck\n",
                            [](Broken& b) { b.flip_object_peek = true; });
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: object_store_mismatch in check");
  EXPECT_EQ(s.failure->site.kind, FailureSite::Kind::ObjectPage);
}

TEST(Executor, WhatIfTheVmFailsWithMemoryErrorOnUndefinedBytesThatIsAllowed) {
  const char* trace =
      "object m0 0x2000 none persist fill:0x44*0x2000\n"
      "map t0 0x10000 0x2000 m0 0x0 share\n"
      "allocate t0 0x12000 0x1000\n"
      "write t0 0x12000 \"ok\"\n"
      "destroy m0\n"
      "read t0 0x10000 4\n"
      "read t0 0x11ffe 4\n";
  RunSummary s = run_broken(trace, [](Broken& b) { b.memory_error_on_unknown = true; });
  EXPECT_TRUE(s.ok) << (s.failure ? format_failure(*s.failure) : "");
  // ... but not on defined bytes.
  s = run_broken("allocate t0 0x10000 0x1000\nread t0 0x10000 4\n", [](Broken& b) { b.memory_error_always = true; });
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: result_mismatch in read [vm KERN_MEMORY_ERROR, model KERN_SUCCESS]");
}

// --- VM-only oracles through the observer ---------------------------------------------------

TEST(Executor, WhatIfAnInvariantBreaksItIsTheOracle) {
  ScriptedObserver obs;
  obs.invariant = Oracle::page_in_one_object;
  Broken vm(SystemConfig{});
  RunSummary s = run("allocate t0 0x10000 0x1000\ncheck\n", vm, &obs);
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(s.failure->oracle, Oracle::page_in_one_object);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: page_in_one_object in check");
}

TEST(Executor, WhatIfTlbCoherenceBreaksItFiresAfterTheOp) {
  ScriptedObserver obs;
  obs.tlb = Oracle::tlb_coherent;
  Broken vm(SystemConfig{});
  RunSummary s = run("allocate t0 0x10000 0x1000\n", vm, &obs);
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(s.failure->op_index, 0u);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: tlb_coherent in allocate");
}

TEST(Executor, WhatIfTheMachineLoopsOnAFault) {
  ScriptedObserver obs;
  obs.loop = true;
  Broken vm(SystemConfig{});
  RunSummary s = run("allocate t0 0x10000 0x1000\nprotect t0 0x10000 0x1000 r--\nwrite t0 0x10000 \"a\"\n", vm, &obs);
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(s.failure->op_index, 2u);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: fault_loop in write");
}

TEST(Executor, WhatIfSomethingIsLeftAfterTeardown) {
  ScriptedObserver obs;
  obs.teardown_left = Oracle::frames_accounted;
  Broken vm(SystemConfig{});
  RunSummary s = run("allocate t0 0x10000 0x1000\nvm_read t0 0x10000 0x1000 c0\nobject m1 0x1000 delay nopersist fill:0x01*0x10\n",
                     vm, &obs);
  ASSERT_TRUE(s.failure);
  EXPECT_EQ(failure_signature(*s.failure), "vmfuzz: teardown in teardown [frames_accounted]");
  EXPECT_EQ(obs.teardown_calls, 1);
  // Teardown destroyed the object on both sides (tasks and handles are ended too).
  obs.teardown_left.reset();
  Broken vm2(SystemConfig{});
  s = run("allocate t0 0x10000 0x1000\nvm_read t0 0x10000 0x1000 c0\nobject m1 0x1000 delay nopersist fill:0x01*0x10\n", vm2,
          &obs);
  EXPECT_TRUE(s.ok);
  std::array<uint8_t, kPageSize> buf{};
  EXPECT_EQ(vm2.peek_object_page(1, 0, buf), PeekStatus::Unknown);
}

TEST(Executor, WhatIfANameDoesNotExistTheInputIsUnusable) {
  Broken vm(SystemConfig{});
  RunSummary s = run("allocate t0 0x10000 0x1000\nread t2 0x10000 1\n", vm);
  EXPECT_TRUE(s.unusable);
  EXPECT_EQ(s.unusable_reason, "test.trace:2: t2: no such task");
}

// --- The kernel observer ---------------------------------------------------------------------

TEST(KernelObserver, WhatIfTheVmRunsATraceTheObserverExplainsItsGraph) {
  Program p = parse(
      "allocate t0 0x10000 0x2000\nwrite t0 0x10000 \"abc\"\nfork t0 t1\nwrite t1 0x10000 \"xyz\"\n"
      "object m0 0x1000 delay persist fill:0x01*0x10\nmap t0 0x30000 0x1000 m0 0x0 share\nread t0 0x30000 1\n");
  Subject vm = make_vm_subject(p.config);
  ASSERT_TRUE(vm.observer);
  model::Model model(p.config);
  Executor ex(*vm.system, model, p.config);
  ex.set_observer(vm.observer.get());
  for (const Op& op : p.ops) ASSERT_EQ(ex.step(op), Executor::Step::Ran) << print_op(op);
  ASSERT_TRUE(ex.finish_check());
  const auto& k = static_cast<const vm::Kernel&>(*vm.system);
  // The child's written page: an object of its own at depth 0, resident.
  std::string prov = vm.observer->provenance(1, 0x10001);
  EXPECT_NE(prov.find("at depth 0"), std::string::npos) << prov;
  EXPECT_NE(prov.find("resident in frame"), std::string::npos) << prov;
  // The parent's unwritten second page: zero-fill or no object yet, never resident.
  EXPECT_EQ(vm.observer->provenance(0, 0x11000).find("resident in frame"), std::string::npos);
  EXPECT_NE(vm.observer->object_provenance(0, 0).find("kernel object"), std::string::npos)
      << vm.observer->object_provenance(0, 0);
  std::string dot = vm.observer->dot({FailureSite::Kind::TaskPage, 1, 0, 0x10001});
  EXPECT_EQ(dot.rfind("digraph vm {", 0), 0u);
  EXPECT_NE(dot.find("subgraph cluster_t1"), std::string::npos);
  EXPECT_NE(dot.find("fillcolor"), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"m0\" -> \"o"), std::string::npos) << dot;
  EXPECT_EQ(dot, dot_graph(k, {FailureSite::Kind::TaskPage, 1, 0, 0x10001}));  // deterministic
  // Teardown leaves nothing, and the teardown oracle agrees.
  ASSERT_TRUE(ex.finish_teardown()) << format_failure(*ex.failure());
  std::vector<Violation> left;
  vm.observer->check_teardown(left);
  EXPECT_TRUE(left.empty());
}

TEST(KernelObserver, WhatIfTheMachineGivesUpOnAFaultItIsAFaultLoop) {
  Subject vm = make_vm_subject(SystemConfig{});
  Access a;
  a.kr = KERN_FAILURE;
  a.fault_addr = 0x10000;
  auto loop = vm.observer->fault_loop(a);
  ASSERT_TRUE(loop);
  EXPECT_NE(loop->find("0x10000"), std::string::npos);
  a.kr = KERN_PROTECTION_FAILURE;
  EXPECT_FALSE(vm.observer->fault_loop(a));
}

// --- Reports ------------------------------------------------------------------------------

TEST(Report, WhatIfTheSameBugHitsDifferentAddressesTheSignatureIsStable) {
  auto at = [](uint64_t va) {
    Program p = parse("allocate t0 0x10000 0x8000\nwrite t0 " + hex_addr(va) + " \"zz\"\ncheck\n");
    Broken vm(p.config);
    vm.flip_peek_va = trunc_page(va);
    model::Model model(p.config);
    return run_program(p, "x", vm, model, nullptr, {});
  };
  RunSummary a = at(0x10000), b = at(0x15008);
  ASSERT_TRUE(a.failure && b.failure);
  EXPECT_EQ(failure_signature(*a.failure), failure_signature(*b.failure));
  EXPECT_NE(a.failure->detail, b.failure->detail);
}

TEST(Report, WhatIfAFailureIsPrintedEveryPartIsThere) {
  ScriptedObserver obs;
  Program p = parse("allocate t0 0x10000 0x2000\nwrite t0 0x11000 \"abcdefgh\"\ncheck\n");
  Broken vm(p.config);
  vm.flip_peek_va = 0x11000;
  model::Model model(p.config);
  RunSummary s = run_program(p, "x", vm, model, &obs, {});
  ASSERT_TRUE(s.failure);
  std::string text = format_failure(*s.failure);
  EXPECT_EQ(text,
            "vmfuzz: content_mismatch in check\n"
            "  op 2 (line 3): check\n"
            "  oracle: content_mismatch\n"
            "  task t0 page 0x11000 differs; first differing byte at 0x11007\n"
            "  -0x000000011000  61 62 63 64 65 66 67 68 00 00 00 00 00 00 00 00   (model)\n"
            "  +0x000000011000  61 62 63 64 65 66 67 e8 00 00 00 00 00 00 00 00   (vm)\n"
            "  provenance: object 7 depth 1 resident (t0 0x11007)\n");
  EXPECT_EQ(failure_json(*s.failure),
            "{\"op_index\": 2, \"op\": \"check\", \"oracle\": \"content_mismatch\", \"detail\": \"task t0 page 0x11000 "
            "differs; first differing byte at 0x11007\\n-0x000000011000  61 62 63 64 65 66 67 68 00 00 00 00 00 00 "
            "00 00   (model)\\n+0x000000011000  61 62 63 64 65 66 67 e8 00 00 00 00 00 00 00 00   (vm)\\nprovenance: "
            "object 7 depth 1 resident (t0 0x11007)\", \"signature\": \"vmfuzz: content_mismatch in check\"}");
}

TEST(Report, WhatIfBytesAreUnknownOrMissingTheDiffSaysSo) {
  std::vector<uint8_t> e = {1, 2, 3, 4}, a = {1, 9, 3}, u = {0, 0, 1, 0};
  EXPECT_EQ(first_difference(e, a, u), 1u);
  std::string d = hex_diff(0x1000e, e, a, u, "model", "vm");
  EXPECT_EQ(d,
            "-0x000000010000                                            01 02   (model)\n"
            "+0x000000010000                                            01 09   (vm)\n"
            "-0x000000010010  ?? 04 -- -- -- -- -- -- -- -- -- -- -- -- -- --   (model)\n"
            "+0x000000010010  ?? -- -- -- -- -- -- -- -- -- -- -- -- -- -- --   (vm)\n");
  EXPECT_EQ(hex_diff(0, e, e, {}, "a", "b"), "");
  EXPECT_EQ(first_difference(e, e, {}), SIZE_MAX);
}

TEST(Report, WhatIfJsonStringsHoldQuotesControlsAndHighBytes) {
  EXPECT_EQ(json_quote("a\"b\\c\nd\x01\xff"), "\"a\\\"b\\\\c\\nd\\u0001\\u00ff\"");
}

TEST(Report, WhatIfResultsArePrintedTheyAreTraceText) {
  Op op;
  OpResult r;
  op.kind = OpKind::Read;
  r.is_access = r.mmu = true;
  r.access.bytes = {0x61, 0x62};
  EXPECT_EQ(format_result(op, r), "== hex:6162");
  r.kr = r.access.kr = KERN_PROTECTION_FAILURE;
  r.access.fault_addr = 0x11000;
  EXPECT_EQ(format_result(op, r), "== hex:6162 => fault 0x11000 KERN_PROTECTION_FAILURE");
  r.access.bytes.assign(0x2000, 0x5a);
  EXPECT_EQ(format_result(op, r), "== fill:0x5a*0x2000 => fault 0x11000 KERN_PROTECTION_FAILURE");
  op.kind = OpKind::Copyout;
  OpResult c;
  c.has_addr = true;
  c.addr = 0x20123;
  EXPECT_EQ(format_result(op, c), "=> 0x20123");
  c.kr = KERN_NO_SPACE;
  EXPECT_EQ(format_result(op, c), "=> KERN_NO_SPACE");
  op.kind = OpKind::Fork;
  EXPECT_EQ(format_result(op, OpResult{}), "");
}

// --- decode_and_run: one pass, the same program and the same verdict ------------------------

// decode_with_model then run_program, and decode_and_run, on the same bytes and a fresh pair
// of subjects each: the programs must print the same, the summaries must agree.
template <class MakeVm>
bool expect_same_as_two_passes(const std::vector<uint8_t>& bytes, MakeVm make_vm, const std::string& what) {
  std::span<const uint8_t> in(bytes);
  Program two;
  {
    model::Model scratch(Decoder(in).config());
    two = decode_with_model(in, scratch);
  }
  fold_fuzz_config(two.config);
  SystemConfig cfg = Decoder(in).config();
  fold_fuzz_config(cfg);
  EXPECT_EQ(cfg, two.config);
  ExecOptions o;
  o.full_check_every = 16;
  std::vector<std::string> steps_two, steps_one;
  auto recorder = [](std::vector<std::string>& log) {
    return [&log](uint64_t i, const Op& op, Executor::Step st, const Executor&) {
      log.push_back(std::to_string(i) + " " + print_op(op) + " " + std::to_string(int(st)));
    };
  };
  auto [vm2, obs2] = make_vm(cfg);
  model::Model m2(cfg);
  RunSummary a = run_program(two, "<input>", *vm2, m2, obs2.get(), o, recorder(steps_two));
  auto [vm1, obs1] = make_vm(cfg);
  model::Model m1(cfg);
  Program one;
  RunSummary b = decode_and_run(in, cfg, *vm1, m1, obs1.get(), o, recorder(steps_one), &one);
  EXPECT_EQ(print_program(one), print_program(two)) << what;
  EXPECT_EQ(one.ops, two.ops) << what;
  EXPECT_EQ(steps_one, steps_two) << what;
  EXPECT_EQ(b.ok, a.ok) << what;
  EXPECT_EQ(b.unusable, a.unusable) << what;
  EXPECT_EQ(b.ops, a.ops) << what;
  EXPECT_EQ(bool(b.failure), bool(a.failure)) << what;
  if (a.failure && b.failure) {
    EXPECT_EQ(format_failure(*b.failure), format_failure(*a.failure)) << what;
  }
  return !a.ok;
}

std::vector<std::vector<uint8_t>> decode_and_run_inputs() {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(VMFUZZ_SOURCE_DIR) / "corpus" / "vm_diff"))
    if (e.path().extension() == ".bin") files.push_back(e.path());
  std::ranges::sort(files);
  std::vector<std::vector<uint8_t>> inputs;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    inputs.emplace_back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  // Random bytes: any input is a program (the decoder is total).
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (unsigned n = 0; n < 60; n++) {
    std::vector<uint8_t> b(40 + n * 7);
    for (auto& c : b) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      c = uint8_t(x >> 24);
    }
    inputs.push_back(std::move(b));
  }
  return inputs;
}

TEST(DecodeAndRun, WhatIfTheVmIsJudgedInOnePassTheProgramAndVerdictAreThoseOfTwo) {
  auto make = [](const SystemConfig& c) {
    Subject s = make_vm_subject(c);
    return std::pair{std::move(s.system), std::move(s.observer)};
  };
  auto inputs = decode_and_run_inputs();
  ASSERT_GE(inputs.size(), 90u);
  for (size_t i = 0; i < inputs.size(); i++) expect_same_as_two_passes(inputs[i], make, "input " + std::to_string(i));
}

TEST(DecodeAndRun, WhatIfTheSubjectFailsOrStopsAccessesTheDecoderStillSeesTheScratchModel) {
  // flip_read: a failure stops the run mid-program (the rest is decoded on a scratch
  // model); memory_error_always: every read stops with KERN_MEMORY_ERROR, which the
  // executor mirrors on its model, so the run and the decoder part ways there.
  using Knob = void (*)(Broken&);
  for (Knob knob : {Knob([](Broken& b) { b.flip_read = true; }), Knob([](Broken& b) { b.memory_error_always = true; }),
                    Knob([](Broken& b) { b.wrong_protect_code = true; })}) {
    auto make = [knob](const SystemConfig& c) {
      auto b = std::make_unique<Broken>(c);
      knob(*b);
      return std::pair{std::unique_ptr<MemorySystem>(std::move(b)), std::unique_ptr<VmObserver>()};
    };
    auto inputs = decode_and_run_inputs();
    unsigned failed = 0;
    for (size_t i = 0; i < inputs.size(); i++)
      failed += expect_same_as_two_passes(inputs[i], make, "input " + std::to_string(i));
    EXPECT_GT(failed, 0u) << "the broken subject must fail some inputs, or this tests nothing";
  }
}

// --- The oracle table: every oracle fires on a broken state, under its own name ----------
//
// One breaker per row of harness/exec/oracles.def, chosen by a switch with no default: a new
// oracle without a breaker here does not compile (-Wswitch). Comparison oracles break the
// Broken subject; the VM's, the pmap's and the machine's invariants corrupt one field, PTE
// or TLB entry of a real kernel (restored before it is destroyed) and run the checkers.

/// A kernel with shared COW pages, a copy object and a read-only mapping: t0 and t1 after
/// a COPY fork, t1's first page copied up, t0's second page mapped read-only.
std::unique_ptr<vm::Kernel> cow_kernel() {
  SystemConfig cfg;
  cfg.frames = 128;
  auto k = std::make_unique<vm::Kernel>(cfg);
  k->task_create(0);
  uint64_t a = 0x10000;
  EXPECT_EQ(k->allocate(0, &a, 4 * kPageSize, false), KERN_SUCCESS);
  for (unsigned i = 0; i < 4; i++) {
    uint8_t b = uint8_t(0x40 + i);
    EXPECT_EQ(k->write(0, 0x10000 + i * kPageSize, {&b, 1}, 0).kr, KERN_SUCCESS);
  }
  k->fork(0, 1);
  uint8_t b = 0x99;
  EXPECT_EQ(k->write(1, 0x10000, {&b, 1}, 0).kr, KERN_SUCCESS);
  EXPECT_EQ(k->read(0, 0x11000, 1, 0).kr, KERN_SUCCESS);
  return k;
}

std::set<Oracle> found_by_checkers(const vm::Kernel& k, bool teardown = false) {
  std::vector<Violation> v;
  if (teardown) {
    check_teardown(k, v);
  } else {
    check_vm_invariants(k, v);
    check_tlb_coherence(k, v);
  }
  std::set<Oracle> out;
  for (const auto& x : v) out.insert(x.oracle);
  return out;
}

/// The leaf PTE of task t's va, read from the simulated frames.
uint64_t* leaf_pte(vm::Kernel& k, unsigned t, uint64_t va) {
  auto& mem = const_cast<machine::PhysicalMemory&>(k.machine().memory());
  uint64_t table = k.task_pmap(t)->cr3();
  for (int level = 3; level >= 0; level--) {
    auto* entries = reinterpret_cast<uint64_t*>(mem.frame(machine::pfn_t(table >> 12)));
    uint64_t* e = &entries[(va >> (12 + 9 * level)) & 511];
    if (!(*e & machine::PTE_P)) return nullptr;
    if (level == 0) return e;
    table = *e & machine::PTE_FRAME_MASK;
  }
  return nullptr;
}

/// Run `breaker` on a fresh COW kernel, then restore, and return what the checkers saw.
std::set<Oracle> with_broken_kernel(const std::function<std::function<void()>(vm::Kernel&)>& breaker,
                                    bool teardown = false) {
  auto k = cow_kernel();
  EXPECT_TRUE(found_by_checkers(*k).empty()) << "the healthy kernel must pass";
  std::function<void()> restore = breaker(*k);
  std::set<Oracle> seen = found_by_checkers(*k, teardown);
  restore();
  EXPECT_TRUE(found_by_checkers(*k).empty()) << "the restored kernel must pass";
  return seen;
}

/// The first object (creation order) with at least one resident page.
vm::VmObject* object_with_pages(vm::Kernel& k) {
  auto& sys = const_cast<vm::VmSystem&>(k.system());
  for (auto& [id, o] : sys.objects)
    if (o->resident_page_count > 0) return o;
  return nullptr;
}

std::optional<Oracle> oracle_of_run(const std::string& trace, void (*knob)(Broken&), ExecOptions o = {}) {
  RunSummary s = run_broken(trace, knob, nullptr, o);
  if (!s.failure) return std::nullopt;
  return s.failure->oracle;
}

// A held manager's request in flight (docs/concurrency.md): t0 reads m0's first page.
const char* const kHeldRead =
    "object m0 0x2000 none persist pat:0x11*0x2000\nmap t0 0x40000 0x2000 m0 0x0 share\nhold m0\n"
    "read t0 0x40000 0x10\n";

/// The first oracle of a run of `trace` on the real VM with race bug `bug` switched on
/// (through `wrap`, when given, a decorator of the kernel).
std::optional<Oracle> oracle_of_vm_run(const std::string& trace, std::optional<bugs::Bug> bug,
                                       const std::function<std::unique_ptr<MemorySystem>(MemorySystem&)>& wrap = {},
                                       ExecOptions options = {}) {
  Program p = parse(trace);
  Subject s = make_vm_subject(p.config);
  std::unique_ptr<MemorySystem> wrapped = wrap ? wrap(*s.system) : nullptr;
  model::Model model(p.config);
  if (bug) bugs::set_bug(*bug, true);
  RunSummary r = run_program(p, "test.trace", wrapped ? *wrapped : *s.system, model, s.observer.get(), options);
  if (bug) bugs::set_bug(*bug, false);
  if (!r.failure) return std::nullopt;
  return r.failure->oracle;
}

/// A VM that reports its threads' runs under other numbers.
class RenumberedSteps final : public ForwardingSystem {
 public:
  using ForwardingSystem::ForwardingSystem;
  std::vector<ThreadStep> take_steps() override {
    std::vector<ThreadStep> s = in_.take_steps();
    for (ThreadStep& x : s) x.thread += 100;
    return s;
  }
};

/// A VM whose drain gives up while a thread is in flight.
class StuckDrain final : public ForwardingSystem {
 public:
  using ForwardingSystem::ForwardingSystem;
  Quiesce quiesce_step() override { return Quiesce::Deadlock; }
};

/// The oracles a broken state of `o` makes fire; nullopt for rows of other targets.
std::optional<std::set<Oracle>> fire(Oracle o) {
  using S = std::set<Oracle>;
  auto one = [](std::optional<Oracle> x) { return x ? S{*x} : S{}; };
  switch (o) {
    case Oracle::result_mismatch:
      return one(oracle_of_run("allocate t0 0x10000 0x1000\nread t0 0x10000 4\n", [](Broken& b) { b.flip_read = true; }));
    case Oracle::assertion:
      return one(oracle_of_run("allocate t0 0x10000 0x1000\nread t0 0x10000 1 == hex:01\n", [](Broken&) {}));
    case Oracle::region_mismatch:
      return one(oracle_of_run("allocate t0 0x10000 0x1000\ncheck\n", [](Broken& b) { b.extra_region = true; }));
    case Oracle::content_mismatch:
      return one(oracle_of_run("allocate t0 0x10000 0x2000\nwrite t0 0x11000 \"x\"\ncheck\n",
                               [](Broken& b) { b.flip_peek_va = 0x11000; }));
    case Oracle::object_store_mismatch:
      return one(oracle_of_run("object m0 0x1000 none persist fill:0x11*0x10\ncheck\n",
                               [](Broken& b) { b.flip_object_peek = true; }));
    case Oracle::fault_loop: {
      ScriptedObserver obs;
      obs.loop = true;
      Broken vm(SystemConfig{});
      RunSummary s = run("allocate t0 0x10000 0x1000\nprotect t0 0x10000 0x1000 r--\nwrite t0 0x10000 \"a\"\n", vm, &obs);
      return s.failure ? S{s.failure->oracle} : S{};
    }
    case Oracle::ref_counts:
      return with_broken_kernel([](vm::Kernel& k) {
        vm::VmObject* x = object_with_pages(k);
        x->ref_count++;
        return std::function<void()>([x] { x->ref_count--; });
      });
    case Oracle::resident_counts:
      return with_broken_kernel([](vm::Kernel& k) {
        vm::VmObject* x = object_with_pages(k);
        x->resident_page_count++;
        return std::function<void()>([x] { x->resident_page_count--; });
      });
    case Oracle::page_in_one_object:
    case Oracle::frames_accounted:
      return with_broken_kernel([o](vm::Kernel& k) {
        auto& sys = const_cast<vm::VmSystem&>(k.system());
        std::vector<vm::VmPage*> ps;
        for (vm::VmPage* p : sys.page_of_frame)
          if (p != nullptr) ps.push_back(p);
        if (o == Oracle::page_in_one_object) {  // two pages on one frame
          machine::pfn_t own = ps[1]->frame;
          ps[1]->frame = ps[0]->frame;
          return std::function<void()>([p = ps[1], own] { p->frame = own; });
        }
        auto& mem = const_cast<machine::PhysicalMemory&>(k.machine().memory());
        machine::pfn_t f = ps[0]->frame;  // a page's frame handed back as free
        mem.free_frame(f);
        return std::function<void()>([&mem, f] { EXPECT_EQ(mem.alloc_frame(machine::FrameUse::VmPage), f); });
      });
    case Oracle::device_pages:
      return with_broken_kernel([](vm::Kernel& k) {
        vm::VmPage* p = nullptr;
        for (vm::VmPage* q : const_cast<vm::VmSystem&>(k.system()).page_of_frame)
          if (q != nullptr && p == nullptr) p = q;
        p->private_page = true;  // a device page in an ordinary object
        return std::function<void()>([p] { p->private_page = false; });
      });
    case Oracle::copy_object_shape:
      return with_broken_kernel([](vm::Kernel& k) {
        vm::VmObject* x = object_with_pages(k);
        vm::VmObject* old = x->copy;
        x->copy = x;  // its own copy: C.shadow != obj
        return std::function<void()>([x, old] { x->copy = old; });
      });
    case Oracle::no_chain_cycles:
      return with_broken_kernel([](vm::Kernel& k) {
        vm::VmObject* x = object_with_pages(k);
        vm::VmObject* old = x->shadow;
        x->shadow = x;
        return std::function<void()>([x, old] { x->shadow = old; });
      });
    case Oracle::no_cow_breach:
      return with_broken_kernel([](vm::Kernel& k) {
        uint64_t* pte = leaf_pte(k, 0, 0x11000);  // shared with t1 by the fork: read-only
        EXPECT_NE(pte, nullptr);
        EXPECT_FALSE(*pte & machine::PTE_RW);
        *pte |= machine::PTE_RW;
        return std::function<void()>([pte] { *pte &= ~machine::PTE_RW; });
      });
    case Oracle::no_stale_mapping:
      return with_broken_kernel([](vm::Kernel& k) {
        uint64_t* pte = leaf_pte(k, 0, 0x11000);
        uint64_t old = *pte;
        machine::pfn_t other = machine::pfn_t(((*leaf_pte(k, 1, 0x10000)) & machine::PTE_FRAME_MASK) >> 12);
        *pte = (old & ~machine::PTE_FRAME_MASK) | machine::pte_for_frame(other);  // t1's private page
        return std::function<void()>([pte, old] { *pte = old; });
      });
    case Oracle::pv_consistent:
      return with_broken_kernel([](vm::Kernel& k) {
        uint64_t* pte = leaf_pte(k, 0, 0x11000);
        uint64_t old = *pte;
        *pte &= ~machine::PTE_P;  // the pv entry now names a PTE that maps nothing
        return std::function<void()>([pte, old] { *pte = old; });
      });
    case Oracle::tlb_coherent:
      return with_broken_kernel([](vm::Kernel& k) {
        auto& m = const_cast<machine::Machine&>(k.machine());
        uint64_t* pte = leaf_pte(k, 0, 0x11000);
        machine::TlbEntry e;
        e.vpn = 0x11000 >> 12;
        e.frame = machine::pfn_t((*pte & machine::PTE_FRAME_MASK) >> 12);
        e.writable = true, e.user = true, e.dirty = true;  // more than the read-only PTE grants
        m.cpu(0).tlb.insert(e);  // cpu 0 runs t0: its last op was t0's read
        return std::function<void()>([&m] { m.cpu(0).tlb.invalidate(0x11000 >> 12); });
      });
    case Oracle::teardown:
      return with_broken_kernel([](vm::Kernel&) { return std::function<void()>([] {}); }, true);  // t0, t1 live
    case Oracle::linearization:
      return one(oracle_of_vm_run(std::string(kHeldRead) + "reply m0 0 supply\nrun 1\n", std::nullopt,
                                  [](MemorySystem& k) { return std::make_unique<RenumberedSteps>(k); }));
    case Oracle::paging_accounting:
      return one(oracle_of_vm_run(std::string(kHeldRead) + "reply m0 0 unavailable\n", bugs::Bug::AbsentCountLeak));
    case Oracle::wait_target:
      return one(oracle_of_vm_run(std::string(kHeldRead) + "reply m0 0 supply\n", bugs::Bug::LostWakeup));
    case Oracle::deadlock:
      return one(oracle_of_vm_run(kHeldRead, std::nullopt,
                                  [](MemorySystem& k) { return std::make_unique<StuckDrain>(k); }));
    case Oracle::orders: {
      // A linearization oracle that lost its teeth (runs not compared) hides a data_error
      // taken for zero fill; the all-orders check finds no order that reads zeros there.
      ExecOptions eo;
      eo.check_orders = true;
      eo.unchecked_runs_for_test = true;
      return one(oracle_of_vm_run(std::string(kHeldRead) + "reply m0 0 error\n", bugs::Bug::DataErrorZeroFills, {},
                                  eo));
    }
    // Rows of the mmu and codec fuzzers: judged by those targets, on their own inputs.
    case Oracle::access:
    case Oracle::fault:
    case Oracle::tlb:
    case Oracle::cr3:
    case Oracle::pv:
    case Oracle::attributes:
    case Oracle::frames:
    case Oracle::enter:
    case Oracle::shortage:
    case Oracle::leak:
    case Oracle::decoder_total:
    case Oracle::round_trip:
    case Oracle::text_round_trip:
      return std::nullopt;
  }
  return S{};
}

TEST(OracleTable, EveryDifferentialOracleFiresOnABrokenStateUnderItsOwnName) {
  for (const OracleSpec& row : oracle_table()) {
    std::optional<std::set<Oracle>> seen = fire(row.oracle);
    if (row.target != OracleTarget::VmDiff) {
      EXPECT_FALSE(seen) << row.name << ": a row of another target has a breaker here";
      continue;
    }
    ASSERT_TRUE(seen) << row.name << ": no breaker";
    std::string names;
    for (Oracle x : *seen) names += std::string(" ") + oracle_name(x);
    EXPECT_TRUE(seen->count(row.oracle)) << row.name << " did not fire; fired:" << names;
  }
}

TEST(OracleTable, DocsShowTheTable) {
  const auto shown = vmfuzz::test::doc_block(std::string(VMFUZZ_SOURCE_DIR) + "/docs/oracles.md", "oracle table");
  ASSERT_TRUE(shown) << "docs/oracles.md: no '<!-- oracle table: begin -->' ... '<!-- oracle table: end -->'";
  EXPECT_EQ(*shown, oracle_table_markdown())
      << "docs/oracles.md's table differs from harness/exec/oracles.def; the table should read:\n"
      << oracle_table_markdown();
}

TEST(OracleTable, NamesAreUniqueAndFoundAgain) {
  std::set<std::string> names;
  for (const OracleSpec& row : oracle_table()) {
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
    EXPECT_EQ(oracle_from_name(row.name), row.oracle);
  }
  EXPECT_EQ(oracle_from_name("no_such_oracle"), std::nullopt);
}

}  // namespace
}  // namespace vmfuzz::harness
