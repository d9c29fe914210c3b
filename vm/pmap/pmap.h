// pmap.h — the machine-dependent VM layer on the simulated MMU (Mach's pmap interface).
//
// Implemented in vm/pmap/pmap.cc.
//
// Theory of operation: a PmapDomain owns the per-frame state shared by all pmaps of one machine — pv
// lists (every (pmap, va) mapping each frame) and the attribute bits (modified,
// referenced) folded in from the MMU's D and A bits when mappings go away. A Pmap is one
// address space: a PML4 frame and the tables below it, all in simulated frames.
// Every change that reduces or removes rights shoots down the TLB entries of every CPU on
// which the pmap is active; a CPU switched to a pmap starts coherent (CR3 load).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vm/machine/machine.h"
#include "vmfuzz/vocab.h"

namespace vmfuzz::pmap {

using machine::pfn_t;

class PmapDomain;
struct PmapInternals;  // pmap.cc: the routines below, with access to the fields

// The interface routines (declared at the end) may touch the fields of both classes.
#define VMFUZZ_PMAP_FRIENDS                                           \
  friend struct PmapInternals;                                        \
  friend Pmap* pmap_create(PmapDomain& d);                            \
  friend void pmap_destroy(Pmap* p);                                  \
  friend kern_return_t pmap_enter(Pmap* p, uint64_t, pfn_t, vm_prot_t); \
  friend unsigned pmap_collect(Pmap* p);                              \
  friend void pmap_activate(Pmap* p, unsigned cpu);                   \
  friend void pmap_deactivate(Pmap* p, unsigned cpu);

class Pmap {
 public:
  PmapDomain& domain();
  uint64_t cr3() const;  // physical address of the PML4
  /// Bit i set: the pmap is active (loaded in CR3) on CPU i.
  uint64_t active_cpus() const;
  /// Valid leaf PTEs (pages mapped) and page-table frames held, the PML4 included.
  uint64_t resident_count() const { return resident_; }
  uint32_t pt_frame_count() const { return pt_frames_; }

 private:
  VMFUZZ_PMAP_FRIENDS
  friend class PmapDomain;
  Pmap(PmapDomain& d, pfn_t pml4) : domain_(&d), pml4_(pml4) {}
  // All fields change only inside pmap.cc's routines.
  PmapDomain* domain_;
  pfn_t pml4_;              // fixed for the pmap's life
  uint64_t active_ = 0;     // pmap_activate/deactivate; bit i <=> CPU i's CR3 is ours
  uint64_t resident_ = 0;   // pmap_enter (+1 new) / every removal (-1) [pv_consistent]
  uint32_t pt_frames_ = 1;  // page-table frames of this pmap, PML4 included
};
using pmap_t = Pmap*;

/// One mapping of a frame (pv entry).
struct PvEntry {
  pmap_t pmap;
  uint64_t va;
};

class PmapDomain {
 public:
  explicit PmapDomain(machine::Machine& m);
  /// The state of PmapDomain(m) again for the machine as it is now (after
  /// Machine::reset): no pmap, no pv entry, every per-frame and per-CPU table cleared;
  /// the per-frame tables keep their storage. A pmap still alive is dropped with the rest
  /// (its page-table frames are the machine's, which Machine::reset frees).
  void reset();
  machine::Machine& machine();

  /// Counters: shootdowns (invlpg sent to a CPU), pt_frames (page-table frames in use).
  struct Stats {
    uint64_t shootdowns = 0, pt_frames = 0, collects = 0;
  };
  const Stats& stats() const;

  /// Frame attribute bits plus the D/A bits of current mappings.
  bool pmap_is_modified(pfn_t f);
  void pmap_clear_modify(pfn_t f);
  bool pmap_is_referenced(pfn_t f);
  void pmap_clear_reference(pfn_t f);
  /// Reduce every mapping of f to prot (VM_PROT_NONE removes them all), shooting down TLBs.
  void pmap_page_protect(pfn_t f, vm_prot_t prot);
  void pmap_zero_page(pfn_t f);
  void pmap_copy_page(pfn_t src, pfn_t dst);
  /// Every mapping of f (for oracles and tests), in a deterministic order.
  std::vector<PvEntry> mappings_of(pfn_t f) const;

