// prop_support.cc — model state, generators, command and system under test of the
// property suites (theory of operation in prop_support.h).
//
// Layout: biases; OpState; the generators (values, then one per slot type, then gen_op);
// OpCommand; PropSystem and counterexamples; images of task memory; rapidcheck glue.
#include "props/support/prop_support.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness/exec/report.h"
#include "harness/lang/codec.h"
#include "harness/lang/op_shapes.h"
#include "harness/lang/op_table.h"
#include "harness/lang/text.h"
#include "vm/kernel.h"

namespace rc::detail {
// rapidcheck's own listener: remembers failures and prints their reproduce strings when
// the process exits. Defined in librapidcheck (src/detail/Testing.cpp), not declared in
// the installed headers.
TestListener& globalTestListener();
}  // namespace rc::detail

namespace vmfuzz {
void showValue(const SystemConfig& config, std::ostream& os) { os << format_config(config); }
}  // namespace vmfuzz

namespace vmfuzz::props {

namespace gen = rc::gen;

// ---------------------------------------------------------------------------------------
// Biases.

namespace {
void set_weight(Bias& b, OpKind k, unsigned w) { b.weight[unsigned(k)] = w; }
}  // namespace

Bias Bias::mixed() {
  Bias b;
  b.window_pages = 16;
  set_weight(b, OpKind::Task, 1);
  set_weight(b, OpKind::Allocate, 12);
  set_weight(b, OpKind::Deallocate, 3);
  set_weight(b, OpKind::Protect, 4);
  set_weight(b, OpKind::Inherit, 4);
  set_weight(b, OpKind::Write, 16);
  set_weight(b, OpKind::Read, 10);
  set_weight(b, OpKind::Fork, 6);
  set_weight(b, OpKind::Terminate, 2);
  set_weight(b, OpKind::VmCopy, 5);
  set_weight(b, OpKind::VmRead, 5);
  set_weight(b, OpKind::VmWrite, 4);
  set_weight(b, OpKind::Copyout, 3);
  set_weight(b, OpKind::Discard, 2);
  set_weight(b, OpKind::Object, 3);
  set_weight(b, OpKind::Map, 5);
  set_weight(b, OpKind::ManagerWrite, 3);
  set_weight(b, OpKind::File, 3);
  set_weight(b, OpKind::Destroy, 1);
  set_weight(b, OpKind::Device, 2);
  set_weight(b, OpKind::Pageout, 3);
  set_weight(b, OpKind::Check, 2);
  return b;
}

Bias Bias::chains() {
  Bias b;
  b.window_pages = 4;
  set_weight(b, OpKind::Allocate, 3);
  set_weight(b, OpKind::Write, 20);
  set_weight(b, OpKind::Read, 4);
  set_weight(b, OpKind::Fork, 14);
  set_weight(b, OpKind::Terminate, 9);
  set_weight(b, OpKind::VmCopy, 2);
  set_weight(b, OpKind::Deallocate, 1);
  set_weight(b, OpKind::Inherit, 1);
  set_weight(b, OpKind::Pageout, 1);
  set_weight(b, OpKind::Check, 2);
  return b;
}

Bias Bias::copies() {
  Bias b;
  b.window_pages = 8;
  set_weight(b, OpKind::Allocate, 6);
  set_weight(b, OpKind::Write, 12);
  set_weight(b, OpKind::Read, 6);
  set_weight(b, OpKind::Fork, 8);
  set_weight(b, OpKind::Terminate, 2);
  set_weight(b, OpKind::VmCopy, 10);
  set_weight(b, OpKind::VmRead, 10);
  set_weight(b, OpKind::VmWrite, 8);
  set_weight(b, OpKind::Copyout, 6);
  set_weight(b, OpKind::Discard, 1);
  set_weight(b, OpKind::Protect, 2);
  set_weight(b, OpKind::Map, 3);
  set_weight(b, OpKind::Object, 2);
  set_weight(b, OpKind::Check, 2);
  return b;
}

Bias Bias::objects() {
  Bias b;
  b.window_pages = 16;
  set_weight(b, OpKind::Allocate, 3);
  set_weight(b, OpKind::Write, 12);
  set_weight(b, OpKind::Read, 8);
  set_weight(b, OpKind::Fork, 4);
  set_weight(b, OpKind::Terminate, 2);
  set_weight(b, OpKind::VmRead, 2);
  set_weight(b, OpKind::Copyout, 2);
  set_weight(b, OpKind::Object, 6);
  set_weight(b, OpKind::Map, 12);
  set_weight(b, OpKind::ManagerWrite, 6);
  set_weight(b, OpKind::File, 6);
  set_weight(b, OpKind::Destroy, 2);
  set_weight(b, OpKind::Device, 4);
  set_weight(b, OpKind::Pageout, 6);
  set_weight(b, OpKind::Check, 2);
  return b;
}

// Copy objects under memory pressure: vm_read of a shared region makes a copy object,
// writes push into it, pageout evicts pushed and zero-filled pages, later writes must not
// push again or let the snapshot see newer data. The mixed bias rarely builds all of
// share + fork + vm_read + copyout + write + pageout on one page (found by ci/vmfuzz mutants:
// time_rewind and push_over_paged_out were missed at default case counts).
Bias Bias::snapshots() {
  Bias b;
  b.window_pages = 6;  // copyouts land just above the regions: inside the window
  set_weight(b, OpKind::Allocate, 3);
  set_weight(b, OpKind::Inherit, 6);
  set_weight(b, OpKind::Fork, 4);
  set_weight(b, OpKind::Write, 8);   // few writes: snapshots of untouched pages too
  set_weight(b, OpKind::Read, 10);   // reads fill copy objects with zero pages
  set_weight(b, OpKind::VmRead, 8);
  set_weight(b, OpKind::Copyout, 6);
  set_weight(b, OpKind::Pageout, 8);
  set_weight(b, OpKind::Check, 1);
  b.forbid_objects = true;
  return b;
}

// Accesses that wait for held managers: objects mapped shared (and copied), held, then
// reads and writes on their pages interleaved with replies of every kind, runs of any
// runnable thread, forks, deallocations, pageouts, destroys and drains.
Bias Bias::concurrency() {
  Bias b;
  b.window_pages = 6;
  set_weight(b, OpKind::Allocate, 1);
  set_weight(b, OpKind::Deallocate, 1);
  set_weight(b, OpKind::Protect, 1);
  set_weight(b, OpKind::Write, 14);
  set_weight(b, OpKind::Read, 14);
  set_weight(b, OpKind::Fork, 2);
  set_weight(b, OpKind::Terminate, 1);
  set_weight(b, OpKind::VmRead, 1);
  set_weight(b, OpKind::VmWrite, 1);
  set_weight(b, OpKind::Object, 6);
  set_weight(b, OpKind::Map, 14);
  set_weight(b, OpKind::ManagerWrite, 2);
  set_weight(b, OpKind::File, 2);
  set_weight(b, OpKind::Destroy, 1);
  set_weight(b, OpKind::Pageout, 5);  // evicted pages are asked for again
  set_weight(b, OpKind::Check, 1);
  set_weight(b, OpKind::Hold, 10);
  set_weight(b, OpKind::Reply, 14);
  set_weight(b, OpKind::Run, 14);
  set_weight(b, OpKind::Quiesce, 1);
  set_weight(b, OpKind::Supply, 8);  // unasked supplies over resident, absent and missing pages
  set_weight(b, OpKind::HoldInit, 3);  // before a map: the object waits for its manager's ready
  set_weight(b, OpKind::Ready, 6);
  set_weight(b, OpKind::Silent, 1);  // rare: it freezes everything its objects' faults touch
  set_weight(b, OpKind::Lock, 4);    // cleaning by message: busy pages until the ack
  set_weight(b, OpKind::Ack, 6);
  return b;
}

Bias Bias::setup() {
  Bias b;
  b.window_pages = 8;
  set_weight(b, OpKind::Write, 10);
  set_weight(b, OpKind::Read, 3);
  set_weight(b, OpKind::Fork, 4);
  set_weight(b, OpKind::VmCopy, 3);
  set_weight(b, OpKind::Task, 1);
  set_weight(b, OpKind::Pageout, 1);
  b.forbid_objects = true;
  return b;
}

// ---------------------------------------------------------------------------------------
// OpState.

OpState::OpState(const SystemConfig& cfg, Bias b)
    : config(cfg), names(cfg), bias(std::make_shared<const Bias>(std::move(b))) {}

namespace {

// The executor's rule for whether an op is usable input (executor.cc step 1).
std::optional<std::string> executor_problem(const OpState& s, const Op& op) { return s.names.check(op); }

/// Does `op` name task t, copy handle c, a memory object? (its row's name slots)
bool names_task(const Op& op, unsigned t) {
  for (Slot s : op_spec(op.kind).slots()) {
    if ((s == Slot::Task || s == Slot::NewTask || s == Slot::EndTask || s == Slot::TaskCpu) && op.task == t) return true;
    if (s == Slot::ChildTask && op.task2 == t) return true;
  }
  return false;
}

bool names_copy(const Op& op, unsigned c) {
  const OpSpec& spec = op_spec(op.kind);
  return (spec.has(Slot::Copy) || spec.has(Slot::NewCopy)) && op.copy == c;
}

bool is_object_op(OpKind k) { return op_spec(k).has(Slot::Object) || op_spec(k).has(Slot::NewObject); }

// The bias's fences: forbidden names, and the one write window of a forbidden task.
std::optional<std::string> fence_problem(const Bias& b, const Op& op) {
  if (b.forbid_objects && is_object_op(op.kind)) return std::string("object ops forbidden");
  for (unsigned t = 0; t < kMaxNames; t++) {
    if (!(b.forbidden_tasks >> t & 1) || !names_task(op, t)) continue;
    bool fenced_write = op.kind == OpKind::Write && int(t) == b.fence_task && op.addr >= b.fence_lo &&
                        op.data.size() <= b.fence_hi - op.addr && op.addr < b.fence_hi;
    if (!fenced_write) return "t" + std::to_string(t) + " is forbidden";
  }
  for (unsigned c = 0; c < kMaxNames; c++)
    if ((b.forbidden_copies >> c & 1) && names_copy(op, c)) return "c" + std::to_string(c) + " is forbidden";
  return std::nullopt;
}

std::vector<uint8_t> op_data(const Op& op) {
  if (op_has_data(op.kind))
    return op.data.materialize();
  return {};
}

}  // namespace

std::optional<std::string> OpState::unusable(const Op& op) const {
  if (auto bad = executor_problem(*this, op)) return bad;
  return fence_problem(*bias, op);
}

namespace {
// Bits of the window pages that [addr, addr+size) covers (0 outside the window).
uint64_t window_bits(uint64_t addr, uint64_t size) {
  if (size == 0 || addr < kWindow || size > 64 * kPageSize || addr >= kWindow + 64 * kPageSize) return 0;
  uint64_t first = (addr - kWindow) / kPageSize;
  uint64_t last = std::min<uint64_t>(64, (addr - kWindow + size + kPageSize - 1) / kPageSize);
  uint64_t bits = 0;
  for (uint64_t i = first; i < last; i++) bits |= uint64_t{1} << i;
  return bits;
}

// Where `any` would put n pages, guessing from the hint alone.
uint64_t any_bits(uint64_t hint, uint64_t size) {
  uint64_t n = (size + kPageSize - 1) / kPageSize;
  if (n == 0 || n > 64) return 0;
  for (uint64_t i = 0; i + n <= 64; i++) {
    uint64_t run = (n == 64 ? ~uint64_t{0} : ((uint64_t{1} << n) - 1)) << i;
    if ((hint & run) == 0) return run;
  }
  return 0;
}

void update_hint(std::array<uint64_t, kMaxNames>& h, const Op& op) {
  switch (op.kind) {
    case OpKind::Allocate:
    case OpKind::Map: {
      uint64_t bits = op.anywhere ? any_bits(h[op.task], op.size) : window_bits(trunc_page(op.addr), op.size);
      if ((h[op.task] & bits) == 0) h[op.task] |= bits;
      break;
    }
    case OpKind::Deallocate:
      h[op.task] &= ~window_bits(trunc_page(op.addr), op.size);
      break;
    case OpKind::Fork:
      h[op.task2] = h[op.task];
      break;
    case OpKind::Terminate:
    case OpKind::Task:
      h[op.task] = 0;
      break;
    default:
      break;
  }
}
}  // namespace

void OpState::apply(const Op& op) {
  update_hint(mapped_hint, op);
  kern_return_t kr = KERN_SUCCESS;
  if (op.kind == OpKind::VmRead) {
    // Only the reference model knows whether the handle gets bound: replay on a scratch.
    harness::Subject scratch = harness::make_model_subject(config);
    scratch.system->task_create(0);
    for (const Op& h : history)
      if (h.kind != OpKind::Check) harness::execute_op(*scratch.system, h, op_data(h));
    kr = harness::execute_op(*scratch.system, op, {}).kr;
  }
  names.apply(op, kr);
  history.push_back(op);
}

// ---------------------------------------------------------------------------------------
// Generators of values.

namespace {

std::vector<uint8_t> slots(uint16_t mask, bool live) {
  std::vector<uint8_t> out;
  for (unsigned i = 0; i < kMaxNames; i++)
    if (bool(mask >> i & 1) == live) out.push_back(uint8_t(i));
  return out;
}

std::vector<uint8_t> usable_tasks(const OpState& s) {
  return slots(s.names.tasks_mask() & uint16_t(~s.bias->forbidden_tasks), true);
}
std::vector<uint8_t> free_tasks(const OpState& s) { return slots(s.names.tasks_mask(), false); }
std::vector<uint8_t> usable_copies(const OpState& s) {
  return slots(s.names.copies_mask() & uint16_t(~s.bias->forbidden_copies), true);
}
std::vector<uint8_t> free_copies(const OpState& s) {
  return slots(uint16_t(s.names.copies_mask() | s.bias->forbidden_copies), false);
}
std::vector<uint8_t> live_objects(const OpState& s) { return slots(s.names.objects_mask(), true); }
std::vector<uint8_t> free_objects(const OpState& s) { return slots(s.names.objects_mask(), false); }

rc::Gen<uint64_t> values(std::vector<uint64_t> v) { return gen::elementOf(std::move(v)); }

rc::Gen<uint64_t> page_in_window(unsigned pages) {
  return gen::map(gen::inRange<uint64_t>(0, pages), [](uint64_t p) { return kWindow + p * kPageSize; });
}

// An address: mostly page-aligned in the window, sometimes unaligned (near a page end:
// accesses that cross pages), just past the window (holes), at the edges of user space.
rc::Gen<uint64_t> gen_addr(unsigned pages) {
  return gen::weightedOneOf<uint64_t>({
      {70, page_in_window(pages)},
      {15, gen::apply([](uint64_t base, uint64_t off) { return base + off; }, page_in_window(pages),
                      gen::weightedOneOf<uint64_t>({{3, values({0xffc, 0xff8, 0xfff, 0x800})},
                                                    {2, gen::inRange<uint64_t>(1, kPageSize)}}))},
      {5, gen::map(gen::inRange<uint64_t>(0, 4), [pages](uint64_t p) { return kWindow + (pages + p) * kPageSize; })},
      {5, values({0, 0x1000, 0xf000, kUserMax - kPageSize, kUserMax, uint64_t{1} << 47,
                                 0xfffffffffffff000ull, 0xffffffffffffffffull, 0x7fffffffe000ull})},
      {5, values({0x40000000, 0x100000000ull, 0x7fff00000000ull})},
  });
}

rc::Gen<uint64_t> gen_aligned_addr(unsigned pages) {
  return gen::weightedOneOf<uint64_t>({{90, page_in_window(pages)}, {10, gen_addr(pages)}});
}

// A page the task probably has mapped (from the hint), or nothing.
std::optional<rc::Gen<uint64_t>> hinted_page(uint64_t hint) {
  std::vector<uint64_t> pages;
  for (unsigned i = 0; i < 64; i++)
    if (hint >> i & 1) pages.push_back(kWindow + i * kPageSize);
  if (pages.empty()) return std::nullopt;
  return gen::elementOf(std::move(pages));
}

// Addresses for task t: mostly where the hint says memory is (accesses that land),
// otherwise anywhere gen_addr would go.
rc::Gen<uint64_t> gen_addr_for(uint64_t hint, unsigned pages, bool aligned) {
  auto base = aligned ? gen_aligned_addr(pages) : gen_addr(pages);
  auto hinted = hinted_page(hint);
  if (!hinted) return base;
  if (aligned) return gen::weightedOneOf<uint64_t>({{3, *hinted}, {2, base}});
  auto unaligned = gen::apply([](uint64_t p, uint64_t off) { return p + off; }, *hinted,
                              gen::weightedOneOf<uint64_t>({{3, values({0xffc, 0xff8, 0xfff, 0x800})},
                                                            {2, gen::inRange<uint64_t>(1, kPageSize)}}));
  return gen::weightedOneOf<uint64_t>({{5, *hinted}, {2, unaligned}, {3, base}});
}

// A range size: mostly 1..4 pages, sometimes bytes, zero, the whole window, or huge.
rc::Gen<uint64_t> gen_size(unsigned pages) {
  return gen::weightedOneOf<uint64_t>({
      {70, gen::map(gen::inRange<uint64_t>(1, 5), [](uint64_t n) { return n * kPageSize; })},
      {10, gen::inRange<uint64_t>(1, 2 * kPageSize + 1)},
      {8, gen::just<uint64_t>(0)},
      {7, gen::map(gen::inRange<uint64_t>(1, pages + 1), [](uint64_t n) { return n * kPageSize; })},
      {5, values({uint64_t{1} << 40, kUserMax, 0xffffffffffffffffull, 0xfffffffffffff000ull,
                                 0x7fffffff0000ull})},
  });
}

rc::Gen<uint64_t> gen_read_size() {
  return gen::weightedOneOf<uint64_t>({
      {60, gen::inRange<uint64_t>(1, 65)},
      {15, values({kPageSize, kPageSize - 1, kPageSize + 1, 2 * kPageSize})},
      {5, gen::just<uint64_t>(0)},
      {20, gen::inRange<uint64_t>(1, 3 * kPageSize + 1)},
  });
}

DataSpec bytes_spec(DataSpec::Form form, std::vector<uint8_t> b) {
  DataSpec d;
  d.form = form;
  d.bytes = std::move(b);
  return d;
}

// Data to store: short fills and hex most often (one or two pages touched), patterns and
// page-sized fills that cross pages, text with escapes. Never empty. At most max_len.
rc::Gen<DataSpec> gen_data(uint64_t max_len) {
  auto len = [max_len](uint64_t lo, uint64_t hi) {
    hi = std::min(hi, max_len + 1);
    return gen::inRange<uint64_t>(std::min(lo, hi - 1), hi);
  };
  auto byte = gen::arbitrary<uint8_t>();
  auto small_bytes = [len, byte](uint64_t hi) {
    return gen::mapcat(len(1, hi), [byte](uint64_t n) { return gen::container<std::vector<uint8_t>>(size_t(n), byte); });
  };
  return gen::weightedOneOf<DataSpec>({
      {40, gen::apply(&DataSpec::fill, gen::nonZero<uint8_t>(), len(1, 17))},
      {20, gen::map(small_bytes(17), [](std::vector<uint8_t> b) { return bytes_spec(DataSpec::Form::Hex, std::move(b)); })},
      {15, gen::apply(&DataSpec::pat, byte, len(1, 6001))},
      {15, gen::apply(&DataSpec::fill, gen::nonZero<uint8_t>(), len(kPageSize - 8, 2 * kPageSize + 1))},
      {10, gen::map(small_bytes(9), [](std::vector<uint8_t> b) { return bytes_spec(DataSpec::Form::Text, std::move(b)); })},
  });
}

rc::Gen<vm_prot_t> gen_prot() { return gen::map(gen::inRange<int>(0, 8), [](int p) { return vm_prot_t(p); }); }

// weightedOneOf over a vector (rapidcheck's takes an initializer list only). Shrinks
// towards the first choice.
rc::Gen<Op> weighted(std::vector<std::pair<std::size_t, rc::Gen<Op>>> choices) {
  std::size_t total = 0;
  for (const auto& c : choices) total += c.first;
  return gen::mapcat(gen::inRange<std::size_t>(0, total), [choices](std::size_t x) {
    for (const auto& c : choices) {
      if (x < c.first) return c.second;
      x -= c.first;
    }
    return choices.back().second;
  });
}

rc::Gen<uint8_t> pick(std::vector<uint8_t> names) { return gen::elementOf(std::move(names)); }

Op make(OpKind k) {
  Op op;
  op.kind = k;
  return op;
}

// ---------------------------------------------------------------------------------------
// The context of generation.

/// What the generators need from the state: usable and free names, the window, the CPUs.
struct GenContext {
  explicit GenContext(const OpState& s)
      : bias(*s.bias),
        pages(bias.window_pages),
        tasks(usable_tasks(s)),
        copies(usable_copies(s)),
        free_tasks(vmfuzz::props::free_tasks(s)),
        free_copies(vmfuzz::props::free_copies(s)),
        objects_ok(!bias.forbid_objects),
        objects(objects_ok ? live_objects(s) : std::vector<uint8_t>{}),
        free_objects(vmfuzz::props::free_objects(s)),
        cpus(s.config.cpus),
        hints(s.mapped_hint) {}

