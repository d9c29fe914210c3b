// prop_support.h — what every rapidcheck property suite of vmfuzz shares: the model
// state and the command of the state machine, the biased op generators, the system under
// test (the VM judged by the harness Executor), counterexample traces, and per-property
// case counts.
//
// Theory of operation
// -------------------
// The property suites drive the operation language of docs/language.md through the same
// differential Executor as every other engine (harness/exec/executor.h), so each op compares
// the VM's result with the reference model's and runs the per-op oracles; the end of a
// run is the executor's full check and teardown. rapidcheck contributes generation,
// shrinking and reproduction; its state machine (rc::state) is used as rapidcheck's
// doc/state.md describes:
//
//   OpState     the *model state* of rc::state: the configuration, which names exist
//               (NameState, the executor's own name semantics), the ops applied so far
//               and the generation bias. It is a plain
//               value, copied freely by rapidcheck.
//   OpCommand   one command = one Op (a value type, as in Cryptofuzz). Its arguments are
//               drawn with the OpState as a hint; checkPreconditions re-checks that the
//               op is usable in the state it is applied to (names alive or free by
//               NameState::check, cpu in range, the bias's fences), so
//               shrinking, which drops and changes commands, never produces unusable
//               input; apply advances the names; run steps the Executor; show prints the
//               op exactly as a trace line (print_op).
//   PropSystem  the system under test: a fresh vm::Kernel (optionally wrapped by a test
//               decorator), a fresh reference model and an Executor over both. Every op
//               it runs is recorded, so that a failure prints and writes the program so
//               far as a text trace that `ci/vmfuzz replay` runs unchanged.
//
// Names follow results. A vm_read binds its handle only when it succeeds, and only the
// reference model can say whether it will: OpState::apply replays the ops applied so far
// on a scratch reference model when (and only when) it applies a vm_read. Every other
// op's effect on names does not depend on its result.
//
// Counterexamples. When a property fails, the program that failed (config line and ops,
// with `#` comments for actions that are not ops) is written to
// `$VMFUZZ_PROPS_OUT/rc-counterexample-<property>.trace`, or to the current directory
// when VMFUZZ_PROPS_OUT is unset (ctest runs in the build tree); never into corpus/.
// rapidcheck re-runs the minimal case last, so the file ends up holding the shrunk
// program. Its path and text are part of the failure message.
//
// Before the failure is reported, the trace is parsed back and compared with the ops
// that ran (an op the text form cannot say exactly would make the trace lie).
//
// Case counts and seeds. VMFUZZ_PROP(Suite, Name, N, (args)) is RC_GTEST_PROP with a
// per-property default of N successful cases (N / kSanitizedCaseDivisor under ASan) and a
// seed derived from the property's name, so a default run is deterministic;
// RC_PARAMS="max_success=... seed=..." in the environment wins (ci/vmfuzz test --deep),
// and RC_PARAMS="reproduce=..." replays a failure.
//
// Unknown bytes. After a memory object is destroyed, the model marks its shared memory
// unknown and the VM's bytes there are undefined (docs/language.md §Details 13): every image
// compared by a property leaves those pages out (task_image's `model` argument).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/state.h>

#include "harness/exec/executor.h"
#include "harness/lang/names.h"
#include "harness/lang/program.h"
#include "vmfuzz/vocab.h"

namespace vmfuzz::vm {
class Kernel;
}

namespace vmfuzz {
/// rapidcheck's printer for a configuration (found by ADL): the trace's `config` line.
void showValue(const SystemConfig& config, std::ostream& os);
}  // namespace vmfuzz

