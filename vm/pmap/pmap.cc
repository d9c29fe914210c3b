// pmap.cc — Mach's pmap layer on the simulated x86-64 MMU.
//
// Theory of operation
// -------------------
// A Pmap is one address space: a PML4 frame and the PDPT/PD/PT frames below it, all
// allocated from PhysicalMemory as FrameUse::PageTable and zeroed before they are linked.
// Intermediate entries are P|RW|US: rights are decided by the leaf alone. A leaf PTE for
// a user page is P|US, plus RW when the protection allows writing, plus NX when it does
// not allow execution. As on x86, any present PTE is readable: write-only and
// execute-only protections read too (docs/language.md §Ops, Accesses: write implies read).
//
// The PmapDomain holds what is per physical frame, shared by every pmap of a machine:
//   pv list   — every (pmap, va) that maps the frame, in the order they were entered
//               (a vector per frame: deterministic, no pointer ordering).
//   attributes — modified/referenced bits harvested from a PTE's D/A bits when the PTE
//               is destroyed or replaced. pmap_is_modified = attribute OR the D bit of
//               every live mapping (likewise referenced/A), as Mach's phys_attribute_test.
//
// Range walks (pmap_remove, pmap_protect, destroy, collect) visit present entries only:
// each page-table frame has a 512-bit presence bitmap in the domain, kept by write_pte
// (the only writer of entries), so removing a whole address space costs what is mapped,
// not what the range spans.
//
// TLB shootdown. A TLB entry of a pmap can only live on a CPU where the pmap is active:
// pmap_activate loads CR3 (which flushes), and pmap_deactivate loads kEmptyCr3 (flushes
// too). So every change that removes or reduces a PTE, or clears its D or A bit, sends
// invlpg for that va to each CPU in `active_` (counted in stats().shootdowns). Clearing D
// must shoot down as well: a TLB entry that remembers "dirty" lets later writes through
// without setting D again, and the VM would then free a dirty page as clean. The machine
// has no paging-structure caches, so freeing an empty PT page needs no shootdown.
//
// Departures from GNU Mach's i386 pmap (all on the safe side):
// - pmap_enter with the same frame keeps both D and A (Mach keeps only MOD); with
//   VM_PROT_NONE it removes the mapping.
// - pmap_page_protect(f, READ|WRITE) only drops execute (sets NX); Mach removes every
//   mapping for any protection other than READ, READ|EXECUTE and ALL. Both are correct for
//   the VM; reducing is what the interface comment promises.
// - pmap_protect and pmap_page_protect remove mappings when prot lacks READ (an x86 PTE
//   cannot be present without being readable), as Mach does for NONE.
// - pmap_destroy removes any mappings left (Mach assumes the VM already removed them),
//   folding their attributes and unlinking their pv entries.
// - pmap_collect: by default Mach's behaviour — drop every mapping of the pmap (folding
//   D/A into the attributes), then free every page-table page but the PML4. With
//   set_collect_drops_mappings(false), it frees only page-table pages that map nothing.
#include "vm/pmap/pmap.h"
#include "vm/machine/bugs.h"

#include <algorithm>
#include <cstring>

namespace vmfuzz::pmap {

using machine::FrameUse;
using machine::kEntriesPerTable;
using machine::PhysicalMemory;
using machine::pt_index;
using machine::pte_for_frame;
using machine::pte_frame;
using machine::PTE_A;
using machine::PTE_D;
using machine::PTE_NX;
using machine::PTE_P;
using machine::PTE_RW;
using machine::PTE_US;

namespace {
constexpr uint64_t kTableEntry = PTE_P | PTE_RW | PTE_US;  // every non-leaf entry
constexpr uint64_t kVaLimit = 1ull << 47;                 // end of the lower canonical half
// Bytes of address space one entry covers at level 0 (PML4) .. 3 (PT).
constexpr uint64_t level_span(unsigned level) { return 1ull << (39 - 9 * level); }
}  // namespace

// The routines, as static members of one friend so that they can reach the fields.
struct PmapInternals {
  static PhysicalMemory& mem(Pmap& p) { return p.domain_->machine_->memory(); }

