// dot.h — explanations of the VM's state: the object graph as Graphviz DOT, the provenance
// of one byte, and the VmObserver that plugs a vm::Kernel's oracles into the executor.
//
// Theory of operation
// -------------------
// Everything here reads the kernel through its const introspection (vm/kernel.h: tasks,
// entries, objects by stable creation-order id, provenance, the machine's TLBs) and never
// changes it, so a picture or an explanation taken at a failure shows the state that
// failed. Output depends only on that state (ids, never pointers), so it is deterministic.
//
// The DOT graph: one cluster per task holding its map entries (range, prot/max,
// inheritance, needs_copy, shared), one node per object (id, ref_count, resident count,
// size, flags, copy strategy), edges entry -> object (label: offset), object -> shadow
// (solid, label: shadow_offset) and object -> copy (dashed, "copy"), and one note per
// memory object (m0..m15) pointing (dotted) at its kernel object. The object that supplied
// the diverging byte is filled red, with the chain above it drawn bold.
#pragma once

#include <cstdint>
#include <string>

#include "harness/executor.h"
#include "harness/report.h"

namespace vmfuzz::vm {
class Kernel;
}

namespace vmfuzz::harness {

/// Purpose:    Graphviz DOT of `kernel`'s tasks, entries and objects.
/// Conditions: never: changes the kernel.
/// Results:    A complete `digraph vm { ... }`; the object behind `site` (a task page)
///             highlighted when there is one.
std::string dot_graph(const vm::Kernel& kernel, const FailureSite& site);

/// Purpose:    One line: which object at which depth of which chain supplies task t's
///             byte at va (resident in frame N, zero-fill, no object yet, unmapped).
std::string describe_provenance(const vm::Kernel& kernel, unsigned t, uint64_t va);

/// Purpose:    One line: which kernel object caches memory object m, whether the page at
///             offset is resident there or only in the manager's store.
std::string describe_object_provenance(const vm::Kernel& kernel, unsigned m, uint64_t offset);

/// Purpose:    The VmObserver of a kernel: check_vm_invariants,
///             check_tlb_coherence, check_teardown (harness/invariants.h), the machine's
///             fault-loop signal, provenance and the DOT picture.
/// Conditions: the kernel outlives the observer.
std::unique_ptr<VmObserver> make_kernel_observer(vm::Kernel& kernel);

}  // namespace vmfuzz::harness