namespace vmfuzz::props {

/// The address window most generated addresses fall in: few pages, so that ops collide.
inline constexpr uint64_t kWindow = 0x10000;

/// How programs are biased. Weights are per op kind (0: never generated).
struct Bias {
  std::array<unsigned, kOpKindCount> weight{};
  unsigned window_pages = 24;      // addresses mostly in [kWindow, kWindow + pages*4096)
  uint16_t forbidden_tasks = 0;    // ops may not name these tasks (isolation properties)
  uint16_t forbidden_copies = 0;   // ops may not name these copy handles
  bool forbid_objects = false;     // no object ops at all
  // A fence: writes into [fence_lo, fence_hi) of fence_task are allowed even when the
  // task is forbidden (vm_copy isolation: one task holds both sides of the copy).
  int fence_task = -1;
  uint64_t fence_lo = 0, fence_hi = 0;

  static Bias mixed();       // every op, the weights of a typical program
  static Bias chains();      // fork / write / terminate on 4 pages: deep shadow chains
  static Bias copies();      // vm_read / vm_write / copyout / vm_copy / fork: many copies
  static Bias objects();     // memory objects, mappings, manager writes, pageout
  static Bias setup();       // writes, forks, vm_copy, reads: no op that unmaps or ends
  static Bias snapshots();   // share, fork, vm_read, write, pageout on 6 pages: copy objects under pressure
  static Bias concurrency(); // held managers, accesses that wait, replies and the schedule
                             // (docs/concurrency.md) over mapped memory objects
};

/// The rc::state model state (see the top of this file).
struct OpState {
  SystemConfig config;
  NameState names;
  std::vector<Op> history;              // every op applied, in order
  // A hint only (generation reads it, correctness never depends on it): per task, the
  // window pages (bit i: kWindow + i*4096, i < 64) it probably has mapped, guessed from
  // allocate/map/deallocate/fork/terminate without knowing their results.
  std::array<uint64_t, kMaxNames> mapped_hint{};
  std::shared_ptr<const Bias> bias;

  OpState(const SystemConfig& cfg, Bias b);

  /// Whether `op` may run now: the executor's name rules (NameState::check) and the
  /// bias's forbidden names and fence.
  std::optional<std::string> unusable(const Op& op) const;
  /// Advance the names past `op` (which must be usable), as the executor would.
  void apply(const Op& op);
};

/// Purpose:    A generator of one op that is usable in `s` (per s.bias), biased to the
///             corners (few pages, page crossings, edges of user space, huge sizes).
/// Conditions: captures `s` by value; the op is canonical (canonical_op(op) == op).
rc::Gen<Op> gen_op(const OpState& s);

class PropSystem;

/// One state-machine command: one op (see the top of this file).
class OpCommand final : public rc::state::Command<OpState, PropSystem> {
 public:
  explicit OpCommand(Op op);
  void checkPreconditions(const OpState& s) const override;
  void apply(OpState& s) const override;
  void run(const OpState& s, PropSystem& sys) const override;
  void show(std::ostream& os) const override;
  const Op& op() const { return op_; }

 private:
  Op op_;
};

using OpCommands = rc::state::Commands<rc::state::Command<OpState, PropSystem>>;

/// The generation function of rc::state::check / gen::commands.
rc::Gen<std::shared_ptr<const rc::state::Command<OpState, PropSystem>>> gen_command(const OpState& s);

/// A command of several ops: one shaped sequence (harness/lang/op_shapes.h), its names
/// chosen for the state it was drawn in. checkPreconditions re-checks every op in turn
/// (shrinking drops commands before it); show prints one trace line per op.
class SequenceCommand final : public rc::state::Command<OpState, PropSystem> {
 public:
  explicit SequenceCommand(std::vector<Op> ops);
  void checkPreconditions(const OpState& s) const override;
  void apply(OpState& s) const override;
  void run(const OpState& s, PropSystem& sys) const override;
  void show(std::ostream& os) const override;
  const std::vector<Op>& ops() const { return ops_; }

