// walk_test.cc — the page walker against hand-built tables: rights at every level, A/D,
// not-present at every level, reserved bits, non-canonical addresses, and one test per row
// of the PTE bit table (kPteBits).
#include <gtest/gtest.h>

#include <vector>

#include "tests/machine/test_tables.h"

namespace vmfuzz::machine {
namespace {

using testing::Chain;
using testing::kAll;

// Indexes 3, 5, 7, 9 at PML4, PDPT, PD, PT: a wrong shift picks a zero entry.
constexpr uint64_t kVa = (3ull << 39) | (5ull << 30) | (7ull << 21) | (9ull << 12);

const char* kLevel[4] = {"PML4", "PDPT", "PD", "PT"};

std::vector<uint8_t> snapshot(const PhysicalMemory& m) {
  std::vector<uint8_t> s;
  for (pfn_t f = 0; f < m.frame_count(); f++) s.insert(s.end(), m.frame(f), m.frame(f) + kPageSize);
  return s;
}

TEST(Walk, FullRightsTranslateAndSetAccessedOnEveryLevel) {
  PhysicalMemory m(16);
  Chain c = Chain::build(m, kVa);
  WalkResult r = walk(m, c.cr3(), kVa + 0x123, AccessKind::Read, true);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.frame, c.data);
  EXPECT_TRUE(r.writable);
  EXPECT_TRUE(r.user);
  EXPECT_FALSE(r.dirty);
  for (unsigned l = 0; l < 4; l++) {
    EXPECT_TRUE(c.entry(m, l) & PTE_A) << kLevel[l];
    EXPECT_FALSE(c.entry(m, l) & PTE_D) << kLevel[l] << ": a read sets no D";
  }
  WalkResult w = walk(m, c.cr3(), kVa, AccessKind::Write, true);
  ASSERT_TRUE(w.ok);
  EXPECT_TRUE(w.dirty);
  EXPECT_TRUE(c.entry(m, 3) & PTE_D) << "a write sets D on the leaf";
  for (unsigned l = 0; l < 3; l++) EXPECT_FALSE(c.entry(m, l) & PTE_D) << kLevel[l] << ": D only on the leaf";
}

TEST(Walk, WhatIfUsIsClearAtOneLevelOnly) {
  for (unsigned level = 0; level < 4; level++) {
    PhysicalMemory m(16);
    std::array<uint64_t, 4> flags = {kAll, kAll, kAll, kAll};
    flags[level] &= ~PTE_US;
    Chain c = Chain::build(m, kVa, flags);
    auto before = snapshot(m);
    WalkResult r = walk(m, c.cr3(), kVa, AccessKind::Read, true);
    EXPECT_FALSE(r.ok) << kLevel[level];
    EXPECT_EQ(r.error_code, PF_P | PF_U) << kLevel[level];
    EXPECT_EQ(before, snapshot(m)) << kLevel[level] << ": a faulting walk sets no A bit";
  }
}

TEST(Walk, WhatIfRwIsClearAtOneLevelOnly) {
  for (unsigned level = 0; level < 4; level++) {
    PhysicalMemory m(16);
    std::array<uint64_t, 4> flags = {kAll, kAll, kAll, kAll};
    flags[level] &= ~PTE_RW;
    Chain c = Chain::build(m, kVa, flags);
    WalkResult rd = walk(m, c.cr3(), kVa, AccessKind::Read, true);
    ASSERT_TRUE(rd.ok) << kLevel[level];
    EXPECT_FALSE(rd.writable) << kLevel[level];
    WalkResult wr = walk(m, c.cr3(), kVa, AccessKind::Write, true);
    EXPECT_FALSE(wr.ok) << kLevel[level];
    EXPECT_EQ(wr.error_code, PF_P | PF_W | PF_U) << kLevel[level];
    EXPECT_FALSE(c.entry(m, 3) & PTE_D) << kLevel[level] << ": a refused write sets no D";
  }
}

TEST(Walk, WhatIfAnEntryIsNotPresentAtEachLevel) {
  for (unsigned level = 0; level < 4; level++) {
    PhysicalMemory m(16);
    std::array<uint64_t, 4> flags = {kAll, kAll, kAll, kAll};
    flags[level] &= ~PTE_P;
    Chain c = Chain::build(m, kVa, flags);
    WalkResult r = walk(m, c.cr3(), kVa, AccessKind::Read, true);
    EXPECT_FALSE(r.ok) << kLevel[level];
    EXPECT_EQ(r.error_code, PF_U) << kLevel[level] << ": not present means PF_P clear";
    WalkResult w = walk(m, c.cr3(), kVa, AccessKind::Write, true);
    EXPECT_EQ(w.error_code, PF_U | PF_W) << kLevel[level];
  }
}

TEST(Walk, WhatIfTheAddressIsNotCanonical) {
  PhysicalMemory m(16);
  Chain c = Chain::build(m, kVa);
  for (uint64_t va : {kVa | (1ull << 47), kVa | (1ull << 63), 0x0000800000000000ull, 0xfffe000000000000ull}) {
    WalkResult r = walk(m, c.cr3(), va, AccessKind::Read, true);
    EXPECT_FALSE(r.ok) << std::hex << va;
    EXPECT_EQ(r.error_code, PF_U) << std::hex << va;
  }
  // The upper canonical half is walkable: index 256+ of the PML4, empty here.
  EXPECT_TRUE(is_canonical(0xffff800000000000ull));
  EXPECT_FALSE(walk(m, c.cr3(), 0xffff800000000000ull, AccessKind::Read, true).ok);
}

TEST(Walk, WhatIfCr3IsTheEmptyAddressSpace) {
  PhysicalMemory m(4);
  WalkResult r = walk(m, kEmptyCr3, kVa, AccessKind::Write, true);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error_code, PF_U | PF_W);
}

