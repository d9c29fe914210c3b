// dense_test.cc — the model against a second, deliberately different model.
//
// Question: does the lazy model (regions over shared Memories with page offsets, clipping,
// snapshots of page maps) give the same results and contents as the most literal model
// one could write — every mapped page of every task its own entry, pointing at a page
// cell; SHARE copies the pointer, COPY copies the bytes — over long random programs?
//
// The dense model below covers every op (allocate, deallocate, protect, inherit, write,
// read, fork, terminate, vm_copy, vm_read with vm_write or copyout, object, map,
// manager_write, file, destroy) on a small window of addresses, where neither wrap nor the
// edges of user space arise; model_test.cc covers those edges. Unknown contents follow the
// model's Decisions D3-D5 literally: a cell is unknown by its own flag, or forever when it
// belongs to (or is a fork/copyout snapshot of) something destroyed. Randomness is a
// seeded std::mt19937_64: every run is the same.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "reference_model/model.h"

namespace vmfuzz::model {
namespace {

constexpr uint64_t P = kPageSize;
constexpr uint64_t kBase = kUserMin;  // the window: 48 pages from the bottom of user space
constexpr uint64_t kWindowPages = 32;

struct Cell {
  std::array<uint8_t, P> bytes{};
  bool unknown = false;              // this page's contents are undefined
  std::shared_ptr<const bool> dead;  // when *dead: unknown forever, whatever is stored
  bool is_unknown() const { return unknown || (dead && *dead); }
  /// A copy of this cell's contents that keeps only a deadness already reached.
  Cell snapshot() const { return Cell{bytes, unknown, dead && *dead ? dead : nullptr}; }
  /// Whole-page overwrite (vm_copy, vm_write, copyout): a dead cell stays unknown.
  void replace(const Cell& src) {
    if (dead && *dead) return;
    bytes = src.bytes;
    unknown = src.is_unknown();
  }
};
struct DensePage {
  std::shared_ptr<Cell> cell;
  vm_prot_t prot = VM_PROT_DEFAULT, max_prot = VM_PROT_ALL;
  vm_inherit_t inherit = vm_inherit_t::Copy;
};
using DenseTask = std::map<uint64_t, DensePage>;  // page address -> page
struct DenseHandle {
  uint64_t src_addr = 0, size = 0;
  std::vector<Cell> pages;  // bytes copied at vm_read time
};
struct DenseObject {
  uint64_t size = 0;
  CopyStrategy strategy = CopyStrategy::Delay;
  std::vector<std::shared_ptr<Cell>> store;
  std::shared_ptr<bool> dead = std::make_shared<bool>(false);
};

/// The literal model: one entry per mapped page.
struct Dense {
  std::array<std::optional<DenseTask>, kMaxNames> tasks;
  std::array<std::optional<DenseObject>, kMaxNames> objects;

