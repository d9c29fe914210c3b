// mmu_fuzzer.cc — libFuzzer target: the simulated MMU and the pmap layer against a
// trivially simple translation model.
//
// Theory of operation
// -------------------
// The input is decoded, totally, into steps on a small machine (64 frames, 3 CPUs, TLBs
// of 4 entries) with 3 pmaps and 8 data frames. Every byte string is a valid program:
// each step is an op byte (modulo the op count) and a fixed number of argument bytes for
// that op (missing bytes read as 0); the program ends when the input does. Addresses are
// chosen from 8 page slots spread over different PML4, PDPT and PD entries (two pairs are
// adjacent, and one slot is the last user page) so that every level of the tables is
// built, shared, pruned and walked.
//
// The model is a std::map from (pmap, page) to (data frame, prot) plus each data frame's
// contents and its modified/referenced state. It predicts:
//   - every access: bytes transferred in address order until the first page the model
//     refuses (unmapped: KERN_INVALID_ADDRESS; a write to a page without VM_PROT_WRITE:
//     KERN_PROTECTION_FAILURE), the fault address, and the bytes a load returns;
//   - the fault the handler sees (CR2, PF_P/PF_W/PF_U), which answers from the model;
//   - pmap_is_modified / pmap_is_referenced of every data frame;
//   - pmap_extract and the pv list of every frame.
// After every step the oracles run; a violation prints one line
//   ERROR: vmfuzz mmu oracle <name>: <detail>
// and aborts. The oracles are the rows of harness/oracles.def whose target is Mmu (access,
// fault, tlb, cr3, pv, attributes, frames, enter, shortage, leak; docs/oracles.md says
// what each checks); fail<"NAME"> refuses at compile time a name that is not one of them.
// pv_consistent (which reads every page-table entry) runs every kFullCheckEvery steps
// and after the last; the rest after every step.
//
// Op encoding (stable: corpus files keep their meaning). p = pmap (b%3), s = slot (b%8),
// f = data frame (b%8), prot = b%8, cpu = b%3.
//    0 enter p s f prot          7 clear_reference f
//    1 remove p s n              8 collect p mode (bit 0: drop mappings as Mach)
//    2 protect p s n prot        9 load cpu s off_lo off_hi len
//    3 page_protect f prot      10 store cpu s off_lo off_hi len seed
//    4 activate p cpu           11 hog n (odd: take up to n/2%64 frames; even: give back)
//    5 deactivate cpu           12 recreate p (deactivate everywhere, destroy, create)
//    6 clear_modify f           13 zero_page f        14 copy_page f f
// VMFUZZ_MMU_TRACE=1 prints each step as it runs (e.g. `VMFUZZ_MMU_TRACE=1 mmu_replay FILE`).
// n: n%9 == 0 means the whole user space, else n%9 pages from the slot. The page offset
// is (off_lo | off_hi << 8) % 4096 and the length 1 + len*len/10 (up to 6503 bytes).
#include <array>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "harness/oracles.h"
#include "vm/pmap/pmap.h"

namespace {

using namespace vmfuzz;
using machine::FrameUse;
using machine::Machine;
using machine::pfn_t;
using pmap::pmap_t;

constexpr unsigned kFrames = 64, kCpus = 3, kTlb = 4, kPmaps = 3, kData = 8;
constexpr unsigned kFullCheckEvery = 16;  // steps between runs of the pv_consistent walk
constexpr uint64_t kSlots[8] = {
    0x10000,         // PML4 0, PDPT 0, PD 0, PT index 16
    0x11000,         // adjacent: same PT
    0x200000,        // next PD entry: another PT
    0x40000000,      // next PDPT entry
    0x8000000000,    // next PML4 entry
    0x1234567000,    // PDPT 72, PD 0x11a, PT 0x167
    0x7fffffffd000,  // PML4 255: the top of user space
    0x7fffffffe000,  // the last user page (the next page is not user space)
};
enum Op : uint8_t {
  kEnter, kRemove, kProtect, kPageProtect, kActivate, kDeactivate, kClearModify,
  kClearReference, kCollect, kLoad, kStore, kHog, kRecreate, kZeroPage, kCopyPage, kOpCount
};

/// A finding of oracle Name (a row of harness/oracles.def for the Mmu target).
template <OracleLiteral Name>
[[noreturn]] void fail(const std::string& detail) {
  static_assert(is_oracle_of(Name.text, OracleTarget::Mmu), "not an mmu oracle of harness/oracles.def");
  std::fprintf(stderr, "ERROR: vmfuzz mmu oracle %s: %s\n", Name.text, detail.c_str());
  std::fflush(stderr);
  std::abort();
}

std::string fmt(const char* f, unsigned long long a = 0, unsigned long long b = 0,
                unsigned long long c = 0, unsigned long long d = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, f, a, b, c, d);
  return buf;
}