  // The PT frame and index holding va's leaf, if every upper level is present.
  static bool leaf_slot(Pmap& p, uint64_t va, pfn_t* table, unsigned* index) {
    PhysicalMemory& m = mem(p);
    pfn_t t = p.pml4_;
    for (unsigned level = 0; level < 3; level++) {
      uint64_t e = m.read_entry(t, pt_index(va, level));
      if (!(e & PTE_P)) return false;
      t = pfn_t(pte_frame(e));
      VMFUZZ_MACHINE_ASSERT(t < m.frame_count() && m.use_of(t) == FrameUse::PageTable,
                            "pmap leaf_slot", "a table entry names a frame that is no page table");
    }
    *table = t;
    *index = pt_index(va, 3);
    return true;
  }

  // Write entry i of table t, keeping the table's presence bitmap.
  static void write_pte(PmapDomain& d, pfn_t t, unsigned i, uint64_t v) {
    d.machine_->memory().write_entry(t, i, v);
    uint64_t& word = d.present_[t][i / 64];
    if (v & PTE_P)
      word |= 1ull << (i % 64);
    else
      word &= ~(1ull << (i % 64));
  }

  static bool table_empty(const PmapDomain& d, pfn_t t) {
    for (uint64_t w : d.present_[t])
      if (w != 0) return false;
    return true;
  }

  // Call fn(i) for every present entry i of table t with lo <= i <= hi, in order. fn may
  // clear entries (the words are read before the calls for their bits).
  template <typename Fn>
  static void for_each_present(const PmapDomain& d, pfn_t t, unsigned lo, unsigned hi, Fn&& fn) {
    for (unsigned w = lo / 64; w <= hi / 64; w++) {
      uint64_t bits = d.present_[t][w];
      if (w == lo / 64) bits &= ~0ull << (lo % 64);
      if (w == hi / 64 && hi % 64 != 63) bits &= (1ull << (hi % 64 + 1)) - 1;
      while (bits != 0) {
        fn(w * 64 + unsigned(__builtin_ctzll(bits)));
        bits &= bits - 1;
      }
    }
  }

  // Visit the present leaves under table t (level 0..3, covering va from base) that lie
  // in [start, end); end > base.
  template <typename Fn>
  static void visit(Pmap& p, pfn_t t, unsigned level, uint64_t base, uint64_t start, uint64_t end, Fn& fn) {
    const uint64_t span = level_span(level);
    const unsigned lo = start > base ? unsigned((start - base) / span) : 0;
    const unsigned hi = unsigned(std::min<uint64_t>(kEntriesPerTable - 1, (end - 1 - base) / span));
    PhysicalMemory& m = mem(p);
    for_each_present(*p.domain_, t, lo, hi, [&](unsigned i) {
      const uint64_t va = base + i * span;
      if (level == 3) {
        fn(t, i, va);
        return;
      }
      const uint64_t child = pte_frame(m.read_entry(t, i));
      VMFUZZ_MACHINE_ASSERT(child < m.frame_count() && m.use_of(pfn_t(child)) == FrameUse::PageTable,
                            "pmap visit", "a table entry names a frame that is no page table");
      visit(p, pfn_t(child), level + 1, va, start, end, fn);
    });
  }

  // Call fn(table, index, va) for every present leaf in [start, end), in address order,
  // visiting present entries only. fn may clear the leaf but must not free tables.
  template <typename Fn>
  static void for_each_leaf(Pmap& p, uint64_t start, uint64_t end, Fn fn) {
    start = machine::is_canonical(start) && start < kVaLimit ? trunc_page(start) : kVaLimit;
    end = std::min(end, kVaLimit);
    if (start >= end) return;
    visit(p, p.pml4_, 0, 0, start, end, fn);
  }

