// vm_state_feedback_test.cc — record_vm_state sets exactly the counters that the features
// of the VM-state feedback (fuzz/vm_diff/vm_state_feedback.h) name, as computed from the
// kernel's introspection.
//
// record_vm_state reads the kernel's structures directly (it runs after every op). The
// reference below is the first version of it, written over Kernel::objects() and
// Kernel::entries() (ObjectInfo/EntryInfo copies): after every op of many programs, both
// must leave the same counter table. The table is found as libFuzzer finds it, through
// the linker's __start_/__stop_ symbols of the `__libfuzzer_extra_counters` section.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <type_traits>
#include <vector>

#include "fuzz/vm_diff/vm_state_feedback.h"
#include "harness/lang/codec.h"
#include "harness/exec/executor.h"
#include "reference_model/model.h"
#include "vm/kernel.h"

extern "C" uint8_t __start___libfuzzer_extra_counters[];
extern "C" uint8_t __stop___libfuzzer_extra_counters[];

namespace vmfuzz::fuzz {
namespace {

std::vector<uint8_t> counters_of_record_vm_state(const vm::Kernel& k) {
  uint8_t* begin = __start___libfuzzer_extra_counters;
  size_t n = size_t(__stop___libfuzzer_extra_counters - begin);
  std::memset(begin, 0, n);  // libFuzzer clears the table before every input
  record_vm_state(k);
  return std::vector<uint8_t>(begin, begin + n);
}

// The reference: the same features from Kernel::objects() / entries().
std::vector<uint8_t> reference_counters(const vm::Kernel& kernel) {
  std::vector<uint8_t> c(kVmStateCounters, 0);
  auto log2_bucket = [](uint64_t n) { return n == 0 ? 0u : unsigned(std::bit_width(n)); };
  auto bump = [&](uint32_t kind, uint32_t value) {
    const size_t i = vm_state_slot(kind, value);
    if (c[i] != 255) c[i]++;
  };
  const std::vector<vm::ObjectInfo> objects = kernel.objects();
  std::map<uint64_t, const vm::ObjectInfo*> by_id;
  for (const auto& o : objects) by_id[o.id] = &o;
  std::map<uint64_t, unsigned> depth;
  auto depth_of = [&](uint64_t id) {
    unsigned d = 0;
    for (uint64_t cur = id; cur != 0 && d < 16; d++) {
      auto it = by_id.find(cur);
      if (it == by_id.end()) break;
      cur = it->second->shadow;
    }
    return d;
  };
  for (const auto& o : objects) {
    unsigned d = depth_of(o.id);
    depth[o.id] = d;
    bump(1, std::min(d, 8u));
    if (o.copy != 0) bump(2, std::min(d, 8u));
    bump(3, std::min<unsigned>(unsigned(std::max(o.ref_count, 0)), 5u) * 2 + o.internal);
    bump(4, log2_bucket(o.resident_page_count));
    bump(5, (o.pager_created ? 8u : 0u) | (o.internal ? 4u : 0u) | (o.can_persist ? 2u : 0u) |
                (o.ref_count == 0 ? 1u : 0u));
    bump(6, unsigned(o.copy_strategy) * 4 + (o.use_shared_copy ? 2u : 0u) + (o.shadowed ? 1u : 0u));
  }
  bump(10, log2_bucket(objects.size()));
  unsigned tasks = 0;
  for (unsigned t : kernel.tasks()) {
    std::vector<vm::EntryInfo> entries = kernel.entries(t);
    if (entries.empty()) continue;
    tasks++;
    for (const auto& e : entries) {
      unsigned d = e.object == 0 ? 0 : std::min(depth[e.object], 8u);
      bump(7, d * 4 + (e.needs_copy ? 2u : 0u) + (e.is_shared ? 1u : 0u));
    }
  }
  bump(9, tasks);
  // Interleavings: from the scheduler's threads and the objects' absent counts.
  const vm::Scheduler& sched = kernel.scheduler();
  if (!sched.threads.empty() || kernel.counters().data_requests != 0) {
    std::vector<const vm::KThread*> blocked;
    unsigned runnable = 0, absent = 0;
    for (const auto& [id, t] : sched.threads) {
      if (t.state == vm::KThread::State::Runnable) runnable++;
      else blocked.push_back(&t);
    }
    for (const vm::KThread* t : blocked) {
      bool shared = std::ranges::any_of(blocked, [&](const vm::KThread* u) { return u != t && u->event.object == t->event.object; });
      bump(11, unsigned(t->where) * 8 + (shared ? 4u : 0u) + std::min(runnable, 3u));
    }
    for (const auto& o : objects) absent = std::max(absent, o.absent_count);
    bump(12, std::min<unsigned>(unsigned(sched.threads.size()), 7u) * 8 + std::min(absent, 7u));
  }
  uint64_t values[sizeof(vm::VmCounters) / sizeof(uint64_t)];
  std::memcpy(values, &kernel.counters(), sizeof values);
  for (uint32_t i = 0; i < std::size(values); i++)
    if (values[i] != 0) bump(8, i * 64 + log2_bucket(values[i]));
  return c;
}

TEST(VmStateFeedback, WhatIfTheKernelIsReadDirectlyTheCountersAreThoseOfItsIntrospection) {
  ASSERT_EQ(size_t(__stop___libfuzzer_extra_counters - __start___libfuzzer_extra_counters), kVmStateCounters);
  uint64_t x = 0x243f6a8885a308d3ull;
  unsigned compared = 0, nonzero = 0;
  size_t most_objects = 0;
  unsigned deepest = 0;
  // The seeds (hand-written traces: forks, copies, chains, memory objects), then random
  // bytes (any input is a program).
  std::vector<std::vector<uint8_t>> inputs;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(VMFUZZ_SOURCE_DIR) / "corpus" / "vm_diff"))
    if (e.path().extension() == ".bin") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    inputs.emplace_back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  ASSERT_GE(inputs.size(), 30u);
  for (unsigned n = 0; n < 80; n++) {
    std::vector<uint8_t> b(60 + 9 * n);
    for (auto& v : b) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      v = uint8_t(x >> 32);
    }
    inputs.push_back(std::move(b));
  }
  for (unsigned n = 0; n < inputs.size(); n++) {
    const std::vector<uint8_t>& bytes = inputs[n];
    Program p;
    {
      model::Model scratch(Decoder(bytes).config());
      p = harness::decode_with_model(bytes, scratch);
    }
    harness::fold_fuzz_config(p.config);
    harness::Subject vm = harness::make_vm_subject(p.config);
    model::Model model(p.config);
    const auto* kernel = dynamic_cast<const vm::Kernel*>(vm.system.get());
    ASSERT_NE(kernel, nullptr);
    harness::StepListener check = [&](uint64_t i, const Op&, harness::Executor::Step st, const harness::Executor&) {
      if (st != harness::Executor::Step::Ran) return;
      std::vector<uint8_t> got = counters_of_record_vm_state(*kernel);
      std::vector<uint8_t> want = reference_counters(*kernel);
      compared++;
      most_objects = std::max<size_t>(most_objects, kernel->object_count());
      for (const auto& o : kernel->objects()) {
        unsigned d = 0;
        for (auto cur = kernel->object_info(o.id); cur && d < 16; cur = kernel->object_info(cur->shadow)) d++;
        deepest = std::max(deepest, d);
      }
      nonzero += std::count_if(got.begin(), got.end(), [](uint8_t v) { return v != 0; }) > 0;
      ASSERT_EQ(got, want) << "program " << n << " op " << i;
    };
    harness::run_program(p, "<input>", *vm.system, model, vm.observer.get(), {}, check);
  }
  EXPECT_GT(compared, 1000u);
  // The states compared must be varied enough to mean something.
  EXPECT_GE(most_objects, 4u);
  EXPECT_GE(deepest, 3u);
  std::printf("compared %u states; at most %zu objects; deepest chain %u\n", compared, most_objects, deepest);
  EXPECT_EQ(nonzero, compared);
}

}  // namespace
}  // namespace vmfuzz::fuzz
