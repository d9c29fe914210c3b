// vm_test.cc — unit tests of the Mach VM (vm/): each mechanism is checked for what tasks
// read AND for the shape of the object graph it leaves, then every test tears down
// (all tasks terminated, all handles dropped) and asserts that the invariants held and
// zero frames and zero objects remain.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "harness/exec/invariants.h"
#include "vm/kernel.h"
#include "tests/doc_block.h"
#include "tests/vm/vm_test_support.h"

namespace vmfuzz::vm {
namespace {

using test::P;
using test::tag;

class VmTest : public ::testing::Test {
 protected:
  void SetUp() override { make(SystemConfig{}); }

  void make(const SystemConfig& cfg) {
    k.reset();
    k = std::make_unique<Kernel>(cfg);
    k->task_create(0);
  }

  void TearDown() override {
    if (!k) return;
    expect_clean("before teardown");
    for (unsigned c = 0; c < kMaxNames; ++c)
      if (k->copy_exists(c)) k->discard(c);
    for (unsigned t : k->tasks()) k->terminate(t);
    for (unsigned m = 0; m < kMaxNames; ++m) {
      if (k->memory_object(m) && !k->memory_object(m)->destroyed) {
        EXPECT_EQ(k->destroy(m), KERN_SUCCESS);
      }
    }
    std::vector<Violation> v;
    check_vm_invariants(*k, v);
    check_teardown(*k, v);
    for (const auto& x : v) ADD_FAILURE() << "teardown: " << x.text();
    EXPECT_EQ(k->frames_owned(), 0u);
    EXPECT_EQ(k->object_count(), 0u);
  }

  void expect_clean(const char* when) {
    std::vector<Violation> v;
    check_vm_invariants(*k, v);
    check_tlb_coherence(*k, v);
    for (const auto& x : v) ADD_FAILURE() << when << ": " << x.text();
  }

  uint64_t alloc(unsigned t, uint64_t addr, uint64_t size) {
    uint64_t a = addr;
    EXPECT_EQ(k->allocate(t, &a, size, false), KERN_SUCCESS);
    return a;
  }
  void put(unsigned t, uint64_t addr, const std::string& s, unsigned cpu = 0) {
    Access a = k->write(t, addr, {reinterpret_cast<const uint8_t*>(s.data()), s.size()}, cpu);
    EXPECT_EQ(a.kr, KERN_SUCCESS) << "write t" << t << " 0x" << std::hex << addr;
  }
  std::string get(unsigned t, uint64_t addr, uint64_t n, unsigned cpu = 0) {
    Access a = k->read(t, addr, n, cpu);
    EXPECT_EQ(a.kr, KERN_SUCCESS) << "read t" << t << " 0x" << std::hex << addr;
    return std::string(a.bytes.begin(), a.bytes.end());
  }
  std::string zeros(size_t n) { return std::string(n, '\0'); }
  const EntryInfo entry_at(unsigned t, uint64_t va) {
    for (const auto& e : k->entries(t))
      if (e.start <= va && va < e.end) return e;
    ADD_FAILURE() << "no entry at 0x" << std::hex << va;
    return EntryInfo{};
  }
  ObjectInfo obj(uint64_t id) {
    auto o = k->object_info(id);
    EXPECT_TRUE(o.has_value()) << "object " << id;
    return o.value_or(ObjectInfo{});
  }
  bool has_page(uint64_t id, uint64_t off) {
    for (const auto& p : obj(id).pages)
      if (p.offset == off) return true;
    return false;
  }

