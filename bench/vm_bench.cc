// vm_bench.cc — what the simulated VM costs, against the real thing and against the model.
//
// Theory of operation
// -------------------
// Every figure of bench/README.md is a RATIO of two measurements taken in this one process
// (same binary, same run, same machine state), so that the noise of a shared machine and
// the speed of the host cancel as far as they can. ci/bench.py reads this program's JSON
// and forms the ratios; each benchmark therefore reports plain per-item quantities as
// counters (ns_per_page, ...) averaged over its iterations, never rates.
//
// Timing. Benchmarks whose iterations need untimed setup or teardown (a fork before the
// child's writes, a terminate after a timed fork) use manual time: a steady clock read
// around exactly the timed part. The Linux COW fault is timed inside the forked child
// (its own clock around its own loop) and the child sends its figure through a pipe.
//
// Groups (names are what ci/bench.py looks for):
//   BM_CowFault/{Sim,Linux}/P      fork, then the child writes one byte in each of P pages
//                                  of a private region the parent had touched: per-page ns
//                                  of the child's loop. Sim: vm::Kernel (walk, chain, frame,
//                                  4 KiB copy, PTE, TLB); Linux: mmap/fork on this host.
//   BM_Memcpy4K/{Cold,Hot}/P       a bare 4 KiB memcpy: Cold streams P pages between two
//                                  P-page buffers (the working set the faults above touch),
//                                  Hot copies one page again and again (L1).
//   BM_ZeroFill/{Sim,Linux}/P      first touch of P fresh pages (frame, zero, page tables).
//   BM_Mmu/{Hit,Miss}              8-byte loads through the simulated MMU (Machine::load):
//                                  pages that stay in the TLB, and pages that never do.
//   BM_KernelRead/{Hit,Miss}       the same through vm::Kernel::read (the op as the harness
//                                  runs it: CPU switch check, Access vector).
//   BM_Fork/{VM,Model}/MiB/dense   fork of a task holding one region of MiB, with one page
//   BM_VmCopy/{VM,Model}/MiB/dense (dense=0) or every page (dense=1) written: per-op ns.
//   BM_Garbage/{Fork,Copy}Heavy    deterministic workloads; counters: resident frames,
//                                  page versions any task can observe, garbage share,
//                                  longest shadow chain (from Kernel introspection).
//
// Determinism: workloads draw from a fixed-seed splitmix64; only the clock is nondeterministic.
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bench/splitmix.h"
#include "reference_model/model.h"
#include "vm/kernel.h"
#include "vm/machine/machine.h"
#include "vm/pmap/pmap.h"
#include "vmfuzz/vocab.h"

namespace {

using namespace vmfuzz;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kBase = 0x10000000;      // the region under test (task t0)
constexpr uint64_t kFarBase = 0x100000000;  // 4 GiB: room for 1 GiB regions
constexpr uint64_t kFarDst = 0x200000000;   // vm_copy destination for large regions

/// A reading of both clocks. The figures use the thread's CPU time (user + system: a
/// page fault's kernel time is the faulting thread's), which a loaded machine's
/// preemption does not inflate; wall time is kept beside it as a counter.
struct Stamp {
  double cpu_ns = 0, wall_ns = 0;
  static Stamp now() {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    Stamp s;
    s.cpu_ns = double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
    s.wall_ns = double(std::chrono::duration_cast<std::chrono::nanoseconds>(
                           Clock::now().time_since_epoch()).count());
    return s;
  }
};

/// Accumulates timed spans; sets each iteration's manual time to the span's CPU time.
struct Spans {
  double cpu_ns = 0, wall_ns = 0;
  void add(benchmark::State& state, const Stamp& a, const Stamp& b) {
    add_ns(state, b.cpu_ns - a.cpu_ns, b.wall_ns - a.wall_ns);
  }
  void add_ns(benchmark::State& state, double cpu, double wall) {
    state.SetIterationTime(cpu * 1e-9);
    cpu_ns += cpu;
    wall_ns += wall;
  }
  /// Counters `ns_per_<unit>` (CPU) and `wall_ns_per_<unit>` over `items` timed items.
  void report(benchmark::State& state, const char* unit, double items) const {
    state.counters[std::string("ns_per_") + unit] = cpu_ns / items;
    state.counters[std::string("wall_ns_per_") + unit] = wall_ns / items;
  }
};

using vmfuzz::bench::SplitMix;

/// A machine configuration with room for `pages` data pages and their page tables.
SystemConfig config_for(uint64_t pages) {
  SystemConfig c;
  c.frames = unsigned(pages + pages / 256 + 256);
  return c;
}

/// Abort the benchmark program when a setup step the figures depend on failed: a number
/// measured on a broken state would be a lie.
void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "vm_bench: setup failed: %s\n", what);
    std::exit(2);
  }
}

