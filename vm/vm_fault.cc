// vm_fault.cc — the fault path, as named steps over one FaultState (see vm_fault.h).
//
// Theory of operation: vm_fault_page walks from the top object down the shadow chain.
// Mach keeps a busy placeholder page in the top object while it walks, and holds
// paging_in_progress on the objects where it holds busy pages. Here a fault runs to its
// end within one scheduler step, so it marks the result page busy and the first object
// paging for the duration of the step only. The busy pages that outlive a step are the
// absent pages of requests in flight to a held manager (docs/concurrency.md): a fault that
// finds one waits on it (yield point page_busy) and never asks again; a fault that must ask
// a held manager makes the page busy and absent, sends the request and waits
// (data_request), unless the object already has kAbsentMax pages absent (absent_max).
// A blocked fault returns kFaultBlocked; woken, the thread retries from the top.
// Kernel paths that run no thread (sched.current == nullptr) never block: the kernel ops
// that fault pages (vm_copy's and vm_write's overwrite) waited for every page in transit
// and every manager not ready before they began (vm_map_copy_overwrite_wait), so they meet
// none here; one that does (only after a bug of that wait) takes the page as it is, and a
// manager not ready is asked anyway and counted (pageins_before_ready: paging_accounting).
#include "vm/vm_fault.h"
#include "vm/machine/bugs.h"

#include <cassert>
#include <cstring>

#include "vm/memory_object.h"
#include "vm/vm_map.h"
#include "vm/vm_pageout.h"

