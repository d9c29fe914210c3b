// forwarding_system.h — a MemorySystem that forwards every call to another.
//
// The base of the decorators with which tests and property self-tests break one side in
// one observable way (override the entry point the injected bug lives in), to prove that
// an oracle fires. Header-only: it is one line per entry point of vocab's MemorySystem.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vmfuzz/vocab.h"

namespace vmfuzz::harness {

/// A MemorySystem that forwards every call to another: the base of the decorators that
/// self-tests use to inject a bug (override the one entry point the bug lives in).
class ForwardingSystem : public MemorySystem {
 public:
  explicit ForwardingSystem(MemorySystem& inner) : in_(inner) {}
  void task_create(unsigned t) override { in_.task_create(t); }
  kern_return_t allocate(unsigned t, uint64_t* a, uint64_t s, bool any) override { return in_.allocate(t, a, s, any); }
  kern_return_t deallocate(unsigned t, uint64_t a, uint64_t s) override { return in_.deallocate(t, a, s); }
  kern_return_t protect(unsigned t, uint64_t a, uint64_t s, bool m, vm_prot_t p) override {
    return in_.protect(t, a, s, m, p);
  }
  kern_return_t inherit(unsigned t, uint64_t a, uint64_t s, vm_inherit_t i) override { return in_.inherit(t, a, s, i); }
  Access write(unsigned t, uint64_t a, std::span<const uint8_t> d, unsigned c) override { return in_.write(t, a, d, c); }
  Access read(unsigned t, uint64_t a, uint64_t s, unsigned c) override { return in_.read(t, a, s, c); }
  void fork(unsigned p, unsigned c) override { in_.fork(p, c); }
  void terminate(unsigned t) override { in_.terminate(t); }
  kern_return_t vm_copy(unsigned t, uint64_t src, uint64_t size, uint64_t dst) override {
    return in_.vm_copy(t, src, size, dst);
  }
  kern_return_t vm_read(unsigned t, uint64_t a, uint64_t s, unsigned c) override { return in_.vm_read(t, a, s, c); }
  kern_return_t vm_write(unsigned t, uint64_t a, unsigned c) override { return in_.vm_write(t, a, c); }
  kern_return_t copyout(unsigned t, unsigned c, uint64_t* a) override { return in_.copyout(t, c, a); }
  void discard(unsigned c) override { in_.discard(c); }
  void object_create(unsigned m, uint64_t s, CopyStrategy st, bool p, std::span<const uint8_t> i) override {
    in_.object_create(m, s, st, p, i);
  }
  void device_create(unsigned m, uint64_t s, std::span<const uint8_t> i) override { in_.device_create(m, s, i); }
  kern_return_t map(unsigned t, uint64_t* a, bool any, uint64_t s, unsigned m, uint64_t o, bool sh, vm_prot_t p,
                    vm_prot_t mp, vm_inherit_t i) override {
    return in_.map(t, a, any, s, m, o, sh, p, mp, i);
  }
  kern_return_t manager_write(unsigned m, uint64_t o, std::span<const uint8_t> d) override {
    return in_.manager_write(m, o, d);
  }
  Access file(unsigned m, uint64_t o, uint64_t s) override { return in_.file(m, o, s); }
  kern_return_t destroy(unsigned m) override { return in_.destroy(m); }
  void pageout(uint64_t n, bool all) override { in_.pageout(n, all); }
  void collect(unsigned t) override { in_.collect(t); }
  std::vector<RegionInfo> regions(unsigned t) const override { return in_.regions(t); }
  void pages_of_interest(unsigned t, std::vector<uint64_t>& out) const override { in_.pages_of_interest(t, out); }
  PeekStatus peek_page(unsigned t, uint64_t va, std::span<uint8_t, kPageSize> out) const override {
    return in_.peek_page(t, va, out);
  }
  PeekStatus peek_object_page(unsigned m, uint64_t o, std::span<uint8_t, kPageSize> out) const override {
    return in_.peek_object_page(m, o, out);
  }
  void object_pages_of_interest(unsigned m, std::vector<uint64_t>& out) const override {
    in_.object_pages_of_interest(m, out);
  }

 protected:
  MemorySystem& in_;
};

}  // namespace vmfuzz::harness
