// vm_map.h — address maps (Mach's vm/vm_map.c): sorted entries, clipping and re-merging,
// allocation, deallocation, protection, inheritance, map copies (copyin, copyout,
// overwrite) and fork.
//
// Theory of operation
// -------------------
// A map is a set of non-overlapping entries [start, end), sorted by start (std::map, so
// iteration is deterministic). Each entry maps its range onto a window of one VM object
// (object + offset; a null object is zero memory not yet touched, allocated on the
// first fault), with protection, max_protection, inheritance, needs_copy (the entry sees
// the object copy-on-write) and is_shared (the object is shared writable with another
// task through SHARE inheritance).
//
// Clipping splits an entry at an address (the second half takes its own object
// reference, as in Mach); vm_map_protect and vm_map_inherit re-merge neighbours that
// agree again (modern GNU Mach's vm_map_coalesce_entry), so clipping does not block
// collapse for long.
//
// Map copies (VmMapCopy, Mach's vm_map_copy_t of type ENTRY_LIST) carry copy-on-write
// references to the objects of a source range: vm_map_copyin makes them (symmetric or
// delayed copy, no data is copied), vm_map_copyout maps them at the lowest free address,
// vm_map_copy_overwrite replaces a destination range with them (the destination's
// objects are replaced when it is private; shared destinations are written page by page,
// Mach's slow path, so every sharer sees the data).
//
// A map's pmap is created on first need (a fault): a fork therefore needs no frame and
// never fails for lack of memory (docs/language.md §Ops, Tasks).
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "vm/pmap/pmap.h"
#include "vm/vm_object.h"
#include "vmfuzz/vocab.h"

namespace vmfuzz::vm {

struct VmMapEntry {
  uint64_t start = 0, end = 0;
  VmObject* object = nullptr;  // counted reference (null: untouched zero memory)
  uint64_t offset = 0;         // offset of `start` in object
  vm_prot_t protection = VM_PROT_DEFAULT;
  vm_prot_t max_protection = VM_PROT_ALL;
  vm_inherit_t inheritance = vm_inherit_t::Copy;
  bool needs_copy = false;
  bool is_shared = false;
};

class VmMap {
 public:
  explicit VmMap(VmSystem& s) : sys(s) {}
  VmMap(const VmMap&) = delete;
  VmMap& operator=(const VmMap&) = delete;
  ~VmMap();  // Conditions: entries removed (vm_map_destroy)