  static void shootdown(Pmap& p, uint64_t va) {
    PmapDomain& d = *p.domain_;
    for (unsigned c = 0; c < d.machine_->cpu_count(); c++) {
      if (p.active_ & (1ull << c)) {
        d.machine_->invlpg(c, va);
        d.stats_.shootdowns++;
      }
    }
  }

  static void fold_attributes(PmapDomain& d, pfn_t f, uint64_t pte) {
    if (pte & PTE_D) d.attrs_[f] |= PmapDomain::kAttrModified;
    if (pte & PTE_A) d.attrs_[f] |= PmapDomain::kAttrReferenced;
  }

  static void pv_add(PmapDomain& d, pfn_t f, Pmap* p, uint64_t va) { d.pv_[f].push_back({p, va}); }

  static void pv_remove(PmapDomain& d, pfn_t f, Pmap* p, uint64_t va) {
    auto& list = d.pv_[f];
    if (!list.empty() && list.back().pmap == p && list.back().va == va) {
      list.pop_back();
      return;
    }
    auto it = std::find_if(list.begin(), list.end(),
                           [&](const PvEntry& e) { return e.pmap == p && e.va == va; });
    VMFUZZ_MACHINE_ASSERT(it != list.end(), "pmap pv_remove", "mapping missing from pv list");
    list.erase(it);
  }

  // Destroy the present leaf (table, index) for va: fold D/A, unlink pv, shoot down.
  static void remove_leaf(Pmap& p, pfn_t table, unsigned index, uint64_t va) {
    PhysicalMemory& m = mem(p);
    uint64_t pte = m.read_entry(table, index);
    pfn_t f = pfn_t(pte_frame(pte));
    fold_attributes(*p.domain_, f, pte);
    pv_remove(*p.domain_, f, &p, va);
    write_pte(*p.domain_, table, index, 0);
    p.resident_--;
    if (!VMFUZZ_BUG_ON(NoShootdownAfterRemove)) shootdown(p, va);
  }

  // Reduce the present leaf to prot (never raises): no READ removes it.
  static void reduce_leaf(Pmap& p, pfn_t table, unsigned index, uint64_t va, vm_prot_t prot) {
    if (!(prot & VM_PROT_READ)) {
      remove_leaf(p, table, index, va);
      return;
    }
    PhysicalMemory& m = mem(p);
    uint64_t pte = m.read_entry(table, index);
    uint64_t want = pte;
    if (!(prot & VM_PROT_WRITE)) want &= ~PTE_RW;
    if ((prot & VM_PROT_WRITE) && VMFUZZ_BUG_ON(PmapProtectRaises)) want |= PTE_RW;
    if (!(prot & VM_PROT_EXECUTE)) want |= PTE_NX;
    if (want == pte) return;
    write_pte(*p.domain_, table, index, want);
    if (!VMFUZZ_BUG_ON(NoShootdownAfterProtect)) shootdown(p, va);
  }

  // Clear `bit` (PTE_D or PTE_A) in every mapping of f, shooting down those that had it.
  static void clear_bit_in_mappings(PmapDomain& d, pfn_t f, uint64_t bit) {
    for (const PvEntry& e : d.pv_[f]) {
      pfn_t t;
      unsigned i;
      bool found = leaf_slot(*e.pmap, e.va, &t, &i);
      VMFUZZ_MACHINE_ASSERT(found, "pmap clear_bit", "pv entry without a page table");
      PhysicalMemory& m = mem(*e.pmap);
      uint64_t pte = m.read_entry(t, i);
      if (pte & bit) {
        write_pte(d, t, i, pte & ~bit);
        shootdown(*e.pmap, e.va);
      }
    }
  }