namespace vmfuzz::vm {

namespace {

/// Step 2a: the page at (object, offset) is busy: in transit from a held manager. Wait
/// for it (page_busy); never send a second request, never install a second page.
kern_return_t fault_wait_busy(VmSystem& sys, VmObject* object, uint64_t offset, [[maybe_unused]] VmPage* m) {
  assert((m->absent || m->cleaning) && "vm_fault_page: busy page that is not in transit from or to a manager");
  KThread* self = sys.sched.current;
  if (m->cleaning) {  // its data_return is unacknowledged (docs/concurrency.md §Cleaning)
    if (self == nullptr)  // this kernel path cannot wait: its manager acknowledges now
      return memory_object_return_now(sys, object, offset) ? KERN_SUCCESS : KERN_MEMORY_ERROR;
    sys.sched.assert_wait(WaitEvent{WaitEvent::Kind::PageBusy, object->id, offset}, YieldPoint::PageCleaning);
    ++sys.counters.thread_blocks;
    return kFaultBlocked;
  }
  sys.sched.assert_wait(WaitEvent{WaitEvent::Kind::PageBusy, object->id, offset}, YieldPoint::PageBusy);
  if (VMFUZZ_BUG_ON(SecondDataRequest) && object->pager != nullptr && object->pager->held())
    object->pager->data_request(object->id, offset, offset + object->paging_offset, self->id);
  ++sys.counters.thread_blocks;
  return kFaultBlocked;
}

/// Step 2b: the data is the held manager's: make the page busy and absent, send
/// memory_object_data_request with a paging reference, and wait (data_request) — or, with
/// kAbsentMax pages of the object already absent, wait for one to arrive (absent_max).
kern_return_t fault_data_request(VmSystem& sys, VmObject* object, uint64_t offset) {
  KThread* self = sys.sched.current;
  if (object->absent_count >= kAbsentMax && !VMFUZZ_BUG_ON(AbsentMaxIgnored)) {
    sys.sched.assert_wait(WaitEvent{WaitEvent::Kind::AbsentBelow, object->id, 0}, YieldPoint::AbsentMax);
    ++sys.counters.thread_blocks;
    return kFaultBlocked;
  }
  VmPage* m = vm_page_grab(sys);
  if (m == nullptr) return KERN_RESOURCE_SHORTAGE;
  assert(vm_page_lookup(object, offset) == nullptr && "vm_fault_page: requested page appeared");
  vm_page_insert(sys, m, object, offset);
  m->busy = m->absent = true;
  ++object->absent_count;
  ++object->paging_in_progress;
  if (!VMFUZZ_BUG_ON(RequestTakesNoReference)) vm_object_reference(object);  // the paging reference
  sys.sched.assert_wait(WaitEvent{WaitEvent::Kind::PageBusy, object->id, offset}, YieldPoint::DataRequest);
  object->pager->data_request(object->id, offset, offset + object->paging_offset, self->id);
  ++sys.counters.data_requests;
  ++sys.counters.thread_blocks;
  return kFaultBlocked;
}

/// Step 2: walk the chain. Finds the resident page nearest the top, or pages one in from
/// the pager of the first object that has the data (into that object, as Mach does), or
/// zero-fills a new page in the top object when no object of the chain has the offset.
kern_return_t fault_walk_chain(VmSystem& sys, FaultState& fs) {
  VmObject* object = fs.first_object;
  uint64_t offset = fs.first_offset;
  for (;;) {
    if (VmPage* m = vm_page_lookup(object, offset)) {
      // Woken from this very page, a fault must still look at it again: it may be busy
      // with another request now (bug fault_no_recheck takes it as it is).
      const bool trust_wakeup = VMFUZZ_BUG_ON(FaultNoRecheck) && sys.sched.current != nullptr &&
                                sys.sched.current->woken_from ==
                                    WaitEvent{WaitEvent::Kind::PageBusy, object->id, offset};
      // A kernel path that cannot wait waited before it began for pages in transit from a
      // manager (see the top): an absent busy page here was missed by that wait (a bug),
      // and is taken as it is. A page being cleaned it has acknowledged at once (bug
      // fault_ignores_cleaning takes a page being cleaned as clean, thread or not).
      const bool ignore_busy = VMFUZZ_BUG_ON(FaultIgnoresCleaning) && m->cleaning;
      if (m->busy && !trust_wakeup && !ignore_busy && (sys.sched.current != nullptr || m->cleaning)) {
        kern_return_t kr = fault_wait_busy(sys, object, offset, m);
        if (kr == KERN_SUCCESS) continue;  // acknowledged at once: look again
        return kr;
      }
      fs.object = object;
      fs.offset = offset;
      fs.page = m;
      return KERN_SUCCESS;
    }
    // The manager has not answered memory_object_init yet (hold_init): it cannot be asked
    // for anything. A thread waits (pager_ready); a kernel path that cannot wait waited
    // before it began, so it meets this only after a bug of that wait: it asks anyway.
    if (object->pager != nullptr && !object->pager_ready) {
      if (VMFUZZ_BUG_ON(FaultIgnoresPagerReady) || sys.sched.current == nullptr) {
        ++sys.counters.pageins_before_ready;
      } else {
        sys.sched.assert_wait(WaitEvent{WaitEvent::Kind::PagerReady, object->id, 0}, YieldPoint::PagerReady);
        ++sys.counters.thread_blocks;
        return kFaultBlocked;
      }
    }
    // A device pager answers by mapping its memory into the object (vm_object_page_map,
    // as GNU Mach's device_pager_data_request does): the page is found on the next turn.
    if (object->pager != nullptr) {
      Pager* pager = object->pager;
      uint64_t poff = object->paging_offset;
      if (pager->device_frame(offset + poff) != machine::kNoFrame && !VMFUZZ_BUG_ON(DevicePageCopied)) {
        vm_object_page_map(sys, object, offset, kPageSize,
                           [pager, poff](uint64_t off) { return pager->device_frame(off + poff); });
        continue;
      }
    }
    // A destroyed memory object (pager_lost) has no pager to ask: its contents are
    // unknown (docs/language.md §Details 13); the walk goes on and zero-fills, so tasks that
    // still map it keep usable (if meaningless) memory.
    if (vm_object_pager_data(object, offset) != nullptr) {
      if (object->pager->held() && sys.sched.current != nullptr) return fault_data_request(sys, object, offset);
      VmPage* m = vm_page_grab(sys);
      if (m == nullptr) return KERN_RESOURCE_SHORTAGE;
      // Look again: the grab may have evicted pages (never this offset: it is not resident).
      const uint8_t* data = vm_object_pager_data(object, offset);
      assert(data != nullptr && "vm_fault_page: pager data vanished");
      std::memcpy(sys.machine.memory().frame(m->frame), data, kPageSize);
      vm_page_insert(sys, m, object, offset);
      sys.domain.pmap_clear_modify(m->frame);
      m->dirty = false;
      m->page_lock = object->pager->lock_value(offset + object->paging_offset);
      fs.object = object;
      fs.offset = offset;
      fs.page = m;
      ++sys.counters.pageins;
      return KERN_SUCCESS;
    }
    if (object->shadow == nullptr) break;
    offset += object->shadow_offset;
    object = object->shadow;
  }
  VmPage* m = vm_page_grab(sys);
  if (m == nullptr) return KERN_RESOURCE_SHORTAGE;
  if (!VMFUZZ_BUG_ON(ZeroFillNotZeroed)) sys.domain.pmap_zero_page(m->frame);
  vm_page_insert(sys, m, fs.first_object, fs.first_offset);
  sys.domain.pmap_clear_modify(m->frame);
  fs.object = fs.first_object;
  fs.offset = fs.first_offset;
  fs.page = m;
  ++sys.counters.zero_fills;
  return KERN_SUCCESS;
}

/// Step 3: the page came from a lower object. A write copies it up into the top object
/// (every mapping of the old page goes: other views must now find the new one); a read
/// maps the lower page read-only.
kern_return_t fault_copy_up(VmSystem& sys, FaultState& fs) {
  if (fs.object == fs.first_object) return KERN_SUCCESS;
  if (!fs.write) {
    fs.prot &= ~VM_PROT_WRITE;
    return KERN_SUCCESS;
  }
  VmPage* copy_m = vm_page_grab(sys);
  if (copy_m == nullptr) return KERN_RESOURCE_SHORTAGE;
  VmPage* old = fs.page;
  sys.domain.pmap_copy_page(old->frame, copy_m->frame);
  sys.domain.pmap_page_protect(old->frame, VM_PROT_NONE);
  old->busy = false;
  vm_page_deactivate(sys, old);
  vm_page_insert(sys, copy_m, fs.first_object, fs.first_offset);
  copy_m->dirty = true;
  copy_m->busy = true;
  // The lower page may now be hidden from every viewer of its object (when only
  // shadowers still see it): then it goes at once instead of waiting for a collapse.
  if (fs.object->ref_count > 0 && size_t(fs.object->ref_count) == fs.object->shadowers.size())
    vm_object_free_if_hidden(sys, old);
  fs.object = fs.first_object;
  fs.offset = fs.first_offset;
  fs.page = copy_m;
  ++sys.counters.copy_ups;
  return KERN_SUCCESS;
}

/// Step 3b: a write to a page the manager has write-locked (COPY_CALL): ask the manager
/// to unlock it, handing it the page's contents to save first (data_unlock).
void fault_unlock(VmSystem& sys, FaultState& fs) {
  if (!fs.write || (fs.page->page_lock & VM_PROT_WRITE) == 0) return;
  assert(fs.object == fs.first_object && "vm_fault_page: unlocking a lower page");
  VmObject* o = fs.first_object;
  if (o->pager != nullptr)
    o->pager->data_unlock(fs.first_offset + o->paging_offset,
                          sys.machine.memory().frame(fs.page->frame));
  // Readers of the copies mapped this page through their shadow; the copies now hold the
  // saved contents, so those mappings must go (as for a push; GNU Mach leaves them).
  if (!VMFUZZ_BUG_ON(UnlockKeepsMappings)) sys.domain.pmap_page_protect(fs.page->frame, VM_PROT_NONE);
  fs.page->page_lock &= ~VM_PROT_WRITE;
  ++sys.counters.unlocks;
}

/// Step 4: the top object has a copy object. Reads map read-only; a write pushes the
/// current contents into the copy object first, unless it already has the page.
kern_return_t fault_push_to_copy(VmSystem& sys, FaultState& fs) {
  VmObject* copy = fs.first_object->copy;
  if (copy == nullptr) return KERN_SUCCESS;
  if (!fs.write) {
    fs.prot &= ~VM_PROT_WRITE;
    return KERN_SUCCESS;
  }
  if (VMFUZZ_BUG_ON(MissedPush)) return KERN_SUCCESS;
  assert(copy->shadow == fs.first_object && copy->shadow_offset == 0 &&
         "vm_fault_page: copy object shape");
  uint64_t copy_offset = fs.first_offset - copy->shadow_offset;
  // Nothing to push when the copy object already has the page, resident or paged out.
  if (copy_offset >= copy->size || vm_page_lookup(copy, copy_offset) != nullptr ||
      (vm_object_pager_data(copy, copy_offset) != nullptr && !VMFUZZ_BUG_ON(PushOverPagedOut)))
    return KERN_SUCCESS;
  VmPage* copy_m = vm_page_grab(sys);
  if (copy_m == nullptr) return KERN_RESOURCE_SHORTAGE;
  sys.domain.pmap_copy_page(fs.page->frame, copy_m->frame);
  // Readers of the copy object may have mapped the original page: they must refault.
  sys.domain.pmap_page_protect(fs.page->frame, VM_PROT_NONE);
  vm_page_insert(sys, copy_m, copy, copy_offset);
  copy_m->dirty = true;
  vm_page_activate(sys, copy_m);
  ++sys.counters.pushes;
  return KERN_SUCCESS;
}

}  // namespace

kern_return_t vm_fault_page(VmSystem& sys, FaultState& fs) {
  assert(fs.first_object != nullptr && fs.first_object->alive &&
         "vm_fault_page: no live first object");
  ++fs.first_object->paging_in_progress;
  kern_return_t kr = fault_walk_chain(sys, fs);
  bool copied_up = false;
  if (kr == KERN_SUCCESS) {
    fs.page->busy = true;  // eviction under frame pressure must not take it
    bool lower = fs.object != fs.first_object;
    kr = fault_copy_up(sys, fs);
    copied_up = kr == KERN_SUCCESS && lower && fs.write;
  }
  if (kr == KERN_SUCCESS) {
    fault_unlock(sys, fs);
    kr = fault_push_to_copy(sys, fs);
  }
  --fs.first_object->paging_in_progress;
  if (kr != KERN_SUCCESS && fs.page != nullptr) {
    fs.page->busy = false;
    fs.page = nullptr;
  }
  // After a copy-up the backing object may have become collapsible.
  if (copied_up) vm_object_collapse(sys, fs.first_object);
  return kr;
}

void vm_fault_page_done(FaultState& fs) {
  assert(fs.page != nullptr && fs.page->busy && "vm_fault_page_done: no busy result page");
  fs.page->busy = false;
}

kern_return_t vm_fault(VmSystem& sys, VmMap& map, uint64_t va, bool write) {
  ++sys.counters.faults;
  FaultState fs;
  fs.va = trunc_page(va);
  fs.write = write;
  // Step 1: the entry, its protection and copy-on-write state.
  kern_return_t kr = vm_map_lookup(sys, map, fs.va, write, &fs.first_object, &fs.first_offset,
                                   &fs.prot);
  if (kr != KERN_SUCCESS) return kr;
  pmap::pmap_t pmap = vm_map_pmap(map);
  if (pmap == nullptr) return KERN_RESOURCE_SHORTAGE;
  // Steps 2-4.
  kr = vm_fault_page(sys, fs);
  if (kr != KERN_SUCCESS) return kr;
  // Step 5: enter the translation (evicting other pages if a page table needs a frame).
  assert(fs.page->object == fs.object && "vm_fault: result page left its object");
  for (;;) {
    kr = pmap::pmap_enter(pmap, fs.va, fs.page->frame, fs.prot & ~fs.page->page_lock);
    if (kr != KERN_RESOURCE_SHORTAGE || !vm_page_reclaim(sys)) break;
  }
  if (kr == KERN_SUCCESS) vm_page_activate(sys, fs.page);
  vm_fault_page_done(fs);
  return kr;
}

}  // namespace vmfuzz::vm
