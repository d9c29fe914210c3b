// walk.cc — the x86-64 4-level page walker (IA-32e paging, 4 KiB pages only).
//
// Theory of operation
// -------------------
// A 48-bit canonical virtual address is cut into four 9-bit table indexes and a 12-bit
// offset:
//
//    63     48 47     39 38     30 29     21 20     12 11        0
//   | sign    | PML4    | PDPT    | PD      | PT      | offset    |
//
// Starting at the table whose physical address is CR3, each level's entry must be present
// (P) and names the next table's frame (bits 12..51); the PT entry (the leaf) names the
// data frame. Rights combine by AND over the four levels: a user access needs US at every
// level, a write needs RW at every level (CR0.WP=1). The bit table is kPteBits in
// machine.h.
//
// Faults, as values: a non-present entry -> error code without PF_P; a present entry
// with PS at PML4/PDPT/PD (large pages are not simulated) or a frame outside physical
// memory -> PF_P|PF_RSVD; rights missing after a complete walk -> PF_P. PF_U is always
// set (user accesses) and PF_W for writes. A non-canonical address (a #GP on hardware)
// is reported as a not-present fault, and so is a walk from kEmptyCr3.
//
// Accessed/dirty: only a walk that grants the access sets bits (A on all four entries,
// D on the leaf for a write), and only when set_bits is true; a faulting walk or a walk
// with set_bits=false changes nothing, so oracles can call it freely.
#include "vm/machine/machine.h"

namespace vmfuzz::machine {

WalkResult walk(PhysicalMemory& mem, uint64_t cr3, uint64_t va, AccessKind kind, bool set_bits) {
  const bool write = kind == AccessKind::Write;
  const uint32_t base_ec = PF_U | (write ? PF_W : 0);
  WalkResult r;
  r.error_code = base_ec;  // not present until shown otherwise
  if (!is_canonical(va)) return r;
  uint64_t table = cr3 >> 12;
  if (table >= mem.frame_count()) return r;

  pfn_t tables[4];
  uint64_t entries[4];
  bool user = true, writable = true;
  for (unsigned level = 0; level < 4; level++) {
    tables[level] = pfn_t(table);
    uint64_t e = mem.read_entry(pfn_t(table), pt_index(va, level));
    entries[level] = e;
    if (!(e & PTE_P)) return r;
    if ((level < 3 && (e & PTE_PS)) || pte_frame(e) >= mem.frame_count()) {
      r.error_code = base_ec | PF_P | PF_RSVD;
      return r;
    }
    user = user && (e & PTE_US);
    writable = writable && (e & PTE_RW);
    table = pte_frame(e);
  }
  if (!user || (write && !writable)) {
    r.error_code = base_ec | PF_P;
    return r;
  }
  r.ok = true;
  r.error_code = 0;
  r.frame = pfn_t(table);
  r.user = user;
  r.writable = writable;
  r.dirty = (entries[3] & PTE_D) || (write && set_bits);
  if (set_bits) {
    for (unsigned level = 0; level < 4; level++) {
      uint64_t want = entries[level] | PTE_A | ((level == 3 && write) ? PTE_D : 0);
      if (want != entries[level]) mem.write_entry(tables[level], pt_index(va, level), want);
    }
  }
  return r;
}

}  // namespace vmfuzz::machine
