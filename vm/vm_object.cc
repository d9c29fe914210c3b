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
#include "vm/machine/bugs.h"

#include <algorithm>
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

VmSystem::VmSystem(machine::Machine& m, pmap::PmapDomain& d) : VmSystem(m, d, FrameTables{}) {}

VmSystem::VmSystem(machine::Machine& m, pmap::PmapDomain& d, FrameTables&& recycled)
    : machine(m), domain(d), vm_page_array(std::move(recycled.pages)),
      page_of_frame(std::move(recycled.page_of_frame)) {
  // assign() reuses the storage when it is large enough; every slot is a fresh VmPage.
  vm_page_array.assign(m.memory().frame_count(), VmPage{});
  page_of_frame.assign(m.memory().frame_count(), nullptr);
  for (VmPage& p : vm_page_array) VMFUZZ_PAGE_POISON(&p);
}

namespace {
// Objects still alive at shutdown (a leak the invariants report) are freed without pmap
// work, so that sanitizers report only real memory errors.
void free_remaining_objects(VmSystem& sys) {
  for (auto& [id, obj] : sys.objects) {
    (void)id;
    while (VmPage* p = obj->pages.lower_bound(0)) {
      obj->pages.remove(p->offset >> kPageShift);
      if (!vm_page_in_array(sys, p)) delete p;
    }
    delete obj;
  }
  sys.objects.clear();
}
}  // namespace

VmSystem::FrameTables VmSystem::take_frame_tables() {
  free_remaining_objects(*this);
  for (VmPage& p : vm_page_array) VMFUZZ_PAGE_UNPOISON(&p);
  FrameTables t{std::move(vm_page_array), std::move(page_of_frame)};
  vm_page_array.clear();
  page_of_frame.clear();
  return t;
}

VmSystem::~VmSystem() {
  free_remaining_objects(*this);
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
  assert((p->wire_count == 0 || p->private_page) && "vm_page_free: page is wired");
  if (!VMFUZZ_BUG_ON(FreedWhileMapped)) sys.domain.pmap_page_protect(p->frame, VM_PROT_NONE);
  if (p->object != nullptr) vm_page_remove(p);
  if (p->queue == VmPage::Queue::Active) sys.active.remove(p);
  if (p->queue == VmPage::Queue::Inactive) sys.inactive.remove(p);
  sys.page_of_frame[p->frame] = nullptr;
  if (p->private_page) {
    // Device memory is not ours to free (Mach: a private page's frame never reaches the
    // free list); only the page structure goes.
    ++sys.counters.device_pages_released;
  } else {
    sys.machine.memory().free_frame(p->frame);
    ++sys.counters.pages_freed;
  }
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
  if (p->queue == VmPage::Queue::None && p->wire_count == 0) sys.active.push_back(p);
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
  if (p->wire_count != 0) return;  // wired pages stay off the paging queues (as Mach)
  if (p->queue == VmPage::Queue::Active) sys.active.remove(p);
  if (p->queue == VmPage::Queue::Inactive) sys.inactive.remove(p);
  sys.active.push_back(p);
}

void vm_page_deactivate(VmSystem& sys, VmPage* p) {
  if (p->wire_count != 0) return;
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
    if (--object->ref_count > 0) {
      vm_object_shadow_reclaim(sys, object);
      return;
    }
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
  // Paging in flight holds a reference (the request's paging reference), so a correct
  // kernel never gets here with paging in progress; a bug that does is counted, not
  // crashed on, so that the oracle can name it [invariant paging_accounting].
  if (object->paging_in_progress != 0) ++sys.counters.terminated_while_paging;
#ifndef NDEBUG
  for (VmObject* c : sys.cached)
    assert(c != object && "vm_object_terminate: object still in the cache");
#endif
  assert(object->shadowers.empty() && "vm_object_terminate: object still shadowed");
  object->alive = false;
  if (object->shadow != nullptr && object->shadow->copy == object) object->shadow->copy = nullptr;
  // The shadow reference itself is released by the caller, who read the pointer first
  // (Mach); the link goes now.
  vm_object_set_shadow(object, nullptr);
  while (VmPage* p = object->pages.lower_bound(0)) {
    if (p->busy) {  // a page in transit (only after a bug: see above): nothing to return
      ++sys.counters.terminated_while_paging;
      if (p->absent) --object->absent_count;
      p->busy = p->absent = false;
      vm_page_free(sys, p);
      continue;
    }
    if (!object->temporary && object->pager != nullptr && !p->private_page) {
      // Permanent objects: what was written reaches the manager (data_return).
      sys.domain.pmap_page_protect(p->frame, VM_PROT_NONE);
      if (p->dirty || p->precious || sys.domain.pmap_is_modified(p->frame))
        object->pager->data_return(p->offset + object->paging_offset,
                                   sys.machine.memory().frame(p->frame));
    }
    vm_page_free(sys, p);
  }
  if (object->pager != nullptr) object->pager->terminate();
  // Faults waiting for the manager to answer this object's init retry and find it gone.
  if (!object->pager_ready) sys.sched.thread_wakeup(WaitEvent{WaitEvent::Kind::PagerReady, object->id, 0});
  sys.objects.erase(object->id);
  ++sys.counters.objects_terminated;
  delete object;
}

