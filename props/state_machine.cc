// state_machine.cc — the rc::state property: random programs over the full op set of
// docs/language.md, run op by op through the differential Executor (the VM judged against the
// reference model), shrunk to a minimal trace on failure.
//
// Theory of operation
// -------------------
// Each property draws a machine configuration, then rc::state::check generates a command
// sequence from the model state (OpState: names, history, bias) and
// runs it on a PropSystem: every command is one op, stepped through harness::Executor, so
// every op compares results and runs the per-op oracles (TLB coherence, fault loops); the
// end of the sequence is the executor's full check and teardown (zero frames, zero
// objects).
//
// The variants differ only in their bias (prop_support.h): mixed programs; deep chains
// (fork + write + terminate on four pages); many copies; memory objects; and memory
// pressure (small frame counts, so that pageout runs).
//
// The self-test proves the machinery can fail: a decorator that corrupts one byte after
// every successful vm_copy must be caught, shrunk to a short trace, and the trace written
// must replay: cleanly against the real VM, and failing against the decorated one.
#include <array>
#include <fstream>
#include <sstream>

#include "harness/exec/report.h"
#include "harness/lang/op_shapes.h"
#include "harness/lang/text.h"
#include "props/support/prop_support.h"
#include "vm/kernel.h"

namespace vmfuzz::props {
namespace {

namespace gen = rc::gen;

rc::Gen<SystemConfig> gen_config(bool pressure) {
  return gen::apply(
      [](unsigned frames, unsigned cpus, unsigned tlb, unsigned cache) {
        SystemConfig c;
        c.frames = frames, c.cpus = cpus, c.tlb = tlb, c.cache = cache;
        return c;
      },
      pressure ? gen::element(96u, 128u, 192u) : gen::element(1024u, 512u, 2048u), gen::inRange(1u, 4u),
      gen::element(16u, 1u, 2u, 4u, 64u), gen::inRange(0u, 9u));
}

using GenCommand = rc::Gen<std::shared_ptr<const rc::state::Command<OpState, PropSystem>>> (*)(const OpState&);

// One run of the state machine with `bias`; wrap (may be empty) decorates the VM.
void state_machine(const Bias& bias, bool pressure, const std::string& property, const Decorator& wrap = {},
                   GenCommand gen = &gen_command) {
  SystemConfig cfg = *gen_config(pressure);
  PropSystem sys(cfg, property, wrap);
  OpState s0(cfg, bias);
  rc::state::check(s0, sys, gen);
  sys.finish();
  const auto& c = sys.kernel().counters();
  RC_CLASSIFY(sys.ops().size() >= 30, "30+ ops");
  RC_CLASSIFY(c.collapses > 0, "collapse");
  RC_CLASSIFY(c.bypasses > 0, "bypass");
  RC_CLASSIFY(c.pushes > 0, "push to copy object");
  RC_CLASSIFY(c.data_requests > 0, "request to a held manager");
  RC_CLASSIFY(c.data_requests > 2, "3+ requests to held managers");
}

VMFUZZ_PROP(StateMachine, MixedPrograms, 1000, ()) { state_machine(Bias::mixed(), false, current_property()); }

VMFUZZ_PROP(StateMachine, DeepChains, 1000, ()) { state_machine(Bias::chains(), false, current_property()); }

VMFUZZ_PROP(StateMachine, ManyCopies, 1000, ()) { state_machine(Bias::copies(), false, current_property()); }

VMFUZZ_PROP(StateMachine, MemoryObjects, 1000, ()) {
  state_machine(Bias::objects(), false, current_property());
}

// Q: do snapshots (copy objects of shared regions) keep their bytes through pushes,
// pageouts of pushed or zero-filled pages and later writes, with few frames?
VMFUZZ_PROP(StateMachine, SnapshotsUnderPressure, 500, ()) {
  state_machine(Bias::snapshots(), true, current_property());
}

VMFUZZ_PROP(StateMachine, MemoryPressure, 500, ()) {
  state_machine(Bias::mixed(), true, current_property());
}

// Q: do accesses that wait for held managers, answered late, out of order, with
// data_unavailable or data_error, and scheduled in any order, give results some
// per-page linearization explains, with every step invariant holding? (docs/concurrency.md)
VMFUZZ_PROP(StateMachine, ConcurrentAccesses, 1000, ()) {
  state_machine(Bias::concurrency(), false, current_property());
}

VMFUZZ_PROP(StateMachine, ConcurrentAccessesUnderPressure, 500, ()) {
  state_machine(Bias::concurrency(), true, current_property());
}

// Q: do the shapes VM bugs need (harness/lang/op_shapes.h: fork chains, copy objects under
//    pressure, kernel writes into shared object mappings, the edges of user space, ...),
//    mixed into ordinary programs, with or without memory pressure, keep VM and model equal?
VMFUZZ_PROP(StateMachine, ShapedSequences, 500, ()) {
  const bool pressure = *gen::arbitrary<bool>();
  state_machine(Bias::mixed(), pressure, current_property(), {}, &gen_shaped_command);
}

// Q: do the rapidcheck generators make programs of the three classes that no engine
//    reached before (op_shapes.h: classify_shapes)? Counted over generated command
//    sequences, the state machine's generators against the shaped ones.
TEST(ShapedSequences, GeneratorsMakeAllThreeMissedClasses) {
  auto count = [](GenCommand g) {
    std::array<unsigned, 3> n{};
    for (uint64_t seed = 0; seed < 100; seed++) {
      SystemConfig cfg;
      OpState s0(cfg, Bias::mixed());
      const auto cmds = rc::state::gen::commands(s0, g)(rc::Random(seed + 1), 100).value();
      const ShapeClasses c = classify_shapes(ops_of(cmds));
      n[0] += c.edge, n[1] += c.pageout_collapse, n[2] += c.kernel_write_file;
    }
    return n;
  };
  const auto plain = count(&gen_command), shaped = count(&gen_shaped_command);
  std::cout << "of 100 generated programs: edge " << plain[0] << ", pageout_collapse " << plain[1]
            << ", kernel_write_file " << plain[2] << " (gen_command)\n";
  std::cout << "of 100 generated programs: edge " << shaped[0] << ", pageout_collapse " << shaped[1]
            << ", kernel_write_file " << shaped[2] << " (gen_shaped_command)\n";
  for (unsigned k = 0; k < 3; k++) EXPECT_GE(shaped[k], 5u) << "class " << k << " in under 5% of the programs";
}

// ---------------------------------------------------------------------------------------
// Self-test: an injected bug must be found and shrunk.

/// A VM decorator with a bug: after a successful vm_copy of a non-empty range, the first
/// destination byte is flipped (through the MMU, as a stray store would).
class CorruptAfterCopy final : public ForwardingSystem {
 public:
  using ForwardingSystem::ForwardingSystem;
  kern_return_t vm_copy(unsigned t, uint64_t src, uint64_t size, uint64_t dst) override {
    kern_return_t kr = in_.vm_copy(t, src, size, dst);
    if (kr == KERN_SUCCESS && size > 0) {
      Access a = in_.read(t, dst, 1, 0);
      if (a.kr == KERN_SUCCESS && a.bytes.size() == 1) {
        uint8_t b = uint8_t(a.bytes[0] ^ 0x5a);
        in_.write(t, dst, std::span<const uint8_t>(&b, 1), 0);
      }
    }
    return kr;
  }
};

std::unique_ptr<MemorySystem> corrupt(MemorySystem& k) { return std::make_unique<CorruptAfterCopy>(k); }

// Q: if a vm_copy corrupts one byte, does the state machine notice, shrink the program to
//    a few ops, and write a trace that replays to the same failure?
TEST(SelfTest, CorruptedVmCopyIsFoundAndShrunk) {
  const std::string property = "SelfTest.CorruptedVmCopy";
  rc::detail::TestParams params;  // fixed: independent of RC_PARAMS, deterministic
  params.seed = 0x766d66757a7aull;
  params.maxSuccess = 500;
  params.maxSize = 100;
  rc::detail::TestMetadata metadata;
  metadata.id = property;
  metadata.description = property;
  QuietListener quiet;
  const auto result = rc::detail::checkProperty(
      rc::detail::toProperty([&] { state_machine(Bias::mixed(), false, property, &corrupt); }), metadata, params,
      quiet, {});
  std::ostringstream msg;
  rc::detail::printResultMessage(result, msg);
  ASSERT_TRUE(result.is<rc::detail::FailureResult>()) << "the injected bug was not found:\n" << msg.str();
  std::cout << "rapidcheck's report of the injected bug (expected):\n" << msg.str() << "\n";

  // The counterexample file holds the shrunk program.
  std::ifstream f(counterexample_path(property));
  ASSERT_TRUE(f) << "no counterexample at " << counterexample_path(property);
  std::stringstream text;
  text << f.rdbuf();
  Program p;
  ParseError err;
  ASSERT_TRUE(parse_trace(text.str(), counterexample_path(property), &p, &err)) << err.what();
  std::cout << "counterexample trace:\n" << text.str();
  EXPECT_LE(p.ops.size(), 4u) << "not shrunk to a short trace";
  bool has_copy = false;
  for (const Op& op : p.ops) has_copy |= op.kind == OpKind::VmCopy;
  EXPECT_TRUE(has_copy);

  // It replays cleanly on the real VM (the bug is the decorator's) ...
  {
    harness::Subject vm = harness::make_vm_subject(p.config), model = harness::make_model_subject(p.config);
    auto sum = harness::run_program(p, "counterexample", *vm.system, *model.system, vm.observer.get(), {});
    EXPECT_TRUE(sum.ok) << (sum.failure ? harness::format_failure(*sum.failure) : sum.unusable_reason);
  }
  // ... and fails the same way on the decorated one.
  {
    harness::Subject vm = harness::make_vm_subject(p.config), model = harness::make_model_subject(p.config);
    CorruptAfterCopy bad(*vm.system);
    auto sum = harness::run_program(p, "counterexample", bad, *model.system, vm.observer.get(), {});
    ASSERT_TRUE(sum.failure.has_value());
    std::cout << "replayed against the decorated VM:\n" << harness::format_failure(*sum.failure);
    EXPECT_TRUE(sum.failure->oracle == Oracle::content_mismatch || sum.failure->oracle == Oracle::result_mismatch)
        << oracle_name(sum.failure->oracle);
  }
}

}  // namespace
}  // namespace vmfuzz::props
