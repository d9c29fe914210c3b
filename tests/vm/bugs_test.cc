// bugs_test.cc — does every bug of the catalogue (vm/machine/bugs.def) get caught, and is
// every one described in docs/bugs.md?
//
// A battery of small deterministic scenarios, each one a question a Mach VM must answer
// right ("what if the parent writes again after a copy?"). Each scenario reports whether
// it saw something wrong: bytes other than the expected ones, an unexpected result code,
// or a violated invariant (harness/exec/invariants.h). With no bug on, nothing may be seen;
// with any one bug on, at least one scenario must see it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "harness/exec/invariants.h"
#include "vm/machine/bugs.h"
#include "vm/kernel.h"
#include "tests/vm/vm_test_support.h"

namespace vmfuzz::vm {
namespace {

using namespace vmfuzz::bugs;

using test::P;
using test::tag;

/// One run of one scenario: a kernel and a record of what went wrong.
class Probe {
 public:
  explicit Probe(SystemConfig cfg = {}) : k(cfg) { k.task_create(0); }
  ~Probe() = default;

  void alloc(unsigned t, uint64_t a, uint64_t size) {
    uint64_t x = a;
    expect_code(k.allocate(t, &x, size, false), KERN_SUCCESS, "allocate");
  }
  void put(unsigned t, uint64_t a, const std::string& s, unsigned cpu = 0) {
    Access r = k.write(t, a, {reinterpret_cast<const uint8_t*>(s.data()), s.size()}, cpu);
    expect_code(r.kr, KERN_SUCCESS, "write");
  }
  void expect(unsigned t, uint64_t a, const std::string& want, unsigned cpu = 0) {
    Access r = k.read(t, a, want.size(), cpu);
    if (r.kr != KERN_SUCCESS || std::string(r.bytes.begin(), r.bytes.end()) != want)
      seen.push_back("read t" + std::to_string(t) + " differs");
  }
  void expect_code(kern_return_t got, kern_return_t want, const char* what) {
    if (got != want) seen.push_back(std::string(what) + ": " + kern_return_name(got));
  }
  void invariants() {
    std::vector<Violation> v;
    check_vm_invariants(k, v);
    check_tlb_coherence(k, v);
    check_step_invariants(k, v);
    for (auto& x : v) seen.push_back(x.text());
  }
  /// The step invariants only (docs/concurrency.md), as the executor runs them each step.
  void step_invariants() {
    std::vector<Violation> v;
    check_step_invariants(k, v);
    for (auto& x : v) seen.push_back(x.text());
  }
  /// A held memory object m0 of `pages` pages of pat:0x11, mapped shared at 0x40000 in t0.
  void held_object(unsigned pages, bool persist = true) {
    k.object_create(0, pages * P, CopyStrategy::None, persist, DataSpec::pat(0x11, pages * P).materialize());
    uint64_t a = 0x40000;
    expect_code(k.map(0, &a, false, pages * P, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy),
                KERN_SUCCESS, "map");
    k.hold(0);
  }
  /// A read that must block: its thread id (0, and a finding, if it did not block).
  uint32_t blocked_read(uint64_t va, uint64_t size) {
    Access a = k.read(0, va, size, 0);
    if (a.thread == 0) seen.push_back("read did not block on the held manager");
    return a.thread;
  }
  kern_return_t reply(ReplyHow how, unsigned n = 0) {
    ReplyInfo info;
    return k.reply(0, n, true, how, &info);
  }
  /// Run thread id once; its step.
  ThreadStep run(uint32_t id) {
    if (!k.run(id, true)) seen.push_back("thread " + std::to_string(id) + " is not runnable");
    std::vector<ThreadStep> s = k.take_steps();
    return s.empty() ? ThreadStep{} : s.back();
  }
  /// Drain everything; a deadlock is a finding.
  void drain() {
    for (unsigned n = 0; n < 1000; ++n) {
      MemorySystem::Quiesce q = k.quiesce_step();
      step_invariants();
      if (q == MemorySystem::Quiesce::Done || q == MemorySystem::Quiesce::Silenced) return;
      if (q == MemorySystem::Quiesce::Deadlock) break;
    }
    seen.push_back("deadlock: " + std::to_string(k.scheduler().threads.size()) + " threads left");
  }
  /// Teardown with the teardown invariant.
  void finish() {
    invariants();
    for (unsigned c = 0; c < kMaxNames; ++c)
      if (k.copy_exists(c)) k.discard(c);
    for (unsigned t : k.tasks()) k.terminate(t);
    for (unsigned m = 0; m < kMaxNames; ++m) {
      if (k.memory_object(m) && !k.memory_object(m)->destroyed) k.destroy(m);
    }
    std::vector<Violation> v;
    check_teardown(k, v);
    for (auto& x : v) seen.push_back(x.text());
  }

