// kernel.cc — the MemorySystem entry points: argument rounding and the exact codes of
// docs/language.md, then the Mach routines; plus introspection. Theory of operation: kernel.h.
//
// Range rules applied here (docs/language.md §General rules, §Details 1–14):
// - every range op covers [trunc(addr), round(addr + size)); size 0 succeeds doing nothing;
// - an end past 2^64 (or exactly 2^64) wraps: KERN_INVALID_ARGUMENT for allocate,
//   deallocate, protect and inherit; KERN_INVALID_ADDRESS for vm_read/vm_copy/vm_write
//   (checked in vm_map_copyin and vm_map_copy_overwrite);
// - deallocate, protect and inherit treat ranges outside user space as holes.
#include "vm/kernel.h"
#include "vm/machine/bugs.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace vmfuzz::vm {

namespace {

/// [trunc(addr), round(addr + size)) for size > 0; false when the end wraps.
bool page_range(uint64_t addr, uint64_t size, uint64_t* start, uint64_t* end) {
  uint64_t e = addr + size;
  if (e < addr || round_page(e) == 0) return false;
  *start = trunc_page(addr);
  *end = round_page(e);
  return true;
}

/// Clamp a range to user space (ranges outside it are holes for deallocate/protect/inherit).
void clamp_to_user(uint64_t* start, uint64_t* end) {
  *start = std::max(*start, kUserMin);
  *end = std::min(*end, kUserMax);
}

/// Device frames above RAM: one slot of kMaxDeviceSize per memory-object name.
constexpr uint32_t kDeviceFrames = uint32_t(kMaxNames * (kMaxDeviceSize / kPageSize));

}  // namespace

Kernel::Kernel(const SystemConfig& config)
    : config_(config),
      machine_(config.frames, config.cpus, config.tlb, kDeviceFrames),
      domain_(machine_),
      sys_(machine_, domain_),
      cpu_task_(config.cpus, -1) {
  init();
}

void Kernel::init() {
  machine_.set_fault_handler(this);
  sys_.cache_bound = config_.cache;
  sys_.collect_page_tables = [this]() {
    unsigned freed = 0;
    for (auto& t : tasks_)
      if (t && t->pmap != nullptr) freed += pmap::pmap_collect(t->pmap);
    return freed;
  };
}

void Kernel::reset(const SystemConfig& config) {
  release_all();  // as the destructor
  // Then the members, in the order the destructor destroys them, each rebuilt as the
  // constructor builds it.
  steps_.clear();
  reclaim_windows_.clear();
  copies_ = {};
  for (auto& t : tasks_) t.reset();
  VmSystem::FrameTables tables = sys_.take_frame_tables();
  sys_.~VmSystem();
  for (auto& m : mobjs_) m.reset();  // after every VM object (they outlive them)
  config_ = config;
  machine_.reset(config.frames, config.cpus, config.tlb, kDeviceFrames);
  domain_.reset();
  new (&sys_) VmSystem(machine_, domain_, std::move(tables));
  cpu_task_.assign(config.cpus, -1);
  init();
}

Kernel::~Kernel() {
  release_all();
  machine_.set_fault_handler(nullptr);
}

void Kernel::release_all() {
  // Handles, tasks and cached objects go through the VM, as the program's own ops would.
  for (unsigned c = 0; c < kMaxNames; ++c)
    if (copies_[c].present) discard(c);
  for (unsigned t = 0; t < kMaxNames; ++t)
    if (tasks_[t]) terminate(t);
  flush_cache();
}

void Kernel::flush_cache() {
  while (!sys_.cached.empty()) {
    VmObject* o = sys_.cached.front();
    sys_.cached.erase(sys_.cached.begin());
    vm_object_terminate(sys_, o);
  }
}

VmMap& Kernel::task_map_ref(unsigned t) {
  assert(task_exists(t) && "Kernel: no such task");
  return *tasks_[t];
}

pmap::pmap_t Kernel::task_pmap(unsigned t) const {
  return task_exists(t) ? tasks_[t]->pmap : nullptr;
}

bool Kernel::switch_to(unsigned t, unsigned cpu) {
  assert(cpu < machine_.cpu_count() && "Kernel: no such CPU");
  pmap::pmap_t p = vm_map_pmap(task_map_ref(t));
  if (p == nullptr) return false;
  pmap::pmap_activate(p, cpu);
  cpu_task_[cpu] = int(t);
  return true;
}

kern_return_t Kernel::page_fault(unsigned cpu, uint64_t cr2, uint32_t error_code) {
  int t = cpu < cpu_task_.size() ? cpu_task_[cpu] : -1;
  if (t < 0 || !task_exists(unsigned(t))) return KERN_INVALID_ADDRESS;
  return vm_fault(sys_, *tasks_[unsigned(t)], cr2, (error_code & machine::PF_W) != 0);
}

// --- Tasks and ranges --------------------------------------------------------------------------

