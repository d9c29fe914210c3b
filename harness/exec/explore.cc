// explore.cc — the schedule explorers: PCT and the bounded-preemption search. Theory of
// operation: explore.h; docs/concurrency.md §Explorers.
#include "harness/exec/explore.h"

#include <algorithm>
#include <cassert>

#include "harness/exec/executor.h"
#include "harness/exec/report.h"

namespace vmfuzz::harness {

Op SchedAction::op() const {
  Op o;
  switch (kind) {
    case Kind::Run:
      o.kind = OpKind::Run;
      o.choice = static_cast<uint16_t>(id);
      o.choice_exact = true;
      break;
    case Kind::Reply:
      o.kind = OpKind::Reply;
      o.object = id;
      o.choice = static_cast<uint16_t>(index);
      o.choice_exact = true;
      o.how = ReplyHow::Supply;
      break;
    case Kind::Ready:
      o.kind = OpKind::Ready;
      o.object = id;
      break;
  }
  return o;
}

bool is_schedule_action(const Op& op) {
  switch (op.kind) {
    case OpKind::Run:
    case OpKind::Quiesce:
    case OpKind::Ready:
      return true;
    case OpKind::Reply:
      return op.how == ReplyHow::Supply;
    default:
      return false;
  }
}

Program strip_schedule(const Program& p) {
  Program out;
  out.config = p.config;
  out.has_config = p.has_config;
  out.source = p.source;
  for (size_t i = 0; i < p.ops.size(); i++) {
    if (is_schedule_action(p.ops[i])) continue;
    Op op = p.ops[i];
    if (op.kind == OpKind::Reply) op.choice_exact = false;  // unavailable / error: `~N`
    // The trace's own assertions were written for its own schedule; under another one the
    // model is the judge (every result is compared with it anyway).
    op.expect = Expect{};
    out.ops.push_back(op);
    out.lines.push_back(i < p.lines.size() ? p.lines[i] : 0);
  }
  return out;
}

unsigned count_preemptions(const Program& p) {
  unsigned n = 0;
  bool in_burst = false;
  for (const Op& op : p.ops) {
    if (is_schedule_action(op)) {
      in_burst = true;
    } else {
      if (in_burst) ++n;
      in_burst = false;
    }
  }
  return n;
}

// ---------------------------------------------------------------------------------------
// PCT

namespace {
uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
constexpr uint64_t kProgramEntity = 0;  // the program's own entity ("go on")
}  // namespace

PctChooser::PctChooser(uint64_t seed, unsigned depth, unsigned steps) : state_(seed) {
  // depth - 1 distinct change points among points 1..steps.
  const unsigned want = depth > 0 ? depth - 1 : 0;
  while (change_.size() < std::min<size_t>(want, steps)) {
    unsigned c = 1 + static_cast<unsigned>(next() % steps);
    if (std::find(change_.begin(), change_.end(), c) == change_.end()) change_.push_back(c);
  }
  std::sort(change_.begin(), change_.end());
  priority(kProgramEntity);
}

uint64_t PctChooser::next() { return splitmix(state_); }

int64_t PctChooser::priority(uint64_t entity) {
  auto it = prio_.find(entity);
  if (it != prio_.end()) return it->second;
  // Initial priorities are positive (a random place among the others); lowered ones are
  // negative, each below the one lowered before it.
  int64_t p = static_cast<int64_t>(next() >> 2) + 1;
  prio_.emplace(entity, p);
  return p;
}

int PctChooser::choose(PointKind where, const std::vector<SchedAction>& enabled) {
  // A point with one candidate (a drain with one action) is no decision: it is not
  // counted, so that change points fall where there is a choice (as the paper's
  // "sequential execution" remark, and Shuttle, have it).
  if (where == PointKind::Drain && enabled.size() == 1) return 0;
  ++point_;
  // Candidates: -1 is the program (not in a drain), i >= 0 is enabled[i]. Ties (never in
  // practice) go to the first candidate: deterministic.
  auto key_of = [&](int c) { return c < 0 ? kProgramEntity : enabled[static_cast<size_t>(c)].key; };
  auto best = [&]() {
    int b = where == PointKind::Drain ? 0 : -1;
    for (int c = b + 1; c < static_cast<int>(enabled.size()); ++c)
      if (priority(key_of(c)) > priority(key_of(b))) b = c;
    return b;
  };
  for (int c = where == PointKind::Drain ? 0 : -1; c < static_cast<int>(enabled.size()); ++c) priority(key_of(c));
  int b = best();
  if (std::binary_search(change_.begin(), change_.end(), point_)) {
    prio_[key_of(b)] = --low_;
    b = best();
  }
  return b;
}

// ---------------------------------------------------------------------------------------
// Running schedules

namespace {

void note_result(ExploreResult& r, const RunSummary& sum) {
  if (sum.unusable) {
    r.unusable = true;
    r.detail = sum.unusable_reason;
    return;
  }
  if (sum.ok) return;
  r.found = true;
  r.schedule = sum.schedule;
  r.preemptions = count_preemptions(sum.schedule);
  r.failure_text = sum.failure ? format_failure(*sum.failure) : std::string();
}

// Replays a prefix of option indices, then takes option 0 (go on, or the drain's default),
// recording every point's option count and choice.
class ReplayChooser final : public Chooser {
 public:
  struct Point {
    unsigned options = 0, choice = 0;
    bool op_point = false;  // a choice other than 0 here is a preemption
  };
  explicit ReplayChooser(std::vector<unsigned> prefix) : prefix_(std::move(prefix)) {}
  int choose(PointKind where, const std::vector<SchedAction>& enabled) override {
    Point pt;
    pt.options = static_cast<unsigned>(enabled.size()) + (where == PointKind::Drain ? 0u : 1u);
    pt.op_point = where == PointKind::Op;
    const size_t k = points.size();
    pt.choice = k < prefix_.size() ? prefix_[k] : 0;
    if (pt.choice >= pt.options) {  // the replay went elsewhere: the run is not deterministic
      diverged = true;
      pt.choice = 0;
    }
    points.push_back(pt);
    return where == PointKind::Drain ? static_cast<int>(pt.choice) : static_cast<int>(pt.choice) - 1;
  }
  std::vector<Point> points;
  bool diverged = false;

