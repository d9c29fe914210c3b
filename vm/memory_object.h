// memory_object.h — external memory managers and the kernel's side of the memory-object
// protocol (Mach's vm/memory_object.c and the copy strategies of vm/vm_object.c):
// vm_object_enter, vm_object_copy_strategically (copy_slowly, copy_call, copy_delayed),
// lock requests (return / flush), and memory_object_destroy.
//
// Theory of operation
// -------------------
// A memory object m0..m15 is served by a simulated external manager (ManagerPager) that
// owns a backing store (sparse pages; absent pages are zero; for a device, the device's
// memory: see Device memory below), a copy strategy and the may-cache (persist)
// attribute. The kernel finds or makes its VM object for the manager
// with vm_object_enter: an external, permanent object whose pager is the manager; an
// unreferenced persistent object with resident pages stays in the object cache and is
// found again there.
//
// Data moves as in Mach: a fault that finds no resident page asks the manager
// (data_request -> data()), pages are returned when evicted or terminated if dirty
// (data_return), and a lock request can return dirty pages (file) and flush cached ones
// (manager_write).
//
// Copies (vm_object_copy_strategically, for `map ... copy`, fork COPY and copyin of
// permanent objects):
// - COPY_NONE: vm_object_copy_slowly — an eager copy into a new internal object. The
//   data goes straight to the new object's default-pager store (no frame is needed);
//   only offsets some object of the source chain holds are visited, so a sparse window
//   costs what it holds.
// - COPY_CALL: vm_object_copy_call — the manager makes a new memory object (a
//   CopyCallPager) that shadows the source; the kernel write-locks the source's resident
//   pages in the window, and the manager supplies the source's other pages write-locked
//   while any copy lacks them. A write to a locked page sends data_unlock with the page's
//   contents; the manager saves them into every copy that lacks the page, then unlocks.
// - COPY_DELAY (and every temporary object): vm_object_copy_delayed.
//
// Destroy (docs/language.md §Details 13, a departure): before the store goes, every copy is
// made independent — the newest DELAY copy object receives every page it lacks and stops
// shadowing the source; every pending CALL copy saves what it lacks and stops shadowing.
// Then the source object loses its pager (pager_lost): its resident pages are freed, and
// later faults zero-fill (the contents are unknown to every observer, same detail; GNU
// Mach would return memory errors — the harness tolerates both, and usable memory keeps
// partial accesses comparable). The object itself lives on while mapped.
//
// Device memory (Mach's vm_object_page_map, the device pager of GNU Mach's dev_pager.c):
// a device's ManagerPager owns a run of device frames above RAM. Its object is permanent,
// COPY_NONE and never cached. A fault that reaches it finds no data to copy: the pager
// answers by vm_object_page_map, which enters private, wired pages whose frames ARE the
// device memory, so stores through a shared mapping reach the device directly. Private
// pages are on no paging queue (pageout never evicts them), lock requests skip them
// (there is nothing to return or drop), and freeing one — termination, destroy — drops
// the page structure, never the frame. Copies are eager (copy_slowly reads the device
// memory), so every copy stays a snapshot while the device changes.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <vector>

#include "vm/vm_object.h"
#include "vmfuzz/vocab.h"

