// vocab.h — the vocabulary shared by the VM, the reference model and the harness.
//
// Theory of operation
// -------------------
// vmfuzz runs every operation twice: on the optimized Mach-style VM (vm/) and on the
// simple reference model (reference_model/). The two must never share code — an oracle
// that shares code with the system it judges shares its bugs — so the only thing they
// have in common is this header: the result codes, the protection/inheritance/strategy
// types, the op table, the Op value type, and `MemorySystem`, the abstract interface
// both sides implement with one entry point per op of docs/language.md.
//
// Names. Tasks t0..t15, copy handles c0..c15 and memory objects m0..m15 are small
// integers chosen by the caller. The caller (the harness) guarantees that a name passed
// in exists (or, for a name being created, is free): name errors are unusable input and
// are caught before either side runs. Both sides keep their own table of 16 slots each.
//
// This header depends on the C++ standard library only.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace vmfuzz {

// ---------------------------------------------------------------------------------------
// Result codes, with GNU Mach's numbers (mach/kern_return.h).
enum kern_return_t : int {
  KERN_SUCCESS = 0,
  KERN_INVALID_ADDRESS = 1,
  KERN_PROTECTION_FAILURE = 2,
  KERN_NO_SPACE = 3,
  KERN_INVALID_ARGUMENT = 4,
  KERN_FAILURE = 5,
  KERN_RESOURCE_SHORTAGE = 6,
  KERN_MEMORY_ERROR = 10,
};

/// The trace spelling of a code ("KERN_NO_SPACE"); "KERN_<n>" for an unknown number.
std::string kern_return_name(kern_return_t kr);
/// Parse a trace spelling; returns false if `s` names no code.
bool kern_return_from_name(const std::string& s, kern_return_t* out);

// ---------------------------------------------------------------------------------------
// Protection (mach/vm_prot.h): a bit set. Trace form: three letters "rwx" with '-' gaps.
using vm_prot_t = uint8_t;
inline constexpr vm_prot_t VM_PROT_NONE = 0;
inline constexpr vm_prot_t VM_PROT_READ = 1;
inline constexpr vm_prot_t VM_PROT_WRITE = 2;
inline constexpr vm_prot_t VM_PROT_EXECUTE = 4;
inline constexpr vm_prot_t VM_PROT_ALL = 7;
inline constexpr vm_prot_t VM_PROT_DEFAULT = VM_PROT_READ | VM_PROT_WRITE;

// Inheritance (mach/vm_inherit.h numbers).
enum class vm_inherit_t : uint8_t { Share = 0, Copy = 1, None = 2 };

// Copy strategy of a memory object (mach/memory_object.h numbers).
enum class CopyStrategy : uint8_t { None = 0, Call = 1, Delay = 2 };

// How a held memory manager answers one of its pending data requests (`reply`,
// docs/concurrency.md): memory_object_data_supply with its store's page, data_unavailable
// (it drops the page from its store: it reads zero from then on) or data_error.
enum class ReplyHow : uint8_t { Supply = 0, Unavailable = 1, Error = 2 };

// What a manager's `lock` (memory_object_lock_request) asks: should_return, should_flush.
inline constexpr uint8_t kLockReturn = 1, kLockFlush = 2;

inline constexpr uint64_t kPageSize = 4096;
inline constexpr unsigned kPageShift = 12;
inline constexpr uint64_t kUserMin = 0x10000;          // lowest user address
inline constexpr uint64_t kUserMax = 0x7ffffffff000;   // one past the highest user page
inline constexpr unsigned kMaxNames = 16;              // t0..t15, c0..c15, m0..m15
inline constexpr uint64_t kMaxDeviceSize = 16 * kPageSize;  // largest `device` (64 KiB)

inline constexpr uint64_t trunc_page(uint64_t a) { return a & ~(kPageSize - 1); }
/// Round up; wraps to 0 past 2^64 - 4096 (callers check for wrap first).
inline constexpr uint64_t round_page(uint64_t a) { return (a + kPageSize - 1) & ~(kPageSize - 1); }

