// model.cc — the reference model: every op of docs/language.md read as plainly as possible.
//
// Theory of operation: see model.h (pages, memories, regions; a share is one Memory seen
// by several regions, a copy is a new Memory holding the same immutable Page records).
// Every op first does its checks in the order docs/language.md gives, then changes state; an op that
// fails changes nothing (except a consumed handle). Helpers above the Model methods are
// the whole vocabulary: page_range (rounding and wrap), find_region / clip (the map),
// check_range (first offence in address order), snapshot / overwrite (copies),
// copyin / copy_overwrite / enter (Mach's vm_map_copyin, vm_map_copy_overwrite,
// vm_map_enter).
//
// ("detail N" below is docs/language.md §Details N.)
//
// Decisions (where the language leaves something open; GNU Mach's choice unless said
// otherwise; docs/language.md §Decisions explains each for trace writers)
// ---------------------------------------------------------------------------------------
// D1  allocate of size 0 returns address 0 for a fixed request too (vm_allocate sets
//     *addr = 0 before looking at `anywhere`). A fixed success returns trunc_page(addr).
// D2  vm_write and vm_copy's overwrite half check alignment (handle source address, size,
//     destination) before the destination range, so an unaligned destination whose end
//     wraps is KERN_INVALID_ARGUMENT; an aligned one that wraps is KERN_INVALID_ADDRESS
//     (vm_map_copy_overwrite checks alignment first, then looks the destination up).
//     An empty handle (size 0) makes vm_write succeed whatever the destination (detail 4;
//     vm_map_copy_overwrite returns at once for a null copy).
// D3  Unknown contents are page-granular. A page is unknown when its Memory is a destroyed
//     object's store (all_unknown: forever, whatever is written later), or when a copy
//     brought unknown pages into it (an unknown run); a store of a few bytes into an
//     unknown page leaves it unknown, a whole-page copy (vm_copy, vm_write) replaces it.
// D4  Accesses touching unknown pages succeed in the model (the VM may fault with
//     KERN_MEMORY_ERROR there, detail 13): the Access marks every byte it moved on such a
//     page in `unknown`, for writes as for reads, telling the harness the outcome is not
//     comparable from that byte on. `file` of a destroyed object reads all bytes unknown.
// D5  vm_read and vm_copy whose source touches any unknown page succeed, and the whole
//     copy is unknown (so the whole vm_copy destination, or everything later copied out
//     or vm_written from the handle): the VM may fail part way with KERN_MEMORY_ERROR,
//     leaving any mix of old and new pages, so nothing in the destination is comparable.
//     fork COPY never fails: its snapshot carries exactly the source's unknown pages (a
//     copy of a destroyed store's mapping is wholly unknown).
// D6  `manager_write` and `file` ranges lie inside the object when offset + size <= object
//     size without overflow; size 0 at any offset up to the object size is success (a
//     zero-length write changes nothing, a zero-length file returns no bytes). Their
//     offsets need not be page-aligned (the manager's store is a byte array).
// D7  `map` checks, all KERN_INVALID_ARGUMENT, in this order: size 0, unaligned offset,
//     window outside the object (offset + size > object size), prot beyond max, destroyed.
//     Then: wrap (trunc(addr) + round(size) reaching 2^64) KERN_INVALID_ARGUMENT, outside
//     user space KERN_INVALID_ADDRESS, overlap or no room KERN_NO_SPACE. A `copy` mapping
//     snapshots exactly the window's pages.
// D8  An object size whose rounding to pages overflows is taken as 2^64 - 4096 (the
//     largest page multiple), as the binary decoder clamps it.
// D9  copyout that fails (KERN_NO_SPACE) returns address 0; so does an empty handle.
// D10 pageout, and the `cpu` of an access, change nothing in the model.
// D11 pages_of_interest and object_pages_of_interest list the pages holding a non-zero
//     byte and omit unknown pages: the oracles skip unknown pages anyway (peek says
//     Unknown), and listing a destroyed 2^46-byte mapping page by page would never end.
//     A page absent from both sides' lists must read zero or be unknown.
// D12 A `device` is, to an observer, a memory object with copy strategy none that is not
//     persistent: its store is the device memory, shared mappings are that memory,
//     copies are snapshots, `manager_write` is the device changing its memory. How the
//     VM gets there (private pages on device frames) is not the model's business.
#include "reference_model/model.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace vmfuzz::model {

