// op_table_test.cc — the op table walked row by row, slot by slot.
//
// For every op of vocab/vmfuzz/ops.def, ops are made with each slot drawn from its
// shapes (harness/lang/op_shapes.h: what the vm_diff mutator inserts), many times over. Each
// must print and parse back to itself, with every assertion its row allows; encode and
// decode back to itself under a liveness in which its names are usable; and be named by
// the vm_diff dictionary, whose every entry must be the encoding of the trace line above it.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include "harness/lang/codec.h"
#include "harness/lang/names.h"
#include "harness/lang/op_shapes.h"
#include "harness/lang/op_table.h"
#include "harness/lang/text.h"

namespace vmfuzz {
namespace {

/// A NameState in which `op`'s names are usable: the names it uses exist, those it makes
/// are free (the codec keeps the slots it is given when they are usable).
Op named(OpKind k, uint8_t task, uint8_t copy = 0, uint8_t object = 0) {
  Op o;
  o.kind = k, o.task = task, o.copy = copy, o.object = object;
  return o;
}

NameState liveness_for(const Op& op, const SystemConfig& cfg) {
  NameState n(cfg);
  auto run = [&n](const Op& o) { n.apply(o, KERN_SUCCESS); };
  for (Slot s : op_spec(op.kind).slots()) {
    switch (s) {
      case Slot::Task:
      case Slot::EndTask:
      case Slot::TaskCpu:
        if (!n.task_live(op.task)) run(named(OpKind::Task, op.task));
        break;
      case Slot::Copy:
        if (!n.task_live(0)) run(named(OpKind::Task, 0));
        run(named(OpKind::VmRead, 0, op.copy));
        break;
      case Slot::Object:
        run(named(OpKind::Object, 0, 0, op.object));
        break;
      case Slot::NewTask:
        if (op.task == 0) {  // t0 is live at the start: end it so that it is free
          run(named(OpKind::Task, 1));
          run(named(OpKind::Terminate, 0));
        }
        break;
      default:
        break;
    }
  }
  return n;
}

/// The assertions op's row allows, added to a copy of op.
std::vector<Op> with_assertions(const Op& op) {
  std::vector<Op> out{op};
  Op c = op;
  c.expect.result = Expect::Result::Code;
  c.expect.code = KERN_NO_SPACE;
  out.push_back(c);
  if (op_asserts_bytes(op.kind)) {
    Op b = op;
    b.expect.has_bytes = true;
    b.expect.bytes.form = DataSpec::Form::Hex;
    b.expect.bytes.bytes = {0x00, 0x7f, 0xff};
    out.push_back(b);
  }
  if (op_asserts_fault(op.kind)) {
    Op f = op;
    f.expect.result = Expect::Result::Fault;
    f.expect.addr = 0x11000;
    f.expect.code = KERN_PROTECTION_FAILURE;
    out.push_back(f);
  }
  if (op_returns_address(op)) {
    Op a = op;
    a.expect.result = Expect::Result::Address;
    a.expect.addr = 0x20000;
    out.push_back(a);
  }
  return out;
}

TEST(OpTable, RowsAreNumberedAndNamedOnce) {
  std::set<std::string> names;
  unsigned i = 0;
  for (const OpSpec& s : op_table()) {
    while (!op_kind_exists(i)) i++;  // a number with no row (31 in format 6)
    EXPECT_EQ(s.number, i) << s.name;
    EXPECT_EQ(unsigned(s.kind), i) << s.name;
    EXPECT_TRUE(names.insert(s.name).second) << s.name << " twice";
    EXPECT_STREQ(op_kind_name(s.kind), s.name);
    EXPECT_GE(s.format, 1u);
    EXPECT_LE(s.format, kFormatVersion);
    i++;
  }
  EXPECT_EQ(i, kOpKindCount);
}

TEST(OpTable, EveryOpAndSlotPrintsThenParsesToItself) {
  std::mt19937_64 rng(1);
  Pick pick = [&rng](uint64_t n) { return rng() % n; };
  for (const OpSpec& spec : op_table()) {
    for (int round = 0; round < 300; round++) {
      Op op = shaped_op(spec.kind, pick);
      ASSERT_EQ(canonical_op(op), op) << spec.name << ": shaped op not canonical: " << print_op(op);
      for (const Op& a : with_assertions(op)) {
        std::string line = print_op(a);
        Op back;
        std::string reason;
        ASSERT_TRUE(parse_op_line(line, &back, &reason)) << spec.name << ": '" << line << "': " << reason;
        EXPECT_EQ(back, a) << spec.name << ": '" << line << "' parsed back as '" << print_op(back) << "'";
        EXPECT_EQ(print_op(back), line);
      }
    }
  }
}

TEST(OpTable, EveryOpAndSlotEncodesThenDecodesToItself) {
  std::mt19937_64 rng(2);
  Pick pick = [&rng](uint64_t n) { return rng() % n; };
  SystemConfig cfg;  // cpus 2: cpu=1 is representable
  cfg.frames = kFramesTable[0];
  cfg.cpus = 2, cfg.tlb = 16, cfg.cache = 4;
  for (const OpSpec& spec : op_table()) {
    unsigned decoded = 0;
    for (int round = 0; round < 300; round++) {
      Op op = shaped_op(spec.kind, pick);
      NameState names = liveness_for(op, cfg);
      if (names.check(op)) continue;  // e.g. a data longer than its object: not usable input
      Program p;
      p.config = cfg;
      p.has_config = true;
      p.ops = {op};
      std::vector<uint8_t> bytes = encode_program(p);
      EXPECT_EQ(bytes[0], spec.format) << spec.name;
      Decoder dec(bytes);
      Op back;
      ASSERT_TRUE(dec.next(names, &back)) << spec.name << ": " << print_op(op);
      // The codec folds transfers to kMaxCodecTransfer; shaped transfers are within it.
      EXPECT_EQ(back, op) << spec.name << ": '" << print_op(op) << "' decoded as '" << print_op(back) << "'";
      EXPECT_FALSE(dec.next(names, &back)) << spec.name << ": bytes left after the op";
      decoded++;
    }
    EXPECT_GT(decoded, 100u) << spec.name << ": too few shaped ops were usable to judge the codec";
  }
}

/// The op entries of vm_diff's dictionary: `# trace line[, then trace line...]` then
/// `opN="bytes"` (other keys, such as the version byte `v2`, are not ops).
std::vector<std::pair<std::string, std::string>> dictionary_entries() {
  std::ifstream in(std::string(VMFUZZ_SOURCE_DIR) + "/fuzz/vm_diff/vm_diff.dict");
  std::vector<std::pair<std::string, std::string>> out;
  std::string line, comment;
  while (std::getline(in, line)) {
    if (line.rfind("# ", 0) == 0) {
      comment = line.substr(2);
    } else if (size_t q = line.find("=\""); q != std::string::npos && line.back() == '"') {
      std::string esc = line.substr(q + 2, line.size() - q - 3), bytes;
      for (size_t i = 0; i < esc.size(); i++) {
        if (esc[i] == '\\' && i + 3 < esc.size() + 1 && esc[i + 1] == 'x') {
          bytes.push_back(char(std::stoi(esc.substr(i + 2, 2), nullptr, 16)));
          i += 3;
        } else {
          bytes.push_back(esc[i]);
        }
      }
      if (line.rfind("op", 0) == 0) out.push_back({comment, bytes});
      comment.clear();
    }
  }
  return out;
}

TEST(OpTable, TheDictionaryNamesEveryOpAndEachEntryIsItsLine) {
  auto entries = dictionary_entries();
  ASSERT_FALSE(entries.empty());
  std::set<OpKind> named;
  for (const auto& [comment, bytes] : entries) {
    Program p;
    for (size_t start = 0; start <= comment.size();) {
      size_t end = comment.find(", then ", start);
      std::string text = comment.substr(start, end == std::string::npos ? std::string::npos : end - start);
      Op op;
      std::string reason;
      ASSERT_TRUE(parse_op_line(text, &op, &reason)) << "vm_diff.dict: entry without its trace line: '" << comment
                                                     << "': " << reason;
      named.insert(op.kind);
      p.ops.push_back(op);
      start = end == std::string::npos ? comment.size() + 1 : end + 7;
    }
    std::vector<uint8_t> enc = encode_program(p);
    std::string op_bytes(enc.begin() + 5, enc.end());  // after the version and config bytes
    EXPECT_EQ(op_bytes, bytes) << "vm_diff.dict: the entry under '" << comment << "' is not its encoding";
  }
  for (const OpSpec& spec : op_table())
    EXPECT_TRUE(named.count(spec.kind)) << "vm_diff.dict has no entry for '" << spec.name << "'";
}

TEST(OpTable, TheMutatorMakesEveryOpUsable) {
  // The mutator's table-driven insertion is shaped_op; after the decoder remaps names,
  // every kind must come out as itself given the names it needs.
  std::mt19937_64 rng(3);
  Pick pick = [&rng](uint64_t n) { return rng() % n; };
  SystemConfig cfg;
  for (const OpSpec& spec : op_table()) {
    Op op = shaped_op(spec.kind, pick);
    Program p;
    p.config = cfg;
    p.ops = {op};
    std::vector<uint8_t> bytes = encode_program(p);
    Decoder dec(bytes);
    Op back;
    ASSERT_TRUE(dec.next(liveness_for(op, cfg), &back)) << spec.name;
    EXPECT_EQ(back.kind, spec.kind) << spec.name;
  }
}

}  // namespace
}  // namespace vmfuzz
