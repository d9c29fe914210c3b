// executor.h — the differential executor: one op on both sides, and every oracle.
//
// Theory of operation
// -------------------
// An `Executor` holds two `MemorySystem`s — the subject ("vm", normally vm::Kernel) and
// the reference ("model", normally model::Model) — and the `NameState` of the op language.
// `step(op)` runs one op:
//
//   1. names: NameState::check(op) (the name, cpu and initial-contents rules of
//      docs/language.md); a failure is unusable input (Step::Unusable, reason in
//      unusable_reason()).
//   2. the op runs on the model, then on the VM (user accesses: VM first, so that an access
//      the VM stopped with KERN_MEMORY_ERROR at an unknown byte stops there on the model
//      too; see run_model_access).
//   3. assertions: every `==`/`=>` written on the op is checked against the model, then
//      against the VM (oracle "assertion", sub = the side that broke it).
//   4. results: codes, fault address, returned address (allocate/map `any`, copyout),
//      bytes of read/file except where the model marks them unknown (oracle
//      "result_mismatch").
//   5. names are advanced with the MODEL's result (the model is the authority on which
//      handles exist).
//   6. VM oracles after every op: TLB coherence and the machine's fault-loop detector.
//   7. a full check at `check`, and every `full_check_every` ops if non-zero.
//
// Concurrency (docs/concurrency.md). A user access the VM could not finish because it
// waits for a held manager comes back in flight (Access::thread): the model runs only the
// part the VM moved, and the access goes on as a kernel thread. Every later run of a
// thread (ThreadStep, from `run`, `quiesce` and the drain at the end) is applied to the
// model at once, at its place in the run order — the run is the linearization point of
// the pages it moves — and compared (oracle linearization); the op's own assertions are
// checked when its last run completes it. `reply` tells the model what a manager's answer
// changes (data_unavailable: the manager forgets the page, as manager_write of zeros
// would say it). After every op and every scheduler step the step invariants run. Before
// the final check, everything is drained (deadlock: threads left with nothing to run).
//
// A full check compares, without side effects (peek_page / peek_object_page): regions(t)
// of every live task; the union of both sides' pages_of_interest, page by page (pages the
// model says are Unknown are skipped); the store of every memory object ever created;
// then check_vm_invariants. `finish()` runs a final full check and teardown.
//
// Teardown (a decision, written here and in the project docs): terminate every live task,
// discard every live handle and destroy every memory object that is not yet destroyed,
// on both sides, comparing results; then, with a VM, check_teardown (zero frames and zero
// objects must remain). Objects are destroyed rather than exempted because memory objects
// persist on purpose (the cache keeps them): only the manager's destroy lets them go, and
// without it the teardown oracle could not judge any program that maps an object.
//
// The executor stops at the first failure: after step() returned Failed, only failure()
// may be used.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "harness/lang/names.h"
#include "harness/exec/explore.h"
#include "harness/exec/oracles.h"
#include "harness/lang/program.h"
#include "harness/exec/orders.h"
#include "harness/exec/report.h"
#include "vmfuzz/vocab.h"

namespace vmfuzz::vm {
class Kernel;
}