TEST(Walk, SetBitsFalseIsAPureFunction) {
  PhysicalMemory m(16);
  Chain c = Chain::build(m, kVa);
  auto before = snapshot(m);
  WalkResult r = walk(m, c.cr3(), kVa, AccessKind::Write, false);
  ASSERT_TRUE(r.ok);
  EXPECT_FALSE(r.dirty) << "without set_bits the leaf's D stays clear";
  EXPECT_EQ(before, snapshot(m));
}

TEST(Walk, TheOffsetSelectsNothingButTheByte) {
  PhysicalMemory m(16);
  Chain c = Chain::build(m, kVa);
  pfn_t other = c.map_more(m, kVa + kPageSize);
  EXPECT_EQ(walk(m, c.cr3(), kVa + 0xfff, AccessKind::Read, false).frame, c.data);
  EXPECT_EQ(walk(m, c.cr3(), kVa + 0x1000, AccessKind::Read, false).frame, other);
}

// One test per row of kPteBits: each bit does what the table says, at the leaf and above.
TEST(PteBitTable, EveryRowBehavesAsDocumented) {
  uint64_t seen = 0;
  for (const PteBitInfo& row : kPteBits) {
    SCOPED_TRACE(row.name);
    EXPECT_EQ(seen & row.mask, 0u) << "rows overlap";
    seen |= row.mask;
    for (unsigned level = 0; level < 4; level++) {
      SCOPED_TRACE(kLevel[level]);
      PhysicalMemory m(16);
      std::array<uint64_t, 4> flags = {kAll, kAll, kAll, kAll};
      switch (row.role) {
        case PteBitRole::Present:
        case PteBitRole::Writable:
        case PteBitRole::User:
          flags[level] &= ~row.mask;  // these grant by being set: test them clear
          break;
        case PteBitRole::Frame:
          break;  // handled below
        default:
          flags[level] |= row.mask;
      }
      Chain c = Chain::build(m, kVa, flags);
      if (row.role == PteBitRole::Frame)  // a frame outside physical memory
        c.set_entry(m, level, (c.entry(m, level) & ~PTE_FRAME_MASK) | pte_for_frame(m.frame_count()));
      WalkResult rd = walk(m, c.cr3(), kVa, AccessKind::Read, true);
      WalkResult wr = walk(m, c.cr3(), kVa, AccessKind::Write, true);
      switch (row.role) {
        case PteBitRole::Present:
          EXPECT_FALSE(rd.ok);
          EXPECT_EQ(rd.error_code, PF_U);
          break;
        case PteBitRole::Writable:
          EXPECT_TRUE(rd.ok);
          EXPECT_EQ(wr.error_code, PF_P | PF_W | PF_U);
          break;
        case PteBitRole::User:
          EXPECT_EQ(rd.error_code, PF_P | PF_U);
          EXPECT_EQ(wr.error_code, PF_P | PF_W | PF_U);
          break;
        case PteBitRole::Accessed:  // preset A: no change to the outcome, stays set
        case PteBitRole::Ignored:
          EXPECT_TRUE(rd.ok && wr.ok && rd.user && wr.writable && rd.frame == c.data);
          EXPECT_TRUE(c.entry(m, level) & row.mask) << "the bit is preserved";
          break;
        case PteBitRole::Dirty:
          EXPECT_TRUE(rd.ok && wr.ok);
          if (level == 3)
            EXPECT_TRUE(rd.dirty) << "a preset leaf D is reported even for a read";
          else
            EXPECT_FALSE(rd.dirty) << "D above the leaf is ignored";
          break;
        case PteBitRole::PageSize:
          if (level == 3) {
            EXPECT_TRUE(rd.ok && wr.ok) << "bit 7 of a PTE is PAT: ignored";
          } else {
            EXPECT_EQ(rd.error_code, PF_P | PF_U | PF_RSVD);
            EXPECT_EQ(wr.error_code, PF_P | PF_W | PF_U | PF_RSVD);
          }
          break;
        case PteBitRole::Frame:
          EXPECT_EQ(rd.error_code, PF_P | PF_U | PF_RSVD) << "a frame beyond memory is reserved";
          break;
      }
    }
  }
  EXPECT_EQ(seen & 0x1ff, 0x1ffu) << "bits 0..8 all have a row";
  EXPECT_TRUE(seen & PTE_NX);
}

TEST(PteBitTable, AccessedAndDirtyAreSetByTheWalker) {
  for (const PteBitInfo& row : kPteBits) {
    if (row.role != PteBitRole::Accessed && row.role != PteBitRole::Dirty) continue;
    SCOPED_TRACE(row.name);
    PhysicalMemory m(16);
    Chain c = Chain::build(m, kVa);
    ASSERT_TRUE(walk(m, c.cr3(), kVa, AccessKind::Write, true).ok);
    for (unsigned l = 0; l < 4; l++) {
      bool expect = row.role == PteBitRole::Accessed || l == 3;
      EXPECT_EQ(bool(c.entry(m, l) & row.mask), expect) << kLevel[l];
    }
  }
}

}  // namespace
}  // namespace vmfuzz::machine
