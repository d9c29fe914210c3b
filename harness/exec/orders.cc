// orders.cc — the all-orders (Line-Up) cross-check: see orders.h.
//
// The search is a depth-first walk over orders, one model step per node: at each node the
// next fixed op or the next page op of some access may run (when its window allows), on a
// copy of the model, and the walk goes deeper only if the unit's model result equals the
// VM's. So an order is abandoned at its first unexplained result, and a block whose VM
// results are explained by some order is accepted at the first such order found.
#include "harness/exec/orders.h"

#include <algorithm>

#include "harness/exec/report.h"
#include "harness/lang/text.h"

namespace vmfuzz::harness {

namespace {

std::string kr_text(kern_return_t kr) { return kern_return_name(kr); }

// Does the model's result `m` of unit `u` equal the VM's? (The executor's comparison:
// code, fault address of a failed access, returned address, bytes of read and file
// except those the model marks unknown.)
bool same_result(const OrderUnit& u, const OpResult& m) {
  const OpResult& v = u.vm;
  if (v.kr != m.kr) return false;
  if (v.mmu && v.kr != KERN_SUCCESS && v.access.fault_addr != m.access.fault_addr) return false;
  if (v.has_addr && v.kr == KERN_SUCCESS && v.addr != m.addr) return false;
  if (u.op.kind == OpKind::Read || u.op.kind == OpKind::File)
    return first_difference(m.access.bytes, v.access.bytes, m.access.unknown) == SIZE_MAX;
  return true;
}

struct Search {
  const std::vector<OrderUnit>& fixed;
  const std::vector<OrderUnit>& pages;
  std::vector<std::vector<size_t>> by_access;  // page op indices of each access, in order
  uint64_t nodes = 0;
  bool gave_up = false;

  // `next[a]`: how many page ops of access a have run; f: fixed ops that have run.
  bool walk(const model::Model& m, size_t f, std::vector<size_t>& next, size_t pages_left) {
    if (f == fixed.size() && pages_left == 0) return true;
    // A fixed op may run unless a page op's window closes before it.
    bool fixed_ok = f < fixed.size();
    for (size_t a = 0; a < by_access.size() && fixed_ok; a++)
      if (next[a] < by_access[a].size() && pages[by_access[a][next[a]]].hi <= f) fixed_ok = false;
    if (fixed_ok && try_unit(m, fixed[f], [&](const model::Model& m2) { return walk(m2, f + 1, next, pages_left); }))
      return true;
    for (size_t a = 0; a < by_access.size(); a++) {
      if (next[a] == by_access[a].size()) continue;
      const OrderUnit& p = pages[by_access[a][next[a]]];
      if (p.lo > f) continue;
      next[a]++;
      bool found = try_unit(m, p, [&](const model::Model& m2) { return walk(m2, f, next, pages_left - 1); });
      next[a]--;
      if (found) return true;
    }
    return false;
  }