namespace {

constexpr uint64_t kLastPage = ~uint64_t{0} & ~(kPageSize - 1);  // 2^64 - 4096

/// The page range covering [addr, addr+size), size > 0: false when its end would reach or
/// pass 2^64 (detail 6: an end of exactly 2^64 wraps).
bool page_range(uint64_t addr, uint64_t size, uint64_t* start, uint64_t* end) {
  if (size > UINT64_MAX - addr || addr + size > kLastPage) return false;
  *start = trunc_page(addr);
  *end = round_page(addr + size);
  return true;
}

/// Calls fn(a, b) for each unknown run of mem clipped to [first, end), in order.
template <class Fn>
void for_each_unknown_run(const Memory& mem, uint64_t first, uint64_t end, Fn fn) {
  auto it = mem.unknown_runs.lower_bound(first);
  if (it != mem.unknown_runs.begin() && std::prev(it)->second > first) --it;
  for (; it != mem.unknown_runs.end() && it->first < end; ++it)
    fn(std::max(it->first, first), std::min(it->second, end));
}

/// True when any page of [first, end) of mem is unknown.
bool any_unknown(const Memory& mem, uint64_t first, uint64_t end) {
  bool found = mem.all_unknown;
  for_each_unknown_run(mem, first, end, [&](uint64_t, uint64_t) { found = true; });
  return found;
}

bool is_unknown(const Memory& mem, uint64_t i) { return any_unknown(mem, i, i + 1); }

/// Forgets that pages [first, end) of mem are unknown, keeping the parts of runs outside.
void clear_unknown(Memory& mem, uint64_t first, uint64_t end) {
  std::vector<std::pair<uint64_t, uint64_t>> whole;
  for_each_unknown_run(mem, first, end, [&](uint64_t a, uint64_t) {
    auto run = std::prev(mem.unknown_runs.upper_bound(a));
    whole.emplace_back(run->first, run->second);
  });
  for (auto [a, b] : whole) {
    mem.unknown_runs.erase(a);
    if (a < first) mem.unknown_runs.emplace(a, first);
    if (b > end) mem.unknown_runs.emplace(end, b);
  }
}

/// Copies bytes [off, off+n) of page i to out (zeros for a zero or unknown page: an
/// unknown page has no entry in `pages` [memory_disjoint]).
void load(const Memory& mem, uint64_t i, size_t off, size_t n, uint8_t* out) {
  auto it = mem.pages.find(i);
  if (it != mem.pages.end())
    std::memcpy(out, it->second->bytes.data() + off, n);
  else
    std::memset(out, 0, n);
}

/// Stores data at byte off of page i by replacing the page; an unknown page stays unknown
/// (D3).
void store(Memory& mem, uint64_t i, size_t off, std::span<const uint8_t> data) {
  assert(off + data.size() <= kPageSize && "store: data crosses the page");
  if (is_unknown(mem, i)) return;
  auto it = mem.pages.find(i);
  auto fresh = it != mem.pages.end() ? std::make_shared<Page>(*it->second) : std::make_shared<Page>();
  std::copy(data.begin(), data.end(), fresh->bytes.begin() + off);
  mem.pages[i] = std::move(fresh);
}

/// Replaces pages [dfirst, dfirst+count) of dst, unknown ones included, by pages
/// [sfirst, sfirst+count) of src. A wholly unknown dst stays so.
void overwrite(Memory& dst, uint64_t dfirst, const Memory& src, uint64_t sfirst, uint64_t count) {
  assert(&dst != &src && "overwrite: one memory on both sides (snapshot first)");
  if (dst.all_unknown) return;
  const uint64_t dend = dfirst + count, send = sfirst + count;
  dst.pages.erase(dst.pages.lower_bound(dfirst), dst.pages.lower_bound(dend));
  clear_unknown(dst, dfirst, dend);
  if (src.all_unknown) {
    dst.unknown_runs.emplace(dfirst, dend);
    return;
  }
  for (auto it = src.pages.lower_bound(sfirst); it != src.pages.end() && it->first < send; ++it)
    dst.pages[dfirst + (it->first - sfirst)] = it->second;
  for_each_unknown_run(src, sfirst, send, [&](uint64_t a, uint64_t b) {
    dst.unknown_runs.emplace(dfirst + (a - sfirst), dfirst + (b - sfirst));
  });
}

/// A new Memory holding pages [first, first+count) of src, renumbered from 0.
MemoryRef snapshot(const Memory& src, uint64_t first, uint64_t count) {
  auto copy = std::make_shared<Memory>();
  copy->all_unknown = src.all_unknown;
  if (!src.all_unknown) overwrite(*copy, 0, src, first, count);
  return copy;
}

/// The pages of mem in [first, first+count) holding a non-zero byte, as indices. Unknown
/// pages are not listed: the oracles skip them anyway, and a destroyed 2^46-byte mapping
/// must not cost 2^34 entries (a departure from the letter of pages_of_interest).
void interesting_pages(const Memory& mem, uint64_t first, uint64_t count,
                       std::vector<uint64_t>& out) {
  for (auto it = mem.pages.lower_bound(first); it != mem.pages.end() && it->first < first + count;
       ++it) {
    const auto& bytes = it->second->bytes;
    if (std::any_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b != 0; }))
      out.push_back(it->first);
  }
}