// VMFUZZ_MMU_TRACE=1 in the environment: print every decoded step and its outcome to
// stderr (for reading a finding; the run is otherwise identical).
const bool g_trace = std::getenv("VMFUZZ_MMU_TRACE") != nullptr;

__attribute__((format(printf, 1, 2))) void trace(const char* f, ...) {
  if (!g_trace) return;
  va_list ap;
  va_start(ap, f);
  std::vfprintf(stderr, f, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}

const char* prot_name(vm_prot_t p) {
  static const char* names[8] = {"---", "r--", "-w-", "rw-", "--x", "r-x", "-wx", "rwx"};
  return names[p & 7];
}

// Total decoder: bytes past the end read as 0.
struct Input {
  const uint8_t* data;
  size_t size, pos = 0;
  bool more() const { return pos < size; }
  uint8_t byte() { return pos < size ? data[pos++] : 0; }
};

struct Mapping {
  unsigned frame;  // data frame index 0..kData-1
  vm_prot_t prot;
};

// The translation model. Knows nothing of tables, TLBs or frames' physical numbers.
struct Model {
  std::map<std::pair<unsigned, uint64_t>, Mapping> map;  // (pmap, vpn) -> mapping
  std::array<std::array<uint8_t, kPageSize>, kData> contents;
  std::array<bool, kData> modified{}, referenced{};
  std::array<int, kCpus> active;  // pmap index active on each CPU, or -1

  const Mapping* lookup(int p, uint64_t va) const {
    if (p < 0) return nullptr;
    auto it = map.find({unsigned(p), va >> kPageShift});
    return it == map.end() ? nullptr : &it->second;
  }
  // Reduce as pmap_protect/page_protect do: no READ removes; no WRITE drops write.
  void reduce(std::map<std::pair<unsigned, uint64_t>, Mapping>::iterator it, vm_prot_t prot) {
    if (!(prot & VM_PROT_READ))
      map.erase(it);
    else if (!(prot & VM_PROT_WRITE))
      it->second.prot &= vm_prot_t(~VM_PROT_WRITE);
  }
};

struct Harness;

// The kernel's fault handler: answers from the model, checks what it was told.
struct ModelHandler : machine::FaultHandler {
  Harness* h = nullptr;
  bool expect_write = false;
  kern_return_t page_fault(unsigned cpu, uint64_t cr2, uint32_t ec) override;
};

struct Harness {
  Machine m{kFrames, kCpus, kTlb};
  pmap::PmapDomain d{m};
  ModelHandler handler;
  Model model;
  std::array<pmap_t, kPmaps> pmaps{};
  std::array<pfn_t, kData> frames{};
  std::vector<pfn_t> hog;
  unsigned step = 0;
  uint64_t faults_seen = 0;

  Harness() {
    handler.h = this;
    m.set_fault_handler(&handler);
    model.active.fill(-1);
    static const auto initial = [] {  // frame i byte b: i*37 + b*7 + b/256 (mod 256)
      std::array<std::array<uint8_t, kPageSize>, kData> c;
      for (unsigned i = 0; i < kData; i++)
        for (unsigned b = 0; b < kPageSize; b++) c[i][b] = uint8_t(i * 37 + b * 7 + (b >> 8));
      return c;
    }();
    model.contents = initial;
    for (unsigned i = 0; i < kData; i++) {
      frames[i] = m.memory().alloc_frame(FrameUse::VmPage);
      std::memcpy(m.memory().frame(frames[i]), initial[i].data(), kPageSize);
    }
    for (unsigned p = 0; p < kPmaps; p++) pmaps[p] = pmap::pmap_create(d);
  }

  int pmap_index(pmap_t p) const {
    for (unsigned i = 0; i < kPmaps; i++)
      if (pmaps[i] == p && p != nullptr) return int(i);
    return -1;
  }

  // --- steps ---------------------------------------------------------------------------
  void enter(unsigned p, unsigned s, unsigned f, vm_prot_t prot) {
    if (!pmaps[p]) return;
    const uint64_t va = kSlots[s];
    const uint32_t free0 = m.memory().free_count();
    kern_return_t kr = pmap::pmap_enter(pmaps[p], va, frames[f], prot);
    trace("enter p%u 0x%llx f%u %s => %s", p, (unsigned long long)va, f, prot_name(prot),
          kern_return_name(kr).c_str());
    if (kr == KERN_RESOURCE_SHORTAGE) {
      if (free0 >= 3) fail<"shortage">(fmt("pmap_enter refused with %llu frames free", free0));
      if (m.memory().free_count() != free0) fail<"shortage">("a refused pmap_enter used frames");
      return;  // the other oracles check that nothing else changed
    }
    if (kr != KERN_SUCCESS) fail<"enter">(fmt("pmap_enter returned %llu", unsigned(kr)));
    auto key = std::make_pair(p, va >> kPageShift);
    if ((prot & VM_PROT_ALL) == VM_PROT_NONE) {
      model.map.erase(key);
      return;
    }
    model.map[key] = Mapping{f, prot};
  }

  // Pages [first, last) of the range an n byte selects.
  void range(unsigned s, unsigned n, uint64_t* start, uint64_t* end) const {
    if (n % 9 == 0) {
      *start = 0;
      *end = kUserMax;
    } else {
      *start = kSlots[s];
      *end = kSlots[s] + (n % 9) * kPageSize;
    }
  }

  void remove(unsigned p, unsigned s, unsigned n) {
    if (!pmaps[p]) return;
    uint64_t a, b;
    range(s, n, &a, &b);
    trace("remove p%u [0x%llx, 0x%llx)", p, (unsigned long long)a, (unsigned long long)b);
    pmap::pmap_remove(pmaps[p], a, b);
    for (auto it = model.map.begin(); it != model.map.end();) {
      uint64_t va = it->first.second << kPageShift;
      if (it->first.first == p && va >= a && va < b)
        it = model.map.erase(it);
      else
        ++it;
    }
  }

  void protect(unsigned p, unsigned s, unsigned n, vm_prot_t prot) {
    if (!pmaps[p]) return;
    uint64_t a, b;
    range(s, n, &a, &b);
    trace("protect p%u [0x%llx, 0x%llx) %s", p, (unsigned long long)a, (unsigned long long)b, prot_name(prot));
    pmap::pmap_protect(pmaps[p], a, b, prot);
    if ((prot & VM_PROT_ALL) == VM_PROT_ALL) return;
    for (auto it = model.map.begin(); it != model.map.end();) {
      auto cur = it++;
      uint64_t va = cur->first.second << kPageShift;
      if (cur->first.first == p && va >= a && va < b) model.reduce(cur, prot);
    }
  }

  void page_protect(unsigned f, vm_prot_t prot) {
    trace("page_protect f%u %s", f, prot_name(prot));
    d.pmap_page_protect(frames[f], prot);
    for (auto it = model.map.begin(); it != model.map.end();) {
      auto cur = it++;
      if (cur->second.frame == f) model.reduce(cur, prot);
    }
  }

  void activate(unsigned p, unsigned cpu) {
    if (!pmaps[p]) return;
    trace("activate p%u cpu%u", p, cpu);
    pmap::pmap_activate(pmaps[p], cpu);
    model.active[cpu] = int(p);
  }

  void deactivate(unsigned cpu) {
    trace("deactivate cpu%u", cpu);
    if (pmap_t p = d.active_on(cpu)) pmap::pmap_deactivate(p, cpu);
    model.active[cpu] = -1;
  }

  void collect(unsigned p, unsigned mode) {
    if (!pmaps[p]) return;
    d.set_collect_drops_mappings(mode & 1);
    unsigned freed = pmap::pmap_collect(pmaps[p]);
    trace("collect p%u %s => %u tables freed", p, (mode & 1) ? "drop" : "keep", freed);
    if (mode & 1) {
      for (auto it = model.map.begin(); it != model.map.end();) {
        if (it->first.first == p)
          it = model.map.erase(it);
        else
          ++it;
      }
    }
  }

  void hog_step(unsigned n) {
    trace("hog %s", (n & 1) ? "take" : "give back");
    if (n & 1) {
      for (unsigned i = 0; i < (n / 2) % 64; i++) {
        pfn_t f = m.memory().alloc_frame(FrameUse::VmPage);
        if (f == machine::kNoFrame) break;
        std::memset(m.memory().frame(f), 0xa5, kPageSize);  // junk a missed zeroing would show
        hog.push_back(f);
      }
    } else {
      for (pfn_t f : hog) m.memory().free_frame(f);
      hog.clear();
    }
  }

  void recreate(unsigned p) {
    trace("recreate p%u", p);
    if (pmaps[p]) {
      for (unsigned c = 0; c < kCpus; c++)
        if (model.active[c] == int(p)) deactivate(c);
      pmap::pmap_destroy(pmaps[p]);
      pmaps[p] = nullptr;
      for (auto it = model.map.begin(); it != model.map.end();) {
        if (it->first.first == p)
          it = model.map.erase(it);
        else
          ++it;
      }
    }
    pmaps[p] = pmap::pmap_create(d);
    if (pmaps[p] == nullptr && m.memory().free_count() != 0)
      fail<"shortage">("pmap_create failed with frames free");
  }

  // A user access on cpu, predicted page by page from the model.
  void access(bool write, unsigned cpu, unsigned s, unsigned off, unsigned len, uint8_t seed) {
    const uint64_t va = kSlots[s] + off;
    std::vector<uint8_t> buf(len);
    if (write)
      for (unsigned i = 0; i < len; i++) buf[i] = uint8_t(seed + 13 * i + (i >> 8));
    // Prediction.
    const int p = model.active[cpu];
    uint64_t done = 0, fault_addr = 0;
    kern_return_t kr = KERN_SUCCESS;
    std::vector<uint8_t> expect;
    while (done < len) {
      uint64_t cur = va + done;
      uint64_t chunk = std::min<uint64_t>(len - done, kPageSize - (cur & (kPageSize - 1)));
      const Mapping* mp = model.lookup(p, cur);
      if (mp == nullptr || (write && !(mp->prot & VM_PROT_WRITE))) {
        kr = mp == nullptr ? KERN_INVALID_ADDRESS : KERN_PROTECTION_FAILURE;
        fault_addr = cur;
        break;
      }
      uint8_t* cell = model.contents[mp->frame].data() + (cur & (kPageSize - 1));
      if (write) {
        std::memcpy(cell, buf.data() + done, chunk);
        model.modified[mp->frame] = true;
      } else {
        expect.insert(expect.end(), cell, cell + chunk);
      }
      model.referenced[mp->frame] = true;
      done += chunk;
    }
    // The machine.
    handler.expect_write = write;
    machine::AccessResult r = write ? m.store(cpu, va, buf) : m.load(cpu, va, buf);
    trace("%s cpu%u 0x%llx %u => %s done %llu fault 0x%llx", write ? "store" : "load", cpu,
          (unsigned long long)va, len, kern_return_name(r.kr).c_str(), (unsigned long long)r.done,
          (unsigned long long)r.fault_addr);
    const char* what = write ? "store" : "load";
    if (r.fault_loop) fail<"access">(std::string(what) + fmt(" at 0x%llx looped on faults", r.fault_addr));
    if (r.kr != kr || r.done != done || (kr != KERN_SUCCESS && r.fault_addr != fault_addr))
      fail<"access">(std::string(what) +
                         fmt(" va 0x%llx: machine kr %llu done %llu fault 0x%llx", va, unsigned(r.kr),
                             r.done, r.fault_addr) +
                         fmt("; model kr %llu done %llu fault 0x%llx", unsigned(kr), done, fault_addr));
    if (!write)
      for (uint64_t i = 0; i < done; i++)
        if (buf[i] != expect[i])
          fail<"access">(fmt("load va 0x%llx byte at 0x%llx: machine 0x%02llx model 0x%02llx", va,
                             va + i, buf[i], expect[i]));
  }

  void run_step(Input& in) {
    const unsigned op = in.byte() % kOpCount;
    switch (Op(op)) {
      case kEnter: {
        unsigned p = in.byte() % kPmaps, s = in.byte() % 8, f = in.byte() % kData;
        enter(p, s, f, vm_prot_t(in.byte() % 8));
        break;
      }
      case kRemove: {
        unsigned p = in.byte() % kPmaps, s = in.byte() % 8;
        remove(p, s, in.byte());
        break;
      }
      case kProtect: {
        unsigned p = in.byte() % kPmaps, s = in.byte() % 8, n = in.byte();
        protect(p, s, n, vm_prot_t(in.byte() % 8));
        break;
      }
      case kPageProtect: {
        unsigned f = in.byte() % kData;
        page_protect(f, vm_prot_t(in.byte() % 8));
        break;
      }
      case kActivate: {
        unsigned p = in.byte() % kPmaps;
        activate(p, in.byte() % kCpus);
        break;
      }
      case kDeactivate: deactivate(in.byte() % kCpus); break;
      case kClearModify: {
        unsigned f = in.byte() % kData;
        trace("clear_modify f%u", f);
        d.pmap_clear_modify(frames[f]);
        model.modified[f] = false;
        break;
      }
      case kClearReference: {
        unsigned f = in.byte() % kData;
        trace("clear_reference f%u", f);
        d.pmap_clear_reference(frames[f]);
        model.referenced[f] = false;
        break;
      }
      case kCollect: {
        unsigned p = in.byte() % kPmaps;
        collect(p, in.byte());
        break;
      }
      case kLoad:
      case kStore: {
        unsigned cpu = in.byte() % kCpus, s = in.byte() % 8;
        unsigned lo = in.byte(), hi = in.byte();
        unsigned off = (lo | (hi << 8)) % kPageSize;
        unsigned l = in.byte();
        uint8_t seed = op == kStore ? in.byte() : 0;
        access(op == kStore, cpu, s, off, 1 + l * l / 10, seed);
        break;
      }
      case kHog: hog_step(in.byte()); break;
      case kRecreate: recreate(in.byte() % kPmaps); break;
      case kZeroPage: {
        unsigned f = in.byte() % kData;
        trace("zero_page f%u", f);
        d.pmap_zero_page(frames[f]);
        model.contents[f].fill(0);
        break;
      }
      case kCopyPage: {
        unsigned a = in.byte() % kData, b = in.byte() % kData;
        if (a == b) break;
        trace("copy_page f%u f%u", a, b);
        d.pmap_copy_page(frames[a], frames[b]);
        model.contents[b] = model.contents[a];
        break;
      }
      case kOpCount: break;
    }
  }

  // --- oracles -------------------------------------------------------------------------
  // full: also run pv_consistent, which reads every page-table entry; the per-step checks
  // below already compare every pv list and every slot's translation with the model.
  void check(bool full) {
    std::string why;
    if (!m.tlb_coherent(&why)) fail<"tlb">(why);
    if (full && !d.pv_consistent(&why)) fail<"pv">(why);
    for (unsigned c = 0; c < kCpus; c++) {
      const int p = model.active[c];
      const uint64_t want = p < 0 ? machine::kEmptyCr3 : pmaps[unsigned(p)]->cr3();
      if (m.cpu(c).cr3 != want || pmap_index(d.active_on(c)) != p)
        fail<"cr3">(fmt("cpu %llu holds cr3 0x%llx, model pmap %llu (or none)", c, m.cpu(c).cr3,
                        unsigned(p)));
      for (const machine::TlbEntry& e : m.cpu(c).tlb.entries()) {
        const Mapping* mp = model.lookup(p, e.vpn << kPageShift);
        if (!e.user) continue;
        if (mp == nullptr || frames[mp->frame] != e.frame || (e.writable && !(mp->prot & VM_PROT_WRITE)))
          fail<"tlb">(fmt("cpu %llu va 0x%llx: TLB entry (frame %llu writable %llu) grants more than the model",
                          c, e.vpn << kPageShift, e.frame, e.writable));
      }
    }
    for (unsigned p = 0; p < kPmaps; p++) {
      if (!pmaps[p]) continue;
      for (unsigned s = 0; s < 8; s++) {
        const Mapping* mp = model.lookup(int(p), kSlots[s]);
        std::optional<pfn_t> got = pmap::pmap_extract(pmaps[p], kSlots[s]);
        if (got.has_value() != (mp != nullptr) || (mp && *got != frames[mp->frame]))
          fail<"pv">(fmt("pmap %llu va 0x%llx: pmap_extract disagrees with the model", p, kSlots[s]));
      }
    }
    for (unsigned f = 0; f < kData; f++) {
      size_t n = 0;
      for (const auto& [key, mp] : model.map) n += mp.frame == f;
      std::vector<pmap::PvEntry> pv = d.mappings_of(frames[f]);
      if (pv.size() != n) fail<"pv">(fmt("frame %llu: %llu pv entries, model %llu", f, pv.size(), n));
      for (const pmap::PvEntry& e : pv) {
        const Mapping* mp = model.lookup(pmap_index(e.pmap), e.va);
        if (mp == nullptr || mp->frame != f) fail<"pv">(fmt("frame %llu: pv entry va 0x%llx not in the model", f, e.va));
      }
      if (d.pmap_is_modified(frames[f]) != model.modified[f])
        fail<"attributes">(fmt("frame %llu: pmap_is_modified %llu, model %llu", f,
                               d.pmap_is_modified(frames[f]), model.modified[f]));
      if (d.pmap_is_referenced(frames[f]) != model.referenced[f])
        fail<"attributes">(fmt("frame %llu: pmap_is_referenced %llu, model %llu", f,
                               d.pmap_is_referenced(frames[f]), model.referenced[f]));
    }
    const auto& mem = m.memory();
    const uint32_t free = mem.count_of(FrameUse::Free), pt = mem.count_of(FrameUse::PageTable),
                   data = mem.count_of(FrameUse::VmPage);
    if (free + pt + data != mem.frame_count() || free != mem.free_count())
      fail<"frames">(fmt("free %llu + page-table %llu + data %llu != %llu", free, pt, data, mem.frame_count()));
    if (pt != d.stats().pt_frames || data != kData + hog.size())
      fail<"frames">(fmt("page-table frames %llu (pmap says %llu), data frames %llu (expected %llu)", pt,
                         d.stats().pt_frames, data, kData + hog.size()));
  }

  void teardown() {
    trace("teardown");
    for (unsigned c = 0; c < kCpus; c++) deactivate(c);
    for (pmap_t& p : pmaps)
      if (p) {
        pmap::pmap_destroy(p);
        p = nullptr;
      }
    hog_step(0);
    for (pfn_t f : frames) m.memory().free_frame(f);
    if (m.memory().free_count() != kFrames || d.stats().pt_frames != 0)
      fail<"leak">(fmt("after teardown %llu of %llu frames free, %llu page-table frames", m.memory().free_count(),
                       kFrames, d.stats().pt_frames));
  }
};

kern_return_t ModelHandler::page_fault(unsigned cpu, uint64_t cr2, uint32_t ec) {
  h->faults_seen++;
  const Mapping* mp = h->model.lookup(h->model.active[cpu], cr2);
  const bool write = expect_write;
  if (!(ec & machine::PF_U) || bool(ec & machine::PF_W) != write || bool(ec & machine::PF_P) != (mp != nullptr))
    fail<"fault">(fmt("cpu %llu cr2 0x%llx error code 0x%llx (model mapped %llu)", cpu, cr2, ec,
                                     mp != nullptr));
  if (mp == nullptr) return KERN_INVALID_ADDRESS;
  if (write && !(mp->prot & VM_PROT_WRITE)) return KERN_PROTECTION_FAILURE;
  fail<"fault">(fmt("cpu %llu cr2 0x%llx error code 0x%llx: a fault the model allows", cpu, cr2, ec));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Harness h;
  Input in{data, size};
  h.check(true);
  while (in.more()) {
    h.run_step(in);
    h.step++;
    h.check(h.step % kFullCheckEvery == 0 || !in.more());
  }
  h.teardown();
  return 0;
}
