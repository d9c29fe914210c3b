// kernel.h — the system under test: the Mach-style VM (vm_object, vm_fault, vm_map) on
// the simulated machine, behind the MemorySystem interface of vocab.h.
//
// Theory of operation
// -------------------
// A Kernel owns one simulated Machine (frames, CPUs, TLBs), the PmapDomain above it, and
// the machine-independent VM state (VmSystem: objects, page queues, counters, tunables).
// Tasks t0..t15 are VmMaps (each with a pmap created on first use); copy handles
// c0..c15 are VmMapCopy objects (Mach's vm_map_copy_t, made by vm_read).
//
// Each MemorySystem entry point does its own range rounding and checks and returns
// exactly the codes of docs/language.md (§Ops, §Details 1–14), then calls the Mach routine:
//   allocate -> vm_map_enter / vm_map_find_space   deallocate -> vm_map_remove
//   protect  -> vm_map_protect                     inherit    -> vm_map_inherit
//   fork     -> vm_map_fork                        terminate  -> vm_map_destroy
//   vm_read  -> vm_map_copyin                      copyout    -> vm_map_copyout
//   vm_write -> vm_map_copy_overwrite              vm_copy    -> copyin + overwrite
//   read/write: pmap_activate(task pmap, cpu), then Machine::load/store; the machine
//   delivers page faults to this kernel, which calls vm_fault.
// Kernel copies (vm_read, vm_write's slow path) use frames directly, never the MMU.
//
// Introspection (const, side-effect free; for the harness, explanations and the
// invariant checkers in harness/exec/invariants.h):
//   tasks(), entries(t)        map entries: range, prot, max, inherit, needs_copy, shared,
//                              object id (0 = none yet) and offset
//   objects(), object_info(id) objects by stable creation-order id: ref_count, size,
//                              shadow / shadow_offset / copy ids, flags, resident pages
//                              (offset, frame, flags)
//   frames_owned()             frames held by resident pages
//   provenance(t, va)          which object at which chain depth supplies the byte at va
//                              (resident page, or zero-fill), as a fault would find it
//   counters(), tunables()     per-mechanism counters; switchable optimizations
//   machine(), domain(), task_pmap(t)   the hardware and pmaps (TLBs via machine().cpu(i))
//   system(), task_map(t), copy_handle(c)  the raw structures, read-only, for checkers
//   object   -> a ManagerPager (simulated external manager, memory_object.h)
//   device   -> a device's ManagerPager over its slot of device frames; faults map the
//               device memory with vm_object_page_map
//   map      -> vm_object_enter, then share the object or vm_object_copy_strategically
//   manager_write -> memory_object_lock_request(return, flush), then the store changes
//   file     -> memory_object_lock_request(return), then the store is read
//   destroy  -> memory_object_destroy (copies made independent first)
//   pageout  -> vm_pageout_scan (internal objects go to the default pager, vm_pageout.h)
//   collect  -> pmap_collect of the task's pmap (page tables freed, pages stay resident)
//   hold     -> the manager queues data requests (ManagerPager::hold)
//   reply    -> memory_object_reply (data_supply / data_unavailable / data_error)
//   lock     -> memory_object_lock_request_async (returns by message when held)
//   ack      -> memory_object_return_ack (the manager takes one data_return)
//   run      -> one step of one runnable kernel thread (sched.h)
//   quiesce  -> run and answer until no thread is left (or a deadlock is found)
// A user access that must wait for a held manager becomes a kernel thread (sched.h,
// docs/concurrency.md): read/write return it in flight, and its later runs come out of
// take_steps() in the order they happened.
// Memory objects m0..m15 are ManagerPagers owned here; their VM objects are found through
// the manager (vm_object_enter) and may sit in the object cache (bound: config.cache).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "vm/machine/machine.h"
#include "vm/memory_object.h"
#include "vm/pmap/pmap.h"
#include "vm/vm_fault.h"
#include "vm/vm_map.h"
#include "vm/vm_object.h"
#include "vm/vm_pageout.h"
#include "vmfuzz/vocab.h"