namespace vmfuzz::harness {

/// The VM-only oracles and explanations. Attached when the subject is a VM (see
/// make_kernel_observer); tests attach fakes to prove that findings become reports.
class VmObserver {
 public:
  virtual ~VmObserver() = default;
  /// check_vm_invariants: appended findings are failures (full checks only).
  virtual void check_invariants(std::vector<Violation>& out) const = 0;
  /// check_tlb_coherence (after every op).
  virtual void check_tlb_coherence(std::vector<Violation>& out) const = 0;
  /// check_teardown (after teardown).
  virtual void check_teardown(std::vector<Violation>& out) const = 0;
  /// The machine's fault-loop detector: a description when the VM's result of a user
  /// access `a` says the machine gave up on a fault the handler claimed to have fixed.
  virtual std::optional<std::string> fault_loop(const Access& a) const = 0;
  /// Which object in which chain supplies task t's byte at va (resident, zero-fill, paged
  /// out...), one line; empty if unknown.
  virtual std::string provenance(unsigned t, uint64_t va) const = 0;
  /// The same for memory object m's byte at offset.
  virtual std::string object_provenance(unsigned m, uint64_t offset) const = 0;
  /// Graphviz DOT of the VM's object graph, highlighting the object behind `site`.
  virtual std::string dot(const FailureSite& site) const = 0;
  /// The step invariants of docs/concurrency.md (paging_accounting, wait_target), after
  /// every op and every scheduler step. A VM with no concurrency has nothing to check.
  virtual void check_step_invariants(std::vector<Violation>& out) const { (void)out; }
  /// Every kernel thread in flight, one line each (where it blocked, on what, since
  /// which step), and the requests in flight; empty when there is none.
  virtual std::string threads() const { return {}; }
  /// The enabled schedule actions now, in the order of explore.h (runnable threads by id,
  /// then per manager that is not silent: its pending init, its requests oldest first).
  /// Option 0 is what the next drain step does. A VM with no concurrency has none.
  virtual std::vector<SchedAction> enabled_actions() const { return {}; }
};

/// A subject to judge: the memory system and, for the VM, its observer.
struct Subject {
  std::unique_ptr<MemorySystem> system;
  std::unique_ptr<VmObserver> observer;  // null for a generic subject
};

/// Purpose:    A fresh vm::Kernel for `config` with its observer (kernel_observer.cc).
///             The observer refers to the kernel.
Subject make_vm_subject(const SystemConfig& config);

/// Purpose:    A fresh reference model as subject (Model vs Model), no observer.
Subject make_model_subject(const SystemConfig& config);

/// How often the vm_diff fuzzer (and replays of its findings, ci/vmfuzz) run the full check:
/// every this many ops, and at the end. `vmfuzz-replay --build-info` reports it.
inline constexpr unsigned kFuzzFullCheckEvery = 16;

struct ExecOptions {
  unsigned full_check_every = 0;  // 0: only at `check` and at the end
  bool teardown = true;           // finish(): teardown and check_teardown
  /// The all-orders cross-check (orders.h, oracle `orders`): every block of concurrent
  /// work is also judged by trying every order of its ops through a copy of the model.
  /// Needs a model::Model as reference (else it does nothing).
  bool check_orders = false;
  /// Tests only (tests/harness_exec/orders_test.cc), never set by a tool or engine: a
  /// linearization oracle without its teeth — every thread run is applied to the model
  /// where the VM reports it, but what the run moved is not compared with the model. It
  /// stands for a wrong linearization that hides a divergence, to show that the
  /// all-orders check alone still finds it.
  bool unchecked_runs_for_test = false;
  /// A schedule explorer (explore.h): consulted at every drain step, and at the points
  /// after an op when the caller asks (schedule_point(); run_program does, after every op
  /// but the last). Needs an observer (the enabled actions come from it). Null: the
  /// program's own schedule only. The fuzz path (decode_and_run) never sets it.
  Chooser* chooser = nullptr;
};

/// What the all-orders check did during a run (ExecOptions::check_orders).
struct OrdersStats {
  uint64_t judged = 0;   // blocks judged (every order tried, or one found that explains them)
  uint64_t skipped = 0;  // blocks not judged: more than kOrdersMaxPageOps page ops, too many
                         // model steps, or a KERN_MEMORY_ERROR the executor tolerates
  uint64_t nodes = 0;    // model steps tried over all blocks
  uint64_t max_page_ops = 0;  // the most page ops in a judged block
};

/// What one side returned for one op (vocab.h: OpResult, run_op).
using vmfuzz::OpResult;

/// The result as trace text, usable as the op's own assertion: "=> KERN_NO_SPACE",
/// "== hex:0011 => fault 0x11000 KERN_INVALID_ADDRESS", "=> 0x10000", "" for void ops.
/// Long byte strings are abbreviated as a comment ("# 8192 bytes ...").
std::string format_result(const Op& op, const OpResult& r);

/// Purpose:    Run one op on one side (no oracles, no name checks): run_op of vocab.h.
/// Conditions: the op's names are usable on that side (NameState::check passed); `data`
///             is op.data materialized for write, object and manager_write.
OpResult execute_op(MemorySystem& side, const Op& op, const std::vector<uint8_t>& data);

class Executor {
 public:
  enum class Step : uint8_t { Ran, Failed, Unusable };