 private:
  std::vector<Op> ops_;
};

/// The generation function of StateMachine.ShapedSequences: one part in five a whole
/// shaped sequence (a family of op_shapes.h; names that are dead or taken in `s` move to
/// the next usable slot, as the codec's decoder moves them), otherwise gen_command's op.
rc::Gen<std::shared_ptr<const rc::state::Command<OpState, PropSystem>>> gen_shaped_command(const OpState& s);

/// The ops of a command sequence (one per OpCommand, all of each SequenceCommand).
std::vector<Op> ops_of(const OpCommands& cmds);


/// A rapidcheck listener that records nothing (self-tests whose failure is expected
/// must not leave reproduce strings in the report of the run).
class QuietListener final : public rc::detail::TestListener {
 public:
  void onTestCaseFinished(const rc::detail::CaseDescription&) override {}
  void onShrinkTried(const rc::detail::CaseDescription&, bool) override {}
  void onTestFinished(const rc::detail::TestMetadata&, const rc::detail::TestResult&) override {}
};

/// Wraps the VM for self-tests (a decorator that injects a bug); gets the kernel.
using Decorator = std::function<std::unique_ptr<MemorySystem>(MemorySystem& kernel)>;

/// The system under test (see the top of this file).
class PropSystem {
 public:
  /// Purpose:    A fresh VM and reference model for `config`, an Executor over them.
  /// Conditions: `property` names the counterexample file; `wrap` (may be empty) wraps
  ///             the VM side. exit: t0 exists on both sides.
  ///             `wrap_model` (may be empty) wraps the model side (self-tests that need
  ///             a bug both sides share, which only a property's own claim can catch).
  PropSystem(const SystemConfig& config, std::string property, const Decorator& wrap = {},
             harness::ExecOptions options = {}, const Decorator& wrap_model = {});
  ~PropSystem();
  PropSystem(const PropSystem&) = delete;
  PropSystem& operator=(const PropSystem&) = delete;

  /// Purpose:    Run one op through the executor and record it.
  /// Results:    the step; on Failed or Unusable, writes the counterexample and fails
  ///             the property (RC_FAIL), so this returns only Ran or Skipped.
  enum class Outcome : uint8_t { Ran, Skipped };
  Outcome run(const Op& op);
  /// End of program: the executor's full check and teardown; fails the property if any
  /// oracle fires.
  void finish();
  /// Record a `#` comment line in the trace before the next op (actions that are not ops).
  void note(const std::string& text);
  /// Fail the property with `what`, writing the counterexample (plus `extra` trace lines,
  /// e.g. assertions that make the replay fail where the property did).
  [[noreturn]] void fail(const std::string& what, const std::vector<std::string>& extra = {});

  /// The trace of what ran so far (header comments, config line, ops).
  std::string trace(const std::vector<std::string>& extra = {}) const;
  const SystemConfig& config() const { return config_; }
  const std::vector<Op>& ops() const { return ops_; }
  /// Per-op VM results as trace text (format_result), one per op run.
  const std::vector<std::string>& results() const { return results_; }
  harness::Executor& exec() { return *exec_; }
  MemorySystem& vm() { return *vm_side_; }
  MemorySystem& model() { return *model_side_; }
  vm::Kernel& kernel();