  std::unique_ptr<Kernel> k;
};

// --- Return codes of docs/language.md ------------------------------------------------------------------

TEST_F(VmTest, AllocateCodesAndZeroMemory) {
  uint64_t a = 0x10000;
  EXPECT_EQ(k->allocate(0, &a, 0x1800, false), KERN_SUCCESS);
  EXPECT_EQ(a, 0x10000u);
  EXPECT_EQ(get(0, 0x10000, 16), zeros(16));
  a = 0x11000;  // overlaps the second page
  EXPECT_EQ(k->allocate(0, &a, 0x1000, false), KERN_NO_SPACE);
  a = 0x1800;  // [0x1000, 0x3000): below user space
  EXPECT_EQ(k->allocate(0, &a, 0x1000, false), KERN_INVALID_ADDRESS);
  a = UINT64_MAX - 0x10;
  EXPECT_EQ(k->allocate(0, &a, 0x100, false), KERN_INVALID_ARGUMENT);  // wraps
  a = 0xfffffffffffff000ull;
  EXPECT_EQ(k->allocate(0, &a, 0x1000, false), KERN_INVALID_ARGUMENT);  // end exactly 2^64
  a = 0x7ffffffff000ull;
  EXPECT_EQ(k->allocate(0, &a, 0x1000, false), KERN_INVALID_ADDRESS);
  a = 123;
  EXPECT_EQ(k->allocate(0, &a, 0, true), KERN_SUCCESS);
  EXPECT_EQ(a, 0u);
  EXPECT_EQ(k->allocate(0, &a, UINT64_MAX - 5, true), KERN_INVALID_ARGUMENT);
  EXPECT_EQ(k->allocate(0, &a, 0x800000000000ull, true), KERN_NO_SPACE);
  EXPECT_EQ(k->allocate(0, &a, 0x10, true), KERN_SUCCESS);
  EXPECT_EQ(a, 0x12000u);  // lowest fit above the first allocation
  // allocate [0x10000,0x12000) + [0x12000,0x13000): coalesced into one entry.
  EXPECT_EQ(k->entries(0).size(), 1u);
}

TEST_F(VmTest, ProtectInheritDeallocateCodes) {
  alloc(0, 0x10000, 4 * P);
  EXPECT_EQ(k->protect(0, 0x11000, P, false, VM_PROT_READ), KERN_SUCCESS);
  EXPECT_EQ(k->regions(0).size(), 3u);
  Access w = k->write(0, 0x10ffe, {reinterpret_cast<const uint8_t*>("abcd"), 4}, 0);
  EXPECT_EQ(w.kr, KERN_PROTECTION_FAILURE);
  EXPECT_EQ(w.fault_addr, 0x11000u);
  EXPECT_EQ(w.bytes.size(), 2u);
  EXPECT_EQ(k->protect(0, 0x11000, P, false, VM_PROT_ALL), KERN_SUCCESS);
  // Lower max on one page, then try to raise current above it: refused, nothing changes.
  EXPECT_EQ(k->protect(0, 0x12000, P, true, VM_PROT_READ), KERN_SUCCESS);
  auto before = k->regions(0);
  EXPECT_EQ(k->protect(0, 0x10000, 4 * P, false, VM_PROT_DEFAULT), KERN_PROTECTION_FAILURE);
  EXPECT_EQ(k->regions(0), before);
  EXPECT_EQ(k->protect(0, 0x12000, P, true, VM_PROT_ALL), KERN_PROTECTION_FAILURE);  // raise max
  EXPECT_EQ(k->protect(0, UINT64_MAX - 5, 0x100, false, 0), KERN_INVALID_ARGUMENT);
  EXPECT_EQ(k->inherit(0, 0x0, 0x100000, vm_inherit_t::None), KERN_SUCCESS);  // holes ignored
  EXPECT_EQ(k->deallocate(0, 0x0, 0x20000), KERN_SUCCESS);
  EXPECT_TRUE(k->regions(0).empty());
  EXPECT_EQ(k->deallocate(0, UINT64_MAX, 2), KERN_INVALID_ARGUMENT);
}

TEST_F(VmTest, WriteImpliesReadAndExecuteOnlyIsNotReadable) {
  alloc(0, 0x10000, 2 * P);
  EXPECT_EQ(k->protect(0, 0x10000, P, false, VM_PROT_WRITE), KERN_SUCCESS);
  EXPECT_EQ(get(0, 0x10000, 4), zeros(4));  // read of a write-only page: allowed (x86)
  put(0, 0x10000, "wo");
  EXPECT_EQ(get(0, 0x10000, 2), "wo");
  EXPECT_EQ(k->protect(0, 0x10000, P, false, VM_PROT_EXECUTE), KERN_SUCCESS);
  Access r = k->read(0, 0x10000, 1, 0);
  EXPECT_EQ(r.kr, KERN_PROTECTION_FAILURE);
  // Kernel copies need r: a write-only source is refused.
  EXPECT_EQ(k->protect(0, 0x10000, P, false, VM_PROT_WRITE), KERN_SUCCESS);
  EXPECT_EQ(k->vm_read(0, 0x10000, 10, 0), KERN_PROTECTION_FAILURE);
  EXPECT_FALSE(k->copy_exists(0));
}

TEST_F(VmTest, VmReadWriteCopyCodes) {
  alloc(0, 0x10000, 2 * P);
  alloc(0, 0x20000, 2 * P);
  put(0, 0x10000, "source");
  EXPECT_EQ(k->vm_read(0, 0x10000, 3 * P, 0), KERN_INVALID_ADDRESS);  // hole
  EXPECT_EQ(k->vm_read(0, UINT64_MAX - 2, 5, 0), KERN_INVALID_ADDRESS);  // wraps
  EXPECT_EQ(k->vm_read(0, 0x10003, 5, 1), KERN_SUCCESS);
  EXPECT_EQ(k->vm_write(0, 0x20000, 1), KERN_INVALID_ARGUMENT);  // unaligned handle
  EXPECT_FALSE(k->copy_exists(1));                                // consumed anyway
  EXPECT_EQ(k->vm_read(0, 0x10000, 0, 2), KERN_SUCCESS);          // empty handle
  uint64_t a = 77;
  EXPECT_EQ(k->copyout(0, 2, &a), KERN_SUCCESS);
  EXPECT_EQ(a, 0u);
  EXPECT_EQ(k->vm_read(0, 0x10000, P, 3), KERN_SUCCESS);
  EXPECT_EQ(k->vm_write(0, 0x30000, 3), KERN_INVALID_ADDRESS);
  EXPECT_EQ(k->vm_read(0, 0x10000, P, 3), KERN_SUCCESS);
  EXPECT_EQ(k->protect(0, 0x21000, P, false, VM_PROT_READ), KERN_SUCCESS);
  EXPECT_EQ(k->vm_read(0, 0x10000, 2 * P, 4), KERN_SUCCESS);
  EXPECT_EQ(k->vm_write(0, 0x20000, 4), KERN_PROTECTION_FAILURE);
  EXPECT_EQ(get(0, 0x20000, 6), zeros(6));  // checked before anything stored
  EXPECT_EQ(k->vm_write(0, 0x20000, 3), KERN_SUCCESS);
  EXPECT_EQ(get(0, 0x20000, 6), "source");
  // vm_copy: source errors first, then alignment, then the destination.
  EXPECT_EQ(k->vm_copy(0, 0x40000, P, 0x20001), KERN_INVALID_ADDRESS);
  EXPECT_EQ(k->vm_copy(0, 0x10000, P, 0x20001), KERN_INVALID_ARGUMENT);
  EXPECT_EQ(k->vm_copy(0, 0x10000, P, 0x50000), KERN_INVALID_ADDRESS);
  EXPECT_EQ(k->vm_copy(0, 0x10000, 2 * P, 0x20000), KERN_PROTECTION_FAILURE);
  EXPECT_EQ(k->vm_copy(0, 0x10000, 0, 0x1234567), KERN_SUCCESS);
  EXPECT_EQ(k->vm_copy(0, 0x10000, P, 0xfffffffffffff000ull), KERN_INVALID_ADDRESS);
}

TEST_F(VmTest, CopyoutReturnsOffsetAndDefaultsAndIsASnapshot) {
  alloc(0, 0x10000, P);
  EXPECT_EQ(k->protect(0, 0x10000, P, true, VM_PROT_READ), KERN_SUCCESS);
  EXPECT_EQ(k->vm_read(0, 0x10000, P, 0), KERN_SUCCESS);
  uint64_t a = 0;
  EXPECT_EQ(k->copyout(0, 0, &a), KERN_SUCCESS);
  EXPECT_EQ(a, 0x11000u);
  auto e = entry_at(0, a);
  EXPECT_EQ(e.prot, VM_PROT_DEFAULT);
  EXPECT_EQ(e.max_prot, VM_PROT_ALL);
  alloc(0, 0x20000, P);
  put(0, 0x20010, "snap");
  EXPECT_EQ(k->vm_read(0, 0x20010, 4, 1), KERN_SUCCESS);
  put(0, 0x20010, "XXXX");  // after the read: the handle keeps "snap"
  EXPECT_EQ(k->copyout(0, 1, &a), KERN_SUCCESS);
  EXPECT_EQ(a & 0xfff, 0x10u);
  EXPECT_EQ(get(0, a, 4), "snap");
  EXPECT_EQ(get(0, 0x20010, 4), "XXXX");
}

// --- Symmetric copy-on-write ---------------------------------------------------------------

TEST_F(VmTest, ForkCopySharesOneObjectThenWriteShadows) {
  alloc(0, 0x10000, 3 * P);
  put(0, 0x10000, "parent");
  put(0, 0x11000, "second");
  uint64_t o = entry_at(0, 0x10000).object;
  k->fork(0, 1);
  auto pe = entry_at(0, 0x10000), ce = entry_at(1, 0x10000);
  EXPECT_TRUE(pe.needs_copy);
  EXPECT_TRUE(ce.needs_copy);
  EXPECT_EQ(pe.object, o);
  EXPECT_EQ(ce.object, o);
  EXPECT_EQ(obj(o).ref_count, 2);
  EXPECT_TRUE(obj(o).shadowed);
  expect_clean("after fork");
  EXPECT_EQ(get(1, 0x10000, 6), "parent");
  put(1, 0x10000, "child!");
  // The first write gave the child its own shadow; the page was copied up into it.
  auto ce2 = entry_at(1, 0x10000);
  EXPECT_FALSE(ce2.needs_copy);
  EXPECT_NE(ce2.object, o);
  EXPECT_EQ(obj(ce2.object).shadow, o);  // o still supplies page 1: no bypass
  EXPECT_TRUE(has_page(ce2.object, 0));
  EXPECT_EQ(obj(ce2.object).pages.size(), 1u);
  EXPECT_EQ(k->counters().copy_ups, 1u);
  EXPECT_EQ(get(0, 0x10000, 6), "parent");
  EXPECT_EQ(get(1, 0x10000, 6), "child!");
  put(0, 0x11000, "p2");  // the parent gets its own shadow too
  EXPECT_TRUE(entry_at(0, 0x10000).object != o);
  EXPECT_EQ(get(1, 0x11000, 6), "second");
  EXPECT_EQ(get(0, 0x11000, 6), "p2cond");
  put(1, 0x12000, "z");  // zero-fill in the child's shadow, not in o
  EXPECT_EQ(get(0, 0x12000, 1), zeros(1));
  EXPECT_FALSE(has_page(o, 2 * P));
  expect_clean("after writes");
}

TEST_F(VmTest, ReadThroughNeedsCopyMapsReadOnly) {
  alloc(0, 0x10000, P);
  put(0, 0x10000, "abc");
  k->fork(0, 1);
  EXPECT_EQ(get(0, 0x10000, 3), "abc");
  EXPECT_EQ(get(1, 0x10000, 3), "abc");
  expect_clean("both read");  // no writable PTE through needs_copy
  put(0, 0x10000, "xyz", 1);
  EXPECT_EQ(get(1, 0x10000, 3, 1), "abc");
  EXPECT_EQ(get(0, 0x10000, 3, 0), "xyz");
}

// --- Asymmetric copy-on-write (copy objects) ---------------------------------------------

TEST_F(VmTest, CopyDelayedShapeAndPush) {
  alloc(0, 0x10000, 2 * P);
  put(0, 0x10000, "orig");
  EXPECT_EQ(k->inherit(0, 0x10000, 2 * P, vm_inherit_t::Share), KERN_SUCCESS);
  k->fork(0, 1);  // SHARE: one object S, use_shared_copy
  uint64_t s = entry_at(0, 0x10000).object;
  EXPECT_EQ(entry_at(1, 0x10000).object, s);
  EXPECT_TRUE(entry_at(0, 0x10000).is_shared);
  EXPECT_TRUE(obj(s).use_shared_copy);
  put(1, 0x10000, "shar");
  EXPECT_EQ(get(0, 0x10000, 4), "shar");
  // A copy of a shared object is asymmetric: vm_read makes a copy object C of S.
  EXPECT_EQ(k->vm_read(0, 0x10000, 2 * P, 0), KERN_SUCCESS);
  uint64_t c = obj(s).copy;
  ASSERT_NE(c, 0u);
  EXPECT_EQ(obj(c).shadow, s);
  EXPECT_EQ(obj(c).shadow_offset, 0u);
  EXPECT_FALSE(entry_at(0, 0x10000).needs_copy);  // the source is not copy-on-write
  expect_clean("after copy_delayed");
  uint64_t pushes = k->counters().pushes;
  put(1, 0x10000, "new!");  // either sharer's write pushes the old page into C first
  EXPECT_EQ(k->counters().pushes, pushes + 1);
  EXPECT_TRUE(has_page(c, 0));
  put(0, 0x10002, "++");    // already pushed: no second push
  EXPECT_EQ(k->counters().pushes, pushes + 1);
  put(0, 0x11000, "second");  // zero page of S: pushed as zeros
  EXPECT_EQ(k->counters().pushes, pushes + 2);
  uint64_t a = 0;
  EXPECT_EQ(k->copyout(0, 0, &a), KERN_SUCCESS);
  EXPECT_EQ(get(0, a, 4), "shar");
  EXPECT_EQ(get(0, a + P, 6), zeros(6));
  EXPECT_EQ(get(1, 0x10000, 4), "ne++");
  expect_clean("after pushes");
}

TEST_F(VmTest, UnmodifiedCopyObjectIsReusedAndOlderCopyShadowsNewer) {
  alloc(0, 0x10000, P);
  put(0, 0x10000, "one");
  EXPECT_EQ(k->inherit(0, 0x10000, P, vm_inherit_t::Share), KERN_SUCCESS);
  k->fork(0, 1);
  uint64_t s = entry_at(0, 0x10000).object;
  EXPECT_EQ(k->vm_read(0, 0x10000, P, 0), KERN_SUCCESS);
  uint64_t c1 = obj(s).copy;
  EXPECT_EQ(k->vm_read(0, 0x10000, P, 1), KERN_SUCCESS);
  EXPECT_EQ(obj(s).copy, c1);  // reused: S did not change
  EXPECT_EQ(k->counters().copy_object_reuses, 1u);
  EXPECT_EQ(obj(c1).ref_count, 2);
  put(0, 0x10000, "two");  // pushes "one" into c1
  EXPECT_EQ(k->vm_read(0, 0x10000, P, 2), KERN_SUCCESS);
  uint64_t c2 = obj(s).copy;
  EXPECT_NE(c2, c1);
  EXPECT_EQ(obj(c1).shadow, c2);  // the old copy shadows the new one
  EXPECT_EQ(obj(c2).shadow, s);
  put(1, 0x10000, "six");  // pushes "two" into c2 only
  EXPECT_TRUE(has_page(c2, 0));
  expect_clean("two copy objects");
  uint64_t a = 0;
  for (unsigned h = 0; h < 3; ++h) {
    EXPECT_EQ(k->copyout(1, h, &a), KERN_SUCCESS);
    EXPECT_EQ(get(1, a, 3), h < 2 ? "one" : "two");
  }
  EXPECT_EQ(get(0, 0x10000, 3), "six");
}

TEST_F(VmTest, ForkCopyOfSharedRegionUsesCopyObject) {
  alloc(0, 0x10000, P);
  put(0, 0x10000, "base");
  EXPECT_EQ(k->inherit(0, 0x10000, P, vm_inherit_t::Share), KERN_SUCCESS);
  k->fork(0, 1);
  EXPECT_EQ(k->inherit(0, 0x10000, P, vm_inherit_t::Copy), KERN_SUCCESS);
  k->fork(0, 2);
  uint64_t s = entry_at(0, 0x10000).object;
  auto e2 = entry_at(2, 0x10000);
  EXPECT_EQ(e2.object, obj(s).copy);
  EXPECT_TRUE(e2.needs_copy);
  put(1, 0x10000, "BASE");
  EXPECT_EQ(get(2, 0x10000, 4), "base");
  put(2, 0x10000, "kid2");
  EXPECT_EQ(get(0, 0x10000, 4), "BASE");
  EXPECT_EQ(get(2, 0x10000, 4), "kid2");
}

// --- Collapse and bypass --------------------------------------------------------------------

TEST_F(VmTest, CollapseMovesExactlyThePagesTheParentLacks) {
  // GNU Mach's path: the collapse waits for the parent's next copy-up (the reclaim at the
  // reference drop, tested below, would take O at terminate already).
  k->tunables().shadow_reclaim_allowed = false;
  alloc(0, 0x10000, 4 * P);
  put(0, 0x10000, "A");
  put(0, 0x11000, "B");
  put(0, 0x12000, "C");
  uint64_t o = entry_at(0, 0x10000).object;
  k->fork(0, 1);
  put(0, 0x10000, "a");  // parent shadow P over O; O still referenced by the child
  uint64_t p = entry_at(0, 0x10000).object;
  EXPECT_EQ(obj(p).shadow, o);
  EXPECT_EQ(k->counters().collapses, 0u);
  EXPECT_EQ(k->counters().bypasses, 0u);  // P lacks pages 1 and 2: O still needed
  k->terminate(1);
  EXPECT_EQ(obj(o).ref_count, 1);
  put(0, 0x11000, "b");  // copy-up, then collapse: O's page 2 moves, pages 0 and 1 are freed
  EXPECT_EQ(k->counters().collapses, 1u);
  EXPECT_EQ(k->counters().collapse_pages_moved, 1u);
  EXPECT_FALSE(k->object_info(o).has_value());
  auto po = obj(p);
  EXPECT_EQ(po.shadow, 0u);
  ASSERT_EQ(po.pages.size(), 3u);
  EXPECT_EQ(po.pages[2].offset, 2 * P);
  EXPECT_EQ(k->object_count(), 1u);
  EXPECT_EQ(get(0, 0x10000, 1), "a");
  EXPECT_EQ(get(0, 0x11000, 1), "b");
  EXPECT_EQ(get(0, 0x12000, 1), "C");
  EXPECT_EQ(get(0, 0x13000, 1), zeros(1));
}

// What if the child dies while the parent's shadow still leaves the old object in its
// chain? The old object is then referenced by that shadow alone: it collapses at once.
TEST_F(VmTest, WhatIfTheLastOtherReferenceGoesTheObjectCollapsesIntoItsShadower) {
  alloc(0, 0x10000, 4 * P);
  put(0, 0x10000, "A");
  put(0, 0x11000, "B");
  put(0, 0x12000, "C");
  uint64_t o = entry_at(0, 0x10000).object;
  k->fork(0, 1);
  put(0, 0x10000, "a");
  uint64_t p = entry_at(0, 0x10000).object;
  EXPECT_EQ(obj(p).shadow, o);
  EXPECT_EQ(k->counters().collapses, 0u);
  k->terminate(1);  // O's last reference but P's shadow pointer goes: collapse now
  EXPECT_EQ(k->counters().collapses, 1u);
  EXPECT_EQ(k->counters().deallocate_collapses, 1u);
  EXPECT_EQ(k->counters().collapse_pages_moved, 2u);  // B and C; P has its own page 0
  EXPECT_FALSE(k->object_info(o).has_value());
  EXPECT_EQ(obj(p).shadow, 0u);
  EXPECT_EQ(get(0, 0x10000, 1), "a");
  EXPECT_EQ(get(0, 0x11000, 1), "B");
  EXPECT_EQ(get(0, 0x12000, 1), "C");
  EXPECT_EQ(get(0, 0x13000, 1), zeros(1));
  expect_clean("after the collapse");
}

// What if an object is left to two shadowers with narrow windows? Pages outside both
// windows go when the last entry goes; a page goes at copy-up once both shadowers hold it.
TEST_F(VmTest, WhatIfOnlyShadowersSeeAnObjectThePagesTheyAllHideAreFreed) {
  alloc(0, 0x10000, 4 * P);
  for (unsigned i = 0; i < 4; i++) put(0, 0x10000 + i * P, std::string(1, char('0' + i)));
  uint64_t o = entry_at(0, 0x10000).object;
  k->fork(0, 1);
  k->fork(0, 2);
  ASSERT_EQ(k->deallocate(1, 0x12000, 2 * P), KERN_SUCCESS);  // t1 keeps pages 0-1
  ASSERT_EQ(k->deallocate(2, 0x12000, 2 * P), KERN_SUCCESS);  // t2 too
  put(1, 0x10000, "x");  // t1's shadow S1: window [0, 2 pages), page 0
  put(2, 0x11000, "y");  // t2's shadow S2: window [0, 2 pages), page 1
  EXPECT_EQ(k->counters().hidden_pages_freed, 0u);
  k->terminate(0);  // O: referenced by S1 and S2 only; pages 2 and 3 are outside both
  EXPECT_EQ(k->counters().hidden_pages_freed, 2u);
  EXPECT_TRUE(has_page(o, 0));   // S2 still sees it
  EXPECT_TRUE(has_page(o, P));   // S1 still sees it
  EXPECT_FALSE(has_page(o, 2 * P));
  EXPECT_FALSE(has_page(o, 3 * P));
  EXPECT_EQ(get(1, 0x11000, 1), "1");
  EXPECT_EQ(get(2, 0x10000, 1), "0");
  const uint64_t bypasses = k->counters().bypasses, collapses = k->counters().collapses;
  // S1 copies page 1 up: S1 and S2 now both hide O's page 1, which goes at once. Then S1
  // supplies all it sees of O and bypasses it; O is left to S2 alone and collapses into it.
  put(1, 0x11000, "z");
  EXPECT_EQ(k->counters().hidden_pages_freed, 3u);
  EXPECT_EQ(k->counters().bypasses, bypasses + 1);
  EXPECT_EQ(k->counters().collapses, collapses + 1);
  EXPECT_FALSE(k->object_info(o).has_value());
  EXPECT_EQ(get(1, 0x10000, 1) + get(1, 0x11000, 1), "xz");
  EXPECT_EQ(get(2, 0x10000, 1) + get(2, 0x11000, 1), "0y");
  expect_clean("after the reclaim");
}

// What if part of a clipped object is deallocated? Its pages there are mapped by no
// entry any more (the other pieces keep ref_count above 1, so Mach's rule keeps them):
// they go after the op. An object mapped by one entry keeps the pages past its end.
TEST_F(VmTest, WhatIfAClippedPieceIsDeallocatedItsPagesGoWhileTheRestStays) {
  alloc(0, 0x10000, 4 * P);
  for (unsigned i = 0; i < 4; i++) put(0, 0x10000 + i * P, std::string(1, char('a' + i)));
  uint64_t o = entry_at(0, 0x10000).object;
  ASSERT_EQ(k->protect(0, 0x11000, P, false, VM_PROT_READ), KERN_SUCCESS);  // 3 entries
  ASSERT_EQ(k->deallocate(0, 0x12000, 2 * P), KERN_SUCCESS);
  EXPECT_EQ(k->counters().hidden_pages_freed, 2u);
  EXPECT_TRUE(has_page(o, 0));
  EXPECT_TRUE(has_page(o, P));
  EXPECT_FALSE(has_page(o, 2 * P));
  EXPECT_FALSE(has_page(o, 3 * P));
  EXPECT_EQ(get(0, 0x10000, 1) + get(0, 0x11000, 1), "ab");
  // One entry left on o: the page past its end goes too (OBJ_ONEMAPPING-style trimming).
  ASSERT_EQ(k->deallocate(0, 0x11000, P), KERN_SUCCESS);
  EXPECT_FALSE(has_page(o, P));
  EXPECT_TRUE(has_page(o, 0));
  EXPECT_EQ(k->counters().hidden_pages_freed, 3u);
  alloc(0, 0x11000, P);  // coalesces with the first entry: fresh zeros
  EXPECT_EQ(get(0, 0x11000, 1), zeros(1));
  expect_clean("after the reclaim");
}

// What if the reclaim is switched off? Same contents, the pages stay.
TEST_F(VmTest, WhatIfShadowReclaimIsOffNothingIsFreedAndNothingChanges) {
  k->tunables().shadow_reclaim_allowed = false;
  alloc(0, 0x10000, 4 * P);
  for (unsigned i = 0; i < 4; i++) put(0, 0x10000 + i * P, std::string(1, char('0' + i)));
  k->fork(0, 1);
  k->fork(0, 2);
  ASSERT_EQ(k->deallocate(1, 0x12000, 2 * P), KERN_SUCCESS);
  ASSERT_EQ(k->deallocate(2, 0x12000, 2 * P), KERN_SUCCESS);
  put(1, 0x10000, "x");
  put(2, 0x11000, "y");
  k->terminate(0);
  put(1, 0x11000, "z");
  EXPECT_EQ(k->counters().hidden_pages_freed, 0u);
  EXPECT_EQ(k->counters().deallocate_collapses, 0u);
  EXPECT_EQ(get(1, 0x10000, 1) + get(1, 0x11000, 1), "xz");
  EXPECT_EQ(get(2, 0x10000, 1) + get(2, 0x11000, 1), "0y");
  expect_clean("reclaim off");
}

TEST_F(VmTest, BypassOnlyWhenTheBackingObjectSuppliesNothing) {
  alloc(0, 0x10000, 2 * P);
  put(0, 0x10000, "X");
  put(0, 0x11000, "Y");
  uint64_t o = entry_at(0, 0x10000).object;
  k->fork(0, 1);
  put(0, 0x10000, "x");
  uint64_t p = entry_at(0, 0x10000).object;
  EXPECT_EQ(k->counters().bypasses, 0u);  // page 1 still comes from O
  EXPECT_EQ(obj(p).shadow, o);
  put(0, 0x11000, "y");  // now P has every page of O it can see: bypass
  EXPECT_EQ(k->counters().bypasses, 1u);
  EXPECT_EQ(obj(p).shadow, 0u);
  EXPECT_EQ(obj(o).ref_count, 1);  // only the child now
  EXPECT_EQ(get(1, 0x10000, 1), "X");
  EXPECT_EQ(get(1, 0x11000, 1), "Y");
  EXPECT_EQ(get(0, 0x10000, 1), "x");
}

TEST_F(VmTest, CollapseSwitchedOffChangesNothingVisible) {
  auto run = [&](bool collapse, bool bypass) {
    make(SystemConfig{});
    k->tunables().collapse_allowed = collapse;
    k->tunables().bypass_allowed = bypass;
    alloc(0, 0x10000, 8 * P);
    uint32_t x = 12345;
    std::vector<std::string> seen;
    for (int step = 0; step < 120; ++step) {
      x = x * 1103515245u + 12345u;
      unsigned r = (x >> 16) % 10;
      unsigned t = (x >> 8) % 3;
      uint64_t va = 0x10000 + ((x >> 4) % 8) * P;
      if (!k->task_exists(t)) {
        k->fork(0, t);
        continue;
      }
      if (r < 4) {
        put(t, va, std::to_string(step));
      } else if (r < 7) {
        seen.push_back(get(t, va, 4));
      } else if (r == 7 && t != 0) {
        k->terminate(t);
      } else if (r == 8) {
        EXPECT_EQ(k->inherit(0, va, P, (x & 1) ? vm_inherit_t::Share : vm_inherit_t::Copy),
                  KERN_SUCCESS);
      } else {
        if (k->vm_copy(t, 0x10000, 2 * P, 0x10000 + 4 * P) != KERN_SUCCESS) seen.push_back("!");
      }
    }
    for (unsigned t : k->tasks())
      for (uint64_t va = 0x10000; va < 0x18000; va += P) seen.push_back(get(t, va, 8));
    expect_clean("random run");
    return seen;
  };
  auto on = run(true, true);
  uint64_t collapses = k->counters().collapses + k->counters().bypasses;
  auto off = run(false, false);
  EXPECT_EQ(k->counters().collapses + k->counters().bypasses, 0u);
  auto no_bypass = run(true, false);
  EXPECT_EQ(on, off);
  EXPECT_EQ(on, no_bypass);
  EXPECT_GT(collapses, 0u);
}

// --- Map mechanics ---------------------------------------------------------------------------

TEST_F(VmTest, ClippedEntriesMergeAgainAfterProtect) {
  alloc(0, 0x10000, 4 * P);
  put(0, 0x10000, "m");
  EXPECT_EQ(k->protect(0, 0x11000, 2 * P, false, VM_PROT_READ), KERN_SUCCESS);
  EXPECT_EQ(k->entries(0).size(), 3u);
  uint64_t o = entry_at(0, 0x10000).object;
  EXPECT_EQ(obj(o).ref_count, 3);
  EXPECT_EQ(k->protect(0, 0x11000, 2 * P, false, VM_PROT_DEFAULT), KERN_SUCCESS);
  EXPECT_EQ(k->entries(0).size(), 1u);
  EXPECT_EQ(obj(o).ref_count, 1);
  EXPECT_GE(k->counters().entry_merges, 2u);
}

TEST_F(VmTest, ReallocatedHoleReadsZero) {
  alloc(0, 0x10000, 3 * P);
  put(0, 0x11000, "stale");
  EXPECT_EQ(k->deallocate(0, 0x11000, P), KERN_SUCCESS);
  EXPECT_EQ(k->read(0, 0x11000, 1, 0).kr, KERN_INVALID_ADDRESS);
  alloc(0, 0x11000, P);
  EXPECT_EQ(get(0, 0x11000, 5), zeros(5));
}

TEST_F(VmTest, SharedEntryDeallocateLeavesNoStaleMapping) {
  // fork(SHARE) of a region with read-only pages from a shadow, deallocate, read.
  alloc(0, 0x10000, P);
  put(0, 0x10000, "secret");
  k->fork(0, 1);                               // needs_copy on both
  EXPECT_EQ(get(0, 0x10000, 6), "secret");     // t0 maps the shadowed page read-only
  EXPECT_EQ(k->inherit(0, 0x10000, P, vm_inherit_t::Share), KERN_SUCCESS);
  k->fork(0, 2);                               // SHARE: shadow first (needs_copy)
  EXPECT_EQ(get(2, 0x10000, 6), "secret");
  EXPECT_EQ(k->deallocate(0, 0x10000, P), KERN_SUCCESS);
  Access r = k->read(0, 0x10000, 6, 0);
  EXPECT_EQ(r.kr, KERN_INVALID_ADDRESS);
  EXPECT_EQ(r.fault_addr, 0x10000u);
  expect_clean("after deallocate");
  EXPECT_EQ(get(2, 0x10000, 6), "secret");
  k->terminate(2);
  EXPECT_EQ(get(1, 0x10000, 6), "secret");
}

TEST_F(VmTest, ForkOfUnreadableEntryTerminatesWithASnapshot) {
  alloc(0, 0x10000, P);
  put(0, 0x10000, "hidden");
  EXPECT_EQ(k->protect(0, 0x10000, P, false, VM_PROT_NONE), KERN_SUCCESS);
  k->fork(0, 1);
  ASSERT_TRUE(k->task_exists(1));
  auto e = entry_at(1, 0x10000);
  EXPECT_EQ(e.prot, VM_PROT_NONE);
  EXPECT_EQ(k->protect(0, 0x10000, P, false, VM_PROT_DEFAULT), KERN_SUCCESS);
  put(0, 0x10000, "change");
  EXPECT_EQ(k->protect(1, 0x10000, P, false, VM_PROT_READ), KERN_SUCCESS);
  EXPECT_EQ(get(1, 0x10000, 6), "hidden");
}

TEST_F(VmTest, VmCopyIsAMemmove) {
  alloc(0, 0x10000, 4 * P);
  for (int i = 0; i < 4; ++i) put(0, 0x10000 + i * P, std::string(1, char('0' + i)));
  EXPECT_EQ(k->vm_copy(0, 0x10000, 3 * P, 0x11000), KERN_SUCCESS);
  EXPECT_EQ(get(0, 0x10000, 1), "0");
  EXPECT_EQ(get(0, 0x11000, 1), "0");
  EXPECT_EQ(get(0, 0x12000, 1), "1");
  EXPECT_EQ(get(0, 0x13000, 1), "2");
  expect_clean("after overlapping vm_copy");
}

TEST_F(VmTest, VmWriteIntoSharedDestinationWritesTheSharedMemory) {
  alloc(0, 0x10000, 2 * P);
  alloc(0, 0x20000, P);
  put(0, 0x20000, "data");
  EXPECT_EQ(k->inherit(0, 0x10000, 2 * P, vm_inherit_t::Share), KERN_SUCCESS);
  k->fork(0, 1);
  EXPECT_EQ(get(1, 0x10000, 4), zeros(4));  // t1 maps the (zero) page
  EXPECT_EQ(k->vm_read(0, 0x20000, P, 0), KERN_SUCCESS);
  EXPECT_EQ(k->vm_write(1, 0x11000, 0), KERN_SUCCESS);
  EXPECT_EQ(k->vm_read(0, 0x20000, P, 1), KERN_SUCCESS);
  EXPECT_EQ(k->vm_write(1, 0x10000, 1), KERN_SUCCESS);
  EXPECT_EQ(get(0, 0x10000, 4), "data");
  EXPECT_EQ(get(1, 0x10000, 4), "data");
  EXPECT_EQ(get(0, 0x11000, 4), "data");
  EXPECT_GE(k->counters().overwrite_slow_pages, 2u);
  auto r = k->regions(1);
  ASSERT_EQ(r.size(), 2u);  // the shared range, and 0x20000 inherited by copy
  EXPECT_EQ(r[0].end, 0x12000u);
  EXPECT_EQ(r[0].inherit, vm_inherit_t::Share);  // the destination keeps its attributes
}

TEST_F(VmTest, HugeSparseForkAndCopyCostOnlyWhatIsTouched) {
  const uint64_t huge = uint64_t{4} << 30;  // 4 GiB
  uint64_t a = 0;
  EXPECT_EQ(k->allocate(0, &a, huge, true), KERN_SUCCESS);
  uint64_t b = 0;
  EXPECT_EQ(k->allocate(0, &b, huge, true), KERN_SUCCESS);
  put(0, a, "first");
  put(0, a + huge / 2, "middle");
  put(0, a + huge - P, "last");
  uint64_t grabbed = k->counters().pages_grabbed;
  k->fork(0, 1);
  EXPECT_EQ(k->vm_copy(0, a, huge, b), KERN_SUCCESS);
  EXPECT_EQ(k->vm_read(1, a, huge, 0), KERN_SUCCESS);
  EXPECT_EQ(k->counters().pages_grabbed, grabbed);  // no page was copied
  EXPECT_EQ(get(0, b + huge / 2, 6), "middle");
  EXPECT_EQ(get(1, a + huge - P, 4), "last");
  uint64_t c = 0;
  EXPECT_EQ(k->copyout(1, 0, &c), KERN_SUCCESS);
  EXPECT_EQ(get(1, c, 5), "first");
  std::vector<uint64_t> poi;
  k->pages_of_interest(0, poi);
  EXPECT_EQ(poi.size(), 6u);  // three pages in each of two ranges
}

TEST_F(VmTest, VmCopyIntoHugeSharedDestinationVisitsOnlyTouchedPages) {
  // vm_map_copy_overwrite's slow path (a shared destination) visits only the pages some
  // object of the source or destination chain holds, resident or paged out.
  const uint64_t half = uint64_t{2} << 30;  // 2 GiB source, 2 GiB destination
  const uint64_t src = 0x100000000, dst = src + half;
  alloc(0, src, 2 * half);
  EXPECT_EQ(k->inherit(0, src, 2 * half, vm_inherit_t::Share), KERN_SUCCESS);
  k->fork(0, 5);
  put(0, src + P, "src1");       // copied over a destination page that holds data
  put(0, dst + P, "dst1");
  put(5, dst + 5 * P, "dst5");   // zero in the source: zero-filled in the destination
  put(0, dst - P, "last");       // paged out below: found through the default pager
  k->pageout(0, true);
  put(0, src + 2 * P, "src2");   // copied over a destination page that is absent
  uint64_t slow = k->counters().overwrite_slow_pages;
  uint64_t grabbed = k->counters().pages_grabbed;
  EXPECT_EQ(k->vm_copy(0, src, half, dst), KERN_SUCCESS);
  EXPECT_EQ(k->counters().overwrite_slow_pages - slow, 4u);  // P, 2P, 5P, half - P
  EXPECT_LT(k->counters().pages_grabbed - grabbed, 16u);
  for (unsigned t : {0u, 5u}) {
    EXPECT_EQ(get(t, dst + P, 4), "src1");
    EXPECT_EQ(get(t, dst + 2 * P, 4), "src2");
    EXPECT_EQ(get(t, dst + 5 * P, 4), zeros(4));
    EXPECT_EQ(get(t, dst + half - P, 4), "last");
    EXPECT_EQ(get(t, dst + half / 2, 4), zeros(4));  // untouched
    EXPECT_EQ(get(t, src + P, 4), "src1");           // the source is unchanged
    EXPECT_EQ(get(t, src + 5 * P, 4), zeros(4));
  }
  EXPECT_LT(k->frames_owned(), 64u);
  expect_clean("after vm_copy into a huge shared destination");
}

TEST_F(VmTest, FramePressurePagesOutInsteadOfFailing) {
  SystemConfig cfg;
  cfg.frames = 12;
  make(cfg);
  alloc(0, 0x10000, 32 * P);
  for (int i = 0; i < 32; ++i) put(0, 0x10000 + i * P, tag("page", i));
  k->fork(0, 1);
  for (int i = 0; i < 32; i += 3) put(1, 0x10000 + i * P, tag("kid", i));
  EXPECT_GT(k->counters().grab_evictions, 0u);
  EXPECT_GT(k->counters().pageins, 0u);
  expect_clean("under pressure");
  for (int i = 0; i < 32; ++i) {
    std::string want = tag("page", i);
    EXPECT_EQ(get(0, 0x10000 + i * P, want.size()), want);
    std::string kid = i % 3 == 0 ? tag("kid", i) : want;
    EXPECT_EQ(get(1, 0x10000 + i * P, kid.size()), kid);
  }
}

TEST_F(VmTest, NoFrameAtAllIsAResourceShortage) {
  SystemConfig cfg;
  cfg.frames = 4;  // the PML4, one page: no room for the three lower tables
  make(cfg);
  alloc(0, 0x10000, P);
  Access w = k->write(0, 0x10000, {reinterpret_cast<const uint8_t*>("z"), 1}, 0);
  EXPECT_EQ(w.kr, KERN_RESOURCE_SHORTAGE);
  EXPECT_EQ(w.fault_addr, 0x10000u);
  expect_clean("after shortage");
}

TEST_F(VmTest, PageoutAllIsContentNeutral) {
  alloc(0, 0x10000, 8 * P);
  for (int i = 0; i < 8; i += 2) put(0, 0x10000 + i * P, tag("v", i));
  EXPECT_EQ(k->inherit(0, 0x10000, 2 * P, vm_inherit_t::Share), KERN_SUCCESS);
  k->fork(0, 1);
  put(1, 0x12000, "c2");
  EXPECT_EQ(k->vm_read(0, 0x10000, 8 * P, 0), KERN_SUCCESS);
  put(0, 0x10000, "w0");
  auto before = [&](unsigned t) {
    std::vector<std::string> v;
    for (int i = 0; i < 8; ++i) v.push_back(get(t, 0x10000 + i * P, 4));
    return v;
  };
  auto t0 = before(0), t1 = before(1);
  k->pageout(0, true);
  EXPECT_EQ(k->frames_owned(), 0u);
  EXPECT_GT(k->counters().pagers_created, 0u);
  expect_clean("after pageout all");
  Provenance pr = k->provenance(0, 0x12000);
  EXPECT_EQ(pr.kind, Provenance::Kind::PagedOut);
  std::vector<uint64_t> poi;
  k->pages_of_interest(0, poi);
  EXPECT_FALSE(poi.empty());
  EXPECT_EQ(before(0), t0);
  EXPECT_EQ(before(1), t1);
  uint64_t a = 0;
  EXPECT_EQ(k->copyout(1, 0, &a), KERN_SUCCESS);
  EXPECT_EQ(get(1, a, 2), "v0");
  put(1, 0x10000, "x1");  // a write after page-in pushes the paged-in page correctly
  EXPECT_EQ(get(0, 0x10000, 2), "x1");
}

// What if a clean zero-filled page of a copy object is evicted after the original changed?
// GNU Mach frees it and the copy then shows the original's newer data ("time rewind").
TEST_F(VmTest, EvictingACleanCopyObjectPageKeepsTheSnapshot) {
  alloc(0, 0x10000, P);
  EXPECT_EQ(k->inherit(0, 0x10000, P, vm_inherit_t::Share), KERN_SUCCESS);
  k->fork(0, 1);  // S shared, no page anywhere; copies of it are copy objects
  EXPECT_EQ(k->vm_read(0, 0x10000, P, 0), KERN_SUCCESS);
  uint64_t a = 0;
  EXPECT_EQ(k->copyout(0, 0, &a), KERN_SUCCESS);
  uint64_t s_obj = entry_at(0, 0x10000).object, c_obj = obj(s_obj).copy;
  EXPECT_EQ(get(0, a, 4), zeros(4));  // zero-fills a clean page in the copy object
  EXPECT_TRUE(has_page(c_obj, 0));
  put(1, 0x10000, "new!");  // S changes; the copy object has the page: no push
  k->pageout(0, true);
  EXPECT_EQ(k->counters().pageouts_kept_clean, 1u);
  EXPECT_EQ(get(0, a, 4), zeros(4));
  EXPECT_EQ(get(0, 0x10000, 4), "new!");
}

TEST_F(VmTest, TwoCpusSeeOneMemoryAndTlbsStayCoherent) {
  alloc(0, 0x10000, P);
  put(0, 0x10000, "cpu0", 0);
  EXPECT_EQ(get(0, 0x10000, 4, 1), "cpu0");
  k->fork(0, 1);
  put(1, 0x10000, "kid!", 1);        // t1 on cpu1; t0's TLB on cpu0 must not keep RW
  put(0, 0x10000, "par!", 0);
  EXPECT_EQ(get(1, 0x10000, 4, 1), "kid!");
  EXPECT_EQ(get(0, 0x10000, 4, 0), "par!");
  EXPECT_EQ(k->protect(0, 0x10000, P, false, VM_PROT_READ), KERN_SUCCESS);
  EXPECT_EQ(k->write(0, 0x10000, {reinterpret_cast<const uint8_t*>("x"), 1}, 0).kr,
            KERN_PROTECTION_FAILURE);
  expect_clean("two cpus");
}

TEST_F(VmTest, ProvenanceNamesTheSupplyingObject) {
  alloc(0, 0x10000, 2 * P);
  EXPECT_EQ(k->provenance(0, 0x10000).kind, Provenance::Kind::NoObject);
  put(0, 0x10000, "q");
  uint64_t o = entry_at(0, 0x10000).object;
  k->fork(0, 1);
  put(1, 0x11000, "r");
  Provenance pr = k->provenance(1, 0x10000);
  EXPECT_EQ(pr.kind, Provenance::Kind::Resident);
  EXPECT_EQ(pr.object, o);
  EXPECT_EQ(pr.depth, 1u);
  pr = k->provenance(0, 0x11000);
  EXPECT_EQ(pr.kind, Provenance::Kind::ZeroFill);
  EXPECT_EQ(k->provenance(0, 0x50000).kind, Provenance::Kind::Unmapped);
}

// --- Memory objects ----------------------------------------------------------------------------

class MemoryObjectTest : public VmTest {
 protected:
  void object(unsigned m, uint64_t size, CopyStrategy s, bool persist, const std::string& init) {
    k->object_create(m, size, s, persist, {reinterpret_cast<const uint8_t*>(init.data()), init.size()});
  }
  uint64_t map(unsigned t, uint64_t addr, uint64_t size, unsigned m, uint64_t off, bool share,
               kern_return_t want = KERN_SUCCESS) {
    uint64_t a = addr;
    EXPECT_EQ(k->map(t, &a, addr == 0, size, m, off, share, VM_PROT_DEFAULT, VM_PROT_ALL,
                     vm_inherit_t::Copy), want);
    return a;
  }
  std::string file(unsigned m, uint64_t off, uint64_t n) {
    Access a = k->file(m, off, n);
    EXPECT_EQ(a.kr, KERN_SUCCESS);
    return std::string(a.bytes.begin(), a.bytes.end());
  }
};

TEST_F(MemoryObjectTest, MapCodes) {
  object(0, 0x3000, CopyStrategy::Delay, false, "abc");
  map(0, 0x10000, 0, 0, 0, true, KERN_INVALID_ARGUMENT);          // size 0
  map(0, 0x10000, P, 0, 0x800, true, KERN_INVALID_ARGUMENT);      // unaligned offset
  map(0, 0x10000, 2 * P, 0, 2 * P, true, KERN_INVALID_ARGUMENT);  // window outside
  uint64_t a = 0x10000;
  EXPECT_EQ(k->map(0, &a, false, P, 0, 0, true, VM_PROT_ALL, VM_PROT_READ, vm_inherit_t::Copy),
            KERN_INVALID_ARGUMENT);  // prot beyond max
  map(0, 0x1000, P, 0, 0, true, KERN_INVALID_ADDRESS);
  map(0, 0xfffffffffffff000ull, P, 0, 0, true, KERN_INVALID_ARGUMENT);
  EXPECT_EQ(map(0, 0x10800, 0x1800, 0, 0, true), 0x10000u);  // truncated, size rounded
  map(0, 0x11000, P, 0, 0, true, KERN_NO_SPACE);
  EXPECT_EQ(map(0, 0, P, 0, P, false), 0x12000u);             // any
  EXPECT_EQ(get(0, 0x10000, 3), "abc");
  EXPECT_EQ(k->destroy(0), KERN_SUCCESS);
  EXPECT_EQ(k->destroy(0), KERN_INVALID_ARGUMENT);
  map(0, 0x20000, P, 0, 0, true, KERN_INVALID_ARGUMENT);
  Access f = k->file(0, 0, 4);
  EXPECT_EQ(f.kr, KERN_SUCCESS);
  EXPECT_EQ(f.unknown, std::vector<uint8_t>(4, 1));
  EXPECT_EQ(k->provenance(0, 0x10000).lost, true);
  Access r = k->read(0, 0x10000, 1, 0);  // unknown memory, but usable
  EXPECT_EQ(r.kr, KERN_SUCCESS);
}

TEST_F(MemoryObjectTest, SharedMappingsAndTheStoreAreOneMemory) {
  object(1, 2 * P, CopyStrategy::None, true, "store");
  map(0, 0x10000, 2 * P, 1, 0, true);
  k->task_create(2);
  map(2, 0x40000, P, 1, P, true);
  put(0, 0x11000, "via t0");
  EXPECT_EQ(get(2, 0x40000, 6), "via t0");
  EXPECT_EQ(file(1, P, 6), "via t0");  // file returns dirty pages first
  EXPECT_EQ(k->manager_write(1, 0x1002, {reinterpret_cast<const uint8_t*>("MW"), 2}), KERN_SUCCESS);
  EXPECT_EQ(get(0, 0x11000, 6), "viMWt0");
  EXPECT_EQ(k->manager_write(1, 2 * P - 1, {reinterpret_cast<const uint8_t*>("xx"), 2}),
            KERN_INVALID_ARGUMENT);
  EXPECT_EQ(k->file(1, P, P + 1).kr, KERN_INVALID_ARGUMENT);
}

TEST_F(MemoryObjectTest, EveryStrategyCopiesASnapshot) {
  const CopyStrategy strategies[] = {CopyStrategy::None, CopyStrategy::Call, CopyStrategy::Delay};
  for (unsigned m = 0; m < 3; ++m) {
    object(m, 2 * P, strategies[m], false, "orig");
    uint64_t base = 0x100000 * (m + 1);
    map(0, base, 2 * P, m, 0, true);
    put(0, base + P, "second");
    uint64_t c = map(0, base + 0x10000, 2 * P, m, 0, false);
    put(0, base, "ORIG");          // after the copy: the copy keeps "orig"
    put(0, base + P, "SECOND");
    EXPECT_EQ(get(0, c, 4), "orig") << "strategy " << m;
    EXPECT_EQ(get(0, c + P, 6), "second") << "strategy " << m;
    put(0, c, "mine");             // and writing the copy does not touch the object
    EXPECT_EQ(get(0, base, 4), "ORIG");
    EXPECT_EQ(file(m, 0, 4), "ORIG");
  }
  EXPECT_EQ(k->counters().copies_slowly, 1u);
  EXPECT_EQ(k->counters().copies_call, 1u);
  EXPECT_GE(k->counters().unlocks, 1u);
  EXPECT_GE(k->counters().copies_delayed, 1u);
  expect_clean("after copies");
}

TEST_F(MemoryObjectTest, CopyCallSurvivesPageoutOfLockedPages) {
  object(0, 4 * P, CopyStrategy::Call, false, "a");
  map(0, 0x10000, 4 * P, 0, 0, true);
  put(0, 0x11000, "b");
  k->pageout(0, true);  // source pages go back to the manager
  uint64_t c = map(0, 0, 4 * P, 0, 0, false);
  put(0, 0x10000, "A");  // paged in write-locked: unlock saves "a" for the copy
  put(0, 0x11000, "B");
  k->pageout(0, true);
  EXPECT_EQ(get(0, c, 1), "a");
  EXPECT_EQ(get(0, c + P, 1), "b");
  EXPECT_EQ(file(0, 0, 1), "A");
}

TEST_F(MemoryObjectTest, DestroyMakesCopiesIndependent) {
  object(0, 2 * P, CopyStrategy::Delay, false, "delay");
  object(1, 2 * P, CopyStrategy::Call, false, "call");
  map(0, 0x10000, 2 * P, 0, 0, true);
  map(0, 0x20000, 2 * P, 1, 0, true);
  uint64_t c0 = map(0, 0, 2 * P, 0, 0, false);
  uint64_t c1 = map(0, 0, 2 * P, 1, 0, false);
  EXPECT_EQ(k->vm_read(0, 0x20000, 2 * P, 0), KERN_SUCCESS);
  EXPECT_EQ(k->destroy(0), KERN_SUCCESS);
  EXPECT_EQ(k->destroy(1), KERN_SUCCESS);
  EXPECT_EQ(get(0, c0, 5), "delay");
  EXPECT_EQ(get(0, c1, 4), "call");
  uint64_t a = 0;
  EXPECT_EQ(k->copyout(0, 0, &a), KERN_SUCCESS);
  EXPECT_EQ(get(0, a, 4), "call");
  EXPECT_EQ(k->read(0, 0x10000, 1, 0).kr, KERN_SUCCESS);  // unknown contents
  expect_clean("after destroy");
}

TEST_F(MemoryObjectTest, TheCacheKeepsPersistentObjectsUpToItsBound) {
  SystemConfig cfg;
  cfg.cache = 1;
  make(cfg);
  object(0, P, CopyStrategy::Delay, true, "p0");
  object(1, P, CopyStrategy::Delay, true, "p1");
  object(2, P, CopyStrategy::Delay, false, "np");
  for (unsigned m = 0; m < 3; ++m) {
    map(0, 0x10000, P, m, 0, true);
    put(0, 0x10000, tag("w", m));
    EXPECT_EQ(k->deallocate(0, 0x10000, P), KERN_SUCCESS);
  }
  // m0 was cached, then trimmed when m1 came in (bound 1); m2 does not persist.
  EXPECT_EQ(k->system().cached.size(), 1u);
  EXPECT_EQ(k->counters().cache_trims, 1u);
  EXPECT_EQ(file(0, 0, 2), "w0");  // termination returned the dirty page
  map(0, 0x10000, P, 1, 0, true);
  EXPECT_EQ(k->counters().cache_hits, 1u);
  EXPECT_EQ(get(0, 0x10000, 2), "w1");
  EXPECT_EQ(file(2, 0, 2), "w2");
  // Evicting the last page of a cached object collects it; its data is in the store.
  EXPECT_EQ(k->deallocate(0, 0x10000, P), KERN_SUCCESS);
  EXPECT_EQ(k->system().cached.size(), 1u);
  uint64_t objects = k->object_count();
  k->pageout(0, true);
  EXPECT_TRUE(k->system().cached.empty());
  EXPECT_EQ(k->object_count(), objects - 1);
  EXPECT_EQ(file(1, 0, 2), "w1");
}

TEST_F(MemoryObjectTest, ForkCopyOfAnUnreadableObjectMappingTerminates) {
  object(0, P, CopyStrategy::None, false, "perm");
  map(0, 0x10000, P, 0, 0, true);
  EXPECT_EQ(k->protect(0, 0x10000, P, false, VM_PROT_NONE), KERN_SUCCESS);
  k->fork(0, 1);
  EXPECT_EQ(k->protect(1, 0x10000, P, false, VM_PROT_READ), KERN_SUCCESS);
  EXPECT_EQ(get(1, 0x10000, 4), "perm");
}

// --- Device memory (vm_object_page_map) ------------------------------------------------------

TEST_F(MemoryObjectTest, DeviceMemoryIsMappedNeverCopiedNorEvicted) {
  SystemConfig cfg;
  cfg.frames = 32;  // memory pressure: pageout must never take a device page
  make(cfg);
  const uint8_t init[] = {'r', 'o', 'm'};
  k->device_create(3, 0x1800, init);  // rounded to 2 pages
  EXPECT_EQ(k->memory_object(3)->size(), 2 * P);
  map(0, 0x40000, 2 * P, 3, 0, true);
  uint32_t ram_before = k->frames_owned();
  EXPECT_EQ(get(0, 0x40000, 3), "rom");
  put(0, 0x41000, "cpu");
  // Two private, wired pages whose frames are the device's, and no RAM frame spent.
  const VmObject* dev = k->memory_object(3)->kobject;
  ASSERT_NE(dev, nullptr);
  ObjectInfo o = obj(dev->id);
  ASSERT_EQ(o.pages.size(), 2u);
  for (const PageInfo& pg : o.pages) {
    EXPECT_TRUE(pg.device);
    EXPECT_EQ(pg.wire_count, 1u);
    EXPECT_GE(pg.frame, k->machine().memory().device_base());
  }
  EXPECT_EQ(k->frames_owned(), ram_before);
  EXPECT_EQ(k->counters().device_pages_mapped, 2u);
  EXPECT_EQ(file(3, P, 3), "cpu");  // the store is the device memory: no return needed
  // A copy is a snapshot; the device changing its memory shows in shared mappings only.
  uint64_t c = map(0, 0, 2 * P, 3, 0, false);
  k->fork(0, 1);
  EXPECT_EQ(k->manager_write(3, P, {reinterpret_cast<const uint8_t*>("hw!"), 3}), KERN_SUCCESS);
  EXPECT_EQ(get(0, 0x41000, 3), "hw!");
  EXPECT_EQ(get(1, 0x41000, 3), "cpu");  // fork COPY of a shared device mapping: eager copy
  EXPECT_EQ(get(0, c + P, 3), "cpu");
  // Pressure: 64 anonymous pages through 32 frames, then pageout of everything.
  alloc(0, 0x100000, 64 * P);
  for (uint64_t i = 0; i < 64; ++i) put(0, 0x100000 + i * P, tag("a", long(i)));
  k->pageout(0, true);
  EXPECT_EQ(obj(dev->id).pages.size(), 2u);
  EXPECT_EQ(get(0, 0x41000, 3), "hw!");
  for (uint64_t i = 0; i < 64; ++i) {
    std::string want = tag("a", long(i));
    EXPECT_EQ(get(0, 0x100000 + i * P, want.size()), want);
  }
  // Unmapped everywhere: the object goes (nopersist), the device keeps its memory.
  k->terminate(1);
  EXPECT_EQ(k->deallocate(0, 0x40000, 2 * P), KERN_SUCCESS);
  EXPECT_EQ(k->memory_object(3)->kobject, nullptr);
  EXPECT_EQ(k->counters().device_pages_released, 2u);
  EXPECT_EQ(file(3, 0, 3), "rom");
  map(0, 0x40000, P, 3, P, true);
  EXPECT_EQ(get(0, 0x40000, 3), "hw!");
  expect_clean("device");
  // Destroy: the device page leaves every pmap, its frame stays device memory.
  EXPECT_EQ(k->destroy(3), KERN_SUCCESS);
  expect_clean("after destroy");
  EXPECT_EQ(get(0, c, 3), "rom");
}

// The checkers must be able to fail: a corrupted reference count is reported by name.
TEST_F(VmTest, InvariantCheckerReportsACorruptedRefCount) {
  alloc(0, 0x10000, P);
  put(0, 0x10000, "v");
  VmObject* o = const_cast<VmSystem&>(k->system()).objects.begin()->second;
  ++o->ref_count;
  std::vector<Violation> v;
  check_vm_invariants(*k, v);
  ASSERT_FALSE(v.empty());
  EXPECT_EQ(v[0].oracle, Oracle::ref_counts);
  --o->ref_count;
}

// --- Concurrency (docs/concurrency.md) -------------------------------------------------

TEST(YieldPoints, TableMatchesTheDocs) {
  // docs/concurrency.md shows vm/yield_points.def as a table between two markers.
  const auto shown = vmfuzz::test::doc_block(std::string(VMFUZZ_SOURCE_DIR) + "/docs/concurrency.md", "yield points");
  ASSERT_TRUE(shown) << "docs/concurrency.md: no yield points table between markers";
  std::string want = "| yield point | where | waits for |\n|---|---|---|\n";
#define VMFUZZ_YIELD(E, NAME, WHERE, WAITS) want += std::string("| `") + NAME + "` | " + WHERE + " | " + WAITS + " |\n";
#include "vm/yield_points.def"
#undef VMFUZZ_YIELD
  EXPECT_EQ(*shown, want);
}

TEST(Scheduler, WhatIfAReadWaitsForAHeldManagerItResumesWhereItStopped) {
  Kernel k(SystemConfig{});
  k.task_create(0);
  k.object_create(0, 2 * P, CopyStrategy::None, true, std::vector<uint8_t>(2 * P, 0x5a));
  uint64_t a = 0x40000;
  ASSERT_EQ(k.map(0, &a, false, 2 * P, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy), KERN_SUCCESS);
  ASSERT_EQ(k.read(0, 0x40000, 4, 0).thread, 0u);  // not held: at once
  k.hold(0);
  Access r = k.read(0, 0x40ffe, 4, 0);  // page 0 resident, page 1 must be asked for
  ASSERT_EQ(r.thread, 1u);
  EXPECT_EQ(r.bytes, std::vector<uint8_t>(2, 0x5a));
  EXPECT_EQ(r.fault_addr, 0x41000u);
  ASSERT_EQ(k.memory_object(0)->requests.size(), 1u);
  EXPECT_EQ(k.scheduler().threads.at(1).where, YieldPoint::DataRequest);
  EXPECT_FALSE(k.run(1, true)) << "a blocked thread is not runnable";
  ReplyInfo info;
  ASSERT_EQ(k.reply(0, 0, true, ReplyHow::Supply, &info), KERN_SUCCESS);
  EXPECT_TRUE(info.exists);
  EXPECT_EQ(info.offset, P);
  EXPECT_EQ(info.owner, 1u);
  ASSERT_TRUE(k.run(0, false));
  std::vector<ThreadStep> steps = k.take_steps();
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_FALSE(steps[0].blocked);
  EXPECT_EQ(steps[0].access.bytes, std::vector<uint8_t>(2, 0x5a));
  EXPECT_TRUE(k.scheduler().threads.empty());
  EXPECT_EQ(k.quiesce_step(), MemorySystem::Quiesce::Done);
}
}  // namespace
}  // namespace vmfuzz::vm
