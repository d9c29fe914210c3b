// text_test.cc — does the text trace form read and print exactly what docs/language.md says?
#include <gtest/gtest.h>

#include <random>

#include "harness/lang/text.h"

namespace vmfuzz {
namespace {

Op parse1(const std::string& line) {
  Program p;
  ParseError e;
  EXPECT_TRUE(parse_trace(line, "t.trace", &p, &e)) << line << " -> " << e.what();
  EXPECT_EQ(p.ops.size(), 1u) << line;
  return p.ops.empty() ? Op{} : p.ops[0];
}

std::string parse_error(const std::string& text) {
  Program p;
  ParseError e;
  if (parse_trace(text, "bad.trace", &p, &e)) return "(parsed)";
  return e.what();
}

TEST(TextParse, EveryOpForm) {
  Op op = parse1("task t1");
  EXPECT_EQ(op.kind, OpKind::Task);
  EXPECT_EQ(op.task, 1);

  op = parse1("allocate t0 0x10000 0x4000");
  EXPECT_EQ(op.kind, OpKind::Allocate);
  EXPECT_EQ(op.addr, 0x10000u);
  EXPECT_EQ(op.size, 0x4000u);
  EXPECT_FALSE(op.anywhere);
  op = parse1("allocate t3 any 16384");
  EXPECT_TRUE(op.anywhere);
  EXPECT_EQ(op.addr, 0u);
  EXPECT_EQ(op.size, 16384u);
  EXPECT_EQ(op.task, 3);

  op = parse1("deallocate t0 0x10000 0x1000");
  EXPECT_EQ(op.kind, OpKind::Deallocate);
  EXPECT_EQ(op.size, 0x1000u);

  op = parse1("protect t0 0x10000 0x2000 r--");
  EXPECT_EQ(op.kind, OpKind::Protect);
  EXPECT_FALSE(op.set_max);
  EXPECT_EQ(op.prot, VM_PROT_READ);
  op = parse1("protect t0 0x10000 0x2000 max -wx");
  EXPECT_TRUE(op.set_max);
  EXPECT_EQ(op.prot, VM_PROT_WRITE | VM_PROT_EXECUTE);
  EXPECT_EQ(parse1("protect t0 0 0 ---").prot, VM_PROT_NONE);
  EXPECT_EQ(parse1("protect t0 0 0 rwx").prot, VM_PROT_ALL);

  EXPECT_EQ(parse1("inherit t0 0x10000 0x2000 share").inherit, vm_inherit_t::Share);
  EXPECT_EQ(parse1("inherit t0 0x10000 0x2000 copy").inherit, vm_inherit_t::Copy);
  EXPECT_EQ(parse1("inherit t0 0x10000 0x2000 none").inherit, vm_inherit_t::None);

  op = parse1("write t0 0x10004 \"text\"");
  EXPECT_EQ(op.kind, OpKind::Write);
  EXPECT_EQ(op.addr, 0x10004u);
  EXPECT_EQ(op.data.form, DataSpec::Form::Text);
  EXPECT_EQ(op.data.materialize(), (std::vector<uint8_t>{'t', 'e', 'x', 't'}));
  EXPECT_EQ(op.cpu, 0);
  EXPECT_EQ(parse1("write t0 0x10004 hex:00 cpu=1").cpu, 1);

  op = parse1("read t0 0x10000 8 == hex:0000000074657874");
  EXPECT_EQ(op.kind, OpKind::Read);
  EXPECT_EQ(op.size, 8u);
  EXPECT_TRUE(op.expect.has_bytes);
  EXPECT_EQ(op.expect.bytes.bytes, (std::vector<uint8_t>{0, 0, 0, 0, 't', 'e', 'x', 't'}));
  EXPECT_EQ(op.expect.result, Expect::Result::None);
  EXPECT_EQ(parse1("read t0 0x10000 8 cpu=3").cpu, 3);

  op = parse1("fork t0 t2");
  EXPECT_EQ(op.kind, OpKind::Fork);
  EXPECT_EQ(op.task, 0);
  EXPECT_EQ(op.task2, 2);
  EXPECT_EQ(parse1("terminate t2").kind, OpKind::Terminate);

  op = parse1("vm_copy t0 0x10000 0x2000 0x20000");
  EXPECT_EQ(op.kind, OpKind::VmCopy);
  EXPECT_EQ(op.addr, 0x10000u);
  EXPECT_EQ(op.size, 0x2000u);
  EXPECT_EQ(op.addr2, 0x20000u);

  op = parse1("vm_read t0 0x10000 0x2000 c1");
  EXPECT_EQ(op.kind, OpKind::VmRead);
  EXPECT_EQ(op.copy, 1);
  op = parse1("vm_write t1 0x30000 c1");
  EXPECT_EQ(op.kind, OpKind::VmWrite);
  EXPECT_EQ(op.task, 1);
  EXPECT_EQ(op.addr, 0x30000u);
  op = parse1("copyout t1 c15");
  EXPECT_EQ(op.kind, OpKind::Copyout);
  EXPECT_EQ(op.copy, 15);
  EXPECT_EQ(parse1("discard c1").kind, OpKind::Discard);

  op = parse1("object m0 0x8000 delay persist fill:0x11*0x8000");
  EXPECT_EQ(op.kind, OpKind::Object);
  EXPECT_EQ(op.size, 0x8000u);
  EXPECT_EQ(op.strategy, CopyStrategy::Delay);
  EXPECT_TRUE(op.persist);
  EXPECT_EQ(op.data.form, DataSpec::Form::Fill);
  EXPECT_EQ(op.data.value, 0x11);
  EXPECT_EQ(op.data.length, 0x8000u);
  op = parse1("object m2 0x1000 none nopersist");
  EXPECT_EQ(op.strategy, CopyStrategy::None);
  EXPECT_FALSE(op.persist);
  EXPECT_EQ(op.data, DataSpec{});
  EXPECT_EQ(parse1("object m2 0x1000 call nopersist").strategy, CopyStrategy::Call);

  op = parse1("map t0 0x40000 0x4000 m0 0x0 share");
  EXPECT_EQ(op.kind, OpKind::Map);
  EXPECT_TRUE(op.share);
  EXPECT_EQ(op.prot, VM_PROT_DEFAULT);
  EXPECT_EQ(op.max_prot, VM_PROT_ALL);
  EXPECT_EQ(op.inherit, vm_inherit_t::Copy);
  op = parse1("map t0 any 0x4000 m3 0x2000 copy prot=r-- max=r-x inherit=none");
  EXPECT_TRUE(op.anywhere);
  EXPECT_FALSE(op.share);
  EXPECT_EQ(op.object, 3);
  EXPECT_EQ(op.offset, 0x2000u);
  EXPECT_EQ(op.prot, VM_PROT_READ);
  EXPECT_EQ(op.max_prot, VM_PROT_READ | VM_PROT_EXECUTE);
  EXPECT_EQ(op.inherit, vm_inherit_t::None);
  EXPECT_EQ(parse1("map t0 any 1 m3 0 copy inherit=share max=--- ").inherit, vm_inherit_t::Share);

  op = parse1("manager_write m0 0x1000 hex:ff");
  EXPECT_EQ(op.kind, OpKind::ManagerWrite);
  EXPECT_EQ(op.offset, 0x1000u);
  EXPECT_EQ(op.data.bytes, std::vector<uint8_t>{0xff});
  op = parse1("file m0 0x0 4 == hex:11111111");
  EXPECT_EQ(op.kind, OpKind::File);
  EXPECT_EQ(op.size, 4u);
  EXPECT_TRUE(op.expect.has_bytes);
  EXPECT_EQ(parse1("destroy m0").kind, OpKind::Destroy);

  op = parse1("pageout 10");
  EXPECT_EQ(op.kind, OpKind::Pageout);
  EXPECT_EQ(op.size, 10u);
  EXPECT_FALSE(op.all);
  op = parse1("pageout all");
  EXPECT_TRUE(op.all);
  EXPECT_EQ(op.size, 0u);
  EXPECT_EQ(parse1("check").kind, OpKind::Check);
}

TEST(TextParse, EveryDataForm) {
  auto data = [](const std::string& d) { return parse1("write t0 0 " + d).data; };
  EXPECT_EQ(data("\"a\\n\\t\\r\\0\\\\\\\"\\x7F\\xfe#z\"").materialize(),
            (std::vector<uint8_t>{'a', '\n', '\t', '\r', 0, '\\', '"', 0x7f, 0xfe, '#', 'z'}));
  EXPECT_EQ(data("\"\"").form, DataSpec::Form::Text);
  EXPECT_EQ(data("\"\"").size(), 0u);
  EXPECT_EQ(data("hex:").size(), 0u);
  EXPECT_EQ(data("hex:DEadbe00").bytes, (std::vector<uint8_t>{0xde, 0xad, 0xbe, 0x00}));
  DataSpec f = data("fill:255*3");
  EXPECT_EQ(f.form, DataSpec::Form::Fill);
  EXPECT_EQ(f.materialize(), (std::vector<uint8_t>{255, 255, 255}));
  DataSpec p = data("pat:0x5*0x102");
  EXPECT_EQ(p.form, DataSpec::Form::Pat);
  std::vector<uint8_t> bytes = p.materialize();
  ASSERT_EQ(bytes.size(), 0x102u);
  EXPECT_EQ(bytes[0], 5);
  EXPECT_EQ(bytes[1], 12);
  EXPECT_EQ(bytes[0x100], static_cast<uint8_t>(5 + 7 * 0x100 + 1));
  EXPECT_EQ(data("fill:0*0").size(), 0u);
}

TEST(DataSpecMaterialize, PatIsItsFormulaAtEveryByte) {
  // materialize() copies pat: a 256-byte block at a time; every byte must still be
  // (SEED + 7*i + (i >> 8)) mod 256.
  for (uint64_t length : {0ull, 1ull, 255ull, 256ull, 257ull, 0x1234ull, 0x10003ull}) {
    for (unsigned seed : {0u, 5u, 0xffu}) {
      DataSpec d;
      d.form = DataSpec::Form::Pat;
      d.value = uint8_t(seed);
      d.length = length;
      std::vector<uint8_t> bytes = d.materialize();
      ASSERT_EQ(bytes.size(), length);
      for (uint64_t i = 0; i < length; i++)
        ASSERT_EQ(bytes[i], static_cast<uint8_t>(seed + 7 * i + (i >> 8))) << "seed " << seed << " byte " << i;
    }
  }
}

TEST(TextParse, EveryResultForm) {
  Op op = parse1("deallocate t0 0x10000 0x1000 => KERN_SUCCESS");
  EXPECT_EQ(op.expect.result, Expect::Result::Code);
  EXPECT_EQ(op.expect.code, KERN_SUCCESS);
  for (auto [name, code] : std::vector<std::pair<std::string, kern_return_t>>{
           {"KERN_INVALID_ADDRESS", KERN_INVALID_ADDRESS},
           {"KERN_PROTECTION_FAILURE", KERN_PROTECTION_FAILURE},
           {"KERN_NO_SPACE", KERN_NO_SPACE},
           {"KERN_INVALID_ARGUMENT", KERN_INVALID_ARGUMENT},
           {"KERN_RESOURCE_SHORTAGE", KERN_RESOURCE_SHORTAGE},
           {"KERN_MEMORY_ERROR", KERN_MEMORY_ERROR}})
    EXPECT_EQ(parse1("allocate t0 0 0 => " + name).expect.code, code) << name;
  op = parse1("read t0 0x10ffe 4 == hex:0102 => fault 0x11000 KERN_INVALID_ADDRESS");
  EXPECT_TRUE(op.expect.has_bytes);
  EXPECT_EQ(op.expect.result, Expect::Result::Fault);
  EXPECT_EQ(op.expect.addr, 0x11000u);
  EXPECT_EQ(op.expect.code, KERN_INVALID_ADDRESS);
  op = parse1("write t0 0x10000 hex:00 => fault 0x10000 KERN_PROTECTION_FAILURE");
  EXPECT_EQ(op.expect.result, Expect::Result::Fault);
  for (const char* line : {"allocate t0 any 0x1000 => 0x10000", "map t0 any 0x1000 m0 0 share => 0x10000",
                           "copyout t0 c0 => 0x10000"}) {
    op = parse1(line);
    EXPECT_EQ(op.expect.result, Expect::Result::Address) << line;
    EXPECT_EQ(op.expect.addr, 0x10000u) << line;
  }
  EXPECT_EQ(parse1("allocate t0 any 0 => 0").expect.result, Expect::Result::Address);
}

TEST(TextParse, CommentsBlankLinesConfigAndLineNumbers) {
  Program p;
  ParseError e;
  std::string text =
      "# a comment\r\n"
      "\n"
      "config frames=256 cpus=4 tlb=0x10 cache=0   # trailing comment\n"
      "   allocate t0 0x10000 0x1000# no space before the comment\n"
      "\t\n"
      "write t0 0x10000 \"#not a comment\" # but this is\n"
      "check";
  ASSERT_TRUE(parse_trace(text, "c.trace", &p, &e)) << e.what();
  EXPECT_TRUE(p.has_config);
  EXPECT_EQ(p.config.frames, 256u);
  EXPECT_EQ(p.config.cpus, 4u);
  EXPECT_EQ(p.config.tlb, 16u);
  EXPECT_EQ(p.config.cache, 0u);
  ASSERT_EQ(p.ops.size(), 3u);
  EXPECT_EQ(p.lines, (std::vector<unsigned>{4, 6, 7}));
  EXPECT_EQ(p.source, "c.trace");
  EXPECT_EQ(p.ops[1].data.size(), 14u);

  ASSERT_TRUE(parse_trace("config\ncheck\n", "c.trace", &p, &e));
  EXPECT_TRUE(p.has_config);
  EXPECT_EQ(p.config, SystemConfig{});
  ASSERT_TRUE(parse_trace("", "empty.trace", &p, &e));
  EXPECT_FALSE(p.has_config);
  EXPECT_TRUE(p.ops.empty());
}

TEST(TextParse, EveryErrorNamesFileLineAndReason) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"alocate t0 0 0", "bad.trace:1: unknown op 'alocate'"},
      {"check\nallocate t16 0 0", "bad.trace:2: t16: task name out of range (t0..t15)"},
      {"vm_read t0 0 0 c16", "bad.trace:1: c16: copy handle name out of range (c0..c15)"},
      {"destroy m99", "bad.trace:1: m99: memory object name out of range (m0..m15)"},
      {"fork t0 x1", "bad.trace:1: fork: expected a task name t0..t15, got 'x1'"},
      {"allocate t0 0x10000", "bad.trace:1: allocate: missing size"},
      {"allocate t0 0x10000 0x1000 xyz", "bad.trace:1: trailing garbage 'xyz'"},
      {"check extra", "bad.trace:1: trailing garbage 'extra'"},
      {"allocate t0 zz 0x1000", "bad.trace:1: allocate: expected address (a number), got 'zz'"},
      {"allocate t0 0x1g 1", "bad.trace:1: allocate: bad number '0x1g' for address (decimal or 0x-hex, at most 2^64-1)"},
      {"allocate t0 18446744073709551616 1", "bad.trace:1: allocate: bad number '18446744073709551616' for address (decimal or 0x-hex, at most 2^64-1)"},
      {"allocate t0 0x10000000000000000 1", "bad.trace:1: allocate: bad number '0x10000000000000000' for address (decimal or 0x-hex, at most 2^64-1)"},
      {"write t0 0 \"abc", "bad.trace:1: unterminated string"},
      {"write t0 0 \"abc\\\"", "bad.trace:1: unterminated string"},
      {"write t0 0 \"a\\qb\"", "bad.trace:1: unknown escape '\\q' in string"},
      {"write t0 0 \"a\\x4\"", "bad.trace:1: bad escape in string: \\x needs two hex digits"},
      {"write t0 0 \"ab\"cd", "bad.trace:1: trailing garbage 'cd' after string"},
      {"write t0 0 ab\"cd\"", "bad.trace:1: unexpected '\"' in 'ab\"cd\"'"},
      {"write t0 0 hex:abc", "bad.trace:1: write: odd number of hex digits in 'hex:abc'"},
      {"write t0 0 hex:zz", "bad.trace:1: write: bad hex digit in 'hex:zz'"},
      {"write t0 0 fill:0x100*1", "bad.trace:1: write: fill byte '0x100' larger than 0xff"},
      {"write t0 0 pat:1", "bad.trace:1: write: bad data 'pat:1' (pat:SEED*LEN)"},
      {"write t0 0 fill:1*0x4000001", "bad.trace:1: write: data longer than the trace limit of 64 MiB"},
      {"write t0 0 text", "bad.trace:1: write: bad data 'text' (\"text\", hex:.., fill:BYTE*LEN or pat:SEED*LEN)"},
      {"write t0 0", "bad.trace:1: write: missing data"},
      {"write t0 0 hex:00 cpu=x", "bad.trace:1: write: bad cpu number 'x'"},
      {"write t0 0 hex:00 cpu=1 cpu=1", "bad.trace:1: write: option 'cpu=' given twice"},
      {"allocate t0 0 0 cpu=1", "bad.trace:1: allocate: unknown option 'cpu=1'"},
      {"read t0 0 0x4000001", "bad.trace:1: read: size larger than the trace limit of 64 MiB"},
      {"protect t0 0 0 rw", "bad.trace:1: protect: bad protection 'rw' (three chars r w x or '-', e.g. rw-)"},
      {"protect t0 0 0 wr-", "bad.trace:1: protect: bad protection 'wr-' (three chars r w x or '-', e.g. rw-)"},
      {"protect t0 0 0 max", "bad.trace:1: protect: missing protection"},
      {"inherit t0 0 0 shared", "bad.trace:1: inherit: bad inheritance 'shared' (share, copy or none)"},
      {"object m0 0x1000 lazy persist", "bad.trace:1: object: bad copy strategy 'lazy' (none, call or delay)"},
      {"object m0 0x1000 delay keep", "bad.trace:1: object: bad persistence 'keep' (persist or nopersist)"},
      {"map t0 any 0x1000 m0 0 both", "bad.trace:1: map: expected share or copy, got 'both'"},
      {"map t0 any 0x1000 m0 0 share prot=rwz", "bad.trace:1: map: bad protection 'rwz' (three chars r w x or '-', e.g. rw-)"},
      {"map t0 any 0x1000 m0 0 share inherit=all", "bad.trace:1: map: bad inheritance 'all' (share, copy or none)"},
      {"map t0 any 0x1000 m0 0 share size=1", "bad.trace:1: map: unknown option 'size=1'"},
      {"pageout some", "bad.trace:1: pageout: expected page count (or all) (a number), got 'some'"},
      {"check\nconfig cpus=2", "bad.trace:2: config must come before the first op"},
      {"config\nconfig", "bad.trace:2: config given twice"},
      {"config cpus=0", "bad.trace:1: config: cpus must be a number in 1..16, got '0'"},
      {"config frames=8", "bad.trace:1: config: frames must be a number in 16..1048576, got '8'"},
      {"config tlb=", "bad.trace:1: config: tlb must be a number in 1..4096, got ''"},
      {"config memory=1", "bad.trace:1: config: unknown key 'memory=1' (frames=, cpus=, tlb=, cache=)"},
      {"config cpus=1 cpus=2", "bad.trace:1: config: key 'cpus=' given twice"},
      {"allocate t0 0 0 =>", "bad.trace:1: allocate: missing result after '=>'"},
      {"allocate t0 0 0 => KERN_OK", "bad.trace:1: allocate: unknown result code 'KERN_OK'"},
      {"allocate t0 0 0 => 0x10000", "bad.trace:1: allocate: '=> ADDRESS' only follows allocate any, map any or copyout"},
      {"allocate t0 0 0 => fault 0 KERN_SUCCESS", "bad.trace:1: allocate: '=> fault' only follows read or write"},
      {"read t0 0 1 => fault 0", "bad.trace:1: read: missing fault code"},
      {"read t0 0 1 => fault 0 oops", "bad.trace:1: read: unknown result code 'oops'"},
      {"write t0 0 hex:00 == hex:00", "bad.trace:1: write: '== DATA' only follows read or file"},
      {"read t0 0 1 ==", "bad.trace:1: read: missing data after '=='"},
      {"read t0 0 1 => KERN_SUCCESS == hex:00", "bad.trace:1: trailing garbage '=='"},
      {"\"check\"", "bad.trace:1: unknown op 'check'"},
      {"check\n\n\n  task t1 t2", "bad.trace:4: trailing garbage 't2'"},
  };
  for (const auto& [text, want] : cases) EXPECT_EQ(parse_error(text), want) << text;
}