void Kernel::task_create(unsigned t) {
  assert(t < kMaxNames && !tasks_[t] && "task_create: name in use");
  tasks_[t] = std::make_unique<VmMap>(sys_);
}

kern_return_t Kernel::allocate(unsigned t, uint64_t* addr, uint64_t size, bool anywhere) {
  VmMap& map = task_map_ref(t);
  if (size == 0) {
    *addr = 0;
    return KERN_SUCCESS;
  }
  if (anywhere) {
    uint64_t rs = round_page(size);
    if (rs == 0) return KERN_INVALID_ARGUMENT;
    uint64_t start = 0;
    if (!vm_map_find_space(map, rs, &start)) return KERN_NO_SPACE;
    kern_return_t kr = vm_map_enter(map, start, rs);
    assert(kr == KERN_SUCCESS && "allocate: found space is not free");
    *addr = start;
    return kr;
  }
  uint64_t start = 0, end = 0;
  if (!page_range(*addr, size, &start, &end)) return KERN_INVALID_ARGUMENT;
  if (start < kUserMin || end > kUserMax) return KERN_INVALID_ADDRESS;
  kern_return_t kr = vm_map_enter(map, start, end - start);
  if (kr == KERN_SUCCESS) *addr = start;
  return kr;
}

kern_return_t Kernel::deallocate(unsigned t, uint64_t addr, uint64_t size) {
  VmMap& map = task_map_ref(t);
  if (size == 0) return KERN_SUCCESS;
  uint64_t start = 0, end = 0;
  if (!page_range(addr, size, &start, &end)) return KERN_INVALID_ARGUMENT;
  clamp_to_user(&start, &end);
  vm_map_remove(map, start, end);
  reclaim_unseen_pages();
  return KERN_SUCCESS;
}

kern_return_t Kernel::protect(unsigned t, uint64_t addr, uint64_t size, bool set_max,
                              vm_prot_t prot) {
  VmMap& map = task_map_ref(t);
  if (size == 0) return KERN_SUCCESS;
  uint64_t start = 0, end = 0;
  if (!page_range(addr, size, &start, &end)) return KERN_INVALID_ARGUMENT;
  clamp_to_user(&start, &end);
  return vm_map_protect(map, start, end, prot & VM_PROT_ALL, set_max);
}

kern_return_t Kernel::inherit(unsigned t, uint64_t addr, uint64_t size, vm_inherit_t inh) {
  VmMap& map = task_map_ref(t);
  if (size == 0) return KERN_SUCCESS;
  uint64_t start = 0, end = 0;
  if (!page_range(addr, size, &start, &end)) return KERN_INVALID_ARGUMENT;
  clamp_to_user(&start, &end);
  vm_map_inherit(map, start, end, inh);
  return KERN_SUCCESS;
}

// --- User accesses -----------------------------------------------------------------------------

Access Kernel::run_access(KThread& th, std::span<const uint8_t> wdata, bool* blocked) {
  Access a;
  *blocked = false;
  const uint64_t start = th.addr + th.done;  // wraps as the hardware's adder does
  if (th.memory_error) {  // its request was answered data_error (vm_fault: KERN_MEMORY_ERROR)
    a.kr = KERN_MEMORY_ERROR;
    a.fault_addr = start;
    return a;
  }
  if (!switch_to(th.task, th.cpu)) {
    a.kr = KERN_RESOURCE_SHORTAGE;
    a.fault_addr = start;
    return a;
  }
  sys_.sched.current = &th;
  machine::AccessResult r;
  if (th.write) {
    r = machine_.store(th.cpu, start, wdata);
    a.bytes.assign(wdata.begin(), wdata.begin() + std::ptrdiff_t(r.done));
  } else {
    a.bytes.resize(th.size - th.done);
    r = machine_.load(th.cpu, start, a.bytes);
    a.bytes.resize(r.done);
  }
  sys_.sched.current = nullptr;
  th.woken_from = WaitEvent{};
  th.done += r.done;
  if (r.kr == kFaultBlocked) {
    assert(th.state == KThread::State::Blocked && th.id != 0 && "run_access: blocked without assert_wait");
    *blocked = true;
    a.kr = KERN_SUCCESS;
    a.fault_addr = r.fault_addr;
    return a;
  }
  a.kr = r.kr;
  a.fault_addr = r.kr == KERN_SUCCESS ? 0 : r.fault_addr;
  return a;
}

Access Kernel::write(unsigned t, uint64_t addr, std::span<const uint8_t> data, unsigned cpu) {
  if (data.empty()) return Access{};
  KThread th;
  th.task = t, th.cpu = cpu, th.write = true, th.addr = addr, th.size = data.size();
  bool blocked = false;
  Access a = run_access(th, data, &blocked);
  if (blocked) {
    th.data.assign(data.begin(), data.end());
    a.thread = th.id;
    sys_.sched.threads.emplace(th.id, std::move(th));
  }
  return a;
}