/// The region containing va, or nullptr. (A const Region still gives a mutable Memory.)
const Region* find_region(const Task& tk, uint64_t va) {
  auto it = tk.regions.upper_bound(va);
  if (it == tk.regions.begin()) return nullptr;
  --it;
  return va < it->second.end ? &it->second : nullptr;
}

/// Makes va a region boundary by splitting the region strictly containing it (invisible to
/// every view: regions() merges again).
void clip(Task& tk, uint64_t va) {
  auto it = tk.regions.upper_bound(va);
  if (it == tk.regions.begin()) return;
  Region& r = std::prev(it)->second;
  if (va <= r.start || va >= r.end) return;
  Region tail = r;
  tail.start = va;
  tail.first = r.page_of(va);
  r.end = va;
  tk.regions.emplace(va, std::move(tail));
}

/// The regions inside [start, end) after clipping at both ends, in address order.
std::vector<Region*> clip_range(Task& tk, uint64_t start, uint64_t end) {
  clip(tk, start);
  clip(tk, end);
  std::vector<Region*> out;
  for (auto it = tk.regions.lower_bound(start); it != tk.regions.end() && it->first < end; ++it)
    out.push_back(&it->second);
  return out;
}

/// The first offence in address order over [start, end): a hole is KERN_INVALID_ADDRESS,
/// a region lacking a bit of `need` KERN_PROTECTION_FAILURE (details 1, 2).
kern_return_t check_range(const Task& tk, uint64_t start, uint64_t end, vm_prot_t need) {
  for (uint64_t va = start; va < end;) {
    const Region* r = find_region(tk, va);
    if (!r) return KERN_INVALID_ADDRESS;
    if ((r->prot & need) != need) return KERN_PROTECTION_FAILURE;
    va = r->end;
  }
  return KERN_SUCCESS;
}

/// Calls fn(region, va, stop) for each piece [va, stop) of a fully mapped [start, end).
template <class Fn>
void for_each_piece(const Task& tk, uint64_t start, uint64_t end, Fn fn) {
  for (uint64_t va = start; va < end;) {
    const Region* r = find_region(tk, va);
    assert(r && "for_each_piece: range not fully mapped (check_range first)");
    uint64_t stop = std::min(end, r->end);
    fn(*r, va, stop);
    va = stop;
  }
}

/// The lowest page-aligned address >= kUserMin where `length` bytes fit below kUserMax.
std::optional<uint64_t> find_space(const Task& tk, uint64_t length) {
  uint64_t candidate = kUserMin;
  for (const auto& [start, r] : tk.regions) {
    if (start >= candidate && start - candidate >= length) break;
    candidate = std::max(candidate, r.end);
  }
  if (candidate > kUserMax || kUserMax - candidate < length) return std::nullopt;
  return candidate;
}

/// True when nothing of tk is mapped in [start, end).
bool range_free(const Task& tk, uint64_t start, uint64_t end) {
  auto it = tk.regions.lower_bound(start);
  if (it != tk.regions.end() && it->first < end) return false;
  return it == tk.regions.begin() || std::prev(it)->second.end <= start;
}

