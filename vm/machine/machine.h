// machine.h — the simulated x86-64 hardware: physical frames, 4-level page tables, the
// page walker, per-CPU TLBs and page-fault delivery. Knows nothing of VM objects.
//
// CONTRACT HEADER (written first, implemented in vm/machine/*.cc). Signatures here are
// what vm/pmap and the tests rely on; the implementation may add members and helpers,
// but must not change these without updating every user.
//
// Theory of operation: see the implementation files; summary:
// - PhysicalMemory is one buffer of N 4 KiB frames and a deterministic frame allocator.
//   Page-table pages live in frames like everything else and compete for them.
// - Page-table entries use the real x86-64 bit layout (table below). The walker is a pure
//   function of memory, CR3 and the access: it returns a translation or a fault value and
//   sets A (every level used) and D (leaf, on write) as the hardware does.
// - Each Cpu has CR3 and a bounded TLB with deterministic (FIFO) replacement. Entries stay
//   until invlpg, a CR3 load or a flush: a stale entry is observable, as on hardware.
// - Machine::load/store perform user accesses of byte ranges that may cross pages, in
//   address order, delivering page faults to the installed handler and retrying.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "vmfuzz/vocab.h"

namespace vmfuzz::machine {

using pfn_t = uint32_t;  // physical frame number
inline constexpr pfn_t kNoFrame = UINT32_MAX;

// x86-64 paging-structure entry bits (Intel SDM vol. 3, 4.5):
//   bit  0 P    present              bit  6 D    dirty (leaf only)
//   bit  1 RW   writable             bit  7 PS   page size (must be 0 here)
//   bit  2 US   user accessible      bit  8 G    global (leaf)
//   bit  3 PWT  write-through        bits 12..51 frame number << 12
//   bit  4 PCD  cache disable        bit 63 NX   no execute
//   bit  5 A    accessed
inline constexpr uint64_t PTE_P = 1ull << 0;
inline constexpr uint64_t PTE_RW = 1ull << 1;
inline constexpr uint64_t PTE_US = 1ull << 2;
inline constexpr uint64_t PTE_PWT = 1ull << 3;
inline constexpr uint64_t PTE_PCD = 1ull << 4;
inline constexpr uint64_t PTE_A = 1ull << 5;
inline constexpr uint64_t PTE_D = 1ull << 6;
inline constexpr uint64_t PTE_PS = 1ull << 7;
inline constexpr uint64_t PTE_G = 1ull << 8;
inline constexpr uint64_t PTE_NX = 1ull << 63;
inline constexpr uint64_t PTE_FRAME_MASK = 0x000ffffffffff000ull;

// Page-fault error code bits delivered with CR2 (SDM 4.7).
inline constexpr uint32_t PF_P = 1u << 0;  // 1: protection violation; 0: not present
inline constexpr uint32_t PF_W = 1u << 1;  // 1: the access was a write
inline constexpr uint32_t PF_U = 1u << 2;  // 1: user-mode access (always, here)

/// Who holds a frame, for the "no frame lost, none twice" invariant.
enum class FrameUse : uint8_t { Free, PageTable, VmPage };

class PhysicalMemory {
 public:
  explicit PhysicalMemory(uint32_t nframes);
  uint32_t frame_count() const;
  uint32_t free_count() const;
  uint8_t* frame(pfn_t f);
  const uint8_t* frame(pfn_t f) const;
  /// Deterministic: the same sequence of alloc/free calls yields the same frames. Frames
  /// are NOT zeroed here (callers zero them: a missed zero is a bug the harness must see).
  /// Returns kNoFrame when none is free.
  pfn_t alloc_frame(FrameUse use);
  void free_frame(pfn_t f);  // asserts the frame is in use
  FrameUse use_of(pfn_t f) const;
};

/// Walk input: a user data access (never an instruction fetch).
enum class AccessKind : uint8_t { Read, Write };

/// The walker's answer: a translation or a fault (value, not exception).
struct WalkResult {
  bool ok = false;
  // ok: the leaf's frame and the rights granted by all four levels combined.
  pfn_t frame = kNoFrame;
  bool writable = false;  // RW set at every level
  bool user = false;      // US set at every level
  bool dirty = false;     // leaf D after this walk
  // !ok: the error code to deliver (PF_P set when the failing level was present).
  uint32_t error_code = 0;
};

/// Walk the tables rooted at cr3 (a physical address) for va. If set_bits, set A on every
/// entry used and D on the leaf for a permitted write (as the hardware does); with
/// set_bits=false it is a pure function (for oracles). Non-canonical va faults.
WalkResult walk(PhysicalMemory& mem, uint64_t cr3, uint64_t va, AccessKind kind, bool set_bits);

struct TlbEntry {
  uint64_t vpn = 0;  // va >> 12
  pfn_t frame = kNoFrame;
  bool writable = false;
  bool user = false;
  bool dirty = false;
};

class Tlb {
 public:
  explicit Tlb(unsigned capacity);
  const TlbEntry* lookup(uint64_t vpn) const;
  void insert(const TlbEntry& e);  // replaces an entry for the same vpn, else FIFO eviction
  void invalidate(uint64_t vpn);
  void flush();
  /// Entries in insertion order (for oracles and tests).
  std::vector<TlbEntry> entries() const;
};

struct Cpu {
  uint64_t cr3 = 0;
  Tlb tlb;
  explicit Cpu(unsigned tlb_capacity) : tlb(tlb_capacity) {}
};

/// The kernel's page-fault handler: called with the CPU, CR2 and the error code. Returns
/// KERN_SUCCESS when it fixed the translation (the access is retried), or the code with
/// which the access stops (KERN_INVALID_ADDRESS, KERN_PROTECTION_FAILURE, KERN_MEMORY_ERROR).
class FaultHandler {
 public:
  virtual ~FaultHandler() = default;
  virtual kern_return_t page_fault(unsigned cpu, uint64_t cr2, uint32_t error_code) = 0;
};

/// Outcome of a user access. kr as for vmfuzz::Access; fault_loop is set when the handler
/// claimed success kMaxRetries times without fixing the translation (a VM bug, reported).
struct AccessResult {
  kern_return_t kr = KERN_SUCCESS;
  uint64_t fault_addr = 0;
  uint64_t done = 0;  // bytes transferred before fault_addr
  bool fault_loop = false;
};

class Machine {
 public:
  static constexpr unsigned kMaxRetries = 8;
  Machine(uint32_t nframes, unsigned ncpus, unsigned tlb_capacity);
  PhysicalMemory& memory();
  const PhysicalMemory& memory() const;
  unsigned cpu_count() const;
  Cpu& cpu(unsigned i);
  const Cpu& cpu(unsigned i) const;
  void set_fault_handler(FaultHandler* h);

  void load_cr3(unsigned cpu, uint64_t cr3);  // flushes that CPU's TLB
  void invlpg(unsigned cpu, uint64_t va);
  void flush_tlb(unsigned cpu);

  /// User loads and stores through the MMU of `cpu`, in address order, stopping at the
  /// first byte that faults for good. `out`/`data` may cross pages.
  AccessResult load(unsigned cpu, uint64_t va, std::span<uint8_t> out);
  AccessResult store(unsigned cpu, uint64_t va, std::span<const uint8_t> data);

  /// Counters for benchmarks and feedback.
  struct Stats {
    uint64_t tlb_hits = 0, tlb_misses = 0, walks = 0, faults = 0, dirty_rewalks = 0;
  };
  const Stats& stats() const;
};

}  // namespace vmfuzz::machine