// ---------------------------------------------------------------------------------------
// The op table (ops.def is the single source).
enum class OpKind : uint8_t {
#define VMFUZZ_OP(E, TEXT, NUM, ...) E = NUM,
#include "vmfuzz/ops.def"
#undef VMFUZZ_OP
};
/// The op numbers in use are 0..kOpKindCount-1 (the highest number + 1). A number may be
/// unused while a sibling branch holds it (op_kind_exists): nothing decodes or draws it.
inline constexpr unsigned kOpKindCount = [] {
  unsigned n = 0;
#define VMFUZZ_OP(E, TEXT, NUM, ...) n = (NUM) + 1 > n ? (NUM) + 1 : n;
#include "vmfuzz/ops.def"
#undef VMFUZZ_OP
  return n;
}();
/// Is there a row of ops.def with this number?
inline constexpr bool op_kind_exists(unsigned k) {
#define VMFUZZ_OP(E, TEXT, NUM, ...) if (k == (NUM)) return true;
#include "vmfuzz/ops.def"
#undef VMFUZZ_OP
  return false;
}
/// The rows of ops.def.
inline constexpr unsigned kOpRowCount = 0
#define VMFUZZ_OP(E, TEXT, NUM, ...) +1
#include "vmfuzz/ops.def"
#undef VMFUZZ_OP
    ;
/// Trace keyword of an op kind ("vm_copy").
const char* op_kind_name(OpKind k);
/// Parse a trace keyword; false if unknown.
bool op_kind_from_name(const std::string& s, OpKind* out);

// ---------------------------------------------------------------------------------------
/// Data as written in a trace: kept in its written form so that printing reproduces it,
/// and materialized on demand (a fill of 1 MiB costs nothing until used).
struct DataSpec {
  enum class Form : uint8_t { Text, Hex, Fill, Pat };
  Form form = Form::Hex;
  std::vector<uint8_t> bytes;  // Text and Hex: the bytes themselves
  uint8_t value = 0;           // Fill: the byte; Pat: the seed
  uint64_t length = 0;         // Fill and Pat: the length
  uint64_t size() const { return (form == Form::Text || form == Form::Hex) ? bytes.size() : length; }
  /// The bytes this spec stands for. Pat byte i is (SEED + 7*i + (i >> 8)) mod 256.
  std::vector<uint8_t> materialize() const;
  bool operator==(const DataSpec&) const = default;
  /// `fill:VALUE*LENGTH` and `pat:SEED*LENGTH`.
  static DataSpec fill(uint8_t value, uint64_t length) { return {Form::Fill, {}, value, length}; }
  static DataSpec pat(uint8_t seed, uint64_t length) { return {Form::Pat, {}, seed, length}; }
};

/// An assertion written after an op: `== DATA` and/or `=> RESULT`.
struct Expect {
  enum class Result : uint8_t { None, Code, Fault, Address };
  bool has_bytes = false;   // `== DATA` given
  DataSpec bytes;
  Result result = Result::None;
  kern_return_t code = KERN_SUCCESS;  // Code: the code; Fault: the fault code
  uint64_t addr = 0;                  // Fault: the faulting address; Address: the address
  bool operator==(const Expect&) const = default;
};

/// One operation of the language (docs/language.md). Which fields an op uses is its row
/// in ops.def: each argument slot owns some of these fields (harness/lang/op_table.h lists
/// them); a field no slot of the kind owns stays at its default.
struct Op {
  OpKind kind = OpKind::Check;
  uint8_t task = 0, task2 = 0, copy = 0, object = 0;
  uint8_t cpu = 0;
  bool anywhere = false;
  bool set_max = false;
  bool share = false;
  bool persist = false;
  bool all = false;
  uint64_t addr = 0, size = 0, addr2 = 0, offset = 0;
  vm_prot_t prot = VM_PROT_DEFAULT;
  vm_prot_t max_prot = VM_PROT_ALL;
  vm_inherit_t inherit = vm_inherit_t::Copy;
  CopyStrategy strategy = CopyStrategy::Delay;
  uint16_t choice = 0;        // run, reply: which thread or request (docs/concurrency.md)
  bool choice_exact = false;  // `N` (that one, which must exist) rather than `~N` (N-th modulo)
  ReplyHow how = ReplyHow::Supply;
  uint8_t lock = kLockReturn;  // lock: kLockReturn | kLockFlush (docs/concurrency.md §Cleaning)
  DataSpec data;
  Expect expect;
  bool operator==(const Op&) const = default;
};

