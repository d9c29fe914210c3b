// kernel_reset_test.cc — Kernel::reset(config) leaves exactly what Kernel(config) builds.
//
// The vm_diff fuzzer runs every input on one kernel, reset in between (vm/kernel.h). That is
// only sound if a reset kernel cannot be told from a fresh one. Each case here runs a
// program A on a kernel (a corpus seed or a seeded random input, with a catalogue bug
// switched on in turn, with or without teardown, so that the reset meets live tasks, copy
// handles, memory objects, cached objects, page tables and threads in flight), resets it
// to the configuration of a program B, and builds a fresh Kernel for B. Then:
//   1. the two are compared field by field through everything the kernel exposes
//      (state_text below: configuration, VM counters and tunables, next object id, object
//      cache, page queues, objects with their pages, tasks with their entries and pmaps,
//      CPU assignments, copy handles, memory objects, scheduler threads and counters,
//      machine counters, every CPU's CR3 and TLB entries, pmap counters and every
//      frame's pv list and attributes) and every frame's use and 4 KiB of bytes;
//   2. program B runs on both, and every step's results on both sides, the verdict and
//      the state after it must be equal.
// A field that reset forgets shows in 1 when it is visible, in 2 when it changes what a
// later op does (an id, a counter, the free-frame order, junk left in a frame).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "harness/exec/executor.h"
#include "harness/exec/kernel_observer.h"
#include "harness/exec/report.h"
#include "harness/lang/codec.h"
#include "reference_model/model.h"
#include "vm/kernel.h"
#include "vm/machine/bugs.h"

