// Tests of the all-orders (Line-Up) cross-check (harness/exec/orders.*, docs/concurrency.md
// §The all-orders check): the checker on hand-made histories, and the executor's use of it
// over every race trace, with and without the race bugs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "harness/exec/executor.h"
#include "harness/exec/orders.h"
#include "harness/lang/text.h"
#include "reference_model/model.h"
#include "vm/machine/bugs.h"

namespace vmfuzz::harness {
namespace {

// A model with t0 and one zero page allocated at 0x10000..0x12000.
model::Model two_zero_pages() {
  model::Model m(SystemConfig{});
  m.task_create(0);
  uint64_t a = 0x10000;
  EXPECT_EQ(m.allocate(0, &a, 0x2000, false), KERN_SUCCESS);
  return m;
}

TEST(ModelClone, IsIndependentAndKeepsSharingWithinTheCopy) {
  model::Model m(SystemConfig{});
  m.task_create(0);
  std::vector<uint8_t> fill(0x1000, 0x11);
  m.object_create(0, 0x1000, CopyStrategy::None, true, fill);
  uint64_t a = 0x40000;
  ASSERT_EQ(m.map(0, &a, false, 0x1000, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy), KERN_SUCCESS);
  model::Model c = m.clone();
  std::vector<uint8_t> x = {'x'};
  EXPECT_EQ(c.write(0, 0x40000, x, 0).kr, KERN_SUCCESS);
  // The copy's shared mapping and its object's store are still one memory...
  EXPECT_EQ(c.file(0, 0, 1).bytes, x);
  // ...and the original saw nothing.
  EXPECT_EQ(m.file(0, 0, 1).bytes, std::vector<uint8_t>{0x11});
  EXPECT_EQ(m.read(0, 0x40000, 1, 0).bytes, std::vector<uint8_t>{0x11});
}

OrderUnit write_page_op(uint64_t addr, std::vector<uint8_t> bytes, int access, unsigned lo, unsigned hi) {
  OrderUnit u;
  u.op.kind = OpKind::Write;
  u.op.task = 0;
  u.op.addr = addr;
  u.op.data = DataSpec{DataSpec::Form::Hex, bytes, 0, 0};
  u.data = std::move(bytes);
  u.vm.is_access = u.vm.mmu = true;
  u.access = access;
  u.lo = lo;
  u.hi = hi;
  return u;
}

OrderUnit fixed_read(uint64_t addr, std::vector<uint8_t> seen) {
  OrderUnit u;
  u.op.kind = OpKind::Read;
  u.op.task = 0;
  u.op.addr = addr;
  u.op.size = seen.size();
  u.vm.is_access = u.vm.mmu = true;
  u.vm.access.bytes = std::move(seen);
  return u;
}

TEST(OrdersCheck, AcceptsWhatSomeOrderGivesAndNothingElse) {
  model::Model m = two_zero_pages();
  // A write's page op may run before or after a read (its window spans the read).
  for (std::vector<uint8_t> seen : {std::vector<uint8_t>{'x'}, std::vector<uint8_t>{0}}) {
    OrdersVerdict v = check_orders(m, {fixed_read(0x10000, seen)}, {write_page_op(0x10000, {'x'}, 0, 0, 1)});
    EXPECT_TRUE(v.judged);
    EXPECT_TRUE(v.ok) << v.detail;
  }
  // No order reads what nobody wrote.
  OrdersVerdict bad = check_orders(m, {fixed_read(0x10000, {'y'})}, {write_page_op(0x10000, {'x'}, 0, 0, 1)});
  EXPECT_TRUE(bad.judged);
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(bad.detail.find("no order"), std::string::npos) << bad.detail;
}

TEST(OrdersCheck, AWrongLinearizationPointOutsideTheWindowIsNotAnExplanation) {
  model::Model m = two_zero_pages();
  // The write ended before the read started (window 0..0): a read of zero could only be
  // explained by placing the write after the read, outside its window.
  OrdersVerdict v = check_orders(m, {fixed_read(0x10000, {0})}, {write_page_op(0x10000, {'x'}, 0, 0, 0)});
  EXPECT_TRUE(v.judged);
  EXPECT_FALSE(v.ok);
  // Started after the read (window 1..1): the read cannot see it.
  v = check_orders(m, {fixed_read(0x10000, {'x'})}, {write_page_op(0x10000, {'x'}, 0, 1, 1)});
  EXPECT_TRUE(v.judged);
  EXPECT_FALSE(v.ok);
}

TEST(OrdersCheck, PagesOfOneAccessKeepTheirAddressOrder) {
  model::Model m = two_zero_pages();
  // "ab" across the page boundary at 0x11000: page op 'a' then page op 'b'.
  std::vector<OrderUnit> pages = {write_page_op(0x10fff, {'a'}, 0, 0, 1), write_page_op(0x11000, {'b'}, 0, 0, 1)};
  for (std::vector<uint8_t> seen : {std::vector<uint8_t>{0, 0}, std::vector<uint8_t>{'a', 0},
                                    std::vector<uint8_t>{'a', 'b'}}) {
    OrdersVerdict v = check_orders(m, {fixed_read(0x10fff, seen)}, pages);
    EXPECT_TRUE(v.ok) << v.detail;
  }
  // The second page before the first: not an order of this access.
  OrdersVerdict v = check_orders(m, {fixed_read(0x10fff, {0, 'b'})}, pages);
  EXPECT_TRUE(v.judged);
  EXPECT_FALSE(v.ok);
}

TEST(OrdersCheck, TwoConcurrentAccessesOnOnePageEitherWins) {
  model::Model m = two_zero_pages();
  std::vector<OrderUnit> pages = {write_page_op(0x10000, {'p'}, 0, 0, 1), write_page_op(0x10000, {'q'}, 1, 0, 1)};
  for (uint8_t last : {'p', 'q'}) EXPECT_TRUE(check_orders(m, {fixed_read(0x10000, {last})}, pages).ok);
  EXPECT_FALSE(check_orders(m, {fixed_read(0x10000, {'r'})}, pages).ok);
}

TEST(OrdersCheck, MoreThanFourPageOpsAreNotJudged) {
  model::Model m = two_zero_pages();
  std::vector<OrderUnit> pages;
  for (int i = 0; i < int(kOrdersMaxPageOps) + 1; i++) pages.push_back(write_page_op(0x10000, {'z'}, i, 0, 1));
  OrdersVerdict v = check_orders(m, {fixed_read(0x10000, {'y'})}, pages);
  EXPECT_FALSE(v.judged);
}

TEST(OrdersCheck, PageOpsSplitAnAccessAtPageBoundariesAndAtItsStop) {
  Op op;
  op.kind = OpKind::Read;
  op.task = 0;
  op.addr = 0x40ffc;
  op.size = 0x1008;  // 0x40ffc..0x42004: three pages
  OpResult moved;
  moved.is_access = moved.mmu = true;
  moved.kr = moved.access.kr = KERN_MEMORY_ERROR;
  moved.access.fault_addr = 0x41000;
  moved.access.bytes = {1, 2, 3, 4};
  std::vector<OrderUnit> u = page_ops(op, {}, moved, true, true);
  ASSERT_EQ(u.size(), 2u);
  EXPECT_EQ(u[0].op.addr, 0x40ffcu);
  EXPECT_EQ(u[0].op.size, 4u);
  EXPECT_EQ(u[0].vm.kr, KERN_SUCCESS);
  EXPECT_FALSE(u[0].stated);
  EXPECT_EQ(u[1].op.addr, 0x41000u);
  EXPECT_EQ(u[1].op.size, 0x1000u);
  EXPECT_EQ(u[1].vm.kr, KERN_MEMORY_ERROR);
  EXPECT_TRUE(u[1].stated);  // the manager's data_error: no model step
  // Aborted (not completed): only what moved.
  EXPECT_EQ(page_ops(op, {}, moved, false, false).size(), 1u);
}

std::vector<std::string> race_traces() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(std::string(VMFUZZ_SOURCE_DIR) + "/corpus/traces")) {
    std::string name = e.path().filename().string();
    if (name.rfind("race_", 0) == 0 && e.path().extension() == ".trace") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

RunSummary run_file(const std::string& file, ExecOptions eo) {
  Program p;
  bool is_text = false;
  std::string error;
  EXPECT_TRUE(load_program(file, &p, &is_text, &error)) << error;
  Subject s = make_vm_subject(p.config);
  model::Model model(p.config);
  return run_program(p, file, *s.system, model, s.observer.get(), eo);
}

TEST(OrdersCheck, EveryRaceTraceIsExplainedInAllOrders) {
  ExecOptions eo;
  eo.check_orders = true;
  uint64_t judged = 0, skipped = 0, traces = 0;
  for (const std::string& f : race_traces()) {
    RunSummary r = run_file(f, eo);
    EXPECT_TRUE(r.ok) << f << ": " << (r.failure ? format_failure(*r.failure) : r.unusable_reason);
    judged += r.orders.judged;
    skipped += r.orders.skipped;
    traces++;
  }
  EXPECT_GE(traces, 20u);
  std::printf("%llu race traces: %llu blocks judged in all orders, %llu not judged\n",
              static_cast<unsigned long long>(traces), static_cast<unsigned long long>(judged),
              static_cast<unsigned long long>(skipped));
  // Nearly every block is small enough to judge (race_absent_bound has more page ops).
  EXPECT_GE(judged, traces - 2) << "judged " << judged << ", not judged " << skipped;
}

// The race bugs, each on every race trace, with the linearization oracle blunted (runs not
// compared): what the all-orders check alone finds. Each bug that a divergence of results
// shows must be found by it somewhere.
TEST(OrdersCheck, FindsWhatABluntedLinearizationOracleHides) {
  ExecOptions blunt;
  blunt.unchecked_runs_for_test = true;
  ExecOptions with_orders = blunt;
  with_orders.check_orders = true;
  std::map<std::string, unsigned> found;  // bug -> traces where `orders` failed first
  for (unsigned b = 0; b < bugs::kBugCount; b++) {
    std::string name = bugs::bug_name(bugs::Bug(b));
    if (name != "data_error_zero_fills" && name != "fault_no_recheck" && name != "second_data_request") continue;
    bugs::set_bug(bugs::Bug(b), true);
    for (const std::string& f : race_traces()) {
      RunSummary r = run_file(f, with_orders);
      if (r.failure && r.failure->oracle == Oracle::orders) found[name]++;
    }
    bugs::set_bug(bugs::Bug(b), false);
  }
  for (const auto& [bug, n] : found) std::printf("orders found %s on %u race traces\n", bug.c_str(), n);
  // data_error taken as zero fill changes what a read returns: no order explains it.
  EXPECT_GE(found["data_error_zero_fills"], 1u);
  // And on the correct VM, blunted or not, nothing is found by `orders`.
  for (const std::string& f : race_traces()) {
    RunSummary r = run_file(f, with_orders);
    EXPECT_FALSE(r.failure && r.failure->oracle == Oracle::orders) << f << ": " << format_failure(*r.failure);
  }
}

}  // namespace
}  // namespace vmfuzz::harness
