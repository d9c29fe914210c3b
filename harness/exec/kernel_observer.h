// kernel_observer.h — the VM as a subject of the executor: a vm::Kernel and the observer
// that plugs its oracles and explanations into the executor (VmObserver, executor.h).
#pragma once

#include <memory>

#include "harness/exec/executor.h"

namespace vmfuzz::vm {
class Kernel;
}

namespace vmfuzz::harness {

/// Purpose:    The VmObserver of a kernel: the invariant checkers of invariants.h
///             (check_vm_invariants, check_tlb_coherence, check_teardown), the machine's
///             fault-loop signal, and dot.h's provenance and DOT picture.
/// Conditions: the kernel outlives the observer.
std::unique_ptr<VmObserver> make_kernel_observer(vm::Kernel& kernel);

}  // namespace vmfuzz::harness