  rc::Gen<uint8_t> cpu() const {
    return gen::map(gen::weightedOneOf<unsigned>({{3, gen::just(0u)}, {1, gen::inRange(0u, cpus)}}),
                    [](unsigned c) { return uint8_t(c); });
  }

  // Copies, not references: a generator keeps its context after the state has moved on
  // (rapidcheck re-runs it when it shrinks).
  Bias bias;
  unsigned pages;
  std::vector<uint8_t> tasks, copies, free_tasks, free_copies;
  bool objects_ok;
  std::vector<uint8_t> objects, free_objects;
  unsigned cpus;
  std::array<uint64_t, kMaxNames> hints;
};

using MaybeGen = std::optional<rc::Gen<Op>>;

// ---------------------------------------------------------------------------------------
// One generator for every op: the row's slots (harness/lang/op_table.h), in row order,
// each drawn from the shape of its slot type below. A slot may read what an earlier slot
// of the same op drew: an address reads its task's mapped-page hint, object contents read
// the object's size. What differs per op is only its weight in the bias; what differs
// per slot is a property of the row (an address of a user access, one with a CPU, may sit
// anywhere in a page; one of a range op is page-aligned mostly; a size that places new
// memory has a wider spread). So adding an op needs no generator here.

/// Can every name slot of `k` be filled in this state (a usable name where the slot
/// needs one, a free one where it makes one)?
bool names_available(const GenContext& c, const OpSpec& spec) {
  for (Slot s : spec.slots()) {
    switch (s) {
      case Slot::Task: case Slot::EndTask: case Slot::TaskCpu:
        if (c.tasks.empty()) return false;
        break;
      case Slot::NewTask: case Slot::ChildTask:
        if (c.free_tasks.empty()) return false;
        break;
      case Slot::Copy:
        if (c.copies.empty()) return false;
        break;
      case Slot::NewCopy:
        if (c.free_copies.empty()) return false;
        break;
      case Slot::Object:
        if (c.objects.empty()) return false;
        break;
      case Slot::NewObject:
        if (!c.objects_ok || c.free_objects.empty()) return false;
        break;
      default:
        break;
    }
  }
  return true;
}

/// Contents of a new object or device of `size` bytes: none (zero), a page-rounded fill,
/// a page-rounded pattern (objects only) or a pattern over half of it plus one byte.
DataSpec draw_contents(uint64_t size, bool device) {
  const int form = *gen::inRange(0, device ? 3 : 4);
  const uint8_t v = *gen::arbitrary<uint8_t>();
  const int half = device ? 2 : 3;
  if (form == 1) return DataSpec::fill(v, round_page(size));
  if (form == 2 && !device) return DataSpec::pat(v, round_page(size));
  if (form == half) return DataSpec::pat(v, size / 2 + 1);
  return DataSpec{};
}

/// Fill the fields `s` owns. `spec` is the op's row.
void draw_slot(const GenContext& c, const OpSpec& spec, Slot s, Op& op) {
  const unsigned pages = c.pages;
  const bool user_access = spec.has(Slot::TaskCpu);
  const bool places = spec.has(Slot::AddrOrAny);
  switch (s) {
    case Slot::Task: case Slot::EndTask: op.task = *pick(c.tasks); break;
    case Slot::TaskCpu: op.task = *pick(c.tasks), op.cpu = *c.cpu(); break;
    case Slot::NewTask: op.task = *pick(c.free_tasks); break;
    case Slot::ChildTask: op.task2 = *pick(c.free_tasks); break;
    case Slot::Copy: op.copy = *pick(c.copies); break;
    case Slot::NewCopy: op.copy = *pick(c.free_copies); break;
    case Slot::Object: op.object = *pick(c.objects); break;
    case Slot::NewObject: op.object = *pick(c.free_objects); break;
    case Slot::AddrOrAny:
      // allocate places more often at an address (its faults follow), map more often
      // anywhere (mapping objects twice side by side).
      op.anywhere = *gen::weightedElement<bool>({{spec.has(Slot::Object) ? 2u : 6u, false}, {1, true}});
      op.addr = *gen_aligned_addr(pages);
      if (op.anywhere) op.addr = 0;
      break;
    case Slot::Addr: op.addr = *gen_addr_for(c.hints[op.task], pages, /*aligned=*/!user_access); break;
    case Slot::SrcAddr: op.addr = *gen_addr_for(c.hints[op.task], pages, true); break;
    case Slot::DstAddr: op.addr2 = *gen_aligned_addr(pages); break;
    case Slot::Size:
      if (!places) op.size = *gen_size(pages);
      else if (spec.has(Slot::Object))  // a mapping: mostly a few pages of the object
        op.size = *gen::weightedOneOf<uint64_t>(
            {{9, gen::map(gen::inRange<uint64_t>(1, 5), [](uint64_t n) { return n * kPageSize; })},
             {1, gen_size(pages)}});
      else  // new memory: also ranges of 4 pages up to the whole window
        op.size = *gen::weightedOneOf<uint64_t>(
            {{6, gen_size(pages)},
             {4, gen::map(gen::inRange<uint64_t>(4, pages + 1), [](uint64_t n) { return n * kPageSize; })}});
      break;
    case Slot::Xfer: op.size = *gen_read_size(); break;
    case Slot::ObjSize:
    case Slot::DevSize:
      op.size = *gen::weightedOneOf<uint64_t>(
          {{9, gen::map(gen::inRange<uint64_t>(1, 9), [](uint64_t n) { return n * kPageSize; })},
           {1, gen::inRange<uint64_t>(1, s == Slot::DevSize ? kMaxDeviceSize + 1 : 5 * kPageSize)}});
      break;
    case Slot::Offset:
      if (places)  // the offset of a mapping: mostly a page boundary of a small object
        op.offset = *gen::weightedOneOf<uint64_t>(
            {{9, gen::map(gen::inRange<uint64_t>(0, 4), [](uint64_t n) { return n * kPageSize; })},
             {1, gen::inRange<uint64_t>(1, 3 * kPageSize)}});
      else
        op.offset = *gen::inRange<uint64_t>(0, 8 * kPageSize);
      break;
    case Slot::ProtMax:
      op.set_max = *gen::weightedElement<bool>({{4, false}, {1, true}});
      op.prot = *gen_prot();
      break;
    case Slot::Inheritance:
      op.inherit = *gen::weightedElement<vm_inherit_t>(
          {{4, vm_inherit_t::Copy}, {4, vm_inherit_t::Share}, {2, vm_inherit_t::None}});
      break;
    case Slot::Data:
      // A user store may cross two pages; a manager's write stays near one.
      op.data = *gen_data(user_access ? 2 * kPageSize + 1 : kPageSize + 16);
      break;
    case Slot::ObjFlags:
      op.strategy = *gen::element(CopyStrategy::Delay, CopyStrategy::None, CopyStrategy::Call);
      op.persist = *gen::arbitrary<bool>();
      op.data = draw_contents(op.size, /*device=*/false);
      break;
    case Slot::DevData: op.data = draw_contents(op.size, /*device=*/true); break;
    case Slot::MapMode:
      op.share = *gen::arbitrary<bool>();
      if (*gen::weightedElement<bool>({{4, false}, {1, true}})) {
        op.prot = *gen_prot();
        op.max_prot = *gen::weightedOneOf<vm_prot_t>({{3, gen::just(VM_PROT_ALL)}, {1, gen_prot()}});
        op.inherit = *gen::element(vm_inherit_t::Copy, vm_inherit_t::Share, vm_inherit_t::None);
      }
      break;
    case Slot::PageCount:
      if (*gen::weightedElement<bool>({{2, false}, {1, true}})) op.all = true;
      else op.size = *gen::inRange<uint64_t>(1, 33);
      break;
    case Slot::Choice:  // `~N`: always usable, whatever is runnable or pending then
      op.choice = *gen::inRange<uint16_t>(0, 4);
      op.choice_exact = false;
      break;
    case Slot::ReplyHow:
      op.how = *gen::weightedElement<ReplyHow>(
          {{6, ReplyHow::Supply}, {2, ReplyHow::Unavailable}, {2, ReplyHow::Error}});
      break;
    case Slot::LockHow:
      op.lock = static_cast<uint8_t>(*gen::inRange<unsigned>(1, 4));  // return, flush, both
      break;
  }
}

/// An op of kind `k` usable in the state, or nullopt when its names cannot be filled.
MaybeGen gen_kind(const GenContext& c, OpKind k) {
  const OpSpec& spec = op_spec(k);
  if (!names_available(c, spec)) return std::nullopt;
  return gen::exec([c, &spec] {
    Op op = make(spec.kind);
    for (Slot s : spec.slots()) draw_slot(c, spec, s, op);
    return op;
  });
}

/// A write into the bias's fence: the fenced task's window, which its other ops may not
/// touch (the copy-isolation properties change one side of a copy through it).
MaybeGen gen_fenced_write(const GenContext& c) {
  const Bias& b = c.bias;
  if (b.fence_task < 0 || b.fence_hi <= b.fence_lo) return std::nullopt;
  const uint8_t ft = uint8_t(b.fence_task);
  const uint64_t hi = b.fence_hi;
  return gen::apply(
      [ft, hi](uint64_t a, DataSpec d, uint8_t cpu) {
        Op op = make(OpKind::Write);
        op.task = ft, op.addr = a, op.data = std::move(d), op.cpu = cpu;
        if (op.data.size() > hi - a) op.data = DataSpec::fill(0x5f, hi - a);
        return op;
      },
      gen::inRange<uint64_t>(b.fence_lo, hi), gen_data(hi - b.fence_lo), c.cpu());
}

}  // namespace

rc::Gen<Op> gen_op(const OpState& s) {
  const GenContext c(s);
  std::vector<std::pair<std::size_t, rc::Gen<Op>>> choices;
  // Until some usable task probably has memory, most accesses would only fault: allocate.
  bool mapped = false;
  for (unsigned t = 0; t < kMaxNames; t++)
    mapped |= s.names.task_live(t) && !(s.bias->forbidden_tasks >> t & 1) && s.mapped_hint[t] != 0;
  for (unsigned k = 0; k < kOpKindCount; k++) {
    unsigned w = s.bias->weight[k];
    if (!mapped && OpKind(k) == OpKind::Allocate) w *= 5;
    if (w == 0) continue;
    OpKind kind = OpKind(k);
    MaybeGen g = gen_kind(c, kind);
    // Writes: three parts anywhere, two parts into the fence when the bias has one.
    if (kind == OpKind::Write)
      if (MaybeGen f = gen_fenced_write(c)) g = g ? weighted({{3, *g}, {2, *f}}) : *f;
    if (g) choices.push_back({w, *g});
  }
  if (choices.empty()) choices.push_back({1, gen::just(make(OpKind::Check))});
  return gen::map(weighted(std::move(choices)), [](Op op) { return canonical_op(op); });
}

OpCommand::OpCommand(Op op) : op_(canonical_op(op)) {}

void OpCommand::checkPreconditions(const OpState& s) const { RC_PRE(!s.unusable(op_)); }

void OpCommand::apply(OpState& s) const { s.apply(op_); }

void OpCommand::run(const OpState&, PropSystem& sys) const { sys.run(op_); }

void OpCommand::show(std::ostream& os) const { os << print_op(op_); }

rc::Gen<std::shared_ptr<const rc::state::Command<OpState, PropSystem>>> gen_command(const OpState& s) {
  return gen::map(gen_op(s), [](Op op) {
    return std::shared_ptr<const rc::state::Command<OpState, PropSystem>>(std::make_shared<const OpCommand>(op));
  });
}

SequenceCommand::SequenceCommand(std::vector<Op> ops) : ops_(std::move(ops)) {}

void SequenceCommand::checkPreconditions(const OpState& s) const {
  OpState t = s;
  for (const Op& op : ops_) {
    RC_PRE(!t.unusable(op));
    t.apply(op);
  }
}

void SequenceCommand::apply(OpState& s) const {
  for (const Op& op : ops_) s.apply(op);
}

void SequenceCommand::run(const OpState&, PropSystem& sys) const {
  for (const Op& op : ops_) sys.run(op);
}

void SequenceCommand::show(std::ostream& os) const {
  for (size_t i = 0; i < ops_.size(); i++) os << (i ? "\n" : "") << print_op(ops_[i]);
}

namespace {
/// `ops` with their names moved to usable slots in `s`, as the codec's decoder moves them
/// (each op encoded alone and decoded against the names so far); ops whose names cannot be
/// had, or that the bias forbids, are left out.
std::vector<Op> with_usable_names(const OpState& s, const std::vector<Op>& ops) {
  OpState t = s;
  std::vector<Op> out;
  for (const Op& op : ops) {
    Program one;
    one.config = s.config;
    one.has_config = true;
    one.ops = {op};
    std::vector<uint8_t> bytes = encode_program(one);
    Decoder dec(bytes);
    Op named;
    if (!dec.next(t.names, &named) || t.unusable(named)) continue;
    t.apply(named);
    out.push_back(named);
  }
  return out;
}
}  // namespace

rc::Gen<std::shared_ptr<const rc::state::Command<OpState, PropSystem>>> gen_shaped_command(const OpState& s) {
  using CommandPtr = std::shared_ptr<const rc::state::Command<OpState, PropSystem>>;
  rc::Gen<CommandPtr> sequence = gen::exec([s] {
    std::vector<Op> seq = shaped_sequence([](uint64_t n) { return *gen::inRange<uint64_t>(0, n); });
    return CommandPtr(std::make_shared<const SequenceCommand>(with_usable_names(s, seq)));
  });
  return gen::weightedOneOf<CommandPtr>({{4, gen_command(s)}, {1, sequence}});
}

std::vector<Op> ops_of(const OpCommands& cmds) {
  std::vector<Op> ops;
  for (const auto& c : cmds) {
    if (const auto* sc = dynamic_cast<const SequenceCommand*>(c.get())) {
      ops.insert(ops.end(), sc->ops().begin(), sc->ops().end());
      continue;
    }
    const auto* oc = dynamic_cast<const OpCommand*>(c.get());
    assert(oc && "ops_of: a command that is neither an OpCommand nor a SequenceCommand");
    ops.push_back(oc->op());
  }
  return ops;
}

// ---------------------------------------------------------------------------------------
// The system under test.

PropSystem::PropSystem(const SystemConfig& config, std::string property, const Decorator& wrap,
                       harness::ExecOptions options, const Decorator& wrap_model)
    : config_(config), property_(std::move(property)) {
  vm_ = harness::make_vm_subject(config);
  model_ = harness::make_model_subject(config);
  vm_side_ = vm_.system.get();
  model_side_ = model_.system.get();
  if (wrap) {
    wrapper_ = wrap(*vm_.system);
    vm_side_ = wrapper_.get();
  }
  if (wrap_model) {
    model_wrapper_ = wrap_model(*model_.system);
    model_side_ = model_wrapper_.get();
  }
  exec_ = std::make_unique<harness::Executor>(*vm_side_, *model_side_, config, options);
  exec_->set_observer(vm_.observer.get());
}

PropSystem::~PropSystem() = default;

vm::Kernel& PropSystem::kernel() {
  auto* k = dynamic_cast<vm::Kernel*>(vm_.system.get());
  assert(k && "PropSystem::kernel: the VM subject is not a vm::Kernel");
  return *k;
}

PropSystem::Outcome PropSystem::run(const Op& op) {
  // The executor follows the model's names, except where the VM was allowed to fail a
  // vm_read on undefined contents (a destroyed object): then the handle the generator
  // expected is not bound, and an op using it is skipped here (never unusable input).
  if (op.kind != OpKind::Check && exec_->names().check(op)) {
    note("skipped (handle not bound after a tolerated KERN_MEMORY_ERROR): " + print_op(op));
    return Outcome::Skipped;
  }
  harness::Executor::Step st = exec_->step(op);
  ops_.push_back(op);
  if (st == harness::Executor::Step::Failed) fail(harness::format_failure(*exec_->failure()));
  if (st == harness::Executor::Step::Unusable) fail("unusable input (a generator bug): " + exec_->unusable_reason());
  results_.push_back(harness::format_result(op, exec_->vm_result()));
  return Outcome::Ran;
}

void PropSystem::finish() {
  if (!exec_->finish()) fail(harness::format_failure(*exec_->failure()));
  if (const char* v = std::getenv("VMFUZZ_PROPS_VERBOSE"); v && *v && *v != '0') {
    // Every program that passed, with the VM's results as assertions: what the
    // generators produce, for people tuning them.
    std::string s = "# --- " + property_ + ": " + std::to_string(ops_.size()) + " ops\n" + format_config(config_) + "\n";
    for (size_t i = 0; i < ops_.size(); i++) s += print_op(ops_[i]) + "   # " + results_[i] + "\n";
    std::fputs(s.c_str(), stderr);
  }
}

void PropSystem::note(const std::string& text) { notes_.push_back({ops_.size(), text}); }

std::string PropSystem::trace(const std::vector<std::string>& extra) const {
  std::string path = counterexample_path(property_);
  std::string s = "# rapidcheck counterexample of property " + property_ + "\n";
  s += "# replay: ci/vmfuzz replay " + path + "   (or: vmfuzz-replay " + path + ")\n";
  s += format_config(config_) + "\n";
  size_t n = 0;
  for (size_t i = 0; i <= ops_.size(); i++) {
    for (; n < notes_.size() && notes_[n].first == i; n++) s += "# " + notes_[n].second + "\n";
    if (i < ops_.size()) s += print_op(ops_[i]) + "\n";
  }
  for (const auto& line : extra) s += line + "\n";
  return s;
}

void PropSystem::fail(const std::string& what, const std::vector<std::string>& extra) {
  std::string text = trace(extra);
  std::string path = write_counterexample(property_, text);
  std::string msg = what;
  if (!msg.empty() && msg.back() != '\n') msg += '\n';
  // The trace must mean exactly the ops that ran: parse it back and compare.
  Program back;
  ParseError err;
  if (!parse_trace(text, path, &back, &err)) {
    msg += "ERROR: the counterexample trace does not parse: " + err.what() + "\n";
  } else {
    size_t n = 0;
    for (const Op& op : back.ops)
      if (n < ops_.size() && !(op == ops_[n++]))
        msg += "ERROR: trace line '" + print_op(op) + "' does not mean op " + std::to_string(n - 1) + " exactly\n";
  }
  msg += "counterexample trace written to " + path + ":\n" + text;
  RC_FAIL(msg);
  std::abort();  // RC_FAIL throws; never reached
}

std::string counterexample_path(const std::string& property) {
  std::string name;
  for (char c : property) name += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') ? c : '_';
  const char* dir = std::getenv("VMFUZZ_PROPS_OUT");
  std::string d = (dir && *dir) ? dir : ".";
  return d + "/rc-counterexample-" + name + ".trace";
}

std::string write_counterexample(const std::string& property, const std::string& text) {
  std::string path = counterexample_path(property);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  if (!f) return path + " (ERROR: could not be written)";
  return path;
}

// ---------------------------------------------------------------------------------------
// Images.

TaskImage task_image(const MemorySystem& side, unsigned t, const MemorySystem* model) {
  TaskImage img;
  img.regions = side.regions(t);
  std::vector<uint64_t> pages;
  side.pages_of_interest(t, pages);
  for (auto& p : pages) p = trunc_page(p);
  std::ranges::sort(pages);
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  std::array<uint8_t, kPageSize> buf{};
  std::array<uint8_t, kPageSize> mbuf{};
  for (uint64_t va : pages) {
    if (model && model->peek_page(t, va, mbuf) == PeekStatus::Unknown) continue;
    PeekStatus st = side.peek_page(t, va, buf);
    if (st == PeekStatus::Unknown) img.unknown.push_back(va);
    if (st != PeekStatus::Mapped) continue;
    if (std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0; })) continue;
    img.pages.push_back({va, std::vector<uint8_t>(buf.begin(), buf.end())});
  }
  return img;
}

