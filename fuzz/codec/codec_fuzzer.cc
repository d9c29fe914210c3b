// codec_fuzzer.cc — libFuzzer target: does the operation language survive every round trip?
//
// Theory of operation
// -------------------
// The operation language has three forms (binary, ops, text) and every engine relies on
// moving between them without loss: a crash found on binary input is replayed and
// minimized as text, a hand-written trace is encoded into a corpus. This target checks,
// for any input bytes:
//   decoder_total   the decoder accepts the bytes and every op it returns passes
//                   NameState::check (names follow KERN_SUCCESS for every op);
//   round_trip      print -> parse gives the same ops and config, and
//                   encode -> decode (same result rule) gives the same ops again;
//   text_round_trip the bytes read as a text trace: parsing must not crash, and a trace
//                   that parses prints to text that parses to the same ops and prints
//                   identically.
// A broken oracle prints `ERROR: vmfuzz codec oracle NAME: detail` and aborts, so
// libFuzzer records the input; sanitizers catch the rest.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "harness/codec.h"
#include "harness/names.h"
#include "harness/oracles.h"
#include "harness/text.h"

namespace {

using namespace vmfuzz;

/// A finding of oracle Name (a row of harness/oracles.def for the Codec target).
template <OracleLiteral Name>
[[noreturn]] void finding(const std::string& detail) {
  static_assert(is_oracle_of(Name.text, OracleTarget::Codec), "not a codec oracle of harness/oracles.def");
  std::fprintf(stderr, "ERROR: vmfuzz codec oracle %s: %s\n", Name.text, detail.c_str());
  std::fflush(stderr);
  std::abort();
}

/// Decode with names following KERN_SUCCESS, checking every op is usable input.
Program decode_all_success(std::span<const uint8_t> bytes) {
  Decoder dec(bytes);
  Program p;
  p.config = dec.config();
  p.has_config = true;
  NameState names(dec.config());
  Op op;
  while (dec.next(names, &op)) {
    if (auto bad = names.check(op))
      finding<"decoder_total">("op " + std::to_string(p.ops.size()) + " '" + print_op(op) +
                                   "' is not usable input: " + *bad);
    names.apply(op, KERN_SUCCESS);
    p.ops.push_back(op);
    p.lines.push_back(0);
  }
  return p;
}

/// First index where two op lists differ, as a readable detail.
std::string first_difference(const Program& want, const Program& got) {
  size_t n = std::min(want.ops.size(), got.ops.size());
  for (size_t i = 0; i < n; i++)
    if (!(want.ops[i] == got.ops[i]))
      return "op " + std::to_string(i) + ": want '" + print_op(want.ops[i]) + "', got '" +
             print_op(got.ops[i]) + "'";
  return std::to_string(want.ops.size()) + " ops wanted, " + std::to_string(got.ops.size()) + " got";
}

void check_text_input(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Program t;
  ParseError err;
  if (!parse_trace(text, "input", &t, &err)) {
    if (err.line == 0 || err.reason.empty()) finding<"text_round_trip">("error without line: " + err.what());
    return;
  }
  std::string printed = print_program(t);
  Program t2;
  if (!parse_trace(printed, "printed", &t2, &err))
    finding<"text_round_trip">("printed trace does not parse: " + err.what());
  if (!(t2.ops == t.ops) || !(t2.config == t.config) || t2.has_config != t.has_config)
    finding<"text_round_trip">(first_difference(t, t2));
  if (print_program(t2) != printed) finding<"text_round_trip">("printing is not idempotent");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);

  // (1) binary -> ops
  Program p = decode_all_success(in);

  // (2) ops -> text -> ops
  std::string text = print_program(p);
  Program q;
  ParseError err;
  if (!parse_trace(text, "decoded", &q, &err))
    finding<"round_trip">("printed program does not parse: " + err.what());
  if (!(q.ops == p.ops) || !(q.config == p.config)) finding<"round_trip">("text: " + first_difference(p, q));

  // (3) ops -> binary -> ops
  std::vector<uint8_t> bytes = encode_program(q);
  Program r = decode_all_success(bytes);
  if (!(r.ops == p.ops) || !(r.config == p.config)) finding<"round_trip">("binary: " + first_difference(p, r));
  if (encode_program(r) != bytes) finding<"round_trip">("encoding is not a fixed point");

  // (4) the raw bytes as a text trace
  check_text_input(data, size);
  return 0;
}
