// linux_system.h — the Linux kernel as a MemorySystem: every trace task a real process.
//
// Theory of operation
// -------------------
// `LinuxSystem` runs the op language on the kernel this program runs on. Each trace task
// is one Linux process (a vmfuzz-linux-task helper, forked from a zygote that this
// program executes once and keeps for its lifetime: a fork server), holding the task's
// regions at the trace's own addresses. The translation, op by op:
//
//   allocate      anonymous private mmap (MAP_FIXED_NOREPLACE | MAP_NORESERVE) at the
//                 address docs/language.md chooses (`any`: the lowest fit, computed here from the
//                 task's regions, which this side tracks for exactly that purpose)
//   deallocate    munmap of each mapped piece (holes are ignored, as in Mach)
//   protect       mprotect of each mapped piece (current protection only)
//   inherit       none: MADV_DONTFORK; copy: MADV_DOFORK; share: the piece becomes a
//                 MAP_SHARED mapping of a fresh memfd holding its current contents (Linux
//                 cannot make private anonymous memory shared; the eager copy is exact
//                 for every reader: this task sees the same bytes, other tasks keep
//                 theirs)
//   write, read   real stores and loads inside the task process; a fault is the kernel's
//                 SIGSEGV (SEGV_MAPERR: KERN_INVALID_ADDRESS, SEGV_ACCERR:
//                 KERN_PROTECTION_FAILURE) at the first byte not moved
//   fork          fork(2) of the task process. A MAP_SHARED piece with inheritance copy
//                 (Linux would share it) is excluded from the fork with MADV_DONTFORK for
//                 the duration, and the child gets a private copy of it made from the
//                 memfd right after the fork (nothing ran in between)
//   terminate     the process exits
//   vm_read       a snapshot, read now from /proc/PID/mem (pages pagemap shows neither
//                 present nor swapped in a private piece are zero and not read), held here
//   vm_copy, vm_write, copyout
//                 the snapshot written into the destination through /proc/PID/mem
//                 (copyout: into a fresh anonymous mapping at the lowest fit)
//   object        a memfd of the object's size holding its contents, held here
//   map share     MAP_SHARED mapping of the memfd window
//   map copy      a snapshot: an anonymous private mapping filled from the memfd now
//   manager_write pwrite on the memfd (strategy none only, as docs/language.md says)
//   file          pread on the memfd
//   pageout       MADV_PAGEOUT over the tasks' pieces in task and address order
//   collect       nothing: no call frees a process's page tables, and what collect
//                 promises (nothing a task reads changes) holds trivially
//   destroy, device, max protection, COPY_CALL objects, execute-only protection:
//                 out of profile (profile.h); throws OutOfProfile if reached anyway.
//
// The checks docs/language.md assigns to each op (wrap, user-space bounds, overlap, holes, permissions
// of kernel copies, alignment) are made here from the tracked regions; what the kernel
// decides itself — contents through fork, COW, sharing, memfds and pageout, and the
// faults of user accesses — is what this backend judges the model by. The views
// (regions, peek_page, pages_of_interest, ...) read the kernel: protections from
// /proc/PID/maps and VmFlags from /proc/PID/smaps, contents from /proc/PID/mem and the
// memfds, presence from /proc/PID/pagemap; none of them faults a page in.
//
// Two kinds of exception leave an op half done and end the run (the caller discards the
// system): OutOfProfile (the trace asks for what Linux cannot express exactly: a
// verdict, not an error) and KernelRefused (a call the translation needs failed: one
// line naming the call and errno; the run counts as skipped, never as agreement).
//
// Processes: see task_helper.cc for why every helper dies with this process. Here:
// every socket is close-on-exec, each LinuxSystem ends its tasks in its destructor, and
// shutdown_linux_backend() (also run at exit) kills the zygote's process group by its id.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "vmfuzz/vocab.h"