void vm_object_shadow(VmSystem& sys, VmObject** object, uint64_t* offset, uint64_t length) {
  VmObject* source = *object;
  VmObject* result = vm_object_allocate(sys, length);
  vm_object_set_shadow(result, source);  // the caller's reference moves here
  result->shadow_offset = *offset;
  *object = result;
  *offset = 0;
  ++sys.counters.shadows;
}

void vm_object_set_shadow(VmObject* object, VmObject* shadow) {
  if (object->shadow == shadow) return;
  if (VmObject* old = object->shadow) {
    auto it = std::find(old->shadowers.begin(), old->shadowers.end(), object);
    assert(it != old->shadowers.end() && "vm_object_set_shadow: not on its shadow's list");
    old->shadowers.erase(it);
  }
  object->shadow = shadow;
  if (shadow != nullptr) shadow->shadowers.push_back(object);
}

// --- Shadow-only objects ----------------------------------------------------------------
//
// An object whose every reference is a shadower's is seen only through those shadowers,
// each through its window [shadow_offset, shadow_offset + size) and only where it has no
// resident page of its own. Such an object can gain no new viewer: a new shadow or copy
// needs a reference held by a map entry or a copy; a bypass makes the bypassing object a
// shadower only where the bypassed one showed this object; a collapse narrows windows.
// And a shadower's page never vanishes while its offset is visible: pages of an object
// with a shadow are paged out to its pager, never dropped (vm_pageout.cc), and are freed
// otherwise only with the object or outside its window. So a page every shadower hides
// now stays hidden for good, and can be freed.

/// May pages of `object` be reclaimed as hidden? Internal memory only (a permanent
/// object's dirty pages belong to its manager), nothing in flight, only shadowers left.
/// A live source's copy object is left alone: its source's writable pages are allowed only
/// where it holds the pushed page [invariant no_cow_breach], hidden or not.
static bool shadow_only(const VmSystem& sys, const VmObject* object) {
  return sys.tunables.shadow_reclaim_allowed && object->alive && object->internal &&
         !object->can_persist && !object->pager_lost && object->paging_in_progress == 0 &&
         object->ref_count > 0 && size_t(object->ref_count) == object->shadowers.size() &&
         (object->shadow == nullptr || object->shadow->copy != object);
}

/// Does every shadower of object hide `offset` (outside its window, or a resident page)?
static bool hidden_from_shadowers(const VmObject* object, uint64_t offset) {
  for (const VmObject* s : object->shadowers) {
    if (offset < s->shadow_offset || offset - s->shadow_offset >= s->size) continue;
    if (vm_page_lookup(s, offset - s->shadow_offset) == nullptr) return false;
  }
  return true;
}

bool vm_object_free_if_hidden(VmSystem& sys, VmPage* p) {
  VmObject* object = p->object;
  if (object == nullptr || !shadow_only(sys, object) || p->busy || p->wire_count != 0 ||
      !hidden_from_shadowers(object, p->offset))
    return false;
  vm_page_free(sys, p);
  ++sys.counters.hidden_pages_freed;
  return true;
}

