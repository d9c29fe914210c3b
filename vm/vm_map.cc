// vm_map.cc — address maps: entries, clipping, re-merging, allocate/deallocate/protect/
// inherit, map copies and fork. Theory of operation: see vm_map.h.
//
// Departures from GNU Mach kept here (docs/mach-departures.md has the full list):
// - vm_map_entry_delete always removes the entry's own range from its own pmap, and for
//   shared entries also every mapping of the chain's pages (Mach before 2025 left stale
//   translations of shadow pages).
// - vm_map_fork's COPY never fails and never loops (no protection check).
// - vm_map_protect checks before clipping, so a refused protect changes nothing at all.
#include "vm/vm_map.h"
#include "vm/machine/bugs.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <iterator>

#include "vm/memory_object.h"
#include "vm/vm_fault.h"
#include "vm/vm_pageout.h"

namespace vmfuzz::vm {

VmMap::~VmMap() {
  assert(entries.empty() && pmap == nullptr && "VmMap: destroyed with entries (vm_map_destroy)");
}

pmap::pmap_t vm_map_pmap(VmMap& map) {
  while (map.pmap == nullptr) {
    map.pmap = pmap::pmap_create(map.sys.domain);
    if (map.pmap == nullptr && !vm_page_reclaim(map.sys)) break;
  }
  return map.pmap;
}

VmMapEntry* vm_map_lookup_entry(VmMap& map, uint64_t va) {
  auto it = map.entries.upper_bound(va);
  if (it == map.entries.begin()) return nullptr;
  --it;
  return va < it->second.end ? &it->second : nullptr;
}

const VmMapEntry* vm_map_lookup_entry(const VmMap& map, uint64_t va) {
  auto it = map.entries.upper_bound(va);
  if (it == map.entries.begin()) return nullptr;
  --it;
  return va < it->second.end ? &it->second : nullptr;
}

vm_prot_t vm_prot_mmu(vm_prot_t prot) {
  if ((prot & (VM_PROT_READ | VM_PROT_WRITE)) == 0) return VM_PROT_NONE;
  return prot | VM_PROT_READ;
}

// --- Clipping and re-merging -------------------------------------------------------------------

/// Split the entry containing addr (if addr is strictly inside it) at addr.
static void vm_map_clip(VmMap& map, uint64_t addr) {
  VmMapEntry* e = vm_map_lookup_entry(map, addr);
  if (e == nullptr || e->start == addr) return;
  VmMapEntry second = *e;
  second.start = addr;
  second.offset = e->offset + (VMFUZZ_BUG_ON(ClipOffsetWrong) ? 0 : addr - e->start);
  e->end = addr;
  vm_object_reference(second.object);
  map.entries.emplace(addr, second);
}

static bool entries_mergeable(const VmMapEntry& a, const VmMapEntry& b) {
  return a.end == b.start && a.object == b.object &&
         (a.object == nullptr || a.offset + (a.end - a.start) == b.offset) &&
         a.protection == b.protection && a.max_protection == b.max_protection &&
         a.inheritance == b.inheritance && a.needs_copy == b.needs_copy && !a.is_shared &&
         !b.is_shared;
}

/// Re-merge agreeing neighbours from the entry before start to the one after end
/// (modern GNU Mach's vm_map_coalesce_entry). Drops the references merging frees.
static void vm_map_simplify_range(VmMap& map, uint64_t start, uint64_t end) {
  auto it = map.entries.lower_bound(start);
  if (it != map.entries.begin()) --it;
  while (it != map.entries.end()) {
    auto next = std::next(it);
    if (next == map.entries.end() || next->first > end) break;
    if (entries_mergeable(it->second, next->second)) {
      it->second.end = next->second.end;
      vm_object_deallocate(map.sys, next->second.object);
      map.entries.erase(next);
      ++map.sys.counters.entry_merges;
      continue;
    }
    it = next;
  }
}

// --- Lookup for faults -------------------------------------------------------------------------

kern_return_t vm_map_lookup(VmSystem& sys, VmMap& map, uint64_t va, bool write,
                            VmObject** object, uint64_t* offset, vm_prot_t* prot) {
  VmMapEntry* e = vm_map_lookup_entry(map, va);
  if (e == nullptr) return KERN_INVALID_ADDRESS;
  vm_prot_t need = write ? VM_PROT_WRITE : (VM_PROT_READ | VM_PROT_WRITE);
  if ((e->protection & need) == 0) return KERN_PROTECTION_FAILURE;
  vm_prot_t p = vm_prot_mmu(e->protection);
  if (e->object == nullptr) {
    // Lazy allocation of zero memory; nothing to copy.
    e->object = vm_object_allocate(sys, e->end - e->start);
    e->offset = 0;
    e->needs_copy = false;
  }
  if (e->needs_copy) {
    if (write) {
      vm_object_shadow(sys, &e->object, &e->offset, e->end - e->start);
      e->needs_copy = false;
    } else if (!VMFUZZ_BUG_ON(ReadFaultWritable)) {
      p &= ~VM_PROT_WRITE;
    }
  }
  *object = e->object;
  *offset = e->offset + (va - e->start);
  *prot = p;
  return KERN_SUCCESS;
}

// --- Allocation and removal --------------------------------------------------------------------

kern_return_t vm_map_enter(VmMap& map, uint64_t start, uint64_t size) {
  uint64_t end = start + size;
  auto next = map.entries.lower_bound(start);
  if (next != map.entries.end() && next->second.start < end) return KERN_NO_SPACE;
  VmMapEntry* prev = nullptr;
  if (next != map.entries.begin()) {
    prev = &std::prev(next)->second;
    if (prev->end > start) return KERN_NO_SPACE;
  }
  // Extend the previous entry when it agrees and its object allows (vm_object_coalesce).
  if (prev != nullptr && prev->end == start && !prev->is_shared &&
      prev->protection == VM_PROT_DEFAULT && prev->max_protection == VM_PROT_ALL &&
      prev->inheritance == vm_inherit_t::Copy &&
      vm_object_coalesce(map.sys, prev->object, nullptr, prev->offset, 0, prev->end - prev->start,
                         size)) {
    prev->end = end;
    return KERN_SUCCESS;
  }
  VmMapEntry e;
  e.start = start;
  e.end = end;
  map.entries.emplace(start, e);
  return KERN_SUCCESS;
}

bool vm_map_range_free(const VmMap& map, uint64_t start, uint64_t end) {
  auto next = map.entries.lower_bound(start);
  if (next != map.entries.end() && next->second.start < end) return false;
  return next == map.entries.begin() || std::prev(next)->second.end <= start;
}

void vm_map_enter_object(VmMap& map, const VmMapEntry& entry) {
  assert(vm_map_range_free(map, entry.start, entry.end) && "vm_map_enter_object: range in use");
  map.entries.emplace(entry.start, entry);
}

bool vm_map_find_space(const VmMap& map, uint64_t size, uint64_t* start) {
  uint64_t candidate = kUserMin;
  for (const auto& [s, e] : map.entries) {
    if (e.end <= candidate) continue;
    if (s >= candidate && s - candidate >= size) break;
    candidate = e.end;
  }
  if (candidate > kUserMax || kUserMax - candidate < size) return false;
  *start = candidate;
  return true;
}

/// Mach's vm_map_entry_delete: translations, exclusive pages, the object reference.
static void vm_map_entry_delete(VmMap& map, std::map<uint64_t, VmMapEntry>::iterator it) {
  VmMapEntry& e = it->second;
  VmSystem& sys = map.sys;
  bool stale = e.is_shared && VMFUZZ_BUG_ON(StaleSharedMapping);
  if (map.pmap != nullptr && !stale) pmap::pmap_remove(map.pmap, e.start, e.end);
  if (VmObject* o = e.object) {
    uint64_t size = e.end - e.start;
    if (stale) {
      // GNU Mach before 2025: only the top object's pages lose their mappings.
      for (VmPage* p = vm_page_next(o, e.offset); p != nullptr && p->offset < e.offset + size;
           p = vm_page_next(o, p->offset + kPageSize))
        sys.domain.pmap_page_protect(p->frame, VM_PROT_NONE);
    } else if (e.is_shared) {
      vm_object_pmap_remove(sys, o, e.offset, e.offset + size);
    }
    if (!o->pager_created && o->ref_count == 1 && o->paging_in_progress == 0)
      vm_object_page_remove(sys, o, e.offset, e.offset + size);
    vm_object_deallocate(sys, o);
  }
  map.entries.erase(it);
}

void vm_map_remove(VmMap& map, uint64_t start, uint64_t end) {
  if (start >= end) return;
  vm_map_clip(map, start);
  vm_map_clip(map, end);
  auto it = map.entries.lower_bound(start);
  while (it != map.entries.end() && it->first < end) {
    auto next = std::next(it);
    vm_map_entry_delete(map, it);
    it = next;
  }
}

// --- Protection and inheritance --------------------------------------------------------------

kern_return_t vm_map_protect(VmMap& map, uint64_t start, uint64_t end, vm_prot_t prot,
                             bool set_max) {
  if (start >= end) return KERN_SUCCESS;
  // Pass 1: refuse before changing anything (first entry in address order decides).
  auto it = map.entries.upper_bound(start);
  if (it != map.entries.begin() && std::prev(it)->second.end > start) --it;
  for (auto j = it; j != map.entries.end() && j->first < end; ++j)
    if ((prot & ~j->second.max_protection) != 0) return KERN_PROTECTION_FAILURE;
  // Pass 2: clip and set.
  vm_map_clip(map, start);
  vm_map_clip(map, end);
  for (auto j = map.entries.lower_bound(start); j != map.entries.end() && j->first < end; ++j) {
    VmMapEntry& e = j->second;
    vm_prot_t old = e.protection;
    if (set_max) {
      e.max_protection = prot;
      e.protection = old & prot;
    } else {
      e.protection = prot;
    }
    if ((old & ~e.protection) != 0 && map.pmap != nullptr && !VMFUZZ_BUG_ON(ProtectNoPmap))
      pmap::pmap_protect(map.pmap, e.start, e.end, vm_prot_mmu(e.protection));
  }
  vm_map_simplify_range(map, start, end);
  return KERN_SUCCESS;
}

void vm_map_inherit(VmMap& map, uint64_t start, uint64_t end, vm_inherit_t inh) {
  if (start >= end) return;
  vm_map_clip(map, start);
  vm_map_clip(map, end);
  for (auto j = map.entries.lower_bound(start); j != map.entries.end() && j->first < end; ++j)
    j->second.inheritance = inh;
  vm_map_simplify_range(map, start, end);
}

// --- Map copies ------------------------------------------------------------------------------

/// Make one copy of map entry `e`'s window (the copy half shared by copyin and fork's
/// COPY): temporary objects by vm_object_copy_temporary — symmetric sets e.needs_copy and
/// write-protects e's window, delayed leaves e alone and hands out the copy object —
/// permanent objects by vm_object_copy_strategically (tolerate_errors: unreadable pages of
/// a destroyed memory object copy as zero, for fork).
static kern_return_t entry_copy_object(VmMap& map, VmMapEntry& e, bool tolerate_errors,
                                       VmObject** out, uint64_t* out_offset,
                                       bool* out_needs_copy) {
  VmObject* obj = e.object;
  bool src_needs_copy = false, dst_needs_copy = false;
  if (!vm_object_copy_temporary(map.sys, &obj, &src_needs_copy, &dst_needs_copy)) {
    return vm_object_copy_strategically(map.sys, e.object, e.offset, e.end - e.start,
                                        tolerate_errors, out, out_offset, out_needs_copy);
  }
  if (src_needs_copy && !e.needs_copy) {
    pmap::pmap_t p = e.is_shared ? nullptr : map.pmap;
    if ((e.is_shared || p != nullptr) && !VMFUZZ_BUG_ON(CowSourceWritable))
      vm_object_pmap_protect(map.sys, e.object, e.offset, e.end - e.start, p, e.start,
                             vm_prot_mmu(e.protection) & ~VM_PROT_WRITE);
    e.needs_copy = true;
  }
  *out = obj;
  *out_offset = e.offset;
  *out_needs_copy = dst_needs_copy;
  return KERN_SUCCESS;
}

kern_return_t vm_map_copyin(VmMap& map, uint64_t addr, uint64_t len, VmMapCopy** copy) {
  *copy = nullptr;
  if (len == 0) return KERN_SUCCESS;
  uint64_t end = addr + len;
  if (end < addr || round_page(end) == 0) return KERN_INVALID_ADDRESS;
  uint64_t s = trunc_page(addr), e = round_page(end);
  for (uint64_t cur = s; cur < e;) {
    const VmMapEntry* ent = vm_map_lookup_entry(map, cur);
    if (ent == nullptr) return KERN_INVALID_ADDRESS;
    if ((ent->protection & VM_PROT_READ) == 0) return KERN_PROTECTION_FAILURE;
    cur = ent->end;
  }
  vm_map_clip(map, s);
  vm_map_clip(map, e);
  auto* c = new VmMapCopy;
  c->offset = addr;
  c->size = len;
  for (auto it = map.entries.lower_bound(s); it != map.entries.end() && it->first < e; ++it) {
    VmMapEntry& ent = it->second;
    VmMapCopyEntry ce;
    ce.start = ent.start - s;
    ce.end = ent.end - s;
    ce.protection = ent.protection;
    ce.max_protection = ent.max_protection;
    ce.inheritance = ent.inheritance;
    kern_return_t kr = entry_copy_object(map, ent, false, &ce.object, &ce.offset, &ce.needs_copy);
    if (kr != KERN_SUCCESS) {
      vm_map_copy_discard(map.sys, c);
      vm_map_simplify_range(map, s, e);
      return kr;
    }
    c->entries.push_back(ce);
  }
  vm_map_simplify_range(map, s, e);
  *copy = c;
  return KERN_SUCCESS;
}

void vm_map_copy_discard(VmSystem& sys, VmMapCopy* copy) {
  if (copy == nullptr) return;
  for (auto& ce : copy->entries) vm_object_deallocate(sys, ce.object);
  delete copy;
}

kern_return_t vm_map_copyout(VmMap& map, VmMapCopy* copy, uint64_t* addr) {
  *addr = 0;
  if (copy == nullptr) return KERN_SUCCESS;
  uint64_t total = copy->entries.empty() ? 0 : copy->entries.back().end;
  uint64_t base = 0;
  if (!vm_map_find_space(map, total, &base)) {
    vm_map_copy_discard(map.sys, copy);
    return KERN_NO_SPACE;
  }
  for (auto& ce : copy->entries) {
    VmMapEntry e;
    e.start = base + ce.start;
    e.end = base + ce.end;
    e.object = ce.object;  // the reference moves into the map
    e.offset = ce.offset;
    e.needs_copy = ce.needs_copy;
    map.entries.emplace(e.start, e);
  }
  *addr = base + (copy->offset & (kPageSize - 1));
  delete copy;
  return KERN_SUCCESS;
}

/// Slow path of copy_overwrite for one destination page: read the source through the
/// copy entry's chain, write the destination through the fault path (copy-up and push
/// happen as for a user write), so every sharer of the destination sees the data.
static kern_return_t overwrite_page_slowly(VmMap& map, uint64_t va, const VmObject* src_object,
                                           uint64_t src_offset) {
  VmSystem& sys = map.sys;
  FaultState fs;
  fs.va = va;
  fs.write = true;
  kern_return_t kr =
      vm_map_lookup(sys, map, va, true, &fs.first_object, &fs.first_offset, &fs.prot);
  if (kr != KERN_SUCCESS) return kr;
  // Read the source before the destination changes (they may be the same memory).
  std::vector<uint8_t> buf(kPageSize, 0);
  if (src_object != nullptr) {
    kr = vm_object_read_page(sys, src_object, src_offset, buf.data());
    if (kr != KERN_SUCCESS) return kr;
  }
  kr = vm_fault_page(sys, fs);
  if (kr != KERN_SUCCESS) return kr;
  assert(fs.page->object == fs.first_object && "overwrite_page_slowly: page not in top object");
  std::memcpy(sys.machine.memory().frame(fs.page->frame), buf.data(), kPageSize);
  fs.page->dirty = true;
  vm_fault_page_done(fs);
  ++sys.counters.overwrite_slow_pages;
  return KERN_SUCCESS;
}

/// True when offset reads zero through object's chain because no object of the chain has
/// the page (resident or with its pager); a resident page of zeros does not count.
static bool chain_page_absent(const VmObject* object, uint64_t offset) {
  if (object == nullptr) return true;
  ChainLookup l = vm_object_chain_lookup(object, offset);
  return l.page == nullptr && l.data == nullptr && !l.lost;
}

/// Slow path of copy_overwrite for one destination entry piece [de.start, de.end), source
/// (src_object, src_offset). Work is proportional to what is touched (docs/ARCHITECTURE.md §Design goals): only
/// offsets where the source chain or the destination chain holds a page (resident or
/// paged out) are visited, in offset order. A page absent from both chains reads zero on
/// both sides and needs nothing; a visited page gets the source's bytes, zeros included
/// (the destination may hold data there). Pages outside the union read zero in the
/// source (a copy: a snapshot that the writes below cannot change) and in the destination
/// (only visited pages are written), so skipping them changes nothing a task can observe.
/// Chains with external or destroyed memory objects fall back to visiting every page.
static kern_return_t overwrite_entry_slowly(VmMap& map, const VmMapEntry& de,
                                            const VmObject* src_object, uint64_t src_offset) {
  const uint64_t size = de.end - de.start;
  std::vector<uint64_t> rel;
  bool sparse = vm_object_chain_offsets(src_object, src_offset, size, true, rel) &&
                vm_object_chain_offsets(de.object, de.offset, size, true, rel);
  if (!sparse) {
    rel.clear();
    for (uint64_t r = 0; r < size; r += kPageSize) rel.push_back(r);
  }
  std::sort(rel.begin(), rel.end());
  rel.erase(std::unique(rel.begin(), rel.end()), rel.end());
  for (uint64_t r : rel) {
    assert(r < size && (r & (kPageSize - 1)) == 0 && "overwrite_entry_slowly: bad offset");
    // Decided now, through the entry as it is now (a write fault may have put a shadow in
    // front of its object), not when `rel` was built.
    if (sparse && chain_page_absent(src_object, src_offset + r) &&
        chain_page_absent(de.object, de.offset + r))
      continue;
    kern_return_t kr = overwrite_page_slowly(map, de.start + r, src_object, src_offset + r);
    if (kr != KERN_SUCCESS) return kr;
  }
  return KERN_SUCCESS;
}

namespace {
/// The wait for one destination page at va of entry de: walk its chain as
/// fault_walk_chain does (resident page, then the pager's readiness, then its data).
bool overwrite_page_must_wait(VmSystem& sys, const VmMapEntry& de, uint64_t va) {
  uint64_t off = de.offset + (va - de.start);
  for (const VmObject* o = de.object; o != nullptr; off += o->shadow_offset, o = o->shadow) {
    if (const VmPage* p = vm_page_lookup(o, off)) {
      // A page in transit: wait for its reply (bug kernel_path_takes_busy takes it as it is).
      if (!p->busy || (p->absent && VMFUZZ_BUG_ON(KernelPathTakesBusy))) return false;
      sys.sched.assert_wait(WaitEvent{WaitEvent::Kind::PageBusy, o->id, off}, YieldPoint::OverwriteBusy);
      return true;
    }
    if (o->pager != nullptr && !o->pager_ready) {
      sys.sched.assert_wait(WaitEvent{WaitEvent::Kind::PagerReady, o->id, 0}, YieldPoint::OverwriteReady);
      return true;
    }
    if (vm_object_pager_data(o, off) != nullptr) return false;
  }
  return false;
}
}  // namespace

bool vm_map_copy_overwrite_wait(VmMap& map, uint64_t dst, const VmMapCopy* copy) {
  KThread* self = map.sys.sched.current;
  assert(self != nullptr && "vm_map_copy_overwrite_wait: no thread to wait");
  if (copy == nullptr) return false;
  const uint64_t mask = kPageSize - 1;
  if ((copy->offset & mask) != 0 || (copy->size & mask) != 0 || (dst & mask) != 0) return false;
  if (copy->size > UINT64_MAX - dst) return false;
  const uint64_t end = dst + copy->size;
  for (uint64_t cur = dst; cur < end;) {  // pass 1 of the overwrite: it would refuse
    const VmMapEntry* ent = vm_map_lookup_entry(map, cur);
    if (ent == nullptr || (ent->protection & VM_PROT_WRITE) == 0) return false;
    cur = ent->end;
  }
  // Woken, the wait looks at every page again from dst: a page before the one it waited
  // for may have gone in transit meanwhile (bug overwrite_no_recheck resumes where it waited).
  const uint64_t from = VMFUZZ_BUG_ON(OverwriteNoRecheck) && self->wait_from > dst ? self->wait_from : dst;
  for (const VmMapCopyEntry& ce : copy->entries) {
    const uint64_t d0 = std::max(dst + ce.start, from), d1 = dst + ce.end;
    if (d0 >= d1) continue;
    auto it = map.entries.upper_bound(d0);  // the entry holding d0, then the ones after it
    if (it != map.entries.begin()) --it;
    for (; it != map.entries.end() && it->first < d1; ++it) {
      const VmMapEntry& de = it->second;
      if (de.end <= d0) continue;
      // The fast path replaces the whole object: nothing is faulted there.
      if (!de.is_shared && (de.object == nullptr || de.object->temporary)) continue;
      // Only chains with an external object can hold a page in transit or a manager
      // that is not ready (the default pager answers at once).
      bool external = false;
      for (const VmObject* o = de.object; o != nullptr && !external; o = o->shadow) external = !o->internal;
      if (!external) continue;
      for (uint64_t va = std::max(de.start, d0); va < std::min(de.end, d1); va += kPageSize)
        if (overwrite_page_must_wait(map.sys, de, va)) {
          self->wait_from = va;
          return true;
        }
    }
  }
  return false;
}

kern_return_t vm_map_copy_overwrite(VmMap& map, uint64_t dst, const VmMapCopy* copy) {
  if (copy == nullptr) return KERN_SUCCESS;
  const uint64_t mask = kPageSize - 1;
  if ((copy->offset & mask) != 0 || (copy->size & mask) != 0 || (dst & mask) != 0)
    return KERN_INVALID_ARGUMENT;
  uint64_t size = copy->size;
  if (size > UINT64_MAX - dst) return KERN_INVALID_ADDRESS;
  uint64_t end = dst + size;
  // Pass 1: the whole destination must be mapped and writable, in address order.
  for (uint64_t cur = dst; cur < end;) {
    const VmMapEntry* ent = vm_map_lookup_entry(map, cur);
    if (ent == nullptr) return KERN_INVALID_ADDRESS;
    if ((ent->protection & VM_PROT_WRITE) == 0) return KERN_PROTECTION_FAILURE;
    cur = ent->end;
  }
  // Pass 2: per copy entry, per destination entry piece.
  for (const VmMapCopyEntry& ce : copy->entries) {
    uint64_t d0 = dst + ce.start, d1 = dst + ce.end;
    vm_map_clip(map, d0);
    vm_map_clip(map, d1);
    for (auto it = map.entries.lower_bound(d0); it != map.entries.end() && it->first < d1; ++it) {
      VmMapEntry& de = it->second;
      uint64_t src_off = ce.offset + (de.start - d0);
      if (!de.is_shared && (de.object == nullptr || de.object->temporary)) {
        // Fast path: the destination is private; replace its object.
        if (map.pmap != nullptr) pmap::pmap_remove(map.pmap, de.start, de.end);
        VmObject* old = de.object;
        vm_object_reference(ce.object);
        de.object = ce.object;
        de.offset = src_off;
        de.needs_copy = ce.needs_copy;
        vm_object_deallocate(map.sys, old);
        ++map.sys.counters.overwrite_fast;
        continue;
      }
      kern_return_t kr = overwrite_entry_slowly(map, de, ce.object, src_off);
      if (kr != KERN_SUCCESS) return kr;
    }
  }
  vm_map_simplify_range(map, dst, end);
  return KERN_SUCCESS;
}

// --- Fork and destruction --------------------------------------------------------------------

/// fork SHARE for one entry: give the object one writable view first if it may be seen
/// copy-on-write by anybody, then share it (use_shared_copy: later copies are delayed).
static VmMapEntry fork_share(VmMap& parent, VmMapEntry& e) {
  VmSystem& sys = parent.sys;
  uint64_t size = e.end - e.start;
  if (e.object == nullptr) {
    e.object = vm_object_allocate(sys, size);
    e.offset = 0;
    e.needs_copy = false;
  } else if (VMFUZZ_BUG_ON(ShareWithoutShadow)) {
    e.needs_copy = false;
  } else if (e.needs_copy || e.object->shadowed ||
             (e.object->temporary && !e.is_shared && e.object->size > size)) {
    assert(e.object->temporary && "fork_share: shadowing a permanent object");
    bool was_needs_copy = e.needs_copy;
    vm_object_shadow(sys, &e.object, &e.offset, size);
    if (!was_needs_copy && parent.pmap != nullptr)
      pmap::pmap_protect(parent.pmap, e.start, e.end,
                         vm_prot_mmu(e.protection) & ~VM_PROT_WRITE);
    e.needs_copy = false;
  }
  e.object->use_shared_copy = true;
  vm_object_reference(e.object);
  e.is_shared = true;
  VmMapEntry child = e;
  return child;
}

void vm_map_fork(VmMap& parent, VmMap& child) {
  assert(child.entries.empty() && "vm_map_fork: child map not empty");
  for (auto& [start, e] : parent.entries) {
    switch (e.inheritance) {
      case vm_inherit_t::None:
        break;
      case vm_inherit_t::Share:
        child.entries.emplace(start, fork_share(parent, e));
        break;
      case vm_inherit_t::Copy: {
        VmMapEntry c = e;
        c.is_shared = false;
        if (VMFUZZ_BUG_ON(ForkWrongProtection)) c.protection = c.max_protection;
        if (e.object == nullptr) {
          c.needs_copy = false;
        } else {
          kern_return_t kr = entry_copy_object(parent, e, true, &c.object, &c.offset, &c.needs_copy);
          assert(kr == KERN_SUCCESS && "vm_map_fork: a copy that tolerates errors failed");
          (void)kr;
        }
        child.entries.emplace(start, c);
        break;
      }
    }
  }
}

void vm_map_destroy(VmMap& map) {
  vm_map_remove(map, 0, UINT64_MAX);
  if (map.pmap != nullptr) {
    machine::Machine& m = map.sys.machine;
    for (unsigned cpu = 0; cpu < m.cpu_count(); ++cpu)
      if ((map.pmap->active_cpus() >> cpu) & 1) pmap::pmap_deactivate(map.pmap, cpu);
    pmap::pmap_destroy(map.pmap);
    map.pmap = nullptr;
  }
}

}  // namespace vmfuzz::vm
