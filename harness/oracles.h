// oracles.h — the oracle table (oracles.def) as values, and the one record of a finding.
//
// Theory of operation
// -------------------
// Every oracle of the differential harness has one row in oracles.def: its name, the layer
// it judges, when it runs and what it checks. Checkers and the executor name an oracle by
// its enumerator (`Oracle::ref_counts`), never by a string, so a misspelt name does not
// compile; reports, signatures, the fuzz target's abort functions and docs/oracles.md
// take the name from the row. A `Violation` is one problem a checker found: the oracle and
// a one-line detail naming the object, frame or address.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace vmfuzz {

enum class Oracle : uint8_t {
#define VMFUZZ_ORACLE(NAME, LAYER, WHEN, CHECKS) NAME,
#include "harness/oracles.def"
#undef VMFUZZ_ORACLE
};
inline constexpr unsigned kOracleCount = 0
#define VMFUZZ_ORACLE(NAME, LAYER, WHEN, CHECKS) +1
#include "harness/oracles.def"
#undef VMFUZZ_ORACLE
    ;

/// What an oracle judges.
enum class OracleLayer : uint8_t { Comparison, Trace, Machine, Pmap, Vm };
/// When it runs.
enum class OracleWhen : uint8_t { EveryOp, FullCheck, Teardown };

struct OracleSpec {
  Oracle oracle;
  const char* name;
  OracleLayer layer;
  OracleWhen when;
  const char* checks;
};

/// Every row, in oracles.def order.
std::span<const OracleSpec> oracle_table();
const OracleSpec& oracle_spec(Oracle o);
/// The row's name ("ref_counts").
const char* oracle_name(Oracle o);
/// The oracle of a name, or nullopt.
std::optional<Oracle> oracle_from_name(std::string_view name);
const char* oracle_layer_name(OracleLayer l);
const char* oracle_when_name(OracleWhen w);

/// One problem found by a checker.
struct Violation {
  Oracle oracle;
  std::string detail;
  /// "NAME: detail".
  std::string text() const { return std::string(oracle_name(oracle)) + ": " + detail; }
};

}  // namespace vmfuzz
