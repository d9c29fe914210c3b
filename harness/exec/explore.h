// explore.h — schedule explorers: who runs next, at every scheduling point.
//
// Theory of operation
// -------------------
// A program's schedule is explicit (`run`, `reply`, `ready`, `quiesce`, the final drain).
// An explorer replaces it: the program's own schedule is stripped (strip_schedule) and a
// Chooser decides at every **scheduling point** (docs/concurrency.md §Explorers):
//
//   - after every op of the program but the last (an "op point"): the chooser may let the
//     program go on (its next op), or perform one enabled action;
//   - after every action it performed (an "action point"): the same choice;
//   - at every step of a drain (`quiesce`, the final drain): it must pick an action; the
//     drain's own default (runnable thread with the lowest id, else the first manager's
//     oldest message) is option 0.
//
// The **enabled actions** at a point are, in this order: every runnable kernel thread
// (`run N`) by id, then for every manager that is not silent, by name: its pending
// memory_object_init (`ready M`), then its pending data requests in arrival order
// (`reply M N supply`). Threads are whatever the scheduler holds (user accesses today,
// kernel operations tomorrow): the explorers see only actions and entity keys.
//
// A **preemption** is a choice, at an op point, of anything but "go on": the program was
// still able to run and was interrupted. After an action its entity is not enabled (a
// thread runs until it blocks or completes; a request or init answered is gone), so every
// choice at an action point or in a drain is free. A schedule's preemption count is then
// the number of bursts of actions placed between two ops of the program.
//
// Every performed action is an explicit schedule op, so a schedule prints as a replayable
// trace: the program's ops with `run N` / `reply M N supply` / `ready M` lines between them
// (RunSummary::schedule). Three choosers: the program's own (no chooser: the explicit ops
// run as written), PCT (PctChooser), and the bounded-preemption search (explore_bounded's
// replay chooser). vm_diff's decoded choices do not go through here.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "harness/lang/program.h"
#include "vmfuzz/vocab.h"

namespace vmfuzz::harness {

struct RunSummary;

/// One enabled action at a scheduling point.
struct SchedAction {
  enum class Kind : uint8_t { Run, Reply, Ready };
  Kind kind = Kind::Run;
  unsigned id = 0;     // Run: the thread id; Reply, Ready: the manager (memory object name)
  unsigned index = 0;  // Reply: the request's place in the manager's queue (0 = oldest)
  /// Stable identity of the entity across points: the thread id, the request's kernel-wide
  /// id, or the manager for its init (PCT gives each entity one priority).
  uint64_t key = 0;
  /// The explicit schedule op that performs it: `run N`, `reply M N supply`, `ready M`.
  Op op() const;
  bool operator==(const SchedAction&) const = default;
};

/// Where a scheduling point is (see the top of this file).
enum class PointKind : uint8_t { Op, Action, Drain };

/// Decides at every scheduling point.
class Chooser {
 public:
  virtual ~Chooser() = default;
  /// `enabled` is never empty. Op and Action points: -1 lets the program go on, else the
  /// index of the action to perform. Drain points: an index (-1 means 0, the default).
  virtual int choose(PointKind where, const std::vector<SchedAction>& enabled) = 0;
};

/// Purpose:    The program without its own schedule: `run`, `quiesce`, `ready` and
///             `reply ... supply` removed; `reply M N unavailable|error` (what the
///             manager answers, not when) kept, made modular (`~N`) so that it stays usable
///             whatever the schedule (with no pending request it does nothing). The ops'
///             own assertions (`==`, `=>`) go too: they were written for the trace's
///             schedule, and the model judges every result under any other.
Program strip_schedule(const Program& p);

/// Is op one of the schedule actions an explorer places (run, reply supply, ready, quiesce)?
bool is_schedule_action(const Op& op);

/// Purpose:    The preemption count of an explicit schedule: bursts of schedule actions
///             followed by an op of the program (a burst after the last op is the drain's).
unsigned count_preemptions(const Program& p);

/// PCT (Burckhardt, Kothari, Musuvathi, Nagarakatte, ASPLOS 2010): every entity (the
/// program, each thread, each request, each init) gets a random priority when first seen;
/// at every point the highest-priority candidate runs; at depth-1 change points, chosen
/// among the first `steps` points, the candidate about to run drops below every other.
/// Only points with two candidates or more count (a drain with one action is no choice).
class PctChooser final : public Chooser {
 public:
  /// One schedule: `seed` decides everything; `steps` bounds where change points fall.
  PctChooser(uint64_t seed, unsigned depth, unsigned steps);
  int choose(PointKind where, const std::vector<SchedAction>& enabled) override;
  unsigned points() const { return point_; }

 private:
  uint64_t next();                   // splitmix64
  int64_t priority(uint64_t entity);  // assigned on first sight
  uint64_t state_;
  std::map<uint64_t, int64_t> prio_;  // entity -> priority (higher runs first)
  std::vector<unsigned> change_;      // points at which a change happens (ascending)
  unsigned point_ = 0;
  int64_t low_ = 0;                   // the next lowered priority (below every initial one)
};

/// Run one program under a chooser (fresh VM and model): run_program with the chooser.
using ScheduleRunner = std::function<RunSummary(const Program& p, Chooser* chooser)>;

struct ExploreResult {
  uint64_t schedules = 0;          // schedules run
  bool found = false;              // a schedule failed
  bool unusable = false;           // the program is unusable input (reason in `detail`)
  bool exhausted = true;           // bounded: every schedule within the bound was run
  std::string detail;
  Program schedule;                // found: the failing schedule as an explicit trace
  unsigned preemptions = 0;        // found: its preemption count
  std::string failure_text;        // found: the report (format_failure)
};

/// Purpose:    PCT over `schedules` schedules of p (already stripped), seeds derived from
///             `seed` and the schedule's number; stops at the first failing one.
ExploreResult explore_pct(const Program& p, const ScheduleRunner& run, uint64_t schedules, unsigned depth,
                          uint64_t seed);

/// Purpose:    Every schedule of p (already stripped) with at most `bound` preemptions,
///             depth first in option order (option 0 first: go on, or the drain's
///             default); stops at the first failing one, or after `max_schedules`
///             (then exhausted is false).
ExploreResult explore_bounded(const Program& p, const ScheduleRunner& run, unsigned bound,
                              uint64_t max_schedules);

}  // namespace vmfuzz::harness