namespace vmfuzz::vm {

class ManagerPager;

/// A data request the kernel sent to a held manager, not yet answered (Mach's
/// memory_object_data_request in flight). The page (object, offset) is busy and absent
/// meanwhile; the request holds a paging reference on the object and counts in its
/// paging_in_progress and absent_count.
struct PagerRequest {
  uint64_t id = 0;            // kernel-wide, in sending order
  uint64_t object = 0;        // the waiting page's object id (never a pointer)
  uint64_t offset = 0;        // ... and its offset in that object
  uint64_t pager_offset = 0;  // offset in the memory object (offset + paging_offset)
  uint32_t owner = 0;         // the thread whose fault sent it (0: gone)
};

/// A data_return the kernel sent to a held manager, not acknowledged yet (docs/concurrency.md
/// §Cleaning): the page (object, offset) stays resident, busy and `cleaning`, unmapped, with
/// a paging reference and one count in its object's paging_in_progress, until the manager
/// acknowledges it (`ack`): then the store takes the data sent, and the page is freed
/// (`flush`: pageout, a lock request's should_flush) or is clean again.
struct PagerReturn {
  uint64_t id = 0;            // in the manager's message order (shared with lock requests)
  uint64_t object = 0;        // the page's object id (never a pointer)
  uint64_t offset = 0;        // ... and its offset in that object
  uint64_t pager_offset = 0;  // offset in the memory object
  bool flush = false;         // the page goes once acknowledged
  std::array<uint8_t, kPageSize> data{};  // the page as sent
};

/// A manager's memory_object_lock_request whose memory_object_lock_completed the kernel
/// still owes: it waits for every data_return of its range sent before it (ids below `id`).
struct PagerLock {
  uint64_t id = 0;
  uint64_t object = 0, start = 0, end = 0;  // the range, in the object's offsets
};

/// A memory_object_lock_completed the kernel sent, kept while some data_return sent before
/// the lock request is still unacknowledged (only after bug lock_completed_before_clean),
/// so that the step invariant paging_accounting can see it.
struct LockCompleted {
  uint64_t lock = 0;  // the lock request's id
  uint64_t object = 0, start = 0, end = 0;
};

/// The memory object a COPY_CALL manager makes for one copy: pages saved before the
/// source changed them (data_unavailable elsewhere: read through the shadow).
class CopyCallPager final : public Pager {
 public:
  CopyCallPager(ManagerPager* origin, uint64_t src_offset, uint64_t size)
      : origin_(origin), src_offset_(src_offset), size_(size) {}
  const uint8_t* data(uint64_t offset) const override;
  void data_return(uint64_t offset, const uint8_t* page) override;
  void offsets(uint64_t start, uint64_t end, std::vector<uint64_t>& out) const override;
  void terminate() override;
  /// Does this copy still need the source's page at source offset `src_off`?
  bool lacks(uint64_t src_off) const;
  /// Save the source's page at `src_off` (only if not saved yet).
  void save(uint64_t src_off, const uint8_t* page);
  /// The manager was destroyed (the copy was made independent first).
  void detach() { origin_ = nullptr; }
  uint64_t src_offset() const { return src_offset_; }
  uint64_t size() const { return size_; }

 private:
  ManagerPager* origin_;
  uint64_t src_offset_, size_;
  std::map<uint64_t, std::array<uint8_t, kPageSize>> saved_;
};

/// A simulated external memory manager serving one memory object (correctly: it keeps
/// what it is given, answers every request, and honours COPY_CALL's unlock protocol).
class ManagerPager final : public Pager {
 public:
  ManagerPager(uint64_t size, CopyStrategy strategy, bool persist)
      : size_(size), strategy_(strategy), persist_(persist) {}
  /// A device's pager (GNU Mach's device_pager): its store is the device memory
  /// [device_base, device_base + size / 4096) of `mem`, COPY_NONE, not cached. A fault
  /// is answered with vm_object_page_map (private pages on the device frames), never by
  /// copying data.
  ManagerPager(uint64_t size, machine::PhysicalMemory& mem, machine::pfn_t device_base)
      : size_(size), strategy_(CopyStrategy::None), persist_(false), device_mem_(&mem),
        device_base_(device_base) {}
  const uint8_t* data(uint64_t offset) const override;
  void data_return(uint64_t offset, const uint8_t* page) override;
  void offsets(uint64_t start, uint64_t end, std::vector<uint64_t>& out) const override;
  vm_prot_t lock_value(uint64_t offset) const override;
  void data_unlock(uint64_t offset, const uint8_t* current) override;
  void terminate() override {
    kobject = nullptr;
    init_object = 0;  // nobody waits for the answer to an object's init any more
  }
  machine::pfn_t device_frame(uint64_t offset) const override;
  bool held() const override { return held_ && device_mem_ == nullptr && !destroyed; }
  void data_request(uint64_t object, uint64_t offset, uint64_t pager_offset, uint32_t owner) override;