  static std::pair<uint64_t, uint64_t> range(uint64_t addr, uint64_t size) {
    return {trunc_page(addr), round_page(addr + size)};
  }
  const DensePage* page(unsigned t, uint64_t va) const {
    auto it = tasks[t]->find(trunc_page(va));
    return it == tasks[t]->end() ? nullptr : &it->second;
  }
  bool free(unsigned t, uint64_t s, uint64_t e) const {
    for (uint64_t va = s; va < e; va += P)
      if (page(t, va)) return false;
    return true;
  }
  void map_fresh(unsigned t, uint64_t s, uint64_t e) {
    for (uint64_t va = s; va < e; va += P) (*tasks[t])[va] = DensePage{std::make_shared<Cell>()};
  }
  kern_return_t allocate(unsigned t, uint64_t* addr, uint64_t size, bool anywhere) {
    if (size == 0) return *addr = 0, KERN_SUCCESS;
    uint64_t s, e;
    if (anywhere) {
      for (s = kUserMin; !free(t, s, s + round_page(size)); s += P) {
      }
      e = s + round_page(size);
    } else {
      std::tie(s, e) = range(*addr, size);
      if (!free(t, s, e)) return KERN_NO_SPACE;
    }
    map_fresh(t, s, e);
    *addr = s;
    return KERN_SUCCESS;
  }
  kern_return_t deallocate(unsigned t, uint64_t addr, uint64_t size) {
    if (size == 0) return KERN_SUCCESS;
    auto [s, e] = range(addr, size);
    for (uint64_t va = s; va < e; va += P) tasks[t]->erase(va);
    return KERN_SUCCESS;
  }
  kern_return_t protect(unsigned t, uint64_t addr, uint64_t size, bool set_max, vm_prot_t prot) {
    if (size == 0) return KERN_SUCCESS;
    auto [s, e] = range(addr, size);
    for (uint64_t va = s; va < e; va += P)
      if (const DensePage* p = page(t, va); p && (prot & ~p->max_prot)) return KERN_PROTECTION_FAILURE;
    for (uint64_t va = s; va < e; va += P) {
      auto it = tasks[t]->find(va);
      if (it == tasks[t]->end()) continue;
      if (set_max) it->second.prot &= prot, it->second.max_prot = prot;
      else it->second.prot = prot;
    }
    return KERN_SUCCESS;
  }
  kern_return_t inherit(unsigned t, uint64_t addr, uint64_t size, vm_inherit_t inh) {
    if (size == 0) return KERN_SUCCESS;
    auto [s, e] = range(addr, size);
    for (uint64_t va = s; va < e; va += P)
      if (auto it = tasks[t]->find(va); it != tasks[t]->end()) it->second.inherit = inh;
    return KERN_SUCCESS;
  }
  Access access(unsigned t, uint64_t addr, uint64_t size, bool is_write, const std::vector<uint8_t>& data) {
    Access a;
    for (uint64_t i = 0; i < size; ++i) {
      const DensePage* p = page(t, addr + i);
      vm_prot_t need = is_write ? VM_PROT_WRITE : (VM_PROT_READ | VM_PROT_WRITE);
      if (!p || !(p->prot & need)) {
        a.kr = p ? KERN_PROTECTION_FAILURE : KERN_INVALID_ADDRESS;
        a.fault_addr = addr + i;
        break;
      }
      Cell& cell = *p->cell;
      uint8_t& byte = cell.bytes[(addr + i) % P];
      if (is_write && !cell.is_unknown()) byte = data[i];
      a.bytes.push_back(is_write ? data[i] : cell.is_unknown() ? 0 : byte);
      a.unknown.push_back(cell.is_unknown());
    }
    if (std::find(a.unknown.begin(), a.unknown.end(), 1) == a.unknown.end()) a.unknown.clear();
    return a;
  }
  void fork(unsigned parent, unsigned child) {
    tasks[child].emplace();
    for (const auto& [va, p] : *tasks[parent]) {
      if (p.inherit == vm_inherit_t::None) continue;
      DensePage c = p;
      if (p.inherit == vm_inherit_t::Copy) c.cell = std::make_shared<Cell>(p.cell->snapshot());
      (*tasks[child])[va] = c;
    }
  }
  /// Checks every page of [s, e) in address order for presence and `need`.
  kern_return_t check(unsigned t, uint64_t s, uint64_t e, vm_prot_t need) const {
    for (uint64_t va = s; va < e; va += P) {
      const DensePage* p = page(t, va);
      if (!p) return KERN_INVALID_ADDRESS;
      if ((p->prot & need) != need) return KERN_PROTECTION_FAILURE;
    }
    return KERN_SUCCESS;
  }
  kern_return_t copyin(unsigned t, uint64_t addr, uint64_t size, DenseHandle* h) const {
    *h = DenseHandle{addr, size, {}};
    if (size == 0) return KERN_SUCCESS;
    auto [s, e] = range(addr, size);
    if (kern_return_t kr = check(t, s, e, VM_PROT_READ)) return kr;
    bool any_unknown = false;
    for (uint64_t va = s; va < e; va += P) {
      h->pages.push_back(page(t, va)->cell->snapshot());
      any_unknown |= h->pages.back().is_unknown();
    }
    if (any_unknown)  // D5: the whole copy is unknown, and its copyout forever
      for (Cell& c : h->pages) c = Cell{{}, true, std::make_shared<const bool>(true)};
    return KERN_SUCCESS;
  }
  kern_return_t overwrite(unsigned t, uint64_t dst, const DenseHandle& h) {
    if (h.size == 0) return KERN_SUCCESS;
    if ((h.src_addr | h.size | dst) % P) return KERN_INVALID_ARGUMENT;
    if (kern_return_t kr = check(t, dst, dst + h.size, VM_PROT_WRITE)) return kr;
    for (size_t i = 0; i < h.pages.size(); ++i) page(t, dst + i * P)->cell->replace(h.pages[i]);
    return KERN_SUCCESS;
  }
  kern_return_t vm_copy(unsigned t, uint64_t src, uint64_t size, uint64_t dst) {
    DenseHandle h;
    if (kern_return_t kr = copyin(t, src, size, &h)) return kr;
    return overwrite(t, dst, h);
  }
  kern_return_t copyout(unsigned t, const DenseHandle& h, uint64_t* addr) {
    *addr = 0;
    if (h.size == 0) return KERN_SUCCESS;
    uint64_t base = 0;
    allocate(t, &base, h.pages.size() * P, true);
    for (size_t i = 0; i < h.pages.size(); ++i) *page(t, base + i * P)->cell = h.pages[i];
    *addr = base + h.src_addr % P;
    return KERN_SUCCESS;
  }
  void object_create(unsigned m, uint64_t size, CopyStrategy strategy, const std::vector<uint8_t>& init) {
    DenseObject& o = objects[m].emplace();
    o.size = round_page(size);
    o.strategy = strategy;
    for (uint64_t i = 0; i < o.size / P; ++i) o.store.push_back(std::make_shared<Cell>(Cell{{}, false, o.dead}));
    for (size_t i = 0; i < init.size(); ++i) o.store[i / P]->bytes[i % P] = init[i];
  }
  bool inside(const DenseObject& o, uint64_t off, uint64_t size) const { return off + size <= o.size; }
  kern_return_t map(unsigned t, uint64_t* addr, bool anywhere, uint64_t size, unsigned m,
                    uint64_t off, bool share, vm_prot_t prot, vm_prot_t max_prot, vm_inherit_t inh) {
    const DenseObject& o = *objects[m];
    if (size == 0 || off % P || !inside(o, off, size) || (prot & ~max_prot) || *o.dead)
      return KERN_INVALID_ARGUMENT;
    uint64_t s = trunc_page(*addr), n = round_page(size) / P;
    if (anywhere)
      for (s = kUserMin; !free(t, s, s + n * P); s += P) {
      }
    else if (!free(t, s, s + n * P))
      return KERN_NO_SPACE;
    for (uint64_t i = 0; i < n; ++i) {
      const auto& cell = o.store[off / P + i];
      auto mine = share ? cell : std::make_shared<Cell>(cell->snapshot());
      (*tasks[t])[s + i * P] = DensePage{mine, prot, max_prot, inh};
    }
    *addr = s;
    return KERN_SUCCESS;
  }
  kern_return_t manager_write(unsigned m, uint64_t off, const std::vector<uint8_t>& data) {
    DenseObject& o = *objects[m];
    if (*o.dead || o.strategy != CopyStrategy::None || !inside(o, off, data.size()))
      return KERN_INVALID_ARGUMENT;
    for (size_t i = 0; i < data.size(); ++i) {
      Cell& c = *o.store[(off + i) / P];
      if (!c.is_unknown()) c.bytes[(off + i) % P] = data[i];
    }
    return KERN_SUCCESS;
  }
  Access file(unsigned m, uint64_t off, uint64_t size) const {
    const DenseObject& o = *objects[m];
    Access a;
    if (!inside(o, off, size)) return a.kr = KERN_INVALID_ARGUMENT, a;
    for (uint64_t i = 0; i < size; ++i) {
      const Cell& c = *o.store[(off + i) / P];
      a.bytes.push_back(c.is_unknown() ? 0 : c.bytes[(off + i) % P]);
      a.unknown.push_back(c.is_unknown());
    }
    if (std::find(a.unknown.begin(), a.unknown.end(), 1) == a.unknown.end()) a.unknown.clear();
    return a;
  }
  kern_return_t destroy(unsigned m) {
    if (*objects[m]->dead) return KERN_INVALID_ARGUMENT;
    *objects[m]->dead = true;
    return KERN_SUCCESS;
  }
  std::vector<RegionInfo> regions(unsigned t) const {
    std::vector<RegionInfo> out;
    for (const auto& [va, p] : *tasks[t]) {
      if (!out.empty() && out.back().end == va && out.back().prot == p.prot &&
          out.back().max_prot == p.max_prot && out.back().inherit == p.inherit)
        out.back().end = va + P;
      else
        out.push_back({va, va + P, p.prot, p.max_prot, p.inherit});
    }
    return out;
  }
};

/// Compares every task's regions and every mapped page of the two models.
void expect_same(const Model& m, const Dense& d, int step) {
  for (unsigned t = 0; t < kMaxNames; ++t) {
    if (!d.tasks[t]) continue;
    ASSERT_EQ(m.regions(t), d.regions(t)) << "task t" << t << " at step " << step;
    std::vector<uint64_t> interest;
    m.pages_of_interest(t, interest);
    for (const auto& [va, p] : *d.tasks[t]) {
      std::array<uint8_t, P> buf{};
      bool listed = std::find(interest.begin(), interest.end(), va) != interest.end();
      if (p.cell->is_unknown()) {
        ASSERT_EQ(m.peek_page(t, va, buf), PeekStatus::Unknown) << std::hex << va << " step " << std::dec << step;
        ASSERT_FALSE(listed);
        continue;
      }
      ASSERT_EQ(m.peek_page(t, va, buf), PeekStatus::Mapped) << std::hex << va << " step " << std::dec << step;
      ASSERT_EQ(buf, p.cell->bytes) << "task t" << t << " page " << std::hex << va << " step " << std::dec << step;
      bool nonzero = p.cell->bytes != std::array<uint8_t, P>{};
      ASSERT_EQ(nonzero, listed) << "pages_of_interest at " << std::hex << va;
    }
  }
  for (unsigned o = 0; o < kMaxNames; ++o) {
    if (!d.objects[o]) continue;
    std::vector<uint64_t> interest;
    m.object_pages_of_interest(o, interest);
    const auto& store = d.objects[o]->store;
    for (uint64_t i = 0; i < store.size(); ++i) {
      std::array<uint8_t, P> buf{};
      bool listed = std::find(interest.begin(), interest.end(), i * P) != interest.end();
      if (store[i]->is_unknown()) {
        ASSERT_EQ(m.peek_object_page(o, i * P, buf), PeekStatus::Unknown) << "m" << o << " page " << i;
        ASSERT_FALSE(listed);
        continue;
      }
      ASSERT_EQ(m.peek_object_page(o, i * P, buf), PeekStatus::Mapped) << "m" << o << " page " << i;
      ASSERT_EQ(buf, store[i]->bytes) << "m" << o << " page " << i << " step " << step;
      bool nonzero = store[i]->bytes != std::array<uint8_t, P>{};
      ASSERT_EQ(nonzero, listed);
    }
  }
}

void expect_same_access(const Access& x, const Access& y, int step) {
  ASSERT_EQ(x.kr, y.kr) << "step " << step;
  ASSERT_EQ(x.fault_addr, y.fault_addr) << "step " << step;
  ASSERT_EQ(x.bytes, y.bytes) << "step " << step;
  ASSERT_EQ(x.unknown, y.unknown) << "step " << step;
}

/// One random program of `ops` steps on both models, compared after every step.
void run_program(uint64_t seed, int ops) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return rng() % n; };
  auto addr = [&] { return kBase + pick(kWindowPages * P); };  // unaligned addresses too
  auto page_addr = [&] { return kBase + pick(kWindowPages) * P; };
  auto size = [&] { return pick(3) == 0 ? pick(3 * P) : (1 + pick(6)) * P; };
  const vm_inherit_t kInherit[] = {vm_inherit_t::Share, vm_inherit_t::Copy, vm_inherit_t::None};

