// physical_memory_test.cc — frames, the LIFO allocator and the frame accounting.
#include <gtest/gtest.h>

#include "vm/machine/machine.h"

namespace vmfuzz::machine {
namespace {

TEST(PhysicalMemory, FramesStartAsJunkNotZero) {
  PhysicalMemory m(2);
  EXPECT_EQ(m.frame(0)[0], PhysicalMemory::kJunkByte);
  EXPECT_EQ(m.frame(1)[kPageSize - 1], PhysicalMemory::kJunkByte);
}

TEST(PhysicalMemory, WhatIfAFrameIsFreedAndAllocatedAgain) {
  PhysicalMemory m(8);
  pfn_t a = m.alloc_frame(FrameUse::VmPage);
  pfn_t b = m.alloc_frame(FrameUse::VmPage);
  EXPECT_EQ(a, 0u);
  EXPECT_EQ(b, 1u);
  m.frame(a)[7] = 0x42;
  m.free_frame(a);
  pfn_t c = m.alloc_frame(FrameUse::PageTable);
  EXPECT_EQ(c, a) << "LIFO: the frame just freed comes back first";
  EXPECT_EQ(m.frame(c)[7], 0x42) << "and is not zeroed by the allocator";
  EXPECT_EQ(m.use_of(c), FrameUse::PageTable);
}

TEST(PhysicalMemory, AccountingAddsUp) {
  PhysicalMemory m(5);
  pfn_t f[5];
  for (int i = 0; i < 5; i++) f[i] = m.alloc_frame(i % 2 ? FrameUse::PageTable : FrameUse::VmPage);
  EXPECT_EQ(m.alloc_frame(FrameUse::VmPage), kNoFrame);
  EXPECT_EQ(m.free_count(), 0u);
  EXPECT_EQ(m.count_of(FrameUse::VmPage), 3u);
  EXPECT_EQ(m.count_of(FrameUse::PageTable), 2u);
  m.free_frame(f[1]);
  EXPECT_EQ(m.count_of(FrameUse::PageTable), 1u);
  EXPECT_EQ(m.count_of(FrameUse::Free), 1u);
  EXPECT_EQ(m.free_count(), 1u);
}

TEST(PhysicalMemory, TheSameCallsGiveTheSameFrames) {
  auto run = [] {
    PhysicalMemory m(16);
    std::vector<pfn_t> got;
    for (int i = 0; i < 40; i++) {
      if (i % 3 == 2 && !got.empty()) {
        m.free_frame(got[size_t(i) % got.size()]);
        got.erase(got.begin() + long(size_t(i) % got.size()));
      } else {
        got.push_back(m.alloc_frame(FrameUse::VmPage));
      }
    }
    return got;
  };
  EXPECT_EQ(run(), run());
}

TEST(PhysicalMemoryDeath, FreeingTwiceIsAContractFailure) {
  PhysicalMemory m(2);
  pfn_t f = m.alloc_frame(FrameUse::VmPage);
  m.free_frame(f);
  EXPECT_DEATH(m.free_frame(f), "frame freed twice");
}

TEST(PhysicalMemory, DeviceFramesSitAboveRamAndAreNeverAllocated) {
  PhysicalMemory m(3, 2);
  EXPECT_EQ(m.ram_frame_count(), 3u);
  EXPECT_EQ(m.frame_count(), 5u);
  EXPECT_EQ(m.device_base(), 3u);
  EXPECT_EQ(m.use_of(3), FrameUse::Device);
  EXPECT_EQ(m.count_of(FrameUse::Device), 2u);
  EXPECT_EQ(m.frame(4)[kPageSize - 1], 0) << "device memory reads zero until written";
  m.frame(3)[0] = 0x77;
  EXPECT_EQ(m.frame(2)[0], PhysicalMemory::kJunkByte) << "RAM is junk, whatever the device did";
  EXPECT_EQ(m.frame(3)[0], 0x77);
  for (int i = 0; i < 3; i++) EXPECT_LT(m.alloc_frame(FrameUse::VmPage), 3u);
  EXPECT_EQ(m.alloc_frame(FrameUse::VmPage), kNoFrame);
  EXPECT_EQ(m.free_count(), 0u);
}

TEST(PhysicalMemoryDeath, FreeingADeviceFrameIsAContractFailure) {
  PhysicalMemory m(1, 1);
  EXPECT_DEATH(m.free_frame(1), "device frame");
}

TEST(PhysicalMemory, EntriesAreLittleEndianWords) {
  PhysicalMemory m(1);
  m.write_entry(0, 3, 0x0102030405060708ull);
  EXPECT_EQ(m.frame(0)[24], 0x08);
  EXPECT_EQ(m.read_entry(0, 3), 0x0102030405060708ull);
}

}  // namespace
}  // namespace vmfuzz::machine
