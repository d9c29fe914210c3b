// bugs.cc — names and switches of the bug catalogue (see bugs.h).
#include "vm/bugs.h"

#include <cstdlib>

namespace vmfuzz::vm {

namespace {

struct BugRow {
  const char* name;
  const char* description;
};

constexpr BugRow kBugs[] = {
#define VMFUZZ_BUG(E, NAME, DESC) {NAME, DESC},
#include "vm/bugs.def"
#undef VMFUZZ_BUG
};

uint64_t g_mask = 0;
bool g_initialized = false;

void init_from_env() {
  g_initialized = true;
  const char* env = std::getenv("VMFUZZ_BUG");
  if (env == nullptr || !bugs_compiled_in()) return;
  std::string list(env);
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    Bug b;
    if (bug_from_name(list.substr(pos, comma - pos), &b)) g_mask |= uint64_t{1} << unsigned(b);
    pos = comma + 1;
  }
}

}  // namespace

static_assert(kBugCount <= 64, "bug catalogue: the switch set is one 64-bit mask");

const char* bug_name(Bug b) { return kBugs[unsigned(b)].name; }
const char* bug_description(Bug b) { return kBugs[unsigned(b)].description; }

bool bug_from_name(const std::string& name, Bug* out) {
  for (unsigned i = 0; i < kBugCount; ++i) {
    if (name == kBugs[i].name) {
      *out = Bug(i);
      return true;
    }
  }
  return false;
}

bool bugs_compiled_in() {
#if defined(VMFUZZ_BUGS) && VMFUZZ_BUGS
  return true;
#else
  return false;
#endif
}

void set_bug(Bug b, bool on) {
  if (!g_initialized) init_from_env();
  if (!bugs_compiled_in()) return;
  if (on)
    g_mask |= uint64_t{1} << unsigned(b);
  else
    g_mask &= ~(uint64_t{1} << unsigned(b));
}

void clear_bugs() {
  g_initialized = true;
  g_mask = 0;
}

bool bug_enabled(Bug b) {
  if (!g_initialized) init_from_env();
  return (g_mask >> unsigned(b)) & 1;
}

}  // namespace vmfuzz::vm