/// Machine and VM configuration (`config` line). The model uses only `cpus`, to refuse
/// nothing: cpu numbers are checked by the harness.
struct SystemConfig {
  unsigned frames = 1024;  // physical 4 KiB frames
  unsigned cpus = 2;
  unsigned tlb = 16;       // entries per CPU TLB
  unsigned cache = 4;      // bound of the object cache
  bool operator==(const SystemConfig&) const = default;
};

// ---------------------------------------------------------------------------------------
/// The outcome of a user access (read or write through the MMU), or of `file`.
/// kr == KERN_SUCCESS: completed. Otherwise the access stopped at fault_addr with code kr
/// (KERN_INVALID_ADDRESS, KERN_PROTECTION_FAILURE or KERN_MEMORY_ERROR); `bytes` holds the
/// bytes transferred before fault_addr (for a read: their values).
struct Access {
  kern_return_t kr = KERN_SUCCESS;
  uint64_t fault_addr = 0;
  std::vector<uint8_t> bytes;
  /// Same length as `bytes`, or empty when every byte is known: 1 marks a byte whose value
  /// is undefined (docs/language.md §Details 13) and must not be compared.
  std::vector<uint8_t> unknown;
  /// A concurrent side only (docs/concurrency.md): non-zero when the access blocked before
  /// it completed and goes on as this kernel thread. Then `bytes` are the bytes moved
  /// before it blocked, `fault_addr` is where it blocked, and `kr` is KERN_SUCCESS; the
  /// rest of the access arrives later as ThreadSteps.
  uint32_t thread = 0;
};

/// One run of a kernel thread (docs/concurrency.md §Threads): from where it resumed until it
/// blocked again or its op completed. Runs are reported in the order they happened; the
/// executor applies each to the model at that point (the linearization rule).
struct ThreadStep {
  uint32_t thread = 0;
  bool blocked = false;  // true: stopped at access.fault_addr, waiting; false: the op is done
  /// What this run moved. Completed: kr and fault_addr are the access's outcome (bytes
  /// before fault_addr moved in this run). Blocked: kr is KERN_SUCCESS.
  Access access;
};

/// What a `reply` answered (docs/concurrency.md §Managers).
struct ReplyInfo {
  bool exists = false;   // a pending request was chosen (false: none, or an exact N that is not pending)
  uint64_t offset = 0;   // the requested page's offset in the memory object
  uint32_t owner = 0;    // the thread whose fault sent the request (0: it is gone)
  bool silent = false;   // the manager is silent: nothing was answered
};

/// One map entry as a task sees it (merged where adjacent entries agree).
struct RegionInfo {
  uint64_t start = 0, end = 0;
  vm_prot_t prot = 0, max_prot = 0;
  vm_inherit_t inherit = vm_inherit_t::Copy;
  bool operator==(const RegionInfo&) const = default;
};

/// What a side-effect-free peek of one page found.
enum class PeekStatus : uint8_t {
  Unmapped,  // no entry covers the page
  Mapped,    // the page's contents were written to the buffer
  Unknown,   // the page's contents are undefined (after destroy); buffer untouched
};

// ---------------------------------------------------------------------------------------
/// The interface both sides implement: one entry point per op of docs/language.md, plus the
/// side-effect-free views the oracles compare. Addresses and sizes are raw trace values:
/// each side does its own rounding and range checks and returns the codes docs/language.md specifies.
class MemorySystem {
 public:
  virtual ~MemorySystem() = default;

