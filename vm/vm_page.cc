// vm_page.cc — the page radix tree and the page queues.
//
// Theory of operation
// -------------------
// PageTree: a tree of height h covers indices [0, 64^h). Level h-1 (the root) is indexed
// by bits [6(h-1), 6h) of the index, the leaves' slots hold VmPage pointers. Inserting an
// index beyond the capacity adds a new root above the old one (the old root becomes slot
// 0). Removing the last entry of a node frees it; the root's height never shrinks until
// the tree is empty (simple, and bounded by 9 levels for 52-bit page numbers).
// lower_bound descends to the first non-empty slot at or after the index's slot at each
// level, so it visits O(64 * h) slots at worst per call, independent of the object size.
#include "vm/vm_page.h"

#include <cassert>

namespace vmfuzz::vm {

PageTree::~PageTree() {
  if (root_ != nullptr) free_node(root_, height_);
}

void PageTree::free_node(Node* n, unsigned height) {
  if (height > 1) {
    for (void* s : n->slot)
      if (s != nullptr) free_node(static_cast<Node*>(s), height - 1);
  }
  delete n;
}

uint64_t PageTree::capacity() const {
  unsigned bits = kBits * height_;
  return bits >= 64 ? UINT64_MAX : (uint64_t{1} << bits);
}

VmPage* PageTree::lookup(uint64_t idx) const {
  if (root_ == nullptr || (capacity() != UINT64_MAX && idx >= capacity())) return nullptr;
  const Node* n = root_;
  for (unsigned h = height_; h > 1; --h) {
    unsigned i = (idx >> (kBits * (h - 1))) & 63;
    n = static_cast<const Node*>(n->slot[i]);
    if (n == nullptr) return nullptr;
  }
  return static_cast<VmPage*>(n->slot[idx & 63]);
}

void PageTree::insert(uint64_t idx, VmPage* p) {
  assert(p != nullptr && "PageTree::insert: null page");
  if (root_ == nullptr) {
    root_ = new Node;
    height_ = 1;
  }
  while (capacity() != UINT64_MAX && idx >= capacity()) {
    Node* r = new Node;
    r->slot[0] = root_;
    r->count = 1;
    root_ = r;
    ++height_;
  }
  Node* n = root_;
  for (unsigned h = height_; h > 1; --h) {
    unsigned i = (idx >> (kBits * (h - 1))) & 63;
    if (n->slot[i] == nullptr) {
      n->slot[i] = new Node;
      ++n->count;
    }
    n = static_cast<Node*>(n->slot[i]);
  }
  assert(n->slot[idx & 63] == nullptr && "PageTree::insert: index already present");
  n->slot[idx & 63] = p;
  ++n->count;
  ++size_;
}

bool PageTree::remove_in(Node* n, unsigned height, uint64_t idx, VmPage** out) {
  unsigned i = (idx >> (kBits * (height - 1))) & 63;
  if (n->slot[i] == nullptr) return false;
  if (height == 1) {
    *out = static_cast<VmPage*>(n->slot[i]);
    n->slot[i] = nullptr;
    --n->count;
    return true;
  }
  Node* c = static_cast<Node*>(n->slot[i]);
  if (!remove_in(c, height - 1, idx, out)) return false;
  if (c->count == 0) {
    delete c;
    n->slot[i] = nullptr;
    --n->count;
  }
  return true;
}

VmPage* PageTree::remove(uint64_t idx) {
  if (root_ == nullptr || (capacity() != UINT64_MAX && idx >= capacity())) return nullptr;
  VmPage* out = nullptr;
  if (!remove_in(root_, height_, idx, &out)) return nullptr;
  --size_;
  if (root_->count == 0) {
    delete root_;
    root_ = nullptr;
    height_ = 0;
  }
  return out;
}

VmPage* PageTree::find_ge(const Node* n, unsigned height, uint64_t idx) {
  unsigned shift = kBits * (height - 1);
  unsigned first = (idx >> shift) & 63;
  for (unsigned j = first; j < 64; ++j) {
    void* s = n->slot[j];
    if (s == nullptr) continue;
    if (height == 1) return static_cast<VmPage*>(s);
    uint64_t sub = (j == first) ? (idx & ((uint64_t{1} << shift) - 1)) : 0;
    VmPage* r = find_ge(static_cast<const Node*>(s), height - 1, sub);
    if (r != nullptr) return r;
  }
  return nullptr;
}

VmPage* PageTree::lower_bound(uint64_t idx) const {
  if (root_ == nullptr || (capacity() != UINT64_MAX && idx >= capacity())) return nullptr;
  return find_ge(root_, height_, idx);
}

// ---------------------------------------------------------------------------------------

void PageQueue::push_back(VmPage* p) {
  assert(p->queue == VmPage::Queue::None && "PageQueue::push_back: page already queued");
  p->queue = which_;
  p->q_prev = tail_;
  p->q_next = nullptr;
  if (tail_ != nullptr)
    tail_->q_next = p;
  else
    head_ = p;
  tail_ = p;
  ++size_;
}

void PageQueue::remove(VmPage* p) {
  assert(p->queue == which_ && "PageQueue::remove: page not on this queue");
  if (p->q_prev != nullptr)
    p->q_prev->q_next = p->q_next;
  else
    head_ = p->q_next;
  if (p->q_next != nullptr)
    p->q_next->q_prev = p->q_prev;
  else
    tail_ = p->q_prev;
  p->q_prev = p->q_next = nullptr;
  p->queue = VmPage::Queue::None;
  --size_;
}

}  // namespace vmfuzz::vm
