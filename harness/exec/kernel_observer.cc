// kernel_observer.cc — the VmObserver of a vm::Kernel, and make_vm_subject (executor.h).
#include "harness/exec/kernel_observer.h"

#include <optional>
#include <string>

#include "harness/exec/dot.h"
#include "harness/exec/invariants.h"
#include "vm/kernel.h"
#include "vm/memory_object.h"

namespace vmfuzz::harness {

namespace {

/// The observer of a vm::Kernel (see VmObserver in executor.h).
class KernelObserver final : public VmObserver {
 public:
  explicit KernelObserver(vm::Kernel& k) : k_(k) {}

  void check_invariants(std::vector<Violation>& out) const override { check_vm_invariants(k_, out); }
  void check_tlb_coherence(std::vector<Violation>& out) const override { vmfuzz::check_tlb_coherence(k_, out); }
  void check_teardown(std::vector<Violation>& out) const override { vmfuzz::check_teardown(k_, out); }

  std::optional<std::string> fault_loop(const Access& a) const override {
    // machine.h: an access whose fault the handler "fixed" kMaxRetries times without a
    // usable translation stops with KERN_FAILURE; nothing else returns that code.
    if (a.kr != KERN_FAILURE) return std::nullopt;
    return "the page fault at " + hex_addr(a.fault_addr) + " was reported fixed " +
           std::to_string(machine::Machine::kMaxRetries) + " times without a usable translation";
  }

  std::string provenance(unsigned t, uint64_t va) const override { return describe_provenance(k_, t, va); }

  std::string object_provenance(unsigned m, uint64_t offset) const override {
    return describe_object_provenance(k_, m, offset);
  }

  std::string dot(const FailureSite& site) const override { return dot_graph(k_, site); }
  void check_step_invariants(std::vector<Violation>& out) const override { vmfuzz::check_step_invariants(k_, out); }
  std::string threads() const override { return describe_threads(k_); }

  // The order is quiesce_step's (vm/kernel.cc): option 0 is what a drain step does.
  std::vector<SchedAction> enabled_actions() const override {
    std::vector<SchedAction> out;
    for (uint32_t id : k_.scheduler().runnable())
      out.push_back(SchedAction{SchedAction::Kind::Run, id, 0, (uint64_t{1} << 60) | id});
    for (unsigned m = 0; m < kMaxNames; ++m) {
      const vm::ManagerPager* mp = k_.memory_object(m);
      if (!mp || mp->silent()) continue;
      if (mp->init_object != 0)
        out.push_back(SchedAction{SchedAction::Kind::Ready, m, 0,
                                  (uint64_t{3} << 60) | (uint64_t{m} << 40) | mp->init_object});
      for (size_t i = 0; i < mp->requests.size(); ++i)
        out.push_back(SchedAction{SchedAction::Kind::Reply, m, static_cast<unsigned>(i),
                                  (uint64_t{2} << 60) | mp->requests[i].id});
    }
    return out;
  }

 private:
  vm::Kernel& k_;
};

}  // namespace

std::unique_ptr<VmObserver> make_kernel_observer(vm::Kernel& kernel) {
  return std::make_unique<KernelObserver>(kernel);
}

Subject make_vm_subject(const SystemConfig& config) {
  auto kernel = std::make_unique<vm::Kernel>(config);
  Subject s;
  s.observer = make_kernel_observer(*kernel);
  s.system = std::move(kernel);
  return s;
}

}  // namespace vmfuzz::harness
