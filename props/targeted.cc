// targeted.cc — properties aimed at one mechanism each: copy isolation, collapse and
// bypass, pageout and page-in, pmap_collect and TLB flushes, teardown, determinism and
// N-version runs.
//
// Theory of operation
// -------------------
// Every property runs generated programs through PropSystem (the differential Executor:
// VM against reference model, per-op oracles, full check and teardown at the end), and
// adds the one claim it is about, judged on the VM *and* on the model with side-effect
// free views (peek_page), so that a claim both sides get wrong is still caught:
//
//   CopyIsolation.*      for each kind of copy (fork COPY, vm_read + copyout, vm_copy, a
//                        copied memory object mapping) and both directions: after the
//                        copy, ops that may not name the snapshot's holder leave the
//                        snapshot unchanged; ops only on the snapshot's holder leave every
//                        other task (and object store) unchanged. Setup first spreads the
//                        source over N tasks by forks and writes, so chains are shared.
//   Collapse.*           programs biased to fork/write/terminate chains run with collapse
//                        and bypass on, then off (VmTunables): the results and contents
//                        agree, the counters moved in some cases (classified), and never
//                        when switched off.
//   Pageout.RoundTrip    pageout (all, or N) between generated ops changes no task's or
//                        object's contents.
//   Pmap.*               pmap_collect of every task pmap (both collect modes) and a flush
//                        of every TLB change nothing a task can see, and the program goes
//                        on (refaults) to agree with the model.
//   Teardown.*           after the executor's teardown no object, no owned frame and no
//                        page-table frame remains.
//   Determinism.*        the same program twice: the same results, contents and counters.
//   NVersion.*           one program under several configurations (frames, CPUs, TLB
//                        size, cache bound, collapse/bypass switches): identical results
//                        and contents.
#include <map>
#include <sstream>

#include "harness/exec/report.h"
#include "harness/lang/text.h"
#include "props/support/prop_support.h"
#include "vm/kernel.h"
#include "vm/pmap/pmap.h"