  static bool test_bit_in_mappings(PmapDomain& d, pfn_t f, uint64_t bit) {
    for (const PvEntry& e : d.pv_[f]) {
      pfn_t t;
      unsigned i;
      if (leaf_slot(*e.pmap, e.va, &t, &i) && (mem(*e.pmap).read_entry(t, i) & bit)) return true;
    }
    return false;
  }

  static void check_managed(PmapDomain& d, pfn_t f, const char* where) {
    PhysicalMemory& m = d.machine_->memory();
    VMFUZZ_MACHINE_ASSERT(f < m.frame_count(), where, "frame out of range");
    // Device frames (vm_object_page_map) are mapped and tracked like RAM pages.
    VMFUZZ_MACHINE_ASSERT(m.use_of(f) == FrameUse::VmPage || m.use_of(f) == FrameUse::Device, where,
                          "frame is not a VM page or device memory");
  }

  static void free_table(Pmap& p, pfn_t t) {
    mem(p).free_frame(t);
    p.pt_frames_--;
    p.domain_->stats_.pt_frames--;
  }

  // Free every page-table page below the PML4 that maps nothing (all of them when the
  // pmap has no mappings). Returns the number freed.
  static unsigned free_empty_tables(Pmap& p) {
    unsigned freed = 0;
    prune(p, p.pml4_, 0, &freed);
    return freed;
  }