/// Write one byte into each of `pages` pages from `base` (task t, CPU 0).
void touch_pages(MemorySystem& s, unsigned t, uint64_t base, uint64_t pages, uint8_t value) {
  const uint8_t b[1] = {value};
  for (uint64_t i = 0; i < pages; ++i) {
    Access a = s.write(t, base + i * kPageSize, b, 0);
    require(a.kr == KERN_SUCCESS, "touch write");
  }
}

// ---------------------------------------------------------------------------------------
// COW fault: simulated

/// Parent t0 touches P pages; each iteration forks t1 (untimed), times t1 writing one byte
/// per page, and terminates t1 (untimed).
void BM_CowFault_Sim(benchmark::State& state) {
  const uint64_t pages = uint64_t(state.range(0));
  vm::Kernel k(config_for(3 * pages));
  k.task_create(0);
  uint64_t addr = kBase;
  require(k.allocate(0, &addr, pages * kPageSize, false) == KERN_SUCCESS, "allocate");
  touch_pages(k, 0, kBase, pages, 0x5a);
  // One untimed round first: physical memory's bytes are laid lazily (junk on a frame's
  // first touch, and the host's own first-touch fault), so without it the first timed
  // round would also pay the host for the frames the copies land in. The memcpy anchor's
  // buffers are touched beforehand too.
  k.fork(0, 1);
  touch_pages(k, 1, kBase, pages, 0x3c);
  k.terminate(1);
  const vm::VmCounters before = k.counters();
  const machine::Machine::Stats mbefore = k.machine().stats();
  Spans spans;
  const uint8_t one[1] = {0xa5};
  for (auto _ : state) {
    k.fork(0, 1);
    const Stamp t0 = Stamp::now();
    for (uint64_t i = 0; i < pages; ++i) {
      Access a = k.write(1, kBase + i * kPageSize, one, 0);
      benchmark::DoNotOptimize(a.kr);
    }
    const Stamp t1 = Stamp::now();
    k.terminate(1);
    spans.add(state, t0, t1);
  }
  const double n = double(state.iterations()) * double(pages);
  const vm::VmCounters& c = k.counters();
  spans.report(state, "page", n);
  state.counters["faults_per_page"] = double(c.faults - before.faults) / n;
  state.counters["copy_ups_per_page"] = double(c.copy_ups - before.copy_ups) / n;
  state.counters["walks_per_page"] = double(k.machine().stats().walks - mbefore.walks) / n;
}
BENCHMARK(BM_CowFault_Sim)->Name("BM_CowFault/Sim")->Arg(4096)->UseManualTime()->Iterations(24);

// ---------------------------------------------------------------------------------------
// COW fault and zero-fill fault: Linux

