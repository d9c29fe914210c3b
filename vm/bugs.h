// bugs.h — the bug catalogue (bugs.def): named, realistic VM bugs that can be switched on
// at run time in a test build (VMFUZZ_BUGS=1) so the harness can measure its own power.
//
// Theory of operation: each bug is one `if (VMFUZZ_BUG_ON(Name))` at the place the bug
// would live in real code. With VMFUZZ_BUGS undefined (release builds) the macro is the
// constant false and the compiler drops the buggy branch. The switches are one process-
// wide bit set, initialized from the VMFUZZ_BUG environment variable (comma-separated
// names) on first use, changed by set_bug()/clear_bugs(). Nothing else reads the
// environment; a run is determined by its input and this setting.
#pragma once

#include <cstdint>
#include <string>

namespace vmfuzz::vm {

enum class Bug : uint8_t {
#define VMFUZZ_BUG(E, NAME, DESC) E,
#include "vm/bugs.def"
#undef VMFUZZ_BUG
};
inline constexpr unsigned kBugCount = 0
#define VMFUZZ_BUG(E, NAME, DESC) +1
#include "vm/bugs.def"
#undef VMFUZZ_BUG
    ;

/// The catalogue name ("missed_push") and description of a bug.
const char* bug_name(Bug b);
const char* bug_description(Bug b);
/// Parse a catalogue name; false if unknown.
bool bug_from_name(const std::string& name, Bug* out);

/// Whether bugs can be switched on in this build.
bool bugs_compiled_in();
/// Switch one bug (no effect unless bugs_compiled_in()).
void set_bug(Bug b, bool on);
/// Switch every bug off.
void clear_bugs();
/// Is the bug on? (Reads VMFUZZ_BUG on first use.)
bool bug_enabled(Bug b);

}  // namespace vmfuzz::vm

#if defined(VMFUZZ_BUGS) && VMFUZZ_BUGS
#define VMFUZZ_BUG_ON(E) (::vmfuzz::vm::bug_enabled(::vmfuzz::vm::Bug::E))
#else
#define VMFUZZ_BUG_ON(E) false
#endif
