// report.h — what a failed run says: the failure record, its text and JSON forms, and the
// stable one-line signature used to deduplicate crashes.
//
// Theory of operation
// -------------------
// The executor (executor.h) stops at the first oracle that fires and fills one `Failure`.
// Everything a person or a script needs is in that record (docs/oracles.md): which op (its
// index in the program, its text form as print_op writes it), which oracle or invariant,
// expected versus actual (a byte diff with addresses when bytes are involved), and, when
// the subject is the VM, which object in which chain supplied the wrong byte. Rendering is
// kept here, apart from detection, so that the replay tool, the fuzz targets and the tests
// print the same thing.
//
// The signature is the dedup key of `ci/vmfuzz triage`:
//     vmfuzz: <oracle> in <op kind> [<sub>]
// It contains only things that equivalent crashes share (the oracle, the kind of op at
// which it fired, and a qualifier such as the diverging result codes or the side that
// broke an assertion) and never an address, an object id or an op index.
//
// The oracle is a row of oracles.def (`oracle` below); its name is what scripts match on.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "harness/oracles.h"

namespace vmfuzz::harness {

/// Where a divergence was seen, for provenance and for the DOT picture.
struct FailureSite {
  enum class Kind : uint8_t { None, TaskPage, ObjectPage };
  Kind kind = Kind::None;
  unsigned task = 0;    // TaskPage: the task
  unsigned object = 0;  // ObjectPage: the memory object name (m0..m15)
  uint64_t addr = 0;    // TaskPage: the virtual address of the first wrong byte;
                        // ObjectPage: the offset of the first wrong byte
};

/// One failure, as the first oracle that fired described it.
struct Failure {
  uint64_t op_index = 0;   // 0-based index of the op in the program; == ops when at the end
  unsigned line = 0;       // source line of a text trace (0: unknown / binary input)
  std::string op;          // the op in text form, or "(end of program)", "(teardown)"
  std::string op_kind;     // op keyword for the signature ("read"), or "end", "teardown"
  Oracle oracle = Oracle::result_mismatch;  // the row of oracles.def that fired
  std::string sub;         // qualifier for the signature (no addresses, no ids)
  std::string detail;      // one or more lines: expected vs actual
  std::string diff;        // byte diff (hex_diff) or empty
  std::string provenance;  // VM introspection of the wrong byte, or empty
  FailureSite site;
};

/// The signature without its "vmfuzz: " prefix: "<oracle> in <op kind> [<sub>]".
std::string failure_key(const Failure& f);

/// The stable dedup line: "vmfuzz: <oracle> in <op kind> [<sub>]" (no brackets if sub is
/// empty). Results: a single line, no trailing newline.
std::string failure_signature(const Failure& f);

/// The full human report, several lines, each ending in '\n'. The first line is the
/// signature; then the op, the oracle, the detail, the diff and the provenance.
std::string format_failure(const Failure& f);

/// One JSON object for the "failure" member of `vmfuzz-replay --json`:
/// {"op_index","op","oracle","detail","signature"}. `detail` holds detail, diff and
/// provenance joined by newlines.
std::string failure_json(const Failure& f);

/// JSON string literal for `s` (quotes included), escaping per RFC 8259.
std::string json_quote(const std::string& s);

/// Byte diff as hex dump lines of 16 bytes: for every 16-byte line (aligned on `base`
/// addresses) where expected and actual differ, two lines
///     -0x000000010000  00 00 00 ...   (expected_label)
///     +0x000000010000  00 11 00 ...   (actual_label)
/// Bytes marked in `unknown` (same length as expected, or empty) are printed as "??" and
/// never count as differences; bytes past the end of the shorter side are printed "--".
/// At most `max_lines` differing lines are printed, then a count of the rest.
/// Results: empty when nothing differs.
std::string hex_diff(uint64_t base, std::span<const uint8_t> expected, std::span<const uint8_t> actual,
                     std::span<const uint8_t> unknown, const char* expected_label,
                     const char* actual_label, unsigned max_lines = 8);

/// Index of the first byte where expected and actual differ (unknown bytes skipped), or
/// the shorter length when one is a prefix of the other, or SIZE_MAX when equal.
size_t first_difference(std::span<const uint8_t> expected, std::span<const uint8_t> actual,
                        std::span<const uint8_t> unknown);

/// "0x1f000": lowercase hex with 0x prefix.
std::string hex_addr(uint64_t a);

}  // namespace vmfuzz::harness