namespace vmfuzz::vm {

/// One map entry, for introspection.
struct EntryInfo {
  uint64_t start = 0, end = 0;
  vm_prot_t prot = 0, max_prot = 0;
  vm_inherit_t inherit = vm_inherit_t::Copy;
  bool needs_copy = false, is_shared = false;
  uint64_t object = 0;  // object id; 0: no object yet (zero memory)
  uint64_t offset = 0;
};

/// One resident page, for introspection.
struct PageInfo {
  uint64_t offset = 0;
  machine::pfn_t frame = machine::kNoFrame;
  bool busy = false, absent = false, dirty = false, precious = false, cleaning = false;
  vm_prot_t page_lock = VM_PROT_NONE;
  unsigned wire_count = 0;
  bool device = false;  // a private page of vm_object_page_map (its frame is device memory)
};

/// One object, for introspection (ids are creation-order numbers, never pointers).
struct ObjectInfo {
  uint64_t id = 0;
  int ref_count = 0;
  uint64_t size = 0;
  uint64_t shadow = 0, shadow_offset = 0, copy = 0;  // ids; 0 = none
  bool internal = false, temporary = false, shadowed = false, use_shared_copy = false;
  bool can_persist = false, pager_created = false, pager_initialized = false,
       pager_ready = false;
  CopyStrategy copy_strategy = CopyStrategy::Delay;
  unsigned paging_in_progress = 0, absent_count = 0, resident_page_count = 0;
  std::vector<PageInfo> pages;  // offset order
};

/// Where the byte at (task, va) comes from, as a fault would find it (no side effects).
struct Provenance {
  enum class Kind : uint8_t {
    Unmapped,   // no entry covers va
    NoObject,   // the entry has no object yet: zero memory
    Resident,   // a resident page of `object`, `depth` links below the entry's object
    PagedOut,   // the pager of `object` holds the page (not resident)
    ZeroFill,   // no object of the chain has the page: reads zero (`object` = bottom);
                // with `lost`: the chain reached `object`, a destroyed memory object, and
                // the byte is unknown (a fault zero-fills it)
  };
  Kind kind = Kind::Unmapped;
  uint64_t object = 0;      // object id
  unsigned depth = 0;       // 0 = the entry's own (top) object
  uint64_t offset = 0;      // offset of the page in `object`
  machine::pfn_t frame = machine::kNoFrame;  // Resident: the frame
  bool needs_copy = false;  // the entry sees the chain copy-on-write
  bool lost = false;        // ZeroFill only: see above
};

class Kernel final : public MemorySystem, private machine::FaultHandler {
 public:
  explicit Kernel(const SystemConfig& config);
  ~Kernel() override;
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;

  /// Purpose:    Become what Kernel(config) constructs, in any state: every handle, task
  ///             and cached object goes as in the destructor, then the machine, the pmap
  ///             domain and the VM system are built again in the storage they hold (the
  ///             frame buffer, the per-frame tables, the pv lists), so a fuzzer that runs
  ///             one input after another on one kernel neither maps nor poisons megabytes
  ///             per input. Nothing differs from a fresh construction: state, counters,
  ///             object ids, frame contents (junk laid lazily from frame 0 again), page
  ///             tables, TLBs, scheduler (tests/harness_exec/kernel_reset_test.cc compares
  ///             them after varied programs, also with catalogue bugs on).
  /// Conditions: observers and pointers into the kernel stay valid (same object); what
  ///             they pointed at inside it does not survive.
  void reset(const SystemConfig& config);