Access Kernel::read(unsigned t, uint64_t addr, uint64_t size, unsigned cpu) {
  if (size == 0) return Access{};
  KThread th;
  th.task = t, th.cpu = cpu, th.write = false, th.addr = addr, th.size = size;
  bool blocked = false;
  Access a = run_access(th, {}, &blocked);
  if (blocked) {
    a.thread = th.id;
    sys_.sched.threads.emplace(th.id, std::move(th));
  }
  return a;
}

// --- Concurrency: held managers, replies, the schedule (docs/concurrency.md) -------------------

void Kernel::run_thread(uint32_t id) {
  KThread& th = sys_.sched.threads.at(id);
  assert(th.state == KThread::State::Runnable && "run_thread: thread is not runnable");
  ++sys_.sched.step;
  std::span<const uint8_t> w;
  if (th.write) w = std::span<const uint8_t>(th.data).subspan(th.done);
  ThreadStep st;
  st.thread = id;
  if (th.kind != KThread::Kind::Access) {  // from the top (run_kernel_op)
    st.access.kr = run_kernel_op(th, &st.blocked);
  } else {
    st.access = run_access(th, w, &st.blocked);
  }
  if (!st.blocked) sys_.sched.threads.erase(id);
  steps_.push_back(std::move(st));
}

void Kernel::hold(unsigned m) { manager_ref(m).hold(); }

void Kernel::hold_init(unsigned m) { manager_ref(m).hold_init(); }

void Kernel::silent(unsigned m) { manager_ref(m).silence(); }

void Kernel::ready(unsigned m) {
  if (manager_ref(m).silent()) return;  // a silent manager answers nothing
  memory_object_ready(sys_, manager_ref(m));
  reclaim_unseen_pages();
}

kern_return_t Kernel::supply(unsigned m, uint64_t offset) {
  ManagerPager& mp = manager_ref(m);
  if (mp.destroyed || offset >= mp.size()) return KERN_INVALID_ARGUMENT;
  if (!mp.silent()) memory_object_data_supply(sys_, mp, trunc_page(offset));
  reclaim_unseen_pages();
  return KERN_SUCCESS;
}

kern_return_t Kernel::lock(unsigned m, uint64_t offset, uint64_t size, uint8_t how) {
  ManagerPager& mp = manager_ref(m);
  if (mp.destroyed || offset > mp.size() || size > mp.size() - offset) return KERN_INVALID_ARGUMENT;
  if (size == 0 || mp.silent()) return KERN_SUCCESS;  // a silent manager sends nothing
  memory_object_lock_request_async(sys_, mp, trunc_page(offset), round_page(offset + size),
                                   (how & kLockReturn) != 0, (how & kLockFlush) != 0);
  reclaim_unseen_pages();
  return KERN_SUCCESS;
}

bool Kernel::ack(unsigned m, unsigned choice, bool exact) {
  ManagerPager& mp = manager_ref(m);
  const size_t n = mp.returns.size();
  if (exact ? choice >= n : n == 0) return !exact;
  if (mp.silent()) return true;  // a silent manager answers nothing
  memory_object_return_ack(sys_, mp, exact ? choice : choice % n);
  reclaim_unseen_pages();
  return true;
}

kern_return_t Kernel::reply(unsigned m, unsigned choice, bool exact, ReplyHow how, ReplyInfo* out) {
  ManagerPager& mp = manager_ref(m);
  *out = ReplyInfo{};
  const size_t n = mp.requests.size();
  if (exact ? choice >= n : n == 0) return KERN_SUCCESS;
  const size_t i = exact ? choice : choice % n;
  out->exists = true;
  out->offset = mp.requests[i].pager_offset;
  out->owner = mp.requests[i].owner;
  if (mp.silent()) {  // a silent manager answers nothing
    out->silent = true;
    return KERN_SUCCESS;
  }
  // As for manager_write: a manager may change its data only when no lazy copy reads it.
  if (how == ReplyHow::Unavailable && mp.strategy() != CopyStrategy::None) return KERN_INVALID_ARGUMENT;
  memory_object_reply(sys_, mp, i, how);
  reclaim_unseen_pages();
  return KERN_SUCCESS;
}

bool Kernel::run(unsigned choice, bool exact) {
  std::vector<uint32_t> r = sys_.sched.runnable();
  if (exact) {
    if (std::find(r.begin(), r.end(), choice) == r.end()) return false;
    run_thread(choice);
    return true;
  }
  if (!r.empty()) run_thread(r[choice % r.size()]);
  return true;
}