namespace vmfuzz::linux_backend {

/// The trace needs what Linux cannot express exactly; what() is the reason.
struct OutOfProfile : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// A call the translation needs failed or the helper died; what() is one line naming
/// the call and the errno ("madvise(MADV_PAGEOUT): EINVAL").
struct KernelRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Purpose:    Why this machine cannot run the Linux backend at all (no helper binary,
///             no memfd_create, no MAP_FIXED_NOREPLACE, /proc/PID/mem unreadable...), or
///             nullopt. Starts the zygote if needed (the probe is a real round trip).
std::optional<std::string> linux_backend_unavailable();

/// Purpose:    Kill the zygote's process group (every helper process this program
///             started) and forget it; the next LinuxSystem starts a new one. Idempotent.
void shutdown_linux_backend();

/// Counters of one LinuxSystem (translations that are exact but not one-to-one).
struct LinuxCounters {
  uint64_t processes = 0;           // task processes started (spawn and fork)
  uint64_t shared_conversions = 0;  // private pieces made MAP_SHARED memfd mappings by inherit share
  uint64_t fork_private_copies = 0; // MAP_SHARED pieces with inheritance copy copied at fork
  uint64_t pageout_calls = 0;       // madvise(MADV_PAGEOUT) calls
};

class LinuxSystem final : public MemorySystem {
 public:
  /// Conditions: the config is ignored (frames, TLBs and the cache are not Linux's).
  explicit LinuxSystem(const SystemConfig& config);
  ~LinuxSystem() override;
  LinuxSystem(const LinuxSystem&) = delete;
  LinuxSystem& operator=(const LinuxSystem&) = delete;

  void task_create(unsigned t) override;
  kern_return_t allocate(unsigned t, uint64_t* addr, uint64_t size, bool anywhere) override;
  kern_return_t deallocate(unsigned t, uint64_t addr, uint64_t size) override;
  kern_return_t protect(unsigned t, uint64_t addr, uint64_t size, bool set_max, vm_prot_t prot) override;
  kern_return_t inherit(unsigned t, uint64_t addr, uint64_t size, vm_inherit_t inh) override;
  Access write(unsigned t, uint64_t addr, std::span<const uint8_t> data, unsigned cpu) override;
  Access read(unsigned t, uint64_t addr, uint64_t size, unsigned cpu) override;
  void fork(unsigned parent, unsigned child) override;
  void terminate(unsigned t) override;
  kern_return_t vm_copy(unsigned t, uint64_t src, uint64_t size, uint64_t dst) override;
  kern_return_t vm_read(unsigned t, uint64_t addr, uint64_t size, unsigned c) override;
  kern_return_t vm_write(unsigned t, uint64_t addr, unsigned c) override;
  kern_return_t copyout(unsigned t, unsigned c, uint64_t* addr) override;
  void discard(unsigned c) override;
  void object_create(unsigned m, uint64_t size, CopyStrategy strategy, bool persist,
                     std::span<const uint8_t> init) override;
  void device_create(unsigned m, uint64_t size, std::span<const uint8_t> init) override;
  kern_return_t map(unsigned t, uint64_t* addr, bool anywhere, uint64_t size, unsigned m, uint64_t offset,
                    bool share, vm_prot_t prot, vm_prot_t max_prot, vm_inherit_t inh) override;
  kern_return_t manager_write(unsigned m, uint64_t offset, std::span<const uint8_t> data) override;
  Access file(unsigned m, uint64_t offset, uint64_t size) override;
  kern_return_t destroy(unsigned m) override;
  void pageout(uint64_t count, bool all) override;
  void collect(unsigned t) override;

  std::vector<RegionInfo> regions(unsigned t) const override;
  void pages_of_interest(unsigned t, std::vector<uint64_t>& out) const override;
  PeekStatus peek_page(unsigned t, uint64_t va, std::span<uint8_t, kPageSize> out) const override;
  PeekStatus peek_object_page(unsigned m, uint64_t offset, std::span<uint8_t, kPageSize> out) const override;
  void object_pages_of_interest(unsigned m, std::vector<uint64_t>& out) const override;

  /// Purpose:    madvise(advice) over [addr, addr+len) of task t: representation changes
  ///             the language has no op for (MADV_HUGEPAGE for THP, MADV_PAGEOUT of one
  ///             range), for the page-representation tests. Throws KernelRefused on error.
  void advise(unsigned t, uint64_t addr, uint64_t len, int advice);
  /// The pid of task t's process (tests read /proc/PID/pagemap through it); -1 if none.
  pid_t pid_of(unsigned t) const;
  const LinuxCounters& counters() const { return counters_; }

 private:
  /// One piece of a task's address space as the trace made it. private: anonymous
  /// private memory; shared: MAP_SHARED of memfd `shm` at `shm_off` (for `start`).
  struct Piece {
    uint64_t start = 0, end = 0;
    vm_prot_t prot = VM_PROT_DEFAULT;
    vm_inherit_t inherit = vm_inherit_t::Copy;
    int shm = -1;          // index into shms_, -1: private anonymous
    uint64_t shm_off = 0;
  };
  struct Task {
    bool live = false;
    pid_t pid = -1;
    int sock = -1;          // our end of the task's socket
    int mem_fd = -1;        // /proc/PID/mem
    int pagemap_fd = -1;    // /proc/PID/pagemap
    std::map<uint64_t, Piece> pieces;
    /// Requests sent whose replies are not read yet (mmap, munmap, mprotect, madvise:
    /// calls that must succeed), oldest first, each with the name of the call, to report
    /// if it failed. Drained before anything reads the task or waits for a reply.
    struct Posted {
      const char* what;
      uint64_t a, b;
    };
    mutable std::vector<Posted> pending;
    mutable size_t pending_head = 0;
  };
  struct Object {
    bool live = false;
    int shm = -1;
    uint64_t size = 0;
    CopyStrategy strategy = CopyStrategy::Delay;
  };
  /// A snapshot: non-zero pages by index from trunc(src).
  struct Handle {
    bool live = false;
    uint64_t src = 0, size = 0, page_count = 0;
    std::map<uint64_t, std::array<uint8_t, kPageSize>> pages;
  };

  Task& task(unsigned t);
  const Task& task(unsigned t) const;
  void open_proc_files(Task& tk);
  void close_task(Task& tk);
  int new_shm(uint64_t size, const char* what);
  // Region bookkeeping.
  static const Piece* find(const Task& tk, uint64_t va);
  static void clip(Task& tk, uint64_t va);
  static std::vector<Piece*> clip_range(Task& tk, uint64_t start, uint64_t end);
  static kern_return_t check_range(const Task& tk, uint64_t start, uint64_t end, vm_prot_t need);
  static std::optional<uint64_t> find_space(const Task& tk, uint64_t length);
  static bool range_free(const Task& tk, uint64_t start, uint64_t end);
  // Kernel calls in a task.
  void call_mmap(Task& tk, uint64_t addr, uint64_t len, int prot, int flags, int fd, uint64_t off, bool replace);
  void call_simple(Task& tk, int cmd, uint64_t a, uint64_t b, uint64_t c, const char* what);
  void post(Task& tk, const void* request, int fd, const char* what);
  void drain(const Task& tk) const;
  Access in_process(Task& tk, bool is_write, uint64_t addr, uint64_t size, std::span<const uint8_t> data);
  // Contents.
  bool page_present(const Task& tk, uint64_t va) const;
  void read_page(const Task& tk, uint64_t va, uint8_t* out) const;
  void write_pages(Task& tk, uint64_t va, const uint8_t* data, uint64_t len);
  void collect(const Task& tk, uint64_t start, uint64_t end,
               std::map<uint64_t, std::array<uint8_t, kPageSize>>* pages) const;
  kern_return_t snapshot(const Task& tk, uint64_t addr, uint64_t size, Handle* out) const;
  kern_return_t overwrite(Task& tk, uint64_t dst, const Handle& h);
  void fill_private(Task& tk, uint64_t start, uint64_t end, vm_prot_t prot, int shm, uint64_t shm_off);
  kern_return_t enter_private(Task& tk, bool anywhere, uint64_t start, uint64_t length, uint64_t* addr);

  std::array<Task, kMaxNames> tasks_;
  std::array<Object, kMaxNames> objects_;
  std::array<Handle, kMaxNames> handles_;
  std::vector<int> shms_;  // memfds, closed by the destructor
  LinuxCounters counters_;
};

}  // namespace vmfuzz::linux_backend