/// vm_map_enter: maps `proto` at a fixed page-aligned [start, start+length) (no wrap:
/// checked by the caller) or at the lowest free fit. Results: KERN_INVALID_ADDRESS (fixed,
/// outside user space), KERN_NO_SPACE (overlap, no room), else success with *addr = base.
kern_return_t enter(Task& tk, bool anywhere, uint64_t start, uint64_t length, Region proto,
                    uint64_t* addr) {
  if (anywhere) {
    std::optional<uint64_t> found = find_space(tk, length);
    if (!found) return KERN_NO_SPACE;
    start = *found;
  } else {
    if (start < kUserMin || start > kUserMax || kUserMax - start < length) return KERN_INVALID_ADDRESS;
    if (!range_free(tk, start, start + length)) return KERN_NO_SPACE;
  }
  proto.start = start;
  proto.end = start + length;
  tk.regions.emplace(start, std::move(proto));
  *addr = start;
  return KERN_SUCCESS;
}

/// vm_map_copyin: a snapshot of [addr, addr+size) of tk. Checks (detail 1): wrap
/// KERN_INVALID_ADDRESS, then holes and readability `r` in address order. D5: a copy
/// touching an unknown page is wholly unknown.
kern_return_t copyin(const Task& tk, uint64_t addr, uint64_t size, CopyHandle* out) {
  *out = CopyHandle{addr, size, std::make_shared<Memory>(), 0};
  if (size == 0) return KERN_SUCCESS;
  uint64_t start = 0, end = 0;
  if (!page_range(addr, size, &start, &end)) return KERN_INVALID_ADDRESS;
  if (kern_return_t kr = check_range(tk, start, end, VM_PROT_READ)) return kr;
  out->page_count = (end - start) / kPageSize;
  for_each_piece(tk, start, end, [&](const Region& r, uint64_t va, uint64_t stop) {
    out->mem->all_unknown |= any_unknown(*r.mem, r.page_of(va), r.page_of(stop));
  });
  if (out->mem->all_unknown) return KERN_SUCCESS;  // D5
  for_each_piece(tk, start, end, [&](const Region& r, uint64_t va, uint64_t stop) {
    overwrite(*out->mem, (va - start) / kPageSize, *r.mem, r.page_of(va), (stop - va) / kPageSize);
  });
  return KERN_SUCCESS;
}

/// vm_map_copy_overwrite: replaces [dst, dst+copy.size) of tk by the copy. Checks (details
/// 1, 3, D2): empty copy succeeds; alignment KERN_INVALID_ARGUMENT; wrap, holes
/// KERN_INVALID_ADDRESS and writability `w` in address order. Nothing stored on failure.
/// A shared destination's memory is written; protection and inheritance stay.
kern_return_t copy_overwrite(const Task& tk, uint64_t dst, const CopyHandle& copy) {
  if (copy.page_count == 0) return KERN_SUCCESS;
  if ((copy.src_addr | copy.size | dst) & (kPageSize - 1)) return KERN_INVALID_ARGUMENT;
  uint64_t start = 0, end = 0;
  if (!page_range(dst, copy.size, &start, &end)) return KERN_INVALID_ADDRESS;
  if (kern_return_t kr = check_range(tk, start, end, VM_PROT_WRITE)) return kr;
  for_each_piece(tk, start, end, [&](const Region& r, uint64_t va, uint64_t stop) {
    overwrite(*r.mem, r.page_of(va), *copy.mem, (va - start) / kPageSize, (stop - va) / kPageSize);
  });
  return KERN_SUCCESS;
}

/// True when [offset, offset+size) lies inside the object (D6).
bool inside(const MemoryObject& obj, uint64_t offset, uint64_t size) {
  return offset <= obj.size && size <= obj.size - offset;
}

}  // namespace

Model::Model(const SystemConfig& config) { (void)config; }

Model Model::clone() const {
  Model c = *this;  // shares every Memory: each is replaced below by one copy of its own
  // Keyed by address only to find the copy of a Memory already copied; never iterated.
  std::map<const Memory*, MemoryRef> copies;
  auto fresh = [&copies](MemoryRef& ref) {
    auto [it, added] = copies.try_emplace(ref.get());
    if (added) it->second = std::make_shared<Memory>(*ref);
    ref = it->second;
  };
  for (auto& t : c.tasks_)
    if (t)
      for (auto& [start, r] : t->regions) fresh(r.mem);
  for (auto& h : c.handles_)
    if (h && h->mem) fresh(h->mem);
  for (auto& o : c.objects_)
    if (o && o->store) fresh(o->store);
  return c;
}

