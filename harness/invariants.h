// invariants.h — the VM's named invariants (DESIGN.md §6) and their checkers.
//
// Theory of operation
// -------------------
// Each checker reads the kernel's structures, the page tables (straight from the
// simulated frames, not through the pmap layer it judges) and the TLBs, without side
// effects, and appends one Violation per problem found. A violation's `invariant` is the
// short name below (reports cite it); `detail` names the object, frame or address.
//
//   ref_counts          every object's ref_count equals the references that exist: map
//                       entries, copy handles' entries, shadow pointers (copy pointers
//                       are not counted, as in Mach)
//   resident_counts     resident_page_count equals the pages in the object's tree
//   page_in_one_object  each page is in exactly one object, at its own offset, and no two
//                       pages share a frame; the frame->page table agrees
//   frames_accounted    every RAM frame is free, a page-table frame reachable from exactly
//                       one live pmap, or owned by exactly one ordinary resident page: none
//                       lost, none twice; device frames are held only by private pages
//   device_pages        an object served by a device pager holds only private, wired,
//                       unqueued pages on the device's frame for their offset (the frames
//                       of vm_object_page_map); no private page anywhere else
//   copy_object_shape   obj.copy = C implies C alive, C.shadow == obj, C.shadow_offset == 0
//   no_chain_cycles     shadow chains end
//   no_cow_breach       no PTE or TLB entry grants more than the VM allows: a writable
//                       mapping must be of the page in the entry's own top object (entry
//                       not needs_copy) whose copy object, if any, already holds that
//                       offset (resident or paged out), and which the manager has not
//                       write-locked (COPY_CALL); no mapping where the entry allows no access, no write
//                       where the entry forbids writing
//   no_stale_mapping    every PTE/TLB entry lies in a map entry and maps exactly the page the
//                       entry's chain resolves at that address (never a frame that left its
//                       object)
//   tlb_coherent        TLB entries agree with the PTEs of the loaded CR3, or are less
//                       permissive (never a different frame, never writable or dirty where
//                       the PTE is not)
//   teardown            after every task and handle is gone: zero frames owned, zero
//                       page-table frames, zero objects
#pragma once

#include <string>
#include <vector>

namespace vmfuzz {

namespace vm {
class Kernel;
}

struct Violation {
  std::string invariant;
  std::string detail;
};

/// Purpose:    Every invariant above except teardown (full checks; O(objects + pages +
///             page-table entries)).
/// Conditions: between ops. never: changes anything (no A/D bits, no TLB changes).
void check_vm_invariants(const vm::Kernel& k, std::vector<Violation>& out);

/// Purpose:    tlb_coherent only (cheap: O(TLB entries); after every op).
void check_tlb_coherence(const vm::Kernel& k, std::vector<Violation>& out);

/// Purpose:    teardown: call when every task and handle is gone.
void check_teardown(const vm::Kernel& k, std::vector<Violation>& out);

}  // namespace vmfuzz
