// profile.h — the Linux profile: which ops the Linux backend can run exactly.
//
// Theory of operation
// -------------------
// A trace is *in profile* when every op in it can be run on Linux with exactly the
// meaning docs/language.md gives it (docs/linux.md lists what maps and why). Most of the
// profile is a property of single ops, decided here before anything runs
// (op_out_of_profile). What depends on the state the program reaches — an address the
// helper's own image holds, a mapping beyond the task's address-space limit — is found
// by LinuxSystem as it runs, which throws OutOfProfile with the reason. Either way the
// trace is counted as out of profile with one reason; nothing is ever approximated.
#pragma once

#include <optional>
#include <string>

#include "vmfuzz/vocab.h"

namespace vmfuzz::linux_backend {

/// Purpose:    Why `op` cannot be run exactly on Linux whatever state it meets, or
///             nullopt when it can (it may still meet a state that refuses it: see top).
/// Results:    a one-line reason starting with the op's keyword ("destroy: ...").
std::optional<std::string> op_out_of_profile(const Op& op);

/// Does a protection ask for execute without read or write (x86 Linux would let loads
/// read it unless protection keys are used; the language forbids the load)?
inline bool exec_only(vm_prot_t p) { return (p & VM_PROT_EXECUTE) && !(p & (VM_PROT_READ | VM_PROT_WRITE)); }

}  // namespace vmfuzz::linux_backend
