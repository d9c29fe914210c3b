// tlb_test.cc — the TLB: bounded, FIFO, deterministic, entries stay until invalidated.
#include <gtest/gtest.h>

#include <algorithm>

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

// What if fills, refills, invalidations and flushes interleave long after the ring has
// wrapped? The TLB must hold exactly what a plain FIFO list would, in the same order.
TEST(Tlb, WhatIfTheRingWrapsManyTimesItStillMatchesAPlainFifoList) {
  for (unsigned cap : {1u, 2u, 3u, 5u, 16u}) {
    Tlb t(cap);
    std::vector<TlbEntry> model;  // front() is the oldest
    uint64_t x = 0x9e3779b97f4a7c15ull * (cap + 1);
    for (unsigned step = 0; step < 4000; step++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      const uint64_t vpn = x % (2 * cap + 3);
      const unsigned what = unsigned((x >> 20) % 16);
      auto it = std::find_if(model.begin(), model.end(),
                             [vpn](const TlbEntry& e) { return e.vpn == vpn; });
      if (what < 10) {
        if (it != model.end())
          model.erase(it);
        else if (model.size() == cap)
          model.erase(model.begin());
        model.push_back(entry(vpn, pfn_t(step)));
        t.insert(entry(vpn, pfn_t(step)));
      } else if (what < 15) {
        if (it != model.end()) model.erase(it);
        t.invalidate(vpn);
      } else {
        model.clear();
        t.flush();
      }
      ASSERT_EQ(t.size(), model.size()) << "cap " << cap << " step " << step;
      std::vector<TlbEntry> got = t.entries();
      for (size_t i = 0; i < model.size(); i++) {
        ASSERT_EQ(got[i].vpn, model[i].vpn) << "cap " << cap << " step " << step << " slot " << i;
        ASSERT_EQ(got[i].frame, model[i].frame) << "cap " << cap << " step " << step;
      }
      for (uint64_t v = 0; v < 2 * cap + 3; v++) {
        auto m = std::find_if(model.begin(), model.end(),
                              [v](const TlbEntry& e) { return e.vpn == v; });
        const TlbEntry* l = t.lookup(v);
        ASSERT_EQ(l != nullptr, m != model.end()) << "cap " << cap << " step " << step;
        if (l != nullptr) {
          ASSERT_EQ(l->frame, m->frame);
        }
      }
    }
  }
}

}  // namespace
}  // namespace vmfuzz::machine