// Lines already in canonical form: parse then print must give them back unchanged.
const char* const kCanonicalLines[] = {
    "task t1",
    "task t15",
    "allocate t0 0x10000 0x4000",
    "allocate t0 any 0x4000",
    "allocate t0 any 0x0 => 0x0",
    "allocate t2 any 0x1000 => 0x10000",
    "allocate t0 0xfffffffffffff000 0x2000 => KERN_INVALID_ARGUMENT",
    "deallocate t0 0x10000 0x1000",
    "deallocate t0 0x0 0xffffffffffffffff => KERN_SUCCESS",
    "protect t0 0x10000 0x2000 r--",
    "protect t0 0x10000 0x2000 max ---",
    "protect t0 0x10000 0x2000 max rwx => KERN_PROTECTION_FAILURE",
    "protect t0 0x10001 0x1 --x",
    "inherit t0 0x10000 0x2000 share",
    "inherit t0 0x10000 0x2000 copy",
    "inherit t0 0x10000 0x2000 none",
    "write t0 0x10004 \"text\"",
    "write t0 0x10004 \"a\\n\\t\\r\\0\\\\\\\"\\x01\\x7f\\xff # ~\"",
    "write t0 0x10004 \"\"",
    "write t0 0x10004 hex:",
    "write t0 0x10004 hex:00ff10 cpu=1",
    "write t0 0x10ffc fill:0xab*0x8 => fault 0x11000 KERN_INVALID_ADDRESS",
    "write t1 0x20000 pat:0x0*0x3000 cpu=3 => KERN_SUCCESS",
    "read t0 0x10000 0x8 == hex:0000000074657874",
    "read t0 0x10000 0x8 cpu=1 == \"12345678\" => KERN_SUCCESS",
    "read t0 0x10ffe 0x4 == hex:0102 => fault 0x11000 KERN_PROTECTION_FAILURE",
    "read t0 0x10000 0x0",
    "read t0 0x10000 0x1000 == fill:0x0*0x1000",
    "read t0 0x10000 0x1000 == pat:0x7*0x1000 => KERN_MEMORY_ERROR",
    "fork t0 t2",
    "fork t15 t0",
    "terminate t2",
    "vm_copy t0 0x10000 0x2000 0x20000",
    "vm_copy t0 0x10000 0x2000 0x11000 => KERN_SUCCESS",
    "vm_read t0 0x10000 0x2000 c1",
    "vm_read t0 0x10fff 0x2 c0 => KERN_INVALID_ADDRESS",
    "vm_write t1 0x30000 c1",
    "vm_write t1 0x30000 c1 => KERN_INVALID_ARGUMENT",
    "copyout t1 c1",
    "copyout t1 c1 => 0x10fff",
    "copyout t1 c1 => KERN_NO_SPACE",
    "discard c1",
    "object m0 0x8000 delay persist fill:0x11*0x8000",
    "object m1 0x1000 none nopersist",
    "object m2 0x0 call persist \"\"",
    "object m3 0x100000000 delay nopersist hex:01020304",
    "object m15 0x3000 call nopersist pat:0x33*0x2001",
    "map t0 0x40000 0x4000 m0 0x0 share",
    "map t0 any 0x4000 m0 0x1000 copy => 0x10000",
    "map t0 0x40000 0x4000 m0 0x0 share prot=r--",
    "map t0 0x40000 0x4000 m0 0x0 copy prot=--- max=r-x inherit=share => KERN_INVALID_ARGUMENT",
    "map t0 0x40000 0x4000 m0 0x0 share inherit=none",
    "map t0 0x40000 0x4000 m0 0x0 share max=rw-",
    "manager_write m0 0x1000 hex:ff",
    "manager_write m0 0x1000 fill:0x1*0x10 => KERN_INVALID_ARGUMENT",
    "file m0 0x0 0x4 == hex:11111111",
    "file m0 0x0 0x4 => KERN_INVALID_ARGUMENT",
    "file m0 0x7fff 0x2",
    "destroy m0",
    "destroy m0 => KERN_INVALID_ARGUMENT",
    "pageout 10",
    "pageout 0",
    "pageout 18446744073709551615",
    "pageout all",
    "check",
    "check => KERN_SUCCESS",
    "task t1 => KERN_SUCCESS",
};

