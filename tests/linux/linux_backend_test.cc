// linux_backend_test.cc — the Linux backend on the running kernel (linux/linux_system.h),
// its profile (linux/profile.h) and the three-way verdicts (threeway/three_way.h).
//
// Every test that needs the kernel skips, naming the missing feature, when
// linux_backend_unavailable() says the backend cannot run here. Questions in test names.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <cstddef>
#include <map>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "harness/lang/codec.h"
#include "harness/exec/executor.h"
#include "harness/lang/text.h"
#include "linux/linux_system.h"
#include "linux/profile.h"
#include "reference_model/model.h"
#include "threeway/three_way.h"

namespace vmfuzz::linux_backend {
namespace {

#define REQUIRE_LINUX()                                                               \
  do {                                                                                \
    if (std::optional<std::string> why = linux_backend_unavailable())                 \
      GTEST_SKIP() << "the kernel lacks what the Linux backend needs: " << *why;      \
  } while (0)

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

Program parse(const std::string& text) {
  Program p;
  ParseError err;
  EXPECT_TRUE(parse_trace(text, "<test>", &p, &err)) << err.what();
  return p;
}

/// Bit 63 (present) of the pagemap entry of va in pid.
bool present(pid_t pid, uint64_t va) {
  int fd = open(("/proc/" + std::to_string(pid) + "/pagemap").c_str(), O_RDONLY);
  uint64_t e = 0;
  bool ok = fd >= 0 && pread(fd, &e, 8, static_cast<off_t>(va / kPageSize * 8)) == 8;
  if (fd >= 0) close(fd);
  return ok && (e >> 63) & 1;
}

TEST(LinuxBackend, DoesAForkedChildSeeTheParentsSnapshotAndNotItsLaterWrites) {
  REQUIRE_LINUX();
  LinuxSystem sys(SystemConfig{});
  sys.task_create(0);
  uint64_t a = 0x10000;
  ASSERT_EQ(sys.allocate(0, &a, 0x2000, false), KERN_SUCCESS);
  auto before = bytes_of("parent-before");
  ASSERT_EQ(sys.write(0, a, before, 0).kr, KERN_SUCCESS);
  sys.fork(0, 1);
  EXPECT_NE(sys.pid_of(0), sys.pid_of(1));
  auto after = bytes_of("parent-AFTER!");
  ASSERT_EQ(sys.write(0, a, after, 0).kr, KERN_SUCCESS);
  EXPECT_EQ(sys.read(1, a, before.size(), 0).bytes, before);
  EXPECT_EQ(sys.read(0, a, after.size(), 0).bytes, after);
  EXPECT_TRUE(present(sys.pid_of(0), a));
  EXPECT_FALSE(present(sys.pid_of(0), a + 0x1000)) << "an untouched page must not be faulted in by the views";
  std::array<uint8_t, kPageSize> page{};
  ASSERT_EQ(sys.peek_page(0, a + 0x1000, page), PeekStatus::Mapped);
  EXPECT_FALSE(present(sys.pid_of(0), a + 0x1000)) << "peek_page faulted a page in";
  EXPECT_EQ(sys.counters().processes, 2u);
}

TEST(LinuxBackend, AreFaultsTheKernelsOwnAtTheFirstByteNotMoved) {
  REQUIRE_LINUX();
  LinuxSystem sys(SystemConfig{});
  sys.task_create(0);
  uint64_t a = 0x20000;
  ASSERT_EQ(sys.allocate(0, &a, 0x2000, false), KERN_SUCCESS);
  ASSERT_EQ(sys.protect(0, a + 0x1000, 0x1000, false, VM_PROT_READ), KERN_SUCCESS);
  std::vector<uint8_t> data(0x10, 0xab);
  Access w = sys.write(0, a + 0x1000 - 8, data, 0);  // crosses into the read-only page
  EXPECT_EQ(w.kr, KERN_PROTECTION_FAILURE);
  EXPECT_EQ(w.fault_addr, a + 0x1000);
  EXPECT_EQ(w.bytes.size(), 8u);
  Access r = sys.read(0, a + 0x2000 - 4, 8, 0);  // runs off the end of the mapping
  EXPECT_EQ(r.kr, KERN_INVALID_ADDRESS);
  EXPECT_EQ(r.fault_addr, a + 0x2000);
  EXPECT_EQ(r.bytes, std::vector<uint8_t>(4, 0));
  ASSERT_EQ(sys.protect(0, a, 0x1000, false, VM_PROT_NONE), KERN_SUCCESS);
  EXPECT_EQ(sys.read(0, a, 1, 0).kr, KERN_PROTECTION_FAILURE);
  auto regions = sys.regions(0);  // read from /proc/PID/smaps
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[0].prot, VM_PROT_NONE);
  EXPECT_EQ(regions[1].prot, VM_PROT_READ);
}

TEST(LinuxBackend, DoesInheritNoneLeaveAHoleAndShareAfterWritesShare) {
  REQUIRE_LINUX();
  LinuxSystem sys(SystemConfig{});
  sys.task_create(0);
  uint64_t a = 0x30000;
  ASSERT_EQ(sys.allocate(0, &a, 0x3000, false), KERN_SUCCESS);
  auto x = bytes_of("written before share");
  ASSERT_EQ(sys.write(0, a + 0x1000, x, 0).kr, KERN_SUCCESS);
  ASSERT_EQ(sys.inherit(0, a, 0x1000, vm_inherit_t::None), KERN_SUCCESS);
  ASSERT_EQ(sys.inherit(0, a + 0x1000, 0x1000, vm_inherit_t::Share), KERN_SUCCESS);
  EXPECT_EQ(sys.counters().shared_conversions, 1u);
  EXPECT_EQ(sys.read(0, a + 0x1000, x.size(), 0).bytes, x) << "the conversion lost the contents";
  sys.fork(0, 1);
  EXPECT_EQ(sys.read(1, a, 1, 0).kr, KERN_INVALID_ADDRESS) << "MADV_DONTFORK did not leave a hole";
  auto y = bytes_of("child");
  ASSERT_EQ(sys.write(1, a + 0x1000, y, 0).kr, KERN_SUCCESS);
  EXPECT_EQ(sys.read(0, a + 0x1000, y.size(), 0).bytes, y) << "share inheritance did not share";
  ASSERT_EQ(sys.write(1, a + 0x2000, y, 0).kr, KERN_SUCCESS);
  EXPECT_EQ(sys.read(0, a + 0x2000, y.size(), 0).bytes, std::vector<uint8_t>(y.size(), 0)) << "copy leaked";
  auto r = sys.regions(0);
  ASSERT_GE(r.size(), 2u);
  EXPECT_EQ(r[0].inherit, vm_inherit_t::None);  // "dc" in VmFlags
}

TEST(LinuxBackend, IsACopyMappingASnapshotAndASharedOneTheObject) {
  REQUIRE_LINUX();
  LinuxSystem sys(SystemConfig{});
  sys.task_create(0);
  std::vector<uint8_t> init(0x2000, 0x11);
  sys.object_create(0, 0x2000, CopyStrategy::None, true, init);
  uint64_t s = 0x40000, c = 0x50000;
  ASSERT_EQ(sys.map(0, &s, false, 0x2000, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy), KERN_SUCCESS);
  ASSERT_EQ(sys.map(0, &c, false, 0x2000, 0, 0, false, VM_PROT_DEFAULT, VM_PROT_ALL, vm_inherit_t::Copy),
            KERN_SUCCESS);
  std::vector<uint8_t> ff(4, 0xff);
  ASSERT_EQ(sys.manager_write(0, 0x1000, ff), KERN_SUCCESS);
  EXPECT_EQ(sys.read(0, s + 0x1000, 4, 0).bytes, ff);
  EXPECT_EQ(sys.read(0, c + 0x1000, 4, 0).bytes, std::vector<uint8_t>(4, 0x11));
  // fork: the shared mapping has inheritance copy, so the child must get a snapshot.
  sys.fork(0, 1);
  EXPECT_EQ(sys.counters().fork_private_copies, 1u);
  std::vector<uint8_t> ee(4, 0xee);
  ASSERT_EQ(sys.write(0, s, ee, 0).kr, KERN_SUCCESS);
  EXPECT_EQ(sys.read(1, s, 4, 0).bytes, std::vector<uint8_t>(4, 0x11));
  EXPECT_EQ(sys.file(0, 0, 4).bytes, ee) << "a write through MAP_SHARED did not reach the memfd";
  sys.pageout(0, true);  // MADV_PAGEOUT changes nothing a task can read
  EXPECT_EQ(sys.read(0, s, 4, 0).bytes, ee);
  EXPECT_EQ(sys.read(1, s + 0x1000, 4, 0).bytes, ff);
}

TEST(LinuxBackend, IsAnAddressTheHelperHoldsOutOfProfileRatherThanWrong) {
  REQUIRE_LINUX();
  LinuxSystem sys(SystemConfig{});
  sys.task_create(0);
  uint64_t a = 0x555555554000;  // the helper's own image (PIE, no randomization)
  // The mmap is posted; its refusal surfaces at the latest when the task is next read.
  EXPECT_THROW(
      {
        sys.allocate(0, &a, kPageSize, false);
        sys.read(0, a, 1, 0);
      },
      OutOfProfile);
}

TEST(LinuxProfile, IsEveryOpLinuxCannotExpressRefusedWithAReason) {
  const char* refused[] = {
      "protect t0 0x10000 0x1000 max r--", "protect t0 0x10000 0x1000 --x", "object m0 0x1000 call persist",
      "destroy m0", "device m0 0x1000", "map t0 0x10000 0x1000 m0 0x0 share max=rw-",
  };
  for (const char* line : refused) {
    Program p = parse(std::string("object m0 0x1000 none persist\n") + line + "\n");
    ASSERT_EQ(p.ops.size(), 2u) << line;
    std::optional<std::string> why = op_out_of_profile(p.ops[1]);
    ASSERT_TRUE(why.has_value()) << line;
    EXPECT_FALSE(why->empty());
  }
  Program ok = parse("allocate t0 0x10000 0x1000\nprotect t0 0x10000 0x1000 r-x\ninherit t0 0x10000 0x1000 share\n");
  for (const Op& op : ok.ops) EXPECT_FALSE(op_out_of_profile(op).has_value()) << print_op(op);
}

TEST(LinuxProfile, DoesRestrictingAProgramLeaveItInProfileAndUsable) {
  Program p = parse(
      "object m0 0x2000 call persist\nmap t0 0x10000 0x2000 m0 0x0 share max=r--\n"
      "protect t0 0x10000 0x1000 max r--\ndestroy m0\ndevice m1 0x1000\nmap t0 any 0x1000 m1 0x0 share\n");
  EXPECT_TRUE(threeway::program_out_of_profile(p).has_value());
  EXPECT_EQ(threeway::restrict_to_profile(p), 5u);
  EXPECT_FALSE(threeway::program_out_of_profile(p).has_value());
  model::Model scratch(p.config);
  size_t index = 0;
  std::string reason;
  EXPECT_TRUE(harness::validate_names(p, scratch, &index, &reason)) << reason;
}

// A model broken in one observable way: the full check must read the kernel to see it.
struct OwnedModel {
  explicit OwnedModel(const SystemConfig& c) : m_(c) {}
  model::Model m_;
};
class FlipPeek final : private OwnedModel, public ForwardingSystem {
 public:
  explicit FlipPeek(const SystemConfig& c) : OwnedModel(c), ForwardingSystem(m_) {}
  bool flip_regions = false;
  PeekStatus peek_page(unsigned t, uint64_t va, std::span<uint8_t, kPageSize> out) const override {
    PeekStatus s = in_.peek_page(t, va, out);
    if (s == PeekStatus::Mapped && !flip_regions) out[5] ^= 1;
    return s;
  }
  std::vector<RegionInfo> regions(unsigned t) const override {
    auto r = in_.regions(t);
    if (flip_regions && !r.empty()) r[0].prot ^= VM_PROT_EXECUTE;
    return r;
  }
};

TEST(ThreeWay, DoesTheFullCheckAgainstLinuxCatchAWrongPageAndAWrongRegion) {
  REQUIRE_LINUX();
  Program p = parse("allocate t0 0x10000 0x2000\nwrite t0 0x10000 \"abc\"\nfork t0 t1\nwrite t1 0x10001 \"Z\"\n");
  for (bool regions : {false, true}) {
    LinuxSystem linux_side(p.config);
    FlipPeek model(p.config);
    model.flip_regions = regions;
    harness::RunSummary s = harness::run_program(p, "<t>", linux_side, model, nullptr, harness::ExecOptions{.teardown = false});
    ASSERT_FALSE(s.ok);
    EXPECT_EQ(s.failure->oracle, regions ? Oracle::region_mismatch : Oracle::content_mismatch);
  }
}

TEST(ThreeWay, DoesEachVerdictComeOutWhereItShould) {
  REQUIRE_LINUX();
  threeway::ThreeWay agree = threeway::run_three_way(
      parse("allocate t0 0x10000 0x1000\nwrite t0 0x10000 \"x\"\nfork t0 t1\nread t1 0x10000 1 == \"x\"\n"), "<t>", {});
  EXPECT_EQ(agree.verdict, threeway::Verdict::AllAgree) << agree.reason;
  threeway::ThreeWay oop = threeway::run_three_way(parse("object m0 0x1000 none persist\ndestroy m0\n"), "<t>", {});
  EXPECT_EQ(oop.verdict, threeway::Verdict::OutOfProfile);
  EXPECT_NE(oop.reason.find("destroy"), std::string::npos);
  threeway::ThreeWay top = threeway::run_three_way(parse("allocate t0 0x555555554000 0x1000\n"), "<t>", {});
  EXPECT_EQ(top.verdict, threeway::Verdict::OutOfProfile) << "met while running, not by the per-op profile";
  // A false assertion: both the VM and Linux disagree with what the trace says.
  threeway::ThreeWay bad = threeway::run_three_way(parse("allocate t0 0x10000 0x1000\nread t0 0x10000 1 == \"q\"\n"),
                                                   "<t>", {});
  EXPECT_EQ(bad.verdict, threeway::Verdict::BothDiffer);
}

// A kernel that refuses a call the profile needs (here a seccomp filter making madvise
// fail, as an old kernel or a sandbox would): one line naming the call and the errno, and
// the run counts as skipped, never as agreement.
TEST(ThreeWay, IsARefusedCallSkippedWithTheCallAndErrnoNamed) {
  REQUIRE_LINUX();
  shutdown_linux_backend();  // the child's helpers must start under its filter
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
      _exit(3);
    threeway::ThreeWay r =
        threeway::run_three_way(parse("allocate t0 0x10000 0x1000\npageout all\n"), "<t>", {});
    std::string out = std::string(threeway::verdict_key(r.verdict)) + "|" + r.reason;
    (void)!::write(fds[1], out.data(), out.size());
    shutdown_linux_backend();
    _exit(0);
  }
  close(fds[1]);
  char buf[512] = {};
  ssize_t n = ::read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_GT(n, 0) << "the child could not install the filter (exit " << WEXITSTATUS(status) << ")";
  std::string got(buf, static_cast<size_t>(n));
  EXPECT_EQ(got.substr(0, got.find('|')), "skipped") << got;
  EXPECT_NE(got.find("madvise(MADV_PAGEOUT)"), std::string::npos) << got;
  EXPECT_NE(got.find("ENOSYS"), std::string::npos) << got;
}