std::vector<uint8_t> range_image(const MemorySystem& side, unsigned t, uint64_t lo, uint64_t hi) {
  std::vector<uint8_t> out;
  std::array<uint8_t, kPageSize> buf{};
  for (uint64_t va = trunc_page(lo); va < hi; va += kPageSize) {
    if (side.peek_page(t, va, buf) != PeekStatus::Mapped) buf.fill(0xee);
    uint64_t from = std::max(va, lo), to = std::min(va + kPageSize, hi);
    out.insert(out.end(), buf.begin() + (from - va), buf.begin() + (to - va));
  }
  return out;
}

std::vector<std::pair<uint64_t, std::vector<uint8_t>>> object_image(const MemorySystem& side, unsigned m,
                                                                      const MemorySystem* model) {
  std::vector<uint64_t> offs;
  side.object_pages_of_interest(m, offs);
  std::ranges::sort(offs);
  offs.erase(std::unique(offs.begin(), offs.end()), offs.end());
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> out;
  std::array<uint8_t, kPageSize> buf{};
  std::array<uint8_t, kPageSize> mbuf{};
  for (uint64_t off : offs) {
    if (model && model->peek_object_page(m, trunc_page(off), mbuf) == PeekStatus::Unknown) continue;
    PeekStatus st = side.peek_object_page(m, trunc_page(off), buf);
    if (st == PeekStatus::Unknown) out.push_back({off, {}});
    if (st != PeekStatus::Mapped) continue;
    if (std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0; })) continue;
    out.push_back({off, std::vector<uint8_t>(buf.begin(), buf.end())});
  }
  return out;
}