  /// Purpose:    Prepare to run ops on `vm` (subject) and `model` (reference).
  /// Conditions: both are freshly constructed with `config` and hold no task; both
  ///             outlive the executor. exit: t0 exists on both sides (created here).
  Executor(MemorySystem& vm, MemorySystem& model, const SystemConfig& config, ExecOptions options = {});

  /// Attach the VM-only oracles (may be null: generic subject, e.g. Model vs Model).
  void set_observer(VmObserver* observer) { observer_ = observer; }
  /// Source line of the next op (text traces), copied into failures.
  void set_line(unsigned line) { line_ = line; }

  /// Purpose:    Run one op on both sides and apply every per-op oracle (see top).
  /// Conditions: no earlier step failed or was unusable.
  /// Results:    Ran; Failed (failure() set); Unusable (unusable_reason() set, nothing ran).
  Step step(const Op& op);

  /// Purpose:    End of program: full check, then (options.teardown) teardown and
  ///             check_teardown. Results: false when a failure was recorded.
  bool finish();
  /// The two halves of finish(): the end-of-program full check, then teardown.
  bool finish_check();
  bool finish_teardown();

  /// Purpose:    Full side-effect-free comparison now (as at `check`), between ops; a
  ///             failure's context is "(full check)" at the next op index.
  /// Results:    false when a failure was recorded.
  bool full_check();

  const std::optional<Failure>& failure() const { return failure_; }
  const std::string& unusable_reason() const { return unusable_; }
  const OpResult& vm_result() const { return vm_result_; }
  const OpResult& model_result() const { return model_result_; }
  const NameState& names() const { return names_; }
  uint64_t ops_run() const { return ops_run_; }              // steps that ran
  uint64_t ops_seen() const { return next_index_; }          // every step
  /// The kernel threads' runs during the last step (or the final drain), one line each:
  /// "thread 1 (read t0 0x40000 0x10): completed, KERN_SUCCESS (16 bytes transferred)".
  const std::vector<std::string>& thread_notes() const { return notes_; }
  const OrdersStats& orders_stats() const { return orders_stats_; }

  /// Purpose:    A scheduling point after an op (ExecOptions::chooser): the chooser performs
  ///             enabled actions until it lets the program go on. No chooser: nothing.
  /// Results:    Ran, or Failed (failure() set).
  Step schedule_point();
  /// The schedule ops the chooser performed since the last step() (or finish_check()):
  /// during the step (a `quiesce`'s drain), at the point after it, or in the final drain.
  const std::vector<Op>& chosen() const { return chosen_; }