  /// `hold`: answer requests by message from now on (a device pager maps at once: no effect).
  void hold() { held_ = true; }
  /// `hold_init`: answer memory_object_init by message from now on (no effect on a device).
  void hold_init() { held_init_ = true; }
  bool init_held() const { return (held_init_ || silent_) && device_mem_ == nullptr && !destroyed; }
  /// `silent`: never answer again (requests and init stay pending); implies hold and hold_init.
  void silence() { silent_ = held_ = held_init_ = true; }
  bool silent() const { return silent_; }
  /// The kernel object whose memory_object_init waits for this manager's
  /// memory_object_ready (its pager_ready is false), 0 when none.
  uint64_t init_object = 0;
  /// The requests not answered yet, in arrival order.
  std::vector<PagerRequest> requests;
  /// The data_returns not acknowledged yet, in arrival order (held managers only).
  std::vector<PagerReturn> returns;
  /// Lock requests waiting for their returns before lock_completed, in arrival order.
  std::vector<PagerLock> locks;
  /// lock_completed messages sent early (see LockCompleted).
  std::vector<LockCompleted> early_completions;
  /// The next id of a return or lock request (one order for both).
  uint64_t next_message() { return next_message_++; }
  /// data_unavailable: the manager has no data for the page any more (it reads zero).
  void forget_page(uint64_t offset) { store_.erase(offset); }

  /// The manager changes its own data (bytes may cross pages).
  void store_write(uint64_t offset, const uint8_t* bytes, uint64_t len);
  /// Read the store (bytes may cross pages).
  void store_read(uint64_t offset, uint64_t len, uint8_t* out) const;
  /// Register / forget a COPY_CALL copy that still reads through the source.
  void add_copy(CopyCallPager* c) { pending_.push_back(c); }
  void forget(CopyCallPager* c);
  const std::vector<CopyCallPager*>& pending() const { return pending_; }
  /// Forget the store (destroy); a device's memory is zeroed.
  void clear_store();
  bool is_device() const { return device_mem_ != nullptr; }

  uint64_t size() const { return size_; }
  CopyStrategy strategy() const { return strategy_; }
  bool persist() const { return persist_; }
  bool destroyed = false;
  VmObject* kobject = nullptr;  // the kernel's object for this memory object, if any

