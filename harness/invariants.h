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

#include "harness/oracles.h"

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

/// Purpose:    teardown: call when every task and handle is gone.
void check_teardown(const vm::Kernel& k, std::vector<Violation>& out);

}  // namespace vmfuzz
