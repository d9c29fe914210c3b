// explore_test.cc — the schedule explorers (harness/exec/explore.h): PCT is deterministic for
// a seed and varies the schedule, the bounded search counts what a hand count gives, a
// catalogue race bug is found by each from a trace whose schedule was stripped, the
// failing schedule replays to the same finding, and the correct VM survives both.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness/exec/executor.h"
#include "harness/exec/explore.h"
#include "harness/lang/text.h"
#include "reference_model/model.h"
#include "vm/machine/bugs.h"

namespace vmfuzz::harness {
namespace {

namespace fs = std::filesystem;

Program parse_text(const std::string& text) {
  Program p;
  ParseError err;
  EXPECT_TRUE(parse_trace(text, "test.trace", &p, &err)) << err.what();
  return p;
}

Program load_trace(const std::string& name) {
  std::ifstream in(fs::path(VMFUZZ_SOURCE_DIR) / "corpus" / "traces" / name);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_FALSE(ss.str().empty()) << name;
  return parse_text(ss.str());
}

// Runs a program on a fresh VM and model under the chooser; keeps every schedule it ran.
struct Runner {
  std::vector<std::string> schedules;
  ScheduleRunner fn() {
    return [this](const Program& p, Chooser* chooser) {
      Subject s = make_vm_subject(p.config);
      model::Model model(p.config);
      ExecOptions eo;
      eo.chooser = chooser;
      RunSummary sum = run_program(p, "test.trace", *s.system, model, s.observer.get(), eo);
      schedules.push_back(print_program(sum.schedule));
      return sum;
    };
  }
};

struct BugOn {
  explicit BugOn(bugs::Bug b) : b_(b) { bugs::set_bug(b, true); }
  ~BugOn() { bugs::set_bug(b_, false); }
  bugs::Bug b_;
};

// The failing schedule, replayed as a plain trace (no chooser), fails with the same oracle.
std::optional<Oracle> replay_oracle(const Program& schedule) {
  Program p = parse_text(print_program(schedule));
  Subject s = make_vm_subject(p.config);
  model::Model model(p.config);
  RunSummary sum = run_program(p, "schedule.trace", *s.system, model, s.observer.get(), ExecOptions{});
  EXPECT_FALSE(sum.unusable) << sum.unusable_reason;
  if (!sum.failure) return std::nullopt;
  return sum.failure->oracle;
}

TEST(Explore, StripKeepsWhatTheManagerAnswersAndDropsWhenAndAssertions) {
  Program p = parse_text(
      "object m0 0x2000 none persist\n"
      "map t0 0x40000 0x2000 m0 0x0 share\n"
      "hold m0\n"
      "read t0 0x40000 4 == \"abcd\"\n"
      "reply m0 0 supply\n"
      "run 1\n"
      "read t0 0x41000 4\n"
      "reply m0 0 error\n"
      "quiesce\n");
  Program s = strip_schedule(p);
  EXPECT_EQ(print_program(s),
            "object m0 0x2000 none persist\n"
            "map t0 0x40000 0x2000 m0 0x0 share\n"
            "hold m0\n"
            "read t0 0x40000 0x4\n"
            "read t0 0x41000 0x4\n"
            "reply m0 ~0 error\n");
  // One burst (reply, run) between two ops of the program; the quiesce at the end is the
  // drain's and costs nothing.
  EXPECT_EQ(count_preemptions(p), 1u);
  EXPECT_EQ(count_preemptions(s), 0u);
}

TEST(Explore, PctWithAFixedSeedIsDeterministicAndVariesTheSchedule) {
  Program p = strip_schedule(load_trace("race_out_of_order_replies.trace"));
  Runner a, b, c;
  ExploreResult ra = explore_pct(p, a.fn(), 50, 3, 7);
  ExploreResult rb = explore_pct(p, b.fn(), 50, 3, 7);
  ExploreResult rc = explore_pct(p, c.fn(), 50, 3, 8);
  EXPECT_FALSE(ra.found) << ra.failure_text;
  EXPECT_EQ(ra.schedules, 50u);
  EXPECT_EQ(a.schedules, b.schedules);  // same seed: the same 50 schedules, in order
  std::set<std::string> distinct(a.schedules.begin(), a.schedules.end());
  EXPECT_GE(distinct.size(), 5u) << "PCT should try different schedules";
  EXPECT_NE(a.schedules, c.schedules);  // another seed: other schedules
}

// Two reads of two pages of one held manager: the hand count of docs/concurrency.md
// §Explorers (6 schedules without preemption, 4 more with one, none needs two).
TEST(Explore, BoundedSearchCountsTheHandCheckedSchedules) {
  Program p = parse_text(
      "object m0 0x2000 none persist\n"
      "map t0 0x40000 0x2000 m0 0x0 share\n"
      "hold m0\n"
      "read t0 0x40000 4\n"
      "read t0 0x41000 4\n");
  const uint64_t want[] = {6, 10, 10};
  for (unsigned bound = 0; bound <= 2; ++bound) {
    Runner r;
    ExploreResult res = explore_bounded(p, r.fn(), bound, 1000);
    EXPECT_FALSE(res.found) << res.failure_text;
    EXPECT_TRUE(res.exhausted);
    EXPECT_EQ(res.schedules, want[bound]) << "bound " << bound;
    std::set<std::string> distinct(r.schedules.begin(), r.schedules.end());
    EXPECT_EQ(distinct.size(), r.schedules.size()) << "a schedule was run twice";
    for (const std::string& s : r.schedules) EXPECT_LE(count_preemptions(parse_text(s)), bound) << s;
  }
  // The cap stops the search and says so.
  Runner r;
  ExploreResult capped = explore_bounded(p, r.fn(), 1, 4);
  EXPECT_FALSE(capped.exhausted);
  EXPECT_EQ(capped.schedules, 4u);
}

TEST(Explore, EachExplorerFindsACatalogueRaceBugFromAStrippedTrace) {
  if (!bugs::bugs_compiled_in()) GTEST_SKIP() << "bugs are not compiled in";
  Program p = strip_schedule(load_trace("race_error_then_refault.trace"));
  {
    // The correct VM first: no schedule fails.
    Runner r;
    EXPECT_FALSE(explore_pct(p, r.fn(), 200, 3, 0).found);
    EXPECT_FALSE(explore_bounded(p, r.fn(), 1, 10000).found);
  }
  BugOn on(bugs::Bug::FaultNoRecheck);
  Runner r;
  ExploreResult pct = explore_pct(p, r.fn(), 1000, 3, 0);
  ASSERT_TRUE(pct.found);
  EXPECT_EQ(pct.preemptions, count_preemptions(pct.schedule));
  EXPECT_TRUE(replay_oracle(pct.schedule).has_value()) << print_program(pct.schedule);
  ExploreResult bounded = explore_bounded(p, r.fn(), 0, 10000);
  ASSERT_TRUE(bounded.found);
  EXPECT_EQ(bounded.preemptions, 0u);
  EXPECT_TRUE(replay_oracle(bounded.schedule).has_value()) << print_program(bounded.schedule);
}

// Always the default: go on at op points, option 0 in drains.
class DefaultChooser final : public Chooser {
 public:
  int choose(PointKind where, const std::vector<SchedAction>& enabled) override {
    EXPECT_FALSE(enabled.empty());
    ++points;
    return where == PointKind::Drain ? 0 : -1;
  }
  unsigned points = 0;
};

// The kernel threads' runs, in the order the VM reports them.
class StepLog final : public ForwardingSystem {
 public:
  using ForwardingSystem::ForwardingSystem;
  std::vector<ThreadStep> take_steps() override {
    std::vector<ThreadStep> s = ForwardingSystem::take_steps();
    for (const ThreadStep& st : s) log += std::to_string(st.thread) + (st.blocked ? "b " : "c ");
    return s;
  }
  std::string log;
};

// Option 0 of a drain point is what the drain does by itself (the enabled order is
// quiesce_step's): the default chooser changes nothing in any race trace, written schedule
// and all — the same runs in the same order, the same verdict.
TEST(Explore, OptionZeroOfADrainIsTheDrainsOwnStep) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(VMFUZZ_SOURCE_DIR) / "corpus" / "traces"))
    if (e.path().filename().string().rfind("race_", 0) == 0) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  unsigned drained = 0;  // traces where the chooser was consulted
  for (const fs::path& f : files) {
    Program p = load_trace(f.filename().string());
    std::string logs[2];
    bool ok[2] = {false, false};
    for (int with = 0; with < 2; ++with) {
      Subject s = make_vm_subject(p.config);
      StepLog vm(*s.system);
      model::Model model(p.config);
      DefaultChooser chooser;
      ExecOptions eo;
      if (with) eo.chooser = &chooser;
      RunSummary sum = run_program(p, "t.trace", vm, model, s.observer.get(), eo);
      ok[with] = sum.ok;
      logs[with] = vm.log;
      if (with && chooser.points > 0) ++drained;
    }
    EXPECT_EQ(ok[0], ok[1]) << f;
    EXPECT_TRUE(ok[0]) << f;
    EXPECT_EQ(logs[0], logs[1]) << f;
  }
  EXPECT_GE(drained, 10u) << "the chooser should be consulted in most race traces";
}

TEST(Explore, TheCorrectVmSurvivesTheExplorersOverTheRaceTraces) {
  unsigned traces = 0;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(VMFUZZ_SOURCE_DIR) / "corpus" / "traces"))
    if (e.path().filename().string().rfind("race_", 0) == 0) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    Program p = strip_schedule(load_trace(f.filename().string()));
    Runner r;
    ExploreResult pct = explore_pct(p, r.fn(), 100, 3, 1);
    EXPECT_FALSE(pct.found || pct.unusable) << f << "\n" << print_program(pct.schedule) << pct.failure_text << pct.detail;
    ExploreResult b = explore_bounded(p, r.fn(), 1, 2000);
    EXPECT_FALSE(b.found || b.unusable) << f << "\n" << print_program(b.schedule) << b.failure_text << b.detail;
    ++traces;
  }
  EXPECT_GE(traces, 39u);  // the race_*.trace files of corpus/traces
}

}  // namespace
}  // namespace vmfuzz::harness
