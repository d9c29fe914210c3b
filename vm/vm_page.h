// vm_page.h — resident pages: the vm_page structure, the per-object radix tree that
// indexes pages by offset, and the active/inactive page queues.
//
// Theory of operation
// -------------------
// A resident page (Mach's `struct vm_page`) is one simulated physical frame holding the
// data of one (object, offset) pair. Every page belongs to exactly one object
// [invariant page_in_one_object], which finds it through its PageTree: a radix tree
// indexed by page number (offset >> 12), 64 slots per node, as many levels as the
// largest index needs. The tree makes lookup O(depth), and iteration in offset order
// (lower_bound) deterministic and proportional to the pages present, not to the object
// size: a 4 GiB sparse object with three pages costs three steps to scan.
//
// The structures themselves live in VmSystem::vm_page_array, one per RAM frame, made once
// (Mach's vm_page_array): grabbing a page never allocates heap memory.
//
// Pages also sit on one of two queues (active, inactive), intrusive doubly-linked lists
// kept in insertion order; the pageout scan (vm_pageout.cc) takes inactive pages first, then active ones. Page grab/free and
// insertion into objects live in vm_object.h (they need the VM system's frame
// allocator and pmap domain).
//
// Field key (who may change a field):
//   [o] the object code (vm_object.cc) while the page is in the object
//   [f] the fault path (vm_fault.cc) while the page is busy
//   [q] the queue code (vm_page.cc)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "vm/machine/machine.h"
#include "vmfuzz/vocab.h"

namespace vmfuzz::vm {

struct VmObject;

struct VmPage {
  VmObject* object = nullptr;   // [o] owning object (null only while free-standing)
  uint64_t offset = 0;          // [o] page-aligned offset in object
  machine::pfn_t frame = machine::kNoFrame;  // fixed for the page's life
  // Mach's page state bits.
  bool busy = false;       // [f] in transit (set during a fault; never left set)
  bool absent = false;     // [f] requested, not yet supplied (managers here answer at once: never set)
  bool cleaning = false;   // [f] busy: its data_return to a held manager is not acknowledged yet
                           //     (docs/concurrency.md §Cleaning); never absent at the same time
  bool dirty = false;      // [o,f] software dirty bit (merged with the pmap modify bit)
  bool precious = false;   // [o] must be returned to the pager even if clean (honoured by pageout
                           //     and terminate; no manager here supplies precious pages)
  bool private_page = false; // Mach's `private`: a device page of vm_object_page_map; its
                             // frame is device memory, never returned to the allocator
  bool error = false;      // [f] pager reported an error (managers here never do: never set)
  vm_prot_t page_lock = VM_PROT_NONE;  // [o,f] accesses the manager has locked out (COPY_CALL)
  unsigned wire_count = 0;              // [o] wirings: 1 for private (device) pages, else 0
                                        //     (no wiring op exists); wired pages are on no queue
  // Queue membership.
  enum class Queue : uint8_t { None, Active, Inactive };
  Queue queue = Queue::None;  // [q]
  VmPage* q_prev = nullptr;   // [q]
  VmPage* q_next = nullptr;   // [q]
};

/// Offset-indexed radix tree of resident pages (64-way, grows in height on demand).
class PageTree {
 public:
  PageTree() = default;
  PageTree(const PageTree&) = delete;
  PageTree& operator=(const PageTree&) = delete;
  ~PageTree();

  /// The page at page index idx (offset >> 12), or nullptr.
  VmPage* lookup(uint64_t idx) const;
  /// Insert p at idx. Conditions: no page at idx.
  void insert(uint64_t idx, VmPage* p);
  /// Remove and return the page at idx (nullptr if none).
  VmPage* remove(uint64_t idx);
  /// The page with the smallest index >= idx, or nullptr. Deterministic offset order.
  VmPage* lower_bound(uint64_t idx) const;
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Node {
    std::array<void*, 64> slot{};
    unsigned count = 0;
  };
  static constexpr unsigned kBits = 6;
  uint64_t capacity() const;  // 1 << (6 * height), saturating
  static void free_node(Node* n, unsigned height);
  static VmPage* find_ge(const Node* n, unsigned height, uint64_t idx);
  static bool remove_in(Node* n, unsigned height, uint64_t idx, VmPage** out);

  Node* root_ = nullptr;
  unsigned height_ = 0;
  size_t size_ = 0;
};

/// An intrusive FIFO of pages (Mach's vm_page_queue_active / _inactive).
class PageQueue {
 public:
  explicit PageQueue(VmPage::Queue which) : which_(which) {}
  void push_back(VmPage* p);  // Conditions: p on no queue
  void remove(VmPage* p);     // Conditions: p on this queue
  VmPage* front() const { return head_; }
  size_t size() const { return size_; }

 private:
  VmPage::Queue which_;
  VmPage* head_ = nullptr;
  VmPage* tail_ = nullptr;
  size_t size_ = 0;
};

}  // namespace vmfuzz::vm
