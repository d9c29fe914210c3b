// invariants.h — the checkers of the VM's, the pmap's and the machine's invariants.
//
// Theory of operation
// -------------------
// Each checker reads the kernel's structures, the page tables (straight from the
// simulated frames, not through the pmap layer it judges) and the TLBs, without side
// effects, and appends one Violation per problem found, naming its oracle (the rows of
// oracles.def whose layer is Vm, Pmap or Machine say what each one checks) and,
// in `detail`, the object, frame or address.
#pragma once

#include <string>
#include <vector>

#include "harness/exec/oracles.h"

namespace vmfuzz {

namespace vm {
class Kernel;
}

/// Purpose:    Every full-check oracle of layer Vm, Pmap or Machine (all but tlb_coherent
///             and teardown, which have their own calls) (full checks; O(objects + pages +
///             page-table entries)).
/// Conditions: between ops. never: changes anything (no A/D bits, no TLB changes).
void check_vm_invariants(const vm::Kernel& k, std::vector<Violation>& out);

/// Purpose:    tlb_coherent only (cheap: O(TLB entries); after every op).
void check_tlb_coherence(const vm::Kernel& k, std::vector<Violation>& out);

/// Purpose:    The step invariants of docs/concurrency.md: paging_accounting and
///             wait_target, at every scheduler step (after every op and every thread run).
///             O(objects + pages) once the kernel has ever sent a request to a held
///             manager; nothing before.
void check_step_invariants(const vm::Kernel& k, std::vector<Violation>& out);

/// Every kernel thread in flight and every request in flight, one line each.
std::string describe_threads(const vm::Kernel& k);

/// Purpose:    teardown: call when every task and handle is gone.
void check_teardown(const vm::Kernel& k, std::vector<Violation>& out);

}  // namespace vmfuzz
