// tlb_test.cc — the TLB: bounded, FIFO, deterministic, entries stay until invalidated.
#include <gtest/gtest.h>

#include "vm/machine/machine.h"

namespace vmfuzz::machine {
namespace {

TlbEntry entry(uint64_t vpn, pfn_t f) { return TlbEntry{vpn, f, true, true, false}; }

std::vector<uint64_t> vpns(const Tlb& t) {
  std::vector<uint64_t> v;
  for (const TlbEntry& e : t.entries()) v.push_back(e.vpn);
  return v;
}

TEST(Tlb, WhatIfItIsFullTheOldestFillGoes) {
  Tlb t(4);
  for (uint64_t v = 1; v <= 4; v++) t.insert(entry(v, pfn_t(v)));
  ASSERT_NE(t.lookup(1), nullptr);  // a lookup does not make 1 younger (FIFO, not LRU)
  t.insert(entry(5, 5));
  EXPECT_EQ(vpns(t), (std::vector<uint64_t>{2, 3, 4, 5}));
  EXPECT_EQ(t.lookup(1), nullptr);
  EXPECT_EQ(t.lookup(5)->frame, 5u);
}

TEST(Tlb, ARefillOfTheSameVpnReplacesAndBecomesNewest) {
  Tlb t(3);
  t.insert(entry(1, 10));
  t.insert(entry(2, 20));
  t.insert(entry(1, 11));
  EXPECT_EQ(vpns(t), (std::vector<uint64_t>{2, 1}));
  EXPECT_EQ(t.lookup(1)->frame, 11u);
  EXPECT_EQ(t.size(), 2u);
}

TEST(Tlb, InvalidateAndFlush) {
  Tlb t(4);
  t.insert(entry(1, 1));
  t.insert(entry(2, 2));
  t.invalidate(1);
  t.invalidate(99);  // absent: nothing happens
  EXPECT_EQ(vpns(t), (std::vector<uint64_t>{2}));
  t.flush();
  EXPECT_TRUE(t.entries().empty());
}

TEST(Tlb, CapacityZeroCachesNothing) {
  Tlb t(0);
  t.insert(entry(1, 1));
  EXPECT_EQ(t.lookup(1), nullptr);
}

}  // namespace
}  // namespace vmfuzz::machine