namespace vmfuzz::props {
namespace {

namespace gen = rc::gen;
using Step = harness::Executor::Step;


Op op_allocate(unsigned t, uint64_t addr, uint64_t size) {
  Op op;
  op.kind = OpKind::Allocate, op.task = uint8_t(t), op.addr = addr, op.size = size;
  return op;
}

Op op_write_pat(unsigned t, uint64_t addr, uint8_t seed, uint64_t len) {
  Op op;
  op.kind = OpKind::Write, op.task = uint8_t(t), op.addr = addr;
  op.data.form = DataSpec::Form::Pat, op.data.value = seed, op.data.length = len;
  return op;
}

Op op_simple(OpKind k, unsigned t = 0, unsigned t2 = 0) {
  Op op;
  op.kind = k, op.task = uint8_t(t), op.task2 = uint8_t(t2);
  return op;
}

unsigned lowest(uint16_t mask) {
  for (unsigned i = 0; i < kMaxNames; i++)
    if (mask >> i & 1) return i;
  return kMaxNames;
}

// Generated commands from state s (length scaled down for setup phases).
OpCommands draw_commands(const OpState& s, double scale = 1.0) {
  return *gen::scale(scale, rc::state::gen::commands(s, &gen_command));
}

// The trace line asserting task t's bytes at [lo, hi) (so that a replay fails where the
// property did, even if the model agreed with the VM).
std::string read_assertion(unsigned t, uint64_t lo, const std::vector<uint8_t>& bytes) {
  Op op;
  op.kind = OpKind::Read, op.task = uint8_t(t), op.addr = lo, op.size = bytes.size();
  op.expect.has_bytes = true;
  // The shortest exact form: a fill, a pattern, or hex.
  DataSpec d;
  d.value = bytes.empty() ? 0 : bytes[0];
  d.length = bytes.size();
  d.form = DataSpec::Form::Fill;
  if (bytes.empty() || d.materialize() != bytes) d.form = DataSpec::Form::Pat;
  if (bytes.empty() || d.materialize() != bytes) d = DataSpec{DataSpec::Form::Hex, bytes, 0, 0};
  op.expect.bytes = d;
  return print_op(op);
}

// Read assertions of the first page whose bytes differ between two images of task t
// (expected: `was`), so that a replay fails where the property did.
std::vector<std::string> changed_page_assertions(unsigned t, const TaskImage& was, const TaskImage& now) {
  std::map<uint64_t, std::vector<uint8_t>> a(was.pages.begin(), was.pages.end()), b(now.pages.begin(), now.pages.end());
  std::vector<uint64_t> pages;
  for (const auto& [va, bytes] : a) pages.push_back(va);
  for (const auto& [va, bytes] : b) pages.push_back(va);
  std::ranges::sort(pages);
  for (uint64_t va : pages) {
    std::vector<uint8_t> x = a.count(va) ? a[va] : std::vector<uint8_t>(kPageSize, 0);
    std::vector<uint8_t> y = b.count(va) ? b[va] : std::vector<uint8_t>(kPageSize, 0);
    if (x != y) return {"# the page as it was before the ops that did not name t" + std::to_string(t) + ":",
                        read_assertion(t, va, x)};
  }
  return {};
}

// Images of `tasks` on one side, leaving out what `model` (if given) marks unknown.
std::map<unsigned, TaskImage> images(const MemorySystem& side, uint16_t tasks, const MemorySystem* model = nullptr) {
  std::map<unsigned, TaskImage> out;
  for (unsigned t = 0; t < kMaxNames; t++)
    if (tasks >> t & 1) out[t] = task_image(side, t, model);
  return out;
}

std::map<unsigned, std::vector<std::pair<uint64_t, std::vector<uint8_t>>>> object_images(
    const MemorySystem& side, uint16_t objects, const MemorySystem& model) {
  std::map<unsigned, std::vector<std::pair<uint64_t, std::vector<uint8_t>>>> out;
  for (unsigned m = 0; m < kMaxNames; m++)
    if (objects >> m & 1) out[m] = object_image(side, m, &model);
  return out;
}

// The first task whose image differs, or -1.
int first_changed(const std::map<unsigned, TaskImage>& a, const std::map<unsigned, TaskImage>& b) {
  for (const auto& [t, img] : a) {
    auto it = b.find(t);
    if (it == b.end() || !(it->second == img)) return int(t);
  }
  return -1;
}

// ---------------------------------------------------------------------------------------
// Copy isolation.

enum class CopyKind { Fork, VmRead, VmCopy, MapCopy };
const char* copy_kind_name(CopyKind k) {
  switch (k) {
    case CopyKind::Fork: return "fork COPY";
    case CopyKind::VmRead: return "vm_read + copyout";
    case CopyKind::VmCopy: return "vm_copy";
    case CopyKind::MapCopy: return "map copy of a memory object";
  }
  return "?";
}

struct Snapshot {
  unsigned task = 0;           // holder of the snapshot
  uint64_t lo = 0, hi = 0;     // its range
  std::vector<uint8_t> bytes;  // contents at copy time
};

// `both` (may be empty) decorates the VM and the model alike (the self-test's shared bug).
void copy_isolation(CopyKind kind, const std::string& property, const Decorator& both = {}) {
  SystemConfig cfg;
  cfg.cpus = *gen::inRange(1u, 3u);
  cfg.tlb = *gen::element(16u, 2u);
  PropSystem sys(cfg, property, both, {}, both);
  const bool others_change = *gen::arbitrary<bool>();
  RC_TAG(copy_kind_name(kind), others_change ? "others change, snapshot must not" : "snapshot changes, others must not");

  // 1. Setup: t0 holds 8 pages with a pattern; forks and writes spread it over N tasks.
  const unsigned npages = *gen::inRange(1u, 5u);
  const uint64_t size = npages * kPageSize;
  OpState s(cfg, Bias::setup());
  run_fixed(sys, s, op_allocate(0, kWindow, 8 * kPageSize));
  run_fixed(sys, s, op_write_pat(0, kWindow, *gen::arbitrary<uint8_t>(), 8 * kPageSize));
  run_commands(sys, s, draw_commands(s, 0.3));

  // 2. The copy.
  Snapshot snap;
  Bias phase = Bias::mixed();
  auto free_task = [&] { return lowest(uint16_t(~s.names.tasks_mask())); };
  auto take = [&](unsigned t, uint64_t lo, uint64_t hi) {
    snap.task = t, snap.lo = lo, snap.hi = hi;
    snap.bytes = range_image(sys.model(), t, lo, hi);
    if (range_image(sys.vm(), t, lo, hi) != snap.bytes) sys.fail("the snapshot differs right after the copy");
  };
  switch (kind) {
    case CopyKind::Fork: {
      unsigned child = free_task();
      if (child == kMaxNames) RC_DISCARD("no free task");
      run_fixed(sys, s, op_simple(OpKind::Fork, 0, child));
      take(child, kWindow, kWindow + size);
      break;
    }
    case CopyKind::VmRead: {
      unsigned c = lowest(uint16_t(~s.names.copies_mask()));
      Op vr;
      vr.kind = OpKind::VmRead, vr.task = 0, vr.addr = kWindow, vr.size = size, vr.copy = uint8_t(c);
      snap.bytes = range_image(sys.model(), 0, kWindow, kWindow + size);
      run_fixed(sys, s, vr);
      RC_ASSERT(sys.exec().model_result().kr == KERN_SUCCESS);
      if (others_change) {
        // The handle alone holds the snapshot while the others change.
        Bias b = phase;
        b.forbidden_copies = uint16_t(1u << c);
        s.bias = std::make_shared<const Bias>(b);
        run_commands(sys, s, draw_commands(s, 0.5));
      }
      unsigned tx = free_task();
      if (tx == kMaxNames) RC_DISCARD("no free task");
      run_fixed(sys, s, op_simple(OpKind::Task, tx));
      Op co;
      co.kind = OpKind::Copyout, co.task = uint8_t(tx), co.copy = uint8_t(c);
      run_fixed(sys, s, co);
      RC_ASSERT(sys.exec().model_result().kr == KERN_SUCCESS);
      uint64_t base = sys.exec().model_result().addr;
      std::vector<uint8_t> at_read = snap.bytes;
      take(tx, base, base + size);
      if (snap.bytes != at_read) sys.fail("the handle's contents changed between vm_read and copyout",
                                           {read_assertion(tx, base, at_read)});
      break;
    }
    case CopyKind::VmCopy: {
      Op vc;
      vc.kind = OpKind::VmCopy, vc.task = 0, vc.addr = kWindow, vc.size = size, vc.addr2 = kWindow + 4 * kPageSize;
      std::vector<uint8_t> src = range_image(sys.model(), 0, kWindow, kWindow + size);
      run_fixed(sys, s, vc);
      RC_ASSERT(sys.exec().model_result().kr == KERN_SUCCESS);
      take(0, kWindow + 4 * kPageSize, kWindow + 4 * kPageSize + size);
      if (snap.bytes != src) sys.fail("vm_copy did not copy", {read_assertion(0, snap.lo, src)});
      // t0 holds both sides: only fenced writes may touch it.
      phase.fence_task = 0;
      if (others_change) phase.fence_lo = kWindow, phase.fence_hi = kWindow + size;
      else phase.fence_lo = snap.lo, phase.fence_hi = snap.hi;
      break;
    }
    case CopyKind::MapCopy: {
      unsigned m = lowest(uint16_t(~s.names.objects_mask()));
      Op ob;
      ob.kind = OpKind::Object, ob.object = uint8_t(m), ob.size = size;
      ob.strategy = *gen::element(CopyStrategy::Delay, CopyStrategy::None, CopyStrategy::Call);
      ob.persist = *gen::arbitrary<bool>();
      ob.data.form = DataSpec::Form::Pat, ob.data.value = *gen::arbitrary<uint8_t>(), ob.data.length = size;
      run_fixed(sys, s, ob);
      // A shared mapping in t0, written through, so the kernel holds dirty pages.
      Op sh;
      sh.kind = OpKind::Map, sh.task = 0, sh.anywhere = true, sh.size = size, sh.object = uint8_t(m), sh.share = true;
      run_fixed(sys, s, sh);
      uint64_t shared_at = sys.exec().model_result().addr;
      if (sys.exec().model_result().kr == KERN_SUCCESS)
        run_fixed(sys, s, op_write_pat(0, shared_at + *gen::inRange<uint64_t>(0, size), 0x33, 16));
      unsigned ts = free_task();
      if (ts == kMaxNames) RC_DISCARD("no free task");
      run_fixed(sys, s, op_simple(OpKind::Task, ts));
      Op cp = sh;
      cp.task = uint8_t(ts), cp.share = false;
      run_fixed(sys, s, cp);
      RC_ASSERT(sys.exec().model_result().kr == KERN_SUCCESS);
      uint64_t base = sys.exec().model_result().addr;
      take(ts, base, base + size);
      break;
    }
  }

  // Read the snapshot through the MMU: its holder's page tables and TLB now map the pages
  // it shares with the source, so a stale mapping left by the phase below is observable.
  Op through;
  through.kind = OpKind::Read, through.task = uint8_t(snap.task), through.addr = snap.lo, through.size = snap.hi - snap.lo;
  run_fixed(sys, s, through);

  // 3. The other side changes (or the snapshot does), under the fence.
  uint16_t live = s.names.tasks_mask();
  uint16_t compare = 0;  // tasks whose whole image must not change (snapshot changes)
  std::map<unsigned, TaskImage> before_vm, before_model;
  std::map<unsigned, std::vector<std::pair<uint64_t, std::vector<uint8_t>>>> objects_before;
  if (others_change) {
    if (kind != CopyKind::VmCopy) phase.forbidden_tasks = uint16_t(1u << snap.task);
    else phase.forbidden_tasks = 1;
  } else {
    phase.forbidden_tasks = uint16_t(live & ~(1u << snap.task));
    if (kind == CopyKind::VmCopy) phase.forbidden_tasks = live;
    phase.forbid_objects = true;
    // VmCopy: t0 holds both sides; its source range is compared on its own below.
    compare = kind == CopyKind::VmCopy ? uint16_t(live & ~1u) : phase.forbidden_tasks;
    before_vm = images(sys.vm(), compare, &sys.model());
    before_model = images(sys.model(), compare);
    objects_before = object_images(sys.model(), s.names.objects_mask(), sys.model());
  }
  s.bias = std::make_shared<const Bias>(phase);
  run_commands(sys, s, draw_commands(s));

  // 4. The claim, on both sides.
  if (others_change) {
    // Through the MMU first (the executor compares the bytes with the model's) ...
    run_fixed(sys, s, through);
    // ... then without side effects, against the bytes taken at copy time.
    std::vector<uint8_t> m = range_image(sys.model(), snap.task, snap.lo, snap.hi);
    std::vector<uint8_t> v = range_image(sys.vm(), snap.task, snap.lo, snap.hi);
    if (m != snap.bytes || v != snap.bytes) {
      std::string who = m != snap.bytes ? (v != snap.bytes ? "vm and model" : "model") : "vm";
      sys.fail(std::string("copy isolation (") + copy_kind_name(kind) + "): the snapshot in t" +
                   std::to_string(snap.task) + " changed (" + who + ") though no op named it",
               {read_assertion(snap.task, snap.lo, snap.bytes)});
    }
  } else {
    // VmCopy: t0 is forbidden but for the fence; compare the source range only.
    if (kind == CopyKind::VmCopy) {
      std::vector<uint8_t> m = range_image(sys.model(), 0, kWindow, kWindow + size);
      std::vector<uint8_t> v = range_image(sys.vm(), 0, kWindow, kWindow + size);
      if (m != v || m != snap.bytes)
        sys.fail("copy isolation (vm_copy): writes to the destination changed the source",
                 {read_assertion(0, kWindow, snap.bytes)});
    }
    auto after_vm = images(sys.vm(), compare, &sys.model());
    auto after_model = images(sys.model(), compare);
    int t = first_changed(before_vm, after_vm);
    int tm = first_changed(before_model, after_model);
    if (t >= 0 || tm >= 0) {
      unsigned bad = unsigned(t >= 0 ? t : tm);
      const TaskImage& was = before_model[bad];
      const TaskImage& now = t >= 0 ? after_vm[bad] : after_model[bad];
      sys.fail(std::string("copy isolation (") + copy_kind_name(kind) + "): task t" + std::to_string(bad) +
                   " changed (" + (t >= 0 ? "vm" : "model") + ") though only the snapshot's holder t" +
                   std::to_string(snap.task) + " was named",
               changed_page_assertions(bad, was, now));
    }
    if (object_images(sys.model(), s.names.objects_mask(), sys.model()) != objects_before ||
        object_images(sys.vm(), s.names.objects_mask(), sys.model()) != objects_before)
      sys.fail("copy isolation: a memory object's store changed though only the snapshot's holder was named");
  }
  sys.finish();
}

VMFUZZ_PROP(CopyIsolation, ForkCopy, 500, ()) { copy_isolation(CopyKind::Fork, current_property()); }
VMFUZZ_PROP(CopyIsolation, VmReadHandle, 500, ()) { copy_isolation(CopyKind::VmRead, current_property()); }
VMFUZZ_PROP(CopyIsolation, VmCopy, 500, ()) { copy_isolation(CopyKind::VmCopy, current_property()); }
VMFUZZ_PROP(CopyIsolation, MapCopyOfObject, 500, ()) { copy_isolation(CopyKind::MapCopy, current_property()); }

/// A bug both sides share, which the executor cannot see (the sides agree) and only the
/// isolation claim can: every completed write is repeated into every other live task.
class LeakWrites final : public ForwardingSystem {
 public:
  using ForwardingSystem::ForwardingSystem;
  void task_create(unsigned t) override { live_ |= uint16_t(1u << t), in_.task_create(t); }
  void fork(unsigned p, unsigned c) override { live_ |= uint16_t(1u << c), in_.fork(p, c); }
  void terminate(unsigned t) override { live_ &= uint16_t(~(1u << t)), in_.terminate(t); }
  Access write(unsigned t, uint64_t a, std::span<const uint8_t> d, unsigned cpu) override {
    Access r = in_.write(t, a, d, cpu);
    if (r.kr == KERN_SUCCESS)
      for (unsigned u = 0; u < kMaxNames; u++)
        if (u != t && (live_ >> u & 1)) in_.write(u, a, d, 0);
    return r;
  }