  Model m{SystemConfig{}};
  Dense d;
  m.task_create(0);
  d.tasks[0].emplace();
  if (seed % 2 == 0) {  // a prologue that makes shared object memory and copies of it common
    std::vector<uint8_t> init(8 * P);
    for (auto& b : init) b = static_cast<uint8_t>(rng());
    m.object_create(0, 8 * P, CopyStrategy::None, true, init);
    d.object_create(0, 8 * P, CopyStrategy::None, init);
    uint64_t a = kBase, b = kBase;
    vm_inherit_t inh = kInherit[pick(3)];
    ASSERT_EQ(m.map(0, &a, false, 8 * P, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL, inh), KERN_SUCCESS);
    ASSERT_EQ(d.map(0, &b, false, 8 * P, 0, 0, true, VM_PROT_DEFAULT, VM_PROT_ALL, inh), KERN_SUCCESS);
    ASSERT_EQ(m.allocate(0, &a, (kWindowPages - 8) * P, true), KERN_SUCCESS);
    ASSERT_EQ(d.allocate(0, &b, (kWindowPages - 8) * P, true), KERN_SUCCESS);
  }
  for (int step = 0; step < ops; ++step) {
    std::vector<unsigned> live;
    for (unsigned t = 0; t < 4; ++t)
      if (d.tasks[t]) live.push_back(t);
    unsigned t = live[pick(live.size())];
    std::vector<unsigned> objects;
    for (unsigned o = 0; o < 4; ++o)
      if (d.objects[o]) objects.push_back(o);
    unsigned op = pick(20);
    if (op >= 13 && op <= 17 && objects.empty()) op = 12;
    unsigned o = objects.empty() ? 0 : objects[pick(objects.size())];
    switch (op) {
      case 0:
      case 1: {
        bool any = pick(4) == 0;
        uint64_t a = addr(), b = a, s = size();
        ASSERT_EQ(m.allocate(t, &a, s, any), d.allocate(t, &b, s, any)) << step;
        ASSERT_EQ(a, b);
        break;
      }
      case 2: {
        uint64_t a = addr(), s = size();
        ASSERT_EQ(m.deallocate(t, a, s), d.deallocate(t, a, s));
        break;
      }
      case 3: {
        uint64_t a = addr(), s = size();
        bool set_max = pick(3) == 0;
        vm_prot_t prot = static_cast<vm_prot_t>(pick(8));
        ASSERT_EQ(m.protect(t, a, s, set_max, prot), d.protect(t, a, s, set_max, prot)) << step;
        break;
      }
      case 4: {
        uint64_t a = addr(), s = size();
        vm_inherit_t inh = kInherit[pick(3)];
        ASSERT_EQ(m.inherit(t, a, s, inh), d.inherit(t, a, s, inh));
        break;
      }
      case 5:
      case 6: {
        uint64_t a = addr();
        std::vector<uint8_t> data(1 + pick(2 * P));
        for (auto& b : data) b = static_cast<uint8_t>(rng());
        expect_same_access(m.write(t, a, data, 0), d.access(t, a, data.size(), true, data), step);
        break;
      }
      case 7: {
        uint64_t a = addr(), s = pick(2 * P);
        expect_same_access(m.read(t, a, s, 0), d.access(t, a, s, false, {}), step);
        break;
      }
      case 8: {
        unsigned child = 0;
        while (child < 4 && d.tasks[child]) ++child;
        if (child == 4) {  // no free name: terminate someone other than t0 instead
          unsigned victim = 1 + pick(3);
          m.terminate(victim);
          d.tasks[victim].reset();
        } else {
          m.fork(t, child);
          d.fork(t, child);
        }
        break;
      }
      case 18:
      case 19: {  // aligned, so that it mostly succeeds and moves unknown pages around
        uint64_t src = page_addr(), s = (1 + pick(4)) * P, dst = page_addr();
        ASSERT_EQ(m.vm_copy(t, src, s, dst), d.vm_copy(t, src, s, dst)) << step;
        break;
      }
      case 9: {
        uint64_t src = pick(2) ? page_addr() : addr(), s = size(), dst = pick(2) ? page_addr() : addr();
        ASSERT_EQ(m.vm_copy(t, src, s, dst), d.vm_copy(t, src, s, dst)) << step;
        break;
      }
      case 10:
      case 11: {
        uint64_t src = pick(2) ? page_addr() : addr(), s = size();
        unsigned to = live[pick(live.size())];
        DenseHandle h;
        kern_return_t kr = d.copyin(t, src, s, &h);
        ASSERT_EQ(m.vm_read(t, src, s, 0), kr) << step;
        if (kr != KERN_SUCCESS) break;
        if (pick(2)) {
          uint64_t dst = pick(4) ? page_addr() : addr();
          ASSERT_EQ(m.vm_write(to, dst, 0), d.overwrite(to, dst, h)) << step;
        } else {
          uint64_t x = 0, y = 0;
          ASSERT_EQ(m.copyout(to, 0, &x), d.copyout(to, h, &y));
          ASSERT_EQ(x, y);
        }
        break;
      }
      case 12: {  // object (or, with every name taken, a destroy)
        unsigned fresh = 0;
        while (fresh < 4 && d.objects[fresh]) ++fresh;
        if (fresh == 4) {
          ASSERT_EQ(m.destroy(o), d.destroy(o));
          break;
        }
        uint64_t size = 1 + pick(8 * P);
        std::vector<uint8_t> init(pick(size + 1));
        for (auto& b : init) b = static_cast<uint8_t>(rng());
        CopyStrategy strategy = static_cast<CopyStrategy>(pick(3));
        m.object_create(fresh, size, strategy, pick(2), init);
        d.object_create(fresh, size, strategy, init);
        break;
      }
      case 13:
      case 14: {
        bool any = pick(4) == 0, share = pick(3) != 0;
        uint64_t a = addr(), b = a, size = 1 + pick(4 * P), off = pick(4) ? pick(8) * P : pick(8 * P);
        vm_prot_t prot = pick(4) ? VM_PROT_DEFAULT : static_cast<vm_prot_t>(pick(8));
        vm_prot_t max_prot = pick(4) ? VM_PROT_ALL : static_cast<vm_prot_t>(pick(8));
        vm_inherit_t inh = kInherit[pick(3)];
        ASSERT_EQ(m.map(t, &a, any, size, o, off, share, prot, max_prot, inh),
                  d.map(t, &b, any, size, o, off, share, prot, max_prot, inh))
            << step;
        ASSERT_EQ(a, b);
        break;
      }
      case 15: {
        uint64_t off = pick(8 * P + 2);
        std::vector<uint8_t> data(pick(P + P / 2));
        for (auto& b : data) b = static_cast<uint8_t>(rng());
        ASSERT_EQ(m.manager_write(o, off, data), d.manager_write(o, off, data)) << step;
        break;
      }
      case 16: {
        uint64_t off = pick(8 * P + 2), size = pick(2 * P);
        expect_same_access(m.file(o, off, size), d.file(o, off, size), step);
        break;
      }
      case 17:
        if (pick(3) == 0) {
          ASSERT_EQ(m.destroy(o), d.destroy(o));
        }
        break;
    }
    expect_same(m, d, step);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

// Over many random programs, do the lazy model and the dense model agree at every step?
TEST(DenseModel, RandomProgramsAgree) {
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    run_program(seed, 150);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace vmfuzz::model
