// access_test.cc — Machine::load/store: TLB hits and misses, stale entries, the dirty
// re-walk, fault delivery (CR2, error code, retry), fault loops, cross-page accesses.
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "tests/machine/test_tables.h"

namespace vmfuzz::machine {
namespace {

using testing::Chain;
using testing::kAll;

constexpr uint64_t kVa = 0x0000123456789000ull;

struct Fault {
  unsigned cpu;
  uint64_t cr2;
  uint32_t ec;
};

// A handler that records every fault and answers with `fix`.
struct RecordingHandler : FaultHandler {
  std::vector<Fault> faults;
  std::function<kern_return_t(const Fault&)> fix = [](const Fault&) { return KERN_INVALID_ADDRESS; };
  kern_return_t page_fault(unsigned cpu, uint64_t cr2, uint32_t ec) override {
    faults.push_back({cpu, cr2, ec});
    return fix(faults.back());
  }
};

struct AccessTest : ::testing::Test {
  Machine m{32, 2, 4};
  PhysicalMemory& mem = m.memory();
  Chain c = Chain::build(mem, kVa);
  RecordingHandler h;
  void SetUp() override {
    m.load_cr3(0, c.cr3());
    m.load_cr3(1, c.cr3());
    m.set_fault_handler(&h);
  }
  uint8_t byte(pfn_t f, uint64_t off) { return mem.frame(f)[off]; }
};

TEST_F(AccessTest, AStoreThenLoadRoundTripsThroughTheFrame) {
  const uint8_t data[] = {1, 2, 3, 4};
  AccessResult w = m.store(0, kVa + 0x10, data);
  EXPECT_EQ(w.kr, KERN_SUCCESS);
  EXPECT_EQ(w.done, 4u);
  EXPECT_EQ(byte(c.data, 0x12), 3);
  uint8_t out[4] = {};
  AccessResult r = m.load(1, kVa + 0x10, out);
  EXPECT_EQ(r.kr, KERN_SUCCESS);
  EXPECT_EQ(std::vector<uint8_t>(out, out + 4), std::vector<uint8_t>(data, data + 4));
  EXPECT_TRUE(h.faults.empty());
  EXPECT_EQ(m.stats().tlb_misses, 2u);  // one per CPU
}

TEST_F(AccessTest, WhatIfThePteChangesButTheTlbStillHoldsIt) {
  uint8_t out[1];
  mem.frame(c.data)[0] = 0xaa;
  ASSERT_EQ(m.load(0, kVa, out).kr, KERN_SUCCESS);  // fills CPU 0's TLB
  pfn_t other = testing::zeroed_frame(mem, FrameUse::VmPage);
  mem.frame(other)[0] = 0xbb;
  c.set_entry(mem, 3, pte_for_frame(other) | kAll);  // no invlpg
  ASSERT_EQ(m.load(0, kVa, out).kr, KERN_SUCCESS);
  EXPECT_EQ(out[0], 0xaa) << "the stale translation is still used";
  EXPECT_FALSE(m.tlb_coherent(nullptr)) << "and the invariant checker sees it";
  ASSERT_EQ(m.load(1, kVa, out).kr, KERN_SUCCESS);
  EXPECT_EQ(out[0], 0xbb) << "CPU 1 never cached it";
  m.invlpg(0, kVa + 0x123);
  ASSERT_EQ(m.load(0, kVa, out).kr, KERN_SUCCESS);
  EXPECT_EQ(out[0], 0xbb) << "after invlpg the new PTE is walked";
  std::string why;
  EXPECT_TRUE(m.tlb_coherent(&why)) << why;
}

TEST_F(AccessTest, ACr3LoadOrFlushDropsStaleEntries) {
  uint8_t out[1];
  ASSERT_EQ(m.load(0, kVa, out).kr, KERN_SUCCESS);
  ASSERT_EQ(m.load(1, kVa, out).kr, KERN_SUCCESS);
  c.set_entry(mem, 3, 0);  // unmapped behind the TLBs' backs
  EXPECT_EQ(m.load(0, kVa, out).kr, KERN_SUCCESS);
  m.load_cr3(0, c.cr3());
  EXPECT_EQ(m.load(0, kVa, out).kr, KERN_INVALID_ADDRESS);
  EXPECT_EQ(m.load(1, kVa, out).kr, KERN_SUCCESS);
  m.flush_tlb(1);
  EXPECT_EQ(m.load(1, kVa, out).kr, KERN_INVALID_ADDRESS);
}

TEST_F(AccessTest, WhatIfWriteRightsAreRemovedButTheTlbEntryIsWritable) {
  const uint8_t one[] = {1};
  ASSERT_EQ(m.store(0, kVa, one).kr, KERN_SUCCESS);
  c.set_entry(mem, 3, c.entry(mem, 3) & ~PTE_RW);
  EXPECT_EQ(m.store(0, kVa, one).kr, KERN_SUCCESS) << "stale writable dirty entry: the hazard";
  m.invlpg(0, kVa);
  AccessResult r = m.store(0, kVa, one);
  EXPECT_EQ(r.kr, KERN_INVALID_ADDRESS);  // the handler's answer
  ASSERT_EQ(h.faults.size(), 1u);
  EXPECT_EQ(h.faults[0].ec, PF_P | PF_W | PF_U);
}

TEST_F(AccessTest, AWriteThroughACleanEntryReWalksToSetDirty) {
  uint8_t out[1];
  const uint8_t one[] = {1};
  ASSERT_EQ(m.load(0, kVa, out).kr, KERN_SUCCESS);
  EXPECT_FALSE(c.entry(mem, 3) & PTE_D);
  ASSERT_EQ(m.tlb_coherent(nullptr), true);
  uint64_t walks = m.stats().walks;
  ASSERT_EQ(m.store(0, kVa, one).kr, KERN_SUCCESS);
  EXPECT_TRUE(c.entry(mem, 3) & PTE_D) << "the first write sets D";
  EXPECT_EQ(m.stats().dirty_rewalks, 1u);
  EXPECT_EQ(m.stats().walks, walks + 1);
  ASSERT_EQ(m.store(0, kVa, one).kr, KERN_SUCCESS);
  EXPECT_EQ(m.stats().dirty_rewalks, 1u) << "the entry is dirty now: no second re-walk";
  EXPECT_EQ(m.stats().walks, walks + 1);
}

TEST_F(AccessTest, WhatIfDIsClearedWhileTheTlbRemembersDirty) {
  const uint8_t one[] = {1};
  ASSERT_EQ(m.store(0, kVa, one).kr, KERN_SUCCESS);
  c.set_entry(mem, 3, c.entry(mem, 3) & ~PTE_D);  // a clear_modify without shootdown
  std::string why;
  EXPECT_FALSE(m.tlb_coherent(&why));
  EXPECT_NE(why.find("dirty"), std::string::npos) << why;
  ASSERT_EQ(m.store(0, kVa, one).kr, KERN_SUCCESS);
  EXPECT_FALSE(c.entry(mem, 3) & PTE_D) << "the write went through without setting D: lost";
  m.invlpg(0, kVa);
  ASSERT_EQ(m.store(0, kVa, one).kr, KERN_SUCCESS);
  EXPECT_TRUE(c.entry(mem, 3) & PTE_D) << "after a shootdown D is set again";
}

TEST_F(AccessTest, WhatIfTheReWalkFindsTheWriteRefused) {
  uint8_t out[1];
  const uint8_t one[] = {1};
  ASSERT_EQ(m.load(0, kVa, out).kr, KERN_SUCCESS);  // clean writable entry
  c.set_entry(mem, 3, c.entry(mem, 3) & ~PTE_RW);
  AccessResult r = m.store(0, kVa, one);
  EXPECT_EQ(r.kr, KERN_INVALID_ADDRESS);
  ASSERT_EQ(h.faults.size(), 1u);
  EXPECT_EQ(h.faults[0].ec, PF_P | PF_W | PF_U);
  EXPECT_EQ(byte(c.data, 0), 0) << "nothing was stored";
}

TEST_F(AccessTest, AFaultDeliversCr2AndTheErrorCodeThenRetries) {
  const uint64_t hole = kVa + 5 * kPageSize;
  pfn_t mapped = kNoFrame;
  h.fix = [&](const Fault& f) {
    mapped = c.map_more(mem, f.cr2 & ~(kPageSize - 1));
    return KERN_SUCCESS;
  };
  const uint8_t data[] = {9, 8};
  AccessResult r = m.store(1, hole + 0x7, data);
  EXPECT_EQ(r.kr, KERN_SUCCESS);
  ASSERT_EQ(h.faults.size(), 1u);
  EXPECT_EQ(h.faults[0].cpu, 1u);
  EXPECT_EQ(h.faults[0].cr2, hole + 0x7);
  EXPECT_EQ(h.faults[0].ec, PF_W | PF_U) << "not present, write, user";
  EXPECT_EQ(byte(mapped, 0x8), 8);
  EXPECT_EQ(m.stats().faults, 1u);
}

TEST_F(AccessTest, AFaultInvalidatesTheFaultingEntryBeforeTheRetry) {
  uint8_t out[1];
  c.set_entry(mem, 3, c.entry(mem, 3) & ~PTE_RW);
  ASSERT_EQ(m.load(0, kVa, out).kr, KERN_SUCCESS);  // caches a read-only entry
  c.set_entry(mem, 3, c.entry(mem, 3) | PTE_RW);    // rights raised, no invlpg
  h.fix = [](const Fault&) { return KERN_SUCCESS; };  // "nothing to do"
  const uint8_t one[] = {1};
  AccessResult r = m.store(0, kVa, one);
  EXPECT_EQ(r.kr, KERN_SUCCESS) << "the fault dropped the stale entry; the retry walks";
  EXPECT_EQ(h.faults.size(), 1u);
}

TEST_F(AccessTest, WhatIfTheHandlerLiesAboutFixingTheFault) {
  h.fix = [](const Fault&) { return KERN_SUCCESS; };
  uint8_t out[8];
  AccessResult r = m.load(0, kVa + 7 * kPageSize, out);
  EXPECT_TRUE(r.fault_loop);
  EXPECT_EQ(r.kr, KERN_FAILURE);
  EXPECT_EQ(r.fault_addr, kVa + 7 * kPageSize);
  EXPECT_EQ(r.done, 0u);
  EXPECT_EQ(h.faults.size(), size_t(Machine::kMaxRetries)) << "bounded, not forever";
}

TEST_F(AccessTest, ACrossPageAccessStopsAtTheFirstFaultingByte) {
  pfn_t second = c.map_more(mem, kVa + kPageSize);
  // kVa + 2 pages is unmapped; kVa + 3 pages is mapped but must not be touched.
  pfn_t fourth = c.map_more(mem, kVa + 3 * kPageSize);
  h.fix = [](const Fault&) { return KERN_PROTECTION_FAILURE; };
  std::vector<uint8_t> data(3 * kPageSize, 0x5a);
  AccessResult r = m.store(0, kVa + 0x800, data);
  EXPECT_EQ(r.kr, KERN_PROTECTION_FAILURE);
  EXPECT_EQ(r.fault_addr, kVa + 2 * kPageSize);
  EXPECT_EQ(r.done, 2 * kPageSize - 0x800);
  EXPECT_FALSE(r.fault_loop);
  EXPECT_EQ(byte(c.data, 0x7ff), 0) << "before the range";
  EXPECT_EQ(byte(c.data, 0x800), 0x5a);
  EXPECT_EQ(byte(second, kPageSize - 1), 0x5a);
  EXPECT_EQ(byte(fourth, 0), 0) << "nothing after the faulting byte";
  ASSERT_EQ(h.faults.size(), 1u);
  EXPECT_EQ(h.faults[0].cr2, kVa + 2 * kPageSize);
  // A load of the two mapped pages reads them in order.
  std::vector<uint8_t> out(kPageSize);
  mem.frame(second)[0] = 0x11;
  ASSERT_EQ(m.load(0, kVa + kPageSize / 2, out).kr, KERN_SUCCESS);
  EXPECT_EQ(out[kPageSize / 2 - 1], 0x5a);
  EXPECT_EQ(out[kPageSize / 2], 0x11);
}

TEST_F(AccessTest, WithoutAHandlerAFaultStopsWithInvalidAddress) {
  m.set_fault_handler(nullptr);
  uint8_t out[2];
  AccessResult r = m.load(0, kVa + kPageSize - 1, out);
  EXPECT_EQ(r.kr, KERN_INVALID_ADDRESS);
  EXPECT_EQ(r.fault_addr, kVa + kPageSize);
  EXPECT_EQ(r.done, 1u);
}

TEST_F(AccessTest, ASupervisorPageFaultsForUserAccessesEvenFromTheTlb) {
  c.set_entry(mem, 2, c.entry(mem, 2) & ~PTE_US);
  uint8_t out[1];
  AccessResult r = m.load(0, kVa, out);
  EXPECT_EQ(r.kr, KERN_INVALID_ADDRESS);
  ASSERT_EQ(h.faults.size(), 1u);
  EXPECT_EQ(h.faults[0].ec, PF_P | PF_U);
  // A non-user entry planted in the TLB is refused on a hit as well.
  m.cpu(1).tlb.insert(TlbEntry{kVa >> 12, c.data, true, false, true});
  EXPECT_EQ(m.load(1, kVa, out).kr, KERN_INVALID_ADDRESS);
  EXPECT_EQ(h.faults.back().ec, PF_P | PF_U);
  EXPECT_EQ(m.cpu(1).tlb.lookup(kVa >> 12), nullptr) << "the fault invalidated it";
}

TEST_F(AccessTest, ZeroLengthAccessesDoNothing) {
  AccessResult r = m.load(0, 0xdead0000, std::span<uint8_t>());
  EXPECT_EQ(r.kr, KERN_SUCCESS);
  EXPECT_TRUE(h.faults.empty());
}

TEST(Machine, CpusStartWithTheEmptyAddressSpace) {
  Machine m(4, 3, 2);
  EXPECT_EQ(m.cpu_count(), 3u);
  uint8_t out[1];
  EXPECT_EQ(m.load(2, 0x10000, out).kr, KERN_INVALID_ADDRESS);
  EXPECT_EQ(m.cpu(2).cr3, kEmptyCr3);
}

}  // namespace
}  // namespace vmfuzz::machine