// --- Random in-profile programs: the model against Linux ------------------------------
struct SplitMix {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
};

TEST(ThreeWay, DoRandomInProfileProgramsAgreeBetweenModelAndLinux) {
  REQUIRE_LINUX();
  // VMFUZZ_LINUX_RANDOM=N runs N programs (the measurement runs 10000); ctest runs 300.
  const char* env = std::getenv("VMFUZZ_LINUX_RANDOM");
  unsigned n = env ? static_cast<unsigned>(std::strtoul(env, nullptr, 10)) : 300;
  SplitMix rng{0x11de5eed};
  unsigned judged = 0, oop = 0, skipped = 0;
  std::map<std::string, unsigned> reasons;
  for (unsigned i = 0; i < n; i++) {
    std::vector<uint8_t> bytes(16 + rng.next() % 480);
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng.next());
    bytes[0] = 1;
    Program p = threeway::decode_in_profile(bytes);
    std::string why, skip;
    harness::RunSummary s = threeway::run_linux_vs_model(p, "<random>", harness::ExecOptions{.full_check_every = 8}, &why, &skip);
    if (!why.empty()) {
      oop++;
      reasons[why.substr(0, why.find(':'))]++;
      continue;
    }
    if (!skip.empty()) {
      skipped++;
      ADD_FAILURE() << "program " << i << " skipped: " << skip;
      continue;
    }
    ASSERT_FALSE(s.unusable) << "program " << i << ": " << s.unusable_reason;
    ASSERT_TRUE(s.ok) << "program " << i << ": model and Linux disagree\n"
                      << harness::format_failure(*s.failure) << print_program(p);
    judged++;
  }
  std::printf("random programs: %u run, %u judged (all agree), %u out of profile, %u skipped\n", n, judged, oop,
              skipped);
  for (const auto& [r, c] : reasons) std::printf("  out of profile %u: %s\n", c, r.c_str());
  EXPECT_GE(judged * 2, n) << "fewer than half the random programs were judged";
}

