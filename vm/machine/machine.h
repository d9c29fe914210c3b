// machine.h — the simulated x86-64 hardware: physical frames, 4-level page tables, the
// page walker, per-CPU TLBs and page-fault delivery. Knows nothing of VM objects.
//
// Implemented in vm/machine/*.cc (physical_memory.cc, walk.cc, tlb.cc, machine.cc).
//
// Theory of operation:
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
#include <memory>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmfuzz/vocab.h"

/// Contract assertion, active in every build: prints `where: message` and aborts.
/// Used on contract lines of vm/machine and vm/pmap (a failure is a finding, not UB).
#define VMFUZZ_MACHINE_ASSERT(cond, where, msg)                                      \
  do {                                                                               \
    if (!(cond)) ::vmfuzz::machine::contract_failure((where), (msg), #cond);         \
  } while (0)

/// On oracle routines (invariant checkers): keep libFuzzer's coverage instrumentation out
/// of them, so that their table scans neither slow fuzzing down nor count as progress.
#if defined(__clang__)
#define VMFUZZ_NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define VMFUZZ_NO_COVERAGE
#endif

namespace vmfuzz::machine {

/// Prints one line `ERROR: vmfuzz contract <where>: <msg> (<cond>)` and aborts.
[[noreturn]] void contract_failure(const char* where, const char* msg, const char* cond);

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

/// What the walker does with one bit of a paging-structure entry, for user data accesses
/// with CR0.WP=1 (the only kind simulated). `kPteBits` below is the table a test walks.
enum class PteBitRole : uint8_t {
  Present,     // clear at any level: not-present fault (PF_P clear)
  Writable,    // clear at any level: a write faults (PF_P|PF_W)
  User,        // clear at any level: every user access faults (PF_P)
  Accessed,    // set by the walker on every level of a permitted access
  Dirty,       // leaf: set by the walker on a permitted write; ignored above the leaf
  PageSize,    // PDPT/PD: 1 would mean a large page, unsupported: reserved-bit fault
               // (PF_P|PF_RSVD); PML4: reserved, same fault; PT: PAT, ignored
  Ignored,     // cached in no way that changes a data access here (PWT, PCD, G, NX)
  Frame,       // bits 12..51: next table or the leaf's frame; a frame outside physical
               // memory is a reserved-bit fault (MAXPHYADDR is the memory size here)
};

struct PteBitInfo {
  const char* name;
  uint64_t mask;
  PteBitRole role;
  const char* meaning;
};

// Row per bit. Ignored bits are stored and preserved but never change a data access:
// PWT/PCD (caching), G (this machine never keeps entries across CR3 loads: every load
// flushes everything), NX (loads and stores are never instruction fetches).
inline constexpr PteBitInfo kPteBits[] = {
    {"P", PTE_P, PteBitRole::Present, "present"},
    {"RW", PTE_RW, PteBitRole::Writable, "writes allowed (CR0.WP=1: for user and kernel)"},
    {"US", PTE_US, PteBitRole::User, "user-mode accesses allowed"},
    {"PWT", PTE_PWT, PteBitRole::Ignored, "page write-through"},
    {"PCD", PTE_PCD, PteBitRole::Ignored, "page cache disable"},
    {"A", PTE_A, PteBitRole::Accessed, "accessed: set on every level used"},
    {"D", PTE_D, PteBitRole::Dirty, "dirty: set on the leaf by a permitted write"},
    {"PS", PTE_PS, PteBitRole::PageSize, "page size (large pages unsupported)"},
    {"G", PTE_G, PteBitRole::Ignored, "global (CR3 loads flush it anyway here)"},
    {"NX", PTE_NX, PteBitRole::Ignored, "no execute (data accesses only)"},
    {"FRAME", PTE_FRAME_MASK, PteBitRole::Frame, "physical frame number << 12"},
};

/// Frame number in an entry, and an entry's frame field for a frame.
inline constexpr uint64_t pte_frame(uint64_t pte) { return (pte & PTE_FRAME_MASK) >> 12; }
inline constexpr uint64_t pte_for_frame(pfn_t f) { return (uint64_t(f) << 12) & PTE_FRAME_MASK; }
/// Index of va in the table at level 0 (PML4) .. 3 (PT).
inline constexpr unsigned pt_index(uint64_t va, unsigned level) {
  return unsigned((va >> (39 - 9 * level)) & 511);
}
inline constexpr unsigned kEntriesPerTable = 512;
/// A canonical 48-bit address: bits 63..47 all equal.
inline constexpr bool is_canonical(uint64_t va) {
  uint64_t top = va >> 47;
  return top == 0 || top == (1ull << 17) - 1;
}
/// CR3 value meaning "no address space": outside any physical memory, so every walk
/// from it faults not-present. CPUs start with it; pmap_deactivate loads it.
inline constexpr uint64_t kEmptyCr3 = 0x000ffffffffff000ull;

// Page-fault error code bits delivered with CR2 (SDM 4.7).
inline constexpr uint32_t PF_P = 1u << 0;  // 1: protection violation; 0: not present
inline constexpr uint32_t PF_W = 1u << 1;  // 1: the access was a write
inline constexpr uint32_t PF_U = 1u << 2;  // 1: user-mode access (always, here)
inline constexpr uint32_t PF_RSVD = 1u << 3;  // 1: a reserved bit was set (PS, frame beyond memory)

/// Who holds a frame, for the "no frame lost, none twice" invariant. Device frames are
/// memory of simulated devices (a frame buffer, say), above RAM: never allocated, never
/// freed, mapped into objects by vm_object_page_map.
enum class FrameUse : uint8_t { Free, PageTable, VmPage, Device };

/// Physical memory. Frames start filled with junk (kJunkByte), never zero, and a freed
/// frame keeps its contents and is the next one handed out (LIFO), so a frame that is not
/// zeroed before use shows old data. Frame 0 is an ordinary frame.
///
/// Physical address space: RAM frames [0, nframes), then `device_frames` device frames
/// [nframes, nframes + device_frames) — device memory, as MMIO sits above RAM on a PC.
/// Device frames are valid PTE targets and readable/writable like RAM, but the allocator
/// never hands them out; they read zero until written and their use is always Device.
class PhysicalMemory {
 public:
  static constexpr uint8_t kJunkByte = 0xdb;
  explicit PhysicalMemory(uint32_t nframes, uint32_t device_frames = 0);
  ~PhysicalMemory();  // hands the byte buffer to the next PhysicalMemory (see .cc)
  PhysicalMemory(const PhysicalMemory&) = delete;
  PhysicalMemory& operator=(const PhysicalMemory&) = delete;
  PhysicalMemory(PhysicalMemory&&) = default;  // movable as before (a moved-from one gives back nothing)
  PhysicalMemory& operator=(PhysicalMemory&&) = default;
  /// The state of PhysicalMemory(nframes, device_frames) again (every frame free or
  /// device, junk laid lazily from frame 0 again, device frames zeroed again on first
  /// touch), in the same byte buffer when it is large enough: no allocation, and under
  /// ASan no poisoning of the whole buffer. Exactly what construction does (both call
  /// init()).
  void reset(uint32_t nframes, uint32_t device_frames = 0);
  /// Every frame of the physical address space: RAM and device frames.
  uint32_t frame_count() const { return nframes_ + device_frames_; }
  /// RAM frames only (what the allocator manages: `config frames=`).
  uint32_t ram_frame_count() const { return nframes_; }
  /// The first device frame (== ram_frame_count()).
  pfn_t device_base() const { return nframes_; }
  uint32_t free_count() const { return uint32_t(free_.size()); }
  uint8_t* frame(pfn_t f);
  const uint8_t* frame(pfn_t f) const;
  /// Deterministic: the same sequence of alloc/free calls yields the same frames. Frames
  /// are NOT zeroed here (callers zero them: a missed zero is a bug the harness must see).
  /// Returns kNoFrame when none is free.
  pfn_t alloc_frame(FrameUse use);
  void free_frame(pfn_t f);  // asserts the frame is in use
  FrameUse use_of(pfn_t f) const;
  /// Frames currently holding `use` (Free: same as free_count()).
  uint32_t count_of(FrameUse use) const;
  /// Read / write one 8-byte entry of a page-table frame (little-endian, as x86).
  /// Inline (below): the walker reads four of them per translation.
  uint64_t read_entry(pfn_t table, unsigned index) const;
  void write_entry(pfn_t table, unsigned index, uint64_t value);

 private:
  /// Fill frames [junk_upto_, f] with kJunkByte the first time anything touches them.
  void junk_fill_upto(pfn_t f) const;
  /// Everything but the byte buffer, as construction sets it (the constructor and reset).
  void init(uint32_t nframes, uint32_t device_frames);

  uint32_t nframes_;
  uint32_t device_frames_;
  // (nframes_ + device_frames_) * 4096, allocated uninitialized: frames below junk_upto_ have been filled
  // with kJunkByte (or written since); the rest are filled on first touch, so a large
  // machine costs nothing for frames it never uses.
  std::unique_ptr<uint8_t[]> bytes_;
  size_t capacity_ = 0;          // bytes_ holds capacity_ >= nframes_ * 4096 bytes
  mutable uint32_t junk_upto_ = 0;
  mutable std::vector<uint8_t> device_zeroed_;  // per device frame: zeroed since construction
  std::vector<FrameUse> use_;    // per frame
  std::vector<pfn_t> free_;      // LIFO stack of free frames; back() is handed out next
  uint32_t counts_[4] = {0, 0, 0, 0};  // frames per FrameUse
};

// The accessors every simulated access goes through, inline: a bounds assertion, the
// lazy junk fill of a frame never touched before, the address arithmetic.
inline uint8_t* PhysicalMemory::frame(pfn_t f) {
  VMFUZZ_MACHINE_ASSERT(f < nframes_ + device_frames_, "PhysicalMemory::frame", "frame out of range");
  if (f >= junk_upto_) junk_fill_upto(f);
  return bytes_.get() + size_t(f) * kPageSize;
}

inline const uint8_t* PhysicalMemory::frame(pfn_t f) const {
  VMFUZZ_MACHINE_ASSERT(f < nframes_ + device_frames_, "PhysicalMemory::frame", "frame out of range");
  if (f >= junk_upto_) junk_fill_upto(f);
  return bytes_.get() + size_t(f) * kPageSize;
}

inline FrameUse PhysicalMemory::use_of(pfn_t f) const {
  VMFUZZ_MACHINE_ASSERT(f < nframes_ + device_frames_, "use_of", "frame out of range");
  return use_[f];
}

inline uint64_t PhysicalMemory::read_entry(pfn_t table, unsigned index) const {
  uint64_t v;
  std::memcpy(&v, frame(table) + size_t(index % kEntriesPerTable) * 8, 8);
  return v;
}

inline void PhysicalMemory::write_entry(pfn_t table, unsigned index, uint64_t value) {
  std::memcpy(frame(table) + size_t(index % kEntriesPerTable) * 8, &value, 8);
}

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
  const TlbEntry* lookup(uint64_t vpn) const;  // inline below
  void insert(const TlbEntry& e);  // replaces an entry for the same vpn, else FIFO eviction
  void invalidate(uint64_t vpn);
  void flush();
  /// Entries in insertion order (for oracles and tests).
  std::vector<TlbEntry> entries() const;
  unsigned capacity() const { return capacity_; }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kNoVpn = UINT64_MAX;  // an emptied slot (never compared: find
                                                  // scans occupied slots only)
  /// Physical slot holding vpn, or capacity_ when absent. Scans the size_ occupied slots
  /// only: [head_, head_ + size_), wrapping once.
  unsigned find(uint64_t vpn) const {
    const unsigned end1 = head_ + size_ <= capacity_ ? head_ + size_ : capacity_;
    for (unsigned i = head_; i < end1; i++)
      if (vpns_[i] == vpn) return i;
    const unsigned end2 = head_ + size_ - end1;  // slots that wrapped to the front
    for (unsigned i = 0; i < end2; i++)
      if (vpns_[i] == vpn) return i;
    return capacity_;
  }
  /// Physical slot of the i-th oldest entry.
  unsigned slot(unsigned i) const {
    unsigned s = head_ + i;
    return s >= capacity_ ? s - capacity_ : s;
  }
  /// Drop the entry in physical slot s, keeping fill order.
  void erase_slot(unsigned s);

  unsigned capacity_;
  unsigned size_ = 0;
  unsigned head_ = 0;  // physical slot of the oldest entry
  // A ring of capacity_ slots in fill order from head_: the size_ slots from head_
  // (wrapping) are occupied. The vpns are kept apart from the entries so that a lookup
  // scans one or two cache lines.
  std::unique_ptr<uint64_t[]> vpns_;
  std::unique_ptr<TlbEntry[]> entries_;
};

inline const TlbEntry* Tlb::lookup(uint64_t vpn) const {
  unsigned s = find(vpn);
  return s < capacity_ ? &entries_[s] : nullptr;
}

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
/// claimed success kMaxRetries times without fixing the translation (a VM bug, reported);
/// the access then stops at that page with kr = KERN_FAILURE.
struct AccessResult {
  kern_return_t kr = KERN_SUCCESS;
  uint64_t fault_addr = 0;
  uint64_t done = 0;  // bytes transferred before fault_addr
  bool fault_loop = false;
};

class Machine {
 public:
  static constexpr unsigned kMaxRetries = 8;
  Machine(uint32_t nframes, unsigned ncpus, unsigned tlb_capacity, uint32_t device_frames = 0);
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

  /// The state of Machine(nframes, ncpus, tlb_capacity, device_frames) again — memory
  /// (PhysicalMemory::reset), CPUs (CR3, TLBs), counters — keeping the frame buffer. The
  /// fault handler is kept (its owner resets it).
  void reset(uint32_t nframes, unsigned ncpus, unsigned tlb_capacity, uint32_t device_frames = 0);

  /// Invariant tlb_coherent: every TLB entry of every CPU grants no more than a pure walk
  /// of that CPU's current tables: same frame, user only if the walk allows a user read,
  /// writable only if it allows a write, dirty only if the leaf's D is set (else a write
  /// would skip setting D: a lost dirty bit). No side effects. On failure writes one line
  /// naming the CPU, va and what differs to *detail (if given) and returns false.
  bool tlb_coherent(std::string* detail) const;

 private:
  struct Translation {
    bool ok;
    pfn_t frame;
    uint32_t error_code;
  };
  Translation translate(unsigned cpu, uint64_t va, AccessKind kind);
  AccessResult access(unsigned cpu, uint64_t va, uint8_t* buf, uint64_t len, AccessKind kind);
  /// The CPUs and counters as construction sets them (the constructor and reset).
  void init_cpus(unsigned ncpus, unsigned tlb_capacity);

  PhysicalMemory mem_;
  std::vector<Cpu> cpus_;
  FaultHandler* handler_ = nullptr;
  Stats stats_;
};

}  // namespace vmfuzz::machine
