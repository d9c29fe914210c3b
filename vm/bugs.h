// bugs.h — the bug catalogue as the VM and its tests see it: the registry of
// vm/machine/bugs.h (switches for every bug in vm/machine/bugs.def, in any layer)
// re-exported under vmfuzz::vm.
//
// Theory of operation: the registry lives in vm/machine/ so that pmap and machine code
// can hold bug sites without including vm/ headers (layer rule vm -> pmap -> machine);
// see vm/machine/bugs.h. Each bug is one `if (VMFUZZ_BUG_ON(Name))` at the place the bug
// would live in real code; without VMFUZZ_BUGS the macro is the constant false.
#pragma once

#include "vm/machine/bugs.h"

namespace vmfuzz::vm {

using bugs::Bug;
using bugs::bug_description;
using bugs::bug_enabled;
using bugs::bug_from_name;
using bugs::bug_name;
using bugs::bugs_compiled_in;
using bugs::clear_bugs;
using bugs::kBugCount;
using bugs::set_bug;

}  // namespace vmfuzz::vm
