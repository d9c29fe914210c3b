// pmap_test.cc — the pmap layer: enter/remove/protect, pv lists, attribute folding,
// shootdown on every active CPU, page_protect, collect, resource shortage, activation.
// After every test the invariants pv_consistent and tlb_coherent must hold.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "vm/pmap/pmap.h"

namespace vmfuzz::pmap {
namespace {

using machine::AccessResult;
using machine::FrameUse;
using machine::Machine;

// Three pages in different PML4 / PDPT / PD slots, and one next to the first.
constexpr uint64_t kA = 0x10000;
constexpr uint64_t kA2 = 0x11000;
constexpr uint64_t kB = 0x40000000;     // another PDPT entry
constexpr uint64_t kC = 0x8000000000;   // another PML4 entry

struct PmapTest : ::testing::Test {
  Machine m{64, 3, 4};
  PmapDomain d{m};

  void TearDown() override {
    std::string why;
    EXPECT_TRUE(d.pv_consistent(&why)) << why;
    EXPECT_TRUE(m.tlb_coherent(&why)) << why;
    EXPECT_EQ(m.memory().count_of(FrameUse::PageTable), d.stats().pt_frames);
  }
  pfn_t page(uint8_t fill = 0) {
    pfn_t f = m.memory().alloc_frame(FrameUse::VmPage);
    EXPECT_NE(f, machine::kNoFrame);
    std::memset(m.memory().frame(f), fill, kPageSize);
    return f;
  }
  kern_return_t store(unsigned cpu, uint64_t va, uint8_t v) {
    const uint8_t b[1] = {v};
    return m.store(cpu, va, b).kr;
  }
  kern_return_t load(unsigned cpu, uint64_t va, uint8_t* v) { return m.load(cpu, va, {v, 1}).kr; }
  bool cached(unsigned cpu, uint64_t va) { return m.cpu(cpu).tlb.lookup(va >> 12) != nullptr; }
};

TEST_F(PmapTest, EnterMapsThePageForUserAccesses) {
  pmap_t p = pmap_create(d);
  ASSERT_NE(p, nullptr);
  pfn_t f = page(0x33);
  uint32_t free0 = m.memory().free_count();
  ASSERT_EQ(pmap_enter(p, kA, f, VM_PROT_READ | VM_PROT_WRITE), KERN_SUCCESS);
  EXPECT_EQ(m.memory().free_count(), free0 - 3) << "PDPT, PD, PT allocated";
  EXPECT_EQ(p->pt_frame_count(), 4u);
  ASSERT_EQ(pmap_enter(p, kA2, page(), VM_PROT_READ), KERN_SUCCESS);
  EXPECT_EQ(p->pt_frame_count(), 4u) << "same PT: no new table";
  EXPECT_EQ(pmap_extract(p, kA), f);
  EXPECT_EQ(pmap_extract(p, kA + 0xabc), f);
  EXPECT_EQ(pmap_extract(p, kB), std::nullopt);
  pmap_activate(p, 0);
  uint8_t v = 0;
  EXPECT_EQ(load(0, kA + 5, &v), KERN_SUCCESS);
  EXPECT_EQ(v, 0x33);
  EXPECT_EQ(store(0, kA, 1), KERN_SUCCESS);
  EXPECT_EQ(store(0, kA2, 1), KERN_INVALID_ADDRESS) << "read-only page, no handler";
  pmap_deactivate(p, 0);
  pmap_destroy(p);
}

TEST_F(PmapTest, PageTableFramesAreZeroedEvenWhenReused) {
  // A freed data frame full of junk comes back first (LIFO): the pmap must zero it.
  pfn_t junk = page(0xff);
  m.memory().free_frame(junk);
  pmap_t p = pmap_create(d);
  ASSERT_EQ(p->cr3() >> 12, junk);
  EXPECT_EQ(pmap_extract(p, kB), std::nullopt);
  ASSERT_EQ(pmap_enter(p, kA, page(), VM_PROT_ALL), KERN_SUCCESS);
  EXPECT_EQ(pmap_extract(p, kC), std::nullopt);
  pmap_destroy(p);
}

TEST_F(PmapTest, PvListsRecordEveryMappingInOrder) {
  pmap_t p = pmap_create(d), q = pmap_create(d);
  pfn_t f = page();
  ASSERT_EQ(pmap_enter(q, kB, f, VM_PROT_READ), KERN_SUCCESS);
  ASSERT_EQ(pmap_enter(p, kA, f, VM_PROT_READ), KERN_SUCCESS);
  ASSERT_EQ(pmap_enter(p, kC, f, VM_PROT_READ), KERN_SUCCESS);
  auto pv = d.mappings_of(f);
  ASSERT_EQ(pv.size(), 3u);
  EXPECT_TRUE(pv[0].pmap == q && pv[0].va == kB);
  EXPECT_TRUE(pv[1].pmap == p && pv[1].va == kA);
  EXPECT_TRUE(pv[2].pmap == p && pv[2].va == kC);
  pmap_remove(p, kA, kA + kPageSize);
  pv = d.mappings_of(f);
  ASSERT_EQ(pv.size(), 2u);
  EXPECT_TRUE(pv[0].pmap == q && pv[1].va == kC);
  pmap_destroy(p);
  EXPECT_EQ(d.mappings_of(f).size(), 1u) << "destroy removed p's mappings";
  pmap_destroy(q);
  EXPECT_TRUE(d.mappings_of(f).empty());
}

TEST_F(PmapTest, WhatIfAMappingIsReplacedByAnotherFrame) {
  pmap_t p = pmap_create(d);
  pfn_t old_f = page(1), new_f = page(2);
  ASSERT_EQ(pmap_enter(p, kA, old_f, VM_PROT_DEFAULT), KERN_SUCCESS);
  pmap_activate(p, 0);
  pmap_activate(p, 1);
  ASSERT_EQ(store(0, kA, 9), KERN_SUCCESS);
  uint8_t v;
  ASSERT_EQ(load(1, kA, &v), KERN_SUCCESS);
  uint64_t sd = d.stats().shootdowns;
  ASSERT_EQ(pmap_enter(p, kA, new_f, VM_PROT_READ), KERN_SUCCESS);
  EXPECT_EQ(d.stats().shootdowns, sd + 2) << "both CPUs";
  EXPECT_FALSE(cached(0, kA));
  EXPECT_FALSE(cached(1, kA));
  EXPECT_TRUE(d.mappings_of(old_f).empty());
  EXPECT_EQ(d.mappings_of(new_f).size(), 1u);
  EXPECT_TRUE(d.pmap_is_modified(old_f)) << "the write through the old mapping is kept";
  EXPECT_FALSE(d.pmap_is_modified(new_f));
  ASSERT_EQ(load(1, kA, &v), KERN_SUCCESS);
  EXPECT_EQ(v, 2);
  pmap_deactivate(p, 0);
  pmap_deactivate(p, 1);
  pmap_destroy(p);
}

TEST_F(PmapTest, EnterOfTheSameFrameMayRaiseRightsAndKeepsDirty) {
  pmap_t p = pmap_create(d);
  pfn_t f = page();
  ASSERT_EQ(pmap_enter(p, kA, f, VM_PROT_DEFAULT), KERN_SUCCESS);
  pmap_activate(p, 0);
  ASSERT_EQ(store(0, kA, 1), KERN_SUCCESS);
  ASSERT_EQ(pmap_enter(p, kA, f, VM_PROT_READ), KERN_SUCCESS);
  EXPECT_TRUE(d.pmap_is_modified(f));
  EXPECT_EQ(store(0, kA, 1), KERN_INVALID_ADDRESS) << "reduced, and shot down";
  ASSERT_EQ(pmap_enter(p, kA, f, VM_PROT_ALL), KERN_SUCCESS);
  EXPECT_EQ(store(0, kA, 1), KERN_SUCCESS) << "raised again";
  EXPECT_EQ(d.mappings_of(f).size(), 1u);
  pmap_deactivate(p, 0);
  pmap_destroy(p);
}

TEST_F(PmapTest, WhatIfProtectIsAskedToRaiseRights) {
  pmap_t p = pmap_create(d);
  pfn_t f = page();
  ASSERT_EQ(pmap_enter(p, kA, f, VM_PROT_DEFAULT), KERN_SUCCESS);
  pmap_activate(p, 2);
  pmap_protect(p, kA, kA + kPageSize, VM_PROT_READ);
  EXPECT_EQ(store(2, kA, 1), KERN_INVALID_ADDRESS);
  pmap_protect(p, kA, kA + kPageSize, VM_PROT_ALL);
  EXPECT_EQ(store(2, kA, 1), KERN_INVALID_ADDRESS) << "protect never raises";
  pmap_protect(p, 0, kUserMax, VM_PROT_NONE);
  EXPECT_EQ(pmap_extract(p, kA), std::nullopt) << "NONE removes";
  EXPECT_TRUE(d.mappings_of(f).empty());
  pmap_deactivate(p, 2);
  pmap_destroy(p);
}

TEST_F(PmapTest, ProtectShootsDownOnEveryCpuWhereThePmapIsActive) {
  pmap_t p = pmap_create(d), q = pmap_create(d);
  pfn_t f = page(), g = page();
  ASSERT_EQ(pmap_enter(p, kB, f, VM_PROT_DEFAULT), KERN_SUCCESS);
  ASSERT_EQ(pmap_enter(q, kB, g, VM_PROT_DEFAULT), KERN_SUCCESS);
  pmap_activate(p, 0);
  pmap_activate(p, 1);
  pmap_activate(q, 2);
  for (unsigned c = 0; c < 3; c++) ASSERT_EQ(store(c, kB, uint8_t(c)), KERN_SUCCESS);
  uint64_t sd = d.stats().shootdowns;
  pmap_protect(p, kB, kB + 1, VM_PROT_READ);
  EXPECT_EQ(d.stats().shootdowns, sd + 2);
  EXPECT_FALSE(cached(0, kB));
  EXPECT_FALSE(cached(1, kB));
  EXPECT_TRUE(cached(2, kB)) << "CPU 2 runs another pmap: left alone";
  EXPECT_EQ(store(0, kB, 1), KERN_INVALID_ADDRESS);
  EXPECT_EQ(store(1, kB, 1), KERN_INVALID_ADDRESS);
  EXPECT_EQ(store(2, kB, 1), KERN_SUCCESS);
  for (unsigned c = 0; c < 2; c++) pmap_deactivate(p, c);
  pmap_deactivate(q, 2);
  pmap_destroy(p);
  pmap_destroy(q);
}

TEST_F(PmapTest, PageProtectReachesEveryMappingThroughThePvList) {
  pmap_t p = pmap_create(d), q = pmap_create(d);
  pfn_t f = page();
  ASSERT_EQ(pmap_enter(p, kA, f, VM_PROT_DEFAULT), KERN_SUCCESS);
  ASSERT_EQ(pmap_enter(p, kC, f, VM_PROT_DEFAULT), KERN_SUCCESS);
  ASSERT_EQ(pmap_enter(q, kB, f, VM_PROT_DEFAULT), KERN_SUCCESS);
  pmap_activate(p, 0);
  pmap_activate(q, 1);
  ASSERT_EQ(store(0, kA, 1), KERN_SUCCESS);
  ASSERT_EQ(store(0, kC, 1), KERN_SUCCESS);
  ASSERT_EQ(store(1, kB, 1), KERN_SUCCESS);
  d.pmap_page_protect(f, VM_PROT_READ);
  EXPECT_EQ(store(0, kA, 1), KERN_INVALID_ADDRESS);
  EXPECT_EQ(store(0, kC, 1), KERN_INVALID_ADDRESS);
  EXPECT_EQ(store(1, kB, 1), KERN_INVALID_ADDRESS);
  uint8_t v;
  EXPECT_EQ(load(1, kB, &v), KERN_SUCCESS);
  EXPECT_EQ(d.mappings_of(f).size(), 3u);
  d.pmap_page_protect(f, VM_PROT_NONE);
  EXPECT_TRUE(d.mappings_of(f).empty());
  EXPECT_EQ(load(0, kA, &v), KERN_INVALID_ADDRESS);
  EXPECT_EQ(load(1, kB, &v), KERN_INVALID_ADDRESS);
  EXPECT_TRUE(d.pmap_is_modified(f)) << "folded from the removed PTEs";
  EXPECT_TRUE(d.pmap_is_referenced(f));
  pmap_deactivate(p, 0);
  pmap_deactivate(q, 1);
  pmap_destroy(p);
  pmap_destroy(q);
}

TEST_F(PmapTest, ModifyAndReferenceBitsAreFoldedWhenMappingsGo) {
  pmap_t p = pmap_create(d);
  pfn_t r = page(), w = page(), idle = page();
  ASSERT_EQ(pmap_enter(p, kA, r, VM_PROT_DEFAULT), KERN_SUCCESS);
  ASSERT_EQ(pmap_enter(p, kA2, w, VM_PROT_DEFAULT), KERN_SUCCESS);
  ASSERT_EQ(pmap_enter(p, kB, idle, VM_PROT_DEFAULT), KERN_SUCCESS);
  pmap_activate(p, 0);
  uint8_t v;
  ASSERT_EQ(load(0, kA, &v), KERN_SUCCESS);
  ASSERT_EQ(store(0, kA2, 1), KERN_SUCCESS);
  EXPECT_TRUE(d.pmap_is_referenced(r));
  EXPECT_FALSE(d.pmap_is_modified(r));
  EXPECT_TRUE(d.pmap_is_modified(w));
  EXPECT_FALSE(d.pmap_is_referenced(idle));
  pmap_remove(p, 0, kUserMax);
  EXPECT_TRUE(d.pmap_is_referenced(r));
  EXPECT_FALSE(d.pmap_is_modified(r));
  EXPECT_TRUE(d.pmap_is_modified(w));
  EXPECT_TRUE(d.pmap_is_referenced(w));
  EXPECT_FALSE(d.pmap_is_modified(idle));
  EXPECT_FALSE(d.pmap_is_referenced(idle));
  d.pmap_clear_modify(w);
  d.pmap_clear_reference(r);
  EXPECT_FALSE(d.pmap_is_modified(w));
  EXPECT_FALSE(d.pmap_is_referenced(r));
  pmap_deactivate(p, 0);
  pmap_destroy(p);
}

TEST_F(PmapTest, WhatIfTheDirtyBitIsClearedWhileATlbRemembersIt) {
  pmap_t p = pmap_create(d);
  pfn_t f = page();
  ASSERT_EQ(pmap_enter(p, kA, f, VM_PROT_DEFAULT), KERN_SUCCESS);
  pmap_activate(p, 0);
  pmap_activate(p, 1);
  ASSERT_EQ(store(0, kA, 1), KERN_SUCCESS);
  ASSERT_EQ(store(1, kA, 1), KERN_SUCCESS);  // both TLBs hold a dirty entry
  d.pmap_clear_modify(f);
  EXPECT_FALSE(d.pmap_is_modified(f));
  std::string why;
  EXPECT_TRUE(m.tlb_coherent(&why)) << why;
  ASSERT_EQ(store(1, kA, 2), KERN_SUCCESS);
  EXPECT_TRUE(d.pmap_is_modified(f)) << "the next write set D again: no dirty bit lost";
  d.pmap_clear_modify(f);
  ASSERT_EQ(store(0, kA, 3), KERN_SUCCESS);
  EXPECT_TRUE(d.pmap_is_modified(f));
  pmap_deactivate(p, 0);
  pmap_deactivate(p, 1);
  pmap_destroy(p);
}

TEST_F(PmapTest, WhatIfTheReferenceBitIsClearedWhileATlbHoldsTheEntry) {
  pmap_t p = pmap_create(d);
  pfn_t f = page();
  ASSERT_EQ(pmap_enter(p, kA, f, VM_PROT_READ), KERN_SUCCESS);
  pmap_activate(p, 0);
  uint8_t v;
  ASSERT_EQ(load(0, kA, &v), KERN_SUCCESS);
  d.pmap_clear_reference(f);
  EXPECT_FALSE(d.pmap_is_referenced(f));
  EXPECT_FALSE(cached(0, kA));
  ASSERT_EQ(load(0, kA, &v), KERN_SUCCESS);
  EXPECT_TRUE(d.pmap_is_referenced(f));
  pmap_deactivate(p, 0);
  pmap_destroy(p);
}

TEST_F(PmapTest, CollectWithoutDroppingFreesOnlyEmptyTables) {
  d.set_collect_drops_mappings(false);
  pmap_t p = pmap_create(d);
  pfn_t f = page(), g = page();
  ASSERT_EQ(pmap_enter(p, kA, f, VM_PROT_DEFAULT), KERN_SUCCESS);
  ASSERT_EQ(pmap_enter(p, kC, g, VM_PROT_DEFAULT), KERN_SUCCESS);
  EXPECT_EQ(p->pt_frame_count(), 7u);
  EXPECT_EQ(pmap_collect(p), 0u) << "nothing is empty yet";
  pmap_remove(p, kC, kC + kPageSize);
  uint32_t free0 = m.memory().free_count();
  EXPECT_EQ(pmap_collect(p), 3u) << "kC's PDPT, PD and PT";
  EXPECT_EQ(m.memory().free_count(), free0 + 3);
  EXPECT_EQ(p->pt_frame_count(), 4u);
  EXPECT_EQ(pmap_extract(p, kA), f) << "kA still mapped";
  EXPECT_EQ(d.stats().collects, 1u + 1u);
  pmap_destroy(p);
}

TEST_F(PmapTest, CollectAsMachDoesDropsMappingsAndFoldsTheirBits) {
  pmap_t p = pmap_create(d);
  pfn_t f = page(), g = page();
  ASSERT_EQ(pmap_enter(p, kA, f, VM_PROT_DEFAULT), KERN_SUCCESS);
  ASSERT_EQ(pmap_enter(p, kB, g, VM_PROT_DEFAULT), KERN_SUCCESS);
  pmap_activate(p, 1);
  ASSERT_EQ(store(1, kA, 7), KERN_SUCCESS);
  uint64_t sd = d.stats().shootdowns;
  EXPECT_EQ(pmap_collect(p), 5u) << "the shared PDPT, and a PD and a PT for each page";
  EXPECT_EQ(p->pt_frame_count(), 1u) << "only the PML4 is left";
  EXPECT_EQ(d.stats().shootdowns, sd + 2) << "each removed mapping shot down on CPU 1";
  EXPECT_EQ(pmap_extract(p, kA), std::nullopt);
  EXPECT_TRUE(d.mappings_of(f).empty());
  EXPECT_TRUE(d.pmap_is_modified(f)) << "the write survives in the attributes";
  EXPECT_FALSE(d.pmap_is_referenced(g));
  EXPECT_EQ(store(1, kA, 8), KERN_INVALID_ADDRESS) << "the VM would refault it";
  ASSERT_EQ(pmap_enter(p, kA, f, VM_PROT_DEFAULT), KERN_SUCCESS);
  uint8_t v;
  ASSERT_EQ(load(1, kA, &v), KERN_SUCCESS);
  EXPECT_EQ(v, 7) << "contents untouched by collect";
  pmap_deactivate(p, 1);
  pmap_destroy(p);
}

TEST_F(PmapTest, WhatIfFramesRunOutHalfWayThroughEnter) {
  pmap_t p = pmap_create(d);
  pfn_t f = page();
  ASSERT_EQ(pmap_enter(p, kA, f, VM_PROT_DEFAULT), KERN_SUCCESS);
  // Leave exactly two free frames; kC needs three new tables.
  std::vector<pfn_t> hog;
  while (m.memory().free_count() > 2) hog.push_back(m.memory().alloc_frame(FrameUse::VmPage));
  std::vector<uint8_t> before(m.memory().frame(0), m.memory().frame(0) + 64 * kPageSize);
  EXPECT_EQ(pmap_enter(p, kC, f, VM_PROT_DEFAULT), KERN_RESOURCE_SHORTAGE);
  EXPECT_EQ(m.memory().free_count(), 2u);
  EXPECT_EQ(pmap_extract(p, kC), std::nullopt);
  EXPECT_EQ(d.mappings_of(f).size(), 1u);
  EXPECT_EQ(std::vector<uint8_t>(m.memory().frame(0), m.memory().frame(0) + 64 * kPageSize), before)
      << "not a byte of memory changed";
  // kB shares the PDPT with kA: needs a PD and a PT, which fit.
  EXPECT_EQ(pmap_enter(p, kB, f, VM_PROT_DEFAULT), KERN_SUCCESS);
  EXPECT_EQ(m.memory().free_count(), 0u);
  EXPECT_EQ(pmap_create(d), nullptr) << "no frame for a PML4";
  EXPECT_EQ(pmap_enter(p, kA2, f, VM_PROT_READ), KERN_SUCCESS) << "no table needed";
  for (pfn_t h : hog) m.memory().free_frame(h);
  pmap_destroy(p);
}

TEST_F(PmapTest, ActivationLoadsCr3AndTracksCpus) {
  pmap_t p = pmap_create(d), q = pmap_create(d);
  ASSERT_EQ(pmap_enter(p, kA, page(), VM_PROT_DEFAULT), KERN_SUCCESS);
  pmap_activate(p, 0);
  pmap_activate(p, 2);
  EXPECT_EQ(p->active_cpus(), 0b101u);
  EXPECT_EQ(m.cpu(0).cr3, p->cr3());
  EXPECT_EQ(d.active_on(2), p);
  uint8_t v;
  ASSERT_EQ(load(0, kA, &v), KERN_SUCCESS);
  pmap_activate(p, 0);
  EXPECT_TRUE(cached(0, kA)) << "re-activating the loaded pmap is a no-op";
  pmap_activate(q, 0);
  EXPECT_EQ(p->active_cpus(), 0b100u) << "switching CPU 0 to q drops p there";
  EXPECT_EQ(q->active_cpus(), 0b001u);
  EXPECT_FALSE(cached(0, kA)) << "the CR3 load flushed";
  EXPECT_EQ(load(0, kA, &v), KERN_INVALID_ADDRESS);
  pmap_deactivate(p, 2);
  EXPECT_EQ(m.cpu(2).cr3, machine::kEmptyCr3);
  EXPECT_EQ(d.active_on(2), nullptr);
  pmap_deactivate(q, 0);
  pmap_destroy(q);
  pmap_destroy(p);
}

TEST_F(PmapTest, DestroyReturnsEveryTableFrame) {
  uint32_t free0 = m.memory().free_count();
  pmap_t p = pmap_create(d);
  pfn_t f = page();
  for (uint64_t va : {kA, kA2, kB, kC}) ASSERT_EQ(pmap_enter(p, va, f, VM_PROT_READ), KERN_SUCCESS);
  pmap_destroy(p);
  EXPECT_EQ(m.memory().free_count(), free0 - 1) << "only the data page is still allocated";
  EXPECT_EQ(d.stats().pt_frames, 0u);
  EXPECT_TRUE(d.pmaps().empty());
}

TEST_F(PmapTest, ZeroAndCopyPage) {
  pfn_t a = page(0x77), b = page(0x11);
  d.pmap_copy_page(a, b);
  EXPECT_EQ(m.memory().frame(b)[4095], 0x77);
  d.pmap_zero_page(a);
  EXPECT_EQ(m.memory().frame(a)[0], 0);
  EXPECT_EQ(m.memory().frame(a)[4095], 0);
  EXPECT_FALSE(d.pmap_is_modified(a)) << "zeroing does not touch the modify attribute";
}

TEST_F(PmapTest, RemoveOfAHugeSparseRangeSkipsAbsentTables) {
  pmap_t p = pmap_create(d);
  ASSERT_EQ(pmap_enter(p, kUserMax - kPageSize, page(), VM_PROT_DEFAULT), KERN_SUCCESS);
  ASSERT_EQ(pmap_enter(p, kA, page(), VM_PROT_DEFAULT), KERN_SUCCESS);
  pmap_remove(p, kA + kPageSize, kUserMax - kPageSize);
  EXPECT_EQ(p->resident_count(), 2u);
  pmap_remove(p, 0, ~0ull);
  EXPECT_EQ(p->resident_count(), 0u);
  pmap_destroy(p);
}

TEST(PmapDeath, EnterOutsideUserSpaceIsAContractFailure) {
  Machine m(16, 1, 2);
  PmapDomain d(m);
  pmap_t p = pmap_create(d);
  pfn_t f = m.memory().alloc_frame(FrameUse::VmPage);
  EXPECT_DEATH(pmap_enter(p, 0x1000, f, VM_PROT_READ), "outside user space");
  EXPECT_DEATH(pmap_enter(p, kA, m.memory().alloc_frame(FrameUse::PageTable), VM_PROT_READ),
               "not a VM page");
}

}  // namespace
}  // namespace vmfuzz::pmap
