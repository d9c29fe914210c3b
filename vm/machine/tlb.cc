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
//
// Layout: a ring of `capacity` slots holding the entries in fill order from `head_`
// (the oldest). Evicting the oldest advances head_ (O(1)); removing an entry from the
// middle (invlpg, a refill of a present vpn) moves the younger ones back one slot, which
// keeps the fill order exact. The vpns sit in their own array, so a lookup (inline in
// machine.h) is a scan of the occupied 8-byte keys — at most two cache lines for the
// default 16 — that never touches the entries it passes.
#include "vm/machine/machine.h"

namespace vmfuzz::machine {

Tlb::Tlb(unsigned capacity)
    : capacity_(capacity),
      vpns_(new uint64_t[capacity > 0 ? capacity : 1]),
      entries_(new TlbEntry[capacity > 0 ? capacity : 1]()) {
  for (unsigned i = 0; i < capacity_; i++) vpns_[i] = kNoVpn;
}

void Tlb::erase_slot(unsigned s) {
  unsigned i = s >= head_ ? s - head_ : s + capacity_ - head_;  // age rank of slot s
  if (i == 0) {
    vpns_[s] = kNoVpn;
    head_ = slot(1);
    size_--;
    if (size_ == 0) head_ = 0;
    return;
  }
  for (; i + 1 < size_; i++) {
    unsigned to = slot(i), from = slot(i + 1);
    vpns_[to] = vpns_[from];
    entries_[to] = entries_[from];
  }
  vpns_[slot(size_ - 1)] = kNoVpn;
  size_--;
}

void Tlb::insert(const TlbEntry& e) {
  if (capacity_ == 0) return;
  VMFUZZ_MACHINE_ASSERT(e.vpn != kNoVpn, "Tlb::insert", "vpn out of range");
  unsigned s = find(e.vpn);
  if (s < capacity_)
    erase_slot(s);
  else if (size_ == capacity_)
    erase_slot(head_);
  s = slot(size_);
  vpns_[s] = e.vpn;
  entries_[s] = e;
  size_++;
}

void Tlb::invalidate(uint64_t vpn) {
  unsigned s = find(vpn);
  if (s < capacity_) erase_slot(s);
}

void Tlb::flush() {
  size_ = 0;
  head_ = 0;
}

std::vector<TlbEntry> Tlb::entries() const {
  std::vector<TlbEntry> out;
  out.reserve(size_);
  for (unsigned i = 0; i < size_; i++) out.push_back(entries_[slot(i)]);
  return out;
}

}  // namespace vmfuzz::machine
