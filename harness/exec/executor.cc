// executor.cc — the differential executor (theory of operation in executor.h).
//
// Layout: running one op on one side (execute_op), the per-op oracles (assertions, result
// comparison, TLB coherence, fault loop), the full check (regions, task pages, object
// stores, invariants), teardown, and run_program. Every oracle that fires calls fail(),
// which records the first failure with the context of the op being judged.
#include "harness/exec/executor.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <utility>

#include "harness/lang/codec.h"
#include "harness/lang/op_table.h"
#include "harness/lang/text.h"
#include "reference_model/model.h"

namespace vmfuzz::harness {

namespace {

// Bytes whose value is undefined on either side: the union of the two unknown masks.
std::vector<uint8_t> unknown_union(const Access& a, const Access& b, size_t n) {
  std::vector<uint8_t> u(n, 0);
  bool any = false;
  for (size_t i = 0; i < n; i++) {
    if ((i < a.unknown.size() && a.unknown[i]) || (i < b.unknown.size() && b.unknown[i])) {
      u[i] = 1;
      any = true;
    }
  }
  if (!any) u.clear();
  return u;
}

// "KERN_SUCCESS", "fault 0x11000 KERN_INVALID_ADDRESS after 12 bytes", "KERN_SUCCESS at 0x10000".
std::string describe(const OpResult& r) {
  std::string s;
  if (r.mmu && r.kr != KERN_SUCCESS) {
    s = "fault " + hex_addr(r.access.fault_addr) + " " + kern_return_name(r.kr);
  } else {
    s = kern_return_name(r.kr);
  }
  if (r.is_access) s += " (" + std::to_string(r.access.bytes.size()) + " bytes transferred)";
  if (r.has_addr && r.kr == KERN_SUCCESS) s += " at " + hex_addr(r.addr);
  return s;
}

std::string describe_region(const RegionInfo& r) {
  const char* inh = r.inherit == vm_inherit_t::Share ? "share" : r.inherit == vm_inherit_t::Copy ? "copy" : "none";
  return hex_addr(r.start) + "-" + hex_addr(r.end) + " " + format_prot(r.prot) + " max " +
         format_prot(r.max_prot) + " " + inh;
}

std::string describe_regions(const std::vector<RegionInfo>& rs) {
  if (rs.empty()) return "  (none)\n";
  std::string s;
  for (const auto& r : rs) s += "  " + describe_region(r) + "\n";
  return s;
}

// Printable data for format_result: the canonical DataSpec that reproduces `b` compactly,
// or nothing when it would be long and irregular.
std::optional<DataSpec> compact_data(const std::vector<uint8_t>& b) {
  DataSpec d;
  if (!b.empty()) {
    bool same = std::all_of(b.begin(), b.end(), [&](uint8_t x) { return x == b[0]; });
    if (same && b.size() > 16) {
      d.form = DataSpec::Form::Fill;
      d.value = b[0];
      d.length = b.size();
      return d;
    }
    DataSpec p;
    p.form = DataSpec::Form::Pat;
    p.value = b[0];
    p.length = b.size();
    if (b.size() > 16 && p.materialize() == b) return p;
  }
  if (b.size() <= 256) {
    d.form = DataSpec::Form::Hex;
    d.bytes = b;
    return d;
  }
  return std::nullopt;
}

}  // namespace

std::string format_result(const Op& op, const OpResult& r) {
  if (op_returns_nothing(op.kind)) return {};
  if (r.access.thread != 0 && (op.kind == OpKind::VmCopy || op.kind == OpKind::VmWrite))
    return "# in flight as thread " + std::to_string(r.access.thread) + " (kernel op: waits before it changes anything)";
  if (r.access.thread != 0)
    return "# in flight as thread " + std::to_string(r.access.thread) + " (moved " +
           std::to_string(r.access.bytes.size()) + " bytes, waits at " + hex_addr(r.access.fault_addr) + ")";
  std::string s;
  if (op.kind == OpKind::Read || op.kind == OpKind::File) {
    bool has_unknown = std::any_of(r.access.unknown.begin(), r.access.unknown.end(), [](uint8_t u) { return u != 0; });
    std::string data;
    if (!r.access.bytes.empty()) {
      auto spec = has_unknown ? std::nullopt : compact_data(r.access.bytes);
      if (spec) {
        data = "== " + format_data(*spec);
      } else {
        size_t n = r.access.bytes.size();
        char buf[64];
        std::snprintf(buf, sizeof buf, "# %zu bytes%s, first: ", n, has_unknown ? " (some unknown)" : "");
        data = buf;
        for (size_t i = 0; i < std::min<size_t>(n, 16); i++) {
          std::snprintf(buf, sizeof buf, "%02x", r.access.bytes[i]);
          data += buf;
        }
      }
    }
    std::string res;
    if (r.kr != KERN_SUCCESS) {
      if (op.kind == OpKind::Read) res = "=> fault " + hex_addr(r.access.fault_addr) + " " + kern_return_name(r.kr);
      else res = "=> " + kern_return_name(r.kr);
    }
    // A comment must come last on the line.
    if (!data.empty() && data[0] == '#') return res.empty() ? data : res + "  " + data;
    if (data.empty()) return res.empty() ? "=> KERN_SUCCESS" : res;
    return res.empty() ? data : data + " " + res;
  }
  if (op.kind == OpKind::Write) {
    if (r.kr == KERN_SUCCESS) return "=> KERN_SUCCESS";
    return "=> fault " + hex_addr(r.access.fault_addr) + " " + kern_return_name(r.kr);
  }
  if (r.has_addr && r.kr == KERN_SUCCESS) return "=> " + hex_addr(r.addr);
  s = "=> " + kern_return_name(r.kr);
  return s;
}

Executor::Executor(MemorySystem& vm, MemorySystem& model, const SystemConfig& config, ExecOptions options)
    : vm_(vm), model_(model), config_(config), options_(options), names_(config) {
  // t0 exists at the start (docs/language.md §Names); neither side creates it on its own.
  vm_.task_create(0);
  model_.task_create(0);
}

OpResult execute_op(MemorySystem& s, const Op& op, const std::vector<uint8_t>& data) {
  return run_op(s, op, data);
}

void Executor::set_context(uint64_t index, const Op* op, const char* text, const char* kind) {
  ctx_index_ = index;
  ctx_line_ = line_;
  ctx_op_ptr_ = op;
  ctx_text_ = text;
  ctx_kind_ = kind;
}

void Executor::fail(Oracle oracle, std::string sub, std::string detail, std::string diff, FailureSite site) {
  if (failure_) return;  // the first oracle that fired is the failure
  Failure f;
  f.op_index = ctx_index_;
  f.line = ctx_line_;
  // The op is printed here, not in step(): text is only needed for a report.
  f.op = ctx_op_ptr_ != nullptr ? print_op(*ctx_op_ptr_) : std::string(ctx_text_);
  f.op_kind = ctx_op_ptr_ != nullptr ? op_kind_name(ctx_op_ptr_->kind) : ctx_kind_;
  f.oracle = oracle;
  f.sub = std::move(sub);
  f.detail = std::move(detail);
  f.diff = std::move(diff);
  f.site = site;
  if (observer_ && oracle != Oracle::deadlock) {
    std::string threads = observer_->threads();  // docs/concurrency.md: every thread's wait
    if (!threads.empty()) f.detail += "\nthreads and requests in flight:\n" + threads;
  }
  if (observer_) {
    if (site.kind == FailureSite::Kind::TaskPage) f.provenance = observer_->provenance(site.task, site.addr);
    if (site.kind == FailureSite::Kind::ObjectPage) f.provenance = observer_->object_provenance(site.object, site.addr);
  }
  failure_ = std::move(f);
}

// ---------------------------------------------------------------------------------------
// Per-op oracles.

bool Executor::check_assertion(const Op& op, const OpResult& r, const char* side) {
  const Expect& e = op.expect;
  std::string want;
  bool ok = true;
  switch (e.result) {
    case Expect::Result::None:
      // `read ... == DATA` without `=>` asserts that the access completed (docs/language.md §Details 9).
      if (e.has_bytes && r.kr != KERN_SUCCESS) {
        ok = false;
        want = "KERN_SUCCESS";
      }
      break;
    case Expect::Result::Code:
      if (r.kr != e.code) {
        ok = false;
        want = kern_return_name(e.code);
      }
      break;
    case Expect::Result::Fault:
      if (!r.is_access || r.kr != e.code || r.access.fault_addr != e.addr) {
        ok = false;
        want = "fault " + hex_addr(e.addr) + " " + kern_return_name(e.code);
      }
      break;
    case Expect::Result::Address:
      if (r.kr != KERN_SUCCESS || !r.has_addr || r.addr != e.addr) {
        ok = false;
        want = "KERN_SUCCESS at " + hex_addr(e.addr);
      }
      break;
  }
  if (!ok) {
    fail(Oracle::assertion, side, std::string("asserted: ") + want + "\n" + side + ": " + describe(r));
    return false;
  }
  if (e.has_bytes && r.is_access) {
    std::vector<uint8_t> expected = e.bytes.materialize();
    const Access& a = r.access;
    // The model's unknown mask rules both sides: an undefined byte asserts nothing.
    std::vector<uint8_t> unknown = unknown_union(a, model_result_.access, expected.size());
    if (first_difference(expected, a.bytes, unknown) != SIZE_MAX) {
      uint64_t base = op.kind == OpKind::File ? op.offset : op.addr;
      std::string detail = std::string("asserted bytes (") + std::to_string(expected.size()) + ") differ from " +
                           side + "'s (" + std::to_string(a.bytes.size()) + ")";
      FailureSite site;
      size_t i = first_difference(expected, a.bytes, unknown);
      if (op.kind == OpKind::Read) site = {FailureSite::Kind::TaskPage, op.task, 0, op.addr + i};
      if (op.kind == OpKind::File) site = {FailureSite::Kind::ObjectPage, 0, op.object, op.offset + i};
      if (std::string(side) != "vm") site = {};
      fail(Oracle::assertion, side, detail, hex_diff(base, expected, a.bytes, unknown, "asserted", side), site);
      return false;
    }
  }
  return true;
}

// Undefined contents (docs/language.md §Details 13, §Decisions D5): a vm_read or vm_copy whose source
// passes copyin's checks (mapped, readable) and touches an unknown page may fail with
// KERN_MEMORY_ERROR on the VM, before vm_copy's overwrite half would have judged the
// destination. (Accesses are handled by run_model_access.)
bool Executor::memory_error_tolerated(const Op& op) const {
  const OpResult& v = vm_result_;
  const OpResult& m = model_result_;
  if (v.kr != KERN_MEMORY_ERROR || m.kr == KERN_MEMORY_ERROR) return false;
  if (op.kind != OpKind::VmRead && op.kind != OpKind::VmCopy) return false;
  if (op.size == 0 || op.size > UINT64_MAX - op.addr || op.addr + op.size > kUserMax) return false;
  uint64_t start = trunc_page(op.addr), end = round_page(op.addr + op.size);
  // copyin's checks on the model's map: [start, end) covered, in order, by readable regions.
  uint64_t covered = start;
  for (const RegionInfo& r : model_.regions(op.task)) {
    if (r.end <= covered || r.start > covered) continue;
    if (!(r.prot & VM_PROT_READ)) return false;
    covered = r.end;
    if (covered >= end) break;
  }
  if (covered < end) return false;
  // Interest lists omit unknown pages, so look at the source itself: every page of it up
  // to a bound, and beyond the bound the first page of each region it covers (a
  // destroyed object's mapping is unknown throughout).
  std::array<uint8_t, kPageSize> buf{};
  constexpr uint64_t kPageBound = 4096;
  uint64_t n = 0;
  for (uint64_t va = start; va < end && n < kPageBound; va += kPageSize, n++)
    if (model_.peek_page(op.task, va, buf) == PeekStatus::Unknown) return true;
  for (const RegionInfo& r : model_.regions(op.task)) {
    if (r.end <= start || r.start >= end) continue;
    if (model_.peek_page(op.task, std::max(r.start, start), buf) == PeekStatus::Unknown) return true;
  }
  return false;
}

// A user access on the model, given that the VM already ran it. Normally the whole access.
// When the VM stopped with KERN_MEMORY_ERROR at F (docs/language.md §Details 13: an unknown byte may fault),
// the model runs [addr, F] first: if it reaches F and F is unknown, the model's access
// stops there too, with the same code, so both sides have stored the same bytes and stay
// comparable; otherwise the model's result is what the whole access gives (its head
// faulted, or it continues with [F+1, end)), and the sides are compared as usual.
OpResult Executor::run_model_access(const Op& op, const std::vector<uint8_t>& data) {
  const Access& va = vm_result_.access;
  uint64_t size = op.kind == OpKind::Write ? data.size() : op.size;
  if (vm_result_.kr != KERN_MEMORY_ERROR || va.fault_addr < op.addr || va.fault_addr - op.addr >= size)
    return execute_op(model_, op, data);
  uint64_t cut = va.fault_addr - op.addr + 1;  // bytes up to and including F
  Op head = op, tail = op;
  head.size = cut;
  tail.addr = op.addr + cut;
  tail.size = size - cut;
  std::vector<uint8_t> head_data, tail_data;
  if (op.kind == OpKind::Write) {
    head_data.assign(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(cut));
    tail_data.assign(data.begin() + static_cast<std::ptrdiff_t>(cut), data.end());
  }
  OpResult r = execute_op(model_, head, head_data);
  if (r.kr != KERN_SUCCESS) return r;
  Access& a = r.access;
  if (a.unknown.size() == cut && a.unknown[cut - 1]) {
    r.kr = a.kr = KERN_MEMORY_ERROR;
    a.fault_addr = va.fault_addr;
    a.bytes.resize(cut - 1);
    a.unknown.resize(cut - 1);
    if (std::none_of(a.unknown.begin(), a.unknown.end(), [](uint8_t u) { return u != 0; })) a.unknown.clear();
    return r;
  }
  if (tail.size == 0) return r;
  OpResult t = execute_op(model_, tail, tail_data);
  if (!a.unknown.empty() || !t.access.unknown.empty()) {
    a.unknown.resize(a.bytes.size(), 0);
    std::vector<uint8_t> tu = t.access.unknown;
    tu.resize(t.access.bytes.size(), 0);
    a.unknown.insert(a.unknown.end(), tu.begin(), tu.end());
  }
  a.bytes.insert(a.bytes.end(), t.access.bytes.begin(), t.access.bytes.end());
  r.kr = a.kr = t.kr;
  a.fault_addr = t.access.fault_addr;
  return r;
}

bool Executor::compare_results(const Op& op) {
  const OpResult& v = vm_result_;
  const OpResult& m = model_result_;
  // Both results as text: only for a report (built when an oracle fires, not per op).
  auto both_text = [&] { return "vm:    " + describe(v) + "\nmodel: " + describe(m); };
  if (v.kr != m.kr && memory_error_tolerated(op)) return true;
  if (v.kr != m.kr) {
    std::string both = both_text();
    std::string diff;
    if (op.kind == OpKind::Read || op.kind == OpKind::File) {
      uint64_t base = op.kind == OpKind::File ? op.offset : op.addr;
      diff = hex_diff(base, m.access.bytes, v.access.bytes, m.access.unknown, "model", "vm");
    }
    fail(Oracle::result_mismatch, "vm " + kern_return_name(v.kr) + ", model " + kern_return_name(m.kr), both, diff);
    return false;
  }
  if (v.mmu && v.kr != KERN_SUCCESS && v.access.fault_addr != m.access.fault_addr) {
    fail(Oracle::result_mismatch, "fault_address", both_text());
    return false;
  }
  if (v.has_addr && v.kr == KERN_SUCCESS && v.addr != m.addr) {
    fail(Oracle::result_mismatch, "address", both_text());
    return false;
  }
  if (op.kind == OpKind::Read || op.kind == OpKind::File) {
    const auto& vb = v.access.bytes;
    const auto& mb = m.access.bytes;
    const std::vector<uint8_t>& unknown = m.access.unknown;
    size_t i = first_difference(mb, vb, unknown);
    if (i != SIZE_MAX) {
      uint64_t base = op.kind == OpKind::File ? op.offset : op.addr;
      FailureSite site;
      if (op.kind == OpKind::Read) site = {FailureSite::Kind::TaskPage, op.task, 0, op.addr + i};
      else site = {FailureSite::Kind::ObjectPage, 0, op.object, op.offset + i};
      fail(Oracle::result_mismatch, vb.size() != mb.size() ? "length" : "bytes",
           both_text() + "\nfirst differing byte at " + hex_addr(base + i), hex_diff(base, mb, vb, unknown, "model", "vm"),
           site);
      return false;
    }
  }
  return true;
}

bool Executor::run_vm_findings(void (VmObserver::*checker)(std::vector<Violation>&) const) {
  if (!observer_) return true;
  std::vector<Violation> found;
  (observer_->*checker)(found);
  if (found.empty()) return true;
  std::string detail;
  size_t shown = std::min<size_t>(found.size(), 8);
  for (size_t i = 0; i < shown; i++) detail += found[i].text() + "\n";
  if (found.size() > shown) detail += "(" + std::to_string(found.size() - shown) + " more violations)\n";
  fail(found[0].oracle, "", detail);
  return false;
}

bool Executor::after_op_oracles() {
  if (!observer_) return true;
  if (!run_vm_findings(&VmObserver::check_tlb_coherence)) return false;
  return step_invariants();
}

bool Executor::step_invariants() {
  return !observer_ || run_vm_findings(&VmObserver::check_step_invariants);
}

// ---------------------------------------------------------------------------------------
// Concurrency: threads in flight and the schedule (docs/concurrency.md).

namespace {
// The part [from, from + len) of an access op: the same op over a sub-range.
Op sub_access(const Op& op, uint64_t from, uint64_t len, const std::vector<uint8_t>& data,
              std::vector<uint8_t>* sub_data) {
  Op s = op;
  s.expect = Expect{};
  uint64_t rel = from - op.addr;
  s.addr = from;
  if (op.kind == OpKind::Write)
    sub_data->assign(data.begin() + static_cast<std::ptrdiff_t>(rel),
                     data.begin() + static_cast<std::ptrdiff_t>(rel + len));
  else
    s.size = len;
  return s;
}

void append_access(OpResult& total, const OpResult& part) {
  Access& a = total.access;
  const Access& b = part.access;
  if (!a.unknown.empty() || !b.unknown.empty()) {
    a.unknown.resize(a.bytes.size(), 0);
    std::vector<uint8_t> bu = b.unknown;
    bu.resize(b.bytes.size(), 0);
    a.unknown.insert(a.unknown.end(), bu.begin(), bu.end());
  }
  a.bytes.insert(a.bytes.end(), b.bytes.begin(), b.bytes.end());
  a.kr = b.kr;
  a.fault_addr = b.fault_addr;
  total.kr = part.kr;
}
}  // namespace

bool Executor::apply_thread_step(const ThreadStep& st) {
  auto it = in_flight_.find(st.thread);
  std::string who = "thread " + std::to_string(st.thread);
  if (it == in_flight_.end()) {
    fail(Oracle::linearization, who, "the VM ran thread " + std::to_string(st.thread) +
                                         ", which is no access in flight (never started, completed or aborted)");
    return false;
  }
  InFlight& f = it->second;
  if (f.kernel_op) return apply_kernel_op_step(st);
  notes_.push_back("thread " + std::to_string(st.thread) + " (" + print_op(f.op) + "): " +
                   (st.blocked ? "moved " + std::to_string(st.access.bytes.size()) + " bytes, waits at " +
                                     hex_addr(st.access.fault_addr)
                               : "completed, " + describe(OpResult{st.access.kr, false, 0, true, true, st.access})));
  const uint64_t size = f.op.kind == OpKind::Write ? f.data.size() : f.op.size;
  const uint64_t from = f.op.addr + f.vm.access.bytes.size();
  const uint64_t left = size - f.vm.access.bytes.size();
  OpResult v;
  v.is_access = v.mmu = true;
  v.access = st.access;
  v.kr = st.access.kr;
  if (!fault_loop_oracle(v)) return false;
  if (st.blocked && (st.access.fault_addr < from || st.access.fault_addr - from > left)) {
    fail(Oracle::linearization, who, "blocked at " + hex_addr(st.access.fault_addr) + ", outside what is left of " +
                                         print_op(f.op) + " (from " + hex_addr(from) + ")");
    return false;
  }
  const uint64_t len = st.blocked ? st.access.fault_addr - from : left;
  std::vector<uint8_t> sub_data;
  Op part = sub_access(f.op, from, len, f.data, &sub_data);
  OpResult m;
  m.is_access = m.mmu = true;
  if (f.error_pending) {
    // memory_object_data_error: the fault that asked fails where it waited (vm_fault's
    // KERN_MEMORY_ERROR), whatever the map says now; nothing more moves.
    m.kr = m.access.kr = KERN_MEMORY_ERROR;
    m.access.fault_addr = from;
  } else if (len != 0) {
    vm_result_ = v;  // run_model_access follows the VM's stop at an unknown byte
    m = run_model_access(part, sub_data);
  }
  vm_result_ = v;
  model_result_ = m;
  if (options_.unchecked_runs_for_test) {
    append_access(f.vm, v);
    append_access(f.model, m);
    if (st.blocked) return true;
    orders_access_end(f, true);
    in_flight_.erase(it);
    return true;
  }
  if (st.blocked && m.kr != KERN_SUCCESS) {
    // The VM moved [from, fault_addr) and waits: the model must move exactly that.
    fail(Oracle::linearization, who, print_op(f.op) + ": the VM moved " + hex_addr(from) + ".." +
                                         hex_addr(st.access.fault_addr) + " and waits; the model: " + describe(m));
    return false;
  }
  if (!compare_results(part)) return false;
  append_access(f.vm, v);
  append_access(f.model, m);
  if (st.blocked) return true;
  // Completed: the op's own assertions, on the whole access.
  orders_access_end(f, true);
  OpResult fv = f.vm, fm = f.model;
  Op op = f.op;
  const unsigned f_line = f.line;
  in_flight_.erase(it);
  model_result_ = fm;
  vm_result_ = fv;
  // A failed assertion names the access it was written on (line and all), not the op
  // whose step completed it.
  return in_op_context(op, f_line, [&] { return check_assertion(op, fm, "model") && check_assertion(op, fv, "vm"); });
}

bool Executor::apply_kernel_op_step(const ThreadStep& st) {
  auto it = in_flight_.find(st.thread);
  InFlight& f = it->second;
  notes_.push_back("thread " + std::to_string(st.thread) + " (" + print_op(f.op) + "): " +
                   (st.blocked ? std::string("waits again (changed nothing)")
                               : "completed, " + std::string(kern_return_name(st.access.kr))));
  if (st.blocked) {
    if (st.access.kr != KERN_SUCCESS || !st.access.bytes.empty()) {
      fail(Oracle::linearization, "thread " + std::to_string(st.thread),
           print_op(f.op) + " waits again but reports a result");
      return false;
    }
    return true;
  }
  // Completed: the op took effect whole in this run; so does the model's, here.
  OpResult v;
  v.kr = st.access.kr;
  Op op = f.op;
  std::vector<uint8_t> data = std::move(f.data);
  const unsigned f_line = f.line;
  if (block_ && f.access >= 0) {
    OrderUnit u;
    u.op = op;
    u.op.expect = Expect{};
    u.data = data;
    u.vm = v;
    u.access = f.access;
    u.lo = f.lo;
    u.hi = static_cast<unsigned>(block_->fixed.size());
    u.handle = f.handle;
    if (v.kr == KERN_MEMORY_ERROR && block_->unjudged.empty())
      block_->unjudged = print_op(op) + " failed with KERN_MEMORY_ERROR on the VM";
    block_->pages.push_back(std::move(u));
  }
  std::shared_ptr<const model::CopyHandle> handle = std::move(f.handle);
  in_flight_.erase(it);
  if (op.kind == OpKind::VmWrite) {  // its handle was taken at its start
    model_result_ = OpResult{};
    model_result_.kr = dynamic_cast<model::Model&>(model_).vm_write_overwrite(op.task, op.addr, *handle);
  } else {
    model_result_ = execute_op(model_, op, data);
  }
  vm_result_ = v;
  return in_op_context(op, f_line, [&] {
    bool ok = check_assertion(op, model_result_, "model") && check_assertion(op, vm_result_, "vm") &&
              compare_results(op);
    if (ok && op.kind != OpKind::VmWrite) names_.apply(op, model_result_.kr);
    return ok;
  });
}

Executor::Step Executor::start_kernel_op(const Op& op, std::vector<uint8_t> data, uint32_t th) {
  ops_run_++;
  if (in_flight_.count(th) || vm_result_.kr != KERN_SUCCESS) {
    fail(Oracle::linearization, "thread " + std::to_string(th),
         print_op(op) + " went in flight as a thread already in flight, or with a result");
    return Step::Failed;
  }
  InFlight f = open_in_flight(op, std::move(data));
  f.kernel_op = true;
  if (op.kind == OpKind::VmWrite) {
    // The message takes the handle at once, whatever the result (docs/language.md): the
    // name is free from now on, on both sides; the overwrite takes effect where the thread
    // completes. The order search cannot split an op in two: the block is not judged.
    auto* m = dynamic_cast<model::Model*>(&model_);
    assert(m != nullptr && "start_kernel_op: a vm_write in flight needs the reference model");
    f.handle = m->vm_write_take(op.copy);
    names_.apply(op, KERN_SUCCESS);
    if (block_) {  // the take is a fixed op: the overwrite's window opens after it
      OrderUnit take;
      take.op = op;
      take.op.expect = Expect{};
      take.take_handle = true;
      block_->fixed.push_back(std::move(take));
      f.lo = static_cast<unsigned>(block_->fixed.size());
    }
  }
  in_flight_.emplace(th, std::move(f));
  vm_result_.access.thread = th;  // the listing says so
  if (!after_op_oracles()) return Step::Failed;
  return Step::Ran;
}

bool Executor::apply_thread_steps() {
  for (const ThreadStep& st : vm_.take_steps()) {
    if (!apply_thread_step(st) || !after_op_oracles() || !orders_close_if_quiet()) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// The all-orders check (orders.h): recording a block, and judging it once it is over.

Executor::InFlight Executor::open_in_flight(const Op& op, std::vector<uint8_t> data) {
  orders_open();
  InFlight f;
  if (block_) {
    f.access = block_->accesses++;
    f.lo = static_cast<unsigned>(block_->fixed.size());
  }
  f.op = op;
  f.line = line_;
  f.data = std::move(data);
  return f;
}

void Executor::orders_open() {
  if (!options_.check_orders || block_ || !in_flight_.empty()) return;
  const auto* m = dynamic_cast<const model::Model*>(&model_);
  if (!m) return;
  block_ = std::make_unique<OrdersBlock>();
  block_->start = std::make_unique<model::Model>(m->clone());
}

void Executor::orders_fixed(const Op& op, const std::vector<uint8_t>& data, const OpResult& vm) {
  if (!block_) return;
  OrderUnit u;
  u.op = op;
  u.op.expect = Expect{};
  u.data = data;
  u.vm = vm;
  // The executor lets the VM fail these with KERN_MEMORY_ERROR on unknown contents and
  // mirrors it on its model; a plain model step cannot say that.
  if (vm.kr == KERN_MEMORY_ERROR && block_->unjudged.empty())
    block_->unjudged = print_op(op) + " failed with KERN_MEMORY_ERROR on the VM";
  block_->fixed.push_back(std::move(u));
}

void Executor::orders_access_end(const InFlight& f, bool completed) {
  if (!block_ || f.access < 0) return;
  if (f.kernel_op) return;  // aborted before it took effect: nothing to place
  for (OrderUnit& u : page_ops(f.op, f.data, f.vm, completed, f.error_pending)) {
    u.access = f.access;
    u.lo = f.lo;
    // Completed: it may run after every fixed op so far; aborted by a terminate (the last
    // fixed op): before it.
    u.hi = static_cast<unsigned>(block_->fixed.size()) - (completed ? 0u : 1u);
    if (u.vm.kr == KERN_MEMORY_ERROR && !u.stated && block_->unjudged.empty())
      block_->unjudged = print_op(f.op) + " stopped with KERN_MEMORY_ERROR on unknown contents";
    block_->pages.push_back(std::move(u));
  }
}

bool Executor::orders_close_if_quiet() {
  if (!block_ || !in_flight_.empty()) return true;
  std::unique_ptr<OrdersBlock> b = std::move(block_);
  if (!b->unjudged.empty()) {
    orders_stats_.skipped++;
    return true;
  }
  OrdersVerdict v = check_orders(*b->start, b->fixed, b->pages);
  orders_stats_.nodes += v.nodes;
  if (!v.judged) {
    orders_stats_.skipped++;
    return true;
  }
  orders_stats_.judged++;
  orders_stats_.max_page_ops = std::max<uint64_t>(orders_stats_.max_page_ops, b->pages.size());
  if (v.ok) return true;
  fail(Oracle::orders, "", v.detail);
  return false;
}

bool Executor::perform(const SchedAction& a) {
  chosen_ops_.push_back(std::make_unique<Op>(a.op()));
  const Op& op = *chosen_ops_.back();
  chosen_.push_back(op);
  const unsigned saved_line = line_;
  line_ = 0;  // an op of no source line: the schedule prints it
  set_context(next_index_++, &op, nullptr, nullptr);
  Step st = step_schedule(op);
  line_ = saved_line;
  if (st == Step::Unusable) {
    // An enabled action is always usable: a chooser that gets here is the harness's bug.
    fail(Oracle::linearization, "explorer", "the chosen action " + print_op(op) + " was refused: " + unusable_);
    unusable_.clear();
    return false;
  }
  return st == Step::Ran;
}

Executor::Step Executor::schedule_point() {
  if (!options_.chooser || !observer_ || failure_) return failure_ ? Step::Failed : Step::Ran;
  PointKind where = PointKind::Op;
  for (unsigned n = 0; n < kQuiesceSteps; ++n) {
    std::vector<SchedAction> en = observer_->enabled_actions();
    if (en.empty()) return Step::Ran;
    int c = options_.chooser->choose(where, en);
    if (c < 0 || static_cast<size_t>(c) >= en.size()) return Step::Ran;
    if (!perform(en[static_cast<size_t>(c)])) return Step::Failed;
    where = PointKind::Action;
  }
  return Step::Ran;
}

bool Executor::drain() {
  if (options_.chooser && observer_) {
    // The explorer picks every drain step; what is left after it (nothing enabled) is the
    // drain's own verdict below: done, silenced or deadlock.
    const uint64_t index = ctx_index_;
    const unsigned line = ctx_line_;
    const Op* op = ctx_op_ptr_;
    const char *text = ctx_text_, *kind = ctx_kind_;
    for (unsigned n = 0; n < kQuiesceSteps; ++n) {
      std::vector<SchedAction> en = observer_->enabled_actions();
      if (en.empty()) break;
      int c = options_.chooser->choose(PointKind::Drain, en);
      if (c < 0 || static_cast<size_t>(c) >= en.size()) c = 0;
      if (!perform(en[static_cast<size_t>(c)])) return false;
    }
    set_context(index, op, text, kind);
    ctx_line_ = line;
  }
  for (unsigned n = 0; n < kQuiesceSteps; ++n) {
    MemorySystem::Quiesce q = vm_.quiesce_step();
    if (!apply_thread_steps() || !step_invariants()) return false;
    // Silenced: what is left waits for managers that never answer (docs/concurrency.md
    // §Silent managers): their runs so far were judged; nothing more will come.
    if (q == MemorySystem::Quiesce::Done || q == MemorySystem::Quiesce::Silenced) return true;
    if (q == MemorySystem::Quiesce::Deadlock) break;
  }
  std::string who = observer_ ? observer_->threads() : std::string();
  fail(Oracle::deadlock, "", "threads are blocked, nothing is runnable and no manager has a request to answer:\n" + who);
  return false;
}

Executor::Step Executor::step_schedule(const Op& op) {
  ops_run_++;
  vm_result_ = model_result_ = OpResult{};
  switch (op.kind) {
    case OpKind::Hold:
      vm_.hold(op.object);
      break;
    case OpKind::HoldInit:
      vm_.hold_init(op.object);
      break;
    case OpKind::Ready:
      vm_.ready(op.object);
      break;
    case OpKind::Silent:
      vm_.silent(op.object);
      break;
    case OpKind::Ack:
      // The manager takes a data_return into its store: what any observer sees is the same.
      if (!vm_.ack(op.object, op.choice, op.choice_exact)) {
        unusable_ = "ack m" + std::to_string(op.object) + " " + std::to_string(op.choice) + ": m" +
                    std::to_string(op.object) + " has no pending data_return " + std::to_string(op.choice) +
                    " (data_returns count from 0 in arrival order)";
        return Step::Unusable;
      }
      break;
    case OpKind::Run:
      if (!vm_.run(op.choice, op.choice_exact)) {
        unusable_ = "run " + std::to_string(op.choice) + ": no runnable thread " + std::to_string(op.choice) +
                    " (write ~N to choose among the runnable ones)";
        return Step::Unusable;
      }
      break;
    case OpKind::Quiesce:
      if (!drain()) return Step::Failed;
      break;
    case OpKind::Reply: {
      ReplyInfo info;
      vm_result_.kr = vm_.reply(op.object, op.choice, op.choice_exact, op.how, &info);
      if (op.choice_exact && !info.exists) {
        unusable_ = "reply m" + std::to_string(op.object) + " " + std::to_string(op.choice) +
                    ": m" + std::to_string(op.object) + " has no pending request " + std::to_string(op.choice) +
                    " (requests count from 0 in arrival order)";
        return Step::Unusable;
      }
      if (info.exists && !info.silent && op.how == ReplyHow::Unavailable) {
        // The manager forgets the page: for the model, its store's page becomes zero.
        std::vector<uint8_t> zeros(kPageSize, 0);
        model_result_.kr = model_.manager_write(op.object, info.offset, zeros);
        Op forget;
        forget.kind = OpKind::ManagerWrite;
        forget.object = op.object;
        forget.offset = info.offset;
        forget.data = DataSpec::fill(0, kPageSize);
        orders_fixed(forget, zeros, vm_result_);
      }
      if (info.exists && !info.silent && op.how == ReplyHow::Error && vm_result_.kr == KERN_SUCCESS) {
        auto it = in_flight_.find(info.owner);
        if (it != in_flight_.end()) it->second.error_pending = true;
      }
      if (!check_assertion(op, model_result_, "model")) return Step::Failed;
      if (!check_assertion(op, vm_result_, "vm")) return Step::Failed;
      if (!compare_results(op)) return Step::Failed;
      break;
    }
    default:
      assert(false && "step_schedule: not a schedule op");
  }
  if (!apply_thread_steps() || !after_op_oracles()) return Step::Failed;
  return Step::Ran;
}

bool Executor::fault_loop_oracle(const OpResult& r) {
  if (!observer_ || !r.mmu) return true;
  if (auto loop = observer_->fault_loop(r.access)) {
    fail(Oracle::fault_loop, "", *loop);
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// The step.

Executor::Step Executor::step(const Op& op) {
  assert(!failure_ && unusable_.empty() && "Executor::step: called after a failure or unusable input");
  notes_.clear();
  chosen_.clear();
  uint64_t index = next_index_++;
  set_context(index, &op, nullptr, nullptr);

  if (op.kind == OpKind::Check) {
    ops_run_++;
    return full_check_now() ? Step::Ran : Step::Failed;
  }
  // 1. Names, and the rules of docs/language.md that depend on the configuration.
  if (std::optional<std::string> bad = names_.check(op)) {
    unusable_ = *bad;
    return Step::Unusable;
  }

  if (op.kind == OpKind::Hold || op.kind == OpKind::Reply || op.kind == OpKind::Run ||
      op.kind == OpKind::Quiesce || op.kind == OpKind::HoldInit || op.kind == OpKind::Ready ||
      op.kind == OpKind::Silent || op.kind == OpKind::Ack)
    return step_schedule(op);

  // 2. Run on the same materialized data: model then VM; user accesses VM then model.
  std::vector<uint8_t> data;
  if (op_has_data(op.kind))
    data = op.data.materialize();
  if (op.kind == OpKind::Read || op.kind == OpKind::Write) {
    vm_result_ = execute_op(vm_, op, data);
    if (uint32_t th = vm_result_.access.thread) {
      // The access waits for a held manager: the model moves what the VM moved; the
      // rest comes with the thread's runs.
      InFlight f = open_in_flight(op, std::move(data));
      std::vector<uint8_t> head_data;
      uint64_t moved = vm_result_.access.bytes.size();
      Op head = sub_access(op, op.addr, moved, f.data, &head_data);
      OpResult m;
      m.is_access = m.mmu = true;
      if (moved != 0) m = execute_op(model_, head, head_data);
      model_result_ = m;
      ops_run_++;
      if (!fault_loop_oracle(vm_result_)) return Step::Failed;
      if (m.kr != KERN_SUCCESS || in_flight_.count(th)) {
        fail(Oracle::linearization, "thread " + std::to_string(th),
             "the VM moved " + std::to_string(moved) + " bytes and waits; the model: " + describe(m));
        return Step::Failed;
      }
      OpResult v = vm_result_;
      v.kr = KERN_SUCCESS;
      vm_result_ = v;
      if (!compare_results(head)) return Step::Failed;
      f.vm = v;
      f.vm.access.thread = 0;
      f.model = m;
      in_flight_.emplace(th, std::move(f));
      names_.apply(op, KERN_SUCCESS);
      if (!after_op_oracles()) return Step::Failed;
      return Step::Ran;
    }
    model_result_ = run_model_access(op, data);
  } else if (op.kind == OpKind::VmCopy || op.kind == OpKind::VmWrite) {
    // vm_copy and vm_write may go in flight as kernel threads (docs/concurrency.md §Threads): the VM
    // first, so that the model runs it only where it takes effect.
    vm_result_ = execute_op(vm_, op, data);
    if (uint32_t th = vm_.op_thread()) return start_kernel_op(op, std::move(data), th);
    model_result_ = execute_op(model_, op, data);
  } else {
    model_result_ = execute_op(model_, op, data);
    vm_result_ = execute_op(vm_, op, data);
  }
  ops_run_++;

  // 3-4. The machine's own alarm first, then the assertions on each side, then the sides
  //      against each other.
  if (!fault_loop_oracle(vm_result_)) return Step::Failed;
  if (!check_assertion(op, model_result_, "model")) return Step::Failed;
  if (!check_assertion(op, vm_result_, "vm")) return Step::Failed;
  if (!compare_results(op)) return Step::Failed;

  // 5. Names follow the model, except where the VM was allowed to fail a vm_read on
  //    undefined contents: the model drops its handle so that both sides agree again.
  if (op.kind == OpKind::VmRead && vm_result_.kr == KERN_MEMORY_ERROR && model_result_.kr == KERN_SUCCESS) {
    model_.discard(op.copy);
    model_result_.kr = KERN_MEMORY_ERROR;
  }
  names_.apply(op, model_result_.kr);
  if (op.kind == OpKind::Destroy && model_result_.kr == KERN_SUCCESS) objects_destroyed_ |= 1u << op.object;
  orders_fixed(op, data, vm_result_);
  if (op.kind == OpKind::Terminate) {  // the task's threads were aborted with it
    for (auto it = in_flight_.begin(); it != in_flight_.end();) {
      if (it->second.op.task != op.task) {
        ++it;
        continue;
      }
      orders_access_end(it->second, false);
      it = in_flight_.erase(it);
    }
    if (!orders_close_if_quiet()) return Step::Failed;
  }

  // 6-7. VM oracles after every op; periodic full check.
  if (!after_op_oracles()) return Step::Failed;
  if (options_.full_check_every && ops_run_ % options_.full_check_every == 0 && !full_check_now()) return Step::Failed;
  return Step::Ran;
}

// ---------------------------------------------------------------------------------------
// Full check.

bool Executor::compare_regions(unsigned t) {
  std::vector<RegionInfo> v = vm_.regions(t);
  std::vector<RegionInfo> m = model_.regions(t);
  if (v == m) return true;
  size_t i = 0;
  while (i < v.size() && i < m.size() && v[i] == m[i]) i++;
  std::string sub;
  if (i == v.size()) sub = "vm lacks a region";
  else if (i == m.size()) sub = "vm has an extra region";
  else if (v[i].start != m[i].start || v[i].end != m[i].end) sub = "bounds";
  else if (v[i].prot != m[i].prot) sub = "prot";
  else if (v[i].max_prot != m[i].max_prot) sub = "max_prot";
  else sub = "inherit";
  std::string detail = "task t" + std::to_string(t) + " regions differ (first at entry " + std::to_string(i) +
                       ")\nvm:\n" + describe_regions(v) + "model:\n" + describe_regions(m);
  while (!detail.empty() && detail.back() == '\n') detail.pop_back();
  fail(Oracle::region_mismatch, sub, detail);
  return false;
}

namespace {
std::vector<uint64_t> sorted_union(std::vector<uint64_t> a) {
  for (auto& x : a) x = trunc_page(x);
  std::ranges::sort(a);
  a.erase(std::unique(a.begin(), a.end()), a.end());
  return a;
}

const char* status_name(PeekStatus s) {
  switch (s) {
    case PeekStatus::Unmapped: return "unmapped";
    case PeekStatus::Mapped: return "mapped";
    case PeekStatus::Unknown: return "unknown";
  }
  return "?";
}
}  // namespace

bool Executor::compare_task_pages(unsigned t) {
  std::vector<uint64_t> pages;
  vm_.pages_of_interest(t, pages);
  model_.pages_of_interest(t, pages);
  pages = sorted_union(std::move(pages));
  std::array<uint8_t, kPageSize> vb{}, mb{};
  for (uint64_t va : pages) {
    PeekStatus ms = model_.peek_page(t, va, mb);
    if (ms == PeekStatus::Unknown) continue;
    PeekStatus vs = vm_.peek_page(t, va, vb);
    auto where = [&] { return "task t" + std::to_string(t) + " page " + hex_addr(va); };
    if (vs != ms) {
      fail(Oracle::content_mismatch, std::string("vm ") + status_name(vs) + ", model " + status_name(ms),
           where() + ": vm says " + status_name(vs) + ", model says " + status_name(ms), {},
           {FailureSite::Kind::TaskPage, t, 0, va});
      return false;
    }
    if (ms != PeekStatus::Mapped) continue;
    size_t i = first_difference(mb, vb, {});
    if (i != SIZE_MAX) {
      fail(Oracle::content_mismatch, "", where() + " differs; first differing byte at " + hex_addr(va + i),
           hex_diff(va, mb, vb, {}, "model", "vm"), {FailureSite::Kind::TaskPage, t, 0, va + i});
      return false;
    }
  }
  return true;
}

bool Executor::compare_object(unsigned m) {
  std::vector<uint64_t> offs;
  vm_.object_pages_of_interest(m, offs);
  model_.object_pages_of_interest(m, offs);
  offs = sorted_union(std::move(offs));
  std::array<uint8_t, kPageSize> vb{}, mb{};
  for (uint64_t off : offs) {
    PeekStatus ms = model_.peek_object_page(m, off, mb);
    if (ms == PeekStatus::Unknown) continue;
    PeekStatus vs = vm_.peek_object_page(m, off, vb);
    auto where = [&] { return "memory object m" + std::to_string(m) + " offset " + hex_addr(off); };
    if (vs != ms) {
      fail(Oracle::object_store_mismatch, std::string("vm ") + status_name(vs) + ", model " + status_name(ms),
           where() + ": vm says " + status_name(vs) + ", model says " + status_name(ms), {},
           {FailureSite::Kind::ObjectPage, 0, m, off});
      return false;
    }
    if (ms != PeekStatus::Mapped) continue;
    size_t i = first_difference(mb, vb, {});
    if (i != SIZE_MAX) {
      fail(Oracle::object_store_mismatch, "", where() + " differs; first differing byte at offset " + hex_addr(off + i),
           hex_diff(off, mb, vb, {}, "model", "vm"), {FailureSite::Kind::ObjectPage, 0, m, off + i});
      return false;
    }
  }
  return true;
}

bool Executor::full_check() {
  if (failure_) return false;
  // Called between ops by a client (not by step or finish): the check is its own context,
  // so that a failure never names an op that may no longer exist.
  set_context(next_index_, nullptr, "(full check)", "check");
  return full_check_now();
}

bool Executor::full_check_now() {
  if (failure_) return false;
  for (unsigned t = 0; t < kMaxNames; t++) {
    if (!names_.task_live(t)) continue;
    if (!compare_regions(t) || !compare_task_pages(t)) return false;
  }
  for (unsigned m = 0; m < kMaxNames; m++) {
    if (!names_.object_live(m)) continue;
    if (!compare_object(m)) return false;
  }
  return run_vm_findings(&VmObserver::check_invariants);
}

// ---------------------------------------------------------------------------------------
// End of program and teardown.

bool Executor::teardown() {
  set_context(next_index_, nullptr, "(teardown)", "teardown");
  auto both = [&](const Op& op) {
    model_result_ = execute_op(model_, op, {});
    vm_result_ = execute_op(vm_, op, {});
    if (vm_result_.kr != model_result_.kr) {
      fail(Oracle::teardown, std::string(op_kind_name(op.kind)) + " result",
           print_op(op) + "\nvm:    " + describe(vm_result_) + "\nmodel: " + describe(model_result_));
      return false;
    }
    names_.apply(op, model_result_.kr);
    return after_op_oracles();
  };
  for (unsigned t = 0; t < kMaxNames; t++) {
    if (!names_.task_live(t)) continue;
    Op op;
    op.kind = OpKind::Terminate;
    op.task = static_cast<uint8_t>(t);
    if (!both(op)) return false;
  }
  for (unsigned c = 0; c < kMaxNames; c++) {
    if (!names_.copy_live(c)) continue;
    Op op;
    op.kind = OpKind::Discard;
    op.copy = static_cast<uint8_t>(c);
    if (!both(op)) return false;
  }
  for (unsigned m = 0; m < kMaxNames; m++) {
    if (!names_.object_live(m) || (objects_destroyed_ & (1u << m))) continue;
    Op op;
    op.kind = OpKind::Destroy;
    op.object = static_cast<uint8_t>(m);
    if (!both(op)) return false;
    objects_destroyed_ |= 1u << m;
  }
  if (!observer_) return true;
  std::vector<Violation> found;
  observer_->check_teardown(found);
  if (found.empty()) return true;
  std::string detail;
  for (size_t i = 0; i < found.size() && i < 8; i++) detail += found[i].text() + "\n";
  if (found.size() > 8) detail += "(" + std::to_string(found.size() - 8) + " more)\n";
  fail(Oracle::teardown, found[0].oracle == Oracle::teardown ? "" : oracle_name(found[0].oracle), detail);
  return false;
}

bool Executor::finish_check() {
  if (failure_) return false;
  notes_.clear();
  chosen_.clear();
  set_context(next_index_, nullptr, "(end of program)", "end");
  // Everything in flight is drained before the final check (docs/concurrency.md).
  if (!drain()) return false;
  return full_check_now();
}

bool Executor::finish_teardown() {
  if (failure_) return false;
  return !options_.teardown || teardown();
}

bool Executor::finish() { return finish_check() && finish_teardown(); }

// ---------------------------------------------------------------------------------------

RunSummary run_program(const vmfuzz::Program& program, const std::string& file, MemorySystem& vm,
                       MemorySystem& model, VmObserver* observer, ExecOptions options,
                       const StepListener& listener, std::string* dot_out) {
  RunSummary sum;
  Executor ex(vm, model, program.config, options);
  ex.set_observer(observer);
  const bool explore = options.chooser != nullptr;
  if (explore) {
    sum.schedule.config = program.config;
    sum.schedule.has_config = program.has_config;
    sum.schedule.source = program.source;
  }
  // The schedule as it ran: op i with the actions chosen during it and after it (a
  // quiesce's drain actions go before it, so that the quiesce finds nothing left), and,
  // once the run stopped, the ops it did not reach.
  auto record = [&](size_t i) {
    if (!explore) return;
    const Op& op = program.ops[i];
    const unsigned line = i < program.lines.size() ? program.lines[i] : 0;
    auto add = [&](const Op& o, unsigned l) {
      sum.schedule.ops.push_back(o);
      sum.schedule.lines.push_back(l);
    };
    if (op.kind != OpKind::Quiesce) add(op, line);
    for (const Op& c : ex.chosen()) add(c, 0);
    if (op.kind == OpKind::Quiesce) add(op, line);
  };
  auto record_rest = [&](size_t from) {
    if (!explore) return;
    for (size_t j = from; j < program.ops.size(); j++) {
      sum.schedule.ops.push_back(program.ops[j]);
      sum.schedule.lines.push_back(j < program.lines.size() ? program.lines[j] : 0);
    }
  };
  for (size_t i = 0; i < program.ops.size(); i++) {
    unsigned line = i < program.lines.size() ? program.lines[i] : 0;
    ex.set_line(line);
    Executor::Step st = ex.step(program.ops[i]);
    if (explore && st == Executor::Step::Ran && i + 1 < program.ops.size()) st = ex.schedule_point();
    if (st != Executor::Step::Unusable) record(i);
    if (st == Executor::Step::Failed) record_rest(i + 1);
    sum.ops = ex.ops_seen();
    if (st == Executor::Step::Unusable) {
      ParseError pe;
      pe.file = file;
      pe.line = line;
      pe.reason = ex.unusable_reason();
      sum.unusable = true;
      sum.unusable_reason = pe.what();
      sum.orders = ex.orders_stats();
      return sum;
    }
    if (listener) listener(i, program.ops[i], st, ex);
    if (st == Executor::Step::Failed) {
      sum.failure = ex.failure();
      if (dot_out && observer) *dot_out = observer->dot(sum.failure->site);
      sum.orders = ex.orders_stats();
      return sum;
    }
  }
  ex.set_line(0);
  // The end-of-program check runs before the picture is taken; teardown after.
  bool ok = ex.finish_check();
  if (explore)
    for (const Op& c : ex.chosen()) {
      sum.schedule.ops.push_back(c);
      sum.schedule.lines.push_back(0);
    }
  if (dot_out && observer) *dot_out = observer->dot(ok ? FailureSite{} : ex.failure()->site);
  if (ok && !ex.finish_teardown()) ok = false;
  if (!ok) {
    sum.failure = ex.failure();
    sum.orders = ex.orders_stats();
      return sum;
  }
  sum.ok = true;
  sum.orders = ex.orders_stats();
      return sum;
}

RunSummary decode_and_run(std::span<const uint8_t> bytes, const SystemConfig& config, MemorySystem& vm,
                          MemorySystem& model, VmObserver* observer, ExecOptions options,
                          const StepListener& listener, vmfuzz::Program* program) {
  RunSummary sum;
  Executor ex(vm, model, config, options);
  ex.set_observer(observer);
  Program& p = *program;
  p = Program{};
  const SystemConfig input_config = Decoder(bytes).config();
  // `stopped`: the executor failed or met an unusable op (no further step). `next_to_run`:
  // the first decoded op not yet given to the executor (all of them while fused).
  bool stopped = false;
  size_t next_to_run = 0;
  // One step, with run_program's bookkeeping. Returns the step's outcome.
  auto run_one = [&](size_t i) {
    const Op& op = p.ops[i];
    ex.set_line(0);
    Executor::Step st = ex.step(op);
    sum.ops = ex.ops_seen();
    if (st == Executor::Step::Unusable) {
      ParseError pe;
      pe.file = "<input>";
      pe.line = 0;
      pe.reason = ex.unusable_reason();
      sum.unusable = true;
      sum.unusable_reason = pe.what();
      stopped = true;
      return st;
    }
    if (listener) listener(i, op, st, ex);
    if (st == Executor::Step::Failed) {
      sum.failure = ex.failure();
      stopped = true;
    }
    return st;
  };
  // After the run and the decoder part ways: the scratch model of decode_with_model,
  // brought to the same point by replaying every op decoded so far.
  std::unique_ptr<model::Model> scratch;
  auto scratch_result = [&](const Op& op) {
    if (op.kind == OpKind::Check) return KERN_SUCCESS;
    std::vector<uint8_t> data;
    if (op.kind == OpKind::Write || op.kind == OpKind::Object || op.kind == OpKind::ManagerWrite)
      data = op.data.materialize();
    return execute_op(*scratch, op, data).kr;
  };
  auto part_ways = [&]() {
    scratch = std::make_unique<model::Model>(input_config);
    scratch->task_create(0);
    kern_return_t kr = KERN_SUCCESS;
    for (const Op& op : p.ops) kr = scratch_result(op);
    return kr;  // the last op's result
  };

  Decoder dec(bytes);
  NameState names(input_config);
  p.ops.reserve(64);  // fuzz programs are mostly a few dozen ops
  p.lines.reserve(64);
  Op decoded;
  while (dec.next(names, &decoded)) {
    p.ops.push_back(std::move(decoded));  // next() assigns every field of `decoded` again
    p.lines.push_back(0);
    const Op& op = p.ops.back();  // valid until the next push_back
    kern_return_t kr;
    if (scratch) {
      kr = scratch_result(op);
    } else {
      size_t i = next_to_run++;
      Executor::Step st = run_one(i);
      const OpResult& mr = ex.model_result();
      const OpResult& vr = ex.vm_result();
      // The run's model saw exactly what a scratch model would have, and answered this op
      // as execute_op does, unless: the op did not run (unusable), the run
      // stopped (the rest must still be decoded), or the VM stopped an access or vm_read
      // with KERN_MEMORY_ERROR (run_model_access splits the model's access; the executor
      // may drop the model's handle).
      bool fused = st == Executor::Step::Ran &&
                   !((op.kind == OpKind::Read || op.kind == OpKind::Write || op.kind == OpKind::VmRead) &&
                     vr.kr == KERN_MEMORY_ERROR);
      if (fused) kr = op.kind == OpKind::Check ? KERN_SUCCESS : mr.kr;
      else kr = part_ways();
    }
    names.apply(op, kr);
  }
  p.config = config;
  p.has_config = true;
  if (stopped) return sum;
  for (size_t i = next_to_run; i < p.ops.size(); i++)
    if (run_one(i) != Executor::Step::Ran && stopped) return sum;
  // The end-of-program check, then teardown (as run_program, without a picture).
  bool ok = ex.finish_check() && ex.finish_teardown();
  if (!ok) {
    sum.failure = ex.failure();
    return sum;
  }
  sum.ok = true;
  return sum;
}

Subject make_model_subject(const SystemConfig& config) {
  Subject s;
  s.system = std::make_unique<model::Model>(config);
  return s;
}

vmfuzz::Program decode_with_model(std::span<const uint8_t> bytes, MemorySystem& scratch_model) {
  scratch_model.task_create(0);
  // The decoder follows names with the results of this run on the scratch model.
  return vmfuzz::decode_program(bytes, [&](const Op& op) {
    if (op.kind == OpKind::Check) return KERN_SUCCESS;
    std::vector<uint8_t> data;
    if (op_has_data(op.kind))
      data = op.data.materialize();
    return execute_op(scratch_model, op, data).kr;
  });
}

bool validate_names(const vmfuzz::Program& program, MemorySystem& scratch_model, size_t* index,
                    std::string* reason) {
  NameState names(program.config);
  scratch_model.task_create(0);
  for (size_t i = 0; i < program.ops.size(); i++) {
    const Op& op = program.ops[i];
    if (auto bad = names.check(op)) {
      *index = i;
      *reason = *bad;
      return false;
    }
    OpResult r;
    if (op.kind != OpKind::Check) {
      std::vector<uint8_t> data;
      if (op_has_data(op.kind))
        data = op.data.materialize();
      r = execute_op(scratch_model, op, data);
    }
    names.apply(op, r.kr);
  }
  return true;
}

namespace {

bool read_whole_file(const std::string& path, std::vector<uint8_t>* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

// A text trace: only printable ASCII, tabs, CRs and newlines outside quoted strings' \x
// escapes (which are themselves printable), and a first non-blank line that starts with
// `#`, `config` or an op keyword.
bool looks_like_text(const std::vector<uint8_t>& b) {
  for (uint8_t c : b)
    if (!(c == '\n' || c == '\t' || c == '\r' || (c >= 0x20 && c < 0x7f))) return false;
  size_t i = 0;
  while (i < b.size() && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n')) i++;
  if (i == b.size()) return true;  // empty or blank: an empty trace
  if (b[i] == '#') return true;
  size_t j = i;
  while (j < b.size() && ((b[j] >= 'a' && b[j] <= 'z') || b[j] == '_')) j++;
  std::string word(b.begin() + i, b.begin() + j);
  OpKind k;
  return word == "config" || vmfuzz::op_kind_from_name(word, &k);
}

}  // namespace

bool load_program(const std::string& file, vmfuzz::Program* prog, bool* is_text, std::string* error) {
  std::vector<uint8_t> bytes;
  if (!read_whole_file(file, &bytes)) {
    *error = file + ": cannot read";
    return false;
  }
  // A *.trace file is text whatever it holds (a misspelt first word, or UTF-8 in a
  // comment, must be a parse error, not a binary input that "passes"); any other file is
  // text when it looks like a trace.
  bool named_trace = file.size() >= 6 && file.compare(file.size() - 6, 6, ".trace") == 0;
  *is_text = named_trace || looks_like_text(bytes);
  if (*is_text) {
    vmfuzz::ParseError err;
    std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (!vmfuzz::parse_trace(text, file, prog, &err)) {
      *error = err.what();
      return false;
    }
    // Names depend on results: follow them with the model alone, so that a trace that
    // misuses a name is unusable before either side runs.
    vmfuzz::model::Model scratch(prog->config);
    size_t index = 0;
    std::string reason;
    if (!validate_names(*prog, scratch, &index, &reason)) {
      vmfuzz::ParseError pe;
      pe.file = file;
      pe.line = index < prog->lines.size() ? prog->lines[index] : 0;
      pe.reason = reason;
      *error = pe.what();
      return false;
    }
    return true;
  }
  vmfuzz::model::Model scratch(vmfuzz::Decoder(bytes).config());
  *prog = decode_with_model(bytes, scratch);
  fold_fuzz_config(prog->config);  // as vm_diff runs it
  prog->source = file;
  return true;
}


}  // namespace vmfuzz::harness