namespace {

/// The referrers of every object named by a window: the windows sorted by (object id,
/// start), so an object's windows are one run found by binary search (no allocation per
/// object), and whether they and its shadowers account for all of its references.
struct Referrers {
  const std::vector<ObjectWindow>& sorted;
  /// [first, last) of id's windows in `sorted`.
  std::pair<size_t, size_t> run(uint64_t id) const {
    auto lo = std::lower_bound(sorted.begin(), sorted.end(), id,
                               [](const ObjectWindow& w, uint64_t v) { return w.object_id < v; });
    auto hi = lo;
    while (hi != sorted.end() && hi->object_id == id) ++hi;
    return {size_t(lo - sorted.begin()), size_t(hi - sorted.begin())};
  }
  bool accounted(const VmObject* o) const {
    auto [lo, hi] = run(o->id);
    return size_t(o->ref_count) == (hi - lo) + o->shadowers.size();
  }
  bool in_window(const VmObject* o, uint64_t offset) const {
    auto [lo, hi] = run(o->id);
    for (size_t k = lo; k < hi; ++k)
      if (sorted[k].start <= offset && offset < sorted[k].end) return true;
    return false;
  }
};

constexpr unsigned kSeenDepth = 8;  // beyond this many shadower levels: assume seen

/// Can anything see offset `offset` of `o` (its own page, or what lies below it)? A window
/// holding it, or a shadower whose window holds it, that has no page of its own there, and
/// that something sees there in turn. Objects with references unaccounted for are seen
/// wherever their own window (size) reaches.
bool offset_seen(const Referrers& r, const VmObject* o, uint64_t offset, unsigned depth) {
  if (!r.accounted(o) || depth >= kSeenDepth) return true;
  if (r.in_window(o, offset)) return true;
  for (const VmObject* s : o->shadowers) {
    if (offset < s->shadow_offset || offset - s->shadow_offset >= s->size) continue;
    const uint64_t so = offset - s->shadow_offset;
    if (vm_page_lookup(s, so) != nullptr) continue;  // s shows its own page there
    if (offset_seen(r, s, so, depth + 1)) return true;
  }
  return false;
}

}  // namespace

/// Free the pages of `object` in [lo, hi) that no shadower lacking them can see.
static void free_unseen_in(VmSystem& sys, const Referrers& r, VmObject* object, uint64_t lo,
                           uint64_t hi) {
  for (VmPage* p = vm_page_next(object, lo); p != nullptr && p->offset < hi;) {
    const uint64_t off = p->offset, next = off + kPageSize;
    bool seen = p->busy || p->wire_count != 0;
    for (const VmObject* s : object->shadowers) {
      if (seen) break;
      if (off < s->shadow_offset || off - s->shadow_offset >= s->size) continue;
      const uint64_t so = off - s->shadow_offset;
      seen = vm_page_lookup(s, so) == nullptr && offset_seen(r, s, so, 1);
    }
    if (!seen) {
      vm_page_free(sys, p);
      ++sys.counters.hidden_pages_freed;
    }
    if (next == 0) break;  // the last page of the offset space
    p = vm_page_next(object, next);
  }
}

