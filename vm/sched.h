// sched.h — kernel threads and the deterministic scheduler (Mach's assert_wait /
// thread_block / thread_wakeup), with no OS thread anywhere.
//
// Theory of operation
// -------------------
// A kernel thread is an op in flight: a user access (read or write) that ran until a fault
// had to wait, or a kernel op (vm_copy, vm_write) whose overwrite had to wait for a
// destination page in transit or a manager not ready yet; it is now blocked, or it has
// been woken and is runnable. Nothing runs by
// itself: the program's `run` (one thread, chosen), `quiesce` and the end of a program
// decide who runs, one step at a time, so every schedule is a value of the input.
//
// Blocking, as in Mach: the fault calls assert_wait(event, yield point) on the current
// thread and returns kFaultBlocked; the MMU stops the access at the faulting byte
// (the bytes before it are moved: per-page atomicity, docs/concurrency.md), and the thread
// keeps its progress. thread_wakeup(event) makes every thread waiting on that event
// runnable. A woken thread resumes the access at the byte where it stopped, and the fault
// retries from the top (map lookup, chain walk), as vm_fault_page does after a wait: it
// re-checks everything, nothing it saw before it slept is trusted. A kernel op waits before
// it changes anything a task can see (vm_map_copy_overwrite_wait) and, woken, restarts
// from the top: vm_copy keeps nothing, vm_write keeps only the copy its message carries.
//
// Events are values, (kind, object id, offset), never pointers, so waking and the order
// of threads (by id) are deterministic. The yield points, the only places a thread can
// block, are the rows of vm/yield_points.def.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vm/machine/machine.h"

namespace vmfuzz::vm {

/// What a fault returns when the current thread must block (never leaves the kernel).
inline constexpr kern_return_t kFaultBlocked = static_cast<kern_return_t>(-1);

/// Mach's vm_object_absent_max: at most this many pages of one object may be absent
/// (requested, not yet answered); a fault that would exceed it waits (absent_below).
inline constexpr unsigned kAbsentMax = 4;

enum class YieldPoint : uint8_t {
#define VMFUZZ_YIELD(E, NAME, WHERE, WAITS) E,
#include "vm/yield_points.def"
#undef VMFUZZ_YIELD
};
const char* yield_point_name(YieldPoint y);

/// An event a thread can wait on (Mach's event_t, as a value).
struct WaitEvent {
  enum class Kind : uint8_t {
    None,
    PageBusy,     // the busy page at (object, offset) stops being busy
    AbsentBelow,  // object's absent_count drops below kAbsentMax
    PagerReady,   // object's manager answers memory_object_init (pager_ready)
  };
  Kind kind = Kind::None;
  uint64_t object = 0;  // object id
  uint64_t offset = 0;  // PageBusy only
  bool operator==(const WaitEvent&) const = default;
};
/// "page_busy(object 3, 0x2000)".
std::string wait_event_name(const WaitEvent& e);

struct VmMapCopy;

/// One kernel thread: a user access or a kernel op in flight.
struct KThread {
  /// Access: a read or write through the MMU, resumed where it stopped. VmCopy, VmWrite:
  /// the kernel op, which waits before it changes anything and restarts from the top
  /// (docs/concurrency.md §Threads).
  enum class Kind : uint8_t { Access, VmCopy, VmWrite };
  Kind kind = Kind::Access;
  uint32_t id = 0;
  unsigned task = 0, cpu = 0;
  bool write = false;
  uint64_t addr = 0, size = 0;  // an access's range; vm_copy's source range
  uint64_t dst = 0;             // vm_copy, vm_write: the destination address
  VmMapCopy* copy = nullptr;    // vm_write: the copy its message carries (the thread owns it)
  uint64_t wait_from = 0;       // the overwrite's wait: where it waited last (only bug
                                // overwrite_no_recheck resumes there)
  std::vector<uint8_t> data;  // write: the bytes to store
  uint64_t done = 0;          // bytes moved so far (the access resumes at addr + done)
  enum class State : uint8_t { Runnable, Blocked };
  State state = State::Runnable;
  WaitEvent event;                 // Blocked: what it waits on
  YieldPoint where = YieldPoint::DataRequest;  // Blocked: where it blocked
  uint64_t since_step = 0;         // the scheduler step at which it blocked or was woken
  bool memory_error = false;       // its request was answered data_error: the access fails
  WaitEvent woken_from;            // the event that woke it, until its next run ends
                                   // (only bug fault_no_recheck looks at it)
};

/// The scheduler: threads by id, the current thread, the step counter.
class Scheduler {
 public:
  /// The thread whose access or kernel op is running now (a new op's not-yet-numbered
  /// thread too); nullptr in kernel paths that run no thread (they never block).
  KThread* current = nullptr;
  std::map<uint32_t, KThread> threads;  // in flight, by id
  uint32_t next_id = 1;
  uint64_t step = 0;                    // scheduler steps so far (runs and replies)

  /// Mach's assert_wait + the decision to thread_block: the current thread will block on
  /// e at yield point y when the fault returns kFaultBlocked.
  void assert_wait(const WaitEvent& e, YieldPoint y);
  /// Make every thread blocked on e runnable (id order). Returns how many.
  unsigned thread_wakeup(const WaitEvent& e);
  /// Runnable thread ids, ascending.
  std::vector<uint32_t> runnable() const;
};

}  // namespace vmfuzz::vm
