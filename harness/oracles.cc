// oracles.cc — the rows of oracles.def (see oracles.h).
#include "harness/oracles.h"

#include <string>

namespace vmfuzz {

namespace {

using enum OracleTarget;
using enum OracleLayer;
using enum OracleWhen;
constexpr OracleSpec kOracles[] = {
#define VMFUZZ_ORACLE(NAME, TARGET, LAYER, WHEN, CHECKS, REPORTED) \
  {Oracle::NAME, #NAME, TARGET, LAYER, WHEN, CHECKS, REPORTED},
#include "harness/oracles.def"
#undef VMFUZZ_ORACLE
};
static_assert(std::size(kOracles) == kOracleCount);

}  // namespace

std::span<const OracleSpec> oracle_table() { return kOracles; }

const OracleSpec& oracle_spec(Oracle o) { return kOracles[static_cast<unsigned>(o) % kOracleCount]; }

const char* oracle_name(Oracle o) { return oracle_spec(o).name; }

std::optional<Oracle> oracle_from_name(std::string_view name) {
  for (const OracleSpec& s : kOracles)
    if (name == s.name) return s.oracle;
  return std::nullopt;
}

const char* oracle_target_name(OracleTarget t) {
  switch (t) {
    case OracleTarget::VmDiff: return "differential runs";
    case OracleTarget::Mmu: return "`mmu` fuzzer";
    case OracleTarget::Codec: return "`codec` fuzzer";
  }
  return "?";
}

const char* oracle_layer_name(OracleLayer l) {
  switch (l) {
    case OracleLayer::Comparison: return "VM against model";
    case OracleLayer::Trace: return "the trace's assertions";
    case OracleLayer::Machine: return "machine";
    case OracleLayer::Pmap: return "pmap";
    case OracleLayer::Vm: return "VM";
    case OracleLayer::Language: return "language";
  }
  return "?";
}

const char* oracle_when_name(OracleWhen w) {
  switch (w) {
    case OracleWhen::EveryOp: return "after every op";
    case OracleWhen::FullCheck: return "at full checks";
    case OracleWhen::Teardown: return "after teardown";
  }
  return "?";
}

std::string oracle_table_markdown() {
  std::string s = "| oracle | runs in | layer | when | checks | reported as |\n|---|---|---|---|---|---|\n";
  for (const OracleSpec& o : kOracles) {
    s += std::string("| `") + o.name + "` | " + oracle_target_name(o.target) + " | " + oracle_layer_name(o.layer) +
         " | " + oracle_when_name(o.when) + " | " + o.checks + " | " + o.reported + " |\n";
  }
  return s;
}

}  // namespace vmfuzz
