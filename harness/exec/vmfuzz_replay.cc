// vmfuzz_replay.cc — vmfuzz-replay: run traces and crash inputs on the VM and the model.
//
// Theory of operation
// -------------------
//   vmfuzz-replay [--json] [--dot FILE] [--quiet] [--full-check-every N] [--model-only]
//                 [--no-collapse] [--no-bypass] [--check-orders] FILE...
//   vmfuzz-replay --schedules K [--depth D] [--seed S] FILE...   PCT: K schedules per file
//   vmfuzz-replay --preemptions P [--max-schedules N] FILE...     bounded-preemption search
//   vmfuzz-replay --to-text FILE          print the program of a trace or binary input
//   vmfuzz-replay --encode IN OUT         write the binary encoding of IN (text or binary)
//   vmfuzz-replay --build-info            JSON: format_version, full_check_every, ops
//
// Each FILE is a text trace when it looks like one (printable, and its first non-blank line
// starts with `#`, `config` or an op keyword), else a binary fuzz input (codec.h). A text
// trace that does not parse, or uses a name that does not exist, is unusable input. A
// binary input is decoded first (its names follow a run on a scratch model), so that it
// means exactly the trace --to-text prints, and its configuration is folded as the
// vm_diff fuzz target folds it (fold_fuzz_config), so that a crash replays the same.
//
// Each program runs through the executor (executor.h) with the VM as subject and the
// reference model as reference (--model-only: the model on both sides, which checks the
// trace's own assertions against the model). Output, per file: the readable trace with
// results (`op  => result`, unless --quiet), then `OK FILE ...` or the failure report and
// `FAILED FILE`. With --json: one JSON object per file per line and nothing else on
// stdout: {"file","ok","ops","preemptions","failure": null | {...}}, where preemptions is
// the count of the program's own schedule (count_preemptions, explore.h).
// --no-collapse / --no-bypass switch the VM's collapse optimizations off (VmTunables):
// switching an optimization off must never change what a task observes, so a trace that
// passes with them on passes with them off.
// --dot FILE: the Graphviz picture of the VM's object graph at the first failure (or at the
// end of the last file when nothing failed).
// --check-orders: the all-orders cross-check of the linearization oracle (orders.h,
// docs/concurrency.md): every block of concurrent work of at most 4 page ops is judged by
// trying every order through the model too; `OK` lines then say how many blocks were
// judged and how many were not (JSON: an "orders" member).
//
// --schedules / --preemptions: schedule explorers (explore.h, docs/concurrency.md
// §Explorers). The program's own schedule is stripped (strip_schedule), then PCT tries K
// seeded schedules with D - 1 priority-change points (default depth 3, seed 0), or the
// bounded search runs every schedule with at most p preemptions for p = 0, 1, ..., P
// (at most N schedules per bound, default 100000), so that the first failure it finds
// has the smallest preemption count. A failing schedule is printed as a replayable trace
// (`# schedule` header, ops and explicit run/reply/ready lines), with its report, its
// preemption count and `FAILED FILE`; else `OK FILE (...)` says how many schedules ran.
//
// Exit status: 0 every file ran with no divergence and every assertion held; 1 some did
// not; 2 unusable input (`FILE:LINE: reason` or `FILE: cannot read` on stderr), which
// wins over 1. Output is deterministic.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "harness/lang/codec.h"
#include "harness/exec/executor.h"
#include "harness/exec/explore.h"
#include "harness/exec/report.h"
#include "harness/lang/text.h"
#include "reference_model/model.h"
#include "vm/kernel.h"