  template <class Then>
  bool try_unit(const model::Model& m, const OrderUnit& u, Then then) {
    if (gave_up || ++nodes > kOrdersMaxNodes) {
      gave_up = true;
      return false;
    }
    if (u.stated) return then(m);  // data_error: what the manager said, nothing moves
    model::Model c = m.clone();
    if (u.take_handle) {  // a vm_write's start: its message takes the handle
      c.vm_write_take(u.op.copy);
      return then(c);
    }
    OpResult r;
    if (u.handle) r.kr = c.vm_write_overwrite(u.op.task, u.op.addr, *u.handle);
    else r = run_op(c, u.op, u.data);
    if (!same_result(u, r)) return false;
    return then(c);
  }
};

}  // namespace

OrdersVerdict check_orders(const model::Model& start, const std::vector<OrderUnit>& fixed,
                           const std::vector<OrderUnit>& pages) {
  OrdersVerdict v;
  if (pages.size() > kOrdersMaxPageOps) {
    v.detail = std::to_string(pages.size()) + " page ops (more than " + std::to_string(kOrdersMaxPageOps) + ")";
    return v;
  }
  Search s{fixed, pages, {}, 0, false};
  for (size_t i = 0; i < pages.size(); i++) {
    size_t a = static_cast<size_t>(pages[i].access);
    if (s.by_access.size() <= a) s.by_access.resize(a + 1);
    s.by_access[a].push_back(i);
  }
  std::vector<size_t> next(s.by_access.size(), 0);
  bool found = s.walk(start, 0, next, pages.size());
  v.nodes = s.nodes;
  if (s.gave_up && !found) {
    v.detail = "more than " + std::to_string(kOrdersMaxNodes) + " model steps";
    return v;
  }
  v.judged = true;
  v.ok = found;
  if (!found) {
    v.detail = "no order of the block's " + std::to_string(fixed.size()) + " fixed ops and " +
               std::to_string(pages.size()) + " page ops gives the VM's results (" + std::to_string(s.nodes) +
               " model steps tried):\n";
    for (const OrderUnit& u : fixed) v.detail += "  fixed: " + describe_unit(u) + "\n";
    for (const OrderUnit& u : pages) v.detail += "  page:  " + describe_unit(u) + "\n";
    while (!v.detail.empty() && v.detail.back() == '\n') v.detail.pop_back();
  }
  return v;
}

std::vector<OrderUnit> page_ops(const Op& op, const std::vector<uint8_t>& data, const OpResult& moved,
                                bool completed, bool data_error) {
  std::vector<OrderUnit> out;
  const Access& a = moved.access;
  const uint64_t size = op.kind == OpKind::Write ? data.size() : op.size;
  uint64_t done = 0;
  auto piece = [&](uint64_t from, uint64_t len) {
    OrderUnit u;
    u.op = op;
    u.op.expect = Expect{};
    u.op.addr = op.addr + from;
    if (op.kind == OpKind::Write) {
      u.data.assign(data.begin() + static_cast<std::ptrdiff_t>(from),
                    data.begin() + static_cast<std::ptrdiff_t>(from + len));
      u.op.data = DataSpec{DataSpec::Form::Hex, u.data, 0, 0};
    } else
      u.op.size = len;
    u.vm.is_access = u.vm.mmu = true;
    return u;
  };
  // The pages the VM moved, each whole as far as the access covers it.
  while (done < a.bytes.size()) {
    uint64_t va = op.addr + done;
    uint64_t len = std::min<uint64_t>(kPageSize - (va & (kPageSize - 1)), a.bytes.size() - done);
    OrderUnit u = piece(done, len);
    if (op.kind == OpKind::Read) {
      u.vm.access.bytes.assign(a.bytes.begin() + static_cast<std::ptrdiff_t>(done),
                               a.bytes.begin() + static_cast<std::ptrdiff_t>(done + len));
    }
    out.push_back(std::move(u));
    done += len;
  }
  // Where it stopped with a code: the page op of the page it stopped at.
  if (completed && moved.kr != KERN_SUCCESS && done < size) {
    uint64_t va = op.addr + done;
    uint64_t len = std::min<uint64_t>(kPageSize - (va & (kPageSize - 1)), size - done);
    OrderUnit u = piece(done, len);
    u.vm.kr = u.vm.access.kr = moved.kr;
    u.vm.access.fault_addr = a.fault_addr;
    u.stated = data_error && moved.kr == KERN_MEMORY_ERROR;
    out.push_back(std::move(u));
  }
  return out;
}

std::string describe_unit(const OrderUnit& u) {
  std::string s = print_op(u.op);
  if (u.access >= 0)
    s += " (page op of access " + std::to_string(u.access) + ", window " + std::to_string(u.lo) + ".." +
         std::to_string(u.hi) + (u.stated ? ", data_error" : "") + ")";
  s += ": vm " + kr_text(u.vm.kr);
  if (u.vm.mmu && u.vm.kr != KERN_SUCCESS) s += " at " + hex_addr(u.vm.access.fault_addr);
  if ((u.op.kind == OpKind::Read || u.op.kind == OpKind::File) && !u.vm.access.bytes.empty()) {
    s += " == hex:";
    static const char* const kHex = "0123456789abcdef";
    for (size_t i = 0; i < u.vm.access.bytes.size() && i < 16; i++) {
      s += kHex[u.vm.access.bytes[i] >> 4];
      s += kHex[u.vm.access.bytes[i] & 15];
    }
    if (u.vm.access.bytes.size() > 16) s += "... (" + std::to_string(u.vm.access.bytes.size()) + " bytes)";
  }
  return s;
}

}  // namespace vmfuzz::harness
