// invariants_test.cc — the checkers of harness/invariants.h fail on broken states.
//
// check_vm_invariants decides frames_accounted from the frames in use and scans every
// frame of the machine only to name the culprits; these tests break a healthy kernel in
// each way the scan names (a VM frame or a page-table frame lost, a free frame still
// held, a frame held twice, a page-table frame that is also a page) and require the
// violation, by name and by frame, then repair the state so the kernel tears down.
// Last, the machine's frame-buffer reuse: a new machine never sees an old one's bytes.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "harness/invariants.h"
#include "vm/kernel.h"

namespace vmfuzz::vm {
namespace {

constexpr uint64_t P = kPageSize;

class InvariantsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SystemConfig cfg;
    cfg.frames = 64;
    k = std::make_unique<Kernel>(cfg);
    k->task_create(0);
    uint64_t a = 0x10000;
    ASSERT_EQ(k->allocate(0, &a, 4 * P, false), KERN_SUCCESS);
    for (unsigned i = 0; i < 4; i++) {
      uint8_t b = uint8_t(0x40 + i);
      ASSERT_EQ(k->write(0, 0x10000 + i * P, {&b, 1}, 0).kr, KERN_SUCCESS);
    }
    ASSERT_EQ(violations(), "") << "the healthy state must pass";
  }

  void TearDown() override {
    EXPECT_EQ(violations(), "") << "the repaired state must pass";
    k->terminate(0);
    std::vector<Violation> v;
    check_teardown(*k, v);
    EXPECT_TRUE(v.empty());
  }

  // Every violation as "invariant: detail\n".
  std::string violations() {
    std::vector<Violation> v;
    check_vm_invariants(*k, v);
    std::string s;
    for (const auto& x : v) s += x.text() + "\n";
    return s;
  }

  machine::PhysicalMemory& mem() { return const_cast<machine::PhysicalMemory&>(k->machine().memory()); }
  VmSystem& sys() { return const_cast<VmSystem&>(k->system()); }
  // Every resident page, in frame order.
  std::vector<VmPage*> pages() {
    std::vector<VmPage*> out;
    for (VmPage* p : sys().page_of_frame)
      if (p != nullptr) out.push_back(p);
    return out;
  }

  std::unique_ptr<Kernel> k;
};

TEST_F(InvariantsTest, LostVmFrameIsNamed) {
  machine::pfn_t f = mem().alloc_frame(machine::FrameUse::VmPage);
  ASSERT_NE(f, machine::kNoFrame);
  EXPECT_NE(violations().find("frames_accounted: frame " + std::to_string(f) + ": VM frame owned by no page (lost)"),
            std::string::npos)
      << violations();
  mem().free_frame(f);
}

TEST_F(InvariantsTest, LostPageTableFrameIsNamed) {
  machine::pfn_t f = mem().alloc_frame(machine::FrameUse::PageTable);
  ASSERT_NE(f, machine::kNoFrame);
  EXPECT_NE(violations().find("frames_accounted: frame " + std::to_string(f) +
                              ": page-table frame of no live pmap (lost)"),
            std::string::npos)
      << violations();
  mem().free_frame(f);
}

TEST_F(InvariantsTest, FreeFrameStillHeldByAPageIsNamed) {
  VmPage* p = pages().at(0);
  machine::pfn_t f = p->frame;
  mem().free_frame(f);
  EXPECT_NE(violations().find("frames_accounted: frame " + std::to_string(f) + ": free but in use"),
            std::string::npos)
      << violations();
  // LIFO: the frame just freed is the next one handed out.
  ASSERT_EQ(mem().alloc_frame(machine::FrameUse::VmPage), f);
}

TEST_F(InvariantsTest, FrameHeldTwiceIsNamed) {
  std::vector<VmPage*> ps = pages();
  ASSERT_GE(ps.size(), 2u);
  machine::pfn_t own = ps[1]->frame;
  ps[1]->frame = ps[0]->frame;  // two pages, one frame; ps[1]'s own frame is now lost
  std::string v = violations();
  EXPECT_NE(v.find("page_in_one_object: frame " + std::to_string(ps[0]->frame) + ": held by object"),
            std::string::npos)
      << v;
  ps[1]->frame = own;
}

TEST_F(InvariantsTest, PageTableFrameThatIsAlsoAPageIsNamed) {
  machine::pfn_t pml4 = machine::pfn_t(k->task_pmap(0)->cr3() >> 12);
  ASSERT_EQ(sys().page_of_frame.at(pml4), nullptr);
  sys().page_of_frame[pml4] = pages().at(0);
  std::string v = violations();
  EXPECT_NE(v.find("frames_accounted: frame " + std::to_string(pml4) + ": page table and resident page"),
            std::string::npos)
      << v;
  EXPECT_NE(v.find("page_in_one_object: frame " + std::to_string(pml4) + ": frame table names a page in no live object"),
            std::string::npos)
      << v;
  sys().page_of_frame[pml4] = nullptr;
}

TEST_F(InvariantsTest, VmFrameCountedButUnmarkedIsNamed) {
  // A page whose frame the machine marks as a page table: neither "lost" count differs,
  // only the marks; the checker must still name it.
  VmPage* p = pages().at(0);
  machine::pfn_t f = p->frame;
  mem().free_frame(f);
  ASSERT_EQ(mem().alloc_frame(machine::FrameUse::PageTable), f);
  std::string v = violations();
  EXPECT_NE(v.find("frames_accounted: frame " + std::to_string(f)), std::string::npos) << v;
  mem().free_frame(f);
  ASSERT_EQ(mem().alloc_frame(machine::FrameUse::VmPage), f);
}

// A machine built after another one reuses its frame buffer (physical_memory.cc) but must
// still read kJunkByte in every frame it has not written.
TEST(FrameBufferReuse, NewMachineReadsJunkNotOldBytes) {
  {
    machine::PhysicalMemory big(16);
    for (machine::pfn_t f = 0; f < 16; f++) std::memset(big.frame(f), 0x55, P);
  }
  machine::PhysicalMemory small(8);
  for (machine::pfn_t f = 0; f < 8; f++)
    for (size_t i = 0; i < P; i += 511) ASSERT_EQ(small.frame(f)[i], machine::PhysicalMemory::kJunkByte) << f;
  std::memset(small.frame(3), 0x66, P);
  EXPECT_EQ(small.frame(3)[100], 0x66);
  EXPECT_EQ(small.frame(4)[100], machine::PhysicalMemory::kJunkByte);
}

TEST(FrameBufferReuse, MovedFromMachineGivesNothingBack) {
  machine::PhysicalMemory a(4);
  std::memset(a.frame(1), 0x77, P);
  machine::PhysicalMemory b(std::move(a));  // a is destroyed empty at the end of the test
  EXPECT_EQ(b.frame(1)[0], 0x77);
  EXPECT_EQ(b.frame(2)[0], machine::PhysicalMemory::kJunkByte);
}

}  // namespace
}  // namespace vmfuzz::vm