MemorySystem::Quiesce Kernel::quiesce_step() {
  std::vector<uint32_t> r = sys_.sched.runnable();
  if (!r.empty()) {
    run_thread(r.front());
    return Quiesce::Progress;
  }
  // Nothing runnable: the lowest-numbered manager with a message to answer answers its
  // oldest: a pending memory_object_init (ready) before any data request (supply).
  for (auto& mp : mobjs_) {
    if (!mp || mp->silent() || (mp->requests.empty() && mp->init_object == 0 && mp->returns.empty())) continue;
    if (mp->init_object != 0) memory_object_ready(sys_, *mp);
    else if (!mp->requests.empty()) memory_object_reply(sys_, *mp, 0, ReplyHow::Supply);
    else memory_object_return_ack(sys_, *mp, 0);  // then its oldest data_return is acknowledged
    reclaim_unseen_pages();
    return Quiesce::Progress;
  }
  if (sys_.sched.threads.empty()) return Quiesce::Done;
  for (const auto& [id, t] : sys_.sched.threads)
    if (t.state != KThread::State::Blocked || !waits_for_silent(t)) return Quiesce::Deadlock;
  return Quiesce::Silenced;
}

bool Kernel::waits_for_silent(const KThread& t) const {
  for (const auto& mp : mobjs_) {
    if (!mp || !mp->silent()) continue;
    switch (t.event.kind) {
      case WaitEvent::Kind::None: return false;
      case WaitEvent::Kind::PageBusy:
        for (const PagerRequest& r : mp->requests)
          if (r.object == t.event.object && r.offset == t.event.offset) return true;
        for (const PagerReturn& r : mp->returns)
          if (r.object == t.event.object && r.offset == t.event.offset) return true;
        break;
      case WaitEvent::Kind::AbsentBelow:
        for (const PagerRequest& r : mp->requests)
          if (r.object == t.event.object) return true;
        break;
      case WaitEvent::Kind::PagerReady:
        if (mp->init_object == t.event.object) return true;
        break;
    }
  }
  return false;
}

std::vector<ThreadStep> Kernel::take_steps() {
  std::vector<ThreadStep> s;
  s.swap(steps_);
  return s;
}

// --- Fork and termination ------------------------------------------------------------------------

void Kernel::fork(unsigned parent, unsigned child) {
  VmMap& p = task_map_ref(parent);
  task_create(child);
  vm_map_fork(p, *tasks_[child]);
}

void Kernel::terminate(unsigned t) {
  VmMap& map = task_map_ref(t);
  // The task's threads in flight are aborted (thread_terminate): their accesses end here,
  // with the bytes they moved; their requests stay in flight with no owner.
  // A vm_write's copy goes with it (its message is dropped).
  for (auto it = sys_.sched.threads.begin(); it != sys_.sched.threads.end();) {
    if (it->second.task != t) {
      ++it;
      continue;
    }
    if (it->second.copy != nullptr) vm_map_copy_discard(sys_, it->second.copy);
    it = sys_.sched.threads.erase(it);
  }
  vm_map_destroy(map);
  for (int& ct : cpu_task_)
    if (ct == int(t)) ct = -1;
  tasks_[t].reset();
  reclaim_unseen_pages();
}

void Kernel::reclaim_unseen_pages() {
  if (!sys_.tunables.shadow_reclaim_allowed) return;
  std::vector<ObjectWindow>& windows = reclaim_windows_;  // reused: no allocation per op
  windows.clear();
  for (const auto& map : tasks_) {
    if (!map) continue;
    for (const auto& [start, e] : map->entries)
      if (e.object != nullptr) windows.push_back({e.object->id, e.offset, e.offset + (e.end - start)});
  }
  for (const Handle& h : copies_) {
    if (!h.present || h.copy == nullptr) continue;
    for (const VmMapCopyEntry& ce : h.copy->entries)
      if (ce.object != nullptr)
        windows.push_back({ce.object->id, ce.offset, ce.offset + (ce.end - ce.start)});
  }
  for (const auto& [id, th] : sys_.sched.threads) {  // a vm_write in flight sees its copy
    if (th.copy == nullptr) continue;
    for (const VmMapCopyEntry& ce : th.copy->entries)
      if (ce.object != nullptr)
        windows.push_back({ce.object->id, ce.offset, ce.offset + (ce.end - ce.start)});
  }
  vm_object_reclaim_unseen(sys_, windows);
}

// --- Copies --------------------------------------------------------------------------------------

bool Kernel::kernel_threads_possible() const {
  for (const auto& mp : mobjs_)
    if (mp && (!mp->requests.empty() || mp->init_object != 0)) return true;
  return false;
}

