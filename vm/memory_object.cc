// memory_object.cc — external managers, vm_object_enter, the copy strategies, lock
// requests and destroy. Theory of operation: see memory_object.h.
#include "vm/memory_object.h"
#include "vm/machine/bugs.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <memory>

#include "vm/vm_pageout.h"

namespace vmfuzz::vm {

namespace {

const std::array<uint8_t, kPageSize> kZeroPage{};

bool page_is_zero(const uint8_t* p) {
  return std::all_of(p, p + kPageSize, [](uint8_t b) { return b == 0; });
}

/// Offsets (relative to `offset`) in [offset, offset + size) of object where some object
/// of its chain holds a resident page or pager data: every other offset reads zero (or
/// fails, for a destroyed memory object). Sorted, unique.
std::vector<uint64_t> chain_candidates(const VmObject* object, uint64_t offset, uint64_t size) {
  std::vector<uint64_t> rel;
  vm_object_chain_offsets(object, offset, size, false, rel);
  std::sort(rel.begin(), rel.end());
  rel.erase(std::unique(rel.begin(), rel.end()), rel.end());
  return rel;
}

}  // namespace

// --- CopyCallPager ----------------------------------------------------------------------------

const uint8_t* CopyCallPager::data(uint64_t offset) const {
  auto it = saved_.find(offset);
  return it == saved_.end() ? nullptr : it->second.data();
}

void CopyCallPager::data_return(uint64_t offset, const uint8_t* page) {
  std::memcpy(saved_[offset].data(), page, kPageSize);
}

void CopyCallPager::offsets(uint64_t start, uint64_t end, std::vector<uint64_t>& out) const {
  for (auto it = saved_.lower_bound(start); it != saved_.end() && it->first < end; ++it)
    out.push_back(it->first);
}

void CopyCallPager::terminate() {
  if (origin_ != nullptr) origin_->forget(this);
  origin_ = nullptr;
}

bool CopyCallPager::lacks(uint64_t src_off) const {
  if (src_off < src_offset_ || src_off - src_offset_ >= size_) return false;
  return saved_.count(src_off - src_offset_) == 0;
}

void CopyCallPager::save(uint64_t src_off, const uint8_t* page) {
  if (lacks(src_off)) data_return(src_off - src_offset_, page);
}

// --- ManagerPager -----------------------------------------------------------------------------

const uint8_t* ManagerPager::data(uint64_t offset) const {
  if (destroyed || offset >= size_) return nullptr;
  if (device_mem_ != nullptr) return device_mem_->frame(device_frame(offset));
  auto it = store_.find(offset);
  return it == store_.end() ? kZeroPage.data() : it->second.data();
}

void ManagerPager::data_return(uint64_t offset, const uint8_t* page) {
  if (destroyed || offset >= size_) return;
  if (device_mem_ != nullptr) {
    // Device memory is where a mapped device page's data already lives.
    uint8_t* frame = device_mem_->frame(device_frame(offset));
    if (frame != page) std::memcpy(frame, page, kPageSize);
    return;
  }
  std::memcpy(store_[offset].data(), page, kPageSize);
}

void ManagerPager::offsets(uint64_t start, uint64_t end, std::vector<uint64_t>& out) const {
  if (device_mem_ != nullptr) {
    // Every page of a device is memory (at most kMaxDeviceSize / 4096 of them).
    for (uint64_t off = round_page(start); off < end && off < size_; off += kPageSize) out.push_back(off);
    return;
  }
  for (auto it = store_.lower_bound(start); it != store_.end() && it->first < end; ++it)
    out.push_back(it->first);
}

machine::pfn_t ManagerPager::device_frame(uint64_t offset) const {
  if (device_mem_ == nullptr || destroyed || offset >= size_) return machine::kNoFrame;
  return device_base_ + machine::pfn_t(offset >> kPageShift);
}

vm_prot_t ManagerPager::lock_value(uint64_t offset) const {
  for (const CopyCallPager* c : pending_)
    if (c->lacks(offset)) return VM_PROT_WRITE;
  return VM_PROT_NONE;
}

void ManagerPager::data_unlock(uint64_t offset, const uint8_t* current) {
  // COPY_CALL: save the page into every copy that still lacks it, then grant the write.
  for (CopyCallPager* c : pending_) c->save(offset, current);
}

void ManagerPager::forget(CopyCallPager* c) {
  pending_.erase(std::remove(pending_.begin(), pending_.end(), c), pending_.end());
}

void ManagerPager::store_write(uint64_t offset, const uint8_t* bytes, uint64_t len) {
  for (uint64_t done = 0; done < len;) {
    uint64_t at = offset + done;
    uint64_t n = std::min<uint64_t>(len - done, kPageSize - at % kPageSize);
    uint8_t* page;
    if (device_mem_ != nullptr) {
      page = device_mem_->frame(device_frame(trunc_page(at)));
    } else {
      auto [it, fresh] = store_.try_emplace(trunc_page(at));
      if (fresh) it->second.fill(0);
      page = it->second.data();
    }
    std::memcpy(page + at % kPageSize, bytes + done, n);
    done += n;
  }
}

void ManagerPager::store_read(uint64_t offset, uint64_t len, uint8_t* out) const {
  for (uint64_t done = 0; done < len;) {
    uint64_t at = offset + done;
    uint64_t n = std::min<uint64_t>(len - done, kPageSize - at % kPageSize);
    const uint8_t* page = nullptr;
    if (device_mem_ != nullptr) {
      page = device_mem_->frame(device_frame(trunc_page(at)));
    } else if (auto it = store_.find(trunc_page(at)); it != store_.end()) {
      page = it->second.data();
    }
    if (page == nullptr)
      std::memset(out + done, 0, n);
    else
      std::memcpy(out + done, page + at % kPageSize, n);
    done += n;
  }
}

void ManagerPager::clear_store() {
  store_.clear();
  if (device_mem_ != nullptr)  // the device's memory is reset with it
    for (uint64_t off = 0; off < size_; off += kPageSize)
      std::memset(device_mem_->frame(device_base_ + machine::pfn_t(off >> kPageShift)), 0, kPageSize);
}

// --- Kernel side --------------------------------------------------------------------------------

VmObject* vm_object_enter(VmSystem& sys, ManagerPager& pager) {
  assert(!pager.destroyed && "vm_object_enter: destroyed memory object");
  if (VmObject* o = pager.kobject; o != nullptr &&
                                   !(o->ref_count == 0 && VMFUZZ_BUG_ON(CachedObjectNotFound))) {
    if (o->ref_count == 0) vm_object_cache_remove(sys, o);
    ++o->ref_count;
    ++sys.counters.cache_hits;
    return o;
  }
  VmObject* o = vm_object_allocate(sys, pager.size());
  o->internal = false;
  o->temporary = false;
  o->pager = &pager;
  o->pager_created = o->pager_initialized = o->pager_ready = true;
  o->copy_strategy = pager.strategy();
  o->can_persist = pager.persist();
  pager.kobject = o;
  if (pager.init_held()) {
    // memory_object_init is sent (pager_initialized) and waits in the manager's queue:
    // the object is not ready until memory_object_ready comes back.
    o->pager_ready = false;
    pager.init_object = o->id;
    ++sys.counters.inits_queued;
  }
  return o;
}

kern_return_t vm_object_read_page(const VmSystem& sys, const VmObject* object, uint64_t offset,
                                  uint8_t* out) {
  if (VMFUZZ_BUG_ON(CopyReadsAbsentPage)) {
    // The bug: the first page of the chain is taken as it is, even an absent one whose
    // frame holds no data yet (the manager's reply will bring it).
    uint64_t off = offset;
    for (const VmObject* o = object; o != nullptr; off += o->shadow_offset, o = o->shadow) {
      const VmPage* p = vm_page_lookup(o, off);
      if (p == nullptr) continue;
      if (p->absent) {
        std::memcpy(out, sys.machine.memory().frame(p->frame), kPageSize);
        return KERN_SUCCESS;
      }
      break;
    }
  }
  ChainLookup l = vm_object_chain_lookup(object, offset);
  if (l.lost) return KERN_MEMORY_ERROR;  // unknown bytes: callers copy zeros or skip
  if (l.page != nullptr)
    std::memcpy(out, sys.machine.memory().frame(l.page->frame), kPageSize);
  else if (l.data != nullptr)
    std::memcpy(out, l.data, kPageSize);
  else
    std::memset(out, 0, kPageSize);
  return KERN_SUCCESS;
}

kern_return_t vm_object_copy_slowly(VmSystem& sys, VmObject* src, uint64_t offset, uint64_t size,
                                    bool tolerate_errors, VmObject** result) {
  VmObject* n = vm_object_allocate(sys, size);
  std::array<uint8_t, kPageSize> buf;
  for (uint64_t rel : chain_candidates(src, offset, size)) {
    if (VMFUZZ_BUG_ON(CopySlowlySkipsNonresident) && vm_page_lookup(src, offset + rel) == nullptr)
      continue;
    kern_return_t kr = vm_object_read_page(sys, src, offset + rel, buf.data());
    if (kr != KERN_SUCCESS) {
      if (tolerate_errors) continue;
      vm_object_deallocate(sys, n);
      return kr;
    }
    if (page_is_zero(buf.data())) continue;
    // The copy's data goes to its default-pager store: no frame is needed now.
    if (n->pager == nullptr) vm_object_pager_create(sys, n);
    n->pager->data_return(rel, buf.data());
  }
  ++sys.counters.copies_slowly;
  *result = n;
  return KERN_SUCCESS;
}

VmObject* vm_object_copy_call(VmSystem& sys, VmObject* src, uint64_t offset, uint64_t size) {
  auto* manager = dynamic_cast<ManagerPager*>(src->pager);
  assert(manager != nullptr && "vm_object_copy_call: source has no external manager");
  VmObject* n = vm_object_allocate(sys, size);
  auto pager = std::make_unique<CopyCallPager>(manager, offset, size);
  manager->add_copy(pager.get());  // memory_object_copy: the manager makes the new object
  n->internal = false;
  n->temporary = false;
  n->copy_strategy = CopyStrategy::Delay;
  n->pager = pager.get();
  n->owned_pager = std::move(pager);
  n->pager_created = n->pager_initialized = n->pager_ready = true;
  vm_object_set_shadow(n, src);
  vm_object_reference(src);
  n->shadow_offset = offset;
  // Write-lock the source's resident pages: their next write asks the manager first.
  for (VmPage* p = vm_page_next(src, offset);
       p != nullptr && p->offset < offset + size && !VMFUZZ_BUG_ON(CopyCallNotWriteLocked);
       p = vm_page_next(src, p->offset + kPageSize)) {
    p->page_lock |= VM_PROT_WRITE;
    sys.domain.pmap_page_protect(p->frame, VM_PROT_READ | VM_PROT_EXECUTE);
  }
  ++sys.counters.copies_call;
  return n;
}

kern_return_t vm_object_copy_strategically(VmSystem& sys, VmObject* src, uint64_t offset,
                                           uint64_t size, bool tolerate_errors,
                                           VmObject** result, uint64_t* result_offset,
                                           bool* needs_copy) {
  if (src->pager_lost) {
    // The manager is gone: copy what is still here (unreadable pages fail or read zero).
    *result_offset = 0;
    *needs_copy = false;
    return vm_object_copy_slowly(sys, src, offset, size, tolerate_errors, result);
  }
  if (src->temporary) src->copy_strategy = CopyStrategy::Delay;  // as Mach does
  switch (src->copy_strategy) {
    case CopyStrategy::None:
      *result_offset = 0;
      *needs_copy = false;
      return vm_object_copy_slowly(sys, src, offset, size, tolerate_errors, result);
    case CopyStrategy::Call:
      *result = vm_object_copy_call(sys, src, offset, size);
      *result_offset = 0;
      *needs_copy = false;
      return KERN_SUCCESS;
    case CopyStrategy::Delay:
      *result = vm_object_copy_delayed(sys, src);
      *result_offset = offset;
      *needs_copy = true;
      return KERN_SUCCESS;
  }
  return KERN_FAILURE;
}

void memory_object_lock_request(VmSystem& sys, VmObject* object, uint64_t start, uint64_t end,
                                bool should_return, bool should_flush) {
  // An acknowledged data_return drops its paging reference, which may be the object's last
  // (its mappings went while the return was in flight): hold one until the loop is done.
  bool referenced = false;
  for (VmPage* p = vm_page_next(object, start); p != nullptr && p->offset < end;) {
    uint64_t next = p->offset + kPageSize;
    if (p->absent && should_flush && VMFUZZ_BUG_ON(FlushTakesAbsent)) {
      // The bug: the page in transit is flushed as if it were cached; its request stays
      // in flight with no page to fill, and the faults waiting on it are never woken.
      p->busy = p->absent = false;
      --object->absent_count;
      vm_page_free(sys, p);
      p = vm_page_next(object, next);
      continue;
    }
    if (p->absent) {
      // In transit from a held manager: nothing cached to return or drop (the data the
      // manager will supply is its store's, as it is when it answers).
      p = vm_page_next(object, next);
      continue;
    }
    if (p->cleaning) {
      // Its data_return is in flight: this kernel path cannot wait, so the manager
      // acknowledges it now (the store then has the data); then look at the offset again.
      const uint64_t at = p->offset;
      if (!referenced) vm_object_reference(object);
      referenced = true;
      memory_object_return_now(sys, object, at);
      p = vm_page_next(object, at);
      if (p != nullptr && p->offset == at && p->cleaning) p = vm_page_next(object, next);  // only after a bug
      continue;
    }
    assert(!p->busy && "memory_object_lock_request: busy page");
    if (p->private_page) {
      // A device page is the device's memory itself: nothing to return, nothing to drop.
      p = vm_page_next(object, next);
      continue;
    }
    if (should_return && object->pager != nullptr &&
        (p->dirty || p->precious || sys.domain.pmap_is_modified(p->frame))) {
      object->pager->data_return(p->offset + object->paging_offset,
                                 sys.machine.memory().frame(p->frame));
      p->dirty = false;
      sys.domain.pmap_clear_modify(p->frame);
    }
    if (should_flush) vm_page_free(sys, p);
    p = vm_page_next(object, next);
  }
  if (referenced) vm_object_deallocate(sys, object);  // the object may terminate here
}

namespace {

ManagerPager* held_manager(VmObject* object) {
  auto* mp = dynamic_cast<ManagerPager*>(object->pager);
  return mp != nullptr && mp->held() ? mp : nullptr;
}

/// Does manager have a data_return of (object, [start, end)) older than message `before`?
bool older_return_in(const ManagerPager& manager, uint64_t object, uint64_t start, uint64_t end, uint64_t before) {
  for (const PagerReturn& r : manager.returns)
    if (r.object == object && r.offset >= start && r.offset < end && r.id < before) return true;
  return false;
}

void lock_completed(VmSystem& sys, ManagerPager& manager, const PagerLock& l) {
  ++sys.counters.locks_completed;
  if (older_return_in(manager, l.object, l.start, l.end, l.id))  // only after a bug
    manager.early_completions.push_back(LockCompleted{l.id, l.object, l.start, l.end});
}

/// Send every lock_completed now owed, and forget early ones nothing older waits for.
void locks_progress(VmSystem& sys, ManagerPager& manager) {
  for (size_t i = 0; i < manager.locks.size();) {
    const PagerLock l = manager.locks[i];
    if (older_return_in(manager, l.object, l.start, l.end, l.id)) {
      ++i;
      continue;
    }
    manager.locks.erase(manager.locks.begin() + static_cast<std::ptrdiff_t>(i));
    lock_completed(sys, manager, l);
  }
  auto& e = manager.early_completions;
  e.erase(std::remove_if(e.begin(), e.end(),
                         [&](const LockCompleted& c) {
                           return !older_return_in(manager, c.object, c.start, c.end, c.lock);
                         }),
          e.end());
}

}  // namespace

bool memory_object_data_return_async(VmSystem& sys, VmObject* object, VmPage* p, bool flush) {
  ManagerPager* mp = held_manager(object);
  if (mp == nullptr || mp->is_device() || p->private_page) return false;
  assert(!p->busy && !p->absent && "memory_object_data_return_async: busy page");
  PagerReturn r;
  r.id = mp->next_message();
  r.object = object->id;
  r.offset = p->offset;
  r.pager_offset = p->offset + object->paging_offset;
  r.flush = flush;
  std::memcpy(r.data.data(), sys.machine.memory().frame(p->frame), kPageSize);
  // As vm_pageout_page does: no mapping may change the page while its data is in flight,
  // and the kernel's copy is clean once sent.
  sys.domain.pmap_page_protect(p->frame, VM_PROT_NONE);
  p->dirty = false;
  sys.domain.pmap_clear_modify(p->frame);
  p->busy = p->cleaning = true;
  ++object->paging_in_progress;
  // The paging reference: the object lives while M owes the ack (a cached object leaves
  // the cache for that time, as vm_object_enter takes it out).
  if (object->ref_count == 0) vm_object_cache_remove(sys, object);
  ++object->ref_count;
  mp->returns.push_back(std::move(r));
  ++sys.counters.returns_sent;
  return true;
}

void memory_object_return_ack(VmSystem& sys, ManagerPager& manager, size_t i) {
  assert(i < manager.returns.size() && "memory_object_return_ack: no such return");
  PagerReturn r = std::move(manager.returns[i]);
  manager.returns.erase(manager.returns.begin() + static_cast<std::ptrdiff_t>(i));
  ++sys.sched.step;
  manager.data_return(r.pager_offset, r.data.data());  // the store takes what was sent
  auto it = sys.objects.find(r.object);
  assert(it != sys.objects.end() && "memory_object_return_ack: the paging reference lost its object");
  VmObject* o = it->second;
  if (VmPage* m = vm_page_lookup(o, r.offset); m != nullptr && m->cleaning) {
    m->busy = m->cleaning = false;
    if (r.flush) vm_page_free(sys, m);
  }
  assert(o->paging_in_progress > 0 && "memory_object_return_ack: no paging in progress");
  --o->paging_in_progress;
  sys.sched.thread_wakeup(WaitEvent{WaitEvent::Kind::PageBusy, o->id, r.offset});
  locks_progress(sys, manager);
  vm_object_deallocate(sys, o);  // the paging reference
}

bool memory_object_return_now(VmSystem& sys, VmObject* object, uint64_t offset) {
  auto* manager = dynamic_cast<ManagerPager*>(object->pager);
  if (manager == nullptr) return false;
  for (size_t i = 0; i < manager->returns.size(); ++i) {
    const PagerReturn& r = manager->returns[i];
    if (r.object == object->id && r.offset == offset) {
      memory_object_return_ack(sys, *manager, i);
      return true;
    }
  }
  return false;
}

void memory_object_lock_request_async(VmSystem& sys, ManagerPager& manager, uint64_t start, uint64_t end,
                                      bool should_return, bool should_flush) {
  VmObject* object = manager.kobject;
  if (object == nullptr || manager.is_device()) return;  // nothing cached; device pages are the device
  ++sys.counters.lock_requests;
  const bool by_message = manager.held();
  for (VmPage* p = vm_page_next(object, start); p != nullptr && p->offset < end;) {
    const uint64_t next = p->offset + kPageSize;
    if (p->absent || p->private_page) {  // in transit (the store will supply it) / the device's
      p = vm_page_next(object, next);
      continue;
    }
    if (p->cleaning) {  // already being returned: the lock waits for it (and flushes it)
      for (PagerReturn& r : manager.returns)
        if (r.object == object->id && r.offset == p->offset) r.flush = r.flush || should_flush;
      p = vm_page_next(object, next);
      continue;
    }
    assert(!p->busy && "memory_object_lock_request_async: busy page");
    const bool dirty = p->dirty || p->precious || sys.domain.pmap_is_modified(p->frame);
    if (should_return && dirty && by_message) {
      memory_object_data_return_async(sys, object, p, should_flush);
      p = vm_page_next(object, next);
      continue;
    }
    if (should_return && dirty) {
      manager.data_return(p->offset + object->paging_offset, sys.machine.memory().frame(p->frame));
      p->dirty = false;
      sys.domain.pmap_clear_modify(p->frame);
    }
    // A dirty page flushed without should_return loses its changes: Mach's semantics, but
    // the store would then disagree with what was written, so the kernel returns it first.
    if (should_flush && dirty && !should_return) {
      if (by_message) {
        memory_object_data_return_async(sys, object, p, true);
        p = vm_page_next(object, next);
        continue;
      }
      manager.data_return(p->offset + object->paging_offset, sys.machine.memory().frame(p->frame));
    }
    if (should_flush) vm_page_free(sys, p);
    p = vm_page_next(object, next);
  }
  PagerLock l{manager.next_message(), object->id, start, end};
  // memory_object_lock_completed only once the range is clean (bug: at once).
  if (older_return_in(manager, l.object, l.start, l.end, l.id) && !VMFUZZ_BUG_ON(LockCompletedBeforeClean))
    manager.locks.push_back(l);
  else
    lock_completed(sys, manager, l);
}

/// destroy, step 1: the newest DELAY copy object receives every page it lacks and stops
/// shadowing the source (older copies read through it).
static void detach_delay_copy(VmSystem& sys, VmObject* src, const std::vector<uint64_t>& cands) {
  VmObject* c = src->copy;
  if (c == nullptr) return;
  std::array<uint8_t, kPageSize> buf;
  for (uint64_t off : cands) {
    if (off >= c->size || vm_page_lookup(c, off) != nullptr || vm_object_pager_data(c, off))
      continue;
    if (vm_object_read_page(sys, src, off, buf.data()) != KERN_SUCCESS) continue;
    if (c->pager == nullptr) vm_object_pager_create(sys, c);
    c->pager->data_return(off + c->paging_offset, buf.data());
  }
  src->copy = nullptr;
  vm_object_set_shadow(c, nullptr);
  c->shadow_offset = 0;
  --src->ref_count;  // the copy's shadow reference (the caller holds another)
}

/// destroy, step 2: every pending COPY_CALL copy saves what it lacks and stops shadowing.
static void detach_call_copies(VmSystem& sys, ManagerPager& manager, VmObject* src,
                               const std::vector<uint64_t>& cands) {
  std::vector<CopyCallPager*> pending = manager.pending();
  std::array<uint8_t, kPageSize> buf;
  for (CopyCallPager* c : pending) {
    // Find the copy's object: the live object whose pager this is (ids: deterministic).
    VmObject* n = nullptr;
    for (auto& [id, o] : sys.objects)
      if (o->pager == c) n = o;
    assert(n != nullptr && n->shadow == src && "memory_object_destroy: pending copy object");
    for (uint64_t off : cands) {
      if (!c->lacks(off) || vm_page_lookup(n, off - c->src_offset()) != nullptr) continue;
      if (vm_object_read_page(sys, src, off, buf.data()) == KERN_SUCCESS) c->save(off, buf.data());
    }
    vm_object_set_shadow(n, nullptr);
    n->shadow_offset = 0;
    --src->ref_count;
    manager.forget(c);
    c->detach();
  }
}

void ManagerPager::data_request(uint64_t object, uint64_t offset, uint64_t pager_offset, uint32_t owner) {
  assert(held() && "data_request: the manager is not held");
  requests.push_back(PagerRequest{next_request_++, object, offset, pager_offset, owner});
}

namespace {

/// The busy absent page a request waits to fill, or nullptr when it is gone.
VmPage* request_page(VmSystem& sys, const PagerRequest& req, VmObject** object) {
  auto it = sys.objects.find(req.object);
  *object = it == sys.objects.end() ? nullptr : it->second;
  if (*object == nullptr) return nullptr;
  VmPage* m = vm_page_lookup(*object, req.offset);
  return m != nullptr && m->busy && m->absent ? m : nullptr;
}

/// The end of a request: accounting, wakeups, the paging reference.
void request_done(VmSystem& sys, VmObject* o, const PagerRequest& req, bool absent_cleared, bool wake_page) {
  if (absent_cleared) --o->absent_count;
  assert(o->paging_in_progress > 0 && "request_done: no paging in progress");
  --o->paging_in_progress;
  if (wake_page) sys.sched.thread_wakeup(WaitEvent{WaitEvent::Kind::PageBusy, o->id, req.offset});
  sys.sched.thread_wakeup(WaitEvent{WaitEvent::Kind::AbsentBelow, o->id, 0});
  if (!VMFUZZ_BUG_ON(RequestTakesNoReference)) vm_object_deallocate(sys, o);
}

}  // namespace

void memory_object_reply(VmSystem& sys, ManagerPager& manager, size_t i, ReplyHow how) {
  assert(i < manager.requests.size() && "memory_object_reply: no such request");
  PagerRequest req = manager.requests[i];
  manager.requests.erase(manager.requests.begin() + static_cast<std::ptrdiff_t>(i));
  ++sys.sched.step;
  VmObject* o = nullptr;
  VmPage* m = request_page(sys, req, &o);
  if (m == nullptr) return;  // nothing waits for it any more (only after a bug)
  if (how == ReplyHow::Unavailable) {
    assert(manager.strategy() == CopyStrategy::None && "memory_object_reply: unavailable needs COPY_NONE");
    manager.forget_page(req.pager_offset);
  }
  bool fail = how == ReplyHow::Error && !VMFUZZ_BUG_ON(DataErrorZeroFills);
  if (fail) {
    // memory_object_data_error: the page goes; the fault that asked gets the error, others
    // that wait retry (and ask again).
    m->busy = m->absent = false;
    vm_page_free(sys, m);
    auto t = sys.sched.threads.find(req.owner);
    if (t != sys.sched.threads.end()) t->second.memory_error = true;
  } else {
    // data_supply (or, for unavailable, the zero fill of vm_fault_page's absent page at
    // the bottom of the chain: the manager has forgotten the page, so it reads zero).
    const uint8_t* d = how == ReplyHow::Supply ? manager.data(req.pager_offset) : nullptr;
    uint8_t* frame = sys.machine.memory().frame(m->frame);
    if (d != nullptr) std::memcpy(frame, d, kPageSize);
    else std::memset(frame, 0, kPageSize);
    m->busy = m->absent = false;
    m->dirty = false;
    sys.domain.pmap_clear_modify(m->frame);
    m->page_lock = manager.lock_value(req.pager_offset);
    ++sys.counters.pageins;
  }
  bool leak = how == ReplyHow::Unavailable && VMFUZZ_BUG_ON(AbsentCountLeak);
  bool lost = how == ReplyHow::Supply && VMFUZZ_BUG_ON(LostWakeup);
  request_done(sys, o, req, !leak, !lost);
}

void memory_object_data_supply(VmSystem& sys, ManagerPager& manager, uint64_t offset) {
  VmObject* o = manager.kobject;
  if (o == nullptr || manager.is_device() || offset < o->paging_offset) return;
  const uint64_t off = offset - o->paging_offset;
  if (off >= o->size) return;
  VmPage* m = vm_page_lookup(o, off);
  if (m != nullptr && m->busy && m->absent) {  // in transit: this is its answer
    memory_object_answer_now(sys, o, off);
    return;
  }
  const uint8_t* d = manager.data(offset);
  if (m != nullptr) {
    if (VMFUZZ_BUG_ON(UnrequestedSupplyOverwrites) && !m->busy && !m->private_page) {
      // The bug: the supply lands over the resident page, dirty or not.
      uint8_t* frame = sys.machine.memory().frame(m->frame);
      if (d != nullptr) std::memcpy(frame, d, kPageSize);
      else std::memset(frame, 0, kPageSize);
      m->dirty = false;
      sys.domain.pmap_clear_modify(m->frame);
    }
    return;  // the kernel's page is the newer: the supply is ignored
  }
  if (o->ref_count == 0) return;  // a cached object is not grown by a supply (it could be collected)
  VmPage* n = vm_page_grab(sys);
  if (n == nullptr) return;
  if (vm_page_lookup(o, off) != nullptr) {  // cannot happen (nothing runs in a grab), but be plain
    vm_page_free(sys, n);
    return;
  }
  d = manager.data(offset);  // looked up again: the grab may have returned pages to the store
  uint8_t* frame = sys.machine.memory().frame(n->frame);
  if (d != nullptr) std::memcpy(frame, d, kPageSize);
  else std::memset(frame, 0, kPageSize);
  vm_page_insert(sys, n, o, off);
  n->dirty = false;
  sys.domain.pmap_clear_modify(n->frame);
  n->page_lock = manager.lock_value(offset);
  vm_page_activate(sys, n);
  ++sys.counters.pageins;
}

void memory_object_ready(VmSystem& sys, ManagerPager& manager) {
  if (manager.init_object == 0) return;
  auto it = sys.objects.find(manager.init_object);
  manager.init_object = 0;
  ++sys.sched.step;
  if (it == sys.objects.end()) return;  // the object is gone: the answer is dropped
  VmObject* o = it->second;
  o->pager_ready = true;
  if (!VMFUZZ_BUG_ON(ReadyWakesNobody))
    sys.sched.thread_wakeup(WaitEvent{WaitEvent::Kind::PagerReady, o->id, 0});
}

bool memory_object_answer_now(VmSystem& sys, VmObject* object, uint64_t offset) {
  auto* manager = dynamic_cast<ManagerPager*>(object->pager);
  if (manager == nullptr) return false;
  for (size_t i = 0; i < manager->requests.size(); ++i) {
    const PagerRequest& r = manager->requests[i];
    if (r.object == object->id && r.offset == offset) {
      memory_object_reply(sys, *manager, i, ReplyHow::Supply);
      return true;
    }
  }
  return false;
}

void vm_object_abort_activity(VmSystem& sys, ManagerPager& manager) {
  if (manager.init_object != 0) {
    // The init will never be answered: the object stops waiting (it loses its pager
    // next), and the faults waiting for it retry and find the pager gone.
    auto it = sys.objects.find(manager.init_object);
    manager.init_object = 0;
    if (it != sys.objects.end()) {
      it->second->pager_ready = true;
      sys.sched.thread_wakeup(WaitEvent{WaitEvent::Kind::PagerReady, it->first, 0});
    }
  }
  // data_returns in flight go with the manager (its store goes too): their pages are
  // freed, their waiters woken; no lock_completed will be sent.
  std::vector<PagerReturn> rets;
  rets.swap(manager.returns);
  manager.locks.clear();
  manager.early_completions.clear();
  for (const PagerReturn& r : rets) {
    auto it = sys.objects.find(r.object);
    if (it == sys.objects.end()) continue;
    VmObject* o = it->second;
    if (VmPage* m = vm_page_lookup(o, r.offset); m != nullptr && m->cleaning) {
      m->busy = m->cleaning = false;
      vm_page_free(sys, m);
    }
    --o->paging_in_progress;
    sys.sched.thread_wakeup(WaitEvent{WaitEvent::Kind::PageBusy, o->id, r.offset});
    vm_object_deallocate(sys, o);
  }
  std::vector<PagerRequest> reqs;
  reqs.swap(manager.requests);
  for (const PagerRequest& req : reqs) {
    VmObject* o = nullptr;
    VmPage* m = request_page(sys, req, &o);
    if (m == nullptr) continue;
    bool forget = VMFUZZ_BUG_ON(AbortLeavesAbsent);
    if (!forget) {
      m->busy = m->absent = false;
      vm_page_free(sys, m);
    }
    request_done(sys, o, req, !forget, !forget);
  }
}

void memory_object_destroy(VmSystem& sys, ManagerPager& manager) {
  assert(!manager.destroyed && "memory_object_destroy: already destroyed");
  if (VmObject* s = manager.kobject) {
    if (s->ref_count == 0) vm_object_cache_remove(sys, s);
    ++s->ref_count;  // hold it while copies are made independent
    std::vector<uint64_t> cands = chain_candidates(s, 0, s->size);
    if (!VMFUZZ_BUG_ON(DestroyLosesCopies)) {
      detach_delay_copy(sys, s, cands);
      detach_call_copies(sys, manager, s, cands);
    }
    // Requests in flight are aborted (their waiters retry and find the pager gone).
    vm_object_abort_activity(sys, manager);
    // The source loses its pager: its pages go, later faults get KERN_MEMORY_ERROR.
    // (A page still busy here is in transit only after bug abort_leaves_absent: it stays.)
    for (VmPage* p = s->pages.lower_bound(0); p != nullptr;) {
      VmPage* next = vm_page_next(s, p->offset + kPageSize);
      if (!p->busy) vm_page_free(sys, p);
      p = next;
    }
    s->pager = nullptr;
    s->pager_lost = true;
    manager.kobject = nullptr;
    vm_object_deallocate(sys, s);
  }
  manager.destroyed = true;
  manager.clear_store();
}

}  // namespace vmfuzz::vm
