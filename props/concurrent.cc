// concurrent.cc — the concurrent state machine: a sequential prefix, then a concurrent
// block with a generated schedule (docs/concurrency.md), shrunk in both.
//
// Theory of operation
// -------------------
// The general state machine (state_machine.cc) draws every op from one distribution, so a
// held manager with two accesses waiting on it, a reply and a run in the right order is
// rare in it. Here every case has that shape by construction:
//
//   prefix   a memory object m0 (4 or 6 pages, copy strategy and persistence drawn, its
//            store filled), now and then its init held (`hold_init m0`, format 5),
//            mapped shared in t0 at 0x40000, a source page allocated at 0x80000; maybe a
//            fork (t1 maps it too); then a few sequential ops on the region (writes,
//            reads, pageout, manager_write, an unrequested `supply`);
//   block    `hold m0`, then a generated schedule: accesses of t0 and t1 on a few pages
//            of the region (the first two always accesses; some crossing a page end),
//            replies of every kind (supply, unavailable, error) to any pending request,
//            runs of any runnable thread, and now and then what a race needs in between:
//            destroy, deallocate of a page or of the whole region, protect, pageout,
//            manager_write, file, quiesce; and the format-5 ops and paths: `ready m0`
//            (always after the first two accesses when the init is held), and, in half
//            the cases, `supply`,
//            vm_copy over a page of the region or all of it, vm_read + vm_write over a
//            page (kernel ops that wait as kernel threads), and copies of it that read
//            without a fault (map copy, vm_copy from it).
//
// The program is a plain vector of steps, each a few small numbers, so rapidcheck shrinks
// the prefix, the block and every step (fewer steps, lower pages and choices, the simplest
// reply), and the counterexample trace is the executor's own, replayable by
// `ci/vmfuzz replay`. Every case runs with the all-orders check on (ExecOptions::
// check_orders), so each block of at most 4 page ops is also judged in every order.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "harness/exec/explore.h"
#include "harness/lang/text.h"
#include "reference_model/model.h"
#include "props/support/prop_support.h"
#include "vm/kernel.h"

