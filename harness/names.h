// names.h — which task, copy-handle and memory-object names exist (docs/language.md §Names).
//
// Theory of operation
// -------------------
// Names are small slots: tasks t0..t15, copy handles c0..c15, memory objects m0..m15.
// Whether an op may run depends on which names exist at that moment, which depends on
// earlier results (a vm_read binds its handle only when it succeeds), so it cannot be
// decided by the parser. NameState follows the slots through a run:
//   - t0 exists at the start; `task` and `fork`'s child create a task; `terminate` ends one.
//   - `vm_read` creates its handle on KERN_SUCCESS only; `vm_write` and `copyout` consume
//     their handle whatever the result (copyout even on KERN_NO_SPACE); `discard` drops it.
//   - `object` creates a memory object name for good: after `destroy` the name still
//     exists (map, manager_write and a second destroy answer KERN_INVALID_ARGUMENT).
// `check` says whether an op is usable input now, with the reason when it is not: a name
// that does not exist, a name created twice, `cpu=N` beyond the configured CPUs, or an
// object whose initial contents are longer than the object (or whose size wraps past 2^64
// when rounded to pages — a decision of ours, docs/language.md §Names). The executor calls
// check before running an op on either side and apply after; the binary decoder reads the
// same state to choose only names that pass check.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "vmfuzz/vocab.h"

namespace vmfuzz {

class NameState {
 public:
  /// Starts with t0 live and no handles or objects; remembers cfg.cpus for `cpu=N`.
  explicit NameState(const SystemConfig& cfg);

  bool task_live(unsigned t) const { return t < kMaxNames && (tasks_ >> t & 1); }
  bool copy_live(unsigned c) const { return c < kMaxNames && (copies_ >> c & 1); }
  bool object_live(unsigned m) const { return m < kMaxNames && (objects_ >> m & 1); }

  /// Purpose:    Decide whether `op` is usable input in the current state.
  /// Conditions: never: changes the state.
  /// Results:    nullopt if the op may run now; else the reason, e.g. "t3: no such task",
  ///             "c1: copy handle already exists", "cpu=2: only 2 CPUs configured (0..1)".
  std::optional<std::string> check(const Op& op) const;

  /// Purpose:    Record the names `op` created or ended.
  /// Conditions: entry: check(op) was nullopt. `result` is the op's result code
  ///             (KERN_SUCCESS for ops without one; for read/write/file the access code).
  void apply(const Op& op, kern_return_t result);

  uint16_t tasks_mask() const { return tasks_; }
  uint16_t copies_mask() const { return copies_; }
  uint16_t objects_mask() const { return objects_; }
  unsigned cpus() const { return cpus_; }

 private:
  uint16_t tasks_ = 1;  // bit i: task ti exists
  uint16_t copies_ = 0;
  uint16_t objects_ = 0;
  unsigned cpus_;
};

}  // namespace vmfuzz
