// invariants.cc — checkers for the VM invariants named in invariants.h.
//
// Theory of operation: the checkers read vm::Kernel's structures through its const
// introspection (system(), task_map(), copy_handle(), machine()) and walk page tables
// directly from frame contents with the x86-64 layout of machine.h — so a pmap bug cannot
// hide itself from the oracle. Nothing is modified. Like the machine's and the pmap's own
// oracles (VMFUZZ_NO_COVERAGE, machine.h), the checkers carry no coverage instrumentation
// in fuzz builds: their scans would slow every input and count as progress.
#include "harness/exec/invariants.h"

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>

#include "vm/kernel.h"

namespace vmfuzz {

namespace {

using machine::pfn_t;
using vm::Kernel;
using vm::VmMap;
using vm::VmMapEntry;
using vm::VmObject;
using vm::VmPage;

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

void add(std::vector<Violation>& out, Oracle o, std::string detail) {
  out.push_back(Violation{o, std::move(detail)});
}

/// One leaf translation read from the tables.
struct Leaf {
  uint64_t va = 0;
  pfn_t frame = machine::kNoFrame;
  bool writable = false, user = false, dirty = false;
};

/// Walk every present path of the tables rooted at cr3; collect leaves and table frames.
VMFUZZ_NO_COVERAGE void walk_tables(const machine::PhysicalMemory& mem, uint64_t cr3, std::vector<Leaf>* leaves,
                 std::vector<pfn_t>* tables) {
  using namespace machine;
  uint64_t nframes = mem.frame_count();
  pfn_t pml4 = pfn_t(cr3 >> 12);
  if (pml4 >= nframes) return;
  tables->push_back(pml4);
  struct Frame {
    pfn_t table;
    unsigned level;
    uint64_t va;
    bool w, u;
  };
  std::vector<Frame> stack{{pml4, 0, 0, true, true}};
  while (!stack.empty()) {
    Frame f = stack.back();
    stack.pop_back();
    // The table's bytes, read in place (what read_entry reads, without a call per entry).
    const uint8_t* bytes = mem.frame(f.table);
    for (unsigned i = kEntriesPerTable; i-- > 0;) {
      uint64_t e;
      std::memcpy(&e, bytes + size_t(i) * 8, 8);
      if ((e & PTE_P) == 0) continue;
      uint64_t va = f.va | (uint64_t(i) << (39 - 9 * f.level));
      pfn_t next = pfn_t(pte_frame(e));
      bool w = f.w && (e & PTE_RW) != 0, u = f.u && (e & PTE_US) != 0;
      if (f.level == 3) {
        leaves->push_back(Leaf{va, next, w, u, (e & PTE_D) != 0});
      } else if (next < nframes) {
        tables->push_back(next);
        stack.push_back(Frame{next, f.level + 1, va, w, u});
      }
    }
  }
  std::sort(leaves->begin(), leaves->end(),
            [](const Leaf& a, const Leaf& b) { return a.va < b.va; });
}

/// The leaf for va in the tables rooted at cr3, if present (pure read).
VMFUZZ_NO_COVERAGE bool lookup_leaf(const machine::PhysicalMemory& mem, uint64_t cr3, uint64_t va, Leaf* out) {
  using namespace machine;
  pfn_t table = pfn_t(cr3 >> 12);
  bool w = true, u = true;
  for (unsigned level = 0; level < 4; ++level) {
    if (table >= mem.frame_count()) return false;
    uint64_t e = mem.read_entry(table, pt_index(va, level));
    if ((e & PTE_P) == 0) return false;
    w = w && (e & PTE_RW) != 0;
    u = u && (e & PTE_US) != 0;
    if (level == 3) {
      *out = Leaf{trunc_page(va), pfn_t(pte_frame(e)), w, u, (e & PTE_D) != 0};
      return true;
    }
    table = pfn_t(pte_frame(e));
  }
  return false;
}

/// no_cow_breach and no_stale_mapping for one translation (PTE or TLB entry) of task t.
VMFUZZ_NO_COVERAGE void check_mapping(const Kernel& k, unsigned t, const VmMap& map, const Leaf& l, const char* what,
                   std::vector<Violation>& out) {
  const vm::VmSystem& sys = k.system();
  const VmMapEntry* e = vm::vm_map_lookup_entry(map, l.va);
  if (e == nullptr) {
    add(out, Oracle::no_stale_mapping,
        fmt("t%u %s va 0x%" PRIx64 " -> frame %u: no map entry", t, what, l.va, l.frame));
    return;
  }
  const VmPage* p = l.frame < sys.page_of_frame.size() ? sys.page_of_frame[l.frame] : nullptr;
  if (p == nullptr) {
    add(out, Oracle::no_stale_mapping,
        fmt("t%u %s va 0x%" PRIx64 " -> frame %u: frame is no resident page", t, what, l.va,
            l.frame));
    return;
  }
  uint64_t off = e->offset + (l.va - e->start);
  vm::ChainLookup c =
      e->object != nullptr ? vm::vm_object_chain_lookup(e->object, off) : vm::ChainLookup{};
  if (c.page != p) {
    add(out, Oracle::no_stale_mapping,
        fmt("t%u %s va 0x%" PRIx64 " -> frame %u (object %" PRIu64 " offset 0x%" PRIx64
            "), but the entry's chain resolves to %s",
            t, what, l.va, l.frame, p->object ? p->object->id : 0, p->offset,
            c.page ? fmt("frame %u", c.page->frame).c_str() : "no page"));
  }
  if ((vm::vm_prot_mmu(e->protection) & VM_PROT_READ) == 0) {
    add(out, Oracle::no_cow_breach,
        fmt("t%u %s va 0x%" PRIx64 ": mapped but the entry allows no access", t, what, l.va));
  }
  if (!l.writable) return;
  if ((e->protection & VM_PROT_WRITE) == 0) {
    add(out, Oracle::no_cow_breach,
        fmt("t%u %s va 0x%" PRIx64 ": writable but the entry forbids writing", t, what, l.va));
    return;
  }
  if (e->needs_copy) {
    add(out, Oracle::no_cow_breach,
        fmt("t%u %s va 0x%" PRIx64 ": writable through a needs_copy entry (object %" PRIu64 ")",
            t, what, l.va, e->object ? e->object->id : 0));
    return;
  }
  if ((p->page_lock & VM_PROT_WRITE) != 0) {
    add(out, Oracle::no_cow_breach,
        fmt("t%u %s va 0x%" PRIx64 ": writable mapping of a write-locked page (object %" PRIu64
            " offset 0x%" PRIx64 ")",
            t, what, l.va, p->object ? p->object->id : 0, p->offset));
    return;
  }
  if (p->object != e->object || p->offset != off) {
    add(out, Oracle::no_cow_breach,
        fmt("t%u %s va 0x%" PRIx64 ": writable mapping of frame %u in object %" PRIu64
            " (not the entry's top object %" PRIu64 ")",
            t, what, l.va, l.frame, p->object ? p->object->id : 0,
            e->object ? e->object->id : 0));
    return;
  }
  const VmObject* copy = e->object->copy;
  if (copy != nullptr && off < copy->size && vm::vm_page_lookup(copy, off) == nullptr &&
      vm::vm_object_pager_data(copy, off) == nullptr) {
    add(out, Oracle::no_cow_breach,
        fmt("t%u %s va 0x%" PRIx64 ": writable page of object %" PRIu64
            " offset 0x%" PRIx64 " not yet pushed to copy object %" PRIu64,
            t, what, l.va, e->object->id, off, copy->id));
  }
}

/// True when the frame->page table and the live objects' pages are one-to-one: every page
/// walked is the page its frame's slot names, and the table names no more pages than were
/// walked. Then no frame is held by two pages (two pages would need one slot naming both;
/// one page walked twice would be counted twice) and no slot names a page outside the live
/// objects, so check_objects needs no per-frame owner table to know those hold.
VMFUZZ_NO_COVERAGE bool frame_table_matches_pages(const vm::VmSystem& sys) {
  size_t walked = 0;
  for (const auto& [id, o] : sys.objects) {
    for (const VmPage* p = vm::vm_page_next(o, 0); p != nullptr; p = vm::vm_page_next(o, p->offset + kPageSize)) {
      ++walked;
      if (p->frame >= sys.page_of_frame.size() || sys.page_of_frame[p->frame] != p) return false;
    }
  }
  size_t named = 0;
  for (const VmPage* p : sys.page_of_frame) named += p != nullptr;
  return walked == named;
}

VMFUZZ_NO_COVERAGE void check_objects(const Kernel& k, std::vector<Violation>& out) {
  const vm::VmSystem& sys = k.system();
  // ref_counts: recount. Every reference found, as the object pointer it holds (never
  // dereferenced here: a dangling one is counted, not followed), sorted for counting;
  // only looked up, never iterated in pointer order.
  std::vector<const VmObject*> refs;
  for (unsigned t = 0; t < kMaxNames; ++t)
    if (const VmMap* map = k.task_map(t))
      for (const auto& [s, e] : map->entries)
        if (e.object != nullptr) refs.push_back(e.object);
  for (unsigned c = 0; c < kMaxNames; ++c)
    if (const vm::VmMapCopy* copy = k.copy_handle(c))
      for (const auto& ce : copy->entries)
        if (ce.object != nullptr) refs.push_back(ce.object);
  // A vm_write in flight holds the copy its message carries.
  for (const auto& [tid, th] : sys.sched.threads)
    if (th.copy != nullptr)
      for (const auto& ce : th.copy->entries)
        if (ce.object != nullptr) refs.push_back(ce.object);
  for (const auto& [id, o] : sys.objects)
    if (o->shadow != nullptr) refs.push_back(o->shadow);
  // A request in flight to a held manager holds a paging reference on its object.
  for (unsigned m = 0; m < kMaxNames; ++m)
    if (const vm::ManagerPager* mp = k.memory_object(m))
      for (const vm::PagerRequest& r : mp->requests)
        if (auto it = sys.objects.find(r.object); it != sys.objects.end()) refs.push_back(it->second);
  // So does a data_return the manager has not acknowledged.
  for (unsigned m = 0; m < kMaxNames; ++m)
    if (const vm::ManagerPager* mp = k.memory_object(m))
      for (const vm::PagerReturn& r : mp->returns)
        if (auto it = sys.objects.find(r.object); it != sys.objects.end()) refs.push_back(it->second);
  std::sort(refs.begin(), refs.end(), std::less<const VmObject*>());
  size_t pages = 0;
  // The page found owning each frame (indexed by frame; frames beyond the table are kept
  // in `stray_owner`, which only a broken page can fill). Needed only to name a frame held
  // twice or a stray slot, which cannot exist when the table matches the pages.
  const bool one_to_one = frame_table_matches_pages(sys);
  std::vector<const VmPage*> frame_owner(one_to_one ? 0 : sys.page_of_frame.size(), nullptr);
  std::map<pfn_t, const VmPage*> stray_owner;
  auto claim = [&](const VmPage* p) -> const VmPage* {  // the earlier owner, or null
    if (one_to_one) return nullptr;
    const VmPage*& slot = p->frame < frame_owner.size() ? frame_owner[p->frame] : stray_owner[p->frame];
    if (slot != nullptr) return slot;
    slot = p;
    return nullptr;
  };
  for (const auto& [id, o] : sys.objects) {
    if (o->id != id || !o->alive)
      add(out, Oracle::ref_counts, fmt("object %" PRIu64 ": registry entry is not a live object", id));
    auto [lo, hi] = std::equal_range(refs.begin(), refs.end(), static_cast<const VmObject*>(o),
                                     std::less<const VmObject*>());
    int expect = int(hi - lo);
    if (o->ref_count != expect)
      add(out, Oracle::ref_counts,
          fmt("object %" PRIu64 ": ref_count %d, references found %d", id, o->ref_count, expect));
    // Objects a reference points at must be registered (alive).
    if (o->shadow != nullptr && sys.objects.count(o->shadow->id) == 0)
      add(out, Oracle::ref_counts, fmt("object %" PRIu64 ": shadow is not a live object", id));
    // resident_counts and page_in_one_object.
    size_t n = 0;
    for (const VmPage* p = vm::vm_page_next(o, 0); p != nullptr;
         p = vm::vm_page_next(o, p->offset + kPageSize)) {
      ++n;
      if (p->object != o)
        add(out, Oracle::page_in_one_object,
            fmt("object %" PRIu64 " offset 0x%" PRIx64 ": page names another object", id, p->offset));
      if (p->busy && !p->absent && !p->cleaning)  // requests and returns in flight: paging_accounting
        add(out, Oracle::page_in_one_object,
            fmt("object %" PRIu64 " offset 0x%" PRIx64 ": page left busy", id, p->offset));
      if (const VmPage* first = claim(p))
        add(out, Oracle::page_in_one_object,
            fmt("frame %u: held by object %" PRIu64 " offset 0x%" PRIx64 " and object %" PRIu64
                " offset 0x%" PRIx64,
                p->frame, first->object ? first->object->id : 0, first->offset, id, p->offset));
      // device_pages: an object served by a device pager holds only private pages, each
      // on the device frame for its offset; private pages live nowhere else.
      machine::pfn_t dev = o->pager != nullptr ? o->pager->device_frame(p->offset + o->paging_offset)
                                               : machine::kNoFrame;
      if (dev != machine::kNoFrame && (!p->private_page || p->frame != dev))
        add(out, Oracle::device_pages,
            fmt("object %" PRIu64 " offset 0x%" PRIx64 ": frame %u is not the device's frame %u "
                "(or not a private page)", id, p->offset, p->frame, dev));
      if (dev == machine::kNoFrame && p->private_page)
        add(out, Oracle::device_pages,
            fmt("object %" PRIu64 " offset 0x%" PRIx64 ": private page outside a device's object", id, p->offset));
      if (p->private_page && (p->wire_count == 0 || p->queue != VmPage::Queue::None))
        add(out, Oracle::device_pages,
            fmt("object %" PRIu64 " offset 0x%" PRIx64 ": device page unwired or on a paging queue", id, p->offset));
      if (p->frame >= sys.page_of_frame.size() || sys.page_of_frame[p->frame] != p)
        add(out, Oracle::page_in_one_object,
            fmt("frame %u: frame table does not point at object %" PRIu64 " offset 0x%" PRIx64,
                p->frame, id, p->offset));
    }
    if (n != o->resident_page_count || n != o->pages.size())
      add(out, Oracle::resident_counts,
          fmt("object %" PRIu64 ": resident_page_count %u, pages in tree %zu (walked %zu)", id,
              o->resident_page_count, o->pages.size(), n));
    pages += n;
    // copy_object_shape.
    if (const VmObject* c = o->copy) {
      if (sys.objects.count(c->id) == 0 || sys.objects.at(c->id) != c)
        add(out, Oracle::copy_object_shape, fmt("object %" PRIu64 ": copy object is not alive", id));
      else if (c->shadow != o || c->shadow_offset != 0)
        add(out, Oracle::copy_object_shape,
            fmt("object %" PRIu64 ": copy object %" PRIu64 " shadows %" PRIu64
                " at 0x%" PRIx64 " (must be this object at 0)",
                id, c->id, c->shadow ? c->shadow->id : 0, c->shadow_offset));
    }
    // no_chain_cycles.
    size_t steps = 0;
    for (const VmObject* s = o->shadow; s != nullptr; s = s->shadow) {
      if (++steps > sys.objects.size()) {
        add(out, Oracle::no_chain_cycles, fmt("object %" PRIu64 ": shadow chain does not end", id));
        break;
      }
    }
  }
  // Every page in the frame table must be one found in an object.
  for (pfn_t f = 0; !one_to_one && f < sys.page_of_frame.size(); ++f)
    if (sys.page_of_frame[f] != nullptr && frame_owner[f] == nullptr)
      add(out, Oracle::page_in_one_object, fmt("frame %u: frame table names a page in no live object", f));
  (void)pages;
}

/// frames_accounted by a scan of every frame of the machine: each free, a reachable page
/// table (`table_owner[f]` != 0), or owned by one page. O(frames); called only when
/// frames_consistent() finds a discrepancy, to name every frame concerned.
VMFUZZ_NO_COVERAGE void scan_frames(const vm::VmSystem& sys, const machine::PhysicalMemory& mem,
                 const std::vector<uint8_t>& table_owner, std::vector<Violation>& out) {
  uint32_t owned = 0, tables = 0, device = 0;
  for (pfn_t f = 0; f < mem.frame_count(); ++f) {
    machine::FrameUse use = mem.use_of(f);
    bool page = sys.page_of_frame[f] != nullptr;
    bool table = table_owner[f] != 0;
    switch (use) {
      case machine::FrameUse::Free:
        if (page || table) add(out, Oracle::frames_accounted, fmt("frame %u: free but in use", f));
        break;
      case machine::FrameUse::PageTable:
        ++tables;
        if (!table) add(out, Oracle::frames_accounted, fmt("frame %u: page-table frame of no live pmap (lost)", f));
        if (page) add(out, Oracle::frames_accounted, fmt("frame %u: page table and resident page", f));
        break;
      case machine::FrameUse::VmPage:
        ++owned;
        if (!page) add(out, Oracle::frames_accounted, fmt("frame %u: VM frame owned by no page (lost)", f));
        else if (sys.page_of_frame[f]->private_page)
          add(out, Oracle::frames_accounted, fmt("frame %u: RAM frame held by a private (device) page", f));
        break;
      case machine::FrameUse::Device:
        ++device;
        if (table) add(out, Oracle::frames_accounted, fmt("frame %u: device frame used as a page table", f));
        if (page && !sys.page_of_frame[f]->private_page)
          add(out, Oracle::frames_accounted, fmt("frame %u: device frame held by an ordinary page", f));
        break;
    }
  }
  if (owned + tables + device + mem.free_count() != mem.frame_count())
    add(out, Oracle::frames_accounted,
        fmt("%u owned + %u tables + %u device + %u free != %u frames", owned, tables, device,
            mem.free_count(), mem.frame_count()));
}

/// True when scan_frames would find nothing, decided from the frames in use only:
///   - every reachable table frame (`tables`, distinct) is marked PageTable and holds no
///     page, and there are exactly count_of(PageTable) of them: then the PageTable frames
///     are exactly the reachable tables (none lost);
///   - every ordinary page of the frame->page table is on a frame marked VmPage, and there
///     are exactly count_of(VmPage) of them: then every VmPage frame has a page (none
///     lost); every private (device) page is on a frame marked Device;
///   - hence no Free frame is a page or a table, and the four counts add up.
/// It relies on PhysicalMemory's per-use counters agreeing with its per-frame marks (the
/// machine keeps both in alloc_frame/free_frame; it is the hardware, not the VM judged).
/// The page_of_frame scan is a pointer test per frame, far cheaper than scan_frames.
VMFUZZ_NO_COVERAGE bool frames_consistent(const vm::VmSystem& sys, const machine::PhysicalMemory& mem,
                       const std::vector<pfn_t>& tables) {
  using machine::FrameUse;
  for (pfn_t f : tables)
    if (mem.use_of(f) != FrameUse::PageTable || sys.page_of_frame[f] != nullptr) return false;
  if (tables.size() != mem.count_of(FrameUse::PageTable)) return false;
  uint32_t pages = 0;
  const size_t n = sys.page_of_frame.size();
  for (pfn_t f = 0; f < n; ++f) {
    const VmPage* p = sys.page_of_frame[f];
    if (p == nullptr) continue;
    if (p->private_page) {
      if (mem.use_of(f) != FrameUse::Device) return false;
      continue;
    }
    ++pages;
    if (mem.use_of(f) != FrameUse::VmPage) return false;
  }
  return pages == mem.count_of(FrameUse::VmPage) &&
         uint64_t(mem.count_of(FrameUse::VmPage)) + mem.count_of(FrameUse::PageTable) +
                 mem.count_of(FrameUse::Device) + mem.free_count() ==
             mem.frame_count();
}

VMFUZZ_NO_COVERAGE void check_frames_and_mappings(const Kernel& k, std::vector<Violation>& out) {
  const vm::VmSystem& sys = k.system();
  const machine::PhysicalMemory& mem = k.machine().memory();
  // Table frame -> 1 + the task whose tables reach it (0: none), and the distinct table
  // frames in the order found.
  std::vector<uint8_t> table_owner(mem.frame_count(), 0);
  std::vector<pfn_t> all_tables;
  std::vector<Leaf> leaves;
  std::vector<pfn_t> tables;
  for (unsigned t = 0; t < kMaxNames; ++t) {
    const VmMap* map = k.task_map(t);
    if (map == nullptr || map->pmap == nullptr) continue;
    leaves.clear();
    tables.clear();
    walk_tables(mem, map->pmap->cr3(), &leaves, &tables);
    for (pfn_t f : tables) {
      if (table_owner[f] != 0) {
        add(out, Oracle::frames_accounted,
            fmt("frame %u: page table of t%u and of t%u", f, unsigned(table_owner[f] - 1), t));
      } else {
        table_owner[f] = uint8_t(t + 1);
        all_tables.push_back(f);
      }
      if (mem.use_of(f) != machine::FrameUse::PageTable)
        add(out, Oracle::frames_accounted, fmt("frame %u: page table of t%u not marked PageTable", f, t));
    }
    for (const Leaf& l : leaves) {
      if (!l.user)
        add(out, Oracle::no_cow_breach, fmt("t%u pte va 0x%" PRIx64 ": not user-accessible", t, l.va));
      check_mapping(k, t, *map, l, "pte", out);
    }
  }
  // frames_accounted: every frame free, a reachable table, or owned by one page. The scan
  // of every frame runs only when the frames in use say something is off.
  if (!frames_consistent(sys, mem, all_tables)) scan_frames(sys, mem, table_owner, out);
}

VMFUZZ_NO_COVERAGE void check_tlbs(const Kernel& k, bool mapping_checks, std::vector<Violation>& out) {
  const machine::Machine& m = k.machine();
  const machine::PhysicalMemory& mem = m.memory();
  for (unsigned cpu = 0; cpu < m.cpu_count(); ++cpu) {
    const machine::Cpu& c = m.cpu(cpu);
    int t = k.task_on_cpu(cpu);
    const VmMap* map = t >= 0 ? k.task_map(unsigned(t)) : nullptr;
    if (map != nullptr && (map->pmap == nullptr || map->pmap->cr3() != c.cr3))
      add(out, Oracle::tlb_coherent,
          fmt("cpu%u: CR3 0x%" PRIx64 " is not the pmap of t%d loaded there", cpu, c.cr3, t));
    for (const machine::TlbEntry& te : c.tlb.entries()) {
      uint64_t va = te.vpn << 12;
      Leaf l;
      if (!lookup_leaf(mem, c.cr3, va, &l)) {
        add(out, Oracle::tlb_coherent, fmt("cpu%u va 0x%" PRIx64 ": TLB entry (frame %u) without a PTE",
                                     cpu, va, te.frame));
        continue;
      }
      if (l.frame != te.frame)
        add(out, Oracle::tlb_coherent, fmt("cpu%u va 0x%" PRIx64 ": TLB frame %u, PTE frame %u", cpu, va,
                                     te.frame, l.frame));
      if (te.writable && !l.writable)
        add(out, Oracle::tlb_coherent,
            fmt("cpu%u va 0x%" PRIx64 ": TLB writable, PTE read-only", cpu, va));
      if (te.user && !l.user)
        add(out, Oracle::tlb_coherent, fmt("cpu%u va 0x%" PRIx64 ": TLB user, PTE supervisor", cpu, va));
      if (te.dirty && !l.dirty)
        add(out, Oracle::tlb_coherent, fmt("cpu%u va 0x%" PRIx64 ": TLB dirty, PTE clean", cpu, va));
      if (mapping_checks && map != nullptr) {
        Leaf tl{va, te.frame, te.writable, te.user, te.dirty};
        check_mapping(k, unsigned(t), *map, tl, "tlb", out);
      }
    }
  }
}

}  // namespace

VMFUZZ_NO_COVERAGE void check_vm_invariants(const vm::Kernel& k, std::vector<Violation>& out) {
  check_objects(k, out);
  check_frames_and_mappings(k, out);
  check_tlbs(k, true, out);
  std::string why;
  if (!k.domain().pv_consistent(&why)) add(out, Oracle::pv_consistent, why);
}

VMFUZZ_NO_COVERAGE void check_tlb_coherence(const vm::Kernel& k, std::vector<Violation>& out) {
  check_tlbs(k, false, out);
}

VMFUZZ_NO_COVERAGE void check_teardown(const vm::Kernel& k, std::vector<Violation>& out) {
  const machine::PhysicalMemory& mem = k.machine().memory();
  if (!k.tasks().empty())
    add(out, Oracle::teardown, fmt("%zu task(s) still exist", k.tasks().size()));
  if (uint32_t n = mem.count_of(machine::FrameUse::VmPage))
    add(out, Oracle::teardown, fmt("%u frame(s) still owned by resident pages", n));
  if (uint32_t n = mem.count_of(machine::FrameUse::PageTable))
    add(out, Oracle::teardown, fmt("%u page-table frame(s) still in use", n));
  if (uint64_t n = k.object_count()) {
    std::string ids;
    for (const auto& [id, o] : k.system().objects) {
      (void)o;
      ids += fmt(" %" PRIu64, id);
    }
    add(out, Oracle::teardown, fmt("%" PRIu64 " object(s) remain:%s", n, ids.c_str()));
  }
}

// --- Step invariants (docs/concurrency.md) ------------------------------------------------

VMFUZZ_NO_COVERAGE void check_step_invariants(const Kernel& k, std::vector<Violation>& out) {
  const vm::VmSystem& sys = k.system();
  if (sys.counters.data_requests == 0 && sys.sched.threads.empty() && sys.counters.terminated_while_paging == 0 &&
      sys.counters.inits_queued == 0 && sys.counters.returns_sent == 0 && sys.counters.lock_requests == 0)
    return;  // no held manager was ever asked: nothing can be in flight
  if (sys.counters.pageins_before_ready != 0)
    add(out, Oracle::paging_accounting,
        fmt("%" PRIu64 " page-in(s) asked of a manager before it answered memory_object_init (pager_ready false)",
            sys.counters.pageins_before_ready));
  if (sys.counters.terminated_while_paging != 0)
    add(out, Oracle::paging_accounting,
        fmt("%" PRIu64 " object(s) terminated with paging in progress or a page in transit",
            sys.counters.terminated_while_paging));
  // Requests in flight, by page and by object (ids: no pointer order).
  std::map<std::pair<uint64_t, uint64_t>, unsigned> per_page;
  std::map<uint64_t, unsigned> per_object;
  for (unsigned m = 0; m < kMaxNames; ++m) {
    const vm::ManagerPager* mp = k.memory_object(m);
    if (mp == nullptr) continue;
    for (const vm::PagerRequest& r : mp->requests) {
      ++per_object[r.object];
      if (++per_page[{r.object, r.offset}] == 2)
        add(out, Oracle::paging_accounting,
            fmt("object %" PRIu64 " offset 0x%" PRIx64 ": a second data_request in flight for one page", r.object,
                r.offset));
      auto it = sys.objects.find(r.object);
      const VmPage* p = it == sys.objects.end() ? nullptr : vm::vm_page_lookup(it->second, r.offset);
      if (p == nullptr || !p->busy || !p->absent)
        add(out, Oracle::paging_accounting,
            fmt("m%u request for object %" PRIu64 " offset 0x%" PRIx64 ": %s", m, r.object, r.offset,
                it == sys.objects.end() ? "the object is gone" : "no busy absent page waits for it"));
    }
  }
  // data_returns in flight (docs/concurrency.md §Cleaning): each names a busy cleaning
  // page of a live object, one per page; a lock_completed sent while a data_return of its
  // range sent before the lock request is unacknowledged is the bug of sending it early.
  std::map<std::pair<uint64_t, uint64_t>, unsigned> returns_per_page;
  for (unsigned m = 0; m < kMaxNames; ++m) {
    const vm::ManagerPager* mp = k.memory_object(m);
    if (mp == nullptr) continue;
    for (const vm::PagerReturn& r : mp->returns) {
      ++per_object[r.object];
      if (++returns_per_page[{r.object, r.offset}] == 2)
        add(out, Oracle::paging_accounting,
            fmt("object %" PRIu64 " offset 0x%" PRIx64 ": a second data_return in flight for one page", r.object,
                r.offset));
      auto it = sys.objects.find(r.object);
      const VmPage* p = it == sys.objects.end() ? nullptr : vm::vm_page_lookup(it->second, r.offset);
      if (p == nullptr || !p->busy || !p->cleaning)
        add(out, Oracle::paging_accounting,
            fmt("m%u data_return for object %" PRIu64 " offset 0x%" PRIx64 ": %s", m, r.object, r.offset,
                it == sys.objects.end() ? "the object is gone" : "no busy page being cleaned waits for its ack"));
    }
    for (const vm::LockCompleted& c : mp->early_completions)
      for (const vm::PagerReturn& r : mp->returns)
        if (r.object == c.object && r.offset >= c.start && r.offset < c.end && r.id < c.lock)
          add(out, Oracle::paging_accounting,
              fmt("m%u: memory_object_lock_completed sent for object %" PRIu64 " [0x%" PRIx64 ", 0x%" PRIx64
                  ") while its data_return of offset 0x%" PRIx64 " is unacknowledged",
                  m, c.object, c.start, c.end, r.offset));
  }
  for (const auto& [id, o] : sys.objects) {
    unsigned absent = 0;
    for (const VmPage* p = vm::vm_page_next(o, 0); p != nullptr; p = vm::vm_page_next(o, p->offset + kPageSize)) {
      if (p->absent) ++absent;
      if (p->cleaning && (!p->busy || p->absent || returns_per_page.count({id, p->offset}) == 0))
        add(out, Oracle::paging_accounting,
            fmt("object %" PRIu64 " offset 0x%" PRIx64 ": page being cleaned that is %s", id, p->offset,
                !p->busy ? "not busy (a fault took it)" : p->absent ? "absent" : "without a data_return in flight"));
      else if (p->busy && !p->cleaning && (!p->absent || per_page.count({id, p->offset}) == 0))
        add(out, Oracle::paging_accounting,
            fmt("object %" PRIu64 " offset 0x%" PRIx64 ": busy page with no request in flight", id, p->offset));
    }
    if (o->absent_count != absent)
      add(out, Oracle::paging_accounting,
          fmt("object %" PRIu64 ": absent_count %u, absent pages %u", id, o->absent_count, absent));
    if (o->absent_count > vm::kAbsentMax)
      add(out, Oracle::paging_accounting,
          fmt("object %" PRIu64 ": absent_count %u above vm_object_absent_max %u", id, o->absent_count, vm::kAbsentMax));
    auto po = per_object.find(id);
    unsigned inflight = po == per_object.end() ? 0 : po->second;
    if (o->paging_in_progress != inflight)
      add(out, Oracle::paging_accounting,
          fmt("object %" PRIu64 ": paging_in_progress %u, requests and data_returns in flight %u", id,
              o->paging_in_progress, inflight));
  }
  // wait_target: every blocked thread waits on an event that can still be posted.
  for (const auto& [tid, t] : sys.sched.threads) {
    if (t.state != vm::KThread::State::Blocked) continue;
    bool ok = false;
    auto it = sys.objects.find(t.event.object);
    const VmObject* o = it == sys.objects.end() ? nullptr : it->second;
    switch (t.event.kind) {
      case vm::WaitEvent::Kind::None: break;
      case vm::WaitEvent::Kind::PageBusy: {
        const VmPage* p = o ? vm::vm_page_lookup(o, t.event.offset) : nullptr;
        ok = p != nullptr && p->busy && (per_page.count({t.event.object, t.event.offset}) != 0 ||
                                         returns_per_page.count({t.event.object, t.event.offset}) != 0);
        break;
      }
      case vm::WaitEvent::Kind::AbsentBelow:
        ok = o != nullptr && o->absent_count >= vm::kAbsentMax && per_object.count(t.event.object) != 0;
        break;
      case vm::WaitEvent::Kind::PagerReady:
        // Not ready, and its manager still owes the answer to its memory_object_init.
        for (unsigned m = 0; m < kMaxNames && o != nullptr && !o->pager_ready && !ok; ++m) {
          const vm::ManagerPager* mp = k.memory_object(m);
          ok = mp != nullptr && mp->init_object == t.event.object;
        }
        break;
    }
    if (!ok)
      add(out, Oracle::wait_target,
          fmt("thread %u blocked at %s on %s since step %" PRIu64 ": nobody can post it", tid,
              vm::yield_point_name(t.where), vm::wait_event_name(t.event).c_str(), t.since_step));
  }
}

std::string describe_threads(const Kernel& k) {
  const vm::VmSystem& sys = k.system();
  std::string s;
  for (const auto& [tid, t] : sys.sched.threads) {
    if (t.kind == vm::KThread::Kind::VmCopy)
      s += fmt("thread %u: vm_copy t%u 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64 " (kernel op, from the top), ", tid,
               t.task, t.addr, t.size, t.dst);
    else if (t.kind == vm::KThread::Kind::VmWrite)
      s += fmt("thread %u: vm_write t%u 0x%" PRIx64 " (kernel op, from the top, with its copy), ", tid, t.task, t.dst);
    else
      s += fmt("thread %u: %s t%u 0x%" PRIx64 " size 0x%" PRIx64 " cpu=%u, moved 0x%" PRIx64 ", ", tid,
               t.write ? "write" : "read", t.task, t.addr, t.size, t.cpu, t.done);
    if (t.state == vm::KThread::State::Runnable)
      s += fmt("runnable since step %" PRIu64 "\n", t.since_step);
    else
      s += fmt("blocked at %s on %s since step %" PRIu64 "\n", vm::yield_point_name(t.where),
               vm::wait_event_name(t.event).c_str(), t.since_step);
  }
  for (unsigned m = 0; m < kMaxNames; ++m) {
    const vm::ManagerPager* mp = k.memory_object(m);
    if (mp == nullptr) continue;
    if (mp->silent() && (mp->init_object != 0 || !mp->requests.empty() || !mp->returns.empty())) s += fmt("m%u is silent: it answers nothing\n", m);
    if (mp->init_object != 0) s += fmt("m%u memory_object_init pending: object %" PRIu64 " not ready\n", m, mp->init_object);
    for (size_t i = 0; i < mp->requests.size(); ++i) {
      const vm::PagerRequest& r = mp->requests[i];
      s += fmt("m%u request %zu: object %" PRIu64 " offset 0x%" PRIx64 " (pager offset 0x%" PRIx64 "), from thread %u\n",
               m, i, r.object, r.offset, r.pager_offset, r.owner);
    }
    for (size_t i = 0; i < mp->returns.size(); ++i) {
      const vm::PagerReturn& r = mp->returns[i];
      s += fmt("m%u data_return %zu: object %" PRIu64 " offset 0x%" PRIx64 " (pager offset 0x%" PRIx64 ")%s\n", m, i,
               r.object, r.offset, r.pager_offset, r.flush ? ", flush" : "");
    }
  }
  return s;
}

}  // namespace vmfuzz
