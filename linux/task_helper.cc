// task_helper.cc — vmfuzz-linux-task: the zygote and the trace tasks of the Linux backend.
//
// Theory of operation
// -------------------
// The harness executes this program once per harness process, with one end of a socket
// pair as descriptor 3 (wire::kZygoteFd) and its own pid as argv[1]. The program is then
// the *zygote*: it serves Spawn requests by forking a fresh task process, which serves the
// socket passed with the request. A task serves Mmap, Munmap, Mprotect, Madvise, Read,
// Write, Fork and Exit on its socket (protocol.h); Fork forks the task itself (the Linux
// fork the trace asked for) and the child serves the socket passed with the request.
//
// Lifetime and safety (every process here must die with the harness):
//   - the zygote has PR_SET_PDEATHSIG(SIGKILL) towards the harness, checked against
//     argv[1] after setting it (no race with an early harness death), leads its own
//     process group (Ctrl-C in the harness's terminal does not reach it, the harness kills
//     the group by its id), and is a child subreaper, so tasks orphaned by `terminate` of
//     their Linux parent stay its descendants (and the harness's);
//   - tasks cannot use PDEATHSIG (their Linux parent is a trace task that may terminate
//     first); each blocks in read() on its socket whenever idle, and the harness holds the
//     only other end (close-on-exec), so the harness's death is EOF and the task exits.
//     A task also has an alarm (SIGALRM kills it) and a CPU-time limit;
//   - every task runs under an address-space limit (RLIMIT_AS, set by the zygote);
//   - every task moves its stack away from the top of user space (move_stack_and_serve);
//   - SIGCHLD is ignored, so exited children are reaped by the kernel.
// The zygote runs with address-space randomization off (it re-executes itself once under
// personality(ADDR_NO_RANDOMIZE)) so that where its own image lies — the only addresses a
// trace cannot have — is the same on every run.
//
// This file is built without sanitizers and without libFuzzer instrumentation: an ASan
// process maps shadow memory over a large part of the user address space, where the
// trace's regions must go.
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "linux/protocol.h"