TEST(TextRoundTrip, CanonicalLinesPrintBackUnchanged) {
  for (const char* line : kCanonicalLines) {
    Op op = parse1(line);
    EXPECT_EQ(print_op(op), line);
    EXPECT_EQ(canonical_op(op), op) << line;
  }
}

TEST(TextRoundTrip, NonCanonicalSpellingsPrintCanonically) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"allocate  t0\t65536   16384   ", "allocate t0 0x10000 0x4000"},
      {"read t0 0X10000 8 cpu=0", "read t0 0x10000 0x8"},
      {"write t0 0 hex:ABCD", "write t0 0x0 hex:abcd"},
      {"write t0 0 fill:17*4096", "write t0 0x0 fill:0x11*0x1000"},
      {"map t0 1 2 m0 0 copy prot=rw- max=rwx inherit=copy", "map t0 0x1 0x2 m0 0x0 copy"},
      {"pageout 0x10", "pageout 16"},
      {"fork t00 t01", "fork t0 t1"},
      {"write t0 0 \"\\x41\\x0a\"", "write t0 0x0 \"A\\n\""},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(print_op(parse1(in)), want) << in;
  Program p;
  ParseError e;
  ASSERT_TRUE(parse_trace("config cpus=2 frames=1024 tlb=8\ncheck\n", "x", &p, &e));
  EXPECT_EQ(print_program(p), "config tlb=8\ncheck\n");
}

