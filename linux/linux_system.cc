// linux_system.cc — the Linux backend: the translation of linux_system.h, the zygote
// client, and the views read from /proc and the memfds.
//
// Layout: process plumbing (helper path, zygote, one request), then region bookkeeping
// (the same vocabulary as the reference model: find, clip, check_range, find_space, but
// written here afresh: this side must not share code with the model it judges), then
// contents (which pages may hold data: PAGEMAP_SCAN / pagemap for private pieces,
// SEEK_DATA on memfds for shared ones), then the ops in vocab order, then the views.
#include "linux/linux_system.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "linux/protocol.h"

// PAGEMAP_SCAN (Linux 6.7 uapi, <linux/fs.h>), declared here when the installed headers
// predate it; the ioctl is probed at run time and the plain pagemap read is the fallback.
#ifndef PAGEMAP_SCAN
struct page_region {
  uint64_t start, end, categories;
};
struct pm_scan_arg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask,
      category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#endif

#ifndef VMFUZZ_LINUX_HELPER_PATH
#define VMFUZZ_LINUX_HELPER_PATH "vmfuzz-linux-task"
#endif

namespace vmfuzz::linux_backend {

namespace {

namespace w = wire;
constexpr uint64_t kLastPage = ~uint64_t{0} & ~(kPageSize - 1);
constexpr int kReplyTimeoutMs = 20000;
constexpr unsigned kTaskAlarmSeconds = 120;
/// The largest memfd: Linux files end below 2^63. Objects above it keep their size here
/// (the range checks of docs/language.md use it) and a memfd of this size: bytes beyond it are zero and
/// stay so, since storing there (manager_write, a shared mapping) is refused.
constexpr uint64_t kShmCap = 0x7ffffffffffff000ull;

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}
std::string errno_name(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : ("errno " + std::to_string(e));
}
[[noreturn]] void refused(const std::string& call, int e) { throw KernelRefused(call + ": " + errno_name(e)); }

bool page_range(uint64_t addr, uint64_t size, uint64_t* start, uint64_t* end) {
  if (size > UINT64_MAX - addr || addr + size > kLastPage) return false;
  *start = trunc_page(addr);
  *end = round_page(addr + size);
  return true;
}

int linux_prot(vm_prot_t p) {
  return ((p & VM_PROT_READ) ? PROT_READ : 0) | ((p & VM_PROT_WRITE) ? PROT_WRITE : 0) |
         ((p & VM_PROT_EXECUTE) ? PROT_EXEC : 0);
}
void refuse_exec_only(vm_prot_t p) {
  if ((p & VM_PROT_EXECUTE) && !(p & (VM_PROT_READ | VM_PROT_WRITE)))
    throw OutOfProfile("execute-only protection (--x): x86 Linux lets loads read it unless protection keys are in use");
}
bool all_zero(const uint8_t* p, size_t n) {
  return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
}

// --- Process plumbing ------------------------------------------------------------------

bool send_all(int fd, const void* p, size_t n) {
  auto* c = static_cast<const char*>(p);
  while (n) {
    ssize_t r = send(fd, c, n, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

/// Our end of a helper's socket: replies time out after kReplyTimeoutMs (SO_RCVTIMEO).
void set_reply_timeout(int fd) {
  struct timeval tv = {kReplyTimeoutMs / 1000, (kReplyTimeoutMs % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

bool recv_all(int fd, void* p, size_t n) {
  auto* c = static_cast<char*>(p);
  while (n) {
    ssize_t r = read(fd, c, n);  // EAGAIN after the timeout: the helper hung
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

/// One request and its reply on `sock`; pass_fd (>= 0) goes with the header. Throws
/// KernelRefused when the helper does not answer (died, hung).
/// Send one request, with `pass_fd` (if >= 0) as SCM_RIGHTS; false if the helper is gone.
bool send_request(int sock, const w::Request& rq, int pass_fd) {
  struct iovec iov = {const_cast<w::Request*>(&rq), sizeof rq};
  alignas(struct cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (pass_fd >= 0) {
    mh.msg_control = ctrl;
    mh.msg_controllen = sizeof ctrl;
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  ssize_t r;
  do r = sendmsg(sock, &mh, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return r == static_cast<ssize_t>(sizeof rq);
}

w::Reply rpc(int sock, const w::Request& rq, std::span<const uint8_t> payload, int pass_fd,
             std::vector<uint8_t>* out, const char* who) {
  bool ok = send_request(sock, rq, pass_fd) && (payload.empty() || send_all(sock, payload.data(), payload.size()));
  w::Reply rp;
  ok = ok && recv_all(sock, &rp, sizeof rp);
  if (ok && rp.len) {
    std::vector<uint8_t> sink;
    std::vector<uint8_t>& dst = out ? *out : sink;
    dst.resize(rp.len);
    ok = recv_all(sock, dst.data(), rp.len);
  } else if (ok && out) {
    out->clear();
  }
  if (!ok) throw KernelRefused(std::string(who) + ": the helper process died or did not answer");
  return rp;
}

/// The zygote of this process: started on first use, killed (with its process group) at
/// exit or by shutdown_linux_backend().
struct Zygote {
  pid_t pid = -1;
  int sock = -1;
  std::string failure;  // why it could not start (sticky until shutdown)

  static std::string helper_path() {
    const char* env = std::getenv("VMFUZZ_LINUX_HELPER");
    return env && *env ? env : VMFUZZ_LINUX_HELPER_PATH;
  }

  void start() {
    std::string path = helper_path();
    if (access(path.c_str(), X_OK) != 0) {
      failure = "the helper " + path + " is missing (build target vmfuzz-linux-task, or set VMFUZZ_LINUX_HELPER)";
      return;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      failure = "socketpair: " + errno_name(errno);
      return;
    }
    std::string me = std::to_string(getpid());
    pid_t p = ::fork();
    if (p < 0) {
      failure = "fork: " + errno_name(errno);
      close(sv[0]);
      close(sv[1]);
      return;
    }
    if (p == 0) {  // only async-signal-safe calls until execv
      setpgid(0, 0);
      if (dup2(sv[1], w::kZygoteFd) < 0) _exit(127);
      char* argv[] = {const_cast<char*>(path.c_str()), const_cast<char*>(me.c_str()), nullptr};
      execv(argv[0], argv);
      _exit(127);
    }
    setpgid(p, p);  // both sides set it: no window where kill(-p) misses the group
    close(sv[1]);
    set_reply_timeout(sv[0]);
    pid = p;
    sock = sv[0];
    static bool registered = false;
    if (!registered) {
      registered = true;
      std::atexit([] { shutdown_linux_backend(); });
    }
    try {
      w::Request rq{w::Cmd::Ping};
      rpc(sock, rq, {}, -1, nullptr, "zygote ping");
    } catch (const KernelRefused& e) {
      stop();
      failure = std::string("the helper did not start: ") + e.what();
    }
  }

  void stop() {
    if (pid > 0) {
      kill(-pid, SIGKILL);  // the zygote's group: only processes this program started
      kill(pid, SIGKILL);
      while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    if (sock >= 0) close(sock);
    pid = -1;
    sock = -1;
  }

  /// A fresh task process serving *our_end; returns its pid.
  pid_t spawn(int* our_end) {
    if (pid < 0 && failure.empty()) start();
    if (pid < 0) throw KernelRefused("starting the Linux helper: " + failure);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) refused("socketpair", errno);
    w::Request rq{w::Cmd::Spawn};
    rq.a = kTaskAlarmSeconds;
    w::Reply rp;
    try {
      rp = rpc(sock, rq, {}, sv[1], nullptr, "zygote spawn");
    } catch (...) {
      close(sv[0]);
      close(sv[1]);
      stop();
      throw;
    }
    close(sv[1]);
    if (rp.value < 0) {
      close(sv[0]);
      refused("fork (zygote)", rp.err);
    }
    set_reply_timeout(sv[0]);
    *our_end = sv[0];
    return static_cast<pid_t>(rp.value);
  }
};

Zygote& zygote() {
  static Zygote z;
  return z;
}

/// Data ranges [a, b) (page-aligned) of a private piece [start, end) of the process
/// behind pagemap_fd: pages present or swapped. Absent pages of private anonymous memory
/// read zero.
std::vector<std::pair<uint64_t, uint64_t>> present_ranges(int pagemap_fd, uint64_t start, uint64_t end) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  // -1 unknown, 0 no (the fallback; VMFUZZ_LINUX_NO_PAGEMAP_SCAN forces it, so that kernels
  // before 6.7 are tested here too), 1 yes.
  static int scan_works = std::getenv("VMFUZZ_LINUX_NO_PAGEMAP_SCAN") ? 0 : -1;
  if (scan_works != 0) {
    std::vector<page_region> vec(256);
    uint64_t at = start;
    while (at < end) {
      pm_scan_arg arg = {};
      arg.size = sizeof arg;
      arg.start = at;
      arg.end = end;
      arg.vec = reinterpret_cast<uint64_t>(vec.data());
      arg.vec_len = vec.size();
      arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
      arg.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
      long n = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);
      if (n < 0) {
        if (scan_works == -1 && (errno == ENOTTY || errno == EINVAL)) {
          scan_works = 0;
          out.clear();
          break;
        }
        refused("ioctl(PAGEMAP_SCAN)", errno);
      }
      scan_works = 1;
      for (long i = 0; i < n; i++) {
        if (!out.empty() && out.back().second == vec[i].start)
          out.back().second = vec[i].end;
        else
          out.emplace_back(vec[i].start, vec[i].end);
      }
      if (arg.walk_end <= at) break;
      at = arg.walk_end;
    }
    if (scan_works == 1) return out;
  }
  // Fallback: the pagemap entries, 512 at a time (bit 63 present, bit 62 swapped).
  std::vector<uint64_t> entries(512);
  for (uint64_t va = start; va < end;) {
    uint64_t n = std::min<uint64_t>(entries.size(), (end - va) / kPageSize);
    ssize_t got = pread(pagemap_fd, entries.data(), n * 8, static_cast<off_t>(va / kPageSize * 8));
    if (got < 0) refused("pread(/proc/PID/pagemap)", errno);
    if (got == 0) break;
    for (uint64_t i = 0; i < static_cast<uint64_t>(got) / 8; i++) {
      uint64_t p = va + i * kPageSize;
      if (entries[i] & (3ull << 62)) {
        if (!out.empty() && out.back().second == p)
          out.back().second = p + kPageSize;
        else
          out.emplace_back(p, p + kPageSize);
      }
    }
    va += static_cast<uint64_t>(got) / 8 * kPageSize;
  }
  return out;
}

/// Data ranges of memfd `fd` in [off, off+len) (SEEK_DATA / SEEK_HOLE), page-aligned, as
/// offsets.
std::vector<std::pair<uint64_t, uint64_t>> file_data_ranges(int fd, uint64_t off, uint64_t len) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  if (off >= kShmCap) return out;  // nothing lies beyond the cap
  uint64_t end = len > kShmCap - off ? kShmCap : off + len;
  for (uint64_t at = off; at < end;) {
    off_t d = lseek(fd, static_cast<off_t>(at), SEEK_DATA);
    if (d < 0) {
      if (errno == ENXIO) break;
      refused("lseek(memfd, SEEK_DATA)", errno);
    }
    if (static_cast<uint64_t>(d) >= end) break;
    off_t h = lseek(fd, d, SEEK_HOLE);
    if (h < 0) refused("lseek(memfd, SEEK_HOLE)", errno);
    uint64_t a = trunc_page(static_cast<uint64_t>(d)), b = std::min(end, round_page(static_cast<uint64_t>(h)));
    out.emplace_back(a, b);
    at = b;
  }
  return out;
}

void pread_all(int fd, uint8_t* out, uint64_t n, uint64_t off, const char* what) {
  if (off >= kShmCap || n > kShmCap - off) {  // a memfd offset past the cap: zeros there
    uint64_t keep = off >= kShmCap ? 0 : kShmCap - off;
    std::memset(out + keep, 0, n - keep);
    n = keep;
  }
  while (n) {
    ssize_t r = pread(fd, out, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) refused(std::string("pread(") + what + ")", errno);
    if (r == 0) {  // past the end: zeros
      std::memset(out, 0, n);
      return;
    }
    out += r;
    off += static_cast<uint64_t>(r);
    n -= static_cast<uint64_t>(r);
  }
}
void pwrite_all(int fd, const uint8_t* p, uint64_t n, uint64_t off, const char* what) {
  while (n) {
    ssize_t r = pwrite(fd, p, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) refused(std::string("pwrite(") + what + ")", r < 0 ? errno : EIO);
    p += r;
    off += static_cast<uint64_t>(r);
    n -= static_cast<uint64_t>(r);
  }
}

}  // namespace

// --- Backend-wide ----------------------------------------------------------------------

void shutdown_linux_backend() {
  Zygote& z = zygote();
  z.stop();
  z.failure.clear();
}

std::optional<std::string> linux_backend_unavailable() {
  try {
    LinuxSystem probe(SystemConfig{});
    probe.task_create(0);
    uint64_t a = 0x10000;
    if (probe.allocate(0, &a, kPageSize, false) != KERN_SUCCESS) return "allocate at 0x10000 failed";
    uint8_t b = 0x5a;
    if (probe.write(0, a, {&b, 1}, 0).kr != KERN_SUCCESS) return "a store into a fresh mapping faulted";
    std::array<uint8_t, kPageSize> page{};
    if (probe.peek_page(0, a, page) != PeekStatus::Mapped || page[0] != 0x5a) return "/proc/PID/mem read back wrong";
    probe.object_create(0, kPageSize, CopyStrategy::None, false, {&b, 1});
  } catch (const std::exception& e) {
    return e.what();
  }
  return std::nullopt;
}

LinuxSystem::LinuxSystem(const SystemConfig& config) { (void)config; }

LinuxSystem::~LinuxSystem() {
  for (Task& tk : tasks_)
    if (tk.live) close_task(tk);
  for (int fd : shms_) close(fd);
}

LinuxSystem::Task& LinuxSystem::task(unsigned t) {
  if (t >= kMaxNames || !tasks_[t].live) throw KernelRefused("linux backend: no task t" + std::to_string(t));
  return tasks_[t];
}
const LinuxSystem::Task& LinuxSystem::task(unsigned t) const {
  if (t >= kMaxNames || !tasks_[t].live) throw KernelRefused("linux backend: no task t" + std::to_string(t));
  return tasks_[t];
}

void LinuxSystem::advise(unsigned t, uint64_t addr, uint64_t len, int advice) {
  call_simple(task(t), static_cast<int>(w::Cmd::Madvise), addr, len, static_cast<uint64_t>(advice), "madvise");
  drain(task(t));  // synchronous: the caller reads pagemap next
}

pid_t LinuxSystem::pid_of(unsigned t) const { return t < kMaxNames && tasks_[t].live ? tasks_[t].pid : -1; }

void LinuxSystem::open_proc_files(Task& tk) {
  std::string base = "/proc/" + std::to_string(tk.pid);
  tk.mem_fd = open((base + "/mem").c_str(), O_RDWR | O_CLOEXEC);
  if (tk.mem_fd < 0) refused("open(" + base + "/mem)", errno);
  tk.pagemap_fd = open((base + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC);
  if (tk.pagemap_fd < 0) refused("open(" + base + "/pagemap)", errno);
}

void LinuxSystem::close_task(Task& tk) {
  if (tk.sock >= 0) {
    // Exit, and do not wait: the process is gone to every later op (its name is free, and
    // what it shared lives on in the others), and waiting for its teardown would cost one
    // scheduling round trip per task. Were the request lost, the EOF of close() ends it.
    w::Request rq{w::Cmd::Exit};
    (void)send_all(tk.sock, &rq, sizeof rq);
    close(tk.sock);
  }
  if (tk.mem_fd >= 0) close(tk.mem_fd);
  if (tk.pagemap_fd >= 0) close(tk.pagemap_fd);
  tk = Task{};
}

int LinuxSystem::new_shm(uint64_t size, const char* what) {
  int fd = memfd_create(what, MFD_CLOEXEC);
  if (fd < 0) refused("memfd_create", errno);
  shms_.push_back(fd);
  if (ftruncate(fd, static_cast<off_t>(std::min(size, kShmCap))) != 0) refused("ftruncate(memfd)", errno);
  return static_cast<int>(shms_.size() - 1);
}

// --- Region bookkeeping ----------------------------------------------------------------

const LinuxSystem::Piece* LinuxSystem::find(const Task& tk, uint64_t va) {
  auto it = tk.pieces.upper_bound(va);
  if (it == tk.pieces.begin()) return nullptr;
  --it;
  return va < it->second.end ? &it->second : nullptr;
}

void LinuxSystem::clip(Task& tk, uint64_t va) {
  auto it = tk.pieces.upper_bound(va);
  if (it == tk.pieces.begin()) return;
  Piece& p = std::prev(it)->second;
  if (va <= p.start || va >= p.end) return;
  Piece tail = p;
  tail.start = va;
  if (tail.shm >= 0) tail.shm_off = p.shm_off + (va - p.start);
  p.end = va;
  tk.pieces.emplace(va, tail);
}

std::vector<LinuxSystem::Piece*> LinuxSystem::clip_range(Task& tk, uint64_t start, uint64_t end) {
  clip(tk, start);
  clip(tk, end);
  std::vector<Piece*> out;
  for (auto it = tk.pieces.lower_bound(start); it != tk.pieces.end() && it->first < end; ++it)
    out.push_back(&it->second);
  return out;
}

kern_return_t LinuxSystem::check_range(const Task& tk, uint64_t start, uint64_t end, vm_prot_t need) {
  for (uint64_t va = start; va < end;) {
    const Piece* p = find(tk, va);
    if (!p) return KERN_INVALID_ADDRESS;
    if ((p->prot & need) != need) return KERN_PROTECTION_FAILURE;
    va = p->end;
  }
  return KERN_SUCCESS;
}

std::optional<uint64_t> LinuxSystem::find_space(const Task& tk, uint64_t length) {
  uint64_t at = kUserMin;
  for (const auto& [start, p] : tk.pieces) {
    if (start >= at && start - at >= length) break;
    at = std::max(at, p.end);
  }
  if (at > kUserMax || kUserMax - at < length) return std::nullopt;
  return at;
}

bool LinuxSystem::range_free(const Task& tk, uint64_t start, uint64_t end) {
  auto it = tk.pieces.lower_bound(start);
  if (it != tk.pieces.end() && it->first < end) return false;
  return it == tk.pieces.begin() || std::prev(it)->second.end <= start;
}

// --- Kernel calls in a task ------------------------------------------------------------

// Calls that must succeed are posted: sent without waiting, their replies read by the next
// drain(), which every reader of the task's state and every waiting request runs first.
// A failure is thus raised before any result that could depend on the call is used, and
// one scheduling round trip per call is saved (the harness and the helper otherwise wake
// each other once per mmap, mprotect, munmap and madvise).
constexpr size_t kMaxPending = 64;

void LinuxSystem::post(Task& tk, const void* request, int fd, const char* what) {
  const auto& rq = *static_cast<const w::Request*>(request);
  if (!send_request(tk.sock, rq, fd)) throw KernelRefused(std::string(what) + ": the helper process died");
  tk.pending.push_back({what, rq.a, rq.b});
  if (tk.pending.size() - tk.pending_head >= kMaxPending) drain(tk);
}

void LinuxSystem::drain(const Task& tk) const {
  while (tk.pending_head < tk.pending.size()) {
    Task::Posted call = tk.pending[tk.pending_head++];
    std::string name = std::string(call.what) + " of " + hex(call.a) + "+" + hex(call.b);
    w::Reply rp;
    if (!recv_all(tk.sock, &rp, sizeof rp)) throw KernelRefused(name + ": the helper process died or did not answer");
    if (rp.value >= 0) continue;
    tk.pending.clear();  // the run ends here
    tk.pending_head = 0;
    bool is_mmap = std::strncmp(call.what, "mmap", 4) == 0;
    if (is_mmap && rp.err == EEXIST)
      throw OutOfProfile(name + ": EEXIST: the range holds the Linux helper's own image, heap or stack");
    if (is_mmap && rp.err == ENOMEM)
      throw OutOfProfile(name + ": ENOMEM: beyond a Linux task's address-space limit (128 GiB) or map count");
    refused(name, rp.err);
  }
  tk.pending.clear();
  tk.pending_head = 0;
}

void LinuxSystem::call_mmap(Task& tk, uint64_t addr, uint64_t len, int prot, int flags, int fd, uint64_t off,
                            bool replace) {
  w::Request rq{w::Cmd::Mmap};
  rq.a = addr;
  rq.b = len;
  rq.c = static_cast<uint64_t>(prot);
  rq.d = static_cast<uint64_t>(flags | (replace ? MAP_FIXED : MAP_FIXED_NOREPLACE));
  rq.e = off;
  post(tk, &rq, fd, "mmap");
}

void LinuxSystem::call_simple(Task& tk, int cmd, uint64_t a, uint64_t b, uint64_t c, const char* what) {
  w::Request rq{static_cast<w::Cmd>(cmd)};
  rq.a = a;
  rq.b = b;
  rq.c = c;
  post(tk, &rq, -1, what);
}

// --- Contents --------------------------------------------------------------------------

bool LinuxSystem::page_present(const Task& tk, uint64_t va) const {
  drain(tk);
  auto r = present_ranges(tk.pagemap_fd, va, va + kPageSize);
  return !r.empty();
}

void LinuxSystem::read_page(const Task& tk, uint64_t va, uint8_t* out) const {
  drain(tk);
  const Piece* p = find(tk, va);
  if (!p) {
    std::memset(out, 0, kPageSize);
    return;
  }
  if (p->shm >= 0) {
    pread_all(shms_[static_cast<size_t>(p->shm)], out, kPageSize, p->shm_off + (va - p->start), "memfd");
    return;
  }
  if (!page_present(tk, va)) {
    std::memset(out, 0, kPageSize);
    return;
  }
  pread_all(tk.mem_fd, out, kPageSize, va, "/proc/PID/mem");
}

void LinuxSystem::write_pages(Task& tk, uint64_t va, const uint8_t* data, uint64_t len) {
  drain(tk);
  pwrite_all(tk.mem_fd, data, len, va, "/proc/PID/mem");
}

/// The non-zero pages of the mapped [start, end) of tk, by index from start, whatever
/// their protection (read from /proc/PID/mem and the memfds; absent private pages are zero).
void LinuxSystem::collect(const Task& tk, uint64_t start, uint64_t end,
                          std::map<uint64_t, std::array<uint8_t, kPageSize>>* pages) const {
  drain(tk);
  std::array<uint8_t, kPageSize> page;
  for (uint64_t va = start; va < end;) {
    const Piece* p = find(tk, va);
    if (!p) {  // a hole: skip to the next piece
      auto it = tk.pieces.upper_bound(va);
      if (it == tk.pieces.end()) break;
      va = it->first;
      continue;
    }
    uint64_t stop = std::min(end, p->end);
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    if (p->shm >= 0) {
      for (auto [a, b] : file_data_ranges(shms_[static_cast<size_t>(p->shm)], p->shm_off + (va - p->start),
                                          stop - va))
        ranges.emplace_back(p->start + (a - p->shm_off), p->start + (b - p->shm_off));
    } else {
      ranges = present_ranges(tk.pagemap_fd, va, stop);
    }
    for (auto [a, b] : ranges)
      for (uint64_t q = a; q < b; q += kPageSize) {
        read_page(tk, q, page.data());
        if (!all_zero(page.data(), kPageSize)) (*pages)[(q - start) / kPageSize] = page;
      }
    va = stop;
  }
}

kern_return_t LinuxSystem::snapshot(const Task& tk, uint64_t addr, uint64_t size, Handle* out) const {
  *out = Handle{};
  out->live = true;
  out->src = addr;
  out->size = size;
  if (size == 0) return KERN_SUCCESS;
  uint64_t start = 0, end = 0;
  if (!page_range(addr, size, &start, &end)) return KERN_INVALID_ADDRESS;
  if (kern_return_t kr = check_range(tk, start, end, VM_PROT_READ)) return kr;
  out->page_count = (end - start) / kPageSize;
  collect(tk, start, end, &out->pages);
  return KERN_SUCCESS;
}

kern_return_t LinuxSystem::overwrite(Task& tk, uint64_t dst, const Handle& h) {
  if (h.page_count == 0) return KERN_SUCCESS;
  if ((h.src | h.size | dst) & (kPageSize - 1)) return KERN_INVALID_ARGUMENT;
  uint64_t start = 0, end = 0;
  if (!page_range(dst, h.size, &start, &end)) return KERN_INVALID_ADDRESS;
  if (kern_return_t kr = check_range(tk, start, end, VM_PROT_WRITE)) return kr;
  // The destination's pages that hold data now are zeroed where the copy has none.
  std::map<uint64_t, std::array<uint8_t, kPageSize>> now;
  collect(tk, start, end, &now);
  static const std::array<uint8_t, kPageSize> zero{};
  for (const auto& [i, page] : now)
    if (!h.pages.count(i)) write_pages(tk, start + i * kPageSize, zero.data(), kPageSize);
  for (const auto& [i, page] : h.pages) write_pages(tk, start + i * kPageSize, page.data(), kPageSize);
  return KERN_SUCCESS;
}

/// A private anonymous mapping at the free [start, end) holding a copy of memfd `shm`
/// from shm_off, then protection prot.
void LinuxSystem::fill_private(Task& tk, uint64_t start, uint64_t end, vm_prot_t prot, int shm, uint64_t shm_off) {
  call_mmap(tk, start, end - start, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, false);
  int fd = shms_[static_cast<size_t>(shm)];
  std::vector<uint8_t> buf(kPageSize);
  for (auto [a, b] : file_data_ranges(fd, shm_off, end - start))
    for (uint64_t o = a; o < b; o += kPageSize) {
      pread_all(fd, buf.data(), kPageSize, o, "memfd");
      if (!all_zero(buf.data(), kPageSize)) write_pages(tk, start + (o - shm_off), buf.data(), kPageSize);
    }
  if (linux_prot(prot) != (PROT_READ | PROT_WRITE))
    call_simple(tk, static_cast<int>(w::Cmd::Mprotect), start, end - start, static_cast<uint64_t>(linux_prot(prot)),
                "mprotect");
}

kern_return_t LinuxSystem::enter_private(Task& tk, bool anywhere, uint64_t start, uint64_t length, uint64_t* addr) {
  if (anywhere) {
    std::optional<uint64_t> found = find_space(tk, length);
    if (!found) return KERN_NO_SPACE;
    start = *found;
  } else {
    if (start < kUserMin || start > kUserMax || kUserMax - start < length) return KERN_INVALID_ADDRESS;
    if (!range_free(tk, start, start + length)) return KERN_NO_SPACE;
  }
  call_mmap(tk, start, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, false);
  Piece p;
  p.start = start;
  p.end = start + length;
  tk.pieces.emplace(start, p);
  *addr = start;
  return KERN_SUCCESS;
}

// --- Ops -------------------------------------------------------------------------------

void LinuxSystem::task_create(unsigned t) {
  Task& tk = tasks_[t];
  tk = Task{};
  tk.pid = zygote().spawn(&tk.sock);
  tk.live = true;
  counters_.processes++;
  open_proc_files(tk);
}

kern_return_t LinuxSystem::allocate(unsigned t, uint64_t* addr, uint64_t size, bool anywhere) {
  Task& tk = task(t);
  if (size == 0) {
    *addr = 0;
    return KERN_SUCCESS;
  }
  uint64_t start = 0, end = 0;
  if (anywhere) {
    if (size > kLastPage) return KERN_INVALID_ARGUMENT;
    end = round_page(size);
  } else if (!page_range(*addr, size, &start, &end)) {
    return KERN_INVALID_ARGUMENT;
  }
  return enter_private(tk, anywhere, start, end - start, addr);
}

kern_return_t LinuxSystem::deallocate(unsigned t, uint64_t addr, uint64_t size) {
  Task& tk = task(t);
  uint64_t start = 0, end = 0;
  if (size == 0) return KERN_SUCCESS;
  if (!page_range(addr, size, &start, &end)) return KERN_INVALID_ARGUMENT;
  for (Piece* p : clip_range(tk, start, end))  // only our pieces: never the helper's own
    call_simple(tk, static_cast<int>(w::Cmd::Munmap), p->start, p->end - p->start, 0, "munmap");
  tk.pieces.erase(tk.pieces.lower_bound(start), tk.pieces.lower_bound(end));
  return KERN_SUCCESS;
}

kern_return_t LinuxSystem::protect(unsigned t, uint64_t addr, uint64_t size, bool set_max, vm_prot_t prot) {
  Task& tk = task(t);
  if (set_max) throw OutOfProfile("protect max: Linux has no maximum protection that a call can lower");
  uint64_t start = 0, end = 0;
  if (size == 0) return KERN_SUCCESS;
  if (!page_range(addr, size, &start, &end)) return KERN_INVALID_ARGUMENT;
  std::vector<Piece*> inside = clip_range(tk, start, end);
  if (!inside.empty()) refuse_exec_only(prot);
  for (Piece* p : inside) {
    call_simple(tk, static_cast<int>(w::Cmd::Mprotect), p->start, p->end - p->start,
                static_cast<uint64_t>(linux_prot(prot)), "mprotect");
    p->prot = prot;
  }
  return KERN_SUCCESS;
}

kern_return_t LinuxSystem::inherit(unsigned t, uint64_t addr, uint64_t size, vm_inherit_t inh) {
  Task& tk = task(t);
  uint64_t start = 0, end = 0;
  if (size == 0) return KERN_SUCCESS;
  if (!page_range(addr, size, &start, &end)) return KERN_INVALID_ARGUMENT;
  for (Piece* p : clip_range(tk, start, end)) {
    uint64_t len = p->end - p->start;
    if (inh == vm_inherit_t::Share && p->shm < 0) {
      drain(tk);
      // Private anonymous memory cannot become shared: move its contents into a fresh
      // memfd mapped MAP_SHARED in its place (MAP_FIXED replaces the old pages atomically).
      int shm = new_shm(len, "vmfuzz-shared");
      int fd = shms_[static_cast<size_t>(shm)];
      std::array<uint8_t, kPageSize> page;
      for (auto [a, b] : present_ranges(tk.pagemap_fd, p->start, p->end))
        for (uint64_t q = a; q < b; q += kPageSize) {
          pread_all(tk.mem_fd, page.data(), kPageSize, q, "/proc/PID/mem");
          if (!all_zero(page.data(), kPageSize)) pwrite_all(fd, page.data(), kPageSize, q - p->start, "memfd");
        }
      call_mmap(tk, p->start, len, linux_prot(p->prot), MAP_SHARED, fd, 0, true);
      p->shm = shm;
      p->shm_off = 0;
      counters_.shared_conversions++;
    } else {
      call_simple(tk, static_cast<int>(w::Cmd::Madvise), p->start, len,
                  static_cast<uint64_t>(inh == vm_inherit_t::None ? MADV_DONTFORK : MADV_DOFORK),
                  inh == vm_inherit_t::None ? "madvise(MADV_DONTFORK)" : "madvise(MADV_DOFORK)");
    }
    p->inherit = inh;
  }
  return KERN_SUCCESS;
}

Access LinuxSystem::in_process(Task& tk, bool is_write, uint64_t addr, uint64_t size, std::span<const uint8_t> data) {
  Access a;
  if (size == 0) return a;
  drain(tk);
  // Only pages of the trace's own pieces are touched: where the tracked map has a hole
  // the helper's own image could lie, so the access stops there with KERN_INVALID_ADDRESS.
  uint64_t reach = addr;
  while (reach - addr < size) {
    const Piece* p = find(tk, reach);
    if (!p) break;
    reach = p->end;
  }
  uint64_t n = std::min<uint64_t>(size, reach > addr ? reach - addr : 0);
  if (addr > kLastPage) n = 0;  // reach wrapped: nothing mapped there
  w::Reply rp;
  if (n) {
    w::Request rq{is_write ? w::Cmd::Write : w::Cmd::Read};
    rq.a = addr;
    rq.b = n;
    rq.len = is_write ? n : 0;
    rp = rpc(tk.sock, rq, is_write ? data.first(n) : std::span<const uint8_t>{}, -1, is_write ? nullptr : &a.bytes,
             is_write ? "store" : "load");
  }
  if (rp.fault != w::Fault::None) {
    a.fault_addr = rp.fault_addr;
    switch (rp.fault) {
      case w::Fault::MapErr: a.kr = KERN_INVALID_ADDRESS; break;
      case w::Fault::AccErr: a.kr = KERN_PROTECTION_FAILURE; break;
      case w::Fault::Bus: a.kr = KERN_MEMORY_ERROR; break;
      default: throw KernelRefused("access at " + hex(rp.fault_addr) + ": SIGSEGV with an unexpected si_code");
    }
  } else if (n < size) {
    a.kr = KERN_INVALID_ADDRESS;
    a.fault_addr = addr + n;
  }
  if (is_write) {
    uint64_t moved = a.kr == KERN_SUCCESS ? size : a.fault_addr - addr;
    a.bytes.assign(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(moved));
  }
  return a;
}

Access LinuxSystem::write(unsigned t, uint64_t addr, std::span<const uint8_t> data, unsigned cpu) {
  (void)cpu;
  return in_process(task(t), true, addr, data.size(), data);
}

Access LinuxSystem::read(unsigned t, uint64_t addr, uint64_t size, unsigned cpu) {
  (void)cpu;
  return in_process(task(t), false, addr, size, {});
}

void LinuxSystem::fork(unsigned parent, unsigned child) {
  Task& tk = task(parent);
  // MAP_SHARED pieces with inheritance copy: Linux would share them; keep them out of the
  // fork and give the child a private copy right after.
  std::vector<Piece> copied;
  for (auto& [start, p] : tk.pieces)
    if (p.shm >= 0 && p.inherit == vm_inherit_t::Copy) {
      call_simple(tk, static_cast<int>(w::Cmd::Madvise), p.start, p.end - p.start, MADV_DONTFORK,
                  "madvise(MADV_DONTFORK)");
      copied.push_back(p);
    }
  drain(tk);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) refused("socketpair", errno);
  w::Request rq{w::Cmd::Fork};
  w::Reply rp;
  try {
    rp = rpc(tk.sock, rq, {}, sv[1], nullptr, "fork");
  } catch (...) {
    close(sv[0]);
    close(sv[1]);
    throw;
  }
  close(sv[1]);
  if (rp.value < 0) {
    close(sv[0]);
    refused("fork", rp.err);
  }
  Task& kid = tasks_[child];
  kid = Task{};
  kid.live = true;
  kid.pid = static_cast<pid_t>(rp.value);
  kid.sock = sv[0];
  set_reply_timeout(kid.sock);
  counters_.processes++;
  open_proc_files(kid);
  for (const Piece& p : copied)
    call_simple(tk, static_cast<int>(w::Cmd::Madvise), p.start, p.end - p.start, MADV_DOFORK, "madvise(MADV_DOFORK)");
  for (const auto& [start, p] : tk.pieces)
    if (p.inherit != vm_inherit_t::None) kid.pieces.emplace(start, p);
  for (const Piece& p : copied) {
    fill_private(kid, p.start, p.end, p.prot, p.shm, p.shm_off);
    Piece& k = kid.pieces.at(p.start);
    k.shm = -1;
    k.shm_off = 0;
    counters_.fork_private_copies++;
  }
}

void LinuxSystem::terminate(unsigned t) { close_task(task(t)); }

kern_return_t LinuxSystem::vm_copy(unsigned t, uint64_t src, uint64_t size, uint64_t dst) {
  Task& tk = task(t);
  Handle h;
  if (kern_return_t kr = snapshot(tk, src, size, &h)) return kr;
  return overwrite(tk, dst, h);
}

kern_return_t LinuxSystem::vm_read(unsigned t, uint64_t addr, uint64_t size, unsigned c) {
  Handle h;
  if (kern_return_t kr = snapshot(task(t), addr, size, &h)) return kr;
  handles_[c] = std::move(h);
  return KERN_SUCCESS;
}

kern_return_t LinuxSystem::vm_write(unsigned t, uint64_t addr, unsigned c) {
  Task& tk = task(t);
  Handle h = std::move(handles_[c]);
  handles_[c] = Handle{};
  return overwrite(tk, addr, h);
}

kern_return_t LinuxSystem::copyout(unsigned t, unsigned c, uint64_t* addr) {
  Task& tk = task(t);
  Handle h = std::move(handles_[c]);
  handles_[c] = Handle{};
  *addr = 0;
  if (h.page_count == 0) return KERN_SUCCESS;
  uint64_t base = 0;
  kern_return_t kr = enter_private(tk, true, 0, h.page_count * kPageSize, &base);
  if (kr != KERN_SUCCESS) return kr;
  for (const auto& [i, page] : h.pages) write_pages(tk, base + i * kPageSize, page.data(), kPageSize);
  *addr = base + (h.src & (kPageSize - 1));
  return KERN_SUCCESS;
}

void LinuxSystem::discard(unsigned c) { handles_[c] = Handle{}; }

void LinuxSystem::object_create(unsigned m, uint64_t size, CopyStrategy strategy, bool persist,
                                std::span<const uint8_t> init) {
  (void)persist;  // the object cache is not observable
  if (strategy == CopyStrategy::Call)
    throw OutOfProfile("object with copy strategy call: Linux has no manager-assisted copy");
  Object& o = objects_[m];
  o = Object{};
  o.size = size > kLastPage ? kLastPage : round_page(size);
  o.strategy = strategy;
  o.shm = new_shm(o.size, "vmfuzz-object");
  o.live = true;
  if (!init.empty()) pwrite_all(shms_[static_cast<size_t>(o.shm)], init.data(), init.size(), 0, "memfd");
}

void LinuxSystem::device_create(unsigned, uint64_t, std::span<const uint8_t>) {
  throw OutOfProfile("device: device memory has no Linux counterpart in this profile");
}

kern_return_t LinuxSystem::map(unsigned t, uint64_t* addr, bool anywhere, uint64_t size, unsigned m, uint64_t offset,
                               bool share, vm_prot_t prot, vm_prot_t max_prot, vm_inherit_t inh) {
  Task& tk = task(t);
  const Object& o = objects_[m];
  if (!o.live) throw KernelRefused("linux backend: no object m" + std::to_string(m));
  if (size == 0 || offset % kPageSize != 0 || offset > o.size || size > o.size - offset || (prot & ~max_prot))
    return KERN_INVALID_ARGUMENT;
  if (max_prot != VM_PROT_ALL) throw OutOfProfile("map max=: Linux has no maximum protection of a mapping");
  refuse_exec_only(prot);
  uint64_t length = round_page(size);
  uint64_t start = trunc_page(*addr);
  if (!anywhere && length > UINT64_MAX - start) return KERN_INVALID_ARGUMENT;
  if (anywhere) {
    std::optional<uint64_t> found = find_space(tk, length);
    if (!found) return KERN_NO_SPACE;
    start = *found;
  } else {
    if (start < kUserMin || start > kUserMax || kUserMax - start < length) return KERN_INVALID_ADDRESS;
    if (!range_free(tk, start, start + length)) return KERN_NO_SPACE;
  }
  Piece p;
  p.start = start;
  p.end = start + length;
  p.prot = prot;
  p.inherit = inh;
  if (share) {
    if (offset > kShmCap - length)
      throw OutOfProfile("map share at object offset " + hex(offset) + ": beyond the largest Linux file (2^63)");
    call_mmap(tk, start, length, linux_prot(prot), MAP_SHARED, shms_[static_cast<size_t>(o.shm)], offset, false);
    p.shm = o.shm;
    p.shm_off = offset;
  } else if (inh == vm_inherit_t::Share) {
    // A snapshot that forks share: a fresh memfd holding the window, mapped MAP_SHARED.
    int shm = new_shm(length, "vmfuzz-shared");
    int src = shms_[static_cast<size_t>(o.shm)], dst = shms_[static_cast<size_t>(shm)];
    std::vector<uint8_t> buf(kPageSize);
    for (auto [a, b] : file_data_ranges(src, offset, length))
      for (uint64_t q = a; q < b; q += kPageSize) {
        pread_all(src, buf.data(), kPageSize, q, "memfd");
        if (!all_zero(buf.data(), kPageSize)) pwrite_all(dst, buf.data(), kPageSize, q - offset, "memfd");
      }
    call_mmap(tk, start, length, linux_prot(prot), MAP_SHARED, dst, 0, false);
    p.shm = shm;
    p.shm_off = 0;
    counters_.shared_conversions++;
  } else {
    fill_private(tk, start, start + length, prot, o.shm, offset);  // a snapshot now
  }
  tk.pieces.emplace(start, p);
  if (inh == vm_inherit_t::None)
    call_simple(tk, static_cast<int>(w::Cmd::Madvise), start, length, MADV_DONTFORK, "madvise(MADV_DONTFORK)");
  *addr = start;
  return KERN_SUCCESS;
}

kern_return_t LinuxSystem::manager_write(unsigned m, uint64_t offset, std::span<const uint8_t> data) {
  const Object& o = objects_[m];
  if (!o.live) throw KernelRefused("linux backend: no object m" + std::to_string(m));
  if (o.strategy != CopyStrategy::None || offset > o.size || data.size() > o.size - offset) return KERN_INVALID_ARGUMENT;
  if (offset > kShmCap || data.size() > kShmCap - offset)
    throw OutOfProfile("manager_write at object offset " + hex(offset) + ": beyond the largest Linux file (2^63)");
  if (!data.empty()) pwrite_all(shms_[static_cast<size_t>(o.shm)], data.data(), data.size(), offset, "memfd");
  return KERN_SUCCESS;
}

Access LinuxSystem::file(unsigned m, uint64_t offset, uint64_t size) {
  const Object& o = objects_[m];
  if (!o.live) throw KernelRefused("linux backend: no object m" + std::to_string(m));
  Access a;
  if (offset > o.size || size > o.size - offset) {
    a.kr = KERN_INVALID_ARGUMENT;
    return a;
  }
  a.bytes.resize(size);
  if (size) pread_all(shms_[static_cast<size_t>(o.shm)], a.bytes.data(), size, offset, "memfd");
  return a;
}

kern_return_t LinuxSystem::destroy(unsigned) {
  throw OutOfProfile("destroy: Linux has no manager that can destroy memory under its mappings");
}

void LinuxSystem::collect(unsigned t) {
  (void)t;  // the kernel frees page tables itself; nothing a task reads changes either way
}

void LinuxSystem::pageout(uint64_t count, bool all) {
  uint64_t left = all ? UINT64_MAX : count;
  for (Task& tk : tasks_) {
    if (!tk.live) continue;
    for (auto& [start, p] : tk.pieces) {
      if (left == 0) return;
      uint64_t pages = std::min(left, (p.end - p.start) / kPageSize);
      call_simple(tk, static_cast<int>(w::Cmd::Madvise), p.start, pages * kPageSize, MADV_PAGEOUT,
                  "madvise(MADV_PAGEOUT)");
      counters_.pageout_calls++;
      left -= pages;
    }
  }
}

// --- Views -----------------------------------------------------------------------------

std::vector<RegionInfo> LinuxSystem::regions(unsigned t) const {
  const Task& tk = task(t);
  drain(tk);
  // The kernel's VMAs: protection from the perms column, DONTFORK from VmFlags "dc".
  struct Vma {
    uint64_t start, end;
    vm_prot_t prot;
    bool dontfork;
  };
  std::vector<Vma> vmas;
  // smaps costs a page-table walk per VMA; only its VmFlags ("dc": MADV_DONTFORK) are
  // needed here, and only when the trace asked for inheritance none somewhere.
  bool need_flags = std::any_of(tk.pieces.begin(), tk.pieces.end(),
                                [](const auto& kv) { return kv.second.inherit == vm_inherit_t::None; });
  std::string path = "/proc/" + std::to_string(tk.pid) + (need_flags ? "/smaps" : "/maps");
  std::string text;
  {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) refused("open(" + path + ")", errno);
    char buf[1 << 16];
    for (ssize_t r; (r = ::read(fd, buf, sizeof buf)) != 0;) {
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        int e = errno;
        close(fd);
        refused("read(" + path + ")", e);
      }
      text.append(buf, static_cast<size_t>(r));
    }
    close(fd);
  }
  // Lines "START-END PERMS ..." and, in smaps, "VmFlags: ..." after each VMA's header.
  for (size_t at = 0; at < text.size();) {
    size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    const char* line = text.c_str() + at;
    size_t len = nl - at;
    at = nl + 1;
    if (len > 8 && std::strncmp(line, "VmFlags:", 8) == 0) {
      if (!vmas.empty()) vmas.back().dontfork = std::string_view(line, len).find(" dc") != std::string_view::npos;
      continue;
    }
    char* end = nullptr;
    unsigned long long a = std::strtoull(line, &end, 16);
    if (end == line || *end != '-') continue;  // a field line of smaps
    const char* bstart = end + 1;
    unsigned long long b = std::strtoull(bstart, &end, 16);
    if (end == bstart || *end != ' ' || end + 4 > line + len) continue;
    const char* perms = end + 1;
    vm_prot_t pr = (perms[0] == 'r' ? VM_PROT_READ : 0) | (perms[1] == 'w' ? VM_PROT_WRITE : 0) |
                   (perms[2] == 'x' ? VM_PROT_EXECUTE : 0);
    vmas.push_back({a, b, pr, false});
  }
  std::vector<RegionInfo> out;
  auto emit = [&](RegionInfo r) {
    if (!out.empty() && out.back().end == r.start && out.back().prot == r.prot && out.back().inherit == r.inherit &&
        out.back().max_prot == r.max_prot)
      out.back().end = r.end;
    else
      out.push_back(r);
  };
  for (const auto& [start, p] : tk.pieces)
    for (const Vma& v : vmas) {
      uint64_t a = std::max(p.start, v.start), b = std::min(p.end, v.end);
      if (a >= b) continue;
      // Inheritance: none is what the kernel says (dc, read whenever some piece is none);
      // share and copy are the trace's.
      vm_inherit_t inh = v.dontfork ? vm_inherit_t::None
                                    : (p.inherit == vm_inherit_t::None ? vm_inherit_t::Copy : p.inherit);
      emit(RegionInfo{a, b, v.prot, VM_PROT_ALL, inh});
    }
  return out;
}

void LinuxSystem::pages_of_interest(unsigned t, std::vector<uint64_t>& out) const {
  const Task& tk = task(t);
  drain(tk);
  for (const auto& [start, p] : tk.pieces) {
    if (p.shm >= 0) {
      for (auto [a, b] : file_data_ranges(shms_[static_cast<size_t>(p.shm)], p.shm_off, p.end - p.start))
        for (uint64_t o = a; o < b; o += kPageSize) out.push_back(p.start + (o - p.shm_off));
    } else {
      for (auto [a, b] : present_ranges(tk.pagemap_fd, p.start, p.end))
        for (uint64_t q = a; q < b; q += kPageSize) out.push_back(q);
    }
  }
}

PeekStatus LinuxSystem::peek_page(unsigned t, uint64_t va, std::span<uint8_t, kPageSize> out) const {
  const Task& tk = task(t);
  if (!find(tk, va)) return PeekStatus::Unmapped;
  read_page(tk, va, out.data());
  return PeekStatus::Mapped;
}

PeekStatus LinuxSystem::peek_object_page(unsigned m, uint64_t offset, std::span<uint8_t, kPageSize> out) const {
  const Object& o = objects_[m];
  if (!o.live) return PeekStatus::Unknown;
  pread_all(shms_[static_cast<size_t>(o.shm)], out.data(), kPageSize, offset, "memfd");
  return PeekStatus::Mapped;
}

void LinuxSystem::object_pages_of_interest(unsigned m, std::vector<uint64_t>& out) const {
  const Object& o = objects_[m];
  if (!o.live) return;
  for (auto [a, b] : file_data_ranges(shms_[static_cast<size_t>(o.shm)], 0, o.size))
    for (uint64_t q = a; q < b; q += kPageSize) out.push_back(q);
}

}  // namespace vmfuzz::linux_backend