  virtual void task_create(unsigned t) = 0;
  /// `*addr` in: the fixed address (ignored when anywhere); out: the chosen base.
  virtual kern_return_t allocate(unsigned t, uint64_t* addr, uint64_t size, bool anywhere) = 0;
  virtual kern_return_t deallocate(unsigned t, uint64_t addr, uint64_t size) = 0;
  virtual kern_return_t protect(unsigned t, uint64_t addr, uint64_t size, bool set_max,
                                vm_prot_t prot) = 0;
  virtual kern_return_t inherit(unsigned t, uint64_t addr, uint64_t size, vm_inherit_t inh) = 0;
  virtual Access write(unsigned t, uint64_t addr, std::span<const uint8_t> data, unsigned cpu) = 0;
  virtual Access read(unsigned t, uint64_t addr, uint64_t size, unsigned cpu) = 0;
  /// `child` is a free name; fork never fails.
  virtual void fork(unsigned parent, unsigned child) = 0;
  virtual void terminate(unsigned t) = 0;
  virtual kern_return_t vm_copy(unsigned t, uint64_t src, uint64_t size, uint64_t dst) = 0;
  /// On KERN_SUCCESS the handle `c` (a free name) holds the snapshot; otherwise c stays free.
  virtual kern_return_t vm_read(unsigned t, uint64_t addr, uint64_t size, unsigned c) = 0;
  /// Consumes `c` whatever the result.
  virtual kern_return_t vm_write(unsigned t, uint64_t addr, unsigned c) = 0;
  /// Consumes `c` whatever the result; `*addr` out: base + (source addr & 0xfff), or 0.
  virtual kern_return_t copyout(unsigned t, unsigned c, uint64_t* addr) = 0;
  virtual void discard(unsigned c) = 0;

  /// `m` is a free name; init.size() <= round_page(size) (checked by the caller).
  virtual void object_create(unsigned m, uint64_t size, CopyStrategy strategy, bool persist,
                             std::span<const uint8_t> init) = 0;
  /// A device m: device memory of `size` bytes (rounded up to pages; size <=
  /// kMaxDeviceSize and init.size() <= round_page(size), checked by the caller) holding
  /// `init` then zeros, served as a memory object with copy strategy none that is never
  /// cached. Its store is the device memory: `manager_write` is the device changing it.
  virtual void device_create(unsigned m, uint64_t size, std::span<const uint8_t> init) = 0;
  /// `*addr` as for allocate.
  virtual kern_return_t map(unsigned t, uint64_t* addr, bool anywhere, uint64_t size, unsigned m,
                            uint64_t offset, bool share, vm_prot_t prot, vm_prot_t max_prot,
                            vm_inherit_t inh) = 0;
  virtual kern_return_t manager_write(unsigned m, uint64_t offset,
                                      std::span<const uint8_t> data) = 0;
  /// kr is KERN_SUCCESS or KERN_INVALID_ARGUMENT; bytes/unknown as for a read.
  virtual Access file(unsigned m, uint64_t offset, uint64_t size) = 0;
  virtual kern_return_t destroy(unsigned m) = 0;
  /// Evict up to `count` pages (all: as many as possible). Never changes what can be read.
  virtual void pageout(uint64_t count, bool all) = 0;
  /// pmap_collect of task t's address space: its page-table pages are freed and its
  /// mappings dropped (they are refaulted); its pages stay resident. Changes nothing a
  /// task can read.
  virtual void collect(unsigned t) = 0;

