// model.h — the reference model: what memory a task can see, and nothing else.
//
// Theory of operation
// -------------------
// The model is the oracle the optimized VM is judged against (docs/oracles.md), so it is
// written to be obviously right rather than fast. It knows nothing of VM objects, shadow
// chains, frames, pagers or TLBs. Its whole world is:
//
//   Page     4096 bytes. A Page is immutable once stored; changing a byte stores a new
//            Page. So two Memories may hold the same Page record and a copy never has to
//            copy bytes.
//   Memory   a sparse array of pages indexed by page number; an absent page reads zero
//            (laziness: a 4 GiB allocation is an empty map). Some pages may be *unknown*
//            (undefined after a memory object was destroyed, docs/language.md §Details 13):
//            runs of page numbers, so that a huge unknown range costs one entry; and a
//            Memory with all_unknown set reads unknown everywhere, forever (a destroyed
//            object's store).
//   Region   [start, end) of a task with protection, maximum protection and inheritance,
//            seeing pages first, first+1, ... of one Memory.
//
// A *share* (SHARE inheritance, `map ... share`) is two regions pointing at one Memory.
// A *copy* (COPY inheritance, vm_read, vm_copy, `map ... copy`) is a snapshot: a new
// Memory holding the same Page records, which later writes replace on either side only.
// A memory object is a Memory (its store) plus size, strategy and persistence; shared
// mappings point at the store itself. A copy handle is a Memory numbered from the page of
// its source address, plus the source address and size (vm_write's alignment rule and
// copyout's return value need them). pageout does nothing: the model has no frames.
//
// The rules are docs/language.md; where it leaves something open, the "Decisions" list at the
// top of model.cc says what the model does and why.
//
// This module includes only vmfuzz/vocab.h and the standard library: it must never include
// anything under vm/ (an oracle that shares code with the system it judges shares its bugs).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "vmfuzz/vocab.h"

namespace vmfuzz::model {

/// One page of contents. Immutable once reachable from a Memory (replace, never modify).
struct Page {
  std::array<uint8_t, kPageSize> bytes{};
};
using PageRef = std::shared_ptr<const Page>;

/// A sparse array of pages; absent pages are zero. Held by shared_ptr: every region,
/// handle or object that shares it sees the same cells.
/// Invariant [memory_disjoint]: no entry of `pages` lies inside an unknown run, and runs
/// are disjoint (adjacent runs are allowed); when all_unknown, both maps are empty.
struct Memory {
  std::map<uint64_t, PageRef> pages;          // page index -> contents
  std::map<uint64_t, uint64_t> unknown_runs;  // first page -> one past the last: unknown
  bool all_unknown = false;                   // every page unknown, writes change nothing
};
using MemoryRef = std::shared_ptr<Memory>;

/// A mapped range of one task. Regions of a task never overlap.
struct Region {
  uint64_t start = 0, end = 0;  // page-aligned, start < end
  vm_prot_t prot = VM_PROT_DEFAULT, max_prot = VM_PROT_ALL;
  vm_inherit_t inherit = vm_inherit_t::Copy;
  MemoryRef mem;                // never null
  uint64_t first = 0;           // page index in `mem` seen at `start`
  uint64_t page_of(uint64_t va) const { return first + (va - start) / kPageSize; }
};

/// A task: its regions keyed by start address.
struct Task {
  std::map<uint64_t, Region> regions;
};

/// A copy handle made by vm_read (a vm_map_copy in Mach terms).
struct CopyHandle {
  uint64_t src_addr = 0, size = 0;  // as given to vm_read
  MemoryRef mem;                    // page 0 is the page of trunc_page(src_addr)
  uint64_t page_count = 0;          // 0 for an empty handle (size 0)
};

/// A memory object as its manager sees it.
struct MemoryObject {
  uint64_t size = 0;  // rounded up to pages
  CopyStrategy strategy = CopyStrategy::Delay;
  bool persist = false;
  bool destroyed = false;  // after `destroy`: store->all_unknown is set too
  MemoryRef store;
};

/// The reference model: a MemorySystem whose every op is the plain reading of docs/language.md.
class Model final : public MemorySystem {
 public:
  /// Purpose:    an empty system (no tasks, handles or objects; the harness creates t0).
  /// Conditions: the configuration is recorded only; the model has no frames, CPUs or TLBs.
  explicit Model(const SystemConfig& config);

  /// Purpose:    An independent copy of this model's whole state, for trying several
  ///             continuations from one point (the all-orders check, docs/concurrency.md).
  ///             Memories shared between regions, handles and objects stay shared in the
  ///             copy, among the copy's own; nothing is shared with this model except the
  ///             immutable pages.
  Model clone() const;

