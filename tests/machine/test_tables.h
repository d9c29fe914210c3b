// test_tables.h — hand-built page tables for the machine tests.
//
// Chain::build allocates a PML4, PDPT, PD and PT (zeroed) and one data frame, and links
// them for one va with the flags given per level, so a test can flip any bit at any level.
#pragma once

#include <array>
#include <cstring>

#include "vm/machine/machine.h"

namespace vmfuzz::machine::testing {

inline pfn_t zeroed_frame(PhysicalMemory& m, FrameUse use) {
  pfn_t f = m.alloc_frame(use);
  if (f != kNoFrame) std::memset(m.frame(f), 0, kPageSize);
  return f;
}

inline constexpr uint64_t kAll = PTE_P | PTE_RW | PTE_US;

struct Chain {
  std::array<pfn_t, 4> table{};  // PML4, PDPT, PD, PT
  pfn_t data = kNoFrame;
  uint64_t va = 0;

  uint64_t cr3() const { return uint64_t(table[0]) << 12; }
  uint64_t entry(const PhysicalMemory& m, unsigned level) const {
    return m.read_entry(table[level], pt_index(va, level));
  }
  void set_entry(PhysicalMemory& m, unsigned level, uint64_t v) const {
    m.write_entry(table[level], pt_index(va, level), v);
  }
  // Link va through four fresh tables to a fresh data frame.
  static Chain build(PhysicalMemory& m, uint64_t va, std::array<uint64_t, 4> flags = {kAll, kAll, kAll, kAll}) {
    Chain c;
    c.va = va;
    for (unsigned l = 0; l < 4; l++) c.table[l] = zeroed_frame(m, FrameUse::PageTable);
    c.data = zeroed_frame(m, FrameUse::VmPage);
    for (unsigned l = 0; l < 3; l++) c.set_entry(m, l, pte_for_frame(c.table[l + 1]) | flags[l]);
    c.set_entry(m, 3, pte_for_frame(c.data) | flags[3]);
    return c;
  }
  // Add a leaf for another va under the same PML4 (building missing tables).
  pfn_t map_more(PhysicalMemory& m, uint64_t va2, uint64_t leaf_flags = kAll) const {
    pfn_t t = table[0];
    for (unsigned l = 0; l < 3; l++) {
      uint64_t e = m.read_entry(t, pt_index(va2, l));
      if (!(e & PTE_P)) {
        pfn_t nt = zeroed_frame(m, FrameUse::PageTable);
        e = pte_for_frame(nt) | kAll;
        m.write_entry(t, pt_index(va2, l), e);
      }
      t = pfn_t(pte_frame(e));
    }
    pfn_t d = zeroed_frame(m, FrameUse::VmPage);
    m.write_entry(t, pt_index(va2, 3), pte_for_frame(d) | leaf_flags);
    return d;
  }
};

}  // namespace vmfuzz::machine::testing
