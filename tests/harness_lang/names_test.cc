// names_test.cc — what may a trace name at each point? (docs/language.md §Names, §Details 11)
#include <gtest/gtest.h>

#include "harness/names.h"
#include "harness/text.h"

namespace vmfuzz {
namespace {

Op op_of(const char* line) {
  Op op;
  std::string reason;
  EXPECT_TRUE(parse_op_line(line, &op, &reason)) << line << ": " << reason;
  return op;
}

std::optional<std::string> check(const NameState& n, const char* line) { return n.check(op_of(line)); }

TEST(NameState, OnlyT0ExistsAtStart) {
  NameState n{SystemConfig{}};
  EXPECT_TRUE(n.task_live(0));
  EXPECT_EQ(n.tasks_mask(), 1);
  EXPECT_EQ(n.copies_mask(), 0);
  EXPECT_EQ(n.objects_mask(), 0);
  EXPECT_FALSE(check(n, "allocate t0 0x10000 0x1000"));
  EXPECT_EQ(*check(n, "allocate t1 0x10000 0x1000"), "t1: no such task");
  EXPECT_EQ(*check(n, "task t0"), "t0: task already exists");
  EXPECT_FALSE(check(n, "task t15"));
}

TEST(NameState, TaskLifecycleAllowsReuseAfterTerminate) {
  NameState n{SystemConfig{}};
  n.apply(op_of("fork t0 t2"), KERN_SUCCESS);
  EXPECT_TRUE(n.task_live(2));
  EXPECT_EQ(*check(n, "fork t0 t2"), "t2: task already exists");
  EXPECT_EQ(*check(n, "fork t3 t4"), "t3: no such task");
  n.apply(op_of("terminate t2"), KERN_SUCCESS);
  EXPECT_FALSE(n.task_live(2));
  EXPECT_EQ(*check(n, "terminate t2"), "t2: no such task");
  EXPECT_FALSE(check(n, "task t2"));
  n.apply(op_of("terminate t0"), KERN_SUCCESS);
  EXPECT_EQ(n.tasks_mask(), 0);
}

TEST(NameState, VmReadBindsOnlyOnSuccess) {
  NameState n{SystemConfig{}};
  n.apply(op_of("vm_read t0 0x10000 0x1000 c1"), KERN_INVALID_ADDRESS);
  EXPECT_FALSE(n.copy_live(1));
  EXPECT_EQ(*check(n, "copyout t0 c1"), "c1: no such copy handle (never made, or already consumed)");
  n.apply(op_of("vm_read t0 0x10000 0x1000 c1"), KERN_SUCCESS);
  EXPECT_TRUE(n.copy_live(1));
  EXPECT_EQ(*check(n, "vm_read t0 0x10000 0x1000 c1"), "c1: copy handle already exists");
}

TEST(NameState, HandlesAreConsumedWhateverTheResult) {
  NameState n{SystemConfig{}};
  for (const char* consumer : {"vm_write t0 0x10000 c1", "copyout t0 c1", "discard c1"}) {
    n.apply(op_of("vm_read t0 0x10000 0x1000 c1"), KERN_SUCCESS);
    EXPECT_FALSE(check(n, consumer));
    n.apply(op_of(consumer), KERN_NO_SPACE);
    EXPECT_FALSE(n.copy_live(1)) << consumer;
    EXPECT_TRUE(check(n, consumer)) << consumer;
  }
}

TEST(NameState, ObjectsStayNamedAfterDestroy) {
  NameState n{SystemConfig{}};
  EXPECT_EQ(*check(n, "map t0 any 0x1000 m0 0x0 share"), "m0: no such memory object");
  n.apply(op_of("object m0 0x2000 none persist"), KERN_SUCCESS);
  EXPECT_FALSE(check(n, "map t0 any 0x1000 m0 0x0 share"));
  EXPECT_EQ(*check(n, "object m0 0x1000 delay nopersist"), "m0: memory object already exists");
  n.apply(op_of("destroy m0"), KERN_SUCCESS);
  EXPECT_TRUE(n.object_live(0));
  EXPECT_FALSE(check(n, "destroy m0"));
  EXPECT_EQ(*check(n, "manager_write m1 0x0 hex:00"), "m1: no such memory object");
  EXPECT_EQ(*check(n, "file m1 0x0 1"), "m1: no such memory object");
  EXPECT_EQ(n.objects_mask(), 1);
}

TEST(NameState, ObjectContentsMustFitTheRoundedObject) {
  NameState n{SystemConfig{}};
  EXPECT_FALSE(check(n, "object m0 0x1 delay persist fill:0x11*0x1000"));
  EXPECT_EQ(*check(n, "object m0 0x1 delay persist fill:0x11*0x1001"),
            "m0: initial contents (4097 bytes) longer than the object (4096 bytes)");
  EXPECT_EQ(*check(n, "object m0 0x0 delay persist hex:00"),
            "m0: initial contents (1 bytes) longer than the object (0 bytes)");
  EXPECT_TRUE(check(n, "object m0 0xfffffffffffff001 delay persist"));
  EXPECT_FALSE(check(n, "object m0 0xfffffffffffff000 delay persist"));
}

TEST(NameState, DevicesAreMemoryObjectsOfAtMost64KiB) {
  NameState n{SystemConfig{}};
  EXPECT_FALSE(check(n, "device m2 0x10000 fill:0x1*0x10000"));
  EXPECT_EQ(*check(n, "device m2 0x10001"), "m2: device of 65537 bytes (at most 65536)");
  EXPECT_FALSE(check(n, "device m2 0x1 fill:0x1*0x1000"));  // rounded to one page
  EXPECT_EQ(*check(n, "device m2 0x0 hex:00"), "m2: initial contents (1 bytes) longer than the device (0 bytes)");
  n.apply(op_of("device m2 0x3000"), KERN_SUCCESS);
  EXPECT_FALSE(check(n, "map t0 any 0x1000 m2 0x2000 share"));
  EXPECT_EQ(*check(n, "object m2 0x1000 none persist"), "m2: memory object already exists");
  EXPECT_EQ(*check(n, "device m2 0x1000"), "m2: memory object already exists");
}

TEST(NameState, CpuBeyondTheConfiguredCpusIsUnusable) {
  SystemConfig cfg;
  cfg.cpus = 2;
  NameState n{cfg};
  EXPECT_FALSE(check(n, "read t0 0x10000 1 cpu=1"));
  EXPECT_EQ(*check(n, "read t0 0x10000 1 cpu=2"), "cpu=2: only 2 CPUs configured (0..1)");
  EXPECT_EQ(*check(n, "write t0 0x10000 hex:00 cpu=7"), "cpu=7: only 2 CPUs configured (0..1)");
  EXPECT_FALSE(check(n, "pageout all"));
  EXPECT_FALSE(check(n, "check"));
}

}  // namespace
}  // namespace vmfuzz