Task& Model::task(unsigned t) {
  assert(t < kMaxNames && tasks_[t] && "model: no such task (the harness checks names)");
  return *tasks_[t];
}
const Task& Model::task(unsigned t) const {
  assert(t < kMaxNames && tasks_[t] && "model: no such task (the harness checks names)");
  return *tasks_[t];
}
MemoryObject& Model::object(unsigned m) {
  assert(m < kMaxNames && objects_[m] && "model: no such memory object");
  return *objects_[m];
}
const MemoryObject& Model::object(unsigned m) const {
  assert(m < kMaxNames && objects_[m] && "model: no such memory object");
  return *objects_[m];
}
CopyHandle Model::take_handle(unsigned c) {
  assert(c < kMaxNames && handles_[c] && "model: no such copy handle");
  CopyHandle h = std::move(*handles_[c]);
  handles_[c].reset();
  return h;
}

// --- Tasks and ranges ---------------------------------------------------------------------

void Model::task_create(unsigned t) {
  assert(t < kMaxNames && !tasks_[t] && "task_create: name in use");
  tasks_[t].emplace();
}

kern_return_t Model::allocate(unsigned t, uint64_t* addr, uint64_t size, bool anywhere) {
  Task& tk = task(t);
  if (size == 0) {  // D1
    *addr = 0;
    return KERN_SUCCESS;
  }
  uint64_t start = 0, end = 0;
  if (anywhere) {
    if (size > kLastPage) return KERN_INVALID_ARGUMENT;  // the rounding overflows (detail 6)
    end = round_page(size);
  } else if (!page_range(*addr, size, &start, &end)) {
    return KERN_INVALID_ARGUMENT;
  }
  Region fresh;  // zero, rw-, max rwx, inherit copy
  fresh.mem = std::make_shared<Memory>();
  return enter(tk, anywhere, start, end - start, std::move(fresh), addr);
}

kern_return_t Model::deallocate(unsigned t, uint64_t addr, uint64_t size) {
  Task& tk = task(t);
  uint64_t start = 0, end = 0;
  if (size == 0) return KERN_SUCCESS;
  if (!page_range(addr, size, &start, &end)) return KERN_INVALID_ARGUMENT;
  clip(tk, start);
  clip(tk, end);
  tk.regions.erase(tk.regions.lower_bound(start), tk.regions.lower_bound(end));
  return KERN_SUCCESS;
}

kern_return_t Model::protect(unsigned t, uint64_t addr, uint64_t size, bool set_max,
                             vm_prot_t prot) {
  assert((prot & ~VM_PROT_ALL) == 0 && "protect: protection bits beyond rwx");
  Task& tk = task(t);
  uint64_t start = 0, end = 0;
  if (size == 0) return KERN_SUCCESS;
  if (!page_range(addr, size, &start, &end)) return KERN_INVALID_ARGUMENT;
  std::vector<Region*> inside_range = clip_range(tk, start, end);
  for (const Region* r : inside_range)  // beyond the maximum, or raising it (detail 8)
    if (prot & ~r->max_prot) return KERN_PROTECTION_FAILURE;
  for (Region* r : inside_range) {
    if (set_max) {
      r->max_prot = prot;
      r->prot &= prot;
    } else {
      r->prot = prot;
    }
  }
  return KERN_SUCCESS;
}

kern_return_t Model::inherit(unsigned t, uint64_t addr, uint64_t size, vm_inherit_t inh) {
  Task& tk = task(t);
  uint64_t start = 0, end = 0;
  if (size == 0) return KERN_SUCCESS;
  if (!page_range(addr, size, &start, &end)) return KERN_INVALID_ARGUMENT;
  for (Region* r : clip_range(tk, start, end)) r->inherit = inh;
  return KERN_SUCCESS;
}

// --- Accesses -----------------------------------------------------------------------------