void vm_object_reclaim_unseen(VmSystem& sys, std::vector<ObjectWindow>& windows) {
  if (!sys.tunables.shadow_reclaim_allowed) return;
  std::sort(windows.begin(), windows.end(), [](const ObjectWindow& a, const ObjectWindow& b) {
    return a.object_id != b.object_id ? a.object_id < b.object_id : a.start < b.start;
  });
  const Referrers r{windows};
  size_t next_run = 0;  // objects and windows are both in id order: walk them together
  for (auto& [id, object] : sys.objects) {
    while (next_run < windows.size() && windows[next_run].object_id < id) ++next_run;
    size_t lo = next_run, hi = lo;
    while (hi < windows.size() && windows[hi].object_id == id) ++hi;
    next_run = hi;
    // Every reference known, and shadow_only's other conditions.
    const VmObject* o = object;
    if (o->resident_page_count == 0 || size_t(o->ref_count) != (hi - lo) + o->shadowers.size() ||
        !o->alive || !o->internal || o->can_persist || o->pager_lost ||
        o->paging_in_progress != 0 || (o->shadow != nullptr && o->shadow->copy == o))
      continue;
    // Pages past the end of an object's only entry go too (FreeBSD's OBJ_ONEMAPPING
    // trimming): vm_object_coalesce, which may extend the entry over them, also removes
    // whatever it finds there (Mach's rule). The catalogue's coalesce_keeps_stale keeps
    // them, as GNU Mach does, so that its coalesce half has stale pages to miss.
    const uint64_t limit = object->ref_count == 1 && hi - lo == 1 && VMFUZZ_BUG_ON(CoalesceKeepsStale)
                               ? windows[lo].end
                               : UINT64_MAX;
    // Visit only the gaps between the windows (sorted by start): the cost is the windows
    // plus the pages outside them, not the object's resident pages.
    uint64_t gap = 0;
    for (size_t k = lo; k <= hi && gap < limit; ++k) {
      const uint64_t gap_end = std::min(limit, k < hi ? windows[k].start : UINT64_MAX);
      if (gap < gap_end) free_unseen_in(sys, r, object, gap, gap_end);
      if (k < hi) gap = std::max(gap, windows[k].end);
    }
  }
}

void vm_object_shadow_reclaim(VmSystem& sys, VmObject* object) {
  if (!shadow_only(sys, object)) return;
  if (object->ref_count == 1) {
    // One shadower holds the only reference: FreeBSD's vm_object_deallocate collapses it
    // into that shadower at once; GNU Mach waits for the shadower's next copy-up.
    VmObject* parent = object->shadowers.front();
    const uint64_t id = object->id;
    vm_object_collapse(sys, parent);
    if (sys.objects.count(id) == 0) {
      ++sys.counters.deallocate_collapses;
      return;
    }
    if (!shadow_only(sys, object)) return;
  }
  for (VmPage* p = vm_page_next(object, 0); p != nullptr;) {
    uint64_t next = p->offset + kPageSize;
    vm_object_free_if_hidden(sys, p);
    p = vm_page_next(object, next);
  }
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
    vm_object_set_shadow(old_copy, new_copy);
    ++new_copy->ref_count;
  }
  vm_object_set_shadow(new_copy, src);
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
  vm_object_set_shadow(parent, backing->shadow);
  parent->shadow_offset += backing->shadow_offset;
  if (VMFUZZ_BUG_ON(ShadowOffsetTwice)) parent->shadow_offset += backing->shadow_offset;
  assert((parent->shadow == nullptr || parent->shadow->copy == nullptr) &&
         "vm_object_collapse: new shadow has a copy object");
  vm_object_set_shadow(backing, nullptr);
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

/// One link of vm_object_collapse: collapse or bypass `backing` under `object`, or refuse
/// (Mach's tests, in Mach's order).
static CollapseResult collapse_link(VmSystem& sys, VmObject* object, VmObject* backing) {
  if (!backing->internal || backing->paging_in_progress != 0) return CollapseResult::Refused;
  // The backing object must not be (or shadow something with) a copy object: pushes
  // would have to reach two objects (Mach's conservative test).
  if (backing->shadow != nullptr && backing->shadow->copy != nullptr)
    return CollapseResult::Refused;
  if (backing->ref_count == 1) {
    // GNU Mach moves the backing object's pager up; here it stays (mach-departures.md).
    if (backing->pager_created) return CollapseResult::Refused;
    collapse_backing(sys, object, backing);
    return CollapseResult::Collapsed;
  }
  if (!sys.tunables.bypass_allowed || backing->pager_created) return CollapseResult::Refused;
  if (!parent_covers_backing(object, backing)) return CollapseResult::Refused;
  vm_object_set_shadow(object, backing->shadow);
  vm_object_reference(object->shadow);
  object->shadow_offset += backing->shadow_offset;
  if (backing->copy == object) backing->copy = nullptr;
  assert(backing->ref_count > 1 && "vm_object_collapse: bypassed object would die");
  --backing->ref_count;
  ++sys.counters.bypasses;
  return CollapseResult::Bypassed;
}