/// A private anonymous region of `pages` pages, without transparent huge pages (we time
/// 4 KiB faults).
uint8_t* map_private(uint64_t pages) {
  void* p = mmap(nullptr, pages * kPageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  require(p != MAP_FAILED, "mmap");
#ifdef MADV_NOHUGEPAGE
  madvise(p, pages * kPageSize, MADV_NOHUGEPAGE);
#endif
  return static_cast<uint8_t*>(p);
}

/// Fork; the child times writing one byte per page of `region` (its own CPU time and
/// wall time, as Stamp) and sends both through a pipe.
struct ChildTimes {
  double cpu_ns = 0, wall_ns = 0;
};
ChildTimes linux_child_write(volatile uint8_t* region, uint64_t pages) {
  int fds[2];
  require(pipe(fds) == 0, "pipe");
  pid_t pid = ::fork();
  require(pid >= 0, "fork");
  if (pid == 0) {
    // Child: only async-signal-safe calls from here on (clock_gettime, write, _exit).
    close(fds[0]);
    const Stamp a = Stamp::now();
    for (uint64_t i = 0; i < pages; ++i) region[i * kPageSize] = 0xa5;
    const Stamp b = Stamp::now();
    const ChildTimes t{b.cpu_ns - a.cpu_ns, b.wall_ns - a.wall_ns};
    ssize_t w = write(fds[1], &t, sizeof t);
    _exit(w == ssize_t(sizeof t) ? 0 : 1);
  }
  close(fds[1]);
  ChildTimes t;
  ssize_t got = read(fds[0], &t, sizeof t);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  require(got == ssize_t(sizeof t) && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child");
  return t;
}

void BM_CowFault_Linux(benchmark::State& state) {
  const uint64_t pages = uint64_t(state.range(0));
  uint8_t* region = map_private(pages);
  for (uint64_t i = 0; i < pages; ++i) region[i * kPageSize] = uint8_t(i);
  Spans spans;
  for (auto _ : state) {
    const ChildTimes t = linux_child_write(region, pages);
    spans.add_ns(state, t.cpu_ns, t.wall_ns);
  }
  munmap(region, pages * kPageSize);
  spans.report(state, "page", double(state.iterations()) * double(pages));
}
BENCHMARK(BM_CowFault_Linux)->Name("BM_CowFault/Linux")->Arg(4096)->UseManualTime()->Iterations(24);

/// First touch of fresh anonymous pages on this host: the zero-fill anchor.
void BM_ZeroFill_Linux(benchmark::State& state) {
  const uint64_t pages = uint64_t(state.range(0));
  Spans spans;
  for (auto _ : state) {
    volatile uint8_t* region = map_private(pages);
    const Stamp t0 = Stamp::now();
    for (uint64_t i = 0; i < pages; ++i) region[i * kPageSize] = 1;
    const Stamp t1 = Stamp::now();
    munmap(const_cast<uint8_t*>(region), pages * kPageSize);
    spans.add(state, t0, t1);
  }
  spans.report(state, "page", double(state.iterations()) * double(pages));
}
BENCHMARK(BM_ZeroFill_Linux)->Name("BM_ZeroFill/Linux")->Arg(4096)->UseManualTime()->Iterations(24);

/// First touch of fresh pages in the simulated VM: each iteration allocates a region
/// (untimed), times one write per page (zero-fill fault), deallocates it (untimed).
void BM_ZeroFill_Sim(benchmark::State& state) {
  const uint64_t pages = uint64_t(state.range(0));
  vm::Kernel k(config_for(2 * pages));
  k.task_create(0);
  {
    // One untimed round first (see BM_CowFault_Sim: frames are laid lazily).
    uint64_t addr = kBase;
    require(k.allocate(0, &addr, pages * kPageSize, false) == KERN_SUCCESS, "allocate");
    touch_pages(k, 0, kBase, pages, 1);
    require(k.deallocate(0, kBase, pages * kPageSize) == KERN_SUCCESS, "deallocate");
  }
  const vm::VmCounters before = k.counters();
  Spans spans;
  const uint8_t one[1] = {1};
  for (auto _ : state) {
    uint64_t addr = kBase;
    require(k.allocate(0, &addr, pages * kPageSize, false) == KERN_SUCCESS, "allocate");
    const Stamp t0 = Stamp::now();
    for (uint64_t i = 0; i < pages; ++i) {
      Access a = k.write(0, kBase + i * kPageSize, one, 0);
      benchmark::DoNotOptimize(a.kr);
    }
    const Stamp t1 = Stamp::now();
    require(k.deallocate(0, kBase, pages * kPageSize) == KERN_SUCCESS, "deallocate");
    spans.add(state, t0, t1);
  }
  const double n = double(state.iterations()) * double(pages);
  spans.report(state, "page", n);
  state.counters["zero_fills_per_page"] = double(k.counters().zero_fills - before.zero_fills) / n;
}
BENCHMARK(BM_ZeroFill_Sim)->Name("BM_ZeroFill/Sim")->Arg(4096)->UseManualTime()->Iterations(24);

// ---------------------------------------------------------------------------------------
// memcpy of 4 KiB

/// Cold: page i of one P-page buffer to page i of another (both touched beforehand), the
/// same working set as the fault benchmarks. Hot: P copies of one page to another (L1).
/// P copies per timed span, so the clock reads (a system call each) do not count.
void BM_Memcpy4K(benchmark::State& state) {
  const bool cold = state.range(0) != 0;
  const uint64_t copies = uint64_t(state.range(1));
  const uint64_t pages = cold ? copies : 1;
  std::vector<uint8_t> src(pages * kPageSize, 0x11), dst(pages * kPageSize, 0x22);
  Spans spans;
  for (auto _ : state) {
    const Stamp t0 = Stamp::now();
    for (uint64_t i = 0; i < copies; ++i) {
      const uint64_t at = (i % pages) * kPageSize;
      std::memcpy(dst.data() + at, src.data() + at, kPageSize);
      benchmark::ClobberMemory();
    }
    const Stamp t1 = Stamp::now();
    spans.add(state, t0, t1);
  }
  benchmark::DoNotOptimize(dst.data());
  spans.report(state, "page", double(state.iterations()) * double(copies));
}
BENCHMARK(BM_Memcpy4K)->Name("BM_Memcpy4K/Cold")->Args({1, 4096})->UseManualTime()->Iterations(48);
BENCHMARK(BM_Memcpy4K)->Name("BM_Memcpy4K/Hot")->Args({0, 4096})->UseManualTime()->Iterations(48);

// ---------------------------------------------------------------------------------------
// Access throughput through the MMU

/// A bare machine with one pmap mapping `pages` pages at kBase on CPU 0; loads of 8 bytes
/// cycle over them. With pages <= the TLB's capacity every load hits; with pages far
/// beyond it (FIFO replacement) every load misses and walks four levels.
void BM_Mmu(benchmark::State& state) {
  const uint64_t pages = uint64_t(state.range(0));
  const unsigned tlb = 16;
  machine::Machine m(unsigned(pages + pages / 256 + 64), 1, tlb);
  pmap::PmapDomain d(m);
  pmap::pmap_t p = pmap::pmap_create(d);
  require(p != nullptr, "pmap_create");
  for (uint64_t i = 0; i < pages; ++i) {
    machine::pfn_t f = m.memory().alloc_frame(machine::FrameUse::VmPage);
    require(f != machine::kNoFrame, "alloc_frame");
    std::memset(m.memory().frame(f), int(i), kPageSize);
    require(pmap::pmap_enter(p, kBase + i * kPageSize, f, VM_PROT_READ | VM_PROT_WRITE) == KERN_SUCCESS,
            "pmap_enter");
  }
  pmap::pmap_activate(p, 0);
  std::array<uint8_t, 8> buf{};
  const machine::Machine::Stats before = m.stats();
  uint64_t loads = 0, sum = 0;
  for (auto _ : state) {
    for (uint64_t i = 0; i < pages; ++i) {
      machine::AccessResult r = m.load(0, kBase + i * kPageSize + 8, buf);
      sum += buf[0] + uint64_t(r.kr);
    }
    loads += pages;
  }
  benchmark::DoNotOptimize(sum);
  const machine::Machine::Stats& s = m.stats();
  state.counters["accesses"] = double(pages);  // per iteration: ci/bench.py divides real_time
  state.counters["hit_rate"] =
      double(s.tlb_hits - before.tlb_hits) / double(std::max<uint64_t>(1, loads));
  pmap::pmap_deactivate(p, 0);
  pmap::pmap_destroy(p);
}
BENCHMARK(BM_Mmu)->Name("BM_Mmu/Hit")->Arg(8);
BENCHMARK(BM_Mmu)->Name("BM_Mmu/Miss")->Arg(4096);

/// The same access pattern through vm::Kernel::read (what the executor's read op costs).
void BM_KernelRead(benchmark::State& state) {
  const uint64_t pages = uint64_t(state.range(0));
  vm::Kernel k(config_for(2 * pages));
  k.task_create(0);
  uint64_t addr = kBase;
  require(k.allocate(0, &addr, pages * kPageSize, false) == KERN_SUCCESS, "allocate");
  touch_pages(k, 0, kBase, pages, 7);
  const machine::Machine::Stats before = k.machine().stats();
  uint64_t loads = 0, sum = 0;
  for (auto _ : state) {
    for (uint64_t i = 0; i < pages; ++i) {
      Access a = k.read(0, kBase + i * kPageSize + 8, 8, 0);
      sum += a.bytes.size();
    }
    loads += pages;
  }
  benchmark::DoNotOptimize(sum);
  const machine::Machine::Stats& s = k.machine().stats();
  state.counters["accesses"] = double(pages);
  state.counters["hit_rate"] =
      double(s.tlb_hits - before.tlb_hits) / double(std::max<uint64_t>(1, loads));
}
BENCHMARK(BM_KernelRead)->Name("BM_KernelRead/Hit")->Arg(8);
BENCHMARK(BM_KernelRead)->Name("BM_KernelRead/Miss")->Arg(4096);

// ---------------------------------------------------------------------------------------
// fork and vm_copy against region size, VM and reference model

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kDenseCapMiB = 64;  // dense regions up to 16384 pages (frames configured)

/// A system (VM or model) with t0 holding one region of `mib` MiB at kFarBase, with one
/// page written (sparse) or every page (dense); with `copy_dst`, a second region of the
/// same size at kFarDst (the vm_copy destination).
template <class System>
std::unique_ptr<System> sized_task(uint64_t mib, bool dense, bool copy_dst) {
  const uint64_t pages = mib * kMiB / kPageSize;
  auto s = std::make_unique<System>(config_for(dense ? 2 * pages : 64));
  s->task_create(0);
  uint64_t addr = kFarBase;
  require(s->allocate(0, &addr, mib * kMiB, false) == KERN_SUCCESS, "allocate src");
  if (copy_dst) {
    addr = kFarDst;
    require(s->allocate(0, &addr, mib * kMiB, false) == KERN_SUCCESS, "allocate dst");
  }
  if (dense)
    touch_pages(*s, 0, kFarBase, pages, 0x33);
  else
    touch_pages(*s, 0, kFarBase + (pages / 2) * kPageSize, 1, 0x33);
  return s;
}

/// Fork and vm_copy of a sparse region take tens of nanoseconds: too short for the CPU
/// clock (a system call per read). These spans are timed with the steady clock (vDSO,
/// ~20 ns) and summarized by the MEDIAN over iterations minus the median cost of an empty
/// span, so that a preemption or a cache-cold outlier does not move the figure.
struct ShortSpans {
  std::vector<double> samples;
  void add(benchmark::State& state, Clock::time_point a, Clock::time_point b) {
    const double ns = double(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
    samples.push_back(ns);
    state.SetIterationTime(ns * 1e-9);
  }
  static double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
  static double empty_span_ns() {
    static const double ns = [] {
      std::vector<double> v;
      for (int i = 0; i < 4001; ++i) {
        const auto a = Clock::now();
        const auto b = Clock::now();
        v.push_back(double(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count()));
      }
      return median(v);
    }();
    return ns;
  }
  void report(benchmark::State& state) const {
    const double overhead = empty_span_ns();
    state.counters["ns_per_op"] = std::max(0.0, median(samples) - overhead);
    state.counters["clock_overhead_ns"] = overhead;
  }
};

/// Before each timed op the parent writes again one byte in every touched page (untimed),
/// so that the op meets writable mappings, as in a running task: a fork or a copyin must
/// then write-protect them (work that follows touched pages), not find them protected by
/// the previous iteration.
template <class System>
void retouch(System& s, uint64_t mib, bool dense, uint8_t value) {
  const uint64_t pages = mib * kMiB / kPageSize;
  if (dense)
    touch_pages(s, 0, kFarBase, pages, value);
  else
    touch_pages(s, 0, kFarBase + (pages / 2) * kPageSize, 1, value);
}

/// Timed: fork(t0 -> t1). Untimed: the parent's retouch before, terminate(t1) after.
template <class System>
void BM_Fork(benchmark::State& state) {
  const uint64_t mib = uint64_t(state.range(0));
  const bool dense = state.range(1) != 0;
  auto s = sized_task<System>(mib, dense, false);
  ShortSpans spans;
  uint8_t v = 0;
  for (auto _ : state) {
    retouch(*s, mib, dense, ++v);
    const auto t0 = Clock::now();
    s->fork(0, 1);
    const auto t1 = Clock::now();
    s->terminate(1);
    spans.add(state, t0, t1);
  }
  spans.report(state);
  state.counters["mib"] = double(mib);
  state.counters["touched_pages"] = dense ? double(mib * kMiB / kPageSize) : 1.0;
}

/// Timed: vm_copy of the whole source region onto the destination region. Untimed: the
/// source's retouch before.
template <class System>
void BM_VmCopy(benchmark::State& state) {
  const uint64_t mib = uint64_t(state.range(0));
  const bool dense = state.range(1) != 0;
  auto s = sized_task<System>(mib, dense, true);
  ShortSpans spans;
  uint8_t v = 0;
  for (auto _ : state) {
    retouch(*s, mib, dense, ++v);
    const auto t0 = Clock::now();
    kern_return_t kr = s->vm_copy(0, kFarBase, mib * kMiB, kFarDst);
    const auto t1 = Clock::now();
    require(kr == KERN_SUCCESS, "vm_copy");
    spans.add(state, t0, t1);
  }
  spans.report(state);
  state.counters["mib"] = double(mib);
  state.counters["touched_pages"] = dense ? double(mib * kMiB / kPageSize) : 1.0;
}

/// Sizes 1 MiB .. 1 GiB in powers of 4; dense only up to kDenseCapMiB.
void size_args(benchmark::internal::Benchmark* b) {
  for (int64_t mib = 1; mib <= 1024; mib *= 4) {
    b->Args({mib, 0});
    if (uint64_t(mib) <= kDenseCapMiB) b->Args({mib, 1});
  }
  b->ArgNames({"MiB", "dense"});
  b->UseManualTime();
  b->Iterations(31);
}
BENCHMARK(BM_Fork<vm::Kernel>)->Name("BM_Fork/VM")->Apply(size_args);
BENCHMARK(BM_Fork<model::Model>)->Name("BM_Fork/Model")->Apply(size_args);
BENCHMARK(BM_VmCopy<vm::Kernel>)->Name("BM_VmCopy/VM")->Apply(size_args);
BENCHMARK(BM_VmCopy<model::Model>)->Name("BM_VmCopy/Model")->Apply(size_args);

// ---------------------------------------------------------------------------------------
// Memory: resident frames against the page versions a task can still observe

struct MemoryFigures {
  uint64_t resident = 0;    // frames held by resident pages (Kernel::frames_owned)
  uint64_t observable = 0;  // distinct frames that some task's address can read
  unsigned longest_chain = 0;  // objects in the longest shadow chain (1 = no shadow)
  uint64_t objects = 0;
  // Where the garbage (resident, not observable) sits:
  uint64_t garbage_collapsible = 0;  // in an object with ref_count 1 whose one reference is
                                     // the shadow pointer of another object: a collapse of
                                     // that object would free or move it
  uint64_t collapsible_objects = 0;  // such objects
  uint64_t garbage_hidden = 0;       // in an object referenced only by the shadow pointers of
                                     // other objects, at an offset every one of them already
                                     // holds (or cannot see): freeable at copy-up time
  uint64_t tasks = 0, mapped_resident = 0;  // live tasks; (task, page) pairs read from a frame
};

/// Count what a workload left behind, through the kernel's introspection only.
MemoryFigures measure_memory(const vm::Kernel& k) {
  MemoryFigures f;
  f.resident = k.frames_owned();
  std::set<machine::pfn_t> seen;  // frame numbers: iteration order is numeric, not pointer
  for (unsigned t : k.tasks()) {
    for (const vm::EntryInfo& e : k.entries(t)) {
      for (uint64_t va = e.start; va < e.end; va += kPageSize) {
        vm::Provenance p = k.provenance(t, va);
        if (p.kind != vm::Provenance::Kind::Resident) continue;
        seen.insert(p.frame);
        f.mapped_resident++;
      }
    }
    f.tasks++;
  }
  f.observable = seen.size();
  const std::vector<vm::ObjectInfo> objs = k.objects();
  std::map<uint64_t, uint64_t> shadow_of;
  std::map<uint64_t, unsigned> shadowed_by;  // object id -> objects whose shadow it is
  for (const vm::ObjectInfo& o : objs) {
    shadow_of[o.id] = o.shadow;
    if (o.shadow != 0) shadowed_by[o.shadow]++;
  }
  f.objects = shadow_of.size();
  for (const auto& [id, sh] : shadow_of) {
    unsigned len = 1;
    for (uint64_t cur = sh; cur != 0 && len <= shadow_of.size(); ++len) {
      auto it = shadow_of.find(cur);
      cur = it == shadow_of.end() ? 0 : it->second;
    }
    f.longest_chain = std::max(f.longest_chain, len);
  }
  std::map<uint64_t, const vm::ObjectInfo*> by_id;
  std::map<uint64_t, std::set<uint64_t>> offsets;  // object id -> resident page offsets
  for (const vm::ObjectInfo& o : objs) {
    by_id[o.id] = &o;
    for (const vm::PageInfo& pg : o.pages) offsets[o.id].insert(pg.offset);
  }
  for (const vm::ObjectInfo& o : objs) {
    auto it = shadowed_by.find(o.id);
    if (it == shadowed_by.end() || o.ref_count != int(it->second)) continue;
    for (const vm::PageInfo& pg : o.pages) {
      if (pg.frame == machine::kNoFrame || seen.count(pg.frame)) continue;
      bool hidden = true;
      for (const vm::ObjectInfo& s : objs) {
        if (s.shadow != o.id) continue;
        const bool visible = pg.offset >= s.shadow_offset && pg.offset - s.shadow_offset < s.size;
        if (visible && !offsets[s.id].count(pg.offset - s.shadow_offset)) hidden = false;
      }
      if (hidden) f.garbage_hidden++;
    }
  }
  for (const vm::ObjectInfo& o : objs) {
    auto it = shadowed_by.find(o.id);
    if (o.ref_count != 1 || it == shadowed_by.end() || it->second != 1) continue;
    f.collapsible_objects++;
    for (const vm::PageInfo& pg : o.pages)
      if (pg.frame != machine::kNoFrame && !seen.count(pg.frame)) f.garbage_collapsible++;
  }
  return f;
}

constexpr uint64_t kWorkPages = 64;
constexpr unsigned kMaxLiveTasks = 6;

/// Fork-heavy: tasks fork, write some pages, and die, at random; t0 lives throughout.
/// `live` lists the live tasks and carries over between calls.
void fork_heavy(vm::Kernel& k, SplitMix& rng, unsigned rounds, std::vector<unsigned>& live) {
  for (unsigned r = 0; r < rounds; ++r) {
    const uint64_t action = rng.below(10);
    if (action < 3 && live.size() < kMaxLiveTasks) {
      unsigned parent = live[rng.below(live.size())], child = 1;
      while (std::find(live.begin(), live.end(), child) != live.end()) ++child;
      k.fork(parent, child);
      live.push_back(child);
    } else if (action < 5 && live.size() > 1) {
      const size_t i = 1 + rng.below(live.size() - 1);
      k.terminate(live[i]);
      live.erase(live.begin() + std::ptrdiff_t(i));
    } else {
      const unsigned t = live[rng.below(live.size())];
      const uint64_t n = 1 + rng.below(8);
      for (uint64_t j = 0; j < n; ++j) {
        const uint8_t b[1] = {uint8_t(rng.next())};
        require(k.write(t, kBase + rng.below(kWorkPages) * kPageSize, b, 0).kr == KERN_SUCCESS,
                "fork_heavy write");
      }
    }
  }
}

/// Copy-heavy: four regions of t0; vm_copy of whole or partial ranges between them,
/// writes, and now and then a fork whose child writes and dies.
void copy_heavy(vm::Kernel& k, SplitMix& rng, unsigned rounds) {
  constexpr uint64_t kRegions = 4, kRegionPages = kWorkPages / kRegions;
  auto region = [](uint64_t i) { return kBase + i * kRegionPages * kPageSize; };
  for (unsigned r = 0; r < rounds; ++r) {
    const uint64_t action = rng.below(10);
    if (action < 5) {
      const uint64_t from = rng.below(kRegions), to = (from + 1 + rng.below(kRegions - 1)) % kRegions;
      const uint64_t first = rng.below(kRegionPages), n = 1 + rng.below(kRegionPages - first);
      require(k.vm_copy(0, region(from) + first * kPageSize, n * kPageSize,
                        region(to) + first * kPageSize) == KERN_SUCCESS,
              "copy_heavy vm_copy");
    } else if (action < 9) {
      const uint8_t b[1] = {uint8_t(rng.next())};
      require(k.write(0, kBase + rng.below(kWorkPages) * kPageSize, b, 0).kr == KERN_SUCCESS,
              "copy_heavy write");
    } else {
      k.fork(0, 1);
      const uint8_t b[1] = {uint8_t(rng.next())};
      require(k.write(1, kBase + rng.below(kWorkPages) * kPageSize, b, 0).kr == KERN_SUCCESS,
              "copy_heavy child write");
      k.terminate(1);
    }
  }
}

/// Runs the workload from scratch each iteration (t0 with kWorkPages written pages) and
/// reports, at the end and at the worst of 20 checkpoints, the garbage share: frames
/// resident but observable by no task, as a percentage of resident frames.
void BM_Garbage(benchmark::State& state) {
  const bool copy = state.range(0) != 0;
  constexpr unsigned kRounds = 400, kCheckpoints = 20;
  MemoryFigures end{}, worst{};
  double worst_pct = 0;
  unsigned worst_chain = 0;
  for (auto _ : state) {
    vm::Kernel k(config_for(16 * kWorkPages));
    SplitMix rng{copy ? 0xc0beull : 0xf0beull};
    k.task_create(0);
    uint64_t addr = kBase;
    require(k.allocate(0, &addr, kWorkPages * kPageSize, false) == KERN_SUCCESS, "allocate");
    touch_pages(k, 0, kBase, kWorkPages, 1);
    worst_pct = 0;
    worst_chain = 0;
    std::vector<unsigned> live{0};
    for (unsigned c = 0; c < kCheckpoints; ++c) {
      if (copy)
        copy_heavy(k, rng, kRounds / kCheckpoints);
      else
        fork_heavy(k, rng, kRounds / kCheckpoints, live);
      MemoryFigures f = measure_memory(k);
      const double pct = f.resident ? 100.0 * double(f.resident - f.observable) / double(f.resident) : 0;
      if (pct >= worst_pct) worst = f;
      worst_pct = std::max(worst_pct, pct);
      worst_chain = std::max(worst_chain, f.longest_chain);
      end = f;
    }
  }
  state.counters["resident_frames"] = double(end.resident);
  state.counters["observable_versions"] = double(end.observable);
  state.counters["garbage_pct"] =
      end.resident ? 100.0 * double(end.resident - end.observable) / double(end.resident) : 0;
  state.counters["garbage_pct_worst"] = worst_pct;
  state.counters["longest_chain"] = double(end.longest_chain);
  state.counters["longest_chain_worst"] = double(worst_chain);
  state.counters["objects"] = double(end.objects);
  const uint64_t garbage = end.resident - end.observable;
  state.counters["garbage_in_collapsible_pct"] =
      garbage ? 100.0 * double(end.garbage_collapsible) / double(garbage) : 0;
  state.counters["collapsible_objects"] = double(end.collapsible_objects);
  state.counters["garbage_hidden_by_shadowers_pct"] =
      garbage ? 100.0 * double(end.garbage_hidden) / double(garbage) : 0;
  const uint64_t worst_garbage = worst.resident - worst.observable;
  state.counters["garbage_in_collapsible_worst_pct"] =
      worst_garbage ? 100.0 * double(worst.garbage_collapsible) / double(worst_garbage) : 0;
  state.counters["garbage_hidden_by_shadowers_worst_pct"] =
      worst_garbage ? 100.0 * double(worst.garbage_hidden) / double(worst_garbage) : 0;
  state.counters["tasks"] = double(end.tasks);
  state.counters["mapped_resident"] = double(end.mapped_resident);
}
BENCHMARK(BM_Garbage)->Name("BM_Garbage/ForkHeavy")->Arg(0)->Iterations(1);
BENCHMARK(BM_Garbage)->Name("BM_Garbage/CopyHeavy")->Arg(1)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