namespace {

using vmfuzz::Op;
using vmfuzz::OpKind;
using vmfuzz::Program;
namespace h = vmfuzz::harness;

struct Options {
  bool json = false;
  bool quiet = false;
  bool model_only = false;
  bool no_collapse = false;
  bool no_bypass = false;
  bool check_orders = false;
  std::string dot_file;
  unsigned full_check_every = 0;
  // Explorers (0: off).
  uint64_t schedules = 0;
  unsigned depth = 3;
  uint64_t seed = 0;
  bool bounded = false;
  unsigned preemptions = 0;
  uint64_t max_schedules = 100000;
  std::vector<std::string> files;
};

int usage() {
  std::fprintf(stderr,
               "usage: vmfuzz-replay [--json] [--dot FILE] [--quiet] [--full-check-every N] [--model-only]\n"
               "                     [--no-collapse] [--no-bypass] [--check-orders] FILE...\n"
               "       vmfuzz-replay --schedules K [--depth D] [--seed S] FILE...\n"
               "       vmfuzz-replay --preemptions P [--max-schedules N] FILE...\n"
               "       vmfuzz-replay --to-text FILE\n"
               "       vmfuzz-replay --encode IN OUT\n");
  return 2;
}

// Load FILE as a Program. Returns 0, or 2 with the message printed.
int load(const std::string& file, Program* prog, bool* is_text) {
  std::string error;
  if (h::load_program(file, prog, is_text, &error)) return 0;
  std::fprintf(stderr, "%s\n", error.c_str());
  return 2;
}

int to_text(const std::string& file) {
  Program p;
  bool is_text = false;
  if (int rc = load(file, &p, &is_text)) return rc;
  std::fputs(vmfuzz::print_program(p).c_str(), stdout);
  return 0;
}

int encode(const std::string& in, const std::string& out) {
  Program p;
  bool is_text = false;
  if (int rc = load(in, &p, &is_text)) return rc;
  std::vector<uint8_t> bytes = vmfuzz::encode_program(p);
  std::ofstream o(out, std::ios::binary | std::ios::trunc);
  if (!o) {
    std::fprintf(stderr, "%s: cannot write\n", out.c_str());
    return 2;
  }
  o.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!o) {
    std::fprintf(stderr, "%s: cannot write\n", out.c_str());
    return 2;
  }
  return 0;
}

// The op as a trace line without its assertions, for the listing.
std::string bare_op(const Op& op) {
  Op o = op;
  o.expect = vmfuzz::Expect{};
  return vmfuzz::print_op(o);
}

// Run one loaded program; returns 0 ok, 1 failure, 2 unusable.
int replay_one(const std::string& file, const Program& prog, const Options& opt, std::string* dot) {
  h::Subject subject = opt.model_only ? h::make_model_subject(prog.config) : h::make_vm_subject(prog.config);
  if (!opt.model_only) {
    auto& tunables = static_cast<vmfuzz::vm::Kernel&>(*subject.system).tunables();
    if (opt.no_collapse) tunables.collapse_allowed = false;
    if (opt.no_bypass) tunables.bypass_allowed = false;
  }
  vmfuzz::model::Model model(prog.config);
  h::ExecOptions eo;
  eo.full_check_every = opt.full_check_every;
  eo.check_orders = opt.check_orders;
  bool listing = !opt.quiet && !opt.json;
  if (listing) {
    std::printf("# %s\n", file.c_str());
    if (prog.has_config) std::printf("%s\n", vmfuzz::format_config(prog.config).c_str());
  }
  h::StepListener listener;
  if (listing) {
    listener = [&](uint64_t, const Op& op, h::Executor::Step, const h::Executor& ex) {
      std::string line = bare_op(op);
      std::string r = h::format_result(op, ex.vm_result());
      if (!r.empty()) line += "  " + r;
      std::printf("%s\n", line.c_str());
      for (const std::string& n : ex.thread_notes()) std::printf("#   %s\n", n.c_str());
    };
  }
  h::RunSummary sum = h::run_program(prog, file, *subject.system, model, subject.observer.get(), eo, listener,
                                     dot);
  if (sum.unusable) {
    std::fprintf(stderr, "%s\n", sum.unusable_reason.c_str());
    if (opt.json)
      std::printf("{\"file\": %s, \"ok\": false, \"ops\": %llu, \"failure\": null, \"error\": %s}\n",
                  h::json_quote(file).c_str(), static_cast<unsigned long long>(sum.ops),
                  h::json_quote(sum.unusable_reason).c_str());
    return 2;
  }
  std::string orders;
  if (opt.check_orders)
    orders = std::to_string(sum.orders.judged) + " blocks judged in all orders, " +
             std::to_string(sum.orders.skipped) + " not judged, " + std::to_string(sum.orders.nodes) +
             " model steps";
  if (opt.json) {
    std::string orders_json;
    if (opt.check_orders)
      orders_json = ", \"orders\": {\"judged\": " + std::to_string(sum.orders.judged) +
                    ", \"not_judged\": " + std::to_string(sum.orders.skipped) +
                    ", \"model_steps\": " + std::to_string(sum.orders.nodes) + "}";
    std::printf("{\"file\": %s, \"ok\": %s, \"ops\": %llu, \"preemptions\": %u, \"failure\": %s%s}\n",
                h::json_quote(file).c_str(), sum.ok ? "true" : "false", static_cast<unsigned long long>(sum.ops),
                h::count_preemptions(prog), sum.failure ? h::failure_json(*sum.failure).c_str() : "null", orders_json.c_str());
    return sum.ok ? 0 : 1;
  }
  std::string tail = std::to_string(sum.ops) + " ops";
  if (!orders.empty()) tail += "; " + orders;
  if (sum.ok) {
    std::printf("OK %s (%s)\n", file.c_str(), tail.c_str());
    return 0;
  }
  std::fputs(h::format_failure(*sum.failure).c_str(), stdout);
  std::printf("FAILED %s (%s)\n", file.c_str(), tail.c_str());
  return 1;
}