 private:
  uint16_t live_ = 0;
};

// Q: if writes leak into other tasks on both sides alike (so that the differential
//    comparison sees nothing), does the isolation property still fail, with a trace that
//    asserts the snapshot's bytes?
TEST(SelfTest, CopyIsolationCatchesALeakBothSidesShare) {
  const std::string property = "SelfTest.LeakingWrites";
  rc::detail::TestParams params;
  params.seed = 0x6c65616bull;
  params.maxSuccess = 300;
  rc::detail::TestMetadata metadata;
  metadata.id = metadata.description = property;
  QuietListener quiet;
  Decorator leak = [](MemorySystem& in) { return std::unique_ptr<MemorySystem>(std::make_unique<LeakWrites>(in)); };
  const auto result = rc::detail::checkProperty(
      rc::detail::toProperty([&] { copy_isolation(CopyKind::Fork, property, leak); }), metadata, params, quiet, {});
  std::ostringstream msg;
  rc::detail::printResultMessage(result, msg);
  ASSERT_TRUE(result.is<rc::detail::FailureResult>()) << "the leak was not found:\n" << msg.str();
  const auto& f = result.get<rc::detail::FailureResult>();
  std::cout << "rapidcheck's report of the injected leak (expected):\n" << msg.str() << "\n";
  EXPECT_NE(f.description.find("copy isolation"), std::string::npos) << f.description;
  EXPECT_NE(f.description.find(" == "), std::string::npos) << "no assertion of the snapshot in the trace";
}

// ---------------------------------------------------------------------------------------
// Collapse and bypass.

// Run `ops` on a fresh system for cfg with the given switches; returns the system.
std::unique_ptr<PropSystem> run_ops(const SystemConfig& cfg, const std::vector<Op>& ops, const std::string& property,
                                    bool collapse = true, bool bypass = true) {
  auto sys = std::make_unique<PropSystem>(cfg, property);
  sys->kernel().tunables().collapse_allowed = collapse;
  sys->kernel().tunables().bypass_allowed = bypass;
  if (!collapse || !bypass)
    sys->note(std::string("run with") + (collapse ? "" : " collapse_allowed=false") + (bypass ? "" : " bypass_allowed=false"));
  for (const Op& op : ops) sys->run(op);
  return sys;
}

// Ops of a generated program from s, after `prefix`.
std::vector<Op> draw_program(OpState s, const std::vector<Op>& prefix) {
  for (const Op& op : prefix) s.apply(canonical_op(op));
  std::vector<Op> ops;
  for (const Op& op : prefix) ops.push_back(canonical_op(op));
  for (const Op& op : ops_of(draw_commands(s))) ops.push_back(op);
  return ops;
}

// What every live task can see on one side, without the pages the model marks unknown
// (their contents are undefined: pageout, collapse switches and configurations may
// legitimately change them).
std::map<unsigned, TaskImage> live_images(PropSystem& sys, const MemorySystem& side) {
  return images(side, sys.exec().names().tasks_mask(), &sys.model());
}

// Everything, unknown pages included (determinism: the same run must be the same).
std::map<unsigned, TaskImage> exact_images(PropSystem& sys, const MemorySystem& side) {
  return images(side, sys.exec().names().tasks_mask());
}

struct CollapseStats {
  int cases = 0, collapsed = 0, bypassed = 0;
};
CollapseStats g_collapse;

void collapse_preserves_contents() {
  const std::string property = current_property();
  SystemConfig cfg;
  std::vector<Op> ops = draw_program(OpState(cfg, Bias::chains()),
                                     {op_allocate(0, kWindow, 4 * kPageSize), op_write_pat(0, kWindow, 1, 4 * kPageSize)});
  auto on = run_ops(cfg, ops, property);
  auto off = run_ops(cfg, ops, property, false, false);
  const auto& c = on->kernel().counters();
  RC_CLASSIFY(c.collapses > 0, "collapse");
  RC_CLASSIFY(c.bypasses > 0, "bypass");
  g_collapse.cases++;
  g_collapse.collapsed += c.collapses > 0;
  g_collapse.bypassed += c.bypasses > 0;
  if (off->kernel().counters().collapses != 0 || off->kernel().counters().bypasses != 0)
    off->fail("collapse/bypass happened with collapse_allowed = bypass_allowed = false");
  if (on->results() != off->results()) {
    size_t i = 0;
    while (i < on->results().size() && on->results()[i] == off->results()[i]) i++;
    off->fail("switching collapse and bypass off changed op " + std::to_string(i) + "'s result: on: " +
              on->results()[i] + ", off: " + off->results()[i]);
  }
  if (live_images(*on, on->vm()) != live_images(*off, off->vm()))
    off->fail("switching collapse and bypass off changed what a task can see");
  on->finish();
  off->finish();
}

TEST(Collapse, ChainsPreserveContents) {
  g_collapse = {};
  check_gtest(&collapse_preserves_contents, 300);
  // The mechanism must have been exercised: a property about collapse that never saw one
  // would pass vacuously. (A single reproduce run is exempt.)
  if (g_collapse.cases >= 100) {
    EXPECT_GT(g_collapse.collapsed, 0) << "no generated program collapsed a chain";
    EXPECT_GT(g_collapse.bypassed, 0) << "no generated program bypassed an object";
  }
  std::cout << "collapse in " << g_collapse.collapsed << " of " << g_collapse.cases << " cases, bypass in "
            << g_collapse.bypassed << "\n";
}

// ---------------------------------------------------------------------------------------
// Pageout and page-in.

VMFUZZ_PROP(Pageout, RoundTripChangesNothing, 500, ()) {
  const std::string property = current_property();
  SystemConfig cfg;
  cfg.frames = *gen::element(1024u, 256u);
  PropSystem sys(cfg, property);
  Op po;
  po.kind = OpKind::Pageout;
  OpState s(cfg, Bias::mixed());
  Bias b = Bias::mixed();
  b.weight[unsigned(OpKind::Pageout)] = 0;  // pageout only where this property puts it
  s.bias = std::make_shared<const Bias>(b);
  run_commands(sys, s, draw_commands(s));
  const unsigned rounds = *gen::inRange(1u, 4u);
  bool evicted = false;
  for (unsigned r = 0; r < rounds; r++) {
    auto vm_before = live_images(sys, sys.vm());
    auto obj_before = object_images(sys.vm(), s.names.objects_mask(), sys.model());
    uint32_t owned = sys.kernel().frames_owned();
    po.all = *gen::arbitrary<bool>();
    po.size = po.all ? 0 : *gen::inRange<uint64_t>(1, 64);
    run_fixed(sys, s, po);
    evicted |= sys.kernel().frames_owned() < owned;
    if (int t = first_changed(vm_before, live_images(sys, sys.vm())); t >= 0)
      sys.fail("pageout changed what task t" + std::to_string(t) + " can see");
    if (object_images(sys.vm(), s.names.objects_mask(), sys.model()) != obj_before)
      sys.fail("pageout changed a memory object's store");
    // Page in again: the generated ops read and write what was evicted.
    run_commands(sys, s, draw_commands(s, 0.3));
  }
  RC_CLASSIFY(evicted, "pages evicted");
  sys.finish();
}

// ---------------------------------------------------------------------------------------
// pmap_collect and TLB flushes.

VMFUZZ_PROP(Pmap, CollectAndTlbFlushChangeNothing, 500, ()) {
  const std::string property = current_property();
  SystemConfig cfg;
  cfg.cpus = *gen::inRange(1u, 4u);
  cfg.tlb = *gen::element(16u, 1u, 4u, 64u);
  PropSystem sys(cfg, property);
  OpState s(cfg, Bias::mixed());
  run_commands(sys, s, draw_commands(s));
  vm::Kernel& k = sys.kernel();
  const bool drop = *gen::arbitrary<bool>();
  const bool collect = *gen::weightedElement<bool>({{3, true}, {1, false}});
  auto before = live_images(sys, sys.vm());
  unsigned freed = 0;
  pmap::pmap_t any = nullptr;
  for (unsigned t = 0; t < kMaxNames; t++) {
    pmap::pmap_t p = k.task_exists(t) ? k.task_pmap(t) : nullptr;
    if (!p) continue;
    any = p;
    p->domain().set_collect_drops_mappings(drop);
    if (collect) freed += pmap::pmap_collect(p);
  }
  if (any)
    for (unsigned cpu = 0; cpu < cfg.cpus; cpu++) any->domain().machine().flush_tlb(cpu);
  sys.note(std::string(collect ? "pmap_collect (drops mappings: " + std::string(drop ? "yes" : "no") + ") of every task pmap, then " : "") +
           "a flush of every TLB (not ops: replay runs without them)");
  RC_CLASSIFY(freed > 0, "collect freed page-table frames");
  RC_CLASSIFY(!collect, "TLB flush only");
  if (int t = first_changed(before, live_images(sys, sys.vm())); t >= 0)
    sys.fail("pmap_collect / TLB flush changed what task t" + std::to_string(t) + " can see");
  if (!sys.exec().full_check()) sys.fail(harness::format_failure(*sys.exec().failure()));
  run_commands(sys, s, draw_commands(s, 0.5));
  sys.finish();
}

// ---------------------------------------------------------------------------------------
// Teardown.

VMFUZZ_PROP(Teardown, FreesEveryFrameAndObject, 500, ()) {
  const std::string property = current_property();
  SystemConfig cfg;
  PropSystem sys(cfg, property);
  OpState s(cfg, *gen::element(Bias::mixed(), Bias::chains(), Bias::copies()));
  run_commands(sys, s, draw_commands(s));
  RC_CLASSIFY(sys.kernel().object_count() > 4, "5+ objects before teardown");
  sys.finish();  // the executor's teardown oracle
  const vm::Kernel& k = sys.kernel();
  // The same claim, checked here from the kernel's own counts.
  if (k.object_count() != 0 || k.frames_owned() != 0 || k.domain().stats().pt_frames != 0 ||
      k.machine().memory().free_count() != cfg.frames)
    sys.fail("after teardown: " + std::to_string(k.object_count()) + " objects, " + std::to_string(k.frames_owned()) +
             " owned frames, " + std::to_string(k.domain().stats().pt_frames) + " page-table frames, " +
             std::to_string(k.machine().memory().free_count()) + " of " + std::to_string(cfg.frames) + " frames free");
}

// ---------------------------------------------------------------------------------------
// Determinism and N-version runs.

VMFUZZ_PROP(Determinism, SameProgramSameResultsAndCounters, 300, ()) {
  const std::string property = current_property();
  SystemConfig cfg;
  cfg.cpus = *gen::inRange(1u, 4u);
  std::vector<Op> ops = draw_program(OpState(cfg, Bias::mixed()), {});
  auto a = run_ops(cfg, ops, property);
  auto b = run_ops(cfg, ops, property);
  if (a->results() != b->results()) b->fail("the same program gave different results on a second run");
  if (exact_images(*a, a->vm()) != exact_images(*b, b->vm())) b->fail("the same program left different contents");
  if (counters_text(a->kernel()) != counters_text(b->kernel()))
    b->fail("the same program left different VM counters:\n  " + counters_text(a->kernel()) + "\n  " +
            counters_text(b->kernel()));
  a->finish();
  b->finish();
  if (counters_text(a->kernel()) != counters_text(b->kernel()))
    b->fail("the same program's teardown left different VM counters");
}

// ---------------------------------------------------------------------------------------
// A hostile manager (docs/concurrency.md §What a misbehaving manager may do).

// Tasks whose memory can hold bytes of a memory object after `ops`: those that map one,
// and, transitively, fork children of such tasks and tasks that receive a copy handle or a
// vm_copy made from such a task's memory. Every other live task holds anonymous memory only.
uint16_t tasks_touching_objects(const std::vector<Op>& ops) {
  uint16_t tainted = 0, handles = 0;
  for (const Op& op : ops) {
    const uint16_t t = uint16_t(1u << op.task);
    switch (op.kind) {
      case OpKind::Map: tainted |= t; break;
      case OpKind::Fork: if (tainted & t) tainted |= uint16_t(1u << op.task2); break;
      case OpKind::VmRead: if (tainted & t) handles |= uint16_t(1u << op.copy); break;
      case OpKind::VmWrite:
      case OpKind::Copyout: if (handles >> op.copy & 1) tainted |= t; break;
      case OpKind::Task: tainted &= uint16_t(~t); break;
      default: break;
    }
  }
  return tainted;
}

// Q: whatever a held manager answers — late, out of order, data_unavailable, data_error,
// nothing until the final drain — is the memory of every task that maps none of its
// objects exactly what it is when every manager supplies each request at once?
VMFUZZ_PROP(HostileManager, MemoryNotMappingItIsUnaffected, 300, ()) {
  const std::string property = current_property();
  SystemConfig cfg;
  Op t1;
  t1.kind = OpKind::Task;
  t1.task = 1;
  // t0 maps a held object over the window (its accesses wait for the manager); t1 holds
  // anonymous memory at the same addresses of its own space.
  Op obj;
  obj.kind = OpKind::Object, obj.object = 0, obj.size = 6 * kPageSize, obj.strategy = CopyStrategy::None;
  obj.persist = true, obj.data = DataSpec::pat(0x31, 6 * kPageSize);
  Op map;
  map.kind = OpKind::Map, map.task = 0, map.addr = kWindow, map.size = 6 * kPageSize, map.object = 0, map.share = true;
  Op hold;
  hold.kind = OpKind::Hold, hold.object = 0;
  std::vector<Op> hostile = draw_program(OpState(cfg, Bias::concurrency()),
                                         {t1, op_allocate(1, kWindow, 4 * kPageSize), op_write_pat(1, kWindow, 9, 4 * kPageSize),
                                          obj, map, hold});
  // The same program with a tame manager: no `hold`, `hold_init` or `silent`, no reply,
  // ready or unasked supply (every request answered at once); then both drain.
  std::vector<Op> tame;
  for (const Op& op : hostile) {
    if (op.kind == OpKind::Hold || op.kind == OpKind::HoldInit || op.kind == OpKind::Silent) continue;
    if (op.kind == OpKind::Reply || op.kind == OpKind::Ready || op.kind == OpKind::Supply) continue;
    if (op.kind == OpKind::Lock || op.kind == OpKind::Ack) continue;  // the manager's own cleaning
    tame.push_back(op);
  }
  Op drain;
  drain.kind = OpKind::Quiesce;
  hostile.push_back(drain);
  tame.push_back(drain);
  auto a = run_ops(cfg, hostile, property);
  auto b = run_ops(cfg, tame, property);
  uint16_t clean = uint16_t(a->exec().names().tasks_mask() & ~tasks_touching_objects(hostile));
  RC_CLASSIFY(a->kernel().counters().data_requests > 0, "manager held and asked");
  RC_CLASSIFY(std::ranges::any_of(hostile, [](const Op& op) { return op.kind == OpKind::Reply && op.how != ReplyHow::Supply; }),
              "unavailable or error answered");
  RC_CLASSIFY(std::ranges::any_of(hostile, [](const Op& op) { return op.kind == OpKind::Silent; }), "a manager went silent");
  RC_CLASSIFY(std::ranges::any_of(hostile, [](const Op& op) { return op.kind == OpKind::Supply; }), "unasked supply");
  RC_CLASSIFY(a->kernel().counters().returns_sent > 0, "data_return by message");
  if (clean != (b->exec().names().tasks_mask() & ~tasks_touching_objects(tame)))
    a->fail("the tame run has other live tasks");
  if (int t = first_changed(images(a->vm(), clean, &a->model()), images(b->vm(), clean, &b->model())); t >= 0)
    a->fail("task t" + std::to_string(t) + " maps no memory object, yet its memory depends on how a manager answered");
  a->finish();
  b->finish();
}

VMFUZZ_PROP(NVersion, ConfigurationsAgree, 300, ()) {
  const std::string property = current_property();
  SystemConfig base;
  base.cpus = 1;  // cpu=0 only: valid under every configuration below
  std::vector<Op> ops = draw_program(OpState(base, Bias::mixed()), {});
  struct Version {
    SystemConfig cfg;
    bool collapse, bypass;
  };
  std::vector<Version> versions;
  auto add = [&](unsigned frames, unsigned cpus, unsigned tlb, unsigned cache, bool collapse, bool bypass) {
    SystemConfig c;
    c.frames = frames, c.cpus = cpus, c.tlb = tlb, c.cache = cache;
    versions.push_back({c, collapse, bypass});
  };
  add(1024, 1, 16, 4, true, true);
  add(4096, 4, 1, 0, true, true);
  add(2048, 2, 64, 8, false, true);
  add(1024, 3, 3, 1, true, false);
  add(1024, 2, 2, 2, false, false);
  add(160, 2, 8, 1, true, true);  // memory pressure: pageout runs
  std::unique_ptr<PropSystem> first;
  std::map<unsigned, TaskImage> first_images;
  for (const Version& v : versions) {
    auto sys = run_ops(v.cfg, ops, property, v.collapse, v.bypass);
    auto imgs = live_images(*sys, sys->vm());
    if (!first) {
      first_images = imgs;
      first = std::move(sys);
      first->finish();
      continue;
    }
    if (sys->results() != first->results()) {
      size_t i = 0;
      while (i < sys->results().size() && sys->results()[i] == first->results()[i]) i++;
      sys->fail("op " + std::to_string(i) + " gave a different result under this configuration: " +
                sys->results()[i] + " (was " + first->results()[i] + " under " + format_config(first->config()) + ")");
    }
    if (int t = first_changed(first_images, imgs); t >= 0)
      sys->fail("task t" + std::to_string(t) + " sees different contents than under " + format_config(first->config()));
    sys->finish();
  }
}

}  // namespace
}  // namespace vmfuzz::props
