// tlb.cc — one CPU's translation lookaside buffer.
//
// Theory of operation
// -------------------
// A bounded array of cached translations (vpn -> frame, writable, user, dirty) in fill
// order. A fill of a vpn already present replaces that entry (the new one counts as the
// newest); otherwise, when full, the oldest entry is evicted (FIFO): deterministic, and
// independent of how often an entry is used. Entries are never checked against memory:
// they stay until invlpg (invalidate), a CR3 load or flush, exactly the hazard the pmap
// must manage. Capacity 0 is a machine without a TLB: every access walks.
#include <algorithm>

#include "vm/machine/machine.h"

namespace vmfuzz::machine {

Tlb::Tlb(unsigned capacity) : capacity_(capacity) { entries_.reserve(capacity); }

const TlbEntry* Tlb::lookup(uint64_t vpn) const {
  for (const TlbEntry& e : entries_)
    if (e.vpn == vpn) return &e;
  return nullptr;
}

void Tlb::insert(const TlbEntry& e) {
  if (capacity_ == 0) return;
  invalidate(e.vpn);
  if (entries_.size() == capacity_) entries_.erase(entries_.begin());
  entries_.push_back(e);
}

void Tlb::invalidate(uint64_t vpn) {
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [vpn](const TlbEntry& e) { return e.vpn == vpn; });
  if (it != entries_.end()) entries_.erase(it);
}

void Tlb::flush() { entries_.clear(); }

std::vector<TlbEntry> Tlb::entries() const { return entries_; }

}  // namespace vmfuzz::machine