  // --- MemorySystem -------------------------------------------------------------------------
  void task_create(unsigned t) override;
  kern_return_t allocate(unsigned t, uint64_t* addr, uint64_t size, bool anywhere) override;
  kern_return_t deallocate(unsigned t, uint64_t addr, uint64_t size) override;
  kern_return_t protect(unsigned t, uint64_t addr, uint64_t size, bool set_max,
                        vm_prot_t prot) override;
  kern_return_t inherit(unsigned t, uint64_t addr, uint64_t size, vm_inherit_t inh) override;
  Access write(unsigned t, uint64_t addr, std::span<const uint8_t> data, unsigned cpu) override;
  Access read(unsigned t, uint64_t addr, uint64_t size, unsigned cpu) override;
  void fork(unsigned parent, unsigned child) override;
  void terminate(unsigned t) override;
  kern_return_t vm_copy(unsigned t, uint64_t src, uint64_t size, uint64_t dst) override;
  kern_return_t vm_read(unsigned t, uint64_t addr, uint64_t size, unsigned c) override;
  kern_return_t vm_write(unsigned t, uint64_t addr, unsigned c) override;
  kern_return_t copyout(unsigned t, unsigned c, uint64_t* addr) override;
  void discard(unsigned c) override;
  void object_create(unsigned m, uint64_t size, CopyStrategy strategy, bool persist,
                     std::span<const uint8_t> init) override;
  void device_create(unsigned m, uint64_t size, std::span<const uint8_t> init) override;
  kern_return_t map(unsigned t, uint64_t* addr, bool anywhere, uint64_t size, unsigned m,
                    uint64_t offset, bool share, vm_prot_t prot, vm_prot_t max_prot,
                    vm_inherit_t inh) override;
  kern_return_t manager_write(unsigned m, uint64_t offset, std::span<const uint8_t> data) override;
  Access file(unsigned m, uint64_t offset, uint64_t size) override;
  kern_return_t destroy(unsigned m) override;
  void pageout(uint64_t count, bool all) override;
  void collect(unsigned t) override;

  void hold(unsigned m) override;
  kern_return_t supply(unsigned m, uint64_t offset) override;
  kern_return_t lock(unsigned m, uint64_t offset, uint64_t size, uint8_t how) override;
  bool ack(unsigned m, unsigned choice, bool exact) override;
  void hold_init(unsigned m) override;
  void ready(unsigned m) override;
  void silent(unsigned m) override;
  kern_return_t reply(unsigned m, unsigned choice, bool exact, ReplyHow how, ReplyInfo* out) override;
  bool run(unsigned choice, bool exact) override;
  Quiesce quiesce_step() override;
  std::vector<ThreadStep> take_steps() override;
  uint32_t op_thread() const override { return op_thread_; }

  std::vector<RegionInfo> regions(unsigned t) const override;
  void pages_of_interest(unsigned t, std::vector<uint64_t>& out) const override;
  PeekStatus peek_page(unsigned t, uint64_t va, std::span<uint8_t, kPageSize> out) const override;
  PeekStatus peek_object_page(unsigned m, uint64_t offset,
                              std::span<uint8_t, kPageSize> out) const override;
  void object_pages_of_interest(unsigned m, std::vector<uint64_t>& out) const override;