std::string counters_text(const vm::Kernel& k) {
  const vm::VmCounters& c = k.counters();
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "faults=%llu zero_fills=%llu copy_ups=%llu pushes=%llu collapses=%llu bypasses=%llu "
                "collapse_pages_moved=%llu copy_object_reuses=%llu copies_delayed=%llu copies_symmetric=%llu "
                "shadows=%llu coalesces=%llu entry_merges=%llu objects_created=%llu objects_terminated=%llu "
                "pages_grabbed=%llu pages_freed=%llu overwrite_fast=%llu overwrite_slow_pages=%llu",
                (unsigned long long)c.faults, (unsigned long long)c.zero_fills, (unsigned long long)c.copy_ups,
                (unsigned long long)c.pushes, (unsigned long long)c.collapses, (unsigned long long)c.bypasses,
                (unsigned long long)c.collapse_pages_moved, (unsigned long long)c.copy_object_reuses,
                (unsigned long long)c.copies_delayed, (unsigned long long)c.copies_symmetric,
                (unsigned long long)c.shadows, (unsigned long long)c.coalesces, (unsigned long long)c.entry_merges,
                (unsigned long long)c.objects_created, (unsigned long long)c.objects_terminated,
                (unsigned long long)c.pages_grabbed, (unsigned long long)c.pages_freed,
                (unsigned long long)c.overwrite_fast, (unsigned long long)c.overwrite_slow_pages);
  std::string s = buf;
  const auto& m = k.machine().stats();
  std::snprintf(buf, sizeof buf, " tlb_hits=%llu tlb_misses=%llu walks=%llu mmu_faults=%llu dirty_rewalks=%llu",
                (unsigned long long)m.tlb_hits, (unsigned long long)m.tlb_misses, (unsigned long long)m.walks,
                (unsigned long long)m.faults, (unsigned long long)m.dirty_rewalks);
  s += buf;
  const auto& p = k.domain().stats();
  std::snprintf(buf, sizeof buf, " shootdowns=%llu pt_frames=%llu collects=%llu free_frames=%u",
                (unsigned long long)p.shootdowns, (unsigned long long)p.pt_frames, (unsigned long long)p.collects,
                k.machine().memory().free_count());
  s += buf;
  return s;
}