  // --- Views for the oracles: no side effects, no faults, no TLB or A/D bit changes ----
  /// The task's regions in address order, adjacent regions with equal attributes merged.
  virtual std::vector<RegionInfo> regions(unsigned t) const = 0;
  /// Appends the page addresses of task t that may hold non-zero or unknown bytes
  /// (a superset is fine; pages not listed on either side must read zero).
  virtual void pages_of_interest(unsigned t, std::vector<uint64_t>& out) const = 0;
  /// What task t would read at the page `va` (page-aligned), into `out`.
  virtual PeekStatus peek_page(unsigned t, uint64_t va, std::span<uint8_t, kPageSize> out) const = 0;
  /// The manager's store of memory object m, as `file` would return it without side
  /// effects, for one page at page-aligned `offset` (inside the object).
  virtual PeekStatus peek_object_page(unsigned m, uint64_t offset,
                                      std::span<uint8_t, kPageSize> out) const = 0;
  /// Appends the page offsets of object m that may hold non-zero or unknown bytes.
  virtual void object_pages_of_interest(unsigned m, std::vector<uint64_t>& out) const = 0;

  // --- Concurrency (docs/concurrency.md) --------------------------------------------------
  // A sequential side (the reference model; Linux refuses these ops out of profile) runs
  // every op to completion at once: it has no threads, no held manager, nothing pending.
  // These defaults say exactly that; only a concurrent side (the VM) overrides them.
  /// `hold m`: m's manager queues the kernel's requests instead of answering at once.
  virtual void hold(unsigned /*m*/) {}
  /// `reply m N HOW`: the manager answers one pending request (`exact`: the N-th in
  /// arrival order, which must exist; else the N-th modulo the pending count).
  /// KERN_INVALID_ARGUMENT (nothing answered) for `unavailable` when m's copy strategy is
  /// not none (the manager may not change data a lazy copy still reads, as for manager_write).
  virtual kern_return_t reply(unsigned /*m*/, unsigned /*choice*/, bool /*exact*/, ReplyHow /*how*/,
                              ReplyInfo* out) {
    *out = ReplyInfo{};
    return KERN_SUCCESS;
  }
  /// `supply m OFFSET`: m's manager sends memory_object_data_supply for the page at
  /// OFFSET unasked, with its store's bytes. The kernel ignores it for a resident page,
  /// takes it as the answer to a request in flight for the page, and may cache it
  /// otherwise: nothing any task or `file` sees changes. KERN_INVALID_ARGUMENT when m is
  /// destroyed or OFFSET is not inside it. This default is the sequential reading (the
  /// model overrides it only to check the arguments).
  virtual kern_return_t supply(unsigned /*m*/, uint64_t /*offset*/) { return KERN_SUCCESS; }
  /// `lock m OFFSET SIZE return|flush|both`: m's manager sends memory_object_lock_request
  /// for the range (should_return, should_flush; docs/concurrency.md §Cleaning): dirty
  /// pages are returned to its store, flushed pages dropped; nothing any task or `file`
  /// sees changes. KERN_INVALID_ARGUMENT when m is destroyed or the range is not inside it.
  /// This default is the sequential reading (the model overrides it to check the arguments).
  virtual kern_return_t lock(unsigned /*m*/, uint64_t /*offset*/, uint64_t /*size*/, uint8_t /*how*/) {
    return KERN_SUCCESS;
  }
  /// `ack m N`: m's manager acknowledges one pending data_return (`exact`: the N-th in
  /// arrival order, which must exist; else the N-th modulo the pending count; none: no
  /// effect). False only when `exact` names a return m does not have (unusable input).
  virtual bool ack(unsigned /*m*/, unsigned /*choice*/, bool /*exact*/) { return true; }
  /// `hold_init m`: m's manager answers memory_object_init by message from now on: the
  /// next kernel object made for m is not ready (faults on it wait) until `ready m`.
  virtual void hold_init(unsigned /*m*/) {}
  /// `ready m`: m's manager answers its pending memory_object_init (memory_object_ready);
  /// no effect when none is pending.
  virtual void ready(unsigned /*m*/) {}
  /// `silent m`: m's manager never answers again, not even in the final drain: its
  /// pending requests and init stay pending, and `reply`, `ready` and `supply` of m do
  /// nothing (their codes are unchanged). Threads waiting for it are not a deadlock.
  virtual void silent(unsigned /*m*/) {}
  /// `run N`: run one runnable thread until it blocks or completes. False only when
  /// `exact` names a thread that is not runnable (unusable input).
  virtual bool run(unsigned /*choice*/, bool /*exact*/) { return true; }
  /// One step of `quiesce` (and of the drain at the end of a program): run the
  /// lowest-numbered runnable thread, else let the lowest-numbered manager with a pending
  /// request answer its oldest (supply). Done: nothing is left. Silenced: nothing is left
  /// but threads that wait for silent managers (`silent`: they never answer; not a
  /// deadlock). Deadlock: threads are blocked, nothing is runnable, nothing is pending
  /// and some blocked thread waits for no silent manager.
  enum class Quiesce : uint8_t { Done, Progress, Deadlock, Silenced };
  virtual Quiesce quiesce_step() { return Quiesce::Done; }
  /// The thread runs since the last call, in order (moved out).
  virtual std::vector<ThreadStep> take_steps() { return {}; }
  /// A concurrent side only: non-zero when the last kernel op (vm_copy) did not complete
  /// but must wait and goes on as this kernel thread (docs/concurrency.md §Threads). It
  /// then changed nothing, its code is KERN_SUCCESS and means nothing, and its outcome
  /// arrives as the ThreadStep (access.kr) of the run that completes it.
  virtual uint32_t op_thread() const { return 0; }
};