// vm_copy and vm_write as kernel threads (docs/concurrency.md §Threads): each run starts
// from the top. vm_copy copies its source in again (a copy made in a run that then waits
// is discarded: making it changed nothing a task can see), vm_write keeps the copy its
// message carries; then the overwrite's wait (vm_map_copy_overwrite_wait) looks for a
// destination page in transit or a manager not ready, and the thread blocks there having
// changed nothing. Otherwise the overwrite runs to its end within the run, with no thread
// current (it asks no held manager and meets nothing in transit): the op takes effect whole
// in the run that completes it, its linearization point. With no request in flight and no
// init pending anywhere nothing can be waited for, and the op runs as it always did.
kern_return_t Kernel::run_kernel_op(KThread& th, bool* blocked) {
  *blocked = false;
  VmMap& map = task_map_ref(th.task);
  VmMapCopy* copy = th.copy;
  if (th.kind == KThread::Kind::VmCopy) {
    if (kern_return_t kr = vm_map_copyin(map, th.addr, th.size, &copy)) return kr;
  }
  if (kernel_threads_possible()) {
    sys_.sched.current = &th;
    *blocked = vm_map_copy_overwrite_wait(map, th.dst, copy);
    sys_.sched.current = nullptr;
    th.woken_from = WaitEvent{};
  }
  if (*blocked) {
    assert(th.state == KThread::State::Blocked && th.id != 0 && "run_kernel_op: blocked without assert_wait");
    ++sys_.counters.thread_blocks;
    if (th.kind == KThread::Kind::VmCopy) {
      vm_map_copy_discard(sys_, copy);
      reclaim_unseen_pages();
    }
    return KERN_SUCCESS;
  }
  kern_return_t kr = vm_map_copy_overwrite(map, th.dst, copy);
  vm_map_copy_discard(sys_, copy);
  th.copy = nullptr;
  reclaim_unseen_pages();
  return kr;
}

kern_return_t Kernel::start_kernel_op(KThread& th) {
  bool blocked = false;
  kern_return_t kr = run_kernel_op(th, &blocked);
  if (!blocked) return kr;
  op_thread_ = th.id;
  sys_.sched.threads.emplace(th.id, std::move(th));
  return KERN_SUCCESS;
}

kern_return_t Kernel::vm_copy(unsigned t, uint64_t src, uint64_t size, uint64_t dst) {
  op_thread_ = 0;
  KThread th;
  th.kind = KThread::Kind::VmCopy;
  th.task = t, th.addr = src, th.size = size, th.dst = dst;
  return start_kernel_op(th);
}

kern_return_t Kernel::vm_read(unsigned t, uint64_t addr, uint64_t size, unsigned c) {
  assert(c < kMaxNames && !copies_[c].present && "vm_read: handle in use");
  VmMapCopy* copy = nullptr;
  kern_return_t kr = vm_map_copyin(task_map_ref(t), addr, size, &copy);
  if (kr != KERN_SUCCESS) return kr;
  copies_[c].present = true;
  copies_[c].copy = copy;
  return KERN_SUCCESS;
}

kern_return_t Kernel::vm_write(unsigned t, uint64_t addr, unsigned c) {
  assert(copy_exists(c) && "vm_write: no such handle");
  op_thread_ = 0;
  KThread th;
  th.kind = KThread::Kind::VmWrite;
  th.task = t, th.dst = addr;
  th.copy = copies_[c].copy;  // the message takes the copy: the handle is free at once
  copies_[c] = Handle{};
  return start_kernel_op(th);
}

kern_return_t Kernel::copyout(unsigned t, unsigned c, uint64_t* addr) {
  assert(copy_exists(c) && "copyout: no such handle");
  VmMapCopy* copy = copies_[c].copy;
  copies_[c] = Handle{};
  return vm_map_copyout(task_map_ref(t), copy, addr);
}

void Kernel::discard(unsigned c) {
  assert(copy_exists(c) && "discard: no such handle");
  vm_map_copy_discard(sys_, copies_[c].copy);
  copies_[c] = Handle{};
  reclaim_unseen_pages();
}

// --- Memory objects ------------------------------------------------------------------------------

ManagerPager& Kernel::manager_ref(unsigned m) {
  assert(m < kMaxNames && mobjs_[m] && "Kernel: no such memory object");
  return *mobjs_[m];
}

void Kernel::object_create(unsigned m, uint64_t size, CopyStrategy strategy, bool persist,
                           std::span<const uint8_t> init) {
  assert(m < kMaxNames && (!mobjs_[m] || mobjs_[m]->destroyed) && "object_create: name in use");
  constexpr uint64_t kLastPage = ~uint64_t{0} & ~(kPageSize - 1);
  uint64_t rounded = size > kLastPage ? kLastPage : round_page(size);
  assert(init.size() <= rounded && "object_create: initial contents longer than the object");
  if (mobjs_[m]) {
    // A destroyed name reused: its old manager may still back nothing; objects that
    // pointed at it lost it at destroy (pager_lost), so it can go.
    assert(mobjs_[m]->kobject == nullptr && mobjs_[m]->pending().empty() &&
           "object_create: reused manager still in use");
  }
  mobjs_[m] = std::make_unique<ManagerPager>(rounded, strategy, persist);
  // Store only non-zero pages (absent pages read zero).
  for (uint64_t off = 0; off < init.size(); off += kPageSize) {
    uint64_t n = std::min<uint64_t>(kPageSize, init.size() - off);
    if (std::any_of(init.begin() + std::ptrdiff_t(off), init.begin() + std::ptrdiff_t(off + n),
                    [](uint8_t b) { return b != 0; }))
      mobjs_[m]->store_write(off, init.data() + off, n);
  }
}