  // Free the empty tables below t (level 0..2); true if t is empty afterwards.
  static bool prune(Pmap& p, pfn_t t, unsigned level, unsigned* freed) {
    PmapDomain& d = *p.domain_;
    PhysicalMemory& m = mem(p);
    for_each_present(d, t, 0, kEntriesPerTable - 1, [&](unsigned i) {
      const pfn_t child = pfn_t(pte_frame(m.read_entry(t, i)));
      if (table_empty(d, child) || (level < 2 && prune(p, child, level + 1, freed))) {
        free_table(p, child);
        write_pte(d, t, i, 0);
        (*freed)++;
      }
    });
    return table_empty(d, t);
  }
};

// ---------------------------------------------------------------------------------------
// Pmap and PmapDomain members.

PmapDomain& Pmap::domain() { return *domain_; }
uint64_t Pmap::cr3() const { return uint64_t(pml4_) << kPageShift; }
uint64_t Pmap::active_cpus() const { return active_; }

PmapDomain::PmapDomain(machine::Machine& m) : machine_(&m) { init(); }

void PmapDomain::init() {
  const machine::Machine& m = *machine_;
  VMFUZZ_MACHINE_ASSERT(m.cpu_count() <= 64, "PmapDomain", "at most 64 CPUs (active mask)");
  const size_t frames = m.memory().frame_count();
  // Each frame's pv list emptied and its storage freed: a reset domain keeps no allocation
  // of the run before (libFuzzer counts a run's mallocs against its frees).
  for (std::vector<PvEntry>& l : pv_)
    if (l.capacity() != 0) std::vector<PvEntry>().swap(l);
  pv_.resize(frames);
  attrs_.assign(frames, 0);
  present_.assign(frames, {});
  on_cpu_.assign(m.cpu_count(), nullptr);
  pmaps_.clear();
  collect_drops_mappings_ = true;
  stats_ = Stats{};
}

void PmapDomain::reset() { init(); }

PmapDomain::~PmapDomain() = default;

machine::Machine& PmapDomain::machine() { return *machine_; }
const PmapDomain::Stats& PmapDomain::stats() const { return stats_; }

std::vector<pmap_t> PmapDomain::pmaps() const {
  std::vector<pmap_t> out;
  for (const auto& p : pmaps_) out.push_back(p.get());
  return out;
}

pmap_t PmapDomain::active_on(unsigned cpu) const {
  VMFUZZ_MACHINE_ASSERT(cpu < on_cpu_.size(), "PmapDomain::active_on", "no such CPU");
  return on_cpu_[cpu];
}

std::vector<PvEntry> PmapDomain::mappings_of(pfn_t f) const {
  VMFUZZ_MACHINE_ASSERT(f < pv_.size(), "mappings_of", "frame out of range");
  return pv_[f];
}

bool PmapDomain::pmap_is_modified(pfn_t f) {
  PmapInternals::check_managed(*this, f, "pmap_is_modified");
  return (attrs_[f] & kAttrModified) || PmapInternals::test_bit_in_mappings(*this, f, PTE_D);
}

void PmapDomain::pmap_clear_modify(pfn_t f) {
  PmapInternals::check_managed(*this, f, "pmap_clear_modify");
  attrs_[f] &= uint8_t(~kAttrModified);
  PmapInternals::clear_bit_in_mappings(*this, f, PTE_D);
}

bool PmapDomain::pmap_is_referenced(pfn_t f) {
  PmapInternals::check_managed(*this, f, "pmap_is_referenced");
  return (attrs_[f] & kAttrReferenced) || PmapInternals::test_bit_in_mappings(*this, f, PTE_A);
}

void PmapDomain::pmap_clear_reference(pfn_t f) {
  PmapInternals::check_managed(*this, f, "pmap_clear_reference");
  attrs_[f] &= uint8_t(~kAttrReferenced);
  PmapInternals::clear_bit_in_mappings(*this, f, PTE_A);
}

void PmapDomain::pmap_page_protect(pfn_t f, vm_prot_t prot) {
  PmapInternals::check_managed(*this, f, "pmap_page_protect");
  // From the back: reducing to no-read unlinks entry k from pv_[f] (entries are distinct
  // (pmap, va) pairs, so pv_remove erases exactly slot k), which leaves the slots still to
  // visit, [0, k), where they are — no copy of the list, and each unlink is a pop.
  for (size_t k = pv_[f].size(); k-- > 0;) {
    const PvEntry e = pv_[f][k];
    pfn_t t;
    unsigned i;
    bool found = PmapInternals::leaf_slot(*e.pmap, e.va, &t, &i);
    VMFUZZ_MACHINE_ASSERT(found, "pmap_page_protect", "pv entry without a page table");
    PmapInternals::reduce_leaf(*e.pmap, t, i, e.va, prot);
  }
}

void PmapDomain::pmap_zero_page(pfn_t f) {
  PmapInternals::check_managed(*this, f, "pmap_zero_page");
  std::memset(machine_->memory().frame(f), 0, kPageSize);
}

void PmapDomain::pmap_copy_page(pfn_t src, pfn_t dst) {
  PmapInternals::check_managed(*this, src, "pmap_copy_page");
  PmapInternals::check_managed(*this, dst, "pmap_copy_page");
  VMFUZZ_MACHINE_ASSERT(src != dst, "pmap_copy_page", "source and destination are one frame");
  std::memcpy(machine_->memory().frame(dst), machine_->memory().frame(src), kPageSize);
}

namespace {
struct TableCount {
  uint32_t tables = 1;  // the root
  uint64_t leaves = 0;
};

// Count the tables below t (level 0..3) and the present leaves. Returns nullptr, or why
// the tables are broken. An oracle: kept out of coverage instrumentation.
VMFUZZ_NO_COVERAGE const char* count_tables(const PhysicalMemory& m,
                                            const std::vector<std::array<uint64_t, 8>>& present,
                                            pfn_t t, unsigned level, TableCount* n) {
  const uint8_t* base = m.frame(t);
  // Through a raw pointer: std::array's and std::vector's operator[] are instantiated
  // here with coverage instrumentation (the attribute does not reach them), and their
  // comparison hooks were most of this walk's cost in fuzz builds.
  const uint64_t* bits = present.data()[t].data();
  for (unsigned i = 0; i < kEntriesPerTable; i++) {
    uint64_t e;
    std::memcpy(&e, base + 8 * i, 8);
    if (bool(e & PTE_P) != bool(bits[i / 64] & (1ull << (i % 64))))
      return "a table's presence bitmap differs from its entries";
    if (!(e & PTE_P)) continue;
    if (level == 3) {
      n->leaves++;
      continue;
    }
    const uint64_t f = pte_frame(e);
    if (f >= m.frame_count() || m.use_of(pfn_t(f)) != FrameUse::PageTable)
      return "a table entry names a frame that is no page table";
    n->tables++;
    if (const char* why = count_tables(m, present, pfn_t(f), level + 1, n)) return why;
  }
  return nullptr;
}
}  // namespace

VMFUZZ_NO_COVERAGE bool PmapDomain::pv_consistent(std::string* detail) const {
  auto fail = [&](const char* what, uint64_t va, pfn_t f) {
    if (detail != nullptr) {
      char buf[200];
      std::snprintf(buf, sizeof buf, "%s (va 0x%llx frame %u)", what, (unsigned long long)va, f);
      *detail = buf;
    }
    return false;
  };
  const PhysicalMemory& m = machine_->memory();
  // 1. Every pv entry names a present leaf mapping its frame, once.
  uint64_t pv_total = 0;
  for (pfn_t f = 0; f < pv_.size(); f++) {
    for (size_t k = 0; k < pv_[f].size(); k++) {
      const PvEntry& e = pv_[f][k];
      for (size_t j = 0; j < k; j++)
        if (pv_[f][j].pmap == e.pmap && pv_[f][j].va == e.va)
          return fail("pv entry listed twice", e.va, f);
      pfn_t t;
      unsigned i;
      if (!PmapInternals::leaf_slot(*e.pmap, e.va, &t, &i))
        return fail("pv entry without page tables", e.va, f);
      uint64_t pte = m.read_entry(t, i);
      if (!(pte & PTE_P) || pte_frame(pte) != f)
        return fail("pv entry whose PTE does not map its frame", e.va, f);
      if (m.use_of(f) != FrameUse::VmPage && m.use_of(f) != FrameUse::Device)
        return fail("mapped frame is not a VM page or device memory", e.va, f);
      pv_total++;
    }
  }
  // 2. Every present leaf has a pv entry: step 1 showed the entries name distinct present
  //    leaves, so equal totals make it a one-to-one match. Each pmap's counts agree with
  //    its tables.
  uint64_t pt_total = 0, leaf_total = 0;
  for (const auto& up : pmaps_) {
    const Pmap& p = *up;
    TableCount n;
    if (const char* why = count_tables(m, present_, p.pml4_, 0, &n)) return fail(why, 0, p.pml4_);
    if (n.leaves != p.resident_) return fail("resident count differs from the tables", 0, p.pml4_);
    if (n.tables != p.pt_frames_) return fail("page-table count differs from the tables", 0, p.pml4_);
    leaf_total += n.leaves;
    pt_total += n.tables;
  }
  if (pv_total != leaf_total) return fail("a present leaf has no pv entry", 0, 0);
  if (pt_total != stats_.pt_frames) return fail("domain page-table count is wrong", 0, 0);
  return true;
}

// ---------------------------------------------------------------------------------------
// The pmap interface.

pmap_t pmap_create(PmapDomain& d) {
  PhysicalMemory& m = d.machine().memory();
  pfn_t f = m.alloc_frame(FrameUse::PageTable);
  if (f == machine::kNoFrame) return nullptr;
  std::memset(m.frame(f), 0, kPageSize);
  d.present_[f] = {};
  d.pmaps_.push_back(std::unique_ptr<Pmap>(new Pmap(d, f)));
  d.stats_.pt_frames++;
  return d.pmaps_.back().get();
}

void pmap_destroy(pmap_t p) {
  VMFUZZ_MACHINE_ASSERT(p != nullptr, "pmap_destroy", "null pmap");
  VMFUZZ_MACHINE_ASSERT(p->active_ == 0, "pmap_destroy", "pmap still active on a CPU");
  PmapDomain& d = *p->domain_;
  pmap_remove(p, 0, kVaLimit);
  PmapInternals::free_empty_tables(*p);
  PmapInternals::free_table(*p, p->pml4_);
  VMFUZZ_MACHINE_ASSERT(p->pt_frames_ == 0, "pmap_destroy", "page-table frames left behind");
  auto it = std::find_if(d.pmaps_.begin(), d.pmaps_.end(),
                         [p](const std::unique_ptr<Pmap>& q) { return q.get() == p; });
  VMFUZZ_MACHINE_ASSERT(it != d.pmaps_.end(), "pmap_destroy", "pmap not in its domain");
  d.pmaps_.erase(it);
}

kern_return_t pmap_enter(pmap_t p, uint64_t va, pfn_t f, vm_prot_t prot) {
  VMFUZZ_MACHINE_ASSERT(p != nullptr, "pmap_enter", "null pmap");
  VMFUZZ_MACHINE_ASSERT((va & (kPageSize - 1)) == 0, "pmap_enter", "va not page-aligned");
  VMFUZZ_MACHINE_ASSERT(va >= kUserMin && va < kUserMax, "pmap_enter", "va outside user space");
  PmapDomain& d = *p->domain_;
  PmapInternals::check_managed(d, f, "pmap_enter");
  if ((prot & VM_PROT_ALL) == VM_PROT_NONE) {
    pmap_remove(p, va, va + kPageSize);
    return KERN_SUCCESS;
  }
  PhysicalMemory& m = PmapInternals::mem(*p);

  // Step 1: how many tables are missing; refuse before changing anything.
  unsigned missing = 0;
  {
    pfn_t t = p->pml4_;
    for (unsigned level = 0; level < 3; level++) {
      uint64_t e = m.read_entry(t, pt_index(va, level));
      if (!(e & PTE_P)) {
        missing = 3 - level;
        break;
      }
      t = pfn_t(pte_frame(e));
    }
  }
  if (missing > m.free_count()) return KERN_RESOURCE_SHORTAGE;

  // Step 2: descend, linking zeroed tables where missing.
  pfn_t t = p->pml4_;
  for (unsigned level = 0; level < 3; level++) {
    unsigned i = pt_index(va, level);
    uint64_t e = m.read_entry(t, i);
    if (!(e & PTE_P)) {
      pfn_t nt = m.alloc_frame(FrameUse::PageTable);
      VMFUZZ_MACHINE_ASSERT(nt != machine::kNoFrame, "pmap_enter", "frame vanished after check");
      std::memset(m.frame(nt), 0, kPageSize);
      e = pte_for_frame(nt) | kTableEntry;
      d.present_[nt] = {};
      PmapInternals::write_pte(d, t, i, e);
      p->pt_frames_++;
      d.stats_.pt_frames++;
    }
    t = pfn_t(pte_frame(e));
  }

  // Step 3: install or replace the leaf.
  const unsigned i = pt_index(va, 3);
  const uint64_t old = m.read_entry(t, i);
  uint64_t pte = pte_for_frame(f) | PTE_P | PTE_US;
  if (prot & VM_PROT_WRITE) pte |= PTE_RW;
  if (!(prot & VM_PROT_EXECUTE)) pte |= PTE_NX;
  if (!(old & PTE_P)) {
    PmapInternals::pv_add(d, f, p, va);
    PmapInternals::write_pte(d, t, i, pte);
    p->resident_++;
    return KERN_SUCCESS;  // nothing cached: the TLB holds no not-present translations
  }
  const pfn_t old_f = pfn_t(pte_frame(old));
  if (old_f == f) {
    pte |= old & (PTE_A | PTE_D);  // same page: keep its modified/referenced state
  } else {
    PmapInternals::fold_attributes(d, old_f, old);
    PmapInternals::pv_remove(d, old_f, p, va);
    PmapInternals::pv_add(d, f, p, va);
  }
  if (pte != old) {
    PmapInternals::write_pte(d, t, i, pte);
    PmapInternals::shootdown(*p, va);
  }
  return KERN_SUCCESS;
}

void pmap_remove(pmap_t p, uint64_t start, uint64_t end) {
  VMFUZZ_MACHINE_ASSERT(p != nullptr, "pmap_remove", "null pmap");
  PmapInternals::for_each_leaf(*p, start, round_page(std::min(end, kVaLimit)),
                               [p](pfn_t t, unsigned i, uint64_t va) {
                                 PmapInternals::remove_leaf(*p, t, i, va);
                               });
}

void pmap_protect(pmap_t p, uint64_t start, uint64_t end, vm_prot_t prot) {
  VMFUZZ_MACHINE_ASSERT(p != nullptr, "pmap_protect", "null pmap");
  if ((prot & (VM_PROT_READ | VM_PROT_WRITE | VM_PROT_EXECUTE)) == VM_PROT_ALL) return;
  PmapInternals::for_each_leaf(*p, start, round_page(std::min(end, kVaLimit)),
                               [p, prot](pfn_t t, unsigned i, uint64_t va) {
                                 PmapInternals::reduce_leaf(*p, t, i, va, prot);
                               });
}

std::optional<pfn_t> pmap_extract(pmap_t p, uint64_t va) {
  VMFUZZ_MACHINE_ASSERT(p != nullptr, "pmap_extract", "null pmap");
  if (!machine::is_canonical(va) || va >= kVaLimit) return std::nullopt;
  pfn_t t;
  unsigned i;
  if (!PmapInternals::leaf_slot(*p, va, &t, &i)) return std::nullopt;
  uint64_t pte = PmapInternals::mem(*p).read_entry(t, i);
  if (!(pte & PTE_P)) return std::nullopt;
  return pfn_t(pte_frame(pte));
}

unsigned pmap_collect(pmap_t p) {
  VMFUZZ_MACHINE_ASSERT(p != nullptr, "pmap_collect", "null pmap");
  PmapDomain& d = *p->domain_;
  d.stats_.collects++;
  if (d.collect_drops_mappings_) pmap_remove(p, 0, kVaLimit);
  return PmapInternals::free_empty_tables(*p);
}

void pmap_activate(pmap_t p, unsigned cpu) {
  VMFUZZ_MACHINE_ASSERT(p != nullptr, "pmap_activate", "null pmap");
  PmapDomain& d = *p->domain_;
  VMFUZZ_MACHINE_ASSERT(cpu < d.machine_->cpu_count(), "pmap_activate", "no such CPU");
  if (d.on_cpu_[cpu] == p) return;
  if (pmap_t prev = d.on_cpu_[cpu]) prev->active_ &= ~(1ull << cpu);
  d.machine_->load_cr3(cpu, p->cr3());  // flushes the CPU's TLB: it starts coherent
  d.on_cpu_[cpu] = p;
  p->active_ |= 1ull << cpu;
}

void pmap_deactivate(pmap_t p, unsigned cpu) {
  VMFUZZ_MACHINE_ASSERT(p != nullptr, "pmap_deactivate", "null pmap");
  PmapDomain& d = *p->domain_;
  VMFUZZ_MACHINE_ASSERT(cpu < d.machine_->cpu_count(), "pmap_deactivate", "no such CPU");
  VMFUZZ_MACHINE_ASSERT(d.on_cpu_[cpu] == p, "pmap_deactivate", "pmap not active on that CPU");
  d.machine_->load_cr3(cpu, machine::kEmptyCr3);
  d.on_cpu_[cpu] = nullptr;
  p->active_ &= ~(1ull << cpu);
}

}  // namespace vmfuzz::pmap