/// The loop of vm_object_collapse. Appends to *changed the ids of objects whose shadowers
/// now see less of them: a bypassed object (one shadower fewer) and a collapsed object's
/// new backing object (its new shadower, the parent, holds the moved pages).
static CollapseResult collapse_chain(VmSystem& sys, VmObject* object,
                                     std::vector<uint64_t>* changed) {
  CollapseResult result = CollapseResult::Nothing;
  for (;;) {
    if (object == nullptr || object->pager_created || object->paging_in_progress != 0 ||
        object->absent_count != 0)
      return result;
    VmObject* backing = object->shadow;
    if (backing == nullptr) return result;
    const uint64_t backing_id = backing->id;
    switch (collapse_link(sys, object, backing)) {
      case CollapseResult::Collapsed:
        result = CollapseResult::Collapsed;
        if (object->shadow != nullptr) changed->push_back(object->shadow->id);
        continue;  // object has a new backing object: try that link
      case CollapseResult::Bypassed:
        result = CollapseResult::Bypassed;
        changed->push_back(backing_id);
        continue;
      case CollapseResult::Refused:
      case CollapseResult::Nothing:
        // This link stays. Links further down may still be taken (XNU: "try and
        // collapse the rest of the shadow chain"); GNU Mach returns here, leaving
        // collapsible objects below a shared one (docs/mach-departures.md).
        if (result == CollapseResult::Nothing) result = CollapseResult::Refused;
        object = backing;
        continue;
    }
  }
}

CollapseResult vm_object_collapse(VmSystem& sys, VmObject* object) {
  if (!sys.tunables.collapse_allowed) return CollapseResult::Refused;
  std::vector<uint64_t> changed;
  CollapseResult result = collapse_chain(sys, object, &changed);
  // Objects left to their shadowers alone may now hide pages from all of them (or have a
  // single shadower to collapse into). Each such step removes a link or pages, so the
  // recursion ends.
  for (uint64_t id : changed) {
    auto it = sys.objects.find(id);
    if (it != sys.objects.end()) vm_object_shadow_reclaim(sys, it->second);
  }
  return result;
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

// --- Device memory ---------------------------------------------------------------------

void vm_object_page_map(VmSystem& sys, VmObject* object, uint64_t offset, uint64_t size,
                        const std::function<machine::pfn_t(uint64_t)>& map_fn) {
  assert((offset & (kPageSize - 1)) == 0 && (size & (kPageSize - 1)) == 0 &&
         "vm_object_page_map: unaligned window");
  for (uint64_t off = offset; off - offset < size; off += kPageSize) {
    machine::pfn_t f = map_fn(off);
    assert(f < sys.page_of_frame.size() &&
           sys.machine.memory().use_of(f) == machine::FrameUse::Device &&
           "vm_object_page_map: map_fn named no device frame");
    if (VmPage* old = vm_page_lookup(object, off)) vm_page_free(sys, old);
    auto* m = new VmPage;
    m->frame = f;
    m->private_page = true;
    m->wire_count = 1;  // never paged out
    sys.page_of_frame[f] = m;
    vm_page_insert(sys, m, object, off);
    ++sys.counters.device_pages_mapped;
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

bool vm_object_chain_offsets(const VmObject* object, uint64_t offset, uint64_t size,
                             bool plain_data_only, std::vector<uint64_t>& out) {
  std::vector<uint64_t> tmp;
  uint64_t start = offset, end = offset + size;
  for (const VmObject* o = object; o != nullptr; o = o->shadow) {
    if (plain_data_only && (o->pager_lost || !o->internal)) return false;
    for (const VmPage* p = vm_page_next(o, start); p != nullptr && p->offset < end;
         p = vm_page_next(o, p->offset + kPageSize))
      out.push_back(p->offset - start);
    if (o->pager != nullptr) {
      tmp.clear();
      o->pager->offsets(start + o->paging_offset, end + o->paging_offset, tmp);
      for (uint64_t po : tmp) out.push_back(po - o->paging_offset - start);
    }
    start += o->shadow_offset;
    end += o->shadow_offset;
  }
  return true;
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
    // An absent page (a held manager's data in flight) holds no data yet: what the
    // object holds there is the manager's, as the reply will bring it.
    const VmPage* p = vm_page_lookup(o, offset);
    if (p != nullptr && !p->absent) {
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
