// cow_representations_test.cc — the leak-direction checks of Linux's own COW selftest
// (tools/testing/selftests/mm/cow.c), generalised: N processes, and each page
// representation this kernel can be brought to, confirmed through /proc/PID/pagemap (or
// smaps for THP) before the checks run, or the test skips saying which representation
// could not be reached and why.
//
// The checks, after a fork tree of N processes (a chain t0 -> t1 -> ... and a fan from
// t0), each writing its own marker into the shared-before-fork page:
//   parent to child: no process sees a write made by its ancestor after the fork;
//   child to parent: no process sees a write made by a descendant or a sibling;
//   and every process still sees, everywhere it did not write, the bytes from before.
// Representations: fresh anonymous (present, exclusive), after an mprotect round trip
// (r-- then rw-), anonymous after MADV_PAGEOUT (swapped: needs swap, never enabled here;
// docs/linux.md says how to enable zram), a MAP_SHARED memfd page after MADV_PAGEOUT (not
// present; the page cache keeps it), a THP (MADV_HUGEPAGE), and a THP partially
// mprotected (split).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "linux/linux_system.h"

namespace vmfuzz::linux_backend {
namespace {

constexpr uint64_t kBase = 0x40000000;  // 1 GiB: 2 MiB aligned, far from the helper's image
constexpr uint64_t kThp = 2ull << 20;

uint64_t pagemap_entry(pid_t pid, uint64_t va) {
  int fd = open(("/proc/" + std::to_string(pid) + "/pagemap").c_str(), O_RDONLY);
  uint64_t e = 0;
  if (fd >= 0) {
    if (pread(fd, &e, 8, static_cast<off_t>(va / kPageSize * 8)) != 8) e = 0;
    close(fd);
  }
  return e;
}
bool is_present(uint64_t e) { return (e >> 63) & 1; }
bool is_swapped(uint64_t e) { return (e >> 62) & 1; }
bool is_exclusive(uint64_t e) { return (e >> 56) & 1; }

/// AnonHugePages (kB) of the VMA containing va in pid.
long anon_huge_kb(pid_t pid, uint64_t va) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    unsigned long long a, b;
    if (std::sscanf(line.c_str(), "%llx-%llx ", &a, &b) == 2 && line.find(':') > line.find('-')) {
      inside = a <= va && va < b;
      continue;
    }
    long kb;
    if (inside && std::sscanf(line.c_str(), "AnonHugePages: %ld kB", &kb) == 1) return kb;
  }
  return 0;
}

bool swap_enabled() {
  std::ifstream in("/proc/swaps");
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) lines++;
  return lines > 1;
}

std::vector<uint8_t> marker(unsigned t) { return std::vector<uint8_t>(8, static_cast<uint8_t>(0xa0 + t)); }

/// After `prepare` brought [kBase, kBase+len) of t0 to a representation, forks a chain and
/// a fan of `n` processes in all, each writing its marker at its own offset, and checks
/// both leak directions. `step` is the distance between the processes' offsets.
void check_leaks(LinuxSystem& sys, unsigned n, uint64_t len, uint64_t step) {
  const std::vector<uint8_t> before(8, 0x5b);
  // The chain t0 -> t1 -> ... -> t(n/2), then the fan t0 -> t(n/2+1) ... t(n-1).
  unsigned chain = n / 2;
  for (unsigned t = 1; t <= chain; t++) sys.fork(t - 1, t);
  for (unsigned t = chain + 1; t < n; t++) sys.fork(0, t);
  for (unsigned t = 0; t < n; t++) ASSERT_EQ(sys.write(t, kBase + t * step, marker(t), 0).kr, KERN_SUCCESS);
  for (unsigned t = 0; t < n; t++)
    for (unsigned u = 0; u < n; u++) {
      Access a = sys.read(t, kBase + u * step, 8, 0);
      ASSERT_EQ(a.kr, KERN_SUCCESS);
      EXPECT_EQ(a.bytes, t == u ? marker(t) : before)
          << "t" << t << " sees t" << u << "'s write (" << (u < t ? "parent/sibling to child" : "child to parent")
          << " leak)";
    }
  // Bytes nobody wrote after the fork are the bytes from before, in every process.
  for (unsigned t = 0; t < n; t++) EXPECT_EQ(sys.read(t, kBase + len - 8, 8, 0).bytes, before);
}

class CowRepresentations : public ::testing::TestWithParam<unsigned> {
 protected:
  void SetUp() override {
    if (std::optional<std::string> why = linux_backend_unavailable())
      GTEST_SKIP() << "the kernel lacks what the Linux backend needs: " << *why;
  }
  void fill(LinuxSystem& sys, uint64_t len) {
    std::vector<uint8_t> b(len, 0x5b);
    ASSERT_EQ(sys.write(0, kBase, b, 0).kr, KERN_SUCCESS);
  }
};

TEST_P(CowRepresentations, FreshAnonymousPagesLeakInNeitherDirection) {
  LinuxSystem sys{SystemConfig{}};
  sys.task_create(0);
  uint64_t a = kBase;
  ASSERT_EQ(sys.allocate(0, &a, 4 * kPageSize, false), KERN_SUCCESS);
  fill(sys, 4 * kPageSize);
  uint64_t e = pagemap_entry(sys.pid_of(0), kBase);
  ASSERT_TRUE(is_present(e) && is_exclusive(e)) << "not a present, exclusive anonymous page";
  check_leaks(sys, GetParam(), 4 * kPageSize, 8);
}