 private:
  SystemConfig config_;
  std::string property_;
  harness::Subject vm_;
  harness::Subject model_;
  std::unique_ptr<MemorySystem> wrapper_, model_wrapper_;
  MemorySystem* vm_side_ = nullptr;
  MemorySystem* model_side_ = nullptr;
  std::unique_ptr<harness::Executor> exec_;
  std::vector<Op> ops_;
  std::vector<std::string> results_;
  std::vector<std::pair<size_t, std::string>> notes_;  // (op index it precedes, text)
};

/// Purpose:    Write a counterexample trace. Results: the path written (see the top).
std::string write_counterexample(const std::string& property, const std::string& text);
/// The path a property's counterexample goes to.
std::string counterexample_path(const std::string& property);

/// Everything task t can see, page by page, as one side reports it (peek_page: no side
/// effects): page address -> status and bytes. Regions are included as a text line.
struct TaskImage {
  std::vector<RegionInfo> regions;
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> pages;  // mapped, non-zero pages
  std::vector<uint64_t> unknown;                                 // pages marked Unknown
  bool operator==(const TaskImage&) const = default;
};
/// With `model` non-null, pages the model marks Unknown (a destroyed object's memory,
/// docs/language.md §Details 13) are left out: their contents are undefined on the VM, so no
/// property may compare them.
TaskImage task_image(const MemorySystem& side, unsigned t, const MemorySystem* model = nullptr);
/// The bytes of [lo, hi) in task t as one side sees them (peek_page; unmapped and unknown
/// pages read as 0xee so that they differ from zero memory).
std::vector<uint8_t> range_image(const MemorySystem& side, unsigned t, uint64_t lo, uint64_t hi);
/// The store of memory object m (pages with non-zero bytes); with `model`, without the
/// pages the model marks unknown.
std::vector<std::pair<uint64_t, std::vector<uint8_t>>> object_image(const MemorySystem& side, unsigned m,
                                                                      const MemorySystem* model = nullptr);

/// The VM's counters as one line "faults=3 zero_fills=1 ..." (for determinism checks).
std::string counters_text(const vm::Kernel& k);

/// Make `op` a usable op in `sys` and `s`, run it, and apply it: for the fixed steps of a
/// targeted property. Fails the property (RC_FAIL) if the op is not usable.
PropSystem::Outcome run_fixed(PropSystem& sys, OpState& s, const Op& op);
/// Run a generated command sequence on sys and apply it to s.
void run_commands(PropSystem& sys, OpState& s, const OpCommands& cmds);

/// "Suite.Name" of the running GoogleTest (the property's name in file names).
std::string current_property();

/// Under ASan (the fuzz preset), default case counts are divided by this.
inline constexpr int kSanitizedCaseDivisor = 5;

/// Test parameters of a property: rapidcheck's configuration (RC_PARAMS), with
/// max_success = default_max_success (divided by kSanitizedCaseDivisor under ASan)
/// unless RC_PARAMS sets it, and a seed derived from the property's id unless RC_PARAMS
/// sets one (a default run is deterministic).
rc::detail::TestParams prop_params(int default_max_success, const std::string& id);

/// The rapidcheck listener that prints reproduce strings at exit (rapidcheck's own).
rc::detail::TestListener& global_listener();

/// RC_GTEST_PROP's body with a per-property default case count.
template <typename Testable>
void check_gtest(Testable&& testable, int default_max_success) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  rc::detail::TestMetadata metadata;
  metadata.id = std::string(info->test_case_name()) + "/" + std::string(info->name());
  metadata.description = std::string(info->name());
  const auto result = rc::detail::checkProperty(rc::detail::toProperty(std::forward<Testable>(testable)), metadata,
                                                prop_params(default_max_success, metadata.id), global_listener(),
                                                rc::detail::configuration().reproduce);
  std::ostringstream ss;
  rc::detail::printResultMessage(result, ss);
  std::cout << metadata.id << ": seed " << prop_params(default_max_success, metadata.id).seed << " (fixed unless RC_PARAMS sets seed=)\n";
  if (result.template is<rc::detail::SuccessResult>()) {
    std::cout << ss.str() << std::endl;
  } else {
    FAIL() << ss.str() << std::endl;
  }
}

}  // namespace vmfuzz::props

/// Defines a rapidcheck property as a GoogleTest with a default of MAX_SUCCESS cases.
#define VMFUZZ_PROP(Suite, Name, MAX_SUCCESS, ArgList)                                  \
  void vmfuzz_prop_##Suite##_##Name ArgList;                                            \
  TEST(Suite, Name) { ::vmfuzz::props::check_gtest(&vmfuzz_prop_##Suite##_##Name, MAX_SUCCESS); } \
  void vmfuzz_prop_##Suite##_##Name ArgList
