// model_test.cc — the reference model against docs/language.md, rule by rule.
//
// Each test answers one question about the semantics, written above it. The expected
// values come from the text of docs/language.md ("detail N" below is its §Details N, "DN"
// its §Decisions), never from running the model: the model is the oracle, so these tests
// are the oracle's oracle.
#include "reference_model/model.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace vmfuzz::model {
namespace {

constexpr uint64_t P = kPageSize;
constexpr uint64_t kTop = 0xfffffffffffff000;  // the last page of the 64-bit space

std::vector<uint8_t> B(std::string_view s) { return {s.begin(), s.end()}; }
std::string S(const std::vector<uint8_t>& v) { return {v.begin(), v.end()}; }

class ModelTest : public ::testing::Test {
 protected:
  Model m{SystemConfig{}};
  void SetUp() override { m.task_create(0); }

  kern_return_t alloc(unsigned t, uint64_t addr, uint64_t size) {
    return m.allocate(t, &addr, size, false);
  }
  uint64_t alloc_any(unsigned t, uint64_t size) {
    uint64_t addr = 0;
    EXPECT_EQ(m.allocate(t, &addr, size, true), KERN_SUCCESS);
    return addr;
  }
  void put(unsigned t, uint64_t addr, std::string_view s) {
    Access a = m.write(t, addr, B(s), 0);
    ASSERT_EQ(a.kr, KERN_SUCCESS) << "write at " << std::hex << addr;
  }
  std::string get(unsigned t, uint64_t addr, uint64_t n) {
    Access a = m.read(t, addr, n, 0);
    EXPECT_EQ(a.kr, KERN_SUCCESS) << "read at " << std::hex << addr;
    return S(a.bytes);
  }
  std::vector<RegionInfo> regions(unsigned t) { return m.regions(t); }
  kern_return_t map(unsigned t, uint64_t addr, uint64_t size, unsigned obj, uint64_t off,
                    bool share, vm_prot_t prot = VM_PROT_DEFAULT, vm_prot_t max = VM_PROT_ALL,
                    vm_inherit_t inh = vm_inherit_t::Copy) {
    return m.map(t, &addr, false, size, obj, off, share, prot, max, inh);
  }
  Access file(unsigned obj, uint64_t off, uint64_t size) { return m.file(obj, off, size); }
  PeekStatus peek(unsigned t, uint64_t va) {
    std::array<uint8_t, kPageSize> buf{};
    return m.peek_page(t, va, buf);
  }
};

const std::string kZero4(4, '\0');

// ---- allocate --------------------------------------------------------------------------

// Does new memory read zero with protection rw-, maximum rwx and inheritance copy?
TEST_F(ModelTest, FreshMemoryIsZeroRwCopy) {
  ASSERT_EQ(alloc(0, 0x10000, 0x2000), KERN_SUCCESS);
  EXPECT_EQ(get(0, 0x10ffe, 4), kZero4);
  std::vector<RegionInfo> want{{0x10000, 0x12000, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy}};
  EXPECT_EQ(regions(0), want);
}

// Does allocate of size 0 succeed, change nothing and return address 0 (fixed and any)?
TEST_F(ModelTest, AllocateSizeZero) {
  uint64_t a = 0x12345;
  EXPECT_EQ(m.allocate(0, &a, 0, true), KERN_SUCCESS);
  EXPECT_EQ(a, 0u);
  a = 0x20000;
  EXPECT_EQ(m.allocate(0, &a, 0, false), KERN_SUCCESS);
  EXPECT_EQ(a, 0u);
  EXPECT_TRUE(regions(0).empty());
}

// Does an unaligned fixed allocate cover the smallest page range containing it (the end is
// rounded, not only the size)?
TEST_F(ModelTest, AllocateCoversSmallestPageRange) {
  uint64_t a = 0x10800;
  ASSERT_EQ(m.allocate(0, &a, 0x1000, false), KERN_SUCCESS);
  EXPECT_EQ(a, 0x10000u);
  ASSERT_EQ(regions(0).size(), 1u);
  EXPECT_EQ(regions(0)[0].start, 0x10000u);
  EXPECT_EQ(regions(0)[0].end, 0x12000u);
}

// Is a range whose end wraps past 2^64 (an end of exactly 2^64 included) refused with
// KERN_INVALID_ARGUMENT by allocate, deallocate, protect and inherit?
TEST_F(ModelTest, WrapIsInvalidArgumentForRangeOps) {
  const std::pair<uint64_t, uint64_t> wraps[] = {
      {kTop, P}, {0xffffffffffffffff, 1}, {0x10000, ~uint64_t{0}}, {kTop + 1, 0xfff},
      {kTop, 1}, {kTop + 1, 1}};  // the last two wrap only when the end is rounded up
  for (auto [addr, size] : wraps) {
    EXPECT_EQ(alloc(0, addr, size), KERN_INVALID_ARGUMENT) << std::hex << addr;
    EXPECT_EQ(m.deallocate(0, addr, size), KERN_INVALID_ARGUMENT);
    EXPECT_EQ(m.protect(0, addr, size, false, VM_PROT_READ), KERN_INVALID_ARGUMENT);
    EXPECT_EQ(m.inherit(0, addr, size, vm_inherit_t::None), KERN_INVALID_ARGUMENT);
  }
  // One byte short of wrapping is a (non-user) range, not a wrap.
  EXPECT_EQ(alloc(0, kTop - P, P), KERN_INVALID_ADDRESS);
  EXPECT_EQ(m.deallocate(0, kTop - P, P), KERN_SUCCESS);
}

// Is a fixed range outside [0x10000, 0x7ffffffff000) KERN_INVALID_ADDRESS, and are the
// first and last user pages allocatable?
TEST_F(ModelTest, FixedOutsideUserSpace) {
  EXPECT_EQ(alloc(0, 0, P), KERN_INVALID_ADDRESS);
  EXPECT_EQ(alloc(0, 0xf000, 0x2000), KERN_INVALID_ADDRESS);  // straddles the bottom
  EXPECT_EQ(alloc(0, kUserMax, P), KERN_INVALID_ADDRESS);
  EXPECT_EQ(alloc(0, kUserMax - P, 2 * P), KERN_INVALID_ADDRESS);  // straddles the top
  EXPECT_TRUE(regions(0).empty());
  EXPECT_EQ(alloc(0, kUserMin, P), KERN_SUCCESS);
  EXPECT_EQ(alloc(0, kUserMax - P, P), KERN_SUCCESS);
}

// Is overlap with anything mapped KERN_NO_SPACE, while an adjacent range is fine?
TEST_F(ModelTest, FixedOverlapIsNoSpace) {
  ASSERT_EQ(alloc(0, 0x20000, 0x2000), KERN_SUCCESS);
  EXPECT_EQ(alloc(0, 0x21000, 0x2000), KERN_NO_SPACE);
  EXPECT_EQ(alloc(0, 0x1f000, 0x2000), KERN_NO_SPACE);
  EXPECT_EQ(alloc(0, 0x1f000, 0x4000), KERN_NO_SPACE);  // swallows it
  EXPECT_EQ(alloc(0, 0x20fff, 1), KERN_NO_SPACE);
  EXPECT_EQ(alloc(0, 0x1f000, P), KERN_SUCCESS);
  EXPECT_EQ(alloc(0, 0x22000, P), KERN_SUCCESS);
}

// Does `any` take the lowest free page-aligned address >= 0x10000 that fits?
TEST_F(ModelTest, AnywhereIsLowestFit) {
  EXPECT_EQ(alloc_any(0, 1), 0x10000u);
  ASSERT_EQ(alloc(0, 0x13000, P), KERN_SUCCESS);
  EXPECT_EQ(alloc_any(0, 0x2000), 0x11000u);  // the gap [0x11000, 0x13000) fits exactly
  EXPECT_EQ(alloc_any(0, 1), 0x14000u);
  ASSERT_EQ(m.deallocate(0, 0x11000, P), KERN_SUCCESS);
  EXPECT_EQ(alloc_any(0, 0x1001), 0x15000u);  // two pages do not fit in the 1-page hole
  EXPECT_EQ(alloc_any(0, P), 0x11000u);
}

// For `any`, is only a size whose rounding overflows KERN_INVALID_ARGUMENT, any other size
// that does not fit KERN_NO_SPACE, and does the whole user space fit exactly?
TEST_F(ModelTest, AnywhereSizeLimits) {
  uint64_t a = 0;
  EXPECT_EQ(m.allocate(0, &a, kTop + 1, true), KERN_INVALID_ARGUMENT);
  EXPECT_EQ(m.allocate(0, &a, ~uint64_t{0}, true), KERN_INVALID_ARGUMENT);
  EXPECT_EQ(m.allocate(0, &a, kTop, true), KERN_NO_SPACE);
  EXPECT_EQ(m.allocate(0, &a, kUserMax - kUserMin + 1, true), KERN_NO_SPACE);
  EXPECT_EQ(m.allocate(0, &a, kUserMax - kUserMin, true), KERN_SUCCESS);
  EXPECT_EQ(a, kUserMin);
  EXPECT_EQ(m.allocate(0, &a, 1, true), KERN_NO_SPACE);
}

// ---- deallocate, protect, inherit ------------------------------------------------------

// Does deallocate ignore holes and ranges outside user space, and does memory allocated
// again where written memory was freed read zero?
TEST_F(ModelTest, DeallocateIgnoresHolesAndFreshMemoryIsZero) {
  ASSERT_EQ(alloc(0, 0x10000, 0x3000), KERN_SUCCESS);
  put(0, 0x11000, "abcd");
  put(0, 0x12000, "efgh");
  EXPECT_EQ(m.deallocate(0, 0x11000, P), KERN_SUCCESS);
  EXPECT_EQ(m.read(0, 0x11000, 1, 0).kr, KERN_INVALID_ADDRESS);
  EXPECT_EQ(get(0, 0x12000, 4), "efgh");
  EXPECT_EQ(m.deallocate(0, 0x11000, P), KERN_SUCCESS);       // already a hole
  EXPECT_EQ(m.deallocate(0, 0, 0x11000), KERN_SUCCESS);       // below user space too
  EXPECT_EQ(m.deallocate(0, kUserMax, 0x10000), KERN_SUCCESS);
  EXPECT_EQ(m.deallocate(0, 0x10000, 0), KERN_SUCCESS);       // size 0 changes nothing
  EXPECT_EQ(get(0, 0x12000, 4), "efgh");
  ASSERT_EQ(alloc(0, 0x11000, P), KERN_SUCCESS);
  EXPECT_EQ(get(0, 0x11000, 4), kZero4);
}

// If one mapped page of a protect would exceed its maximum, is the whole call
// KERN_PROTECTION_FAILURE with nothing changed, holes ignored otherwise?
TEST_F(ModelTest, ProtectBeyondMaxChangesNothing) {
  ASSERT_EQ(alloc(0, 0x10000, P), KERN_SUCCESS);
  ASSERT_EQ(alloc(0, 0x12000, P), KERN_SUCCESS);  // a hole at 0x11000
  ASSERT_EQ(m.protect(0, 0x12000, P, true, VM_PROT_READ), KERN_SUCCESS);
  auto before = regions(0);
  EXPECT_EQ(m.protect(0, 0x10000, 0x3000, false, VM_PROT_ALL), KERN_PROTECTION_FAILURE);
  EXPECT_EQ(regions(0), before);
  EXPECT_EQ(m.protect(0, 0x10000, 0x3000, false, VM_PROT_READ), KERN_SUCCESS);
  EXPECT_EQ(regions(0)[0].prot, VM_PROT_READ);
  EXPECT_EQ(m.protect(0, 0, 0x10000, false, VM_PROT_ALL), KERN_SUCCESS);  // outside: a hole
}

// Does `protect ... max` set max := prot and current := current ∩ prot, and refuse to
// raise a maximum (detail 8)?
TEST_F(ModelTest, ProtectMax) {
  ASSERT_EQ(alloc(0, 0x10000, P), KERN_SUCCESS);
  ASSERT_EQ(m.protect(0, 0x10000, P, true, VM_PROT_READ | VM_PROT_EXECUTE), KERN_SUCCESS);
  EXPECT_EQ(regions(0)[0].max_prot, VM_PROT_READ | VM_PROT_EXECUTE);
  EXPECT_EQ(regions(0)[0].prot, VM_PROT_READ);
  EXPECT_EQ(m.protect(0, 0x10000, P, true, VM_PROT_ALL), KERN_PROTECTION_FAILURE);
  EXPECT_EQ(m.protect(0, 0x10000, P, false, VM_PROT_DEFAULT), KERN_PROTECTION_FAILURE);
  EXPECT_EQ(m.protect(0, 0x10000, P, false, VM_PROT_EXECUTE), KERN_SUCCESS);
  EXPECT_EQ(m.protect(0, 0x10000, P, true, VM_PROT_NONE), KERN_SUCCESS);
  EXPECT_EQ(regions(0)[0].prot, VM_PROT_NONE);
  EXPECT_EQ(regions(0)[0].max_prot, VM_PROT_NONE);
}

// Does protect of part of a region split it, and do equal neighbours merge again in the
// regions() view?
TEST_F(ModelTest, RegionsMergeOnAttributes) {
  ASSERT_EQ(alloc(0, 0x10000, 0x3000), KERN_SUCCESS);
  ASSERT_EQ(alloc(0, 0x13000, P), KERN_SUCCESS);
  EXPECT_EQ(regions(0).size(), 1u);  // adjacent, equal attributes
  ASSERT_EQ(m.protect(0, 0x11000, P, false, VM_PROT_READ), KERN_SUCCESS);
  EXPECT_EQ(regions(0).size(), 3u);
  ASSERT_EQ(m.protect(0, 0x11000, P, false, VM_PROT_DEFAULT), KERN_SUCCESS);
  EXPECT_EQ(regions(0).size(), 1u);
  ASSERT_EQ(m.inherit(0, 0x12000, 0x10, vm_inherit_t::Share), KERN_SUCCESS);
  std::vector<RegionInfo> want{
      {0x10000, 0x12000, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy},
      {0x12000, 0x13000, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Share},
      {0x13000, 0x14000, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy}};
  EXPECT_EQ(regions(0), want);
}

// Does inherit ignore holes and ranges outside user space?
TEST_F(ModelTest, InheritIgnoresHoles) {
  ASSERT_EQ(alloc(0, 0x11000, P), KERN_SUCCESS);
  EXPECT_EQ(m.inherit(0, 0, 0x20000, vm_inherit_t::None), KERN_SUCCESS);
  EXPECT_EQ(regions(0)[0].inherit, vm_inherit_t::None);
  EXPECT_EQ(m.inherit(0, kUserMax, P, vm_inherit_t::Share), KERN_SUCCESS);
}

// ---- accesses --------------------------------------------------------------------------

// Does a write crossing pages land on both, and a read of it return it?
TEST_F(ModelTest, CrossPageWriteAndRead) {
  ASSERT_EQ(alloc(0, 0x10000, 0x2000), KERN_SUCCESS);
  put(0, 0x10ffe, "wxyz");
  EXPECT_EQ(get(0, 0x10ffc, 8), std::string("\0\0wxyz\0\0", 8));
  EXPECT_EQ(m.read(0, 0x10000, 0, 0).kr, KERN_SUCCESS);  // an empty access completes
}

// Does an access running into a hole transfer the bytes before it and fault with
// KERN_INVALID_ADDRESS at the first unmapped byte?
TEST_F(ModelTest, AccessStopsAtHole) {
  ASSERT_EQ(alloc(0, 0x10000, P), KERN_SUCCESS);
  put(0, 0x10ffe, "ab");
  Access r = m.read(0, 0x10ffe, 4, 0);
  EXPECT_EQ(r.kr, KERN_INVALID_ADDRESS);
  EXPECT_EQ(r.fault_addr, 0x11000u);
  EXPECT_EQ(S(r.bytes), "ab");
  Access w = m.write(0, 0x10ffd, B("XYZW"), 0);
  EXPECT_EQ(w.kr, KERN_INVALID_ADDRESS);
  EXPECT_EQ(w.fault_addr, 0x11000u);
  EXPECT_EQ(S(w.bytes), "XYZ");
  EXPECT_EQ(get(0, 0x10ffd, 3), "XYZ");
  Access u = m.read(0, 0x20000, 4, 0);
  EXPECT_EQ(u.kr, KERN_INVALID_ADDRESS);
  EXPECT_EQ(u.fault_addr, 0x20000u);
  EXPECT_TRUE(u.bytes.empty());
}

// What if an access starts near 2^64, far outside user space?
TEST_F(ModelTest, AccessNearTopOfAddressSpace) {
  Access r = m.read(0, 0xfffffffffffffff0, 0x20, 0);
  EXPECT_EQ(r.kr, KERN_INVALID_ADDRESS);
  EXPECT_EQ(r.fault_addr, 0xfffffffffffffff0u);
}

// Does write imply read for the MMU (-w- readable), while --x and --- are not readable and
// r-- is not writable, each a KERN_PROTECTION_FAILURE at the first byte of the page?
TEST_F(ModelTest, MmuPermissions) {
  ASSERT_EQ(alloc(0, 0x10000, 0x4000), KERN_SUCCESS);
  put(0, 0x10000, "w-only");
  ASSERT_EQ(m.protect(0, 0x10000, P, false, VM_PROT_WRITE), KERN_SUCCESS);
  ASSERT_EQ(m.protect(0, 0x11000, P, false, VM_PROT_EXECUTE), KERN_SUCCESS);
  ASSERT_EQ(m.protect(0, 0x12000, P, false, VM_PROT_NONE), KERN_SUCCESS);
  ASSERT_EQ(m.protect(0, 0x13000, P, false, VM_PROT_READ), KERN_SUCCESS);
  EXPECT_EQ(get(0, 0x10000, 6), "w-only");
  put(0, 0x10000, "W");
  Access x = m.read(0, 0x10ffe, 4, 0);
  EXPECT_EQ(x.kr, KERN_PROTECTION_FAILURE);
  EXPECT_EQ(x.fault_addr, 0x11000u);
  EXPECT_EQ(x.bytes.size(), 2u);
  EXPECT_EQ(m.read(0, 0x12000, 1, 0).kr, KERN_PROTECTION_FAILURE);
  EXPECT_EQ(m.write(0, 0x11000, B("a"), 0).kr, KERN_PROTECTION_FAILURE);
  EXPECT_EQ(m.read(0, 0x13000, 1, 0).kr, KERN_SUCCESS);
  Access w = m.write(0, 0x13000, B("a"), 0);
  EXPECT_EQ(w.kr, KERN_PROTECTION_FAILURE);
  EXPECT_EQ(w.fault_addr, 0x13000u);
}

// ---- vm_read and copyout ---------------------------------------------------------------

// Is a vm_read handle a snapshot, and does copyout map it at `any` with rw-/rwx/copy and
// return base + (addr & 0xfff), whatever the source's attributes?
TEST_F(ModelTest, VmReadSnapshotAndCopyout) {
  ASSERT_EQ(alloc(0, 0x10000, 0x2000), KERN_SUCCESS);
  put(0, 0x10123, "snap");
  ASSERT_EQ(m.protect(0, 0x10000, 0x2000, true, VM_PROT_READ), KERN_SUCCESS);
  ASSERT_EQ(m.inherit(0, 0x10000, 0x2000, vm_inherit_t::Share), KERN_SUCCESS);
  ASSERT_EQ(m.vm_read(0, 0x10123, 0x1000, 1), KERN_SUCCESS);  // touches two pages
  ASSERT_EQ(m.protect(0, 0x10000, P, false, VM_PROT_NONE), KERN_SUCCESS);
  ASSERT_EQ(m.deallocate(0, 0x10000, 0x2000), KERN_SUCCESS);  // the source goes away
  m.task_create(1);
  ASSERT_EQ(alloc(1, 0x10000, P), KERN_SUCCESS);
  uint64_t at = 0;
  ASSERT_EQ(m.copyout(1, 1, &at), KERN_SUCCESS);
  EXPECT_EQ(at, 0x11123u);
  EXPECT_EQ(get(1, 0x11123, 4), "snap");
  std::vector<RegionInfo> want{{0x10000, 0x13000, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy}};
  EXPECT_EQ(regions(1), want);  // merged with t1's own page: same attributes
}

// Does a source change after vm_read stay out of the handle?
TEST_F(ModelTest, VmReadIgnoresLaterSourceWrites) {
  ASSERT_EQ(alloc(0, 0x10000, P), KERN_SUCCESS);
  put(0, 0x10000, "old!");
  ASSERT_EQ(m.vm_read(0, 0x10000, P, 2), KERN_SUCCESS);
  put(0, 0x10000, "new!");
  uint64_t at = 0;
  ASSERT_EQ(m.copyout(0, 2, &at), KERN_SUCCESS);
  EXPECT_EQ(at, 0x11000u);
  EXPECT_EQ(get(0, at, 4), "old!");
  EXPECT_EQ(get(0, 0x10000, 4), "new!");
}

// Does vm_read refuse a wrapping range, a hole and an unreadable page, the first offence
// in address order deciding, with only `r` readable for kernel copies (detail 2)?
TEST_F(ModelTest, VmReadChecksInAddressOrder) {
  ASSERT_EQ(alloc(0, 0x10000, P), KERN_SUCCESS);
  ASSERT_EQ(alloc(0, 0x12000, 0x2000), KERN_SUCCESS);
  ASSERT_EQ(m.protect(0, 0x12000, P, false, VM_PROT_WRITE), KERN_SUCCESS);
  ASSERT_EQ(m.protect(0, 0x13000, P, false, VM_PROT_READ | VM_PROT_EXECUTE), KERN_SUCCESS);
  EXPECT_EQ(m.vm_read(0, kTop, P, 0), KERN_INVALID_ADDRESS);
  EXPECT_EQ(m.vm_read(0, 0xffffffffffffffff, 1, 0), KERN_INVALID_ADDRESS);
  EXPECT_EQ(m.vm_read(0, 0x10000, 0x3000, 0), KERN_INVALID_ADDRESS);     // hole first
  EXPECT_EQ(m.vm_read(0, 0x12000, 0x2000, 0), KERN_PROTECTION_FAILURE);  // -w- first
  EXPECT_EQ(m.vm_read(0, 0x13000, 0x2000, 0), KERN_INVALID_ADDRESS);     // r-x, then a hole
  EXPECT_EQ(m.vm_read(0, 0x13000, 0x1000, 0), KERN_SUCCESS);             // r-x is readable
  m.discard(0);
  ASSERT_EQ(m.protect(0, 0x13000, P, false, VM_PROT_EXECUTE), KERN_SUCCESS);
  EXPECT_EQ(m.vm_read(0, 0x13000, 1, 0), KERN_PROTECTION_FAILURE);  // --x is not
  ASSERT_EQ(m.protect(0, 0x12000, P, false, VM_PROT_READ), KERN_SUCCESS);
  EXPECT_EQ(m.vm_read(0, 0x11fff, 0x3000, 0), KERN_INVALID_ADDRESS);  // hole, then --x
  EXPECT_EQ(m.vm_read(0, 0x12000, 0x3000, 0), KERN_PROTECTION_FAILURE);  // --x, then hole
}

// Does a size-0 vm_read make an empty handle that copyout (address 0) and vm_write (any
// destination) accept as no-ops?
TEST_F(ModelTest, EmptyHandle) {
  EXPECT_EQ(m.vm_read(0, 0x12345, 0, 3), KERN_SUCCESS);
  uint64_t at = 99;
  EXPECT_EQ(m.copyout(0, 3, &at), KERN_SUCCESS);
  EXPECT_EQ(at, 0u);
  EXPECT_TRUE(regions(0).empty());
  EXPECT_EQ(m.vm_read(0, 0x12345, 0, 3), KERN_SUCCESS);
  EXPECT_EQ(m.vm_write(0, 0x777, 3), KERN_SUCCESS);
}

// Does copyout consume its handle even on KERN_NO_SPACE, returning address 0?
TEST_F(ModelTest, CopyoutNoSpaceConsumes) {
  ASSERT_EQ(alloc(0, 0x10000, P), KERN_SUCCESS);
  ASSERT_EQ(m.vm_read(0, 0x10000, P, 4), KERN_SUCCESS);
  m.task_create(1);
  ASSERT_EQ(alloc(1, kUserMin, kUserMax - kUserMin), KERN_SUCCESS);  // lazy: costs nothing
  uint64_t at = 7;
  EXPECT_EQ(m.copyout(1, 4, &at), KERN_NO_SPACE);
  EXPECT_EQ(at, 0u);
  EXPECT_EQ(m.vm_read(0, 0x10000, P, 4), KERN_SUCCESS);  // the name is free again
}

// ---- vm_write --------------------------------------------------------------------------

// Does vm_write overwrite whole pages, keep the destination's protection and inheritance,
// and leave the source of the handle alone?
TEST_F(ModelTest, VmWriteOverwrites) {
  ASSERT_EQ(alloc(0, 0x10000, 0x2000), KERN_SUCCESS);
  put(0, 0x10000, "src!");
  ASSERT_EQ(alloc(0, 0x20000, 0x2000), KERN_SUCCESS);
  put(0, 0x21ffc, "dst!");
  ASSERT_EQ(m.protect(0, 0x20000, 0x2000, false, VM_PROT_ALL), KERN_SUCCESS);
  ASSERT_EQ(m.inherit(0, 0x20000, 0x2000, vm_inherit_t::None), KERN_SUCCESS);
  ASSERT_EQ(m.vm_read(0, 0x10000, 0x2000, 0), KERN_SUCCESS);
  ASSERT_EQ(m.vm_write(0, 0x20000, 0), KERN_SUCCESS);
  EXPECT_EQ(get(0, 0x20000, 4), "src!");
  EXPECT_EQ(get(0, 0x21ffc, 4), kZero4);  // the whole page was replaced
  EXPECT_EQ(regions(0)[1].prot, VM_PROT_ALL);
  EXPECT_EQ(regions(0)[1].inherit, vm_inherit_t::None);
  put(0, 0x20000, "next");
  EXPECT_EQ(get(0, 0x10000, 4), "src!");
}

// Is vm_write refused for an unaligned handle (source address or size) or destination
// (KERN_INVALID_ARGUMENT), a destination hole or wrap (KERN_INVALID_ADDRESS) or a
// read-only page (KERN_PROTECTION_FAILURE), storing nothing and consuming the handle?
TEST_F(ModelTest, VmWriteRefusals) {
  ASSERT_EQ(alloc(0, 0x10000, 0x2000), KERN_SUCCESS);
  put(0, 0x10000, "AAAA");
  put(0, 0x11000, "BBBB");
  ASSERT_EQ(alloc(0, 0x20000, 0x2000), KERN_SUCCESS);
  ASSERT_EQ(m.protect(0, 0x21000, P, false, VM_PROT_READ), KERN_SUCCESS);
  auto check = [&](uint64_t src, uint64_t size, uint64_t dst, kern_return_t want) {
    ASSERT_EQ(m.vm_read(0, src, size, 5), KERN_SUCCESS);
    EXPECT_EQ(m.vm_write(0, dst, 5), want) << std::hex << src << " " << size << " " << dst;
  };
  check(0x10001, P, 0x20000, KERN_INVALID_ARGUMENT);    // detail 3: the handle's own address
  check(0x10000, 0x10, 0x20000, KERN_INVALID_ARGUMENT); // and its size
  check(0x10000, P, 0x20010, KERN_INVALID_ARGUMENT);    // the destination
  check(0x10000, P, 0x30000, KERN_INVALID_ADDRESS);
  check(0x10000, 0x2000, 0x1f000, KERN_INVALID_ADDRESS);  // the hole comes first
  check(0x10000, P, kTop, KERN_INVALID_ADDRESS);          // aligned, ends at 2^64
  check(0x10001, P, kTop + 1, KERN_INVALID_ARGUMENT);     // D2: alignment first
  check(0x10000, 0x2000, 0x20000, KERN_PROTECTION_FAILURE);  // second page r--
  EXPECT_EQ(get(0, 0x20000, 4), kZero4);                   // nothing stored
  check(0x10000, 0x2000, 0x21000, KERN_PROTECTION_FAILURE);  // r--, then a hole: r-- first
}

// Does vm_write into a destination shared with another task write the shared memory?
TEST_F(ModelTest, VmWriteIntoSharedDestination) {
  ASSERT_EQ(alloc(0, 0x10000, P), KERN_SUCCESS);
  put(0, 0x10000, "data");
  ASSERT_EQ(alloc(0, 0x20000, P), KERN_SUCCESS);
  ASSERT_EQ(m.inherit(0, 0x20000, P, vm_inherit_t::Share), KERN_SUCCESS);
  m.fork(0, 1);
  ASSERT_EQ(m.vm_read(0, 0x10000, P, 0), KERN_SUCCESS);
  ASSERT_EQ(m.vm_write(1, 0x20000, 0), KERN_SUCCESS);
  EXPECT_EQ(get(0, 0x20000, 4), "data");
  EXPECT_EQ(get(1, 0x20000, 4), "data");
}

// ---- vm_copy ---------------------------------------------------------------------------

// Does vm_copy behave like memmove when source and destination overlap, either way?
TEST_F(ModelTest, VmCopyIsMemmove) {
  ASSERT_EQ(alloc(0, 0x10000, 0x4000), KERN_SUCCESS);
  put(0, 0x10000, "p0");
  put(0, 0x11000, "p1");
  put(0, 0x12000, "p2");
  ASSERT_EQ(m.vm_copy(0, 0x10000, 0x3000, 0x11000), KERN_SUCCESS);  // forward overlap
  EXPECT_EQ(get(0, 0x10000, 2), "p0");
  EXPECT_EQ(get(0, 0x11000, 2), "p0");
  EXPECT_EQ(get(0, 0x12000, 2), "p1");
  EXPECT_EQ(get(0, 0x13000, 2), "p2");
  ASSERT_EQ(m.vm_copy(0, 0x11000, 0x3000, 0x10000), KERN_SUCCESS);  // backward overlap
  EXPECT_EQ(get(0, 0x10000, 2), "p0");
  EXPECT_EQ(get(0, 0x11000, 2), "p1");
  EXPECT_EQ(get(0, 0x12000, 2), "p2");
  EXPECT_EQ(get(0, 0x13000, 2), "p2");
  put(0, 0x12000, "xx");  // the copies are independent of each other
  EXPECT_EQ(get(0, 0x13000, 2), "p2");
}

// Is vm_copy copyin (source wrap, holes, readability) then overwrite (alignment, then the
// destination), as detail 1 says, and is size 0 a success whatever the addresses?
TEST_F(ModelTest, VmCopyCheckOrder) {
  ASSERT_EQ(alloc(0, 0x10000, 0x2000), KERN_SUCCESS);
  ASSERT_EQ(alloc(0, 0x20000, 0x2000), KERN_SUCCESS);
  ASSERT_EQ(m.protect(0, 0x11000, P, false, VM_PROT_WRITE), KERN_SUCCESS);
  ASSERT_EQ(m.protect(0, 0x21000, P, false, VM_PROT_READ), KERN_SUCCESS);
  EXPECT_EQ(m.vm_copy(0, kTop, P, 0x20001), KERN_INVALID_ADDRESS);      // source wrap
  EXPECT_EQ(m.vm_copy(0, 0x30001, P, 0x20001), KERN_INVALID_ADDRESS);   // source hole
  EXPECT_EQ(m.vm_copy(0, 0x11001, P, 0x20001), KERN_PROTECTION_FAILURE);  // -w- source
  EXPECT_EQ(m.vm_copy(0, 0x10001, 0x10, 0x20000), KERN_INVALID_ARGUMENT);  // unaligned src
  EXPECT_EQ(m.vm_copy(0, 0x10000, 0x10, 0x20000), KERN_INVALID_ARGUMENT);  // unaligned size
  EXPECT_EQ(m.vm_copy(0, 0x10000, P, 0x20800), KERN_INVALID_ARGUMENT);    // unaligned dst
  EXPECT_EQ(m.vm_copy(0, 0x10000, P, 0x30000), KERN_INVALID_ADDRESS);     // dst hole
  EXPECT_EQ(m.vm_copy(0, 0x10000, P, kTop), KERN_INVALID_ADDRESS);        // dst wrap
  EXPECT_EQ(m.vm_copy(0, 0x10000, P, 0x21000), KERN_PROTECTION_FAILURE);  // r-- dst
  EXPECT_EQ(m.vm_copy(0, 0x10000, 0x2000, 0x20800), KERN_PROTECTION_FAILURE);  // -w- source
  EXPECT_EQ(m.vm_copy(0, 0x10000, 0x1000, 0x1f000), KERN_INVALID_ADDRESS);
  EXPECT_EQ(m.vm_copy(0, 0x33333, 0, 0x44444), KERN_SUCCESS);
  EXPECT_EQ(m.vm_copy(0, kTop + 5, 0, 1), KERN_SUCCESS);
}

// ---- fork and terminate ----------------------------------------------------------------

// Does fork leave a hole for NONE, share one memory for SHARE and snapshot COPY both ways,
// keeping protection, maximum and inheritance?
TEST_F(ModelTest, ForkInheritance) {
  ASSERT_EQ(alloc(0, 0x10000, 0x3000), KERN_SUCCESS);
  ASSERT_EQ(m.inherit(0, 0x10000, P, vm_inherit_t::None), KERN_SUCCESS);
  ASSERT_EQ(m.inherit(0, 0x11000, P, vm_inherit_t::Share), KERN_SUCCESS);
  ASSERT_EQ(m.protect(0, 0x12000, P, true, VM_PROT_READ | VM_PROT_WRITE), KERN_SUCCESS);
  put(0, 0x11000, "shr0");
  put(0, 0x12000, "cpy0");
  m.fork(0, 1);
  std::vector<RegionInfo> want = regions(0);
  want.erase(want.begin());
  EXPECT_EQ(regions(1), want);
  EXPECT_EQ(m.read(1, 0x10000, 1, 0).kr, KERN_INVALID_ADDRESS);
  put(1, 0x11000, "shr1");
  EXPECT_EQ(get(0, 0x11000, 4), "shr1");
  put(0, 0x11000, "shr2");
  EXPECT_EQ(get(1, 0x11000, 4), "shr2");
  put(1, 0x12000, "cpy1");
  EXPECT_EQ(get(0, 0x12000, 4), "cpy0");
  put(0, 0x12000, "cpy2");
  EXPECT_EQ(get(1, 0x12000, 4), "cpy1");
}

// Does COPY inheritance snapshot a region whatever its protection (even ---)?
TEST_F(ModelTest, ForkCopyIgnoresProtection) {
  ASSERT_EQ(alloc(0, 0x10000, P), KERN_SUCCESS);
  put(0, 0x10000, "hide");
  ASSERT_EQ(m.protect(0, 0x10000, P, false, VM_PROT_NONE), KERN_SUCCESS);
  m.fork(0, 1);
  EXPECT_EQ(regions(1)[0].prot, VM_PROT_NONE);
  ASSERT_EQ(m.protect(1, 0x10000, P, false, VM_PROT_READ), KERN_SUCCESS);
  EXPECT_EQ(get(1, 0x10000, 4), "hide");
}

// Through a chain of forks, do shares stay one memory and copies stay separate snapshots,
// including a copy of shared memory and a share of copied memory?
TEST_F(ModelTest, ChainsOfForks) {
  ASSERT_EQ(alloc(0, 0x10000, 0x2000), KERN_SUCCESS);
  ASSERT_EQ(m.inherit(0, 0x10000, P, vm_inherit_t::Share), KERN_SUCCESS);
  put(0, 0x10000, "S0");
  put(0, 0x11000, "C0");
  m.fork(0, 1);                                                      // t1: S shared, C copied
  ASSERT_EQ(m.inherit(1, 0x11000, P, vm_inherit_t::Share), KERN_SUCCESS);
  ASSERT_EQ(m.inherit(1, 0x10000, P, vm_inherit_t::Copy), KERN_SUCCESS);
  put(1, 0x11000, "C1");
  m.fork(1, 2);  // t2: S copied from t1 (a snapshot of t0's shared memory), C shared with t1
  m.fork(2, 3);  // t3: t2's inheritance is t1's: S copy, C share (with t1 and t2)
  put(0, 0x10000, "S9");
  EXPECT_EQ(get(1, 0x10000, 2), "S9");
  EXPECT_EQ(get(2, 0x10000, 2), "S0");
  EXPECT_EQ(get(3, 0x10000, 2), "S0");
  put(3, 0x11000, "C3");
  EXPECT_EQ(get(0, 0x11000, 2), "C0");
  EXPECT_EQ(get(1, 0x11000, 2), "C3");
  EXPECT_EQ(get(2, 0x11000, 2), "C3");
  put(2, 0x10000, "S2");
  EXPECT_EQ(get(3, 0x10000, 2), "S0");
  EXPECT_EQ(get(1, 0x10000, 2), "S9");
  m.terminate(1);  // the shared memory lives on in its other sharers
  put(2, 0x11000, "C2");
  EXPECT_EQ(get(3, 0x11000, 2), "C2");
  m.task_create(1);  // the name may be reused after terminate
  EXPECT_TRUE(regions(1).empty());
}

// Is the model lazy: can it allocate 4 GiB, write both ends, fork it eight times and
// vm_read and copy it out, at no cost in proportion to the size?
TEST_F(ModelTest, HugeSparseMemoryIsFree) {
  constexpr uint64_t kFour = uint64_t{4} << 30;
  uint64_t base = alloc_any(0, kFour);
  put(0, base, "head");
  put(0, base + kFour - 4, "tail");
  for (unsigned t = 1; t <= 8; ++t) {
    m.fork(t - 1, t);
    put(t, base + t * P, "kid");
  }
  ASSERT_EQ(m.vm_read(8, base, kFour, 0), KERN_SUCCESS);
  uint64_t at = 0;
  ASSERT_EQ(m.copyout(8, 0, &at), KERN_SUCCESS);
  EXPECT_EQ(get(8, at + kFour - 4, 4), "tail");
  ASSERT_EQ(m.vm_copy(8, base, kFour, at), KERN_SUCCESS);
  EXPECT_EQ(get(8, at + 8 * P, 3), "kid");
  std::vector<uint64_t> pages;
  m.pages_of_interest(8, pages);
  EXPECT_EQ(pages.size(), 2u * (2 + 8));
  EXPECT_EQ(get(0, base + P, 3), std::string(3, '\0'));
}

// ---- memory objects --------------------------------------------------------------------

// Is an object's size rounded up to pages, its shorter initial contents zero-filled, and
// does `file` read inside the object only?
TEST_F(ModelTest, ObjectCreateAndFile) {
  m.object_create(0, 0x1001, CopyStrategy::Delay, true, B("init"));
  EXPECT_EQ(S(file(0, 0, 6).bytes), std::string("init\0\0", 6));
  EXPECT_EQ(file(0, 0x1ffc, 4).kr, KERN_SUCCESS);  // the rounded tail is inside
  EXPECT_EQ(file(0, 0x1ffc, 5).kr, KERN_INVALID_ARGUMENT);
  EXPECT_EQ(file(0, 0x2000, 0).kr, KERN_SUCCESS);
  EXPECT_EQ(file(0, 0x2001, 0).kr, KERN_INVALID_ARGUMENT);
  EXPECT_EQ(file(0, 4, ~uint64_t{0}).kr, KERN_INVALID_ARGUMENT);
  std::vector<uint64_t> pages;
  m.object_pages_of_interest(0, pages);
  EXPECT_EQ(pages, std::vector<uint64_t>{0});
}

// Does a `share` mapping read and write the object's store, and a `copy` mapping take a
// snapshot at map time that later writes on either side do not reach?
TEST_F(ModelTest, MapShareAndCopy) {
  m.object_create(0, 0x3000, CopyStrategy::None, false, B("obj0"));
  ASSERT_EQ(map(0, 0x10000, 0x3000, 0, 0, true), KERN_SUCCESS);
  ASSERT_EQ(map(0, 0x20000, 0x2000, 0, 0, false), KERN_SUCCESS);
  put(0, 0x10000, "shar");
  EXPECT_EQ(S(file(0, 0, 4).bytes), "shar");
  EXPECT_EQ(get(0, 0x20000, 4), "obj0");
  put(0, 0x20000, "copy");
  EXPECT_EQ(S(file(0, 0, 4).bytes), "shar");
  ASSERT_EQ(m.manager_write(0, 0x1ffe, B("mgr!")), KERN_SUCCESS);
  EXPECT_EQ(get(0, 0x11ffe, 4), "mgr!");
  EXPECT_EQ(get(0, 0x21ffe, 2), std::string(2, '\0'));
  ASSERT_EQ(map(0, 0x30000, P, 0, P, false), KERN_SUCCESS);  // a copy of the window at 0x1000
  EXPECT_EQ(get(0, 0x30ffe, 2), "mg");
}

// Does `map` run its own checks (all KERN_INVALID_ARGUMENT) before allocate's range codes,
// truncate a fixed address, round the size, and apply prot, max and inherit?
TEST_F(ModelTest, MapChecks) {
  m.object_create(0, 0x4000, CopyStrategy::Call, true, {});
  ASSERT_EQ(alloc(0, 0x20000, P), KERN_SUCCESS);
  EXPECT_EQ(map(0, 0x10000, 0, 0, 0, true), KERN_INVALID_ARGUMENT);
  EXPECT_EQ(map(0, 0, 0, 0, 0, true), KERN_INVALID_ARGUMENT);  // size 0 before the address
  EXPECT_EQ(map(0, 0x10000, P, 0, 0x800, true), KERN_INVALID_ARGUMENT);
  EXPECT_EQ(map(0, 0x10000, 0x4001, 0, 0, true), KERN_INVALID_ARGUMENT);  // window too long
  EXPECT_EQ(map(0, 0x10000, P, 0, 0x4000, true), KERN_INVALID_ARGUMENT);
  EXPECT_EQ(map(0, 0x20000, P, 0, 0x4000, true), KERN_INVALID_ARGUMENT);  // not NO_SPACE
  EXPECT_EQ(map(0, 0x10000, P, 0, 0, true, VM_PROT_ALL, VM_PROT_READ), KERN_INVALID_ARGUMENT);
  EXPECT_EQ(map(0, kTop, P, 0, 0, true), KERN_INVALID_ARGUMENT);   // ends at 2^64
  EXPECT_EQ(map(0, 0, P, 0, 0, true), KERN_INVALID_ADDRESS);
  EXPECT_EQ(map(0, kUserMax - P, 0x2000, 0, 0, true), KERN_INVALID_ADDRESS);
  EXPECT_EQ(map(0, 0x20000, P, 0, 0, false), KERN_NO_SPACE);
  EXPECT_TRUE(regions(0).size() == 1);
  uint64_t at = 0x10fff;
  ASSERT_EQ(m.map(0, &at, false, 0x1001, 0, 0x1000, true, VM_PROT_READ,
                  VM_PROT_READ | VM_PROT_EXECUTE, vm_inherit_t::Share),
            KERN_SUCCESS);
  EXPECT_EQ(at, 0x10000u);
  std::vector<RegionInfo> want{
      {0x10000, 0x12000, VM_PROT_READ, VM_PROT_READ | VM_PROT_EXECUTE, vm_inherit_t::Share},
      {0x20000, 0x21000, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy}};
  EXPECT_EQ(regions(0), want);
  at = 0;
  ASSERT_EQ(m.map(0, &at, true, 0x4000, 0, 0, false, VM_PROT_DEFAULT, VM_PROT_ALL,
                  vm_inherit_t::Copy),
            KERN_SUCCESS);
  EXPECT_EQ(at, 0x12000u);  // the lowest fit: [0x12000, 0x16000)
  ASSERT_EQ(m.destroy(0), KERN_SUCCESS);
  EXPECT_EQ(map(0, 0x30000, P, 0, 0, false), KERN_INVALID_ARGUMENT);
}

// Is manager_write refused unless the strategy is none, or outside the object?
TEST_F(ModelTest, ManagerWriteRules) {
  m.object_create(0, P, CopyStrategy::Call, true, {});
  m.object_create(1, P, CopyStrategy::Delay, true, {});
  m.object_create(2, P, CopyStrategy::None, true, {});
  EXPECT_EQ(m.manager_write(0, 0, B("x")), KERN_INVALID_ARGUMENT);
  EXPECT_EQ(m.manager_write(1, 0, B("x")), KERN_INVALID_ARGUMENT);
  EXPECT_EQ(m.manager_write(2, 0xfff, B("xy")), KERN_INVALID_ARGUMENT);
  EXPECT_EQ(m.manager_write(2, 0xffe, B("xy")), KERN_SUCCESS);
  EXPECT_EQ(S(file(2, 0xffe, 2).bytes), "xy");
  EXPECT_EQ(S(file(1, 0, 1).bytes), std::string(1, '\0'));
}

// Does vm_write into a shared mapping of an object reach the manager's store?
TEST_F(ModelTest, VmWriteReachesObjectStore) {
  m.object_create(0, P, CopyStrategy::Delay, true, {});
  ASSERT_EQ(map(0, 0x10000, P, 0, 0, true), KERN_SUCCESS);
  ASSERT_EQ(alloc(0, 0x20000, P), KERN_SUCCESS);
  put(0, 0x20010, "via vm_write");
  ASSERT_EQ(m.vm_read(0, 0x20000, P, 0), KERN_SUCCESS);
  ASSERT_EQ(m.vm_write(0, 0x10000, 0), KERN_SUCCESS);
  EXPECT_EQ(S(file(0, 0x10, 12).bytes), "via vm_write");
}

// After destroy, are the store and every shared mapping unknown (peek, read, file, the
// interest lists), while copies taken before keep their contents, and are manager_write,
// map and a second destroy KERN_INVALID_ARGUMENT?
TEST_F(ModelTest, DestroyMakesSharedUnknown) {
  m.object_create(0, 0x2000, CopyStrategy::None, true, B("kept"));
  ASSERT_EQ(map(0, 0x10000, 0x2000, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL,
                vm_inherit_t::Share),
            KERN_SUCCESS);
  ASSERT_EQ(map(0, 0x20000, 0x2000, 0, 0, false), KERN_SUCCESS);  // copy
  ASSERT_EQ(m.vm_read(0, 0x10000, 0x2000, 0), KERN_SUCCESS);      // copy
  m.fork(0, 1);                                                   // t1 shares 0x10000
  ASSERT_EQ(m.inherit(0, 0x10000, 0x2000, vm_inherit_t::Copy), KERN_SUCCESS);
  m.fork(0, 2);                                                   // t2 copies it
  ASSERT_EQ(m.destroy(0), KERN_SUCCESS);

  EXPECT_EQ(peek(0, 0x10000), PeekStatus::Unknown);
  EXPECT_EQ(peek(1, 0x11000), PeekStatus::Unknown);
  EXPECT_EQ(peek(0, 0x20000), PeekStatus::Mapped);
  EXPECT_EQ(peek(2, 0x10000), PeekStatus::Mapped);
  EXPECT_EQ(peek(0, 0x30000), PeekStatus::Unmapped);
  Access r = m.read(0, 0x10ffe, 4, 0);
  EXPECT_EQ(r.kr, KERN_SUCCESS);
  EXPECT_EQ(r.unknown, std::vector<uint8_t>(4, 1));
  Access w = m.write(1, 0x10000, B("late"), 0);  // D3, D4: stays unknown
  EXPECT_EQ(w.unknown, std::vector<uint8_t>(4, 1));
  EXPECT_EQ(peek(1, 0x10000), PeekStatus::Unknown);
  Access f = file(0, 0, 4);
  EXPECT_EQ(f.kr, KERN_SUCCESS);
  EXPECT_EQ(f.unknown, std::vector<uint8_t>(4, 1));
  std::array<uint8_t, kPageSize> buf{};
  EXPECT_EQ(m.peek_object_page(0, P, buf), PeekStatus::Unknown);

  EXPECT_EQ(get(0, 0x20000, 4), "kept");
  EXPECT_EQ(get(2, 0x10000, 4), "kept");
  uint64_t at = 0;
  ASSERT_EQ(m.copyout(0, 0, &at), KERN_SUCCESS);
  EXPECT_EQ(get(0, at, 4), "kept");

  std::vector<uint64_t> pages;  // unknown pages are not listed (nothing compares them)
  m.object_pages_of_interest(0, pages);
  EXPECT_TRUE(pages.empty());
  m.pages_of_interest(1, pages);
  EXPECT_EQ(pages, (std::vector<uint64_t>{0x20000}));

  EXPECT_EQ(m.manager_write(0, 0, B("x")), KERN_INVALID_ARGUMENT);
  EXPECT_EQ(map(0, 0x40000, P, 0, 0, true), KERN_INVALID_ARGUMENT);
  EXPECT_EQ(m.destroy(0), KERN_INVALID_ARGUMENT);
}

// Do copies of unknown memory (vm_read, vm_copy, fork COPY) succeed with an unknown
// destination (D5), while the rest of the destination task stays known?
TEST_F(ModelTest, CopiesOfUnknownAreUnknown) {
  m.object_create(0, 0x2000, CopyStrategy::Delay, true, B("gone"));
  ASSERT_EQ(map(0, 0x10000, P, 0, 0, true), KERN_SUCCESS);
  ASSERT_EQ(alloc(0, 0x11000, P), KERN_SUCCESS);  // a known page next to it
  put(0, 0x11000, "mine");
  ASSERT_EQ(alloc(0, 0x20000, 0x3000), KERN_SUCCESS);
  put(0, 0x22000, "far!");
  ASSERT_EQ(m.destroy(0), KERN_SUCCESS);
  ASSERT_EQ(m.vm_copy(0, 0x10000, 0x2000, 0x20000), KERN_SUCCESS);
  EXPECT_EQ(peek(0, 0x20000), PeekStatus::Unknown);
  EXPECT_EQ(peek(0, 0x21000), PeekStatus::Unknown);  // the whole copy (D5)
  EXPECT_EQ(get(0, 0x22000, 4), "far!");
  ASSERT_EQ(m.vm_read(0, 0x10000, 0x2000, 1), KERN_SUCCESS);
  uint64_t at = 0;
  ASSERT_EQ(m.copyout(0, 1, &at), KERN_SUCCESS);
  EXPECT_EQ(peek(0, at), PeekStatus::Unknown);
  m.fork(0, 1);
  EXPECT_EQ(peek(1, 0x10000), PeekStatus::Unknown);
  EXPECT_EQ(get(1, 0x11000, 4), "mine");
  // A whole-page overwrite with known data makes a copied unknown page known again.
  ASSERT_EQ(m.vm_copy(0, 0x11000, P, 0x20000), KERN_SUCCESS);
  EXPECT_EQ(get(0, 0x20000, 4), "mine");
  EXPECT_EQ(peek(0, 0x21000), PeekStatus::Unknown);
}

// Can part of an unknown range become known again by a whole-page copy, leaving the rest
// unknown, and do fork and vm_read carry exactly the unknown pages they cover?
TEST_F(ModelTest, UnknownRunsSplit) {
  m.object_create(0, 0x3000, CopyStrategy::Delay, true, {});
  ASSERT_EQ(map(0, 0x10000, 0x3000, 0, 0, true), KERN_SUCCESS);
  ASSERT_EQ(alloc(0, 0x20000, 0x4000), KERN_SUCCESS);
  put(0, 0x23000, "keep");
  ASSERT_EQ(alloc(0, 0x30000, P), KERN_SUCCESS);
  put(0, 0x30000, "knwn");
  ASSERT_EQ(m.destroy(0), KERN_SUCCESS);
  ASSERT_EQ(m.vm_copy(0, 0x10000, 0x3000, 0x20000), KERN_SUCCESS);
  ASSERT_EQ(m.vm_copy(0, 0x30000, P, 0x21000), KERN_SUCCESS);  // the middle page
  EXPECT_EQ(peek(0, 0x20000), PeekStatus::Unknown);
  EXPECT_EQ(get(0, 0x21000, 4), "knwn");
  EXPECT_EQ(peek(0, 0x22000), PeekStatus::Unknown);
  EXPECT_EQ(get(0, 0x23000, 4), "keep");
  put(0, 0x22000, "lost");  // a partial store leaves an unknown page unknown (D3)
  EXPECT_EQ(peek(0, 0x22000), PeekStatus::Unknown);
  ASSERT_EQ(m.vm_read(0, 0x21000, P, 0), KERN_SUCCESS);  // only the known page: known
  uint64_t at = 0;
  ASSERT_EQ(m.copyout(0, 0, &at), KERN_SUCCESS);
  EXPECT_EQ(get(0, at, 4), "knwn");
  ASSERT_EQ(m.deallocate(0, 0x20000, P), KERN_SUCCESS);  // clip: the rest keeps its state
  m.fork(0, 1);
  EXPECT_EQ(get(1, 0x21000, 4), "knwn");
  EXPECT_EQ(peek(1, 0x22000), PeekStatus::Unknown);
  EXPECT_EQ(get(1, 0x23000, 4), "keep");
  std::vector<uint64_t> pages;
  m.pages_of_interest(1, pages);
  EXPECT_EQ(at, 0x13000u);  // right after the 3-page mapping
  EXPECT_EQ(pages, (std::vector<uint64_t>{at, 0x21000, 0x23000, 0x30000}));
}

// Does a huge destroyed mapping cost nothing to read, copy, fork and list?
TEST_F(ModelTest, HugeUnknownIsFree) {
  constexpr uint64_t kHuge = uint64_t{1} << 45;  // 2^33 pages
  m.object_create(0, kHuge, CopyStrategy::Delay, false, B("x"));
  uint64_t shared = 0, priv = 0;
  ASSERT_EQ(m.map(0, &shared, true, kHuge, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL,
                  vm_inherit_t::Copy),
            KERN_SUCCESS);
  priv = alloc_any(0, kHuge);
  ASSERT_EQ(m.destroy(0), KERN_SUCCESS);
  ASSERT_EQ(m.vm_copy(0, shared, kHuge, priv), KERN_SUCCESS);
  EXPECT_EQ(peek(0, priv + kHuge - P), PeekStatus::Unknown);
  ASSERT_EQ(m.vm_read(0, shared, kHuge, 0), KERN_SUCCESS);
  ASSERT_EQ(m.vm_write(0, priv, 0), KERN_SUCCESS);
  m.fork(0, 1);
  std::vector<uint64_t> pages;
  m.pages_of_interest(1, pages);
  m.object_pages_of_interest(0, pages);
  EXPECT_TRUE(pages.empty());
  Access r = m.read(1, shared + 5 * P - 2, 4, 0);
  EXPECT_EQ(r.kr, KERN_SUCCESS);
  EXPECT_EQ(r.unknown, std::vector<uint8_t>(4, 1));
}

// Do the views report nothing for zero pages and the right bytes for the rest?
TEST_F(ModelTest, ViewsSkipZeroPages) {
  ASSERT_EQ(alloc(0, 0x10000, 0x3000), KERN_SUCCESS);
  put(0, 0x10000, std::string(4, '\0'));  // materialized but zero
  put(0, 0x12000, "here");
  std::vector<uint64_t> pages;
  m.pages_of_interest(0, pages);
  EXPECT_EQ(pages, std::vector<uint64_t>{0x12000});
  std::array<uint8_t, kPageSize> buf{};
  ASSERT_EQ(m.peek_page(0, 0x12000, buf), PeekStatus::Mapped);
  EXPECT_EQ(std::string(buf.begin(), buf.begin() + 4), "here");
  ASSERT_EQ(m.peek_page(0, 0x11000, buf), PeekStatus::Mapped);
  EXPECT_EQ(buf[0], 0);
  m.pageout(10, true);  // changes nothing a task can read
  EXPECT_EQ(get(0, 0x12000, 4), "here");
}

}  // namespace
}  // namespace vmfuzz::model