/// A MemorySystem that forwards every call to another: the base of the decorators with
/// which tests and property self-tests break one side in one observable way (override the
/// one entry point the injected bug lives in) to prove that an oracle fires. It lives
/// beside the interface so that a new entry point and its forwarding are written together.
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
  void hold(unsigned m) override { in_.hold(m); }
  kern_return_t reply(unsigned m, unsigned c, bool exact, ReplyHow how, ReplyInfo* out) override {
    return in_.reply(m, c, exact, how, out);
  }
  kern_return_t supply(unsigned m, uint64_t o) override { return in_.supply(m, o); }
  kern_return_t lock(unsigned m, uint64_t o, uint64_t n, uint8_t how) override { return in_.lock(m, o, n, how); }
  bool ack(unsigned m, unsigned c, bool exact) override { return in_.ack(m, c, exact); }
  void hold_init(unsigned m) override { in_.hold_init(m); }
  void ready(unsigned m) override { in_.ready(m); }
  void silent(unsigned m) override { in_.silent(m); }
  bool run(unsigned c, bool exact) override { return in_.run(c, exact); }
  Quiesce quiesce_step() override { return in_.quiesce_step(); }
  std::vector<ThreadStep> take_steps() override { return in_.take_steps(); }
  uint32_t op_thread() const override { return in_.op_thread(); }

 protected:
  MemorySystem& in_;
};


// ---------------------------------------------------------------------------------------
/// What one side returned for one op.
struct OpResult {
  kern_return_t kr = KERN_SUCCESS;  // void ops: KERN_SUCCESS; accesses: access.kr
  bool has_addr = false;            // allocate/map any, copyout: a returned address
  uint64_t addr = 0;
  bool is_access = false;           // read, write, file
  bool mmu = false;                 // read, write: a failure is a fault at access.fault_addr
  Access access;
};

/// Purpose:    Run one op on one side: the call of its MemorySystem entry point, the one
///             place that says which entry point an op of each kind calls and with which
///             fields (beside the interface, so that a new op's entry point and its call
///             are written together).
/// Conditions: the op's names are usable on that side (the harness checked them); `data`
///             is op.data materialized for the ops that carry data.
/// quiesce gives up after this many steps (a livelock is then reported as a deadlock).
inline constexpr unsigned kQuiesceSteps = 1u << 16;