void Kernel::device_create(unsigned m, uint64_t size, std::span<const uint8_t> init) {
  assert(m < kMaxNames && (!mobjs_[m] || mobjs_[m]->destroyed) && "device_create: name in use");
  uint64_t rounded = round_page(size);
  assert(rounded <= kMaxDeviceSize && init.size() <= rounded && "device_create: bad size");
  if (mobjs_[m])
    assert(mobjs_[m]->kobject == nullptr && mobjs_[m]->pending().empty() &&
           "device_create: reused manager still in use");
  // Each name has its own slot of device frames (the device's "physical address").
  machine::PhysicalMemory& mem = machine_.memory();
  machine::pfn_t base = mem.device_base() + machine::pfn_t(m * (kMaxDeviceSize / kPageSize));
  mobjs_[m] = std::make_unique<ManagerPager>(rounded, mem, base);
  for (uint64_t off = 0; off < rounded; off += kPageSize)
    std::memset(mem.frame(base + machine::pfn_t(off / kPageSize)), 0, kPageSize);
  if (!init.empty()) mobjs_[m]->store_write(0, init.data(), init.size());
}

kern_return_t Kernel::map(unsigned t, uint64_t* addr, bool anywhere, uint64_t size, unsigned m,
                          uint64_t offset, bool share, vm_prot_t prot, vm_prot_t max_prot,
                          vm_inherit_t inh) {
  VmMap& vmap = task_map_ref(t);
  ManagerPager& mp = manager_ref(m);
  // The object's own checks (docs/language.md §Details 5).
  if (size == 0 || (offset & (kPageSize - 1)) != 0 || offset > mp.size() ||
      size > mp.size() - offset || (prot & ~max_prot) != 0 || mp.destroyed)
    return KERN_INVALID_ARGUMENT;
  uint64_t length = round_page(size);  // no overflow: size <= object size
  uint64_t start = 0;
  if (anywhere) {
    if (!vm_map_find_space(vmap, length, &start)) return KERN_NO_SPACE;
  } else {
    start = trunc_page(*addr);
    if (length > UINT64_MAX - start || start + length > ~uint64_t{0} - (kPageSize - 1))
      return KERN_INVALID_ARGUMENT;
    if (start < kUserMin || start + length > kUserMax) return KERN_INVALID_ADDRESS;
    if (!vm_map_range_free(vmap, start, start + length)) return KERN_NO_SPACE;
  }
  VmObject* object = vm_object_enter(sys_, mp);
  VmMapEntry e;
  e.start = start;
  e.end = start + length;
  e.protection = prot;
  e.max_protection = max_prot;
  e.inheritance = inh;
  if (share) {
    e.object = object;
    e.offset = offset;
  } else {
    kern_return_t kr = vm_object_copy_strategically(sys_, object, offset, length, false, &e.object,
                                                    &e.offset, &e.needs_copy);
    vm_object_deallocate(sys_, object);  // the copy holds what it needs
    if (kr != KERN_SUCCESS) return kr;
  }
  vm_map_enter_object(vmap, e);
  *addr = start;
  return KERN_SUCCESS;
}

kern_return_t Kernel::manager_write(unsigned m, uint64_t offset, std::span<const uint8_t> data) {
  ManagerPager& mp = manager_ref(m);
  if (mp.destroyed || mp.strategy() != CopyStrategy::None || offset > mp.size() ||
      data.size() > mp.size() - offset)
    return KERN_INVALID_ARGUMENT;
  if (data.empty()) return KERN_SUCCESS;
  if (mp.is_device()) {
    // The device changes its own memory, without asking the kernel: shared mappings map
    // that memory (private pages), so they see the new bytes at once.
    mp.store_write(offset, data.data(), data.size());
    return KERN_SUCCESS;
  }
  // The kernel returns dirty pages and drops its cached ones, then the store changes:
  // shared mappings refault and see the new bytes; copies (COPY_NONE: eager) do not.
  if (VmObject* o = mp.kobject)
    memory_object_lock_request(sys_, o, trunc_page(offset), round_page(offset + data.size()),
                               true, true);
  mp.store_write(offset, data.data(), data.size());
  return KERN_SUCCESS;
}

Access Kernel::file(unsigned m, uint64_t offset, uint64_t size) {
  ManagerPager& mp = manager_ref(m);
  Access a;
  if (offset > mp.size() || size > mp.size() - offset) {
    a.kr = KERN_INVALID_ARGUMENT;
    return a;
  }
  a.bytes.assign(size, 0);
  if (mp.destroyed) {
    a.unknown.assign(size, 1);  // docs/language.md §Details 12: the store is gone
    return a;
  }
  if (size == 0) return a;
  // A device's memory already holds every store through its mappings: read it as it is.
  if (VmObject* o = mp.kobject; o != nullptr && !mp.is_device())
    memory_object_lock_request(sys_, o, trunc_page(offset), round_page(offset + size), true, false);
  mp.store_read(offset, size, a.bytes.data());
  return a;
}