namespace vmfuzz {
namespace {

using Bytes = std::vector<uint8_t>;

// Everything the kernel exposes except frame bytes (compared apart, with memcmp).
std::string state_text(const vm::Kernel& k) {
  std::ostringstream o;
  const SystemConfig& c = k.config();
  o << "config " << c.frames << ' ' << c.cpus << ' ' << c.tlb << ' ' << c.cache << '\n';
  const vm::VmCounters& n = k.counters();
  static_assert(sizeof(vm::VmCounters) % sizeof(uint64_t) == 0);
  const uint64_t* w = reinterpret_cast<const uint64_t*>(&n);
  o << "counters";
  for (size_t i = 0; i < sizeof n / sizeof(uint64_t); i++) o << ' ' << w[i];
  const vm::VmSystem& s = k.system();
  o << "\ntunables " << s.tunables.collapse_allowed << s.tunables.bypass_allowed
    << s.tunables.shadow_reclaim_allowed << "\nnext_object_id " << s.next_object_id << " objects "
    << s.objects.size() << " cache_bound " << s.cache_bound << " cached " << s.cached.size()
    << " collect_page_tables " << bool(s.collect_page_tables) << "\npage_array " << s.vm_page_array.size()
    << ' ' << s.page_of_frame.size() << " queues";
  for (const vm::PageQueue* q : {&s.active, &s.inactive})
    for (const vm::VmPage* p = q->front(); p != nullptr; p = p->q_next) o << ' ' << p->frame;
  size_t held = 0;
  for (const vm::VmPage* p : s.page_of_frame) held += p != nullptr;
  o << " page_of_frame_held " << held << '\n';
  for (const vm::ObjectInfo& i : k.objects()) {
    o << "object " << i.id << " ref " << i.ref_count << " size " << i.size << " shadow " << i.shadow << '+'
      << i.shadow_offset << " copy " << i.copy << " flags " << i.internal << i.temporary << i.shadowed
      << i.use_shared_copy << i.can_persist << i.pager_created << i.pager_initialized << i.pager_ready
      << " strategy " << int(i.copy_strategy) << " paging " << i.paging_in_progress << ' ' << i.absent_count
      << ' ' << i.resident_page_count << " pages";
    for (const vm::PageInfo& p : i.pages)
      o << ' ' << p.offset << ':' << p.frame << ':' << p.busy << p.absent << p.dirty << p.precious << p.device
        << ':' << p.page_lock << ':' << p.wire_count;
    o << '\n';
  }
  for (unsigned t = 0; t < kMaxNames; t++) {
    if (!k.task_exists(t)) continue;
    o << "task " << t << " pmap " << (k.task_pmap(t) != nullptr);
    if (const pmap::Pmap* p = k.task_pmap(t))
      o << " resident " << p->resident_count() << " pt " << p->pt_frame_count() << " active "
        << p->active_cpus();
    for (const vm::EntryInfo& e : k.entries(t))
      o << " [" << e.start << ',' << e.end << ' ' << e.prot << e.max_prot << int(e.inherit) << e.needs_copy
        << e.is_shared << ' ' << e.object << '+' << e.offset << ']';
    o << '\n';
  }
  for (unsigned i = 0; i < kMaxNames; i++) {
    if (k.copy_exists(i)) o << "copy " << i << ' ' << (k.copy_handle(i) != nullptr) << '\n';
    if (const vm::ManagerPager* m = k.memory_object(i)) o << "memory object " << i << ' ' << (m != nullptr) << '\n';
  }
  const vm::Scheduler& sc = k.scheduler();
  o << "sched next " << sc.next_id << " step " << sc.step << " current " << (sc.current != nullptr) << " threads";
  for (const auto& [id, th] : sc.threads) o << ' ' << id << ':' << th.task << ':' << th.addr << ':' << th.done;
  const machine::Machine& m = k.machine();
  const machine::Machine::Stats& ms = m.stats();
  o << "\nmachine " << ms.tlb_hits << ' ' << ms.tlb_misses << ' ' << ms.walks << ' ' << ms.faults << ' '
    << ms.dirty_rewalks << " cpus " << m.cpu_count() << '\n';
  for (unsigned i = 0; i < m.cpu_count(); i++) {
    const machine::Cpu& cpu = m.cpu(i);
    o << "cpu " << i << " task " << k.task_on_cpu(i) << " cr3 " << cpu.cr3 << " tlb " << cpu.tlb.capacity() << ' '
      << cpu.tlb.size();
    for (const machine::TlbEntry& e : cpu.tlb.entries())
      o << ' ' << e.vpn << ':' << e.frame << ':' << e.writable << e.user << e.dirty;
    o << '\n';
  }
  const pmap::PmapDomain& d = k.domain();
  o << "domain " << d.stats().shootdowns << ' ' << d.stats().pt_frames << ' ' << d.stats().collects << " pmaps "
    << d.pmaps().size() << '\n';
  const machine::PhysicalMemory& pm = m.memory();
  o << "memory " << pm.frame_count() << ' ' << pm.ram_frame_count() << " free " << pm.free_count();
  for (unsigned u = 0; u < 4; u++) o << ' ' << pm.count_of(machine::FrameUse(u));
  o << " frames_owned " << k.frames_owned() << '\n';
  pmap::PmapDomain& md = const_cast<pmap::PmapDomain&>(d);  // the attribute queries are not const
  for (machine::pfn_t f = 0; f < pm.frame_count(); f++) {
    std::vector<pmap::PvEntry> pv = d.mappings_of(f);
    const machine::FrameUse use = pm.use_of(f);
    // The attribute queries are defined on managed frames (VM pages, device memory) only.
    const bool managed = use == machine::FrameUse::VmPage || use == machine::FrameUse::Device;
    bool mod = managed && md.pmap_is_modified(f), ref = managed && md.pmap_is_referenced(f);
    if (use != machine::FrameUse::Free || !pv.empty() || mod || ref) {
      o << "frame " << f << " use " << int(pm.use_of(f)) << " attrs " << mod << ref << " pv";
      for (const pmap::PvEntry& e : pv) o << ' ' << e.va;
      o << '\n';
    }
  }
  return o.str();
}

// The first difference between two kernels, or "" when there is none.
std::string difference(const vm::Kernel& a, const vm::Kernel& b) {
  std::string ta = state_text(a), tb = state_text(b);
  if (ta != tb) {
    size_t i = 0;
    while (i < ta.size() && i < tb.size() && ta[i] == tb[i]) i++;
    size_t from = ta.rfind('\n', i);
    from = from == std::string::npos ? 0 : from + 1;
    return "state differs at: reset `" + ta.substr(from, ta.find('\n', i) - from) + "` fresh `" +
           tb.substr(from, tb.find('\n', i) - from) + "`";
  }
  const machine::PhysicalMemory& ma = a.machine().memory();
  const machine::PhysicalMemory& mb = b.machine().memory();
  for (machine::pfn_t f = 0; f < ma.frame_count(); f++)
    if (std::memcmp(ma.frame(f), mb.frame(f), kPageSize) != 0)
      return "the bytes of frame " + std::to_string(f) + " differ";
  return "";
}

// One run of `bytes` on `k` as the fuzzer runs it; the log of every step and the verdict.
std::string run(vm::Kernel& k, const Bytes& bytes, const SystemConfig& config, bool teardown) {
  model::Model model(config);
  std::unique_ptr<harness::VmObserver> obs = harness::make_kernel_observer(k);
  harness::ExecOptions options;
  options.full_check_every = harness::kFuzzFullCheckEvery;
  options.teardown = teardown;
  std::string log;
  harness::StepListener listener = [&](uint64_t i, const Op& op, harness::Executor::Step st,
                                       const harness::Executor& ex) {
    log += std::to_string(i) + ' ' + std::to_string(int(st)) + ' ' + harness::format_result(op, ex.vm_result()) +
           " | " + harness::format_result(op, ex.model_result()) + " | " +
           std::to_string(k.counters().faults) + ' ' + std::to_string(k.machine().stats().walks) + '\n';
  };
  Program prog;
  harness::RunSummary sum =
      harness::decode_and_run(bytes, config, k, model, obs.get(), options, listener, &prog);
  log += "ops " + std::to_string(sum.ops) + " ok " + std::to_string(sum.ok) + '\n';
  if (sum.failure) log += harness::failure_signature(*sum.failure) + '\n' + harness::format_failure(*sum.failure);
  return log;
}

SystemConfig config_of(const Bytes& bytes) {
  SystemConfig c = Decoder(bytes).config();
  harness::fold_fuzz_config(c);
  return c;
}

std::vector<Bytes> corpus() {
  std::vector<std::filesystem::path> paths;
  for (const auto& e : std::filesystem::directory_iterator(VMFUZZ_SOURCE_DIR "/corpus/vm_diff"))
    if (e.path().extension() == ".bin") paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  std::vector<Bytes> out;
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    out.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return out;
}

std::vector<Bytes> random_inputs(unsigned count) {
  std::vector<Bytes> out;
  uint64_t x = 0x5eed0fa11;
  auto next = [&] {  // splitmix64
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  for (unsigned i = 0; i < count; i++) {
    Bytes b(256 + next() % 2048);
    for (uint8_t& v : b) v = uint8_t(next());
    out.push_back(std::move(b));
  }
  return out;
}

// Program A on one kernel, reset, against a fresh kernel; then program B on both.
void check_pair(const Bytes& a, const Bytes& b, bool teardown_a, const std::string& what) {
  SystemConfig ca = config_of(a), cb = config_of(b);
  vm::Kernel reused(ca);
  run(reused, a, ca, teardown_a);
  reused.reset(cb);
  vm::Kernel fresh(cb);
  std::string d = difference(reused, fresh);
  ASSERT_EQ(d, "") << what << ": right after reset";
  std::string lr = run(reused, b, cb, true), lf = run(fresh, b, cb, true);
  ASSERT_EQ(lr, lf) << what << ": program B ran differently";
  d = difference(reused, fresh);
  ASSERT_EQ(d, "") << what << ": after program B";
}

struct BugsOff {
  ~BugsOff() { bugs::clear_bugs(); }
};

// Case i runs with catalogue bug i % (kBugCount + 1) on (the last: none).
void check_all(const std::vector<Bytes>& inputs, const char* kind) {
  BugsOff off;
  for (size_t i = 0; i + 1 < inputs.size(); i++) {
    bugs::clear_bugs();
    std::string what = std::string(kind) + " " + std::to_string(i) + " then " + std::to_string(i + 1);
    if (bugs::bugs_compiled_in() && i % (bugs::kBugCount + 1) < bugs::kBugCount) {
      bugs::Bug bug = bugs::Bug(i % (bugs::kBugCount + 1));
      bugs::set_bug(bug, true);
      what += std::string(" with bug ") + bugs::bug_name(bug);
    }
    check_pair(inputs[i], inputs[i + 1], /*teardown_a=*/i % 2 == 0, what + (i % 2 ? " (A not torn down)" : ""));
    if (testing::Test::HasFatalFailure()) return;
  }
}

TEST(KernelReset, CorpusSeedsResetEqualsFresh) { check_all(corpus(), "corpus"); }

TEST(KernelReset, RandomInputsResetEqualsFresh) { check_all(random_inputs(120), "random"); }

// Reset many times over, one kernel for a whole run of inputs, as the fuzzer uses it.
TEST(KernelReset, OneKernelForManyInputs) {
  std::vector<Bytes> in = random_inputs(40);
  vm::Kernel reused(config_of(in[0]));
  for (size_t i = 0; i < in.size(); i++) {
    SystemConfig c = config_of(in[i]);
    reused.reset(c);
    vm::Kernel fresh(c);
    ASSERT_EQ(difference(reused, fresh), "") << "input " << i;
    ASSERT_EQ(run(reused, in[i], c, i % 3 != 0), run(fresh, in[i], c, i % 3 != 0)) << "input " << i;
  }
}

// The comparison itself can fail: a kernel that ran a program is not a fresh one.
TEST(KernelReset, ComparisonSeesARunKernel) {
  std::vector<Bytes> in = corpus();
  size_t differing = 0;
  for (const Bytes& b : in) {
    SystemConfig c = config_of(b);
    vm::Kernel ran(c), fresh(c);
    run(ran, b, c, /*teardown=*/true);
    differing += !difference(ran, fresh).empty();
  }
  EXPECT_EQ(differing, in.size()) << "every seed leaves counters, ids or frames behind";
}

}  // namespace
}  // namespace vmfuzz