inline OpResult run_op(MemorySystem& s, const Op& op, std::span<const uint8_t> data) {
  OpResult r;
  switch (op.kind) {
    case OpKind::Task:
      s.task_create(op.task);
      break;
    case OpKind::Allocate: {
      uint64_t a = op.addr;
      r.kr = s.allocate(op.task, &a, op.size, op.anywhere);
      r.has_addr = op.anywhere;
      r.addr = a;
      break;
    }
    case OpKind::Deallocate:
      r.kr = s.deallocate(op.task, op.addr, op.size);
      break;
    case OpKind::Protect:
      r.kr = s.protect(op.task, op.addr, op.size, op.set_max, op.prot);
      break;
    case OpKind::Inherit:
      r.kr = s.inherit(op.task, op.addr, op.size, op.inherit);
      break;
    case OpKind::Write:
      r.is_access = r.mmu = true;
      r.access = s.write(op.task, op.addr, data, op.cpu);
      r.kr = r.access.kr;
      break;
    case OpKind::Read:
      r.is_access = r.mmu = true;
      r.access = s.read(op.task, op.addr, op.size, op.cpu);
      r.kr = r.access.kr;
      break;
    case OpKind::Fork:
      s.fork(op.task, op.task2);
      break;
    case OpKind::Terminate:
      s.terminate(op.task);
      break;
    case OpKind::VmCopy:
      r.kr = s.vm_copy(op.task, op.addr, op.size, op.addr2);
      break;
    case OpKind::VmRead:
      r.kr = s.vm_read(op.task, op.addr, op.size, op.copy);
      break;
    case OpKind::VmWrite:
      r.kr = s.vm_write(op.task, op.addr, op.copy);
      break;
    case OpKind::Copyout: {
      uint64_t a = 0;
      r.kr = s.copyout(op.task, op.copy, &a);
      r.has_addr = true;
      r.addr = a;
      break;
    }
    case OpKind::Discard:
      s.discard(op.copy);
      break;
    case OpKind::Object:
      s.object_create(op.object, op.size, op.strategy, op.persist, data);
      break;
    case OpKind::Device:
      s.device_create(op.object, op.size, data);
      break;
    case OpKind::Map: {
      uint64_t a = op.addr;
      r.kr = s.map(op.task, &a, op.anywhere, op.size, op.object, op.offset, op.share, op.prot, op.max_prot,
                   op.inherit);
      r.has_addr = op.anywhere;
      r.addr = a;
      break;
    }
    case OpKind::ManagerWrite:
      r.kr = s.manager_write(op.object, op.offset, data);
      break;
    case OpKind::File:
      r.is_access = true;
      r.access = s.file(op.object, op.offset, op.size);
      r.kr = r.access.kr;
      break;
    case OpKind::Destroy:
      r.kr = s.destroy(op.object);
      break;
    case OpKind::Pageout:
      s.pageout(op.size, op.all);
      break;
    case OpKind::Collect:
      s.collect(op.task);
      break;
    case OpKind::Hold:
      s.hold(op.object);
      break;
    case OpKind::Reply: {
      ReplyInfo info;
      r.kr = s.reply(op.object, op.choice, op.choice_exact, op.how, &info);
      break;
    }
    case OpKind::Supply:
      r.kr = s.supply(op.object, op.offset);
      break;
    case OpKind::Lock:
      r.kr = s.lock(op.object, op.offset, op.size, op.lock);
      break;
    case OpKind::Ack:
      s.ack(op.object, op.choice, op.choice_exact);
      break;
    case OpKind::HoldInit:
      s.hold_init(op.object);
      break;
    case OpKind::Ready:
      s.ready(op.object);
      break;
    case OpKind::Silent:
      s.silent(op.object);
      break;
    case OpKind::Run:
      s.run(op.choice, op.choice_exact);
      break;
    case OpKind::Quiesce:
      for (unsigned n = 0; n < kQuiesceSteps && s.quiesce_step() == MemorySystem::Quiesce::Progress; ++n) {
      }
      break;
    case OpKind::Check:
      break;
  }
  return r;
}

}  // namespace vmfuzz