kern_return_t Kernel::destroy(unsigned m) {
  ManagerPager& mp = manager_ref(m);
  if (mp.destroyed) return KERN_INVALID_ARGUMENT;
  memory_object_destroy(sys_, mp);
  return KERN_SUCCESS;
}

PeekStatus Kernel::peek_object_page(unsigned m, uint64_t offset,
                                    std::span<uint8_t, kPageSize> out) const {
  const ManagerPager* mp = memory_object(m);
  assert(mp != nullptr && "peek_object_page: no such memory object");
  if (mp->destroyed) return PeekStatus::Unknown;
  // What `file` would return: the kernel's resident page (dirty or clean, it is the
  // newest) or else the store.
  if (const VmObject* o = mp->kobject) {
    const VmPage* p = vm_page_lookup(o, offset);
    if (p != nullptr && !p->absent) {
      std::memcpy(out.data(), machine_.memory().frame(p->frame), kPageSize);
      return PeekStatus::Mapped;
    }
  }
  mp->store_read(offset, kPageSize, out.data());
  return PeekStatus::Mapped;
}

void Kernel::object_pages_of_interest(unsigned m, std::vector<uint64_t>& out) const {
  const ManagerPager* mp = memory_object(m);
  assert(mp != nullptr && "object_pages_of_interest: no such memory object");
  if (mp->destroyed) return;
  size_t first = out.size();
  mp->offsets(0, mp->size(), out);
  if (const VmObject* o = mp->kobject)
    for (const VmPage* p = vm_page_next(o, 0); p != nullptr; p = vm_page_next(o, p->offset + kPageSize))
      out.push_back(p->offset);
  std::sort(out.begin() + std::ptrdiff_t(first), out.end());
  out.erase(std::unique(out.begin() + std::ptrdiff_t(first), out.end()), out.end());
}

// --- Pageout -------------------------------------------------------------------------------

void Kernel::pageout(uint64_t count, bool all) {
  vm_pageout_scan(sys_, all ? UINT64_MAX : count, true);
  if (all) {
    // Page-table pages too (pmap_collect): mappings dropped here are refaulted.
    for (auto& t : tasks_)
      if (t && t->pmap != nullptr) pmap::pmap_collect(t->pmap);
  }
}

void Kernel::collect(unsigned t) {
  // As the pageout daemon does to a swapped task: every mapping goes, the pages stay.
  VmMap& map = task_map_ref(t);
  if (map.pmap != nullptr) pmap::pmap_collect(map.pmap);
}

// --- Views for the oracles -----------------------------------------------------------------------

std::vector<RegionInfo> Kernel::regions(unsigned t) const {
  std::vector<RegionInfo> out;
  const VmMap* map = task_map(t);
  if (map == nullptr) return out;
  for (const auto& [start, e] : map->entries) {
    RegionInfo r{e.start, e.end, e.protection, e.max_protection, e.inheritance};
    if (!out.empty() && out.back().end == r.start && out.back().prot == r.prot &&
        out.back().max_prot == r.max_prot && out.back().inherit == r.inherit) {
      out.back().end = r.end;
    } else {
      out.push_back(r);
    }
  }
  return out;
}

void Kernel::pages_of_interest(unsigned t, std::vector<uint64_t>& out) const {
  const VmMap* map = task_map(t);
  if (map == nullptr) return;
  size_t first = out.size();
  std::vector<uint64_t> pager_offsets;
  for (const auto& [start, e] : map->entries) {
    uint64_t off = e.offset, end = e.offset + (e.end - e.start);
    for (const VmObject* o = e.object; o != nullptr; o = o->shadow) {
      for (const VmPage* p = vm_page_next(o, off); p != nullptr && p->offset < end;
           p = vm_page_next(o, p->offset + kPageSize))
        out.push_back(e.start + (p->offset - off));
      if (o->pager != nullptr) {
        // Paged-out pages (pager offsets back to object offsets).
        size_t from = pager_offsets.size();
        o->pager->offsets(off + o->paging_offset, end + o->paging_offset, pager_offsets);
        for (size_t i = from; i < pager_offsets.size(); ++i)
          out.push_back(e.start + (pager_offsets[i] - o->paging_offset - off));
      }
      off += o->shadow_offset;
      end += o->shadow_offset;
    }
  }
  std::sort(out.begin() + std::ptrdiff_t(first), out.end());
  out.erase(std::unique(out.begin() + std::ptrdiff_t(first), out.end()), out.end());
}