// Random canonical ops of every kind, built directly (not through the parser), so the
// round trip covers values no hand-written line thought of.
Op random_op(std::mt19937_64& rng) {
  auto u = [&](uint64_t n) { return n == 0 ? rng() : rng() % n; };
  auto value = [&]() -> uint64_t {
    switch (u(4)) {
      case 0: return u(0x100000);
      case 1: return u(0);
      case 2: return UINT64_MAX - u(0x3000);
      default: return u(16) * kPageSize;
    }
  };
  auto data = [&]() {
    DataSpec d;
    d.form = static_cast<DataSpec::Form>(u(4));
    if (d.form == DataSpec::Form::Text || d.form == DataSpec::Form::Hex) {
      size_t n = u(20);
      for (size_t i = 0; i < n; i++) d.bytes.push_back(static_cast<uint8_t>(u(256)));
    } else {
      d.value = static_cast<uint8_t>(u(256));
      d.length = u(0x20000);
    }
    return d;
  };
  Op op;
  do op.kind = static_cast<OpKind>(u(kOpKindCount));
  while (!op_kind_exists(static_cast<unsigned>(op.kind)));
  op.task = static_cast<uint8_t>(u(16));
  op.task2 = static_cast<uint8_t>(u(16));
  op.copy = static_cast<uint8_t>(u(16));
  op.object = static_cast<uint8_t>(u(16));
  op.cpu = static_cast<uint8_t>(u(3) == 0 ? u(256) : 0);
  op.anywhere = u(2);
  op.set_max = u(2);
  op.share = u(2);
  op.persist = u(2);
  op.all = u(2);
  op.addr = value(), op.size = op.kind == OpKind::Read || op.kind == OpKind::File ? u(0x10000) : value();
  op.addr2 = value(), op.offset = value();
  op.prot = static_cast<vm_prot_t>(u(8));
  op.max_prot = static_cast<vm_prot_t>(u(8));
  op.inherit = static_cast<vm_inherit_t>(u(3));
  op.strategy = static_cast<CopyStrategy>(u(3));
  op.data = u(4) == 0 ? DataSpec{} : data();
  op.expect.has_bytes = u(2);
  op.expect.bytes = data();
  op.expect.result = static_cast<Expect::Result>(u(4));
  static const kern_return_t kCodes[] = {KERN_SUCCESS, KERN_INVALID_ADDRESS, KERN_PROTECTION_FAILURE,
                                         KERN_NO_SPACE, KERN_INVALID_ARGUMENT, KERN_FAILURE,
                                         KERN_RESOURCE_SHORTAGE, KERN_MEMORY_ERROR};
  op.expect.code = kCodes[u(8)];
  op.expect.addr = value();
  return canonical_op(op);
}

