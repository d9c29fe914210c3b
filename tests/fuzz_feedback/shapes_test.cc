// shapes_test.cc — the shaped sequences (harness/lang/op_shapes.h) and vm_diff's op-level
// mutator (fuzz/vm_diff/op_mutator.h).
//
// Q: does every family print, parse and encode as itself, keep its names when it runs
//    alone, pass on the correct VM and reach the mechanism it is written for?
// Q: does the mutator, from an empty input, produce programs of the three classes that no
//    engine reached before (classify_shapes) — counted over what the decoder makes of its
//    output, not in a trace written for the test?
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <random>
#include <string>

#include "fuzz/vm_diff/op_mutator.h"
#include "harness/exec/executor.h"
#include "harness/lang/codec.h"
#include "harness/lang/op_shapes.h"
#include "harness/lang/text.h"
#include "reference_model/model.h"
#include "vm/kernel.h"
#include "vm/machine/bugs.h"

namespace vmfuzz {
namespace {

Program program_of(const std::vector<Op>& ops, unsigned frames) {
  Program p;
  p.config.frames = frames;
  p.has_config = true;
  p.ops = ops;
  p.lines.assign(ops.size(), 0);
  return p;
}

TEST(ShapedSequence, EveryFamilyPrintsAndParsesAsItself) {
  std::mt19937_64 rng(11);
  Pick pick = [&rng](uint64_t n) { return rng() % n; };
  for (unsigned f = 0; f < kShapeFamilies; f++) {
    for (int round = 0; round < 100; round++) {
      std::vector<Op> seq = shaped_sequence(pick, f);
      ASSERT_GE(seq.size(), 3u) << shape_family_name(f);
      for (const Op& op : seq) {
        ASSERT_EQ(canonical_op(op), op) << shape_family_name(f) << ": " << print_op(op);
        Op back;
        std::string reason;
        ASSERT_TRUE(parse_op_line(print_op(op), &back, &reason)) << print_op(op) << ": " << reason;
        EXPECT_EQ(back, op) << shape_family_name(f) << ": " << print_op(op);
      }
    }
  }
}

// Alone in a program, a family keeps every op and name the decoder sees (its names are
// free or live where it uses them; only the acting task may become t0), except where an
// edge op fails and its handle is never bound; on the correct VM it finds nothing; and together the draws of each family reach
// the mechanism its comment names.
TEST(ShapedSequence, EveryFamilyRunsCleanAloneAndReachesItsMechanism) {
  std::mt19937_64 rng(12);
  Pick pick = [&rng](uint64_t n) { return rng() % n; };
  for (unsigned f = 0; f < kShapeFamilies; f++) {
    vm::VmCounters sum;
    unsigned kept = 0, runs = 0;
    for (int round = 0; round < 24; round++) {
      const unsigned frames = round % 2 ? 64 : 512;
      Program p = program_of(shaped_sequence(pick, f), frames);
      std::vector<uint8_t> bytes = encode_program(p);
      model::Model scratch(p.config);
      Program decoded = harness::decode_with_model(bytes, scratch);
      // The acting task may be renamed to t0 (t1..t3 do not exist in a lone family).
      bool same = decoded.ops.size() == p.ops.size();
      for (size_t i = 0; same && i < p.ops.size(); i++) {
        Op a = p.ops[i], b = decoded.ops[i];
        a.task = b.task = 0;
        same = a == b;
      }
      kept += same;
      harness::Subject vm = harness::make_vm_subject(decoded.config);
      harness::Subject model = harness::make_model_subject(decoded.config);
      harness::ExecOptions options;
      options.full_check_every = harness::kFuzzFullCheckEvery;
      auto* kernel = dynamic_cast<vm::Kernel*>(vm.system.get());
      ASSERT_NE(kernel, nullptr);
      vm::VmCounters c;
      harness::StepListener grab = [&](uint64_t, const Op&, harness::Executor::Step, const harness::Executor&) {
        c = kernel->counters();
      };
      harness::RunSummary r =
          harness::run_program(decoded, "shape", *vm.system, *model.system, vm.observer.get(), options, grab);
      ASSERT_TRUE(r.ok) << shape_family_name(f) << ":\n"
                        << (r.failure ? harness::format_failure(*r.failure) : r.unusable_reason) << print_program(decoded);
      runs++;
      sum.collapses += c.collapses + c.bypasses + c.deallocate_collapses;
      sum.pushes += c.pushes;
      sum.pageouts_dirty += c.pageouts_dirty + c.pageouts_clean;
      sum.pageins += c.pageins;
      sum.copies_call += c.copies_call;
      sum.cache_hits += c.cache_hits;
      sum.coalesces += c.coalesces;
      sum.data_requests += c.data_requests;
      sum.thread_blocks += c.thread_blocks;
      sum.inits_queued += c.inits_queued;
      sum.objects_terminated += c.objects_terminated;
      sum.grab_evictions += c.grab_evictions;
    }
    const std::string name = shape_family_name(f);
    std::printf("%-36s kept %2u/%u  collapses %3llu pushes %3llu pageouts %3llu pageins %3llu copies_call %2llu\n",
                name.c_str(), kept, runs, (unsigned long long)sum.collapses, (unsigned long long)sum.pushes,
                (unsigned long long)sum.pageouts_dirty, (unsigned long long)sum.pageins,
                (unsigned long long)sum.copies_call);
    if (name != "edges") {
      EXPECT_EQ(kept, runs) << name << ": the decoder renamed or dropped ops of a lone family";
    }
    if (name == "fork_chain" || name == "pageout_then_collapse") {
      EXPECT_GT(sum.collapses, 0u) << name;
    }
    if (name == "pageout_then_collapse" || name == "snapshot_pressure") {
      EXPECT_GT(sum.pageouts_dirty, 0u) << name;
    }
    if (name == "shared_region_copied" || name == "snapshot_then_write" || name == "second_snapshot" ||
        name == "pageout_between_snapshot_and_write") {
      EXPECT_GT(sum.pushes, 0u) << name;
    }
    if (name == "copy_call_twice") {
      EXPECT_GT(sum.copies_call, 0u) << name;
    }
    if (name == "cached_object_remapped") {
      EXPECT_GT(sum.cache_hits, 0u) << name;
    }
    if (name.rfind("held_", 0) == 0) {  // a held manager asked, and threads blocked on it
      std::printf("%-36s data_requests %3llu thread_blocks %3llu\n", "", (unsigned long long)sum.data_requests,
                  (unsigned long long)sum.thread_blocks);
      EXPECT_GT(sum.data_requests, 0u) << name;
      // One access per page there (the format-5 families' race is a copy, a kernel path or
      // a flush meeting the page in transit, not a second fault).
      if (name != "held_unmap_during_pagein" && name != "held_reply_kinds" && name != "held_copy_of_absent" &&
          name != "held_kernel_write_absent" && name != "held_flush_during_pagein") {
        EXPECT_GT(sum.thread_blocks, sum.data_requests) << name << ": no fault waited beside a request";
      }
    }
    if (name == "frame_pressure") {  // half the rounds run in 64 frames: the grab must evict
      EXPECT_GT(sum.grab_evictions, 0u) << name;
    }
    if (name == "init_held_faults") {  // the init held, and faults waiting for the ready
      EXPECT_GT(sum.inits_queued, 0u) << name;
      EXPECT_GT(sum.thread_blocks, 0u) << name;
    }
  }
}

// The format-5 families are written for six race bugs: with the bug switched on, some of
// a family's draws (alone in a program, run as vm_diff runs it) must be caught, and none
// of them on the correct VM (the test above).
TEST(ShapedSequence, EachFormat5FamilyCatchesItsBugs) {
  struct Case {
    const char* family;
    bugs::Bug bug;
  };
  const Case cases[] = {
      {"held_copy_of_absent", bugs::Bug::CopyReadsAbsentPage},
      {"held_kernel_write_absent", bugs::Bug::KernelPathTakesBusy},
      {"held_flush_during_pagein", bugs::Bug::FlushTakesAbsent},
      {"supply_over_dirty", bugs::Bug::UnrequestedSupplyOverwrites},
      {"init_held_faults", bugs::Bug::FaultIgnoresPagerReady},
      {"init_held_faults", bugs::Bug::ReadyWakesNobody},
  };
  if (!bugs::bugs_compiled_in()) GTEST_SKIP() << "built without the bug catalogue";
  for (const Case& k : cases) {
    unsigned f = 0;
    while (f < kShapeFamilies && std::string(shape_family_name(f)) != k.family) f++;
    ASSERT_LT(f, kShapeFamilies) << k.family;
    std::mt19937_64 rng(13);
    Pick pick = [&rng](uint64_t n) { return rng() % n; };
    unsigned caught = 0;
    const unsigned rounds = 24;
    bugs::clear_bugs();
    bugs::set_bug(k.bug, true);
    for (unsigned round = 0; round < rounds; round++) {
      Program shaped = program_of(shaped_sequence(pick, f), 512);
      std::vector<uint8_t> bytes = encode_program(shaped);
      model::Model scratch(shaped.config);
      Program p = harness::decode_with_model(bytes, scratch);
      harness::Subject vm = harness::make_vm_subject(p.config);
      harness::Subject model = harness::make_model_subject(p.config);
      harness::ExecOptions options;
      options.full_check_every = harness::kFuzzFullCheckEvery;
      harness::RunSummary r = harness::run_program(p, "shape", *vm.system, *model.system, vm.observer.get(), options);
      caught += !r.ok && r.failure.has_value();
    }
    bugs::clear_bugs();
    std::printf("%-28s %-32s caught in %2u of %u draws\n", k.family, bugs::bug_name(k.bug), caught, rounds);
    EXPECT_GT(caught, 0u) << k.family << " never reaches " << bugs::bug_name(k.bug);
  }
}

struct ClassCounts {
  unsigned programs = 0, edge = 0, pageout_collapse = 0, kernel_write_file = 0, held_race = 0, init_race = 0;
};

// A random walk of the mutator from an empty input, as libFuzzer would start it without
// feedback: each output, decoded (names remapped by a model run), is the next input; the
// walk restarts from empty every 40 steps. Counts the decoded programs of each class.
ClassCounts walk(bool sequences, unsigned steps) {
  ClassCounts n;
  std::minstd_rand rng(7);
  Program p;
  for (unsigned i = 0; i < steps; i++) {
    if (i % 40 == 0) p = Program{};
    const bool seq = sequences && rng() % 3 == 0;  // 2 of 6 op-level mutations, as vm_diff
    if (seq) fuzz::insert_shaped_sequence(p, rng);
    else fuzz::mutate_one_op(p, rng);
    std::vector<uint8_t> bytes = encode_program(p);
    if (bytes.size() > 1024) bytes.resize(1024);  // vm_diff.options: max_len
    model::Model scratch(Decoder(bytes).config());
    p = harness::decode_with_model(bytes, scratch);
    ShapeClasses c = classify_shapes(p.ops);
    n.programs++;
    n.edge += c.edge, n.pageout_collapse += c.pageout_collapse, n.kernel_write_file += c.kernel_write_file;
    n.held_race += c.held_race;
    n.init_race += c.init_race;
  }
  return n;
}

TEST(OpMutator, FromAnEmptyInputMakesAllThreeMissedClasses) {
  const ClassCounts with = walk(true, 2000), without = walk(false, 2000);
  std::printf("of %u decoded mutants: edge %u, pageout_collapse %u, kernel_write_file %u (with shaped sequences)\n",
              with.programs, with.edge, with.pageout_collapse, with.kernel_write_file);
  std::printf("of %u decoded mutants: edge %u, pageout_collapse %u, kernel_write_file %u (one op at a time)\n",
              without.programs, without.edge, without.pageout_collapse, without.kernel_write_file);
  // At least 2% of the programs of each class (a campaign runs thousands a second).
  EXPECT_GE(with.edge * 50, with.programs);
  EXPECT_GE(with.pageout_collapse * 50, with.programs);
  EXPECT_GE(with.kernel_write_file * 50, with.programs);
  // The race bugs' shape (a hold, two accesses, a reply, a run), from the concurrency family.
  std::printf("of %u decoded mutants: held_race %u with shaped sequences, %u one op at a time\n", with.programs,
              with.held_race, without.held_race);
  EXPECT_GE(with.held_race * 50, with.programs);
  EXPECT_GT(with.held_race, 4 * without.held_race);
  // The format-5 families' initialization race (a hold_init, an access, a ready).
  std::printf("of %u decoded mutants: init_race %u with shaped sequences, %u one op at a time\n", with.programs,
              with.init_race, without.init_race);
  EXPECT_GE(with.init_race * 100, with.programs);
  EXPECT_GT(with.init_race, 4 * without.init_race);
}

// The classifier itself: each class recognized in a short program, and not without its
// defining step.
TEST(ShapeClasses, RecognizesEachClassAndOnlyWithItsDefiningStep) {
  auto ops_of = [](const char* text) {
    Program p;
    ParseError err;
    EXPECT_TRUE(parse_trace(text, "t", &p, &err)) << err.what();
    return p.ops;
  };
  EXPECT_TRUE(classify_shapes(ops_of("allocate t0 0x7fffffffe000 0x1000\n")).edge);
  EXPECT_TRUE(classify_shapes(ops_of("protect t0 0xfffffffffffff000 0x2000 r--\n")).edge);
  EXPECT_FALSE(classify_shapes(ops_of("allocate t0 0x7fffffffd000 0x1000\n")).edge);
  const char* collapse =
      "allocate t0 0x10000 0x2000\nfork t0 t1\nwrite t0 0x10000 fill:0x11*0x10\npageout all\nterminate t1\n"
      "read t0 0x10000 0x10\n";
  EXPECT_TRUE(classify_shapes(ops_of(collapse)).pageout_collapse);
  EXPECT_FALSE(classify_shapes(ops_of("allocate t0 0x10000 0x2000\nfork t0 t1\nwrite t0 0x10000 fill:0x11*0x10\n"
                                      "terminate t1\nread t0 0x10000 0x10\n"))
                   .pageout_collapse);
  const char* kernel =
      "object m0 0x2000 delay persist\nmap t0 0x10000 0x2000 m0 0x0 share\nallocate t0 0x20000 0x2000\n"
      "vm_copy t0 0x20000 0x2000 0x10000\nfile m0 0x0 0x10\n";
  EXPECT_TRUE(classify_shapes(ops_of(kernel)).kernel_write_file);
  const char* race =
      "object m0 0x2000 none persist\nmap t0 0x40000 0x2000 m0 0x0 share\nhold m0\nread t0 0x40000 0x10\n"
      "write t0 0x40000 fill:0x22*0x10\nreply m0 ~0 supply\nrun ~0\n";
  EXPECT_TRUE(classify_shapes(ops_of(race)).held_race);
  EXPECT_FALSE(classify_shapes(ops_of("object m0 0x2000 none persist\nmap t0 0x40000 0x2000 m0 0x0 share\nhold m0\n"
                                      "read t0 0x40000 0x10\nreply m0 ~0 supply\nrun ~0\n"))
                   .held_race);  // one access only
  EXPECT_FALSE(classify_shapes(ops_of("object m0 0x2000 none persist\nmap t0 0x40000 0x2000 m0 0x0 share\n"
                                      "read t0 0x40000 0x10\nwrite t0 0x40000 fill:0x22*0x10\nreply m0 ~0 supply\n"
                                      "run ~0\n"))
                   .held_race);  // no hold
  const char* init =
      "object m0 0x2000 none persist\nhold_init m0\nmap t0 0x40000 0x2000 m0 0x0 share\nread t0 0x40000 0x10\n"
      "ready m0\nrun ~0\n";
  EXPECT_TRUE(classify_shapes(ops_of(init)).init_race);
  EXPECT_FALSE(classify_shapes(ops_of("object m0 0x2000 none persist\nhold_init m0\nmap t0 0x40000 0x2000 m0 0x0 share\n"
                                      "ready m0\nread t0 0x40000 0x10\n"))
                   .init_race);  // the access after the ready
  EXPECT_FALSE(classify_shapes(ops_of("object m0 0x2000 none persist\nmap t0 0x40000 0x2000 m0 0x0 share\n"
                                      "read t0 0x40000 0x10\nready m0\n"))
                   .init_race);  // no hold_init
  EXPECT_FALSE(classify_shapes(ops_of("object m0 0x2000 delay persist\nmap t0 0x10000 0x2000 m0 0x0 share\n"
                                      "allocate t0 0x20000 0x2000\nvm_copy t0 0x20000 0x2000 0x10000\n"
                                      "write t0 0x10000 fill:0x22*0x10\nfile m0 0x0 0x10\n"))
                   .kernel_write_file);
}

}  // namespace
}  // namespace vmfuzz