PeekStatus Kernel::peek_page(unsigned t, uint64_t va, std::span<uint8_t, kPageSize> out) const {
  const VmMap* map = task_map(t);
  if (map == nullptr) return PeekStatus::Unmapped;
  const VmMapEntry* e = vm_map_lookup_entry(*map, va);
  if (e == nullptr) return PeekStatus::Unmapped;
  std::memset(out.data(), 0, kPageSize);
  if (e->object == nullptr) return PeekStatus::Mapped;
  ChainLookup l = vm_object_chain_lookup(e->object, e->offset + (trunc_page(va) - e->start));
  if (l.lost) return PeekStatus::Unknown;
  if (l.page != nullptr) std::memcpy(out.data(), machine_.memory().frame(l.page->frame), kPageSize);
  else if (l.data != nullptr) std::memcpy(out.data(), l.data, kPageSize);
  return PeekStatus::Mapped;
}

// --- Introspection ---------------------------------------------------------------------------------

std::vector<unsigned> Kernel::tasks() const {
  std::vector<unsigned> out;
  for (unsigned t = 0; t < kMaxNames; ++t)
    if (tasks_[t]) out.push_back(t);
  return out;
}

std::vector<EntryInfo> Kernel::entries(unsigned t) const {
  std::vector<EntryInfo> out;
  const VmMap* map = task_map(t);
  if (map == nullptr) return out;
  for (const auto& [start, e] : map->entries) {
    EntryInfo i;
    i.start = e.start;
    i.end = e.end;
    i.prot = e.protection;
    i.max_prot = e.max_protection;
    i.inherit = e.inheritance;
    i.needs_copy = e.needs_copy;
    i.is_shared = e.is_shared;
    i.object = e.object != nullptr ? e.object->id : 0;
    i.offset = e.offset;
    out.push_back(i);
  }
  return out;
}

static ObjectInfo describe(const VmObject& o) {
  ObjectInfo i;
  i.id = o.id;
  i.ref_count = o.ref_count;
  i.size = o.size;
  i.shadow = o.shadow != nullptr ? o.shadow->id : 0;
  i.shadow_offset = o.shadow_offset;
  i.copy = o.copy != nullptr ? o.copy->id : 0;
  i.internal = o.internal;
  i.temporary = o.temporary;
  i.shadowed = o.shadowed;
  i.use_shared_copy = o.use_shared_copy;
  i.can_persist = o.can_persist;
  i.pager_created = o.pager_created;
  i.pager_initialized = o.pager_initialized;
  i.pager_ready = o.pager_ready;
  i.copy_strategy = o.copy_strategy;
  i.paging_in_progress = o.paging_in_progress;
  i.absent_count = o.absent_count;
  i.resident_page_count = o.resident_page_count;
  for (const VmPage* p = vm_page_next(&o, 0); p != nullptr; p = vm_page_next(&o, p->offset + kPageSize)) {
    PageInfo pi;
    pi.offset = p->offset;
    pi.frame = p->frame;
    pi.busy = p->busy;
    pi.cleaning = p->cleaning;
    pi.absent = p->absent;
    pi.dirty = p->dirty;
    pi.precious = p->precious;
    pi.page_lock = p->page_lock;
    pi.wire_count = p->wire_count;
    pi.device = p->private_page;
    i.pages.push_back(pi);
  }
  return i;
}

std::vector<ObjectInfo> Kernel::objects() const {
  std::vector<ObjectInfo> out;
  for (const auto& [id, o] : sys_.objects) {
    (void)id;
    out.push_back(describe(*o));
  }
  return out;
}

std::optional<ObjectInfo> Kernel::object_info(uint64_t id) const {
  auto it = sys_.objects.find(id);
  if (it == sys_.objects.end()) return std::nullopt;
  return describe(*it->second);
}

uint32_t Kernel::frames_owned() const {
  return machine_.memory().count_of(machine::FrameUse::VmPage);
}

Provenance Kernel::provenance(unsigned t, uint64_t va) const {
  Provenance pr;
  const VmMap* map = task_map(t);
  if (map == nullptr) return pr;
  const VmMapEntry* e = vm_map_lookup_entry(*map, va);
  if (e == nullptr) return pr;
  pr.needs_copy = e->needs_copy;
  if (e->object == nullptr) {
    pr.kind = Provenance::Kind::NoObject;
    pr.offset = trunc_page(va) - e->start;
    return pr;
  }
  ChainLookup l = vm_object_chain_lookup(e->object, e->offset + (trunc_page(va) - e->start));
  pr.kind = l.page != nullptr   ? Provenance::Kind::Resident
            : l.data != nullptr ? Provenance::Kind::PagedOut
                                : Provenance::Kind::ZeroFill;
  pr.lost = l.lost;
  pr.object = l.object->id;
  pr.depth = l.depth;
  pr.offset = l.offset;
  if (l.page != nullptr) pr.frame = l.page->frame;
  return pr;
}

}  // namespace vmfuzz::vm