TEST(TextRoundTrip, RandomProgramsSurvivePrintParsePrint) {
  std::mt19937_64 rng(20261125);
  for (int round = 0; round < 300; round++) {
    Program p;
    p.has_config = round % 2;
    if (p.has_config) {
      p.config.frames = 16 + static_cast<unsigned>(rng() % 5000);
      p.config.cpus = 1 + static_cast<unsigned>(rng() % 16);
      p.config.tlb = 1 + static_cast<unsigned>(rng() % 64);
      p.config.cache = static_cast<unsigned>(rng() % 9);
    }
    for (int i = 0; i < 20; i++) p.ops.push_back(random_op(rng));
    std::string text = print_program(p);
    Program q;
    ParseError e;
    ASSERT_TRUE(parse_trace(text, "rt.trace", &q, &e)) << e.what() << "\n" << text;
    ASSERT_EQ(q.ops.size(), p.ops.size());
    for (size_t i = 0; i < p.ops.size(); i++)
      ASSERT_EQ(q.ops[i], p.ops[i]) << "op " << i << ": " << print_op(p.ops[i]) << " vs " << print_op(q.ops[i]);
    EXPECT_EQ(q.has_config, p.has_config);
    EXPECT_EQ(q.config, p.config);
    EXPECT_EQ(print_program(q), text);
  }
}

