// vm_object.cc — VM objects and the page routines that need the VM system.
//
// Theory of operation: see vm_object.h. Notes on this implementation:
// - Pages are freed only through vm_page_free, which first removes every mapping of the
//   frame (pmap_page_protect NONE): no PTE or TLB entry can outlive the page's membership
//   in its object [invariant no_stale_mapping].
// - Mach's locking protocol (object locks, try-locks for copy objects, busy pages,
//   paging_in_progress) guards against concurrent faults; this VM is single-threaded,
//   so the flags are maintained where Mach sets them and asserted where Mach waits.
// - Work is proportional to resident pages, never to object sizes: scans use
//   PageTree::lower_bound over the window of interest.
#include "vm/vm_object.h"
#include "vm/bugs.h"

#include <cassert>
#include <cstring>

#include "vm/vm_pageout.h"

namespace vmfuzz::vm {

// Under AddressSanitizer, the vm_page_array slot of a free frame is poisoned, so a use of
// a freed page is still reported as a heap-use-after-free would have been when pages
// came from new/delete.
#if defined(__SANITIZE_ADDRESS__)
#define VMFUZZ_VM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VMFUZZ_VM_ASAN 1
#endif
#endif
#ifdef VMFUZZ_VM_ASAN
#include <sanitizer/asan_interface.h>
#define VMFUZZ_PAGE_POISON(p) ASAN_POISON_MEMORY_REGION((p), sizeof(VmPage))
#define VMFUZZ_PAGE_UNPOISON(p) ASAN_UNPOISON_MEMORY_REGION((p), sizeof(VmPage))
#else
#define VMFUZZ_PAGE_POISON(p) ((void)(p))
#define VMFUZZ_PAGE_UNPOISON(p) ((void)(p))
#endif

VmSystem::VmSystem(machine::Machine& m, pmap::PmapDomain& d)
    : machine(m), domain(d), vm_page_array(m.memory().frame_count()) {
  page_of_frame.assign(m.memory().frame_count(), nullptr);
  for (VmPage& p : vm_page_array) VMFUZZ_PAGE_POISON(&p);
}

VmSystem::~VmSystem() {
  // Objects still alive at shutdown (a leak the invariants report) are freed here
  // without pmap work, so that sanitizers report only real memory errors.
  for (auto& [id, obj] : objects) {
    (void)id;
    while (VmPage* p = obj->pages.lower_bound(0)) {
      obj->pages.remove(p->offset >> kPageShift);
      if (!vm_page_in_array(*this, p)) delete p;
    }
    delete obj;
  }
  objects.clear();
  for (VmPage& p : vm_page_array) VMFUZZ_PAGE_UNPOISON(&p);
}

// --- Pages ----------------------------------------------------------------------------------

VmPage* vm_page_grab(VmSystem& sys) {
  machine::pfn_t f = sys.machine.memory().alloc_frame(machine::FrameUse::VmPage);
  while (f == machine::kNoFrame) {
    // Frame pressure: evict pages nobody is using right now (or page tables), retry.
    if (!vm_page_reclaim(sys)) return nullptr;
    f = sys.machine.memory().alloc_frame(machine::FrameUse::VmPage);
  }
  VmPage* p = &sys.vm_page_array[f];
  VMFUZZ_PAGE_UNPOISON(p);
  *p = VmPage{};
  p->frame = f;
  sys.page_of_frame[f] = p;
  ++sys.counters.pages_grabbed;
  return p;
}

void vm_page_free(VmSystem& sys, VmPage* p) {
  assert(!p->busy && "vm_page_free: page is busy");
  assert(p->wire_count == 0 && "vm_page_free: page is wired");
  if (!VMFUZZ_BUG_ON(FreedWhileMapped)) sys.domain.pmap_page_protect(p->frame, VM_PROT_NONE);
  if (p->object != nullptr) vm_page_remove(p);
  if (p->queue == VmPage::Queue::Active) sys.active.remove(p);
  if (p->queue == VmPage::Queue::Inactive) sys.inactive.remove(p);
  sys.page_of_frame[p->frame] = nullptr;
  sys.machine.memory().free_frame(p->frame);
  ++sys.counters.pages_freed;
  if (vm_page_in_array(sys, p))
    VMFUZZ_PAGE_POISON(p);
  else
    delete p;
}

static void page_enter_object(VmPage* p, VmObject* object, uint64_t offset) {
  assert(p->object == nullptr && "vm_page_insert: page already in an object");
  assert((offset & (kPageSize - 1)) == 0 && "vm_page_insert: unaligned offset");
  object->pages.insert(offset >> kPageShift, p);
  p->object = object;
  p->offset = offset;
  ++object->resident_page_count;
}

void vm_page_insert(VmSystem& sys, VmPage* p, VmObject* object, uint64_t offset) {
  page_enter_object(p, object, offset);
  if (p->queue == VmPage::Queue::None) sys.active.push_back(p);
}

void vm_page_remove(VmPage* p) {
  VmObject* o = p->object;
  assert(o != nullptr && "vm_page_remove: page in no object");
  VmPage* r = o->pages.remove(p->offset >> kPageShift);
  assert(r == p && "vm_page_remove: tree does not hold the page");
  (void)r;
  --o->resident_page_count;
  p->object = nullptr;
}

void vm_page_rename(VmPage* p, VmObject* object, uint64_t offset) {
  vm_page_remove(p);
  page_enter_object(p, object, offset);
}

VmPage* vm_page_lookup(const VmObject* object, uint64_t offset) {
  return object->pages.lookup(offset >> kPageShift);
}

VmPage* vm_page_next(const VmObject* object, uint64_t offset) {
  return object->pages.lower_bound(offset >> kPageShift);
}

void vm_page_activate(VmSystem& sys, VmPage* p) {
  if (p->queue == VmPage::Queue::Active) sys.active.remove(p);
  if (p->queue == VmPage::Queue::Inactive) sys.inactive.remove(p);
  sys.active.push_back(p);
}

void vm_page_deactivate(VmSystem& sys, VmPage* p) {
  if (p->queue == VmPage::Queue::Active) sys.active.remove(p);
  if (p->queue == VmPage::Queue::Inactive) sys.inactive.remove(p);
  sys.inactive.push_back(p);
}

// --- Objects --------------------------------------------------------------------------------

VmObject* vm_object_allocate(VmSystem& sys, uint64_t size) {
  auto* o = new VmObject;
  o->id = sys.next_object_id++;
  o->size = size;
  sys.objects.emplace(o->id, o);
  ++sys.counters.objects_created;
  return o;
}

void vm_object_reference(VmObject* object) {
  if (object == nullptr) return;
  assert(object->alive && object->ref_count > 0 && "vm_object_reference: dead object");
  ++object->ref_count;
}

void vm_object_cache_remove(VmSystem& sys, VmObject* object) {
  for (auto it = sys.cached.begin(); it != sys.cached.end(); ++it) {
    if (*it == object) {
      sys.cached.erase(it);
      return;
    }
  }
  assert(false && "vm_object_cache_remove: object not cached");
}

void vm_object_deallocate(VmSystem& sys, VmObject* object) {
  while (object != nullptr) {
    assert(object->ref_count > 0 && "vm_object_deallocate: reference count underflow");
    if (--object->ref_count > 0) return;
    if (object->can_persist && object->resident_page_count > 0 && !object->pager_lost) {
      // Keep it for a later vm_object_enter; trim the oldest beyond the bound.
      assert(object->shadow == nullptr && "vm_object_deallocate: cached object with a shadow");
      sys.cached.push_back(object);
      ++sys.counters.cache_enters;
      while (sys.cached.size() > sys.cache_bound) {
        VmObject* victim = sys.cached.front();
        sys.cached.erase(sys.cached.begin());
        ++sys.counters.cache_trims;
        vm_object_terminate(sys, victim);
      }
      return;
    }
    VmObject* shadow = object->shadow;
    vm_object_terminate(sys, object);
    object = shadow;  // release the terminated object's shadow reference in turn
  }
}

void vm_object_terminate(VmSystem& sys, VmObject* object) {
  assert(object->ref_count == 0 && "vm_object_terminate: object still referenced");
  assert(object->copy == nullptr && "vm_object_terminate: object has a copy object");
  assert(object->paging_in_progress == 0 && "vm_object_terminate: paging in progress");
#ifndef NDEBUG
  for (VmObject* c : sys.cached)
    assert(c != object && "vm_object_terminate: object still in the cache");
#endif
  object->alive = false;
  if (object->shadow != nullptr && object->shadow->copy == object) object->shadow->copy = nullptr;
  while (VmPage* p = object->pages.lower_bound(0)) {
    if (!object->temporary && object->pager != nullptr) {
      // Permanent objects: what was written reaches the manager (data_return).
      sys.domain.pmap_page_protect(p->frame, VM_PROT_NONE);
      if (p->dirty || p->precious || sys.domain.pmap_is_modified(p->frame))
        object->pager->data_return(p->offset + object->paging_offset,
                                   sys.machine.memory().frame(p->frame));
    }
    vm_page_free(sys, p);
  }
  if (object->pager != nullptr) object->pager->terminate();
  sys.objects.erase(object->id);
  ++sys.counters.objects_terminated;
  delete object;
}

void vm_object_shadow(VmSystem& sys, VmObject** object, uint64_t* offset, uint64_t length) {
  VmObject* source = *object;
  VmObject* result = vm_object_allocate(sys, length);
  result->shadow = source;  // the caller's reference moves here
  result->shadow_offset = *offset;
  *object = result;
  *offset = 0;
  ++sys.counters.shadows;
}

bool vm_object_copy_temporary(VmSystem& sys, VmObject** object, bool* src_needs_copy,
                              bool* dst_needs_copy) {
  VmObject* src = *object;
  if (src == nullptr) {
    *src_needs_copy = *dst_needs_copy = false;
    return true;
  }
  if (!src->temporary) return false;
  if (src->use_shared_copy) {
    *object = vm_object_copy_delayed(sys, src);
    *src_needs_copy = false;
    *dst_needs_copy = true;
    return true;
  }
  // Symmetric: both sides keep the object and copy on their first write.
  ++src->ref_count;
  src->shadowed = true;
  *src_needs_copy = *dst_needs_copy = true;
  ++sys.counters.copies_symmetric;
  return true;
}

VmObject* vm_object_copy_delayed(VmSystem& sys, VmObject* src) {
  VmObject* old_copy = src->copy;
  if (old_copy != nullptr) {
    assert(old_copy->shadow == src && old_copy->shadow_offset == 0 &&
           "vm_object_copy_delayed: copy object shape");
    if ((old_copy->resident_page_count == 0 && !old_copy->pager_created) ||
        VMFUZZ_BUG_ON(CopyObjectAlwaysReused)) {
      // Unmodified since the last copy: hand out another reference to it.
      ++old_copy->ref_count;
      ++sys.counters.copy_object_reuses;
      return old_copy;
    }
  }
  VmObject* new_copy = vm_object_allocate(sys, src->size);
  if (old_copy != nullptr && !VMFUZZ_BUG_ON(OldCopyNotRepointed)) {
    // The old copy will receive no more pushes: it shadows the new copy instead.
    --src->ref_count;
    assert(src->ref_count > 0 && "vm_object_copy_delayed: source lost its last reference");
    old_copy->shadow = new_copy;
    ++new_copy->ref_count;
  }
  new_copy->shadow = src;
  new_copy->shadow_offset = 0;
  new_copy->shadowed = true;  // the caller maps it needs_copy
  ++src->ref_count;
  src->copy = new_copy;
  // Every resident page of src is now copy-on-write (pages below src already are).
  for (VmPage* p = vm_page_next(src, 0); p != nullptr; p = vm_page_next(src, p->offset + kPageSize))
    sys.domain.pmap_page_protect(p->frame, VM_PROT_ALL & ~VM_PROT_WRITE & ~p->page_lock);
  ++sys.counters.copies_delayed;
  return new_copy;
}

// --- Collapse and bypass ---------------------------------------------------------------------

/// Can the parent see offset `boff` of its backing object, and at which parent offset?
static bool backing_offset_visible(const VmObject* parent, uint64_t boff, uint64_t* new_off) {
  if (boff < parent->shadow_offset) return false;
  *new_off = boff - parent->shadow_offset;
  return *new_off < parent->size;
}

/// Collapse case: move backing's visible pages that parent lacks, free the rest, unlink.
static void collapse_backing(VmSystem& sys, VmObject* parent, VmObject* backing) {
  for (VmPage* p = vm_page_next(backing, 0); p != nullptr;) {
    uint64_t next = p->offset + kPageSize;
    uint64_t new_off = 0;
    if (VMFUZZ_BUG_ON(CollapseOverwrites) && backing_offset_visible(parent, p->offset, &new_off)) {
      VmPage* mine = vm_page_lookup(parent, new_off);
      if (mine != nullptr && !mine->busy) vm_page_free(sys, mine);
    }
    if (!backing_offset_visible(parent, p->offset, &new_off) ||
        vm_page_lookup(parent, new_off) != nullptr) {
      vm_page_free(sys, p);
    } else {
      vm_page_rename(p, parent, new_off);
      ++sys.counters.collapse_pages_moved;
    }
    p = vm_page_next(backing, next);
  }
  // The backing object's shadow reference moves to the parent.
  parent->shadow = backing->shadow;
  parent->shadow_offset += backing->shadow_offset;
  if (VMFUZZ_BUG_ON(ShadowOffsetTwice)) parent->shadow_offset += backing->shadow_offset;
  assert((parent->shadow == nullptr || parent->shadow->copy == nullptr) &&
         "vm_object_collapse: new shadow has a copy object");
  backing->shadow = nullptr;
  if (backing->copy == parent) backing->copy = nullptr;
  backing->ref_count = 0;
  vm_object_terminate(sys, backing);
  ++sys.counters.collapses;
}

/// Bypass test: does parent supply every page of backing it can see?
static bool parent_covers_backing(const VmObject* parent, const VmObject* backing) {
  if (VMFUZZ_BUG_ON(BypassWhileNeeded)) return true;
  // O(1) refusal when the parent's window covers all of backing and has fewer pages.
  if (parent->shadow_offset == 0 && parent->size >= backing->size &&
      parent->resident_page_count < backing->resident_page_count)
    return false;
  for (VmPage* p = vm_page_next(backing, parent->shadow_offset); p != nullptr;
       p = vm_page_next(backing, p->offset + kPageSize)) {
    uint64_t new_off = 0;
    if (!backing_offset_visible(parent, p->offset, &new_off)) break;  // past the window
    if (vm_page_lookup(parent, new_off) == nullptr) return false;
  }
  return true;
}

CollapseResult vm_object_collapse(VmSystem& sys, VmObject* object) {
  CollapseResult result = CollapseResult::Nothing;
  if (!sys.tunables.collapse_allowed) return CollapseResult::Refused;
  for (;;) {
    if (object == nullptr || object->pager_created || object->paging_in_progress != 0 ||
        object->absent_count != 0)
      return result;
    VmObject* backing = object->shadow;
    if (backing == nullptr) return result;
    if (!backing->internal || backing->paging_in_progress != 0) return CollapseResult::Refused;
    // The backing object must not be (or shadow something with) a copy object: pushes
    // would have to reach two objects (Mach's conservative test).
    if (backing->shadow != nullptr && backing->shadow->copy != nullptr)
      return CollapseResult::Refused;
    if (backing->ref_count == 1) {
      // GNU Mach moves the backing object's pager up; here it stays (mach-departures.md).
      if (backing->pager_created) return CollapseResult::Refused;
      collapse_backing(sys, object, backing);
      result = CollapseResult::Collapsed;
      continue;
    }
    if (!sys.tunables.bypass_allowed || backing->pager_created) return CollapseResult::Refused;
    if (!parent_covers_backing(object, backing)) return CollapseResult::Refused;
    object->shadow = backing->shadow;
    vm_object_reference(object->shadow);
    object->shadow_offset += backing->shadow_offset;
    if (backing->copy == object) backing->copy = nullptr;
    assert(backing->ref_count > 1 && "vm_object_collapse: bypassed object would die");
    --backing->ref_count;
    ++sys.counters.bypasses;
    result = CollapseResult::Bypassed;
  }
}

// --- Coalesce, page removal, pmap helpers ---------------------------------------------------

bool vm_object_coalesce(VmSystem& sys, VmObject* prev_object, VmObject* next_object,
                        uint64_t prev_offset, uint64_t next_offset, uint64_t prev_size,
                        uint64_t next_size) {
  (void)next_offset;
  if (next_object != nullptr) return false;
  if (prev_object == nullptr) return true;
  vm_object_collapse(sys, prev_object);
  if (prev_object->ref_count > 1 || prev_object->pager_created ||
      prev_object->shadow != nullptr || prev_object->copy != nullptr ||
      prev_object->paging_in_progress != 0)
    return false;
  uint64_t start = prev_offset + prev_size;
  uint64_t end = start + next_size;
  if (end < start) return false;
  // Pages left over from an earlier partial deallocate must not reappear.
  if (!VMFUZZ_BUG_ON(CoalesceKeepsStale)) vm_object_page_remove(sys, prev_object, start, end);
  if (end > prev_object->size) prev_object->size = end;
  ++sys.counters.coalesces;
  return true;
}

void vm_object_page_remove(VmSystem& sys, VmObject* object, uint64_t start, uint64_t end) {
  for (VmPage* p = vm_page_next(object, start); p != nullptr && p->offset < end;) {
    uint64_t next = p->offset + kPageSize;
    vm_page_free(sys, p);
    p = vm_page_next(object, next);
  }
}

void vm_object_pmap_protect(VmSystem& sys, VmObject* object, uint64_t offset, uint64_t size,
                            pmap::pmap_t pmap, uint64_t va, vm_prot_t prot) {
  if (object == nullptr || size == 0) return;
  uint64_t end = offset + size;
  if (pmap != nullptr && object->resident_page_count >= size / kPageSize) {
    // Many pages: one range operation covers the object and its chain.
    pmap::pmap_protect(pmap, va, va + size, prot);
    return;
  }
  for (VmObject* o = object; o != nullptr;) {
    for (VmPage* p = vm_page_next(o, offset); p != nullptr && p->offset < end;
         p = vm_page_next(o, p->offset + kPageSize)) {
      if (pmap == nullptr) {
        sys.domain.pmap_page_protect(p->frame, prot & ~p->page_lock);
      } else {
        uint64_t pva = va + (p->offset - offset);
        pmap::pmap_protect(pmap, pva, pva + kPageSize, prot);
      }
    }
    // Pages in shadowed objects are never writable: only removal must follow the chain.
    if (prot != VM_PROT_NONE) break;
    offset += o->shadow_offset;
    end += o->shadow_offset;
    o = o->shadow;
  }
}

void vm_object_pmap_remove(VmSystem& sys, VmObject* object, uint64_t start, uint64_t end) {
  for (VmObject* o = object; o != nullptr; o = o->shadow) {
    for (VmPage* p = vm_page_next(o, start); p != nullptr && p->offset < end;
         p = vm_page_next(o, p->offset + kPageSize))
      sys.domain.pmap_page_protect(p->frame, VM_PROT_NONE);
    start += o->shadow_offset;
    end += o->shadow_offset;
  }
}

// --- The default pager -------------------------------------------------------------------

const uint8_t* DefaultPager::data(uint64_t offset) const {
  auto it = store_.find(offset);
  return it == store_.end() ? nullptr : it->second.data();
}

void DefaultPager::data_return(uint64_t offset, const uint8_t* page) {
  std::memcpy(store_[offset].data(), page, kPageSize);
}

void DefaultPager::offsets(uint64_t start, uint64_t end, std::vector<uint64_t>& out) const {
  for (auto it = store_.lower_bound(start); it != store_.end() && it->first < end; ++it)
    out.push_back(it->first);
}

const uint8_t* vm_object_pager_data(const VmObject* object, uint64_t offset) {
  if (object->pager == nullptr) return nullptr;
  return object->pager->data(offset + object->paging_offset);
}

void vm_object_pager_create(VmSystem& sys, VmObject* object) {
  assert(object->internal && object->pager == nullptr &&
         "vm_object_pager_create: not an internal object without pager");
  object->owned_pager = std::make_unique<DefaultPager>();
  object->pager = object->owned_pager.get();
  object->paging_offset = 0;
  object->pager_created = object->pager_initialized = object->pager_ready = true;
  ++sys.counters.pagers_created;
}

ChainLookup vm_object_chain_lookup(const VmObject* object, uint64_t offset) {
  ChainLookup r;
  unsigned depth = 0;
  for (const VmObject* o = object; o != nullptr; o = o->shadow, ++depth) {
    r.object = o;
    r.offset = offset;
    r.depth = depth;
    if (const VmPage* p = vm_page_lookup(o, offset)) {
      r.page = p;
      return r;
    }
    if (o->pager_lost) {
      r.lost = true;
      return r;
    }
    if (const uint8_t* d = vm_object_pager_data(o, offset)) {
      r.data = d;
      return r;
    }
    offset += o->shadow_offset;
  }
  return r;
}

}  // namespace vmfuzz::vm