  // --- Introspection (const, no side effects) -------------------------------------------------
  const SystemConfig& config() const { return config_; }
  bool task_exists(unsigned t) const { return t < kMaxNames && tasks_[t] != nullptr; }
  std::vector<unsigned> tasks() const;
  bool copy_exists(unsigned c) const { return c < kMaxNames && copies_[c].present; }
  std::vector<EntryInfo> entries(unsigned t) const;
  std::vector<ObjectInfo> objects() const;
  std::optional<ObjectInfo> object_info(uint64_t id) const;
  uint64_t object_count() const { return sys_.objects.size(); }
  uint32_t frames_owned() const;
  Provenance provenance(unsigned t, uint64_t va) const;
  const VmCounters& counters() const { return sys_.counters; }
  VmTunables& tunables() { return sys_.tunables; }
  const machine::Machine& machine() const { return machine_; }
  const pmap::PmapDomain& domain() const { return domain_; }
  /// The task's pmap (nullptr before its first access).
  pmap::pmap_t task_pmap(unsigned t) const;
  /// Which task's pmap is loaded on cpu (-1: none).
  int task_on_cpu(unsigned cpu) const { return cpu_task_[cpu]; }
  const VmSystem& system() const { return sys_; }
  const VmMap* task_map(unsigned t) const { return task_exists(t) ? tasks_[t].get() : nullptr; }
  /// The handle's copy (nullptr for an empty handle or a free name).
  const VmMapCopy* copy_handle(unsigned c) const { return copy_exists(c) ? copies_[c].copy : nullptr; }
  /// Memory object m's manager (nullptr: no such object).
  const ManagerPager* memory_object(unsigned m) const { return m < kMaxNames ? mobjs_[m].get() : nullptr; }
  /// Terminate every cached object (the cache flush before the teardown oracle, docs/oracles.md).
  void flush_cache();
  /// Kernel threads in flight, the step counter (sched.h).
  const Scheduler& scheduler() const { return sys_.sched; }


 private:
  /// Discard every copy handle, terminate every task and flush the object cache: what the
  /// destructor and reset() both do before anything else.
  void release_all();
  kern_return_t page_fault(unsigned cpu, uint64_t cr2, uint32_t error_code) override;
  /// What construction does after the members are built (the constructor and reset).
  void init();
  /// One run of a user access from th.done (`wdata`: for a write, its bytes from th.done).
  /// *blocked: it stopped at the returned fault_addr to wait (th keeps its progress).
  Access run_access(KThread& th, std::span<const uint8_t> wdata, bool* blocked);
  /// One scheduler step of thread id (runnable): its run goes to steps_.
  void run_thread(uint32_t id);
  VmMap& task_map_ref(unsigned t);
  /// Load task t's pmap on cpu; false when no frame is free for the pmap.
  bool switch_to(unsigned t, unsigned cpu);
  /// After an op that drops map or copy references: hand every entry's and copy entry's
  /// window to vm_object_reclaim_unseen (pages no referrer can see any more go).
  void reclaim_unseen_pages();
  /// Does blocked thread t wait for something only a silent manager owes?
  bool waits_for_silent(const KThread& t) const;

  struct Handle {
    bool present = false;
    VmMapCopy* copy = nullptr;  // nullptr: empty handle (size 0)
  };

  ManagerPager& manager_ref(unsigned m);

  SystemConfig config_;
  std::array<std::unique_ptr<ManagerPager>, kMaxNames> mobjs_;  // outlive every object
  machine::Machine machine_;
  pmap::PmapDomain domain_;
  VmSystem sys_;
  std::array<std::unique_ptr<VmMap>, kMaxNames> tasks_;
  std::array<Handle, kMaxNames> copies_;
  std::vector<int> cpu_task_;  // task whose pmap is loaded on each CPU, -1 none
  std::vector<ObjectWindow> reclaim_windows_;  // scratch of reclaim_unseen_pages
  std::vector<ThreadStep> steps_;              // thread runs not yet taken (take_steps)
  uint32_t op_thread_ = 0;                     // the last kernel op's thread (op_thread)
  /// One run of a kernel op's thread (vm_copy, vm_write), from the top: *blocked when it
  /// must wait (then nothing a task can see changed); else the op's code.
  kern_return_t run_kernel_op(KThread& th, bool* blocked);
  /// The op's first run; a thread that must wait goes in flight (op_thread).
  kern_return_t start_kernel_op(KThread& th);
  /// Can anything be waited for now (a request in flight or an init pending anywhere)?
  /// Only then does a kernel op look for what to wait for: otherwise it runs as it always did.
  bool kernel_threads_possible() const;
};

}  // namespace vmfuzz::vm