TEST(TextRoundTrip, CanonicalOpDropsWhatTheKindCannotCarry) {
  Op op;
  op.kind = OpKind::Write;
  op.size = 99;                        // write has no size
  op.expect.has_bytes = true;          // write cannot assert bytes
  op.expect.result = Expect::Result::Address;  // nor an address
  Op c = canonical_op(op);
  EXPECT_EQ(c.size, 0u);
  EXPECT_FALSE(c.expect.has_bytes);
  EXPECT_EQ(c.expect.result, Expect::Result::None);
  op.kind = OpKind::Allocate;
  op.anywhere = true;
  op.addr = 0x5000;
  EXPECT_EQ(canonical_op(op).addr, 0u);
  EXPECT_EQ(canonical_op(op).expect.result, Expect::Result::Address);
}

// What if a line is damaged anywhere? Mutated canonical lines either parse to something
// that prints and parses back identically, or fail with one error naming file and line.
TEST(TextParse, DamagedLinesFailCleanlyOrRoundTrip) {
  std::mt19937 rng(77);
  const std::string alphabet = " \t\"\\#=>x0123456789abcdefmtc:*-rw_KERN";
  size_t parsed = 0, failed = 0;
  for (int round = 0; round < 20000; round++) {
    std::string line = kCanonicalLines[rng() % std::size(kCanonicalLines)];
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < edits && !line.empty(); i++) {
      size_t at = rng() % line.size();
      switch (rng() % 3) {
        case 0: line[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: line.erase(at, 1); break;
        default: line.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
      }
    }
    std::string text = "check\n" + line + "\n";
    Program p;
    ParseError e;
    if (!parse_trace(text, "m.trace", &p, &e)) {
      failed++;
      ASSERT_EQ(e.what().rfind("m.trace:2: ", 0), 0u) << line << " -> " << e.what();
      ASSERT_GT(e.reason.size(), 0u);
      continue;
    }
    parsed++;
    std::string printed = print_program(p);
    Program q;
    ASSERT_TRUE(parse_trace(printed, "m2.trace", &q, &e)) << line << " -> " << printed << e.what();
    ASSERT_EQ(q.ops, p.ops) << line;
    for (const Op& op : p.ops) ASSERT_EQ(canonical_op(op), op) << line;
  }
  EXPECT_GT(parsed, 1000u);
  EXPECT_GT(failed, 1000u);
}

TEST(TextParse, ParseErrorWhatFormat) {
  ParseError e{"dir/x.trace", 12, "unknown op 'q'"};
  EXPECT_EQ(e.what(), "dir/x.trace:12: unknown op 'q'");
}

}  // namespace
}  // namespace vmfuzz