namespace vmfuzz::props {
namespace {

namespace gen = rc::gen;

constexpr uint64_t kBase = 0x40000;

// One step: what it is, and its small arguments (each shrinks toward 0).
struct Step {
  unsigned kind = 0;    // see op_of
  unsigned page = 0;    // 0..5, modulo the object's pages
  unsigned where = 0;   // 0: page start, 1: mid-page, 2: crossing into the next page
  unsigned task = 0;    // 0: t0, 1: t1 (when forked)
  unsigned choice = 0;  // run ~N, reply ~N
  unsigned how = 0;     // reply: supply, unavailable, error
  unsigned byte = 0;    // written byte - 1
};

struct Shape {
  unsigned pages = 4;
  unsigned strategy = 0;  // none, delay, call
  bool persist = true;
  bool fork = false;
  bool init = false;  // hold_init m0 before the map; `ready m0` after the block's first two steps
  bool fmt5 = false;  // the format-5 steps (supply, ready, kernel paths, copies); else reads
  unsigned fill = 0;
  std::vector<Step> prefix, block;
};

rc::Gen<Step> gen_step(unsigned kinds) {
  return gen::apply(
      [](unsigned kind, unsigned page, unsigned where, unsigned task, unsigned choice, unsigned how, unsigned byte) {
        return Step{kind, page, where, task, choice, how, byte};
      },
      gen::inRange(0u, kinds), gen::inRange(0u, 6u), gen::inRange(0u, 3u), gen::inRange(0u, 2u),
      gen::inRange(0u, 3u), gen::inRange(0u, 3u), gen::inRange(0u, 255u));
}

rc::Gen<Shape> gen_shape() {
  return gen::apply(
      [](bool six, unsigned strategy, bool persist, bool fork, unsigned fill, std::vector<Step> prefix,
         std::vector<Step> block, unsigned init, bool fmt5) {
        Shape s;
        s.pages = six ? 6 : 4;
        s.strategy = strategy, s.persist = persist, s.fork = fork, s.fill = fill;
        s.init = init == 7;
        s.fmt5 = fmt5;
        s.prefix = std::move(prefix), s.block = std::move(block);
        return s;
      },
      gen::resize(100, gen::arbitrary<bool>()), gen::resize(100, gen::inRange(0u, 3u)),
      gen::resize(100, gen::arbitrary<bool>()), gen::resize(100, gen::arbitrary<bool>()),
      gen::inRange(0u, 255u),
      // The lengths scale with the size given here; each step's numbers use their whole
      // range (rapidcheck scales inRange with the size, so it is reset to the maximum).
      gen::resize(4, gen::container<std::vector<Step>>(gen::resize(100, gen_step(5)))),
      gen::resize(16, gen::container<std::vector<Step>>(gen::resize(100, gen_step(19)))),
      gen::resize(100, gen::inRange(0u, 8u)),  // 1 in 8: the init held
      gen::resize(100, gen::arbitrary<bool>()));
}

Op parse_line(const std::string& line) {
  Op op;
  std::string reason;
  const bool ok = parse_op_line(line, &op, &reason);
  RC_ASSERT(ok);  // a generator bug otherwise
  return canonical_op(op);
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// The trace lines of step s (prefix: kinds 0..4; block: 0..18), one or a few.
std::string line_of(const Shape& sh, const Step& s, bool in_block) {
  const unsigned page = s.page % sh.pages;
  const std::string t = "t" + std::to_string(sh.fork ? s.task : 0);
  uint64_t addr = kBase + page * kPageSize;
  if (s.where == 1) addr += kPageSize / 2;
  if (s.where == 2 && page + 1 < sh.pages) addr += kPageSize - 8;  // 16 bytes over the end
  const std::string a = hex(addr), pg = hex(kBase + page * kPageSize);
  const std::string b = hex(1 + s.byte);
  // Without the format-5 steps their kinds are reads (more faults for the older races).
  const unsigned kind = sh.fmt5 ? s.kind : !in_block ? (s.kind == 4 ? 1 : s.kind) : s.kind >= 16 ? s.kind - 16 : s.kind;
  static const char* const kHow[] = {"supply", "unavailable", "error"};
  if (!in_block) {
    switch (kind) {
      case 0: return "write " + t + " " + a + " fill:" + b + "*0x10";
      case 1: return "read " + t + " " + a + " 0x10";
      case 2: return "pageout all";
      case 3: return "manager_write m0 " + hex(page * kPageSize) + " fill:" + b + "*0x10";
      default: return "supply m0 " + hex(page * kPageSize);  // unrequested: the page may be dirty
    }
  }
  const std::string all = hex(sh.pages * kPageSize);
  switch (kind) {
    case 0: case 1: case 2: return "read " + t + " " + a + " 0x10";
    case 3: case 4: case 5: return "write " + t + " " + a + " fill:" + b + "*0x10";
    case 6: case 7: case 8: return "reply m0 ~" + std::to_string(s.choice) + " " + kHow[s.how];
    case 9: case 10: return "run ~" + std::to_string(s.choice);
    case 11: return "quiesce";
    case 12: return s.how == 0 ? "pageout all" : "manager_write m0 " + hex(page * kPageSize) + " fill:" + b + "*0x10";
    case 13: return s.how == 0 ? "destroy m0" : s.how == 1 ? "deallocate " + t + " " + hex(kBase) + " " + all
                                                           : "deallocate " + t + " " + pg + " 0x1000";
    case 14: return "protect " + t + " " + pg + " 0x1000 r--";
    case 15: return "file m0 " + hex(page * kPageSize) + " 0x10";
    case 16: return s.how == 0 ? "ready m0" : "supply m0 " + hex(page * kPageSize);
    case 17:  // a kernel op over the region: it waits as a kernel thread for a page in transit
      return s.how == 0   ? "vm_copy t0 0x80000 0x1000 " + pg
             : s.how == 1 ? "vm_copy t0 0x80000 " + all + " " + hex(kBase)
                          : "vm_read t0 0x80000 0x1000 c0\nvm_write t0 " + pg + " c0";  // c0 is free again at once
    default:  // a copy of a page of the region that reads it without a fault (no handle:
              // a text program must not bind one twice)
      return s.how == 0 ? "map t0 0x60000 " + all + " m0 0x0 copy\nread t0 0x60000 0x10"
                        : "vm_copy t0 " + pg + " 0x1000 0x80000\nread t0 0x80000 0x10";
  }
}

std::vector<Op> program_of(const Shape& sh) {
  static const char* const kStrategies[] = {"none", "delay", "call"};
  const std::string size = hex(sh.pages * kPageSize);
  std::vector<std::string> lines = {
      "object m0 " + size + " " + kStrategies[sh.strategy] + (sh.persist ? " persist" : " nopersist") +
          " pat:" + hex(sh.fill) + "*" + size};
  if (sh.init) lines.push_back("hold_init m0");
  lines.push_back("map t0 " + hex(kBase) + " " + size + " m0 0x0 share");
  lines.push_back("allocate t0 0x80000 " + size);  // a vm_copy source as large as the region
  if (sh.fork) lines.push_back("fork t0 t1");
  for (const Step& s : sh.prefix) lines.push_back(line_of(sh, s, false));
  lines.push_back("hold m0");
  // The block's first two steps are accesses (of the kind their number says, read or
  // write), so that most blocks have two faults on the held object.
  for (size_t i = 0; i < sh.block.size(); i++) {
    Step s = sh.block[i];
    if (i < 2) s.kind = s.kind % 2 ? 3 : 0;  // write or read
    lines.push_back(line_of(sh, s, true));
    if (i == 1 && sh.init) lines.push_back("ready m0");
  }
  std::vector<Op> ops;
  for (const std::string& text : lines)
    for (size_t start = 0; start <= text.size();) {
      const size_t end = std::min(text.find('\n', start), text.size());
      ops.push_back(parse_line(text.substr(start, end - start)));
      start = end + 1;
    }
  return ops;
}

// One case: the program through the executor, the all-orders check on.
void run_concurrent(const Shape& sh, const std::string& property) {
  harness::ExecOptions eo;
  eo.check_orders = true;
  SystemConfig cfg;
  PropSystem sys(cfg, property, {}, eo);
  for (const Op& op : program_of(sh)) sys.run(op);
  sys.finish();
  const auto& c = sys.kernel().counters();
  const harness::OrdersStats& o = sys.exec().orders_stats();
  RC_CLASSIFY(c.data_requests > 0, "request to the held manager");
  RC_CLASSIFY(c.thread_blocks > c.data_requests, "a fault waited beside a request");
  RC_CLASSIFY(c.data_requests > 4, "more requests than kAbsentMax");
  RC_CLASSIFY(o.judged > 0, "a block judged in all orders");
  RC_CLASSIFY(sh.init, "the init held until a ready");
  RC_CLASSIFY(c.inits_queued > 0 && c.thread_blocks > 0, "a fault waited for the held init");
}

// Q: with a held manager answering late, out of order, unavailable or error, and threads
//    run in any order among destroys, unmaps, pageouts and manager writes, do the VM's
//    results match the model at every linearization point and in some order of every
//    small block, with every step invariant holding and no deadlock?
VMFUZZ_PROP(ConcurrentStateMachine, PrefixThenBlock, 300, ()) {
  run_concurrent(*gen_shape(), current_property());
}

// Q: with the block's own schedule stripped, does every schedule PCT picks (seeded from the
//    case; 8 schedules of depth 3: priorities for the program, each thread and each
//    request, two change points) agree with the model, with no deadlock? The block keeps
//    its accesses, destroys, unmaps, pageouts and the manager's unavailable and error
//    answers; PCT decides when threads run and when requests are supplied
//    (docs/concurrency.md §Explorers). A failing schedule is the counterexample, as a
//    replayable trace with explicit run/reply lines.
VMFUZZ_PROP(ConcurrentStateMachine, PctSchedulesOfTheBlock, 100, ()) {
  const Shape sh = *gen_shape();
  const uint64_t seed = *gen::arbitrary<uint64_t>();
  Program p;
  p.ops = program_of(sh);
  const Program stripped = harness::strip_schedule(p);
  unsigned preempted = 0;
  harness::ScheduleRunner runner = [&](const Program& q, harness::Chooser* chooser) {
    harness::Subject vm = harness::make_vm_subject(q.config);
    model::Model model(q.config);
    harness::ExecOptions eo;
    eo.chooser = chooser;
    harness::RunSummary sum = harness::run_program(q, "case", *vm.system, model, vm.observer.get(), eo);
    preempted += harness::count_preemptions(sum.schedule) > 0;
    return sum;
  };
  harness::ExploreResult r = harness::explore_pct(stripped, runner, 8, 3, seed);
  RC_CLASSIFY(preempted > 0, "a schedule interrupted the program");
  if (r.unusable) RC_FAIL("unusable: " + r.detail + "\n" + print_program(stripped));
  if (r.found) {
    const std::string text = "# PCT schedule " + std::to_string(r.schedules) + " of the stripped case (seed " +
                             std::to_string(seed) + "), " + std::to_string(r.preemptions) + " preemptions\n" +
                             print_program(r.schedule);
    const std::string path = write_counterexample(current_property(), text);
    RC_FAIL(r.failure_text + text + "(written to " + path + ")");
  }
}

// Q: does every case have what it is for: a held manager asked, and mostly faults
//    waiting beside a request? (Counted over generated shapes; the state machine's own
//    generators ask a held manager in far fewer cases.)
TEST(ConcurrentStateMachine, EveryCaseHoldsAManagerAndMostWaitTwice) {
  unsigned asked = 0, waited = 0, judged = 0, n = 0;
  for (uint64_t seed = 0; seed < 100; seed++) {
    Shape sh = gen_shape()(rc::Random(seed + 1), 50).value();
    std::vector<Op> ops = program_of(sh);
    Program p;
    p.ops = ops;
    harness::Subject vm = harness::make_vm_subject(p.config), model = harness::make_model_subject(p.config);
    harness::ExecOptions eo;
    eo.check_orders = true;
    harness::RunSummary r = harness::run_program(p, "case", *vm.system, *model.system, vm.observer.get(), eo);
    ASSERT_TRUE(r.ok) << (r.failure ? harness::format_failure(*r.failure) : r.unusable_reason) << print_program(p);
    if (std::getenv("VMFUZZ_SHOW_CASES")) std::cout << print_program(p) << "---\n";
    const auto& c = static_cast<vm::Kernel&>(*vm.system).counters();
    n++;
    asked += c.data_requests > 0;
    waited += c.thread_blocks > c.data_requests;
    judged += r.orders.judged > 0;
  }
  std::cout << "of " << n << " cases: " << asked << " asked the held manager, " << waited
            << " had a fault wait beside a request, " << judged << " had a block judged in all orders\n";
  EXPECT_GE(asked * 10, n * 8);
  EXPECT_GE(waited * 10, n * 3);
  EXPECT_GE(judged * 10, n * 3);
}

}  // namespace
}  // namespace vmfuzz::props