 private:
  bool perform(const SchedAction& a);     // one chosen action, as its explicit schedule op
  std::vector<Op> chosen_;                // chosen()
  std::vector<std::unique_ptr<Op>> chosen_ops_;  // the ops performed (failure contexts point here)
  bool full_check_now();  // the full check in the current context
  bool check_assertion(const Op& op, const OpResult& r, const char* side);
  bool compare_results(const Op& op);
  bool memory_error_tolerated(const Op& op) const;
  OpResult run_model_access(const Op& op, const std::vector<uint8_t>& data);
  bool compare_regions(unsigned t);
  bool compare_task_pages(unsigned t);
  bool compare_object(unsigned m);
  bool run_vm_findings(void (VmObserver::*checker)(std::vector<Violation>&) const);
  bool after_op_oracles();
  bool fault_loop_oracle(const OpResult& r);
  // Concurrency.
  Step step_schedule(const Op& op);       // hold, reply, run, quiesce
  bool apply_thread_steps();              // the VM's thread runs so far, onto the model
  bool apply_thread_step(const ThreadStep& st);
  /// A kernel op's thread ran: blocked again (nothing changed), or completed: the model
  /// runs the whole op now, where the VM's run took effect (its linearization point).
  bool apply_kernel_op_step(const ThreadStep& st);
  /// A kernel op (vm_copy, vm_write) went in flight as thread th: the model waits for its
  /// run (a vm_write's handle is taken now, on both sides).
  Step start_kernel_op(const Op& op, std::vector<uint8_t> data, uint32_t th);
  bool drain();                           // quiesce: until Done (or a deadlock)
  bool step_invariants();
  /// An access in flight: the op, its data, and what both sides moved so far.
  struct InFlight {
    Op op;
    std::vector<uint8_t> data;
    OpResult vm, model;
    bool error_pending = false;  // its request was answered data_error
    bool kernel_op = false;      // a kernel op (vm_copy, vm_write) that waits before it changes anything
    std::shared_ptr<const model::CopyHandle> handle;  // vm_write: the model's handle, taken at its start
    unsigned line = 0;           // its source line
    int access = -1;             // check_orders: its index in the block
    unsigned lo = 0;             // check_orders: fixed ops of the block before it started
  };
  // The all-orders check (orders.h): the block being recorded.
  struct OrdersBlock {
    std::unique_ptr<model::Model> start;  // the model just before the block
    std::vector<OrderUnit> fixed, pages;
    int accesses = 0;
    std::string unjudged;  // non-empty: why the block cannot be judged
  };
  std::unique_ptr<OrdersBlock> block_;
  OrdersStats orders_stats_;
  void orders_open();                                    // an access goes in flight
  InFlight open_in_flight(const Op& op, std::vector<uint8_t> data);  // its record, its block opened
  void orders_fixed(const Op& op, const std::vector<uint8_t>& data, const OpResult& vm);
  void orders_access_end(const InFlight& f, bool completed);
  bool orders_close_if_quiet();                          // judge the block once nothing is in flight
  std::map<uint32_t, InFlight> in_flight_;  // by VM thread id
  std::vector<std::string> notes_;          // thread_notes()
  bool teardown();
  void fail(Oracle oracle, std::string sub, std::string detail, std::string diff = {},
            FailureSite site = {});
  /// The op being judged: `op` (printed, and its kind named, only if a failure is
  /// recorded; it must live until the next set_context) or, when null, the fixed `text`
  /// and `kind`.
  void set_context(uint64_t index, const Op* op, const char* text, const char* kind);
  // Runs `check` with the report's context set to `op` at trace line `line` (an op in
  // flight, judged at the step that completes it), then puts the current context back.
  template <class Check>
  bool in_op_context(const Op& op, unsigned line, Check check) {
    const uint64_t index = ctx_index_;
    const unsigned ctx_line = ctx_line_, saved_line = line_;
    const Op* saved_op = ctx_op_ptr_;
    const char *saved_text = ctx_text_, *saved_kind = ctx_kind_;
    line_ = line;
    set_context(index, &op, nullptr, nullptr);
    bool ok = check();
    line_ = saved_line;
    set_context(index, saved_op, saved_text, saved_kind);
    ctx_line_ = ctx_line;
    return ok;
  }

  MemorySystem& vm_;
  MemorySystem& model_;
  SystemConfig config_;
  ExecOptions options_;
  VmObserver* observer_ = nullptr;
  NameState names_;
  // Memory objects destroyed (on the model); NameState keeps destroyed names live.
  uint32_t objects_destroyed_ = 0;

  unsigned line_ = 0;
  uint64_t next_index_ = 0;
  uint64_t ops_run_ = 0;
  OpResult vm_result_, model_result_;

  // Context of the op being judged (copied into a failure).
  uint64_t ctx_index_ = 0;
  unsigned ctx_line_ = 0;
  const Op* ctx_op_ptr_ = nullptr;
  const char* ctx_text_ = "";
  const char* ctx_kind_ = "";

