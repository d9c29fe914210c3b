// oracles.h — the oracle table (oracles.def) as values, and the one record of a finding.
//
// Theory of operation
// -------------------
// Every oracle of the differential harness has one row in oracles.def: its name, the layer
// it judges, when it runs and what it checks. Checkers and the executor name an oracle by
// its enumerator (`Oracle::ref_counts`), never by a string, so a misspelt name does not
// compile; reports, signatures, the fuzz targets' abort functions and docs/oracles.md
// (its table is oracle_table_markdown()'s output) take the name from the row. A `Violation` is one problem a checker found: the oracle and
// a one-line detail naming the object, frame or address.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace vmfuzz {

enum class Oracle : uint8_t {
#define VMFUZZ_ORACLE(NAME, TARGET, LAYER, WHEN, CHECKS, REPORTED) NAME,
#include "harness/oracles.def"
#undef VMFUZZ_ORACLE
};
inline constexpr unsigned kOracleCount = 0
#define VMFUZZ_ORACLE(NAME, TARGET, LAYER, WHEN, CHECKS, REPORTED) +1
#include "harness/oracles.def"
#undef VMFUZZ_ORACLE
    ;

/// Where an oracle runs.
enum class OracleTarget : uint8_t { VmDiff, Mmu, Codec };
/// What an oracle judges.
enum class OracleLayer : uint8_t { Comparison, Trace, Machine, Pmap, Vm, Language };
/// When it runs.
enum class OracleWhen : uint8_t { EveryOp, FullCheck, Teardown };

struct OracleSpec {
  Oracle oracle;
  const char* name;
  OracleTarget target;
  OracleLayer layer;
  OracleWhen when;
  const char* checks;
  const char* reported;
};

/// Every row, in oracles.def order.
std::span<const OracleSpec> oracle_table();
const OracleSpec& oracle_spec(Oracle o);
/// The row's name ("ref_counts").
const char* oracle_name(Oracle o);
/// The oracle of a name, or nullopt.
std::optional<Oracle> oracle_from_name(std::string_view name);
const char* oracle_target_name(OracleTarget t);
const char* oracle_layer_name(OracleLayer l);
const char* oracle_when_name(OracleWhen w);
/// The Markdown table of docs/oracles.md, generated from the rows (ends in '\n').
std::string oracle_table_markdown();

/// Whether `name` is a row of `target` in oracles.def, for targets that print an oracle
/// by name without linking the harness (the mmu and codec fuzzers check their names with
/// it at compile time: `fail<"pv">(...)`).
constexpr bool is_oracle_of(std::string_view name, OracleTarget target) {
#define VMFUZZ_ORACLE(NAME, TARGET, ...) \
  if (target == OracleTarget::TARGET && name == #NAME) return true;
#include "harness/oracles.def"
#undef VMFUZZ_ORACLE
  return false;
}

/// A string literal as a template argument (`fail<"pv">`).
template <unsigned N>
struct OracleLiteral {
  char text[N];
  constexpr OracleLiteral(const char (&s)[N]) {
    for (unsigned i = 0; i < N; i++) text[i] = s[i];
  }
};

/// One problem found by a checker.
struct Violation {
  Oracle oracle;
  std::string detail;
  /// "NAME: detail".
  std::string text() const { return std::string(oracle_name(oracle)) + ": " + detail; }
};

}  // namespace vmfuzz