 private:
  std::vector<unsigned> prefix_;
};

}  // namespace

ExploreResult explore_pct(const Program& p, const ScheduleRunner& run, uint64_t schedules, unsigned depth,
                          uint64_t seed) {
  ExploreResult r;
  // Where change points may fall: the most points a schedule has had so far (a first
  // estimate from the program's length).
  unsigned steps = static_cast<unsigned>(std::max<size_t>(1, 2 * p.ops.size()));
  for (uint64_t i = 0; i < schedules; ++i) {
    uint64_t s = seed ^ (0x632be59bd9b4e019ULL * (i + 1));
    PctChooser chooser(splitmix(s), depth, steps);
    RunSummary sum = run(p, &chooser);
    r.schedules++;
    steps = std::max(steps, chooser.points());
    note_result(r, sum);
    if (r.found || r.unusable) return r;
  }
  return r;
}

ExploreResult explore_bounded(const Program& p, const ScheduleRunner& run, unsigned bound,
                              uint64_t max_schedules) {
  ExploreResult r;
  std::vector<unsigned> prefix;
  for (;;) {
    if (r.schedules >= max_schedules) {
      r.exhausted = false;
      return r;
    }
    ReplayChooser chooser(prefix);
    RunSummary sum = run(p, &chooser);
    r.schedules++;
    if (chooser.diverged) {
      r.unusable = true;
      r.detail = "the bounded search replayed a schedule prefix and met other choices: the run is not deterministic";
      return r;
    }
    note_result(r, sum);
    if (r.found || r.unusable) return r;
    // The next schedule, depth first: the last point with an untried option that keeps
    // the preemptions within the bound.
    const auto& pts = chooser.points;
    std::vector<unsigned> before(pts.size() + 1, 0);  // preemptions among points [0, j)
    for (size_t j = 0; j < pts.size(); ++j)
      before[j + 1] = before[j] + (pts[j].op_point && pts[j].choice != 0 ? 1u : 0u);
    size_t j = pts.size();
    while (j > 0) {
      --j;
      const unsigned cost = before[j] + (pts[j].op_point ? 1u : 0u);
      if (pts[j].choice + 1 < pts[j].options && cost <= bound) break;
      if (j == 0) {
        r.exhausted = true;
        return r;
      }
    }
    if (pts.empty()) {
      r.exhausted = true;
      return r;
    }
    prefix.clear();
    for (size_t k = 0; k < j; ++k) prefix.push_back(pts[k].choice);
    prefix.push_back(pts[j].choice + 1);
  }
}

}  // namespace vmfuzz::harness
