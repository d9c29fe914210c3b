// language.cc — properties of the operation language itself: the text form and the
// binary form each round-trip (docs/language.md; harness/lang/text.h, harness/lang/codec.h).
//
// Theory of operation
// -------------------
// Text: any canonical program — every op kind with arbitrary field values (any 64-bit
// address, size and offset; every data form, with bytes that need escapes; every
// assertion the kind can carry) and any valid `config` — prints to a trace that parses
// back to the same ops and configuration, and printing that again gives the same text.
// The generator makes raw ops and canonicalizes them (canonical_op), so it covers exactly
// the canonical programs text.h promises to round-trip.
//
// Binary: a program valid under a run (names drawn with the same state machine as the
// differential properties, with every op kind enabled) whose transfers fit the codec and
// whose configuration is representable encodes to bytes that decode (following names
// with a reference model) to the same ops and configuration. The decoder is also total:
// arbitrary bytes decode, and the program decoded prints and parses back to itself.
#include "harness/lang/codec.h"
#include "harness/lang/text.h"
#include "props/support/prop_support.h"

namespace vmfuzz::props {
namespace {

namespace gen = rc::gen;

rc::Gen<uint64_t> any_number() {
  return gen::weightedOneOf<uint64_t>({
      {3, gen::map(gen::inRange<uint64_t>(0, 64), [](uint64_t p) { return kWindow + p * kPageSize; })},
      {2, gen::inRange<uint64_t>(0, 0x100000)},
      {2, gen::arbitrary<uint64_t>()},
      {1, gen::element<uint64_t>(0, ~uint64_t{0}, kUserMax, uint64_t{1} << 63)},
  });
}

rc::Gen<DataSpec> any_data() {
  auto bytes = gen::container<std::vector<uint8_t>>(gen::arbitrary<uint8_t>());
  return gen::oneOf(
      gen::map(bytes, [](std::vector<uint8_t> b) {
        DataSpec d;
        d.form = DataSpec::Form::Hex, d.bytes = std::move(b);
        return d;
      }),
      gen::map(gen::nonEmpty(bytes), [](std::vector<uint8_t> b) {
        DataSpec d;
        d.form = DataSpec::Form::Text, d.bytes = std::move(b);
        return d;
      }),
      gen::apply(
          [](bool fill, uint8_t v, uint64_t len) {
            DataSpec d;
            d.form = fill ? DataSpec::Form::Fill : DataSpec::Form::Pat, d.value = v, d.length = len;
            return d;
          },
          gen::arbitrary<bool>(), gen::arbitrary<uint8_t>(), gen::inRange<uint64_t>(0, kMaxTraceTransfer + 1)));
}

rc::Gen<kern_return_t> any_code() {
  return gen::element(KERN_SUCCESS, KERN_INVALID_ADDRESS, KERN_PROTECTION_FAILURE, KERN_NO_SPACE,
                      KERN_INVALID_ARGUMENT, KERN_RESOURCE_SHORTAGE, KERN_MEMORY_ERROR);
}

// A raw op: every field drawn (names and cpus in range, transfers within the text
// limits), then reduced to what its kind uses.
rc::Gen<Op> any_op() {
  return gen::exec([] {
    Op op;
    op.kind = OpKind(*gen::suchThat(gen::inRange(0u, kOpKindCount), [](unsigned k) { return op_kind_exists(k); }));
    op.task = *gen::inRange<uint8_t>(0, kMaxNames);
    op.task2 = *gen::inRange<uint8_t>(0, kMaxNames);
    op.copy = *gen::inRange<uint8_t>(0, kMaxNames);
    op.object = *gen::inRange<uint8_t>(0, kMaxNames);
    op.cpu = *gen::inRange<uint8_t>(0, 16);
    op.anywhere = *gen::arbitrary<bool>();
    op.set_max = *gen::arbitrary<bool>();
    op.share = *gen::arbitrary<bool>();
    op.persist = *gen::arbitrary<bool>();
    op.all = *gen::arbitrary<bool>();
    op.addr = *any_number();
    op.size = *any_number();
    if (op.kind == OpKind::Read || op.kind == OpKind::File) op.size %= kMaxTraceTransfer + 1;
    op.addr2 = *any_number();
    op.offset = *any_number();
    op.prot = *gen::inRange<uint8_t>(0, 8);
    op.max_prot = *gen::inRange<uint8_t>(0, 8);
    op.inherit = *gen::element(vm_inherit_t::Share, vm_inherit_t::Copy, vm_inherit_t::None);
    op.strategy = *gen::element(CopyStrategy::None, CopyStrategy::Call, CopyStrategy::Delay);
    op.data = *any_data();
    if (*gen::arbitrary<bool>()) {
      op.expect.has_bytes = *gen::arbitrary<bool>();
      if (op.expect.has_bytes) op.expect.bytes = *any_data();
      op.expect.result = *gen::element(Expect::Result::None, Expect::Result::Code, Expect::Result::Fault,
                                       Expect::Result::Address);
      op.expect.code = *any_code();
      op.expect.addr = *any_number();
    }
    return canonical_op(op);
  });
}

VMFUZZ_PROP(TextForm, PrintParseIdentity, 1000, ()) {
  Program p;
  p.has_config = *gen::arbitrary<bool>();
  if (p.has_config) {
    p.config.frames = *gen::inRange(16u, 1048577u);
    p.config.cpus = *gen::inRange(1u, 17u);
    p.config.tlb = *gen::inRange(1u, 4097u);
    p.config.cache = *gen::inRange(0u, 4097u);
  }
  p.ops = *gen::container<std::vector<Op>>(any_op());
  const std::string text = print_program(p);
  Program q;
  ParseError err;
  if (!parse_trace(text, "generated", &q, &err)) RC_FAIL("the printed program does not parse: " + err.what() + "\n" + text);
  RC_ASSERT(q.has_config == p.has_config);
  RC_ASSERT(q.config == p.config);
  RC_ASSERT(q.ops.size() == p.ops.size());
  for (size_t i = 0; i < p.ops.size(); i++)
    if (!(q.ops[i] == p.ops[i])) RC_FAIL("op " + std::to_string(i) + " changed: " + print_op(p.ops[i]) + " -> " + print_op(q.ops[i]));
  RC_ASSERT(print_program(q) == text);
  RC_CLASSIFY(p.ops.size() >= 20, "20+ ops");
}

// A configuration the codec represents exactly.
rc::Gen<SystemConfig> codec_config() {
  return gen::apply(
      [](unsigned f, unsigned cpus, unsigned tlb, unsigned cache) {
        SystemConfig c;
        c.frames = kFramesTable[f], c.cpus = cpus, c.tlb = tlb, c.cache = cache;
        return c;
      },
      gen::inRange(0u, 16u), gen::inRange(1u, 5u), gen::inRange(1u, 65u), gen::inRange(0u, 9u));
}

VMFUZZ_PROP(BinaryForm, EncodeDecodeSameOps, 1000, ()) {
  Program p;
  p.config = *codec_config();
  p.has_config = true;
  OpState s(p.config, *gen::element(Bias::mixed(), Bias::copies(), Bias::objects()));
  p.ops = ops_of(*rc::state::gen::commands(s, &gen_command));
  std::vector<uint8_t> bytes = encode_program(p);
  harness::Subject scratch = harness::make_model_subject(p.config);
  Program q = harness::decode_with_model(bytes, *scratch.system);
  RC_ASSERT(q.config == p.config);
  if (q.ops.size() != p.ops.size())
    RC_FAIL("decoded " + std::to_string(q.ops.size()) + " ops, encoded " + std::to_string(p.ops.size()) + ":\n" +
            print_program(p) + "decoded:\n" + print_program(q));
  for (size_t i = 0; i < p.ops.size(); i++)
    if (!(q.ops[i] == p.ops[i])) RC_FAIL("op " + std::to_string(i) + " changed: " + print_op(p.ops[i]) + " -> " + print_op(q.ops[i]));
  RC_CLASSIFY(p.ops.size() >= 30, "30+ ops");
}

VMFUZZ_PROP(BinaryForm, AnyBytesDecodeToAPrintableProgram, 1000, ()) {
  // Inputs of up to a few hundred bytes: a few dozen ops after the config bytes.
  const auto bytes = *gen::scale(4.0, gen::arbitrary<std::vector<uint8_t>>());
  harness::Subject scratch = harness::make_model_subject(SystemConfig{});
  Program p = harness::decode_with_model(bytes, *scratch.system);
  for (const Op& op : p.ops) RC_ASSERT(canonical_op(op) == op);
  const std::string text = print_program(p);
  Program q;
  ParseError err;
  if (!parse_trace(text, "decoded", &q, &err)) RC_FAIL("the decoded program does not parse: " + err.what() + "\n" + text);
  RC_ASSERT(q.ops == p.ops);
  RC_ASSERT(q.config == p.config);
  RC_CLASSIFY(p.ops.size() >= 20, "20+ ops");
}

}  // namespace
}  // namespace vmfuzz::props