 private:
  uint64_t size_;
  CopyStrategy strategy_;
  bool persist_;
  std::map<uint64_t, std::array<uint8_t, kPageSize>> store_;  // absent pages are zero
  std::vector<CopyCallPager*> pending_;
  bool held_ = false;
  bool held_init_ = false;
  bool silent_ = false;
  uint64_t next_request_ = 1;
  uint64_t next_message_ = 1;
  machine::PhysicalMemory* device_mem_ = nullptr;  // a device pager's memory, else null
  machine::pfn_t device_base_ = machine::kNoFrame;
};

/// Purpose:    The kernel object for a memory object (Mach's vm_object_enter): the live or
///             cached one, else a new external permanent object of the manager's size.
/// Results:    a referenced object. Counters: cache_hits.
VmObject* vm_object_enter(VmSystem& sys, ManagerPager& pager);

/// Purpose:    Read one page of object at offset as a fault would see it, without side
///             effects (resident page, pager data, shadow chain, zeros).
/// Results:    KERN_SUCCESS, or KERN_MEMORY_ERROR when the chain reaches a destroyed
///             memory object before finding the data.
kern_return_t vm_object_read_page(const VmSystem& sys, const VmObject* object, uint64_t offset,
                                  uint8_t* out);

/// Purpose:    Copy [offset, offset + size) of src by its strategy (Mach's
///             vm_object_copy_strategically); temporary objects are copied DELAY.
///             tolerate_errors: unreadable pages copy as zero (fork never fails).
/// Results:    KERN_SUCCESS with a referenced *result at *result_offset and *needs_copy,
///             or KERN_MEMORY_ERROR (nothing made).
kern_return_t vm_object_copy_strategically(VmSystem& sys, VmObject* src, uint64_t offset,
                                           uint64_t size, bool tolerate_errors,
                                           VmObject** result, uint64_t* result_offset,
                                           bool* needs_copy);

/// Purpose:    Eager copy into a new internal object (COPY_NONE). Counters: copies_slowly.
kern_return_t vm_object_copy_slowly(VmSystem& sys, VmObject* src, uint64_t offset, uint64_t size,
                                    bool tolerate_errors, VmObject** result);

/// Purpose:    Manager-assisted copy (COPY_CALL): see the theory above.
///             Counters: copies_call.
VmObject* vm_object_copy_call(VmSystem& sys, VmObject* src, uint64_t offset, uint64_t size);

/// Purpose:    memory_object_lock_request over [start, end) of object: should_return
///             returns dirty pages to the pager (they become clean); should_flush frees the
///             pages (after returning them if dirty).
void memory_object_lock_request(VmSystem& sys, VmObject* object, uint64_t start, uint64_t end,
                                bool should_return, bool should_flush);

/// Purpose:    The manager's own memory_object_lock_request over [start, end) of its object
///             (`lock`, docs/concurrency.md §Cleaning): should_return cleans dirty pages
///             (by an asynchronous data_return when the manager is held, else at once),
///             should_flush frees the pages (a dirty one once its return is acknowledged).
///             Pages in transit (absent) are skipped; a page already being cleaned gets
///             should_flush added to its return. memory_object_lock_completed is sent once
///             every data_return of the range sent before the request is acknowledged.
///             Counters: lock_requests, locks_completed.
void memory_object_lock_request_async(VmSystem& sys, ManagerPager& manager, uint64_t start, uint64_t end,
                                      bool should_return, bool should_flush);

/// Purpose:    Clean the dirty page p of object by message when its manager is held: p
///             becomes busy and cleaning (unmapped, clean, a paging reference), and a
///             PagerReturn with its data goes to the manager's queue. flush: p goes once
///             acknowledged. Results: false (nothing done) when the manager is not held.
bool memory_object_data_return_async(VmSystem& sys, VmObject* object, VmPage* p, bool flush);

/// Purpose:    The manager acknowledges manager.returns[i] (`ack`): its store takes the data
///             sent, the page stops being busy (and goes, for a flush), paging_in_progress
///             drops, the paging reference goes, the page's waiters are woken, and every
///             lock request whose returns are all acknowledged gets its lock_completed.
void memory_object_return_ack(VmSystem& sys, ManagerPager& manager, size_t i);

/// Purpose:    A kernel path that cannot wait met the page (object, offset) being cleaned:
///             its manager acknowledges that return now. Results: false when none is pending.
bool memory_object_return_now(VmSystem& sys, VmObject* object, uint64_t offset);

/// Purpose:    The manager destroys its memory object (see the theory above). Conditions:
///             not destroyed yet. Requests in flight are aborted first (abort_activity).
void memory_object_destroy(VmSystem& sys, ManagerPager& pager);

/// Purpose:    Deliver a held manager's answer to manager.requests[i] (docs/concurrency.md
///             §Managers): data_supply (the store's page), data_unavailable (the manager
///             forgets the page; the kernel zero-fills it) or data_error (the page goes; the
///             fault that asked fails with KERN_MEMORY_ERROR). The page stops being busy,
///             absent_count and paging_in_progress drop, the paging reference goes, and
///             every thread waiting on the page (and on the absent bound) is woken.
/// Conditions: i < requests.size(); unavailable only for copy strategy none (the caller checks).
///             A reply whose page is no longer waiting (its object gone) is dropped, as
///             Mach drops a supply for a page that is not absent.
void memory_object_reply(VmSystem& sys, ManagerPager& manager, size_t i, ReplyHow how);

/// Purpose:    An unrequested memory_object_data_supply of the page at `offset` (page
///             aligned) of the manager's memory object, with its store's bytes. Mach
///             ignores a supply for a resident page (the kernel's page is the newer: it
///             may be dirty); a page in transit takes it as the answer to its request (as
///             memory_object_reply with supply); a page not resident is entered clean
///             (cached) when the object is referenced and a frame can be had, else the
///             supply is dropped. A device's pager maps its memory and never supplies.
void memory_object_data_supply(VmSystem& sys, ManagerPager& manager, uint64_t offset);

/// Purpose:    The manager answers its pending memory_object_init (memory_object_ready /
///             set_attributes): its object becomes pager_ready and the faults waiting for
///             that are woken. No effect when no init is pending.
void memory_object_ready(VmSystem& sys, ManagerPager& manager);

/// Purpose:    The manager answers the request that waits for the busy page (object,
///             offset) in transit (supply), as an unrequested data_supply of that page does.
///             Results: false when no request waits for the page (after a bug).
bool memory_object_answer_now(VmSystem& sys, VmObject* object, uint64_t offset);

/// Purpose:    Mach's vm_object_abort_activity: every request of the manager in flight is
///             forgotten; its absent page is freed and its waiters woken (they retry from
///             the top and find what is there now).
void vm_object_abort_activity(VmSystem& sys, ManagerPager& manager);

}  // namespace vmfuzz::vm
