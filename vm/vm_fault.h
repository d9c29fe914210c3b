// vm_fault.h — page faults (Mach's vm/vm_fault.c): vm_fault resolves a faulting address
// of a map, vm_fault_page finds or makes the page of an (object, offset) for an access.
//
// Theory of operation
// -------------------
// The fault path reads as an outline of named steps sharing one FaultState:
//   1. look up the entry (vm_map_lookup: protection check, needs_copy -> shadow on write,
//      lazy object allocation, write dropped on read faults of needs_copy entries);
//   2. walk the shadow chain for the page (vm_fault_page): resident page found, or paged
//      in from the pager of the first object that has it, or zero-fill at the bottom
//      (into the top object, as Mach does);
//   3. on a write to a page found below the top object: copy it up into the top object
//      (removing every mapping of the old page), then try vm_object_collapse;
//      on a read of a lower page: map it read-only; a write to a page the manager has
//      write-locked (COPY_CALL) first sends data_unlock;
//   4. if the top object has a copy object: a read maps read-only; a write first pushes
//      the old contents into the copy object unless it already has that page;
//   5. pmap_enter with the resulting protection (less page_lock), activate the page.
// A fault that cannot get a frame returns KERN_RESOURCE_SHORTAGE and leaves every object
// consistent (steps that completed stay done; none is half-done).
#pragma once

#include <cstdint>

#include "vm/vm_object.h"
#include "vmfuzz/vocab.h"

namespace vmfuzz::vm {

class VmMap;

/// The state one fault shares between its steps (FreeBSD's faultstate, in Mach names).
struct FaultState {
  // Inputs.
  uint64_t va = 0;
  bool write = false;
  // Step 1 (lookup).
  VmObject* first_object = nullptr;  // the entry's top object
  uint64_t first_offset = 0;
  vm_prot_t prot = VM_PROT_NONE;     // protection to enter (hardware view)
  // Steps 2-4 (vm_fault_page).
  VmObject* object = nullptr;        // object of the result page
  uint64_t offset = 0;
  VmPage* page = nullptr;            // the result page
};

/// Purpose:    Resolve a user fault of `map` at `va` (write or read access): the page
///             is made resident with the right copy-on-write treatment and entered into
///             the map's pmap.
/// Conditions: entry: map's pmap may be absent (created here). exit: on success va is
///             mapped with rights the entry allows [invariant no_cow_breach].
/// Results:    KERN_SUCCESS; KERN_INVALID_ADDRESS (no entry); KERN_PROTECTION_FAILURE
///             (access not permitted: write needs w, read needs r or w);
///             KERN_RESOURCE_SHORTAGE (no frame). Counters: faults and the step counters.
kern_return_t vm_fault(VmSystem& sys, VmMap& map, uint64_t va, bool write);

/// Purpose:    Find or make the page for (fs.first_object, fs.first_offset) for an access
///             (steps 2-4 above); fs.prot is reduced when the page must be mapped
///             read-only.
/// Conditions: entry: fs.first_object referenced (not null). exit: fs.page resident in
///             fs.object; if fs.write, fs.page is in fs.first_object and its copy object
///             (if any) holds the old contents.
/// Results:    KERN_SUCCESS (fs.page is busy: the caller ends with vm_fault_page_done) or
///             KERN_RESOURCE_SHORTAGE (nothing busy). A destroyed memory object in the
///             chain is passed (its contents are unknown): the walk zero-fills.
/// Counters:   zero_fills, copy_ups, pushes, pageins.
kern_return_t vm_fault_page(VmSystem& sys, FaultState& fs);

/// Release the busy result page of a successful vm_fault_page (Mach's PAGE_WAKEUP_DONE).
void vm_fault_page_done(FaultState& fs);

}  // namespace vmfuzz::vm