  std::optional<Failure> failure_;
  std::string unusable_;
};

/// Purpose:    Decode a binary input (codec.h) into a Program. The decoder chooses names
///             from a NameState, which follows the results of a run of the decoded ops on
///             `scratch_model` (a fresh reference model holding no task; t0 is created here).
///             Decoding first and running after gives binary inputs exactly the meaning of
///             the trace `--to-text` prints.
/// Results:    the program (lines all 0, config from the input).
vmfuzz::Program decode_with_model(std::span<const uint8_t> bytes, MemorySystem& scratch_model);

/// Frames a binary (fuzz) input runs with at least. It was 512 while the VM could not page
/// out (fuzzers hunt divergences of contents, not frame exhaustion); with pageout it is the
/// codec's smallest table entry, so frame pressure is fuzzed too. vm_diff and vmfuzz-replay
/// both fold binary inputs' configuration with fold_fuzz_config so a crash replays the same.
inline constexpr unsigned kFuzzMinFrames = 64;
inline void fold_fuzz_config(SystemConfig& c) {
  if (c.frames < kFuzzMinFrames) c.frames = kFuzzMinFrames;
}

/// Purpose:    Find the first op of `program` whose names are unusable (docs/language.md §Details 11),
///             following names with a run on `scratch_model` (fresh, no task).
/// Results:    true if every op is usable; else false with *index and *reason set.
bool validate_names(const vmfuzz::Program& program, MemorySystem& scratch_model, size_t* index,
                    std::string* reason);

/// Purpose:    Load FILE as a program, as every tool does: a text trace (a file named
///             *.trace, or one that looks like a trace: printable ASCII whose first word is
///             `#`, `config` or an op) is parsed and its names checked with a model run;
///             anything else is a binary input, decoded with a model run and its config
///             folded as vm_diff runs it.
/// Results:    true and *prog, *is_text; false and *error ("FILE:LINE: reason", or
///             "FILE: cannot read") for unusable input.
bool load_program(const std::string& file, vmfuzz::Program* prog, bool* is_text, std::string* error);

/// Callback of run_program: called after each step with the op and its outcome.
using StepListener = std::function<void(uint64_t index, const Op& op, Executor::Step step,
                                        const Executor& exec)>;

/// Summary of running a whole program.
struct RunSummary {
  bool ok = false;         // no failure, not unusable
  bool unusable = false;   // unusable input: `unusable` holds "FILE:LINE: reason"
  std::string unusable_reason;
  uint64_t ops = 0;        // ops run (up to and including a failing op)
  std::optional<Failure> failure;
  OrdersStats orders;      // run_program with ExecOptions::check_orders
  /// With ExecOptions::chooser: the schedule that ran, as an explicit program (the ops
  /// with the chosen `run`/`reply`/`ready` lines in place; the ops after a failure are
  /// kept, so that count_preemptions sees what the chooser did).
  vmfuzz::Program schedule;
};

/// Purpose:    Run `program` (every op, then finish()) on the two sides.
/// Conditions: vm and model fresh for program.config (or the default config);
///             `file` names the source for unusable-input messages.
/// Results:    The summary; `listener` (may be empty) sees every step. With an observer
///             and a non-null `dot_out`: the DOT picture of the VM at the failure, or
///             before teardown when there is none.
RunSummary run_program(const vmfuzz::Program& program, const std::string& file, MemorySystem& vm,
                       MemorySystem& model, VmObserver* observer, ExecOptions options,
                       const StepListener& listener = {}, std::string* dot_out = nullptr);

/// Purpose:    Decode a binary input and run it in one pass: each op runs on both sides
///             as soon as it is decoded, and the decoder follows names with the result
///             the run's model gave — the model of the run IS the scratch model of
///             decode_with_model for as long as both saw the same ops. Where they could
///             part (a user access or vm_read the VM stopped with
///             KERN_MEMORY_ERROR, which the executor mirrors on its model, a failure, an
///             unusable op), a fresh scratch model replays the ops decoded so far and
///             decoding continues on it; the ops after that point run afterwards. Hence
///             *program is exactly decode_with_model(bytes, fresh model) and the summary
///             exactly run_program's on it, at the cost of one model run instead of two.
/// Conditions: vm and model fresh for `config` (the input's config, possibly folded:
///             fold_fuzz_config); the model must not depend on config.frames (the
///             reference model has no frames, D10) since the scratch model gets the
///             input's own config, as decode_with_model's caller gives it.
/// Results:    The summary (as run_program's, file "<input>"); *program the whole decoded
///             program (with `config` as its config), also when the run stopped early.
RunSummary decode_and_run(std::span<const uint8_t> bytes, const SystemConfig& config, MemorySystem& vm,
                          MemorySystem& model, VmObserver* observer, ExecOptions options,
                          const StepListener& listener, vmfuzz::Program* program);

}  // namespace vmfuzz::harness
