// bugs.h — the switch registry of the bug catalogue (vm/machine/bugs.def): named, realistic
// VM bugs that can be switched on at run time in a test build (VMFUZZ_BUGS=1) so the
// harness can measure its own power (docs/bugs.md).
//
// Theory of operation: each bug is one `if (VMFUZZ_BUG_ON(Name))` at the place the bug
// would live in real code, in any layer: vm/, vm/pmap/ or vm/machine/. The registry lives
// here, at the bottom of the layer stack (vm -> pmap -> machine), and depends on nothing
// but the standard library, so every layer may include it without breaking the layer
// rule; bugs.def stays the one table (names, descriptions, enum order), and this is the
// one header for it. An unknown name in VMFUZZ_BUG ends the process with exit code 2 and
// the list of known bugs (a misspelt bug would otherwise run the correct VM).
//
// With VMFUZZ_BUGS undefined or 0 (the release preset) VMFUZZ_BUG_ON is the constant
// false and the compiler drops the buggy branch. Otherwise the switches are one
// process-wide bit set, initialized from the VMFUZZ_BUG environment variable
// (comma-separated names) on first use, changed by set_bug()/clear_bugs(). Nothing else
// reads the environment; a run is determined by its input and this setting. Header-only
// (inline functions and variables): no library owns it, so no layer links upward.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace vmfuzz::bugs {

enum class Bug : uint8_t {
#define VMFUZZ_BUG(E, NAME, DESC) E,
#include "vm/machine/bugs.def"
#undef VMFUZZ_BUG
};

struct BugRow {
  const char* name;
  const char* description;
};

inline constexpr BugRow kBugRows[] = {
#define VMFUZZ_BUG(E, NAME, DESC) {NAME, DESC},
#include "vm/machine/bugs.def"
#undef VMFUZZ_BUG
};
inline constexpr unsigned kBugCount = sizeof kBugRows / sizeof kBugRows[0];
static_assert(kBugCount <= 64, "bug catalogue: the switch set is one 64-bit mask");

/// Purpose: the catalogue name ("missed_push") and the one-line description of a bug.
/// Conditions: b is an enumerator of Bug. Results: static strings.
inline const char* bug_name(Bug b) { return kBugRows[unsigned(b)].name; }
inline const char* bug_description(Bug b) { return kBugRows[unsigned(b)].description; }

/// Purpose: parse a catalogue name. Results: true and *out set, or false if unknown.
inline bool bug_from_name(const std::string& name, Bug* out) {
  for (unsigned i = 0; i < kBugCount; ++i) {
    if (name == kBugRows[i].name) {
      *out = Bug(i);
      return true;
    }
  }
  return false;
}

/// Whether bugs can be switched on in this build.
inline constexpr bool bugs_compiled_in() {
#if defined(VMFUZZ_BUGS) && VMFUZZ_BUGS
  return true;
#else
  return false;
#endif
}

namespace detail {
inline uint64_t g_mask = 0;
inline bool g_initialized = false;

inline void init_from_env() {
  g_initialized = true;
  const char* env = std::getenv("VMFUZZ_BUG");
  if (env == nullptr || !bugs_compiled_in()) return;
  std::string list(env);
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    Bug b{};
    std::string name = list.substr(pos, comma - pos);
    if (bug_from_name(name, &b)) {
      g_mask |= uint64_t{1} << unsigned(b);
    } else if (!name.empty()) {
      // A misspelt bug must not run the correct VM and report it as caught or not caught.
      std::string known;
      for (unsigned i = 0; i < kBugCount; i++) known += std::string(i ? ", " : "") + bug_name(Bug(i));
      std::fprintf(stderr, "VMFUZZ_BUG: unknown bug '%s' (vm/machine/bugs.def knows: %s)\n", name.c_str(),
                   known.c_str());
      std::exit(2);
    }
    pos = comma + 1;
  }
}
}  // namespace detail

/// Purpose: switch one bug. Conditions: none. Results: no effect unless bugs_compiled_in().
inline void set_bug(Bug b, bool on) {
  if (!detail::g_initialized) detail::init_from_env();
  if (!bugs_compiled_in()) return;
  if (on)
    detail::g_mask |= uint64_t{1} << unsigned(b);
  else
    detail::g_mask &= ~(uint64_t{1} << unsigned(b));
}

/// Purpose: switch every bug off (the environment is not read afterwards).
inline void clear_bugs() {
  detail::g_initialized = true;
  detail::g_mask = 0;
}

/// Purpose: is the bug on? Results: reads VMFUZZ_BUG on first use; always false in a
/// build without VMFUZZ_BUGS.
inline bool bug_enabled(Bug b) {
  if (!detail::g_initialized) detail::init_from_env();
  return (detail::g_mask >> unsigned(b)) & 1;
}

}  // namespace vmfuzz::bugs

#if defined(VMFUZZ_BUGS) && VMFUZZ_BUGS
#define VMFUZZ_BUG_ON(E) (::vmfuzz::bugs::bug_enabled(::vmfuzz::bugs::Bug::E))
#else
#define VMFUZZ_BUG_ON(E) false
#endif