/// One user access: bytes move in address order up to the first byte whose page is
/// unmapped (KERN_INVALID_ADDRESS) or not permitted (KERN_PROTECTION_FAILURE); write
/// needs `w`, read needs `r` or `w` (write implies read). A write stores `data`; a read
/// loads `size` bytes.
Access Model::access(unsigned t, uint64_t addr, uint64_t size, bool is_write,
                     std::span<const uint8_t> data) {
  assert((!is_write || data.size() == size) && "access: write data and size disagree");
  const Task& tk = task(t);
  Access a;
  std::vector<uint8_t> unknown;
  bool any_unknown = false;
  for (uint64_t done = 0; done < size;) {
    uint64_t va = addr + done;  // never wraps: a mapped page ends at or below kUserMax
    const Region* r = find_region(tk, va);
    vm_prot_t need = is_write ? VM_PROT_WRITE : (VM_PROT_READ | VM_PROT_WRITE);
    if (!r || !(r->prot & need)) {
      a.kr = r ? KERN_PROTECTION_FAILURE : KERN_INVALID_ADDRESS;
      a.fault_addr = va;
      break;
    }
    size_t off = va % kPageSize;
    size_t n = std::min<uint64_t>(size - done, kPageSize - off);
    Memory& mem = *r->mem;
    uint64_t i = r->page_of(va);
    bool page_unknown = is_unknown(mem, i);  // D4
    if (is_write) {
      store(mem, i, off, data.subspan(done, n));
      a.bytes.insert(a.bytes.end(), data.begin() + done, data.begin() + done + n);
    } else {
      a.bytes.resize(done + n);
      load(mem, i, off, n, a.bytes.data() + done);
    }
    unknown.insert(unknown.end(), n, page_unknown ? 1 : 0);
    any_unknown |= page_unknown;
    done += n;
  }
  if (any_unknown) a.unknown = std::move(unknown);
  return a;
}

Access Model::write(unsigned t, uint64_t addr, std::span<const uint8_t> data, unsigned cpu) {
  (void)cpu;  // D10
  return access(t, addr, data.size(), true, data);
}

Access Model::read(unsigned t, uint64_t addr, uint64_t size, unsigned cpu) {
  (void)cpu;  // D10
  return access(t, addr, size, false, {});
}

// --- Tasks: fork and terminate ------------------------------------------------------------

void Model::fork(unsigned parent, unsigned child) {
  assert(child < kMaxNames && !tasks_[child] && "fork: child name in use");
  Task kid;
  for (const auto& [start, r] : task(parent).regions) {
    switch (r.inherit) {
      case vm_inherit_t::None:
        break;  // a hole
      case vm_inherit_t::Share:
        kid.regions.emplace(start, r);  // the same Memory
        break;
      case vm_inherit_t::Copy: {  // a snapshot, whatever the protection
        Region copy = r;
        copy.mem = snapshot(*r.mem, r.first, (r.end - r.start) / kPageSize);
        copy.first = 0;
        kid.regions.emplace(start, std::move(copy));
        break;
      }
    }
  }
  tasks_[child] = std::move(kid);
}

void Model::terminate(unsigned t) {
  task(t);
  tasks_[t].reset();
}

// --- Copies -------------------------------------------------------------------------------

kern_return_t Model::vm_copy(unsigned t, uint64_t src, uint64_t size, uint64_t dst) {
  const Task& tk = task(t);
  CopyHandle copy;
  if (kern_return_t kr = copyin(tk, src, size, &copy)) return kr;
  return copy_overwrite(tk, dst, copy);  // from the snapshot: memmove semantics
}

kern_return_t Model::vm_read(unsigned t, uint64_t addr, uint64_t size, unsigned c) {
  assert(c < kMaxNames && !handles_[c] && "vm_read: handle name in use");
  CopyHandle copy;
  if (kern_return_t kr = copyin(task(t), addr, size, &copy)) return kr;
  handles_[c] = std::move(copy);
  return KERN_SUCCESS;
}

kern_return_t Model::vm_write(unsigned t, uint64_t addr, unsigned c) {
  const Task& tk = task(t);
  CopyHandle copy = take_handle(c);  // consumed whatever the result
  return copy_overwrite(tk, addr, copy);
}

std::shared_ptr<const CopyHandle> Model::vm_write_take(unsigned c) {
  return std::make_shared<const CopyHandle>(take_handle(c));
}

kern_return_t Model::vm_write_overwrite(unsigned t, uint64_t addr, const CopyHandle& copy) {
  return copy_overwrite(task(t), addr, copy);
}

