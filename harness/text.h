// text.h — the text trace form of the operation language (docs/language.md, normative).
//
// Theory of operation
// -------------------
// A trace is lines of `op args... [== DATA] [=> RESULT]`; `#` outside a string starts a
// comment; blank lines are ignored. The parser reads one line at a time into a token list
// (bare words, and quoted strings with the escapes \n \t \r \0 \\ \" \xHH), then reads the
// op's arguments in the order of the op's row in vocab/vmfuzz/ops.def (harness/op_table.h), then its options (`cpu=N` on read and
// write; `prot= max= inherit=` on map), then its assertions. Every syntax error is one
// ParseError naming the file, the line and the reason; nothing is half-parsed.
//
// The parser checks syntax only. Whether a name may be used at that point (t3 exists, c1
// is not yet consumed, cpu=N is configured, an object's contents fit) depends on the
// results of earlier ops and is decided by NameState::check (names.h) when the op runs.
//
// Grammar of the values (all numbers are decimal or 0x-hex, unsigned 64-bit):
//   ADDR, SIZE, OFFSET, N   number               PROT   three chars: [r-][w-][x-]
//   t0..t15  c0..c15  m0..m15                     any    (allocate, map: anywhere)
//   DATA   "text" | hex:HEXDIGITS (even count) | fill:BYTE*LEN | pat:SEED*LEN
//   RESULT KERN_NAME | fault ADDR KERN_NAME | ADDR   (the last: allocate any, map any,
//          copyout only; `fault` on read and write only; `== DATA` on read and file only)
//   config [frames=N] [cpus=N] [tlb=N] [cache=N]  (once, before the first op)
// Limits (decisions of ours; docs/language.md §Limits): every DATA and the size of
// a read or file is at most kMaxTraceTransfer bytes, so no trace can make a tool allocate
// without bound; config values: frames 16..1048576, cpus 1..16, tlb 1..4096, cache 0..4096.
//
// Printing is canonical: addresses, sizes, offsets, data lengths and fill/pat bytes in
// lowercase 0x-hex, counts (pageout N, cpu=N, config values) in decimal, options only
// when they differ from their default (cpu=0, prot=rw-, max=rwx, inherit=copy omitted),
// `config` keys only when they differ from SystemConfig{}. For every canonical Program p:
// print(parse(print(p))) == print(p) and parse(print(p)).ops == p.ops.
#pragma once

#include <string>
#include <string_view>

#include "harness/program.h"
#include "vmfuzz/vocab.h"

namespace vmfuzz {

/// Largest DATA length and largest read/file size a text trace may ask for (64 MiB).
inline constexpr uint64_t kMaxTraceTransfer = uint64_t{64} << 20;

/// Parse a whole trace.
///
/// Purpose:    Turn the text of a trace into a Program (ops, their source lines, config).
/// Conditions: entry: `out` and `err` non-null. never: checks name liveness (NameState).
/// Results:    true and *out filled (out->source = file); or false and *err holding the
///             first error (file, 1-based line, reason). *out is unspecified on failure.
bool parse_trace(std::string_view text, const std::string& file, Program* out, ParseError* err);

/// Parse one op line (no config lines). Returns false with the reason in *reason.
/// Used by tools that take an op on the command line and by tests.
bool parse_op_line(std::string_view line, Op* out, std::string* reason);

/// One trace line for `op`, without newline, with its assertions (`== DATA`, `=> RESULT`).
std::string print_op(const Op& op);

/// The whole program: the config line (if has_config), then one op per line, each line
/// ending in '\n'.
std::string print_program(const Program& p);

/// The trace spelling of a data spec: "text" (escaped), hex:.., fill:0xBB*0xLEN, pat:...
std::string format_data(const DataSpec& d);

/// The trace spelling of a protection ("rw-").
std::string format_prot(vm_prot_t prot);

/// The `config` line for cfg ("config" followed by its non-default keys).
std::string format_config(const SystemConfig& cfg);

/// `op` with every field its kind does not use (see the table in vocab.h) reset to its
/// Op{} default, and the Expect reduced to the fields its result kind uses. The printer
/// prints only used fields, so printing is exact on canonical ops.
Op canonical_op(const Op& op);

}  // namespace vmfuzz