  Kernel k;
  std::vector<std::string> seen;
};

using Scenario = std::function<void(Probe&)>;

std::vector<std::pair<const char*, Scenario>> scenarios() {
  std::vector<std::pair<const char*, Scenario>> s;
  s.emplace_back("what if both sides of a COPY fork write and read?", [](Probe& p) {
    p.alloc(0, 0x10000, 2 * P);
    p.put(0, 0x10000, "parent");
    p.k.fork(0, 1);
    p.expect(1, 0x10000, "parent");   // child maps the shared page (read-only!)
    p.put(1, 0x10000, "child!");
    p.put(0, 0x10000, "PARENT");      // the parent's old PTE must not be writable
    p.expect(1, 0x10000, "child!");
    p.expect(0, 0x10000, "PARENT");
    p.invariants();
  });
  s.emplace_back("what if a shared region is copied twice with writes between?", [](Probe& p) {
    p.alloc(0, 0x10000, P);
    p.put(0, 0x10000, "one");
    p.expect_code(p.k.inherit(0, 0x10000, P, vm_inherit_t::Share), KERN_SUCCESS, "inherit");
    p.k.fork(0, 1);
    p.expect_code(p.k.vm_read(0, 0x10000, P, 0), KERN_SUCCESS, "vm_read");
    p.put(1, 0x10000, "two");
    p.expect_code(p.k.vm_read(0, 0x10000, P, 1), KERN_SUCCESS, "vm_read");
    p.put(0, 0x10000, "six");
    uint64_t a = 0;
    p.expect_code(p.k.copyout(1, 0, &a), KERN_SUCCESS, "copyout");
    p.expect(1, a, "one");
    p.expect_code(p.k.copyout(1, 1, &a), KERN_SUCCESS, "copyout");
    p.expect(1, a, "two");
    p.invariants();
  });
  s.emplace_back("what if a chain collapses through a clipped entry's offset?", [](Probe& p) {
    p.alloc(0, 0x10000, 6 * P);
    for (int i = 0; i < 6; ++i) p.put(0, 0x10000 + i * P, tag("pg", i));
    p.k.fork(0, 1);
    p.expect_code(p.k.protect(0, 0x12000, 4 * P, false, VM_PROT_ALL), KERN_SUCCESS, "protect");
    p.put(0, 0x12000, "w2");   // shadow at offset 0x2000 over the shared object
    p.k.fork(0, 2);
    p.put(0, 0x13000, "w3");   // a second shadow above
    p.k.terminate(2);
    p.put(0, 0x12000, "W2");   // copy-up, then collapse through the offset
    p.expect(0, 0x14000, "pg4");
    p.expect(0, 0x15000, "pg5");
    p.expect(0, 0x13000, "w3");
    p.expect(1, 0x12000, "pg2");
    p.invariants();
  });
  s.emplace_back("what if the parent's shadow holds only some pages of its backing?", [](Probe& p) {
    p.alloc(0, 0x10000, 2 * P);
    p.put(0, 0x10000, "X");
    p.put(0, 0x11000, "Y");
    p.k.fork(0, 1);
    p.put(0, 0x10000, "x");
    p.k.terminate(1);
    p.put(0, 0x10000, "z");
    p.expect(0, 0x11000, "Y");
    p.alloc(0, 0x20000, 3 * P);
    p.put(0, 0x20000, "A");
    p.put(0, 0x21000, "B");
    p.put(0, 0x22000, "C");
    p.k.fork(0, 3);
    p.put(0, 0x20000, "a");
    p.k.terminate(3);
    p.put(0, 0x21000, "b");   // collapse: A is shadowed by a, B by b, C moves
    p.expect(0, 0x20000, "a");
    p.expect(0, 0x21000, "b");
    p.expect(0, 0x22000, "C");
    p.invariants();
  });
  s.emplace_back("what if a page is write-protected and written on another CPU?", [](Probe& p) {
    p.alloc(0, 0x10000, P);
    p.put(0, 0x10000, "rw", 1);
    p.expect_code(p.k.protect(0, 0x10000, P, false, VM_PROT_READ), KERN_SUCCESS, "protect");
    Access w = p.k.write(0, 0x10000, {reinterpret_cast<const uint8_t*>("no"), 2}, 1);
    p.expect_code(w.kr, KERN_PROTECTION_FAILURE, "write after protect");
    p.invariants();
  });
  s.emplace_back("what if memory is read after it was deallocated?", [](Probe& p) {
    p.alloc(0, 0x10000, P);
    p.put(0, 0x10000, "gone");
    p.expect(0, 0x10000, "gone", 1);
    p.expect_code(p.k.deallocate(0, 0x10000, P), KERN_SUCCESS, "deallocate");
    p.expect_code(p.k.read(0, 0x10000, 1, 1).kr, KERN_INVALID_ADDRESS, "read after deallocate");
    p.alloc(0, 0x30000, P);
    p.expect(0, 0x30000, std::string(4, '\0'));  // the freed frame comes back: zeroed?
    p.invariants();
  });
  s.emplace_back("what if a page written through the MMU is paged out?", [](Probe& p) {
    p.alloc(0, 0x10000, 2 * P);
    p.put(0, 0x10000, "keep me");
    p.k.pageout(0, true);
    p.expect(0, 0x10000, "keep me");
    p.invariants();
  });
  s.emplace_back("what if a cached persistent object is mapped again?", [](Probe& p) {
    p.k.object_create(0, P, CopyStrategy::Delay, true, {});
    uint64_t a = 0x10000;
    p.expect_code(p.k.map(0, &a, false, P, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL,
                          vm_inherit_t::Copy), KERN_SUCCESS, "map");
    p.put(0, 0x10000, "cached");
    p.expect_code(p.k.deallocate(0, 0x10000, P), KERN_SUCCESS, "deallocate");
    p.expect_code(p.k.map(0, &a, false, P, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL,
                          vm_inherit_t::Copy), KERN_SUCCESS, "map");
    p.put(0, 0x10800, "more");
    p.expect(0, 0x10000, "cached");
    Access f = p.k.file(0, 0, 6);
    if (std::string(f.bytes.begin(), f.bytes.end()) != "cached") p.seen.push_back("file differs");
    p.invariants();
  });
  s.emplace_back("what if a shared entry with shadowed pages is deallocated?", [](Probe& p) {
    p.alloc(0, 0x10000, P);
    p.put(0, 0x10000, "secret");
    p.k.fork(0, 1);
    p.expect(0, 0x10000, "secret");
    p.expect_code(p.k.inherit(0, 0x10000, P, vm_inherit_t::Share), KERN_SUCCESS, "inherit");
    p.k.fork(0, 2);
    p.expect_code(p.k.deallocate(0, 0x10000, P), KERN_SUCCESS, "deallocate");
    p.expect_code(p.k.read(0, 0x10000, 1, 0).kr, KERN_INVALID_ADDRESS, "read after deallocate");
    p.invariants();
  });
  s.emplace_back("what if a copied region is then shared and written?", [](Probe& p) {
    p.alloc(0, 0x10000, P);
    p.put(0, 0x10000, "base");
    p.k.fork(0, 1);
    p.expect_code(p.k.inherit(0, 0x10000, P, vm_inherit_t::Share), KERN_SUCCESS, "inherit");
    p.k.fork(0, 2);
    p.put(2, 0x10000, "new!");
    p.expect(1, 0x10000, "base");
    p.expect(0, 0x10000, "new!");
    p.invariants();
  });
  s.emplace_back("what if a copy object's clean zero page is evicted after a write?", [](Probe& p) {
    p.alloc(0, 0x10000, P);
    p.expect_code(p.k.inherit(0, 0x10000, P, vm_inherit_t::Share), KERN_SUCCESS, "inherit");
    p.k.fork(0, 1);
    p.expect_code(p.k.vm_read(0, 0x10000, P, 0), KERN_SUCCESS, "vm_read");
    uint64_t a = 0;
    p.expect_code(p.k.copyout(0, 0, &a), KERN_SUCCESS, "copyout");
    p.expect(0, a, std::string(4, '\0'));
    p.put(1, 0x10000, "new!");
    p.k.pageout(0, true);
    p.expect(0, a, std::string(4, '\0'));
    p.invariants();
  });
  s.emplace_back("what if a COPY_CALL copy was read before the source is written?", [](Probe& p) {
    p.k.object_create(0, 2 * P, CopyStrategy::Call, false,
                      {reinterpret_cast<const uint8_t*>("orig"), 4});
    uint64_t a = 0x10000;
    p.expect_code(p.k.map(0, &a, false, 2 * P, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL,
                          vm_inherit_t::Copy), KERN_SUCCESS, "map");
    p.expect_code(p.k.vm_read(0, 0x10000, P, 0), KERN_SUCCESS, "vm_read");
    uint64_t c = 0;
    p.expect_code(p.k.copyout(0, 0, &c), KERN_SUCCESS, "copyout");
    p.expect(0, c, "orig");
    p.put(0, 0x10000, "NEW!");
    p.expect(0, c, "orig");
    p.invariants();
  });
  s.emplace_back("what if a memory object is destroyed after copies were taken?", [](Probe& p) {
    p.k.object_create(0, 2 * P, CopyStrategy::Delay, false,
                      {reinterpret_cast<const uint8_t*>("delay"), 5});
    p.k.object_create(1, 2 * P, CopyStrategy::Call, false,
                      {reinterpret_cast<const uint8_t*>("call"), 4});
    uint64_t a = 0, b = 0;
    p.expect_code(p.k.map(0, &a, true, 2 * P, 0, 0, false, VM_PROT_DEFAULT, VM_PROT_ALL,
                          vm_inherit_t::Copy), KERN_SUCCESS, "map");
    p.expect_code(p.k.map(0, &b, true, 2 * P, 1, 0, false, VM_PROT_DEFAULT, VM_PROT_ALL,
                          vm_inherit_t::Copy), KERN_SUCCESS, "map");
    p.k.destroy(0);
    p.k.destroy(1);
    p.expect(0, a, "delay");
    p.expect(0, b, "call");
    p.invariants();
  });
  s.emplace_back("what if the manager writes a page a task has mapped?", [](Probe& p) {
    p.k.object_create(0, P, CopyStrategy::None, false, {reinterpret_cast<const uint8_t*>("old"), 3});
    uint64_t a = 0x10000;
    p.expect_code(p.k.map(0, &a, false, P, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL,
                          vm_inherit_t::Copy), KERN_SUCCESS, "map");
    p.expect(0, 0x10000, "old");
    p.expect_code(p.k.manager_write(0, 0, {reinterpret_cast<const uint8_t*>("new"), 3}),
                  KERN_SUCCESS, "manager_write");
    p.alloc(0, 0x20000, P);
    p.put(0, 0x20000, "reuse");  // the flushed frame is handed out again
    p.expect(0, 0x10000, "new");
    p.invariants();
  });
  s.emplace_back("what if a freed sub-range is allocated again?", [](Probe& p) {
    p.alloc(0, 0x10000, 2 * P);
    p.put(0, 0x11000, "stale");
    p.expect_code(p.k.deallocate(0, 0x11000, P), KERN_SUCCESS, "deallocate");
    p.alloc(0, 0x11000, P);
    p.expect(0, 0x11000, std::string(5, '\0'));
    p.invariants();
  });
  s.emplace_back("what if the original is written again after its copy's page was paged out?",
                 [](Probe& p) {
    p.alloc(0, 0x10000, P);
    p.put(0, 0x10000, "old");
    p.expect_code(p.k.inherit(0, 0x10000, P, vm_inherit_t::Share), KERN_SUCCESS, "inherit");
    p.k.fork(0, 1);
    p.expect_code(p.k.vm_read(0, 0x10000, P, 0), KERN_SUCCESS, "vm_read");
    p.put(0, 0x10000, "one");  // pushes "old" into the copy object
    p.k.pageout(0, true);      // ... which goes to the copy's default pager
    p.put(0, 0x10000, "two");  // the copy already has the page: no second push
    uint64_t a = 0;
    p.expect_code(p.k.copyout(0, 0, &a), KERN_SUCCESS, "copyout");
    p.expect(0, a, "old");
    p.invariants();
  });
  s.emplace_back("what if a second snapshot is taken after the first received a push?",
                 [](Probe& p) {
    p.alloc(0, 0x10000, 2 * P);
    p.put(0, 0x10000, "A");
    p.put(0, 0x11000, "B");
    p.expect_code(p.k.inherit(0, 0x10000, 2 * P, vm_inherit_t::Share), KERN_SUCCESS, "inherit");
    p.k.fork(0, 1);
    p.expect_code(p.k.vm_read(0, 0x10000, 2 * P, 0), KERN_SUCCESS, "vm_read");
    p.put(0, 0x10000, "a");  // the first copy object is modified
    p.expect_code(p.k.vm_read(0, 0x10000, 2 * P, 1), KERN_SUCCESS, "vm_read");
    p.put(0, 0x11000, "b");  // pushed into the second copy only; the first sees it below
    uint64_t a = 0;
    p.expect_code(p.k.copyout(0, 0, &a), KERN_SUCCESS, "copyout");
    p.expect(0, a, "A");
    p.expect(0, a + P, "B");
    p.invariants();
  });
  s.emplace_back("what if a read-only region is inherited by a child that writes?", [](Probe& p) {
    p.alloc(0, 0x10000, P);
    p.put(0, 0x10000, "ro");
    p.expect_code(p.k.protect(0, 0x10000, P, false, VM_PROT_READ), KERN_SUCCESS, "protect");
    p.k.fork(0, 1);
    Access w = p.k.write(1, 0x10000, {reinterpret_cast<const uint8_t*>("rw"), 2}, 0);
    p.expect_code(w.kr, KERN_PROTECTION_FAILURE, "child write to read-only copy");
    p.expect(1, 0x10000, "ro");
    p.invariants();
  });
  s.emplace_back("what if a COPY_NONE object nobody touched yet is mapped as a copy?", [](Probe& p) {
    p.k.object_create(0, 2 * P, CopyStrategy::None, false,
                      {reinterpret_cast<const uint8_t*>("managed"), 7});
    uint64_t a = 0;
    p.expect_code(p.k.map(0, &a, true, 2 * P, 0, 0, false, VM_PROT_DEFAULT, VM_PROT_ALL,
                          vm_inherit_t::Copy), KERN_SUCCESS, "map");
    p.expect(0, a, "managed");
    p.invariants();
  });
  s.emplace_back("what if a COPY_CALL source page is resident when the copy is made?", [](Probe& p) {
    p.k.object_create(0, P, CopyStrategy::Call, false, {reinterpret_cast<const uint8_t*>("orig"), 4});
    uint64_t a = 0x10000;
    p.expect_code(p.k.map(0, &a, false, P, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL,
                          vm_inherit_t::Copy), KERN_SUCCESS, "map");
    p.expect(0, 0x10000, "orig");  // resident and mapped before the copy
    p.expect_code(p.k.vm_read(0, 0x10000, P, 0), KERN_SUCCESS, "vm_read");
    p.put(0, 0x10000, "NEW!");
    uint64_t c = 0;
    p.expect_code(p.k.copyout(0, 0, &c), KERN_SUCCESS, "copyout");
    p.expect(0, c, "orig");
    p.invariants();
  });
  s.emplace_back("what if execute is dropped from a copy-on-write page?", [](Probe& p) {
    p.alloc(0, 0x10000, P);
    p.put(0, 0x10000, "old");
    p.expect_code(p.k.protect(0, 0x10000, P, false, VM_PROT_ALL), KERN_SUCCESS, "protect");
    p.k.fork(0, 1);
    p.expect(0, 0x10000, "old");
    p.expect_code(p.k.protect(0, 0x10000, P, false, VM_PROT_DEFAULT), KERN_SUCCESS, "protect");
    p.put(0, 0x10000, "new");  // must still copy on write
    p.expect(1, 0x10000, "old");
    p.invariants();
  });
  s.emplace_back("what if a page is read, then written through its TLB entry, then paged out?",
                 [](Probe& p) {
    p.alloc(0, 0x10000, P);
    p.expect(0, 0x10000, std::string(4, '\0'));  // a clean, writable TLB entry
    p.put(0, 0x10000, "late");
    p.k.pageout(0, true);
    p.expect(0, 0x10000, "late");
    p.invariants();
  });
  s.emplace_back("what if a device is written through a shared mapping, then changes itself?", [](Probe& p) {
    p.k.device_create(0, 2 * P, {reinterpret_cast<const uint8_t*>("rom"), 3});
    uint64_t a = 0x10000;
    p.expect_code(p.k.map(0, &a, false, 2 * P, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL,
                          vm_inherit_t::Copy), KERN_SUCCESS, "map");
    p.expect(0, 0x10000, "rom");
    p.put(0, 0x11000, "cpu");
    Access f = p.k.file(0, P, 3);
    if (std::string(f.bytes.begin(), f.bytes.end()) != "cpu") p.seen.push_back("device missed a store");
    p.expect_code(p.k.manager_write(0, 0, {reinterpret_cast<const uint8_t*>("dev"), 3}), KERN_SUCCESS,
                  "manager_write");
    p.expect(0, 0x10000, "dev");
    p.invariants();
  });
  // Races (docs/concurrency.md): a held manager answers when the scenario says so.
  s.emplace_back("what if two reads fault on one page while its data request is in flight?", [](Probe& p) {
    p.held_object(2);
    p.blocked_read(0x40000, 8);
    p.blocked_read(0x40004, 8);  // waits on the busy page; no second request
    p.step_invariants();
    p.drain();
    p.expect(0, 0x40000, std::string("\x11\x18\x1f\x26", 4));
    p.invariants();
  });
  s.emplace_back("what if the mapping goes away while its page is being paged in?", [](Probe& p) {
    p.held_object(1, /*persist=*/false);
    p.blocked_read(0x40000, 8);
    p.expect_code(p.k.deallocate(0, 0x40000, P), KERN_SUCCESS, "deallocate");
    p.step_invariants();  // the request's paging reference keeps the object alive
    p.expect_code(p.reply(ReplyHow::Supply), KERN_SUCCESS, "reply");
    p.step_invariants();
    p.drain();
    p.invariants();
  });
  s.emplace_back("what if the manager destroys its object while a request is in flight?", [](Probe& p) {
    p.held_object(1);
    p.blocked_read(0x40000, 8);
    p.blocked_read(0x40000, 4);
    p.expect_code(p.k.destroy(0), KERN_SUCCESS, "destroy");
    p.step_invariants();
    p.drain();  // the waiters retry and find the pager gone
    p.invariants();
  });
  s.emplace_back("what if the data arrives and the fault waiting for it is woken?", [](Probe& p) {
    p.held_object(1);
    uint32_t t = p.blocked_read(0x40000, 8);
    p.expect_code(p.reply(ReplyHow::Supply), KERN_SUCCESS, "reply");
    p.step_invariants();
    ThreadStep st = p.run(t);
    if (st.blocked || st.access.kr != KERN_SUCCESS) p.seen.push_back("woken read did not complete");
    p.drain();
  });
  s.emplace_back("what if faults touch more pages of one object than may be absent at once?", [](Probe& p) {
    p.held_object(6);
    for (unsigned i = 0; i < 6; ++i) p.blocked_read(0x40000 + i * P, 4);
    p.step_invariants();
    p.drain();
    p.invariants();
  });
  s.emplace_back("what if the manager answers a request with data_error?", [](Probe& p) {
    p.held_object(1);
    uint32_t t = p.blocked_read(0x40000, 8);
    p.expect_code(p.reply(ReplyHow::Error), KERN_SUCCESS, "reply");
    ThreadStep st = p.run(t);
    if (st.blocked || st.access.kr != KERN_MEMORY_ERROR || st.access.fault_addr != 0x40000)
      p.seen.push_back("data_error did not fail the read with KERN_MEMORY_ERROR at its page");
    p.drain();
    p.invariants();
  });
  s.emplace_back("what if two faults wake from a page whose request failed?", [](Probe& p) {
    p.held_object(1);
    p.blocked_read(0x40000, 8);
    uint32_t second = p.blocked_read(0x40000, 8);
    uint32_t third = p.blocked_read(0x40000, 8);
    p.expect_code(p.reply(ReplyHow::Error), KERN_SUCCESS, "reply");
    ThreadStep st = p.run(second);  // the page is gone: it asks again, and waits
    if (!st.blocked) p.seen.push_back("the second fault completed without its page");
    st = p.run(third);  // woken from the same page, now busy with the second's request
    if (!st.blocked) p.seen.push_back("the third fault took a page still in transit");
    p.step_invariants();
    p.drain();
    p.invariants();
  });
  s.emplace_back("what if the manager says data_unavailable?", [](Probe& p) {
    p.held_object(1);
    p.blocked_read(0x40000, 8);
    p.expect_code(p.reply(ReplyHow::Unavailable), KERN_SUCCESS, "reply");
    p.step_invariants();
    p.drain();
    p.expect(0, 0x40000, std::string(8, '\0'));
    p.invariants();
  });
  s.emplace_back("what if an eager copy of an object is made while one of its pages is absent?", [](Probe& p) {
    p.held_object(1);
    p.blocked_read(0x40000, 4);
    uint64_t a = 0x60000;
    p.expect_code(p.k.map(0, &a, false, P, 0, 0, false, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy),
                  KERN_SUCCESS, "map copy");
    p.expect(0, 0x60000, std::string("\x11\x18\x1f\x26", 4));  // the manager's data, not the frame's
    p.drain();
    p.invariants();
  });
  s.emplace_back("what if vm_copy overwrites a page whose data request is in flight?", [](Probe& p) {
    p.held_object(1);
    p.alloc(0, 0x80000, P);
    p.put(0, 0x80000, "copied");
    p.blocked_read(0x40000, 4);
    p.expect_code(p.k.vm_copy(0, 0x80000, P, 0x40000), KERN_SUCCESS, "vm_copy");
    if (p.k.op_thread() == 0) p.seen.push_back("vm_copy did not wait for the page in transit");
    p.step_invariants();  // it waits, having written nothing
    p.drain();
    p.expect(0, 0x40000, "copied");
    p.invariants();
  });
  s.emplace_back("what if a vm_copy that waited wakes while a page before the one it waited for went in transit?",
                 [](Probe& p) {
    p.held_object(2);
    p.alloc(0, 0x80000, 2 * P);
    p.put(0, 0x80000, "copied");
    p.put(0, 0x81000, "second");
    p.blocked_read(0x41000, 4);  // the second page goes in transit
    p.expect_code(p.k.vm_copy(0, 0x80000, 2 * P, 0x40000), KERN_SUCCESS, "vm_copy");
    uint32_t copy = p.k.op_thread();  // the vm_copy waits for it (overwrite_busy)
    if (copy == 0) p.seen.push_back("vm_copy did not wait for the page in transit");
    p.blocked_read(0x40000, 4);  // now the first page goes in transit too
    p.expect_code(p.reply(ReplyHow::Supply, 0), KERN_SUCCESS, "reply");  // the second page's data
    ThreadStep st = p.run(copy);  // from the top: it must wait again, for the first page
    if (!st.blocked) p.seen.push_back("the woken vm_copy wrote over a page in transit");
    p.step_invariants();
    p.drain();
    p.expect(0, 0x40000, "copied");
    p.expect(0, 0x41000, "second");
    p.invariants();
  });
  s.emplace_back("what if the manager flushes its object while a page of it is absent?", [](Probe& p) {
    p.held_object(2);
    p.blocked_read(0x40000, 4);
    p.expect_code(p.k.manager_write(0, 0, {reinterpret_cast<const uint8_t*>("new"), 3}), KERN_SUCCESS,
                  "manager_write");
    p.step_invariants();  // the page in transit is not the flush's to drop
    p.drain();
    p.invariants();
  });
  s.emplace_back("what if the manager supplies, unasked, a page a task has written?", [](Probe& p) {
    p.k.object_create(0, P, CopyStrategy::None, true, DataSpec::pat(0x11, P).materialize());
    uint64_t a = 0x40000;
    p.expect_code(p.k.map(0, &a, false, P, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy),
                  KERN_SUCCESS, "map");
    p.put(0, 0x40000, "dirty");
    p.expect_code(p.k.supply(0, 0), KERN_SUCCESS, "supply");  // ignored: the page is resident
    p.expect(0, 0x40000, "dirty");
    p.invariants();
  });
  s.emplace_back("what if a task faults before its manager answered memory_object_init?", [](Probe& p) {
    p.k.object_create(0, P, CopyStrategy::None, true, DataSpec::pat(0x11, P).materialize());
    p.k.hold_init(0);
    uint64_t a = 0x40000;
    p.expect_code(p.k.map(0, &a, false, P, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy),
                  KERN_SUCCESS, "map");
    uint32_t t = p.blocked_read(0x40000, 4);  // waits for pager_ready, asks nothing yet
    p.step_invariants();
    p.k.ready(0);
    p.step_invariants();  // the waiter is runnable now
    ThreadStep st = p.run(t);
    if (st.blocked || st.access.kr != KERN_SUCCESS) p.seen.push_back("the read did not complete once ready");
    p.drain();
    p.invariants();
  });
  s.emplace_back("what if the kernel answers a lock request before its data_return is acknowledged?", [](Probe& p) {
    p.k.object_create(0, P, CopyStrategy::None, true, DataSpec::pat(0x11, P).materialize());
    uint64_t a = 0x40000;
    p.expect_code(p.k.map(0, &a, false, P, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy),
                  KERN_SUCCESS, "map");
    p.put(0, 0x40000, "dirty");
    p.k.hold(0);
    p.expect_code(p.k.lock(0, 0, P, kLockReturn | kLockFlush), KERN_SUCCESS, "lock");
    p.step_invariants();  // the return is in flight: no lock_completed yet
    if (!p.k.ack(0, 0, true)) p.seen.push_back("no data_return was pending");
    p.step_invariants();
    p.drain();
    p.invariants();
  });
  s.emplace_back("what if a task writes a page whose pageout data_return is unacknowledged?", [](Probe& p) {
    p.k.object_create(0, P, CopyStrategy::None, true, DataSpec::pat(0x11, P).materialize());
    uint64_t a = 0x40000;
    p.expect_code(p.k.map(0, &a, false, P, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy),
                  KERN_SUCCESS, "map");
    p.put(0, 0x40000, "old");
    p.k.hold(0);
    p.k.pageout(0, true);  // the dirty page goes to m0 by message: busy until the ack
    Access w = p.k.write(0, 0x40000, std::vector<uint8_t>{'n', 'e', 'w'}, 0);
    if (w.thread == 0) p.seen.push_back("the write did not wait for the page being cleaned");
    p.step_invariants();
    p.k.ack(0, 0, true);
    p.drain();
    p.expect(0, 0x40000, "new");
    p.invariants();
  });
  return s;
}

/// How many scenarios see something wrong with the current bug switches.
unsigned detections(std::vector<std::string>* what) {
  unsigned n = 0;
  for (auto& [question, run] : scenarios()) {
    Probe p;
    run(p);
    p.finish();
    if (!p.seen.empty()) {
      ++n;
      if (what) what->push_back(std::string(question) + " -> " + p.seen.front());
    }
  }
  return n;
}

TEST(BugCatalogue, NoBugNoDetection) {
  clear_bugs();
  std::vector<std::string> what;
  EXPECT_EQ(detections(&what), 0u);
  for (auto& w : what) ADD_FAILURE() << w;
}

TEST(BugCatalogue, NamesRoundTrip) {
  for (unsigned i = 0; i < kBugCount; ++i) {
    Bug b{};
    ASSERT_TRUE(bug_from_name(bug_name(Bug(i)), &b));
    EXPECT_EQ(unsigned(b), i);
    EXPECT_NE(std::string(bug_description(Bug(i))), "");
  }
  Bug b{};
  EXPECT_FALSE(bug_from_name("no_such_bug", &b));
}

/// docs/bugs.md, found from this source file's path (tests/vm/ -> the repository root).
std::string bugs_doc() {
  std::filesystem::path doc =
      std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "docs" / "bugs.md";
  std::ifstream in(doc);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(BugCatalogue, EveryBugHasAParagraphInDocs) {
  std::string doc = bugs_doc();
  ASSERT_FALSE(doc.empty()) << "docs/bugs.md not found next to the tests";
  size_t last = 0;
  for (unsigned i = 0; i < kBugCount; ++i) {
    std::string heading = std::string("\n## `") + bug_name(Bug(i)) + "`\n";
    size_t at = doc.find(heading);
    if (at == std::string::npos) {
      ADD_FAILURE() << bug_name(Bug(i)) << ": no section in docs/bugs.md";
      continue;
    }
    EXPECT_GE(at, last) << bug_name(Bug(i)) << ": docs/bugs.md is not in bugs.def order";
    last = at;
    // The paragraph: at least a sentence of text before the next heading.
    size_t body = at + heading.size();
    size_t next = doc.find("\n## ", body);
    std::string para = doc.substr(body, next == std::string::npos ? std::string::npos : next - body);
    EXPECT_GT(para.size(), 80u) << bug_name(Bug(i)) << ": paragraph in docs/bugs.md too short";
  }
  // No section for a bug that is not in the table.
  for (size_t at = doc.find("\n## `"); at != std::string::npos; at = doc.find("\n## `", at + 1)) {
    size_t end = doc.find('`', at + 5);
    Bug b{};
    EXPECT_TRUE(bug_from_name(doc.substr(at + 5, end - at - 5), &b))
        << "docs/bugs.md names a bug not in bugs.def: " << doc.substr(at + 5, end - at - 5);
  }
}

TEST(BugCatalogue, AtLeastTwentyFiveBugs) { EXPECT_GE(kBugCount, 25u); }

TEST(BugCatalogue, AnUnknownNameInTheEnvironmentIsAnErrorNamingTheKnownBugs) {
  if (!bugs_compiled_in()) GTEST_SKIP() << "bug catalogue compiled out";
  EXPECT_EXIT(
      {
        setenv("VMFUZZ_BUG", "missed_push,no_such_bug", 1);
        bugs::detail::g_initialized = false;
        (void)bug_enabled(Bug(0));
      },
      ::testing::ExitedWithCode(2), "VMFUZZ_BUG: unknown bug 'no_such_bug' \\(vm/machine/bugs.def knows: .*missed_push");
}

/// Drain k to its end: the last quiesce_step result.
MemorySystem::Quiesce drain_to_end(Kernel& k) {
  for (unsigned n = 0; n < 1000; ++n) {
    MemorySystem::Quiesce q = k.quiesce_step();
    if (q != MemorySystem::Quiesce::Progress) return q;
  }
  return MemorySystem::Quiesce::Progress;
}

TEST(SilentManager, WhatIfTheOnlyWaitersWaitForASilentManagerIsTheDrainSilencedNotDeadlocked) {
  clear_bugs();
  Probe p;
  p.held_object(2);
  p.k.silent(0);
  p.blocked_read(0x40000, 4);
  p.blocked_read(0x41000, 4);
  EXPECT_EQ(drain_to_end(p.k), MemorySystem::Quiesce::Silenced);
  EXPECT_EQ(p.k.scheduler().threads.size(), 2u);
  ReplyInfo info;
  EXPECT_EQ(p.k.reply(0, 0, true, ReplyHow::Supply, &info), KERN_SUCCESS);
  EXPECT_TRUE(info.exists && info.silent);
  EXPECT_EQ(p.k.memory_object(0)->requests.size(), 2u) << "a silent manager answered";
  p.k.terminate(0);  // the threads go; the requests keep the object until destroy
  EXPECT_TRUE(p.k.scheduler().threads.empty());
  p.finish();
  for (auto& w : p.seen) ADD_FAILURE() << w;
}

TEST(SilentManager, WhatIfAWakeupIsLostWhileAnotherManagerIsSilentIsItStillADeadlock) {
  if (!bugs_compiled_in()) GTEST_SKIP() << "bug catalogue compiled out";
  clear_bugs();
  Probe p;
  p.held_object(1);  // m0: held, answers in the drain
  p.k.object_create(1, P, CopyStrategy::None, true, {});
  uint64_t a = 0x60000;
  ASSERT_EQ(p.k.map(0, &a, false, P, 1, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy), KERN_SUCCESS);
  p.k.silent(1);
  p.blocked_read(0x60000, 4);  // waits for m1 forever: fine
  p.blocked_read(0x40000, 4);  // waits for m0, whose supply will post no wakeup
  set_bug(Bug::LostWakeup, true);
  MemorySystem::Quiesce q = drain_to_end(p.k);
  clear_bugs();
  EXPECT_EQ(q, MemorySystem::Quiesce::Deadlock) << "a thread nobody will wake was taken for a silent manager's";
}

class EveryBug : public ::testing::TestWithParam<unsigned> {};

TEST_P(EveryBug, IsCaught) {
  if (!bugs_compiled_in()) GTEST_SKIP() << "bug catalogue compiled out";
  Bug bug = Bug(GetParam());
  clear_bugs();
  set_bug(bug, true);
  std::vector<std::string> what;
  unsigned n = detections(&what);
  clear_bugs();
  EXPECT_GT(n, 0u) << bug_name(bug) << " (" << bug_description(bug) << ") was not caught";
  if (!what.empty()) std::printf("[ caught   ] %s: %s\n", bug_name(bug), what.front().c_str());
}

INSTANTIATE_TEST_SUITE_P(Catalogue, EveryBug, ::testing::Range(0u, kBugCount),
                         [](const ::testing::TestParamInfo<unsigned>& info) {
                           return std::string(bug_name(Bug(info.param)));
                         });

}  // namespace
}  // namespace vmfuzz::vm