// The explorers on one loaded program; returns 0 no failing schedule, 1 one failed,
// 2 unusable.
int explore_one(const std::string& file, const Program& loaded, const Options& opt) {
  const Program prog = h::strip_schedule(loaded);
  h::ScheduleRunner runner = [&](const Program& p, h::Chooser* chooser) {
    h::Subject subject = h::make_vm_subject(p.config);
    auto& tunables = static_cast<vmfuzz::vm::Kernel&>(*subject.system).tunables();
    if (opt.no_collapse) tunables.collapse_allowed = false;
    if (opt.no_bypass) tunables.bypass_allowed = false;
    vmfuzz::model::Model model(p.config);
    h::ExecOptions eo;
    eo.full_check_every = opt.full_check_every;
    eo.check_orders = opt.check_orders;
    eo.chooser = chooser;
    return h::run_program(p, file, *subject.system, model, subject.observer.get(), eo);
  };
  auto report_found = [&](const h::ExploreResult& r, const std::string& how) {
    std::printf("# %s: schedule %llu fails (%s), %u preemption%s\n", file.c_str(),
                static_cast<unsigned long long>(r.schedules), how.c_str(), r.preemptions,
                r.preemptions == 1 ? "" : "s");
    std::fputs(vmfuzz::print_program(r.schedule).c_str(), stdout);
    std::fputs(r.failure_text.c_str(), stdout);
    std::printf("FAILED %s (%llu schedules, %s; the failing one has %u preemption%s)\n", file.c_str(),
                static_cast<unsigned long long>(r.schedules), how.c_str(), r.preemptions,
                r.preemptions == 1 ? "" : "s");
  };
  if (!opt.bounded) {
    const std::string how = "PCT depth " + std::to_string(opt.depth) + " seed " + std::to_string(opt.seed);
    h::ExploreResult r = h::explore_pct(prog, runner, opt.schedules, opt.depth, opt.seed);
    if (r.unusable) {
      std::fprintf(stderr, "%s\n", r.detail.c_str());
      return 2;
    }
    if (r.found) {
      report_found(r, how);
      return 1;
    }
    std::printf("OK %s (%llu schedules, %s, none fails)\n", file.c_str(),
                static_cast<unsigned long long>(r.schedules), how.c_str());
    return 0;
  }
  uint64_t total = 0, last = 0;
  bool exhausted = true;
  for (unsigned p = 0; p <= opt.preemptions; ++p) {
    h::ExploreResult r = h::explore_bounded(prog, runner, p, opt.max_schedules);
    total += r.schedules;
    last = r.schedules;
    exhausted = r.exhausted;
    if (r.unusable) {
      std::fprintf(stderr, "%s\n", r.detail.c_str());
      return 2;
    }
    if (r.found) {
      report_found(r, "bounded search, at most " + std::to_string(p) + " preemption" + (p == 1 ? "" : "s"));
      return 1;
    }
    std::printf("# %s: at most %u preemption%s: %llu schedules%s, none fails\n", file.c_str(), p,
                p == 1 ? "" : "s", static_cast<unsigned long long>(r.schedules),
                r.exhausted ? " (all of them)" : " (stopped at --max-schedules: not all)");
  }
  std::printf("OK %s (%llu schedules with at most %u preemption%s%s, none fails; %llu run over the bounds 0..%u)\n",
              file.c_str(), static_cast<unsigned long long>(last), opt.preemptions, opt.preemptions == 1 ? "" : "s",
              exhausted ? ", all of them" : ", not all: --max-schedules", static_cast<unsigned long long>(total),
              opt.preemptions);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--build-info") {
      // What the driver must agree with this build on (ci/vmfuzz reads it, never copies it).
      std::printf("{\"format_version\": %u, \"full_check_every\": %u, \"ops\": [", unsigned(vmfuzz::kFormatVersion),
                  h::kFuzzFullCheckEvery);
      for (unsigned k = 0, n = 0; k < vmfuzz::kOpKindCount; k++)
        if (vmfuzz::op_kind_exists(k)) std::printf("%s\"%s\"", n++ ? ", " : "", vmfuzz::op_kind_name(OpKind(k)));
      std::printf("]}\n");
      return 0;
    } else if (a == "--to-text") {
      if (i + 2 != argc) return usage();
      return to_text(argv[i + 1]);
    } else if (a == "--encode") {
      if (i + 3 != argc) return usage();
      return encode(argv[i + 1], argv[i + 2]);
    } else if (a == "--json") {
      opt.json = true;
    } else if (a == "--quiet") {
      opt.quiet = true;
    } else if (a == "--check-orders") {
      opt.check_orders = true;
    } else if (a == "--model-only") {
      opt.model_only = true;
    } else if (a == "--no-collapse") {
      opt.no_collapse = true;
    } else if (a == "--no-bypass") {
      opt.no_bypass = true;
    } else if (a == "--dot") {
      if (++i == argc) return usage();
      opt.dot_file = argv[i];
    } else if (a == "--schedules" || a == "--depth" || a == "--seed" || a == "--preemptions" ||
               a == "--max-schedules") {
      if (++i == argc) return usage();
      char* end = nullptr;
      unsigned long long n = std::strtoull(argv[i], &end, 10);
      if (!*argv[i] || *end) return usage();
      if (a == "--schedules") {
        if (n == 0) return usage();
        opt.schedules = n;
      } else if (a == "--depth") {
        if (n == 0 || n > 1000) return usage();
        opt.depth = static_cast<unsigned>(n);
      } else if (a == "--seed") {
        opt.seed = n;
      } else if (a == "--preemptions") {
        if (n > 64) return usage();
        opt.bounded = true;
        opt.preemptions = static_cast<unsigned>(n);
      } else {
        if (n == 0) return usage();
        opt.max_schedules = n;
      }
    } else if (a == "--full-check-every") {
      if (++i == argc) return usage();
      char* end = nullptr;
      unsigned long n = std::strtoul(argv[i], &end, 10);
      if (!*argv[i] || *end || n > 1000000) return usage();
      opt.full_check_every = static_cast<unsigned>(n);
    } else if (a.size() > 1 && a[0] == '-' && a != "-") {
      std::fprintf(stderr, "vmfuzz-replay: unknown option %s\n", a.c_str());
      return usage();
    } else {
      opt.files.push_back(a);
    }
  }
  if (opt.files.empty()) return usage();
  if (opt.schedules && opt.bounded) {
    std::fprintf(stderr, "vmfuzz-replay: --schedules (PCT) and --preemptions (bounded search) are two explorers: "
                         "choose one\n");
    return 2;
  }
  if (opt.schedules || opt.bounded) {
    if (opt.model_only || opt.json || !opt.dot_file.empty()) {
      std::fprintf(stderr, "vmfuzz-replay: the explorers run the VM against the model, text output only\n");
      return 2;
    }
    int worst = 0;
    for (const auto& file : opt.files) {
      Program prog;
      bool is_text = false;
      int rc = load(file, &prog, &is_text);
      if (rc == 0) rc = explore_one(file, prog, opt);
      worst = std::max(worst, rc);
    }
    std::fflush(stdout);
    return worst;
  }

  int worst = 0;
  std::string dot;
  bool dot_taken = false;
  for (const auto& file : opt.files) {
    Program prog;
    bool is_text = false;
    int rc = load(file, &prog, &is_text);
    if (rc == 0) {
      std::string this_dot;
      rc = replay_one(file, prog, opt, opt.dot_file.empty() ? nullptr : &this_dot);
      // The first failure's picture wins; else the last file's.
      if (!dot_taken) dot = this_dot;
      if (rc == 1) dot_taken = true;
    }
    if (rc > worst) worst = rc;
  }
  if (!opt.dot_file.empty()) {
    if (dot.empty()) {
      std::fprintf(stderr, "vmfuzz-replay: no object graph to draw (--model-only, or no VM)\n");
    } else {
      std::ofstream o(opt.dot_file, std::ios::trunc);
      o << dot;
      if (!o) {
        std::fprintf(stderr, "%s: cannot write\n", opt.dot_file.c_str());
        return 2;
      }
    }
  }
  std::fflush(stdout);
  return worst;
}