  VmSystem& sys;
  std::map<uint64_t, VmMapEntry> entries;  // by start
  pmap::pmap_t pmap = nullptr;             // created lazily by vm_map_pmap
};

/// One entry of a map copy: [start, end) relative to trunc_page(copy.offset).
struct VmMapCopyEntry {
  uint64_t start = 0, end = 0;
  VmObject* object = nullptr;  // counted reference
  uint64_t offset = 0;
  bool needs_copy = false;
  vm_prot_t protection = VM_PROT_DEFAULT;
  vm_prot_t max_protection = VM_PROT_ALL;
  vm_inherit_t inheritance = vm_inherit_t::Copy;
};

/// Mach's vm_map_copy_t (entry list). offset: the source address; size: its length.
struct VmMapCopy {
  uint64_t offset = 0;
  uint64_t size = 0;
  std::vector<VmMapCopyEntry> entries;
};

/// The map's pmap, created on first use; nullptr when no frame is free for it.
pmap::pmap_t vm_map_pmap(VmMap& map);

/// The entry containing va, or nullptr.
VmMapEntry* vm_map_lookup_entry(VmMap& map, uint64_t va);
const VmMapEntry* vm_map_lookup_entry(const VmMap& map, uint64_t va);

/// The hardware protection for an entry protection: write implies read (x86; a departure,
/// docs/language.md §Departures); a protection without read or write maps nothing.
vm_prot_t vm_prot_mmu(vm_prot_t prot);

/// Purpose:    Mach's vm_map_lookup for a fault: find the entry for va, check the access
///             (write needs w; read needs r or w), give a write through a needs_copy entry
///             its own shadow (vm_object_shadow), allocate a null object, and compute the
///             protection to enter (write dropped for a read through needs_copy).
/// Results:    KERN_SUCCESS with (*object, *offset, *prot); KERN_INVALID_ADDRESS;
///             KERN_PROTECTION_FAILURE.
kern_return_t vm_map_lookup(VmSystem& sys, VmMap& map, uint64_t va, bool write,
                            VmObject** object, uint64_t* offset, vm_prot_t* prot);

/// Purpose:    Map zero memory at [start, start + size) (vm_allocate fixed): rw-, rwx,
///             copy. Extends the previous entry when vm_object_coalesce allows.
/// Conditions: page-aligned, inside user space (checked by the caller).
/// Results:    KERN_SUCCESS; KERN_NO_SPACE when anything in the range is mapped.
kern_return_t vm_map_enter(VmMap& map, uint64_t start, uint64_t size);

/// Is [start, end) free of entries?
bool vm_map_range_free(const VmMap& map, uint64_t start, uint64_t end);

/// Insert an entry mapping an object (vm_map of a memory object; the entry's object
/// reference moves into the map). Conditions: the range is free (vm_map_range_free).
void vm_map_enter_object(VmMap& map, const VmMapEntry& entry);

/// Lowest page-aligned start >= kUserMin where `size` bytes fit below kUserMax.
/// Results: false when none.
bool vm_map_find_space(const VmMap& map, uint64_t size, uint64_t* start);

/// Purpose:    Remove [start, end) (holes ignored): clip, remove translations (own pmap;
///             and, for shared entries, every pmap mapping the pages of the chain), free
///             pages of exclusively owned objects in the range, drop object references.
void vm_map_remove(VmMap& map, uint64_t start, uint64_t end);

/// Purpose:    vm_protect: refuse (KERN_PROTECTION_FAILURE, nothing changed) if prot
///             exceeds the maximum of any entry in range; else set (set_max: max := prot,
///             cur &= prot), reduce translations, re-merge neighbours. Holes ignored.
kern_return_t vm_map_protect(VmMap& map, uint64_t start, uint64_t end, vm_prot_t prot,
                             bool set_max);

/// vm_inherit: set inheritance in [start, end), holes ignored, re-merge neighbours.
void vm_map_inherit(VmMap& map, uint64_t start, uint64_t end, vm_inherit_t inh);

/// Purpose:    The source half of vm_read/vm_copy: a copy-on-write snapshot of
///             [addr, addr + len) in *copy (nullptr for len 0).
/// Results:    KERN_SUCCESS; KERN_INVALID_ADDRESS (wrap, or any unmapped page);
///             KERN_PROTECTION_FAILURE (a page without read), the first offending page in
///             address order deciding; KERN_MEMORY_ERROR (a COPY_NONE source page of a
///             destroyed memory object). Nothing a task can see changes on failure.
kern_return_t vm_map_copyin(VmMap& map, uint64_t addr, uint64_t len, VmMapCopy** copy);

/// Purpose:    Map copy at the lowest free address with rw-/rwx/copy (consumes copy,
///             whatever the result). *addr: base + (copy->offset & 0xfff); 0 for null.
/// Results:    KERN_SUCCESS; KERN_NO_SPACE.
kern_return_t vm_map_copyout(VmMap& map, VmMapCopy* copy, uint64_t* addr);

/// Purpose:    Overwrite [dst, dst + copy->size) with copy (vm_write, vm_copy). Does not
///             consume the copy. Checks before storing anything: page alignment of
///             copy->offset, copy->size and dst (KERN_INVALID_ARGUMENT), wrap and unmapped
///             pages (KERN_INVALID_ADDRESS), pages without write (KERN_PROTECTION_FAILURE).
/// Results:    those codes, KERN_SUCCESS, or KERN_RESOURCE_SHORTAGE (slow path, no frame).
kern_return_t vm_map_copy_overwrite(VmMap& map, uint64_t dst, const VmMapCopy* copy);

/// Purpose:    The wait of a kernel thread's overwrite (vm_copy, vm_write), before it
///             changes anything: for every destination page the slow path would write
///             (pieces it does not replace whole), through the destination chain as a fault
///             walks it, a page in transit (busy, absent) makes the thread wait on it
///             (yield point overwrite_busy), and an object whose manager has not answered
///             memory_object_init makes it wait for pager_ready (overwrite_ready).
/// Conditions: sys.sched.current is the op's thread. A destination the overwrite would
///             refuse (alignment, wrap, unmapped, no write) needs no wait: false.
/// Results:    true: the thread was made to wait (assert_wait), nothing changed; the op
///             restarts from the top when woken. false: the overwrite can run to its end
///             without meeting a page in transit or a manager that is not ready (nothing
///             runs in between, and the overwrite itself asks no held manager).
bool vm_map_copy_overwrite_wait(VmMap& map, uint64_t dst, const VmMapCopy* copy);

/// Drop a copy and its object references.
void vm_map_copy_discard(VmSystem& sys, VmMapCopy* copy);

/// Purpose:    Build child's entries from parent's by inheritance (Mach's vm_map_fork):
///             NONE skipped, SHARE shares the object (use_shared_copy), COPY copies it
///             (symmetric or delayed; permanent objects by their strategy) whatever its
///             protection. Never fails (unreadable pages of destroyed objects copy as 0).
/// Conditions: child is empty.
void vm_map_fork(VmMap& parent, VmMap& child);

/// Remove every entry and destroy the pmap (task termination).
void vm_map_destroy(VmMap& map);

}  // namespace vmfuzz::vm
