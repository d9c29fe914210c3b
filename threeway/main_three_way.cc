// main_three_way.cc — vmfuzz-threeway: traces on the VM, the reference model and Linux.
//
// Theory of operation
// -------------------
//   vmfuzz-threeway [--json] [--quiet] [--full-check-every N] FILE...
//
// Each FILE (a text trace, or a binary fuzz input decoded as vmfuzz-replay decodes it)
// runs through run_three_way (three_way.h). Output per file, one line:
//   FILE: all agree (N ops)
//   FILE: out of profile: REASON            (the VM-vs-model half is still judged)
//   FILE: skipped: CALL: ERRNO               (the kernel refused a call: never agreement)
//   FILE: VM differs | model differs from Linux   followed by the failure report(s)
// then a last line counting each verdict. --json: one object per file and nothing else on
// stdout, vmfuzz-replay's fields for the VM-vs-model run ({"file", "ok", "ops",
// "failure"}) plus "verdict" (agree, vm_differs,
// model_differs_from_linux, both_differ, out_of_profile, skipped), "reason" (string or
// null) and "linux": null | {"ok", "ops", "failure"}.
//
// Exit status: 0 no file diverged (every verdict is agree, out of profile or skipped);
// 1 some file diverged (VM vs model, or model vs Linux); 2 unusable input, which wins.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "harness/lang/codec.h"
#include "harness/exec/executor.h"
#include "harness/exec/report.h"
#include "harness/lang/text.h"
#include "linux/linux_system.h"
#include "reference_model/model.h"
#include "threeway/three_way.h"

namespace {

namespace h = vmfuzz::harness;
namespace tw = vmfuzz::threeway;

int usage() {
  std::fprintf(stderr, "usage: vmfuzz-threeway [--json] [--quiet] [--full-check-every N] FILE...\n");
  return 2;
}

/// Load FILE as a usable Program; 0, or 2 with the message printed.
int load(const std::string& file, vmfuzz::Program* prog) {
  std::string error;
  bool is_text = false;
  if (h::load_program(file, prog, &is_text, &error)) return 0;
  std::fprintf(stderr, "%s\n", error.c_str());
  return 2;
}

std::string summary_json(const h::RunSummary& s) {
  return std::string("{\"ok\": ") + (s.ok ? "true" : "false") + ", \"ops\": " + std::to_string(s.ops) +
         ", \"failure\": " + (s.failure ? h::failure_json(*s.failure) : "null") + "}";
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false, quiet = false;
  h::ExecOptions eo;
  std::vector<std::string> files;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--quiet") {
      quiet = true;
    } else if (a == "--full-check-every") {
      if (++i == argc) return usage();
      char* end = nullptr;
      unsigned long n = std::strtoul(argv[i], &end, 10);
      if (!*argv[i] || *end || n > 1000000) return usage();
      eo.full_check_every = static_cast<unsigned>(n);
    } else if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "vmfuzz-threeway: unknown option %s\n", a.c_str());
      return usage();
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) return usage();
  if (std::optional<std::string> why = vmfuzz::linux_backend::linux_backend_unavailable())
    std::fprintf(stderr, "vmfuzz-threeway: the Linux backend cannot run here: %s (every file is skipped)\n",
                 why->c_str());

  int worst = 0;
  unsigned counts[6] = {};
  for (const std::string& file : files) {
    vmfuzz::Program prog;
    if (load(file, &prog) != 0) {
      worst = 2;
      continue;
    }
    tw::ThreeWay r = tw::run_three_way(prog, file, eo);
    counts[static_cast<unsigned>(r.verdict)]++;
    bool diverged = !r.vm.ok || (r.linux_ran && !r.linux_run.ok);
    if (diverged && worst < 1) worst = 1;
    if (json) {
      std::printf("{\"file\": %s, \"ok\": %s, \"ops\": %llu, \"failure\": %s, "
                  "\"verdict\": \"%s\", \"reason\": %s, \"linux\": %s}\n",
                  h::json_quote(file).c_str(), r.vm.ok ? "true" : "false", static_cast<unsigned long long>(r.vm.ops),
                  r.vm.failure ? h::failure_json(*r.vm.failure).c_str() : "null", tw::verdict_key(r.verdict),
                  r.reason.empty() ? "null" : h::json_quote(r.reason).c_str(),
                  r.linux_ran ? summary_json(r.linux_run).c_str() : "null");
      continue;
    }
    std::string line = file + ": " + tw::verdict_name(r.verdict);
    if (!r.reason.empty()) line += ": " + r.reason;
    if (r.verdict == tw::Verdict::AllAgree) line += " (" + std::to_string(r.linux_run.ops) + " ops)";
    if ((r.verdict == tw::Verdict::OutOfProfile || r.verdict == tw::Verdict::Skipped) && !r.vm.ok)
      line += "; VM differs from the model";
    std::printf("%s\n", line.c_str());
    if (!quiet) {
      if (r.vm.failure) std::printf("--- VM vs model\n%s", h::format_failure(*r.vm.failure).c_str());
      if (r.linux_ran && r.linux_run.failure)
        std::printf("--- Linux (as \"vm\") vs model\n%s", h::format_failure(*r.linux_run.failure).c_str());
    }
  }
  if (!json)
    std::printf("three-way: %zu files: %u all agree, %u VM differs, %u model differs from Linux, %u both, "
                "%u out of profile, %u skipped\n",
                files.size(), counts[0], counts[1], counts[2], counts[3], counts[4], counts[5]);
  std::fflush(stdout);
  vmfuzz::linux_backend::shutdown_linux_backend();
  return worst;
}