// --- Hygiene: nothing outlives the harness -------------------------------------------

/// Processes whose parent chain reaches `root` and that are not zombies.
std::vector<pid_t> live_processes(const std::vector<pid_t>& pids) {
  std::vector<pid_t> out;
  for (pid_t p : pids) {
    std::ifstream st("/proc/" + std::to_string(p) + "/stat");
    std::string line;
    if (!std::getline(st, line)) continue;  // gone
    size_t rp = line.rfind(')');
    char state = rp != std::string::npos && rp + 2 < line.size() ? line[rp + 2] : '?';
    if (state != 'Z' && state != 'X') out.push_back(p);
  }
  return out;
}

void dies_with_harness(int signo) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t harness = fork();
  ASSERT_GE(harness, 0);
  if (harness == 0) {  // the "harness": start tasks mid-trace, report their pids, wait
    close(fds[0]);
    LinuxSystem sys(SystemConfig{});
    sys.task_create(0);
    uint64_t a = 0x10000;
    sys.allocate(0, &a, 0x1000, false);
    sys.fork(0, 1);
    sys.fork(1, 2);
    sys.task_create(3);
    pid_t pids[4] = {sys.pid_of(0), sys.pid_of(1), sys.pid_of(2), sys.pid_of(3)};
    (void)!::write(fds[1], pids, sizeof pids);
    pause();
    _exit(0);
  }
  close(fds[1]);
  pid_t pids[4] = {};
  ASSERT_EQ(::read(fds[0], pids, sizeof pids), static_cast<ssize_t>(sizeof pids));
  close(fds[0]);
  std::vector<pid_t> all(pids, pids + 4);
  // The zygote is the parent of t0 and t3.
  std::ifstream st("/proc/" + std::to_string(pids[0]) + "/stat");
  std::string line;
  std::getline(st, line);
  int ppid = 0;
  std::sscanf(line.c_str() + line.rfind(')') + 2, "%*c %d", &ppid);
  all.push_back(ppid);
  ASSERT_EQ(live_processes(all).size(), 5u) << "the helpers were not running";
  // Every process of the zygote's group (the spare task too, which the zygote forks ahead
  // on its own time: wait up to 2 s for it), found from /proc.
  for (int tries = 0; tries < 200 && all.size() < 6; tries++) {
    if (tries) usleep(10000);
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
      std::string name = e.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream stat(e.path() / "stat");
      std::string l;
      if (!std::getline(stat, l) || l.rfind(')') == std::string::npos) continue;
      int pp = 0, pgrp = 0;
      std::sscanf(l.c_str() + l.rfind(')') + 2, "%*c %d %d", &pp, &pgrp);
      pid_t pid = static_cast<pid_t>(std::stoi(name));
      if (pgrp == ppid && std::find(all.begin(), all.end(), pid) == all.end()) all.push_back(pid);
    }
  }
  EXPECT_GE(all.size(), 6u) << "no spare task in the zygote's group";
  kill(harness, signo);
  waitpid(harness, nullptr, 0);
  std::vector<pid_t> left;
  for (int i = 0; i < 200; i++) {  // up to 2 s for the kernel to deliver EOF and PDEATHSIG
    left = live_processes(all);
    if (left.empty()) break;
    usleep(10000);
  }
  EXPECT_TRUE(left.empty()) << left.size() << " helper processes outlived the harness";
  for (pid_t p : left) kill(p, SIGKILL);  // ours: pids we were just told about
}

TEST(LinuxHygiene, DoesNoHelperOutliveAHarnessKilledMidTrace) {
  REQUIRE_LINUX();
  shutdown_linux_backend();  // the child must start its own zygote
  dies_with_harness(SIGKILL);
}

TEST(LinuxHygiene, DoesNoHelperOutliveAHarnessStoppedByCtrlC) {
  REQUIRE_LINUX();
  shutdown_linux_backend();
  dies_with_harness(SIGINT);
}

TEST(LinuxHygiene, DoesTheDestructorEndEveryTaskProcess) {
  REQUIRE_LINUX();
  std::vector<pid_t> pids;
  {
    LinuxSystem sys(SystemConfig{});
    sys.task_create(0);
    sys.fork(0, 1);
    sys.fork(1, 2);
    pids = {sys.pid_of(0), sys.pid_of(1), sys.pid_of(2)};
    sys.terminate(1);  // t2's Linux parent is gone: t2 must still be ended by the destructor
  }
  std::vector<pid_t> left;
  for (int i = 0; i < 200 && !(left = live_processes(pids)).empty(); i++) usleep(10000);
  EXPECT_TRUE(left.empty());
}

}  // namespace
}  // namespace vmfuzz::linux_backend
