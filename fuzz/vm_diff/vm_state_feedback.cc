// vm_state_feedback.cc — see vm_state_feedback.h for the theory.
#include "fuzz/vm_diff/vm_state_feedback.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "vm/kernel.h"

namespace vmfuzz::fuzz {

size_t vm_state_slot(uint32_t kind, uint32_t value) {
  uint32_t h = (kind << 20) ^ value;  // a 32-bit integer hash (lowbias32) of the pair
  h ^= h >> 16;
  h *= 0x7feb352dU;
  h ^= h >> 15;
  h *= 0x846ca68bU;
  h ^= h >> 16;
  return h % kVmStateCounters;
}

namespace {

// The table libFuzzer scans (clang and GCC both honour the section attribute; `used`
// keeps an otherwise unread array alive).
__attribute__((section("__libfuzzer_extra_counters"), used)) uint8_t g_counters[kVmStateCounters];
// libFuzzer clears g_counters before every input; g_seen remembers every counter ever set
// in this process, for the progress line.
bool g_seen[kVmStateCounters];
size_t g_seen_count = 0;

// Feature kinds: the high bits of a feature id. Numbers only ever get added.
enum Feature : uint32_t {
  kChainDepth = 1,        // value: depth of an object's shadow chain (capped)
  kCopyObject = 2,        // value: depth of an object that has a copy object
  kSharers = 3,           // value: ref_count bucket x internal
  kResident = 4,          // value: log2 bucket of resident pages
  kPager = 5,             // value: pager_created x internal x can_persist x cached
  kStrategy = 6,          // value: copy strategy x use_shared_copy x shadowed
  kEntryShape = 7,        // value: needs_copy x is_shared x chain depth of its object
  kCounter = 8,           // value: counter index x log2 bucket of its count
  kTasks = 9,             // value: live tasks with entries
  kObjects = 10,          // value: log2 bucket of the number of objects
  kInterleave = 11,       // value: a blocked thread's yield point x another thread blocked on
                          //        the same object x runnable threads (capped at 3)
  kInFlight = 12,         // value: threads in flight (capped) x absent_count bucket of the
                          //        busiest object (docs/concurrency.md)
};

unsigned log2_bucket(uint64_t n) { return n == 0 ? 0 : unsigned(std::bit_width(n)); }

void bump(uint32_t kind, uint32_t value) {
  const size_t i = vm_state_slot(kind, value);
  if (g_counters[i] != 255) g_counters[i]++;
  if (!g_seen[i]) {
    g_seen[i] = true;
    g_seen_count++;
  }
}

}  // namespace

void record_vm_state(const vm::Kernel& kernel) {
  // Read straight from the kernel's structures (no ObjectInfo/EntryInfo copies: this runs
  // after every op). The features are exactly those of the introspection (ids, flags,
  // counts); only the cost differs.
  const vm::VmSystem& sys = kernel.system();
  // Chain depth of every object: follow shadow links while they name a registered object
  // (by id, as introspection would), capped at 16. `depths` is sorted by id because
  // sys.objects iterates in id order.
  static std::vector<std::pair<uint64_t, unsigned>> depths;
  depths.clear();
  auto depth_of = [&](const vm::VmObject* o) {
    unsigned d = 0;
    for (const vm::VmObject* cur = o; cur != nullptr && d < 16; d++) {
      if (sys.objects.find(cur->id) == sys.objects.end()) break;
      cur = cur->shadow;
    }
    return d;
  };
  for (const auto& [id, o] : sys.objects) {
    unsigned d = depth_of(o);
    depths.emplace_back(id, d);
    bump(kChainDepth, std::min(d, 8u));
    if (o->copy != nullptr) bump(kCopyObject, std::min(d, 8u));
    bump(kSharers, std::min<unsigned>(unsigned(std::max(o->ref_count, 0)), 5u) * 2 + o->internal);
    bump(kResident, log2_bucket(o->resident_page_count));
    bump(kPager, (o->pager_created ? 8u : 0u) | (o->internal ? 4u : 0u) | (o->can_persist ? 2u : 0u) |
                     (o->ref_count == 0 ? 1u : 0u));
    bump(kStrategy, unsigned(o->copy_strategy) * 4 + (o->use_shared_copy ? 2u : 0u) + (o->shadowed ? 1u : 0u));
  }
  bump(kObjects, log2_bucket(sys.objects.size()));
  auto depth_by_id = [&](uint64_t id) {
    auto it = std::lower_bound(depths.begin(), depths.end(), std::make_pair(id, 0u));
    return it != depths.end() && it->first == id ? it->second : 0u;
  };
  unsigned tasks = 0;
  for (unsigned t = 0; t < kMaxNames; t++) {
    const vm::VmMap* map = kernel.task_map(t);
    if (map == nullptr || map->entries.empty()) continue;
    tasks++;
    for (const auto& [start, e] : map->entries) {
      (void)start;
      unsigned d = e.object == nullptr ? 0 : std::min(depth_by_id(e.object->id), 8u);
      bump(kEntryShape, d * 4 + (e.needs_copy ? 2u : 0u) + (e.is_shared ? 1u : 0u));
    }
  }
  bump(kTasks, tasks);
  // Interleavings (docs/concurrency.md): which yield point a thread reached while another
  // thread waits on the same object, and how much is in flight.
  if (!sys.sched.threads.empty() || sys.counters.data_requests != 0) {
    unsigned runnable = 0, absent = 0;
    for (const auto& [id, t] : sys.sched.threads) runnable += t.state == vm::KThread::State::Runnable;
    for (const auto& [id, t] : sys.sched.threads) {
      if (t.state != vm::KThread::State::Blocked) continue;
      bool shared = false;
      for (const auto& [id2, u] : sys.sched.threads)
        shared |= id2 != id && u.state == vm::KThread::State::Blocked && u.event.object == t.event.object;
      bump(kInterleave, unsigned(t.where) * 8 + (shared ? 4u : 0u) + std::min(runnable, 3u));
    }
    for (const auto& [id, o] : sys.objects) absent = std::max(absent, o->absent_count);
    bump(kInFlight, std::min<unsigned>(unsigned(sys.sched.threads.size()), 7u) * 8 + std::min(absent, 7u));
  }
  // Every mechanism counter, bucketed. VmCounters is a plain struct of uint64_t counters.
  const vm::VmCounters& counters = kernel.counters();
  static_assert(std::is_trivially_copyable_v<vm::VmCounters> && sizeof(vm::VmCounters) % sizeof(uint64_t) == 0,
                "VmCounters must stay a plain struct of uint64_t counters");
  uint64_t values[sizeof(vm::VmCounters) / sizeof(uint64_t)];
  std::memcpy(values, &counters, sizeof values);
  for (uint32_t i = 0; i < std::size(values); i++)
    if (values[i] != 0) bump(kCounter, i * 64 + log2_bucket(values[i]));
}

size_t vm_state_features_seen() { return g_seen_count; }

}  // namespace vmfuzz::fuzz