PropSystem::Outcome run_fixed(PropSystem& sys, OpState& s, const Op& raw) {
  Op op = canonical_op(raw);
  if (auto bad = executor_problem(s, op)) RC_FAIL("fixed step '" + print_op(op) + "' is not usable: " + *bad);
  PropSystem::Outcome st = sys.run(op);
  s.apply(op);
  return st;
}

void run_commands(PropSystem& sys, OpState& s, const OpCommands& cmds) {
  for (const auto& c : cmds) {
    c->run(s, sys);
    c->apply(s);
  }
}

// ---------------------------------------------------------------------------------------
// rapidcheck glue.

std::string current_property() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (!info) return "unnamed";
  return std::string(info->test_case_name()) + "." + info->name();
}

#if defined(__SANITIZE_ADDRESS__)
#define VMFUZZ_PROPS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VMFUZZ_PROPS_SANITIZED 1
#endif
#endif

rc::detail::TestParams prop_params(int default_max_success, const std::string& id) {
  rc::detail::TestParams p = rc::detail::configuration().testParams;
  const char* env = std::getenv("RC_PARAMS");
  if (!env || !std::strstr(env, "seed")) {
    // Deterministic by default (docs/ARCHITECTURE.md §Design goals): the seed is a hash of the property's id,
    // so every run of the suite tries the same cases. RC_PARAMS="seed=N" explores others.
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
    for (unsigned char c : id) h = (h ^ c) * 0x100000001b3ull;
    p.seed = h;
  }
  if (!env || !std::strstr(env, "max_success")) {
    p.maxSuccess = default_max_success;
#ifdef VMFUZZ_PROPS_SANITIZED
    // ASan/UBSan make a case 10-20 times slower: the default run stays short there.
    p.maxSuccess = std::max(10, default_max_success / kSanitizedCaseDivisor);
#endif
  }
  return p;
}

rc::detail::TestListener& global_listener() { return rc::detail::globalTestListener(); }

}  // namespace vmfuzz::props
