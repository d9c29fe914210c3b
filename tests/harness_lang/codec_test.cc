// codec_test.cc — is the binary decoder total, stable and the encoder's exact inverse?
#include <gtest/gtest.h>

#include <random>

#include "harness/lang/codec.h"
#include "harness/lang/text.h"

namespace vmfuzz {
namespace {

// A fixed result rule standing in for the model: vm_read fails when its size is odd
// (so handles are sometimes not bound), everything else succeeds.
kern_return_t odd_reads_fail(const Op& op) {
  return op.kind == OpKind::VmRead && (op.size & 1) ? KERN_INVALID_ADDRESS : KERN_SUCCESS;
}

std::string decode_text(const std::vector<uint8_t>& bytes, const ResultRule& rule = {}) {
  return print_program(decode_program(bytes, rule));
}

/// Decode `bytes` checking every contract of Decoder::next along the way.
Program decode_checked(const std::vector<uint8_t>& bytes, const ResultRule& rule) {
  Decoder dec(bytes);
  Program p;
  p.config = dec.config();
  p.has_config = true;
  NameState names(dec.config());
  Op op;
  size_t last_offset = dec.offset();
  while (dec.next(names, &op)) {
    EXPECT_GT(dec.offset(), last_offset);
    last_offset = dec.offset();
    auto bad = names.check(op);
    EXPECT_FALSE(bad) << print_op(op) << ": " << *bad;
    EXPECT_EQ(canonical_op(op), op) << print_op(op);
    EXPECT_EQ(op.expect, Expect{});
    EXPECT_LE(op.data.size(), kMaxCodecTransfer);
    if (op.kind == OpKind::Read || op.kind == OpKind::File) {
      EXPECT_LE(op.size, kMaxCodecTransfer);
    }
    if (op.kind == OpKind::Read || op.kind == OpKind::Write) {
      EXPECT_LT(op.cpu, dec.config().cpus);
    }
    names.apply(op, rule ? rule(op) : KERN_SUCCESS);
    p.ops.push_back(op);
    p.lines.push_back(0);
  }
  EXPECT_FALSE(dec.next(names, &op)) << "the end of input is for good";
  EXPECT_EQ(dec.offset(), bytes.size());
  EXPECT_GE(p.config.frames, 64u);
  EXPECT_LE(p.config.frames, 4096u);
  EXPECT_GE(p.config.cpus, 1u);
  EXPECT_LE(p.config.cpus, 4u);
  EXPECT_GE(p.config.tlb, 1u);
  EXPECT_LE(p.config.tlb, 64u);
  EXPECT_LE(p.config.cache, 8u);
  return p;
}

TEST(Codec, RandomBytesAlwaysDecodeToValidProgramsThatRoundTrip) {
  std::mt19937 rng(1125);
  size_t total_ops = 0, kinds_seen = 0;
  std::vector<unsigned> per_kind(kOpKindCount, 0);
  for (int round = 0; round < 3000; round++) {
    std::vector<uint8_t> bytes(rng() % 400);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    ResultRule rule = round % 2 ? ResultRule(odd_reads_fail) : ResultRule();
    Program p = decode_checked(bytes, rule);
    total_ops += p.ops.size();
    for (const Op& op : p.ops) per_kind[static_cast<unsigned>(op.kind)]++;

    // Text round trip.
    std::string text = print_program(p);
    Program q;
    ParseError e;
    ASSERT_TRUE(parse_trace(text, "dec.trace", &q, &e)) << e.what() << "\n" << text;
    ASSERT_EQ(q.ops, p.ops) << text;
    EXPECT_EQ(q.config, p.config);

    // Binary round trip, with the same result rule.
    std::vector<uint8_t> again = encode_program(p);
    Program r = decode_checked(again, rule);
    ASSERT_EQ(print_program(r), text);
    ASSERT_EQ(r.ops, p.ops);
    // Canonical encoding is a fixed point.
    EXPECT_EQ(encode_program(r), again);
  }
  for (unsigned n : per_kind) kinds_seen += n > 0;
  EXPECT_EQ(kinds_seen, kOpRowCount) << "every op kind (format 2's too) is reachable from random bytes";
  EXPECT_GT(total_ops, 3000u * 5);
}

TEST(Codec, HandWrittenProgramsRoundTripExactly) {
  const char* text =
      "config frames=64 cpus=4 tlb=1 cache=0\n"
      "allocate t0 0x10000 0x4000\n"
      "allocate t0 any 0x1000\n"
      "allocate t0 0x123456789abc 0x123\n"
      "allocate t0 0xfffffffffffff000 0x2000\n"
      "write t0 0x10ffe \"hello\\n\" cpu=3\n"
      "write t0 0x7fffffffe000 hex:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
      "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0011\n"
      "write t0 0x10000 fill:0x0*0x10000\n"
      "write t0 0x10000 pat:0xff*0x1001\n"
      "write t0 0x10000 \"\"\n"
      "read t0 0x10000 0x10000 cpu=2\n"
      "read t0 0x10001 0x0\n"
      "protect t0 0x10000 0x2000 max r-x\n"
      "protect t0 0x10000 0x101000 ---\n"
      "inherit t0 0x10000 0x200000 share\n"
      "inherit t0 0x0 0xffffffffffffffff none\n"
      "fork t0 t1\n"
      "task t7\n"
      "vm_copy t1 0x10000 0x2000 0x20000\n"
      "vm_read t1 0x10fff 0x1001 c0\n"
      "vm_read t1 0x10000 0x1000 c5\n"
      "copyout t0 c5\n"
      "vm_write t1 0x30000 c0\n"
      "object m0 0x8000 delay persist fill:0x11*0x8000\n"
      "object m9 0x100000000 none nopersist\n"
      "object m3 0x1 call nopersist \"x\"\n"
      "map t0 0x40000 0x4000 m0 0x0 share\n"
      "map t1 any 0x4000 m9 0x7000 copy prot=r-- max=r-- inherit=share\n"
      "map t1 0x40000 0x1000 m9 0x123456789000 copy\n"
      "map t1 0x40000 0x1000 m9 0x11 copy\n"
      "manager_write m0 0x1000 hex:ff\n"
      "file m0 0x0 0x4\n"
      "destroy m0\n"
      "pageout 10\n"
      "pageout 254\n"
      "pageout 300\n"
      "pageout all\n"
      "terminate t1\n"
      "check\n";
  std::string src = text;
  Program p;
  ParseError e;
  ASSERT_TRUE(parse_trace(src, "hand.trace", &p, &e)) << e.what();
  Program d = decode_checked(encode_program(p), {});
  EXPECT_EQ(d.config, p.config);
  ASSERT_EQ(d.ops.size(), p.ops.size());
  for (size_t i = 0; i < p.ops.size(); i++) EXPECT_EQ(d.ops[i], p.ops[i]) << print_op(p.ops[i]);
  EXPECT_EQ(print_program(d), src);
}

TEST(Codec, AssertionsAreNotEncoded) {
  Program p;
  ParseError e;
  ASSERT_TRUE(parse_trace("read t0 0x10000 0x4 == hex:00000000 => KERN_SUCCESS\n", "a", &p, &e));
  Program d = decode_program(encode_program(p));
  ASSERT_EQ(d.ops.size(), 1u);
  EXPECT_EQ(print_op(d.ops[0]), "read t0 0x10000 0x4");
}

// Golden inputs: their meaning is part of format version 1 and must never change.
TEST(CodecGolden, Version1MeaningIsStable) {
  const std::vector<uint8_t> g1 = {
      0x01, 0x00, 0x01, 0x0f, 0x04,                                // v1, frames=256 cpus=2 tlb=16 cache=4
      0x01, 0x00, 0x00, 0x00, 0x30,                                // allocate t0 window p0, 4 pages
      0x05, 0x10, 0x00, 0xd1, 0x04, 0x00, 0x07, 0x03, 't', 'e', 'x', 't',  // write cpu=1, offset 4
      0x07, 0x00, 0x00,                                            // fork t0 -> first free (t1)
      0x0a, 0x01, 0x09, 0x32, 0x0a, 0x10, 0x03,                    // vm_read far[2]+3p, 16 bytes
      0x0b, 0x05, 0x0b, 0x07, 0x00,                                // vm_write t5->t0, edge[7], c0->c3
      0x0d,                                                        // discard: no handle, skipped
      0x26,                                                        // 38 % 21 = file: no object, skipped
      0x0e, 0x02, 0x0d, 0x07, 0x0e, 0x03, 0x2a, 0xc1,              // object m2 1 GiB delay persist pat
      0x0f, 0x01, 0x0e, 0x10, 0x00, 0x01, 0x03, 0x8d,              // map any, m0->m2, options
      0x13, 0xff,                                                  // pageout all
      0x14,                                                        // check
      0x03, 0x00, 0x0d, 0x00, 0x50, 0x34, 0x12, 0, 0, 0, 0,        // protect raw addr,
      0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x09,  //   raw size, max r--
      0x06, 0x00, 0xc0, 0x0f, 0x0f, 0, 0, 0, 0, 1, 0, 0, 0,        // read window[12]+15p, 4 GiB folded
      0x02, 0x00, 0x0d, 0x01, 0x02, 0x03,                          // deallocate cut short: ends
  };
  EXPECT_EQ(decode_text(g1),
            "config frames=256\n"
            "allocate t0 0x10000 0x4000\n"
            "write t0 0x11004 \"text\" cpu=1\n"
            "fork t0 t1\n"
            "vm_read t1 0x40003000 0x10 c3\n"
            "vm_write t0 0x7ffffffff000 c3\n"
            "object m2 0x40000000 delay persist pat:0x2a*0x2000\n"
            "map t1 any 0x2000 m2 0x1000 share prot=r-x max=r-- inherit=none\n"
            "pageout all\n"
            "check\n"
            "protect t0 0x12345000 0xffffffffffffffff max r--\n"
            "read t0 0x80000007000 0x10000\n");

  // A foreign version byte decodes as version 1 and is reported; a short header keeps
  // the defaults for the missing bytes.
  const std::vector<uint8_t> g2 = {0x7f, 0x02};
  Decoder d2(g2);
  EXPECT_EQ(d2.version(), 0x7f);
  EXPECT_EQ(decode_text(g2), "config frames=64\n");
  EXPECT_EQ(decode_text({}), "config\n");
  EXPECT_EQ(Decoder({}).version(), 1);  // an empty input is format 1

  const std::vector<uint8_t> g3 = {
      0x01, 0x04, 0x03, 0x3f, 0x08,      // frames=1024 cpus=4 tlb=64 cache=8
      0x15, 0x00,                        // 21 % 21 = task; t0 live -> t1
      0x2a, 0x0f,                        // 42 % 21 = task t15
      0x08, 0x03,                        // terminate t3 -> next live t15
      0x0c,                              // copyout: no handle, skipped
      0x1c, 0x01, 0xf1,                  // 28 % 21 = fork t1, child slot 1 live -> t2
      0x13, 0x0a,                        // pageout 10
      0x13, 0xfe, 0x00, 0x01, 0, 0, 0, 0, 0, 0,  // pageout 256 (raw)
      0x05, 0x32, 0x0b, 0x0e, 0x00, 0xab, 0xf0, 0xff, 0xff, 0xff,  // write fill, u24 folded
      0x11,                              // file: no object, skipped; then the end
  };
  EXPECT_EQ(decode_text(g3),
            "config cpus=4 tlb=64 cache=8\n"
            "task t1\n"
            "task t15\n"
            "terminate t15\n"
            "fork t1 t2\n"
            "pageout 10\n"
            "pageout 256\n"
            "write t2 0xffffffffffffffff fill:0xab*0xff00 cpu=3\n");

  // A literal running past the end of the input ends the program before the op.
  const std::vector<uint8_t> g4 = {0x01, 0x00, 0x01, 0x0f, 0x04, 0x05, 0x00, 0x00, 0x00, 0x06, 0x09, 1, 2, 3};
  EXPECT_EQ(decode_text(g4), "config frames=256\n");
}

TEST(CodecGolden, Version2AddsDeviceAndKeepsEverythingElse) {
  // The same ops after a version byte 1 and 2: kind bytes below 21 mean the same op;
  // 21 and 43 are `task` in format 1 (21 % 21, 43 % 21 = 1: allocate) and `device` in 2.
  const std::vector<uint8_t> body = {
      0x15, 0x03, 0x12, 0x01, 0x00, 0x41, 0x02,  // v1: 21 % 21 = task t3, then other ops
  };
  std::vector<uint8_t> v2 = {0x02, 0x00, 0x01, 0x0f, 0x04};
  v2.insert(v2.end(), {0x15, 0x03, 0x12, 0x01, 0x00, 0x41, 0xc1});  // device m3 2 pages fill
  v2.insert(v2.end(), {0x2b, 0x00, 0x0a, 0xff, 0x00});              // 43 % 22: device m0 0xff
  v2.insert(v2.end(), {0x2b, 0x00, 0x0f, 0, 0, 0x20, 0, 0, 0, 0, 0, 0x00});  // 2 MiB folded
  v2.insert(v2.end(), {0x0f, 0x00, 0x00, 0x00, 0x10, 0x03, 0x00, 0x01});  // map t0 ... m3 share
  EXPECT_EQ(decode_text(v2),
            "config frames=256\n"
            "device m3 0x2000 fill:0x41*0x2000\n"
            "device m0 0xff\n"
            "device m1 0xffe1\n"  // 0x200000 % (kMaxDeviceSize + 1)
            "map t0 0x10000 0x2000 m3 0x0 share\n");
  std::vector<uint8_t> v1 = {0x01, 0x00, 0x01, 0x0f, 0x04};
  v1.insert(v1.end(), body.begin(), body.end());
  EXPECT_EQ(decode_text(v1).substr(0, 26), "config frames=256\ntask t3\n");
  // Encoding: format 1 unless the program has a device; both round-trip.
  Program p = decode_program(v2);
  std::vector<uint8_t> again = encode_program(p);
  EXPECT_EQ(again[0], 2);
  EXPECT_EQ(decode_program(again).ops, p.ops);
  p.ops.erase(p.ops.begin(), p.ops.begin() + 3);
  p.ops[0].object = 3;
  EXPECT_EQ(encode_program(p)[0], 1);
}

TEST(Codec, ObjectContentsAreCutToTheObject) {
  // object m0, size 255 bytes (one page rounded), text literal of 64 KiB... cut to 4096.
  std::vector<uint8_t> in = {0x01, 0x00, 0x01, 0x0f, 0x04, 0x0e, 0x00, 0x0a, 0xff, 0x08, 0x00, 0x07, 0xcf};
  Program p = decode_program(in);
  ASSERT_EQ(p.ops.size(), 1u);
  EXPECT_EQ(print_op(p.ops[0]), "object m0 0xff none nopersist fill:0x7*0x1000");
  // A size whose rounding would wrap is folded to 2^64 - 4096.
  in = {0x01, 0x00, 0x01, 0x0f, 0x04, 0x0e, 0x00, 0x0d, 0x0d, 0x01};
  p = decode_program(in);
  ASSERT_EQ(p.ops.size(), 1u);
  EXPECT_EQ(print_op(p.ops[0]), "object m0 0xfffffffffffff000 call nopersist");
}

TEST(Codec, FullSlotsTurnCreationsIntoSkips) {
  // 15 `task` ops fill t1..t15; a 16th and a fork are skipped, the check after them is kept.
  std::vector<uint8_t> in = {0x01, 0x00, 0x01, 0x0f, 0x04};
  for (int i = 0; i < 16; i++) in.insert(in.end(), {0x00, 0x00});
  in.insert(in.end(), {0x07, 0x14});  // fork (skipped: no free task), check
  Program p = decode_program(in);
  ASSERT_EQ(p.ops.size(), 16u);
  EXPECT_EQ(print_op(p.ops[14]), "task t15");
  // The 16th task's kind byte is skipped; its argument byte 0x00 then reads as a kind
  // byte (task, skipped again); fork is skipped; check remains.
  EXPECT_EQ(print_op(p.ops[15]), "check");
}

TEST(Codec, ConfigEncodingFoldsToTheNearestRepresentable) {
  Program p;
  p.config.frames = 1000;
  p.config.cpus = 9;
  p.config.tlb = 100;
  p.config.cache = 20;
  Program d = decode_program(encode_program(p));
  EXPECT_EQ(d.config.frames, 1024u);
  EXPECT_EQ(d.config.cpus, 4u);
  EXPECT_EQ(d.config.tlb, 64u);
  EXPECT_EQ(d.config.cache, 8u);
  for (unsigned f : kFramesTable) {
    p.config = SystemConfig{};
    p.config.frames = f;
    EXPECT_EQ(decode_program(encode_program(p)).config.frames, f);
  }
}

}  // namespace
}  // namespace vmfuzz
