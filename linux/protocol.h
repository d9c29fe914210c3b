// protocol.h — the wire format between the harness and its Linux helper processes.
//
// Theory of operation
// -------------------
// The Linux backend (linux_system.h) never forks the harness itself: the harness may be a
// sanitized fuzzer whose shadow memory covers much of the user address space. Instead it
// executes one small, unsanitized helper (vmfuzz-linux-task, task_helper.cc) once, the
// *zygote*, and asks it for processes. Every helper process (the zygote, and each trace
// task) serves exactly one AF_UNIX stream socket: it reads a Request (plus `len` payload
// bytes, and for SPAWN, FORK and MMAP_FD one descriptor passed with SCM_RIGHTS on the
// request's first byte), does it, and writes one Reply (plus `len` payload bytes).
// Requests are strictly one at a time; the harness never pipelines.
//
// A task process is the Linux image of one trace task: its address space holds the
// trace's regions at the trace's own addresses, and user accesses (`read`, `write`) run
// as real loads and stores inside it, so that faults are the kernel's own (SIGSEGV with
// SEGV_MAPERR / SEGV_ACCERR). Everything else the harness reads from outside
// (/proc/PID/mem, /proc/PID/pagemap, the memfds it holds).
//
// Header-only, standard C++ and Linux headers; shared by linux_system.cc and the helper.
#pragma once

#include <cstdint>

namespace vmfuzz::linux_backend::wire {

enum class Cmd : uint32_t {
  Spawn = 1,      // zygote: fork a fresh, empty task serving the passed socket. a: alarm s
  Mmap = 2,       // a addr, b len, c prot, d flags (MAP_*), fd passed if flags & MAP_SHARED
                  //   with e = file offset; MAP_FIXED or MAP_FIXED_NOREPLACE given by caller
  Munmap = 3,     // a addr, b len
  Mprotect = 4,   // a addr, b len, c prot
  Madvise = 5,    // a addr, b len, c advice
  Read = 6,       // a addr, b len: in-process loads; reply payload = bytes moved
  Write = 7,      // a addr, b len, payload: in-process stores
  Fork = 8,       // fork; the child serves the passed socket. reply value = child pid
  Exit = 9,       // _exit(0) without a reply (the harness waits for EOF)
  Ping = 10,      // reply value = getpid()
};

/// One request. Fields a..e as each Cmd says; `len` payload bytes follow.
struct Request {
  Cmd cmd;
  uint32_t pad = 0;
  uint64_t a = 0, b = 0, c = 0, d = 0, e = 0;
  uint64_t len = 0;
};

/// Fault kinds of an in-process access.
enum class Fault : uint32_t { None = 0, MapErr = 1, AccErr = 2, Bus = 3, Other = 4 };

/// One reply. value: the syscall's result (or pid); err: errno when value < 0.
/// For Read/Write: fault and fault_addr (first byte not transferred) when the access stopped.
struct Reply {
  int64_t value = 0;
  int32_t err = 0;
  Fault fault = Fault::None;
  uint64_t fault_addr = 0;
  uint64_t len = 0;  // payload bytes following
};

/// The zygote's socket is this descriptor in the helper (set up before execve).
inline constexpr int kZygoteFd = 3;

}  // namespace vmfuzz::linux_backend::wire