kern_return_t Model::copyout(unsigned t, unsigned c, uint64_t* addr) {
  Task& tk = task(t);
  CopyHandle copy = take_handle(c);  // consumed even on KERN_NO_SPACE (detail 11)
  *addr = 0;                         // D9
  if (copy.page_count == 0) return KERN_SUCCESS;
  Region fresh;  // rw-, max rwx, inherit copy: copyout resets the attributes
  fresh.mem = copy.mem;
  kern_return_t kr = enter(tk, true, 0, copy.page_count * kPageSize, std::move(fresh), addr);
  if (kr == KERN_SUCCESS) *addr += copy.src_addr & (kPageSize - 1);
  return kr;
}

void Model::discard(unsigned c) { take_handle(c); }

// --- Memory objects -----------------------------------------------------------------------

void Model::object_create(unsigned m, uint64_t size, CopyStrategy strategy, bool persist,
                          std::span<const uint8_t> init) {
  assert(m < kMaxNames && !objects_[m] && "object_create: name in use");
  MemoryObject obj;
  obj.size = size > kLastPage ? kLastPage : round_page(size);  // D8
  assert(init.size() <= obj.size && "object_create: initial contents longer than the object");
  obj.strategy = strategy;
  obj.persist = persist;
  obj.store = std::make_shared<Memory>();
  for (size_t off = 0; off < init.size(); off += kPageSize)
    store(*obj.store, off / kPageSize, 0, init.subspan(off, std::min<size_t>(kPageSize, init.size() - off)));
  objects_[m] = std::move(obj);
}

void Model::device_create(unsigned m, uint64_t size, std::span<const uint8_t> init) {
  assert(round_page(size) <= kMaxDeviceSize && "device_create: device too large");
  object_create(m, size, CopyStrategy::None, false, init);  // D12
}

kern_return_t Model::map(unsigned t, uint64_t* addr, bool anywhere, uint64_t size, unsigned m,
                         uint64_t offset, bool share, vm_prot_t prot, vm_prot_t max_prot,
                         vm_inherit_t inh) {
  Task& tk = task(t);
  const MemoryObject& obj = object(m);
  // The object's own checks (detail 5, D7).
  if (size == 0 || offset % kPageSize != 0 || !inside(obj, offset, size) || (prot & ~max_prot) ||
      obj.destroyed)
    return KERN_INVALID_ARGUMENT;
  // Then allocate's codes over [trunc(addr), trunc(addr) + round(size)).
  uint64_t length = round_page(size);  // no overflow: size <= obj.size <= kLastPage
  uint64_t start = trunc_page(*addr);
  if (!anywhere && length > UINT64_MAX - start) return KERN_INVALID_ARGUMENT;
  Region proto;
  proto.prot = prot;
  proto.max_prot = max_prot;
  proto.inherit = inh;
  if (share) {
    proto.mem = obj.store;  // all shared mappings and the object are one memory
    proto.first = offset / kPageSize;
  } else {
    proto.mem = snapshot(*obj.store, offset / kPageSize, length / kPageSize);
  }
  return enter(tk, anywhere, start, length, std::move(proto), addr);
}

kern_return_t Model::manager_write(unsigned m, uint64_t offset, std::span<const uint8_t> data) {
  MemoryObject& obj = object(m);
  if (obj.destroyed || obj.strategy != CopyStrategy::None || !inside(obj, offset, data.size()))
    return KERN_INVALID_ARGUMENT;
  for (size_t done = 0; done < data.size();) {  // shared mappings see it; copies do not
    uint64_t at = offset + done;
    size_t n = std::min<uint64_t>(data.size() - done, kPageSize - at % kPageSize);
    store(*obj.store, at / kPageSize, at % kPageSize, data.subspan(done, n));
    done += n;
  }
  return KERN_SUCCESS;
}

kern_return_t Model::lock(unsigned m, uint64_t offset, uint64_t size, uint8_t /*how*/) {
  // A manager's lock request cleans and drops the kernel's cached pages: the data ends up
  // in the store, which is what the object holds: nothing any observer sees changes.
  const MemoryObject& obj = object(m);
  return obj.destroyed || offset > obj.size || size > obj.size - offset ? KERN_INVALID_ARGUMENT : KERN_SUCCESS;
}