  // --- Additions beyond the contract --------------------------------------------------
  ~PmapDomain();  // deletes the Pmap objects still alive; does not touch frames
  PmapDomain(const PmapDomain&) = delete;
  PmapDomain& operator=(const PmapDomain&) = delete;
  /// Live pmaps in creation order.
  std::vector<pmap_t> pmaps() const;
  /// The pmap whose CR3 CPU cpu holds, or nullptr.
  pmap_t active_on(unsigned cpu) const;
  /// Tunable: pmap_collect first removes every mapping of the pmap (Mach's behaviour:
  /// no wired mappings exist here, so every PT page goes). Default true. When false it
  /// only frees page-table pages that already map nothing. Either way nothing a task can
  /// read changes (the VM refaults).
  void set_collect_drops_mappings(bool on) { collect_drops_mappings_ = on; }
  /// Invariant pv_consistent: every valid leaf PTE of every pmap has exactly one pv entry
  /// on its frame and every pv entry names a valid leaf PTE mapping that frame; resident
  /// and page-table counts agree with the tables. No side effects. On failure writes one
  /// line to *detail (if given) and returns false.
  bool pv_consistent(std::string* detail) const;

 private:
  VMFUZZ_PMAP_FRIENDS
  // Attribute bits of a frame, folded from D/A as mappings go away or lose write.
  static constexpr uint8_t kAttrModified = 1, kAttrReferenced = 2;
  void init();  // the per-frame and per-CPU tables and counters (constructor and reset)
  machine::Machine* machine_;
  std::vector<std::vector<PvEntry>> pv_;      // per frame, in order of pmap_enter
  std::vector<uint8_t> attrs_;                // per frame: kAttr* bits
  // Per page-table frame: bit i set <=> entry i is present. Kept by every write of an
  // entry in pmap.cc [pv_consistent checks it]; lets range walks visit present entries
  // only, so removing a sparse range costs what it touches.
  std::vector<std::array<uint64_t, 8>> present_;
  std::vector<pmap_t> on_cpu_;                // per CPU: the active pmap or nullptr
  std::vector<std::unique_ptr<Pmap>> pmaps_;  // creation order
  bool collect_drops_mappings_ = true;
  Stats stats_;
};

/// A new, empty address space (allocates the PML4 frame; KERN_RESOURCE_SHORTAGE -> nullptr).
pmap_t pmap_create(PmapDomain& d);
/// Remove every mapping and free every page-table frame; the pmap must be inactive on all CPUs.
void pmap_destroy(pmap_t p);
/// Map va -> f with prot (read implies user-readable; write sets RW; no execute sets NX).
/// Replaces an existing mapping (and may raise rights). Allocates page-table frames as
/// needed: KERN_RESOURCE_SHORTAGE when none is free (nothing changed then).
kern_return_t pmap_enter(pmap_t p, uint64_t va, pfn_t f, vm_prot_t prot);
/// Remove mappings in [start, end), folding D/A into frame attributes; shoots down.
void pmap_remove(pmap_t p, uint64_t start, uint64_t end);
/// Reduce rights in [start, end) to prot (never raises; NONE removes); shoots down.
void pmap_protect(pmap_t p, uint64_t start, uint64_t end, vm_prot_t prot);
/// The frame mapped at va, if any (no side effects).
std::optional<pfn_t> pmap_extract(pmap_t p, uint64_t va);
/// Free page-table pages that map nothing (and, as in Mach, may drop mappings of
/// pageable pages: the VM refaults them). Returns the number of frames freed.
unsigned pmap_collect(pmap_t p);
/// Load p into CPU cpu's CR3 (no-op when already loaded there).
void pmap_activate(pmap_t p, unsigned cpu);
/// Unload p from cpu (loads an empty kernel CR3).
void pmap_deactivate(pmap_t p, unsigned cpu);

#undef VMFUZZ_PMAP_FRIENDS

}  // namespace vmfuzz::pmap