namespace {

using namespace vmfuzz::linux_backend::wire;

constexpr uint64_t kPage = 4096;
constexpr rlim_t kAddressSpaceLimit = rlim_t(128) << 30;  // 128 GiB per task (virtual)
// Where a task's stack moves (see move_stack): an address no table of the codec names and
// far from both ends of user space, which traces probe.
constexpr uint64_t kStackBase = 0x6a5a5a000000;
constexpr uint64_t kStackSize = 256 * 1024;
constexpr rlim_t kCpuSeconds = 60;

int g_sock = -1;

/// Read exactly n bytes; false on EOF or error.
bool read_all(int fd, void* p, size_t n) {
  auto* c = static_cast<char*>(p);
  while (n) {
    ssize_t r = read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool write_all(int fd, const void* p, size_t n) {
  auto* c = static_cast<const char*>(p);
  while (n) {
    ssize_t r = write(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

/// Receive one Request header, and a descriptor if one came with it (else *fd = -1).
bool recv_request(Request* rq, int* fd) {
  *fd = -1;
  struct iovec iov = {rq, sizeof *rq};
  alignas(struct cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))];
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctrl;
  mh.msg_controllen = sizeof ctrl;
  ssize_t r;
  do r = recvmsg(g_sock, &mh, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r <= 0) return false;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) std::memcpy(fd, CMSG_DATA(c), sizeof(int));
  size_t got = static_cast<size_t>(r);
  if (got < sizeof *rq) return read_all(g_sock, reinterpret_cast<char*>(rq) + got, sizeof *rq - got);
  return true;
}

void reply(const Reply& rp, const void* payload = nullptr) {
  if (!write_all(g_sock, &rp, sizeof rp)) _exit(3);
  if (rp.len && !write_all(g_sock, payload, rp.len)) _exit(3);
}

Reply result_of(long v) {
  Reply rp;
  rp.value = v;
  if (v < 0) rp.err = errno;
  return rp;
}

// --- In-process accesses ---------------------------------------------------------------
sigjmp_buf g_jmp;
volatile sig_atomic_t g_in_access = 0;
volatile int g_fault_signo = 0, g_fault_code = 0;

void on_fault(int signo, siginfo_t* si, void*) {
  if (!g_in_access) _exit(4);  // a fault outside an access is the helper's own bug
  g_fault_signo = signo;
  g_fault_code = si->si_code;
  siglongjmp(g_jmp, 1);
}

Fault fault_kind() {
  if (g_fault_signo == SIGBUS) return Fault::Bus;
  if (g_fault_code == SEGV_MAPERR) return Fault::MapErr;
  if (g_fault_code == SEGV_ACCERR) return Fault::AccErr;
  return Fault::Other;
}

/// Move bytes between the task's memory at `va` and `buf`, one page piece at a time, as
/// loads (is_write false) or stores; stops at the first piece that faults. Pieces never
/// cross a page, and permissions are per page, so a faulting piece moved nothing.
void access(uint64_t va, uint64_t len, bool is_write, uint8_t* buf, Reply* rp) {
  static uint64_t done;  // static: survives siglongjmp
  done = 0;
  while (done < len) {
    uint64_t a = va + done;
    uint64_t n = kPage - (a % kPage);
    if (n > len - done) n = len - done;
    if (sigsetjmp(g_jmp, 1)) {
      g_in_access = 0;
      rp->fault = fault_kind();
      rp->fault_addr = a;
      break;
    }
    g_in_access = 1;
    if (is_write)
      std::memcpy(reinterpret_cast<void*>(a), buf + done, n);
    else
      std::memcpy(buf + done, reinterpret_cast<const void*>(a), n);
    g_in_access = 0;
    done += n;
  }
  rp->len = is_write ? 0 : done;
}

// --- The task's request loop -----------------------------------------------------------
[[noreturn]] void serve_task(unsigned alarm_s) {
  alarm(alarm_s);
  std::vector<uint8_t> buf;
  for (;;) {
    Request rq;
    int fd;
    if (!recv_request(&rq, &fd)) _exit(0);  // EOF: the harness is gone
    if (rq.len) {
      buf.resize(rq.len);
      if (!read_all(g_sock, buf.data(), rq.len)) _exit(0);
    }
    switch (rq.cmd) {
      case Cmd::Mmap: {
        void* p = mmap(reinterpret_cast<void*>(rq.a), rq.b, static_cast<int>(rq.c), static_cast<int>(rq.d), fd,
                       static_cast<off_t>(rq.e));
        Reply rp = result_of(p == MAP_FAILED ? -1 : 0);
        if (p != MAP_FAILED && reinterpret_cast<uint64_t>(p) != rq.a) {  // an old kernel ignoring NOREPLACE
          munmap(p, rq.b);
          rp.value = -1;
          rp.err = EEXIST;
        }
        if (fd >= 0) close(fd);
        reply(rp);
        break;
      }
      case Cmd::Munmap: reply(result_of(munmap(reinterpret_cast<void*>(rq.a), rq.b))); break;
      case Cmd::Mprotect:
        reply(result_of(mprotect(reinterpret_cast<void*>(rq.a), rq.b, static_cast<int>(rq.c))));
        break;
      case Cmd::Madvise:
        reply(result_of(madvise(reinterpret_cast<void*>(rq.a), rq.b, static_cast<int>(rq.c))));
        break;
      case Cmd::Read: {
        buf.resize(rq.b);
        Reply rp;
        access(rq.a, rq.b, false, buf.data(), &rp);
        reply(rp, buf.data());
        break;
      }
      case Cmd::Write: {
        Reply rp;
        access(rq.a, rq.len, true, buf.data(), &rp);
        reply(rp);
        break;
      }
      case Cmd::Fork: {
        pid_t pid = fork();
        if (pid == 0) {
          close(g_sock);
          g_sock = fd;
          alarm(alarm_s);
          continue;  // the child serves the new socket; it replies to nothing yet
        }
        if (fd >= 0) close(fd);
        reply(result_of(pid));
        break;
      }
      case Cmd::Exit: _exit(0);
      case Cmd::Ping: reply(result_of(getpid())); break;
      default: {
        Reply rp;
        rp.value = -1;
        rp.err = ENOSYS;
        if (fd >= 0) close(fd);
        reply(rp);
      }
    }
  }
}

// --- Moving the stack ------------------------------------------------------------------
// The kernel puts the initial stack at the top of user space, where traces like to map.
// A task moves onto a stack at kStackBase and unmaps the old one ([stack] in its maps).
// Nothing on the old stack is used afterwards: argv and the environment are not read again
// (no getenv), the auxiliary vector was consumed at startup, TLS is elsewhere.

unsigned g_alarm_s = 60;

/// Unmap the [stack] VMA; best effort (if it stays, the trace meets it as before).
void unmap_old_stack() {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  static char buf[1 << 16];
  size_t used = 0;
  for (ssize_t r; used < sizeof buf - 1 && (r = read(fd, buf + used, sizeof buf - 1 - used)) > 0;)
    used += static_cast<size_t>(r);
  close(fd);
  buf[used] = 0;
  for (char* line = buf; line && *line;) {
    char* nl = std::strchr(line, '\n');
    if (nl) *nl = 0;
    if (std::strstr(line, "[stack]")) {
      unsigned long long a = std::strtoull(line, nullptr, 16);
      unsigned long long b = std::strtoull(std::strchr(line, '-') + 1, nullptr, 16);
      munmap(reinterpret_cast<void*>(a), b - a);
      return;
    }
    line = nl ? nl + 1 : nullptr;
  }
}

[[noreturn]] void on_new_stack() {
  unmap_old_stack();
  if (g_alarm_s == 0) {  // a spare (see make_spare): wait for the socket to serve
    Request rq;
    int fd;
    if (!recv_request(&rq, &fd) || fd < 0) _exit(0);  // the zygote is gone
    close(g_sock);
    g_sock = fd;
    g_alarm_s = static_cast<unsigned>(rq.a ? rq.a : 60);
  }
  serve_task(g_alarm_s);
}

[[noreturn]] void move_stack_and_serve(unsigned alarm_s) {
  g_alarm_s = alarm_s;
  void* p = mmap(reinterpret_cast<void*>(kStackBase), kStackSize, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED) serve_task(alarm_s);  // stay where we are
  uint64_t top = kStackBase + kStackSize - 64;  // 16-byte aligned, room for the call
  void (*fn)() = on_new_stack;
  asm volatile("mov %0, %%rsp\n\tcall *%1\n\tud2" : : "r"(top), "r"(fn) : "memory");
  __builtin_unreachable();
}

// --- The zygote ------------------------------------------------------------------------
// The zygote keeps one spare task forked ahead of the next Spawn, its limits set and its
// stack moved, waiting on a control socket for the socket it is to serve: a Spawn costs
// the harness one message, and the fork of the next spare runs after the reply.
pid_t g_spare = -1;
int g_spare_ctl = -1;

void set_task_limits() {
  struct rlimit as = {kAddressSpaceLimit, kAddressSpaceLimit};
  struct rlimit cpu = {kCpuSeconds, kCpuSeconds};
  setrlimit(RLIMIT_AS, &as);
  setrlimit(RLIMIT_CPU, &cpu);
}

void make_spare() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return;
  pid_t pid = fork();
  if (pid < 0) {
    close(sv[0]);
    close(sv[1]);
    return;
  }
  if (pid == 0) {
    close(g_sock);  // the harness's socket to the zygote: only the zygote may hold it
    close(sv[0]);
    g_sock = sv[1];
    set_task_limits();
    move_stack_and_serve(0);
  }
  close(sv[1]);
  g_spare = pid;
  g_spare_ctl = sv[0];
}

/// Hand `fd` to the spare; false if there is none or it is gone.
bool hand_to_spare(int fd, uint64_t alarm_s) {
  if (g_spare < 0) return false;
  Request rq{Cmd::Spawn};
  rq.a = alarm_s;
  struct iovec iov = {&rq, sizeof rq};
  alignas(struct cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctrl;
  mh.msg_controllen = sizeof ctrl;
  struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  bool ok = sendmsg(g_spare_ctl, &mh, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof rq);
  close(g_spare_ctl);
  g_spare_ctl = -1;
  if (!ok) {
    kill(g_spare, SIGKILL);
    g_spare = -1;
  }
  return ok;
}

[[noreturn]] void serve_zygote() {
  for (;;) {
    Request rq;
    int fd;
    if (!recv_request(&rq, &fd)) _exit(0);
    if (rq.cmd == Cmd::Ping) {
      reply(result_of(getpid()));
      if (g_spare < 0) make_spare();
      continue;
    }
    if (rq.cmd != Cmd::Spawn || fd < 0) {
      Reply rp;
      rp.value = -1;
      rp.err = EINVAL;
      if (fd >= 0) close(fd);
      reply(rp);
      continue;
    }
    if (g_spare < 0) make_spare();
    pid_t pid = g_spare;
    if (!hand_to_spare(fd, rq.a)) {
      close(fd);
      Reply rp;
      rp.value = -1;
      rp.err = EAGAIN;
      reply(rp);
      continue;
    }
    g_spare = -1;
    close(fd);
    reply(result_of(pid));
    make_spare();  // off the harness's critical path
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    static const char msg[] = "vmfuzz-linux-task: started by the Linux backend, not by hand\n";
    (void)!write(2, msg, sizeof msg - 1);
    return 2;
  }
  pid_t harness = static_cast<pid_t>(std::strtol(argv[1], nullptr, 10));
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != harness) _exit(1);
  int pers = personality(0xffffffff);
  if (pers != -1 && !(pers & ADDR_NO_RANDOMIZE) && personality(static_cast<unsigned long>(pers) | ADDR_NO_RANDOMIZE) != -1)
    execv("/proc/self/exe", argv);  // once, to lay the image out without randomization;
                                    // if it fails we carry on randomized
  setpgid(0, 0);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  signal(SIGCHLD, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  struct sigaction sa = {};
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGSEGV, &sa, nullptr);
  sigaction(SIGBUS, &sa, nullptr);
  g_sock = kZygoteFd;
  serve_zygote();
}