kern_return_t Model::supply(unsigned m, uint64_t offset) {
  // An unrequested data_supply brings the store's bytes, which is what the object holds
  // wherever the kernel has no newer page: nothing any observer sees changes.
  const MemoryObject& obj = object(m);
  return obj.destroyed || offset >= obj.size ? KERN_INVALID_ARGUMENT : KERN_SUCCESS;
}

Access Model::file(unsigned m, uint64_t offset, uint64_t size) {
  const MemoryObject& obj = object(m);
  Access a;
  if (!inside(obj, offset, size)) {
    a.kr = KERN_INVALID_ARGUMENT;
    return a;
  }
  a.bytes.resize(size);
  std::vector<uint8_t> unknown(size);
  bool any_unknown = false;
  for (uint64_t done = 0; done < size;) {
    uint64_t at = offset + done;
    size_t n = std::min<uint64_t>(size - done, kPageSize - at % kPageSize);
    load(*obj.store, at / kPageSize, at % kPageSize, n, a.bytes.data() + done);
    bool page_unknown = is_unknown(*obj.store, at / kPageSize);
    std::fill_n(unknown.begin() + done, n, page_unknown ? 1 : 0);
    any_unknown |= page_unknown;
    done += n;
  }
  if (any_unknown) a.unknown = std::move(unknown);
  return a;
}

kern_return_t Model::destroy(unsigned m) {
  MemoryObject& obj = object(m);
  if (obj.destroyed) return KERN_INVALID_ARGUMENT;
  obj.destroyed = true;
  obj.store->all_unknown = true;  // the store and every shared mapping; copies keep theirs
  obj.store->pages.clear();
  obj.store->unknown_runs.clear();
  return KERN_SUCCESS;
}

void Model::pageout(uint64_t count, bool all) {
  (void)count;  // D10: the model has no frames; nothing to evict
  (void)all;
}

void Model::collect(unsigned t) {
  (void)t;  // the model has no page tables: nothing a task reads changes
}

// --- Views --------------------------------------------------------------------------------

std::vector<RegionInfo> Model::regions(unsigned t) const {
  std::vector<RegionInfo> out;
  for (const auto& [start, r] : task(t).regions) {
    RegionInfo info{start, r.end, r.prot, r.max_prot, r.inherit};
    RegionInfo* last = out.empty() ? nullptr : &out.back();
    if (last && last->end == start && last->prot == r.prot && last->max_prot == r.max_prot &&
        last->inherit == r.inherit)
      last->end = r.end;
    else
      out.push_back(info);
  }
  return out;
}

void Model::pages_of_interest(unsigned t, std::vector<uint64_t>& out) const {
  std::vector<uint64_t> indices;
  for (const auto& [start, r] : task(t).regions) {
    indices.clear();
    interesting_pages(*r.mem, r.first, (r.end - r.start) / kPageSize, indices);
    for (uint64_t i : indices) out.push_back(r.start + (i - r.first) * kPageSize);
  }
}

PeekStatus Model::peek_page(unsigned t, uint64_t va, std::span<uint8_t, kPageSize> out) const {
  assert(va % kPageSize == 0 && "peek_page: address not page-aligned");
  const Region* r = find_region(task(t), va);
  if (!r) return PeekStatus::Unmapped;
  if (is_unknown(*r->mem, r->page_of(va))) return PeekStatus::Unknown;
  load(*r->mem, r->page_of(va), 0, kPageSize, out.data());
  return PeekStatus::Mapped;
}

PeekStatus Model::peek_object_page(unsigned m, uint64_t offset,
                                   std::span<uint8_t, kPageSize> out) const {
  const MemoryObject& obj = object(m);
  assert(offset % kPageSize == 0 && offset < obj.size && "peek_object_page: bad offset");
  if (is_unknown(*obj.store, offset / kPageSize)) return PeekStatus::Unknown;
  load(*obj.store, offset / kPageSize, 0, kPageSize, out.data());
  return PeekStatus::Mapped;
}

void Model::object_pages_of_interest(unsigned m, std::vector<uint64_t>& out) const {
  const MemoryObject& obj = object(m);
  std::vector<uint64_t> indices;
  interesting_pages(*obj.store, 0, obj.size / kPageSize, indices);
  for (uint64_t i : indices) out.push_back(i * kPageSize);
}

}  // namespace vmfuzz::model