  // --- The ops (vocab.h, docs/language.md) ---------------------------------------------
  // Conditions: names are valid as vocab.h says (asserted). Every check runs before any
  //             state changes; a failed op changes nothing, except that vm_write and
  //             copyout consume their handle whatever the result.
  // Results:    exactly the codes of docs/language.md, with the Decisions of model.cc
  //             where it is open.
  //             Accesses, vm_read and vm_copy touching unknown pages succeed; an Access
  //             marks those bytes in `unknown` (D4), a copy of them is unknown (D5).
  void task_create(unsigned t) override;
  kern_return_t allocate(unsigned t, uint64_t* addr, uint64_t size, bool anywhere) override;
  kern_return_t deallocate(unsigned t, uint64_t addr, uint64_t size) override;
  kern_return_t protect(unsigned t, uint64_t addr, uint64_t size, bool set_max,
                        vm_prot_t prot) override;
  kern_return_t inherit(unsigned t, uint64_t addr, uint64_t size, vm_inherit_t inh) override;
  Access write(unsigned t, uint64_t addr, std::span<const uint8_t> data, unsigned cpu) override;
  Access read(unsigned t, uint64_t addr, uint64_t size, unsigned cpu) override;
  void fork(unsigned parent, unsigned child) override;
  void terminate(unsigned t) override;
  kern_return_t vm_copy(unsigned t, uint64_t src, uint64_t size, uint64_t dst) override;
  kern_return_t vm_read(unsigned t, uint64_t addr, uint64_t size, unsigned c) override;
  kern_return_t vm_write(unsigned t, uint64_t addr, unsigned c) override;
  kern_return_t copyout(unsigned t, unsigned c, uint64_t* addr) override;
  void discard(unsigned c) override;

  void object_create(unsigned m, uint64_t size, CopyStrategy strategy, bool persist,
                     std::span<const uint8_t> init) override;
  void device_create(unsigned m, uint64_t size, std::span<const uint8_t> init) override;
  kern_return_t map(unsigned t, uint64_t* addr, bool anywhere, uint64_t size, unsigned m,
                    uint64_t offset, bool share, vm_prot_t prot, vm_prot_t max_prot,
                    vm_inherit_t inh) override;
  kern_return_t manager_write(unsigned m, uint64_t offset, std::span<const uint8_t> data) override;
  kern_return_t supply(unsigned m, uint64_t offset) override;
  kern_return_t lock(unsigned m, uint64_t offset, uint64_t size, uint8_t how) override;
  Access file(unsigned m, uint64_t offset, uint64_t size) override;
  kern_return_t destroy(unsigned m) override;
  void pageout(uint64_t count, bool all) override;
  void collect(unsigned t) override;

  // --- vm_write in two halves, for a vm_write that goes in flight as a kernel thread
  // (docs/concurrency.md §Threads): its message takes the handle when the op starts, and
  // the overwrite takes effect where its thread completes. vm_write(t, addr, c) is exactly
  // vm_write_overwrite(t, addr, vm_write_take(c)).
  /// Purpose: take handle c out (it is free from now on). Conditions: c is present.
  std::shared_ptr<const CopyHandle> vm_write_take(unsigned c);
  /// Purpose: the overwrite half of vm_write with a handle taken by vm_write_take.
  kern_return_t vm_write_overwrite(unsigned t, uint64_t addr, const CopyHandle& copy);

  // --- Views: no side effects. Regions merge on attributes and adjacency alone (regions
  // carry no backing identity). The interest lists hold pages with a non-zero byte and
  // omit unknown pages (D11); peeks report Unknown for them.
  std::vector<RegionInfo> regions(unsigned t) const override;
  void pages_of_interest(unsigned t, std::vector<uint64_t>& out) const override;
  PeekStatus peek_page(unsigned t, uint64_t va, std::span<uint8_t, kPageSize> out) const override;
  PeekStatus peek_object_page(unsigned m, uint64_t offset,
                              std::span<uint8_t, kPageSize> out) const override;
  void object_pages_of_interest(unsigned m, std::vector<uint64_t>& out) const override;

 private:
  Task& task(unsigned t);
  const Task& task(unsigned t) const;
  MemoryObject& object(unsigned m);
  const MemoryObject& object(unsigned m) const;
  CopyHandle take_handle(unsigned c);
  Access access(unsigned t, uint64_t addr, uint64_t size, bool is_write,
                std::span<const uint8_t> data);

  std::array<std::optional<Task>, kMaxNames> tasks_;
  std::array<std::optional<CopyHandle>, kMaxNames> handles_;
  std::array<std::optional<MemoryObject>, kMaxNames> objects_;
};

}  // namespace vmfuzz::model
