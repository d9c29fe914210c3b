// three_way.cc — the three-way verdict (three_way.h).
#include "threeway/three_way.h"

#include "harness/lang/codec.h"
#include "linux/linux_system.h"
#include "linux/profile.h"
#include "reference_model/model.h"

namespace vmfuzz::threeway {

namespace lb = vmfuzz::linux_backend;

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::AllAgree: return "all agree";
    case Verdict::VmDiffers: return "VM differs";
    case Verdict::ModelDiffersFromLinux: return "model differs from Linux";
    case Verdict::BothDiffer: return "VM differs; model differs from Linux";
    case Verdict::OutOfProfile: return "out of profile";
    case Verdict::Skipped: return "skipped";
  }
  return "?";
}

const char* verdict_key(Verdict v) {
  switch (v) {
    case Verdict::AllAgree: return "agree";
    case Verdict::VmDiffers: return "vm_differs";
    case Verdict::ModelDiffersFromLinux: return "model_differs_from_linux";
    case Verdict::BothDiffer: return "both_differ";
    case Verdict::OutOfProfile: return "out_of_profile";
    case Verdict::Skipped: return "skipped";
  }
  return "?";
}

std::optional<std::string> program_out_of_profile(const vmfuzz::Program& p) {
  for (size_t i = 0; i < p.ops.size(); i++)
    if (std::optional<std::string> why = lb::op_out_of_profile(p.ops[i])) {
      std::string where = "op " + std::to_string(i);
      if (i < p.lines.size() && p.lines[i]) where += " (line " + std::to_string(p.lines[i]) + ")";
      return where + ": " + *why;
    }
  return std::nullopt;
}

std::optional<Op> restrict_op(const Op& in) {
  if (in.kind == OpKind::Destroy) return std::nullopt;
  Op op = in;
  bool was_out = lb::op_out_of_profile(op).has_value();
  if (op.kind == OpKind::Protect) op.set_max = false;
  if (op.kind == OpKind::Map) op.max_prot = VM_PROT_ALL;
  if ((op.kind == OpKind::Protect || op.kind == OpKind::Map) && lb::exec_only(op.prot)) op.prot |= VM_PROT_READ;
  if (op.kind == OpKind::Object && op.strategy == CopyStrategy::Call) op.strategy = CopyStrategy::Delay;
  if (op.kind == OpKind::Device) {  // to an observer a device is a strategy-none object
    op.kind = OpKind::Object;
    op.strategy = CopyStrategy::None;
    op.persist = false;
  }
  if (was_out) op.expect = vmfuzz::Expect{};  // an assertion written for the old op may not hold
  return op;
}

unsigned restrict_to_profile(vmfuzz::Program& p) {
  unsigned changed = 0;
  std::vector<Op> kept;
  std::vector<unsigned> lines;
  for (size_t i = 0; i < p.ops.size(); i++) {
    std::optional<Op> op = restrict_op(p.ops[i]);
    if (!op || !(*op == p.ops[i])) changed++;
    if (!op) continue;
    kept.push_back(*op);
    lines.push_back(i < p.lines.size() ? p.lines[i] : 0);
  }
  p.ops = std::move(kept);
  p.lines = std::move(lines);
  return changed;
}

vmfuzz::Program decode_in_profile(std::span<const uint8_t> bytes) {
  model::Model scratch(vmfuzz::Decoder(bytes).config());
  scratch.task_create(0);
  vmfuzz::Program p = vmfuzz::decode_program(bytes, [&](const Op& decoded) {
    std::optional<Op> op = restrict_op(decoded);
    if (!op || op->kind == OpKind::Check) return KERN_SUCCESS;
    std::vector<uint8_t> data;
    if (op_has_data(op->kind)) data = op->data.materialize();
    return harness::execute_op(scratch, *op, data).kr;
  });
  restrict_to_profile(p);
  harness::fold_fuzz_config(p.config);
  return p;
}

harness::RunSummary run_linux_vs_model(const vmfuzz::Program& p, const std::string& file,
                                       harness::ExecOptions options, std::string* out_of_profile,
                                       std::string* skipped) {
  out_of_profile->clear();
  skipped->clear();
  harness::RunSummary sum;
  if (std::optional<std::string> why = program_out_of_profile(p)) {
    *out_of_profile = *why;
    return sum;
  }
  options.teardown = false;  // teardown destroys objects: out of profile
  try {
    lb::LinuxSystem linux_side(p.config);
    model::Model model(p.config);
    sum = harness::run_program(p, file, linux_side, model, nullptr, options);
  } catch (const lb::OutOfProfile& e) {
    *out_of_profile = e.what();
  } catch (const lb::KernelRefused& e) {
    *skipped = e.what();
  }
  return sum;
}

ThreeWay run_three_way(const vmfuzz::Program& p, const std::string& file, harness::ExecOptions options) {
  ThreeWay r;
  {
    harness::Subject vm = harness::make_vm_subject(p.config);
    model::Model model(p.config);
    r.vm = harness::run_program(p, file, *vm.system, model, vm.observer.get(), options);
  }
  std::string oop, skip;
  r.linux_run = run_linux_vs_model(p, file, options, &oop, &skip);
  if (!oop.empty()) {
    r.verdict = Verdict::OutOfProfile;
    r.reason = oop;
    return r;
  }
  if (!skip.empty()) {
    r.verdict = Verdict::Skipped;
    r.reason = skip;
    return r;
  }
  r.linux_ran = true;
  bool vm_ok = r.vm.ok, linux_ok = r.linux_run.ok;
  r.verdict = vm_ok && linux_ok ? Verdict::AllAgree
              : linux_ok        ? Verdict::VmDiffers
              : vm_ok           ? Verdict::ModelDiffersFromLinux
                                : Verdict::BothDiffer;
  return r;
}

}  // namespace vmfuzz::threeway