TEST_P(CowRepresentations, PagesAfterAnMprotectRoundTripLeakInNeitherDirection) {
  LinuxSystem sys{SystemConfig{}};
  sys.task_create(0);
  uint64_t a = kBase;
  ASSERT_EQ(sys.allocate(0, &a, 4 * kPageSize, false), KERN_SUCCESS);
  fill(sys, 4 * kPageSize);
  ASSERT_EQ(sys.protect(0, kBase, 4 * kPageSize, false, VM_PROT_READ), KERN_SUCCESS);
  ASSERT_EQ(sys.protect(0, kBase, 4 * kPageSize, false, VM_PROT_DEFAULT), KERN_SUCCESS);
  ASSERT_TRUE(is_present(pagemap_entry(sys.pid_of(0), kBase))) << "the round trip dropped the page";
  check_leaks(sys, GetParam(), 4 * kPageSize, 8);
}

TEST_P(CowRepresentations, SwappedOutAnonymousPagesLeakInNeitherDirection) {
  if (!swap_enabled()) GTEST_SKIP() << "no swap on this machine (never enabled by the tests; docs/linux.md: zram)";
  LinuxSystem sys{SystemConfig{}};
  sys.task_create(0);
  uint64_t a = kBase;
  ASSERT_EQ(sys.allocate(0, &a, 4 * kPageSize, false), KERN_SUCCESS);
  fill(sys, 4 * kPageSize);
  sys.advise(0, kBase, 4 * kPageSize, MADV_PAGEOUT);
  if (!is_swapped(pagemap_entry(sys.pid_of(0), kBase)))
    GTEST_SKIP() << "MADV_PAGEOUT left the page resident although swap exists";
  check_leaks(sys, GetParam(), 4 * kPageSize, 8);
}

TEST_P(CowRepresentations, CopiesOfAPagedOutSharedMemfdPageLeakInNeitherDirection) {
  LinuxSystem sys{SystemConfig{}};
  sys.task_create(0);
  std::vector<uint8_t> init(4 * kPageSize, 0x5b);
  sys.object_create(0, init.size(), CopyStrategy::None, true, init);
  uint64_t a = kBase;
  ASSERT_EQ(sys.map(0, &a, false, init.size(), 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy),
            KERN_SUCCESS);
  ASSERT_EQ(sys.read(0, kBase, 8, 0).kr, KERN_SUCCESS);  // fault it in, then page it out
  ASSERT_TRUE(is_present(pagemap_entry(sys.pid_of(0), kBase)));
  // MADV_PAGEOUT is best effort: a page still in another CPU's LRU batch is not isolated.
  for (int i = 0; i < 50 && is_present(pagemap_entry(sys.pid_of(0), kBase)); i++) {
    sys.advise(0, kBase, init.size(), MADV_PAGEOUT);
    if (is_present(pagemap_entry(sys.pid_of(0), kBase))) usleep(2000);
  }
  if (is_present(pagemap_entry(sys.pid_of(0), kBase)))
    GTEST_SKIP() << "MADV_PAGEOUT left the memfd page mapped after 50 tries (reclaim is best effort)";
  // inheritance copy of a shared mapping: each child gets a snapshot; t0 keeps the memfd.
  check_leaks(sys, GetParam(), init.size(), 8);
  EXPECT_EQ(sys.file(0, 0, 8).bytes, marker(0)) << "t0's write did not reach the memfd";
}

TEST_P(CowRepresentations, TransparentHugePagesLeakInNeitherDirection) {
  LinuxSystem sys{SystemConfig{}};
  sys.task_create(0);
  uint64_t a = kBase;
  ASSERT_EQ(sys.allocate(0, &a, kThp, false), KERN_SUCCESS);
  sys.advise(0, kBase, kThp, MADV_HUGEPAGE);
  fill(sys, kThp);
  if (anon_huge_kb(sys.pid_of(0), kBase) < 2048)
    GTEST_SKIP() << "the kernel gave no THP here (transparent_hugepage disabled or no free huge page)";
  check_leaks(sys, GetParam(), kThp, kThp / 8);
}

TEST_P(CowRepresentations, PartiallyMprotectedHugePagesLeakInNeitherDirection) {
  LinuxSystem sys{SystemConfig{}};
  sys.task_create(0);
  uint64_t a = kBase;
  ASSERT_EQ(sys.allocate(0, &a, kThp, false), KERN_SUCCESS);
  sys.advise(0, kBase, kThp, MADV_HUGEPAGE);
  fill(sys, kThp);
  if (anon_huge_kb(sys.pid_of(0), kBase) < 2048)
    GTEST_SKIP() << "the kernel gave no THP here (transparent_hugepage disabled or no free huge page)";
  ASSERT_EQ(sys.protect(0, kBase + kPageSize, kPageSize, false, VM_PROT_READ), KERN_SUCCESS);  // splits the PMD
  ASSERT_EQ(sys.protect(0, kBase + kPageSize, kPageSize, false, VM_PROT_DEFAULT), KERN_SUCCESS);
  check_leaks(sys, GetParam(), kThp, kThp / 8);
}

INSTANTIATE_TEST_SUITE_P(Processes, CowRepresentations, ::testing::Values(2u, 5u),
                         [](const auto& info) { return std::to_string(info.param) + "procs"; });

}  // namespace
}  // namespace vmfuzz::linux_backend
