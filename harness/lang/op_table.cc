// op_table.cc — the rows of vocab/vmfuzz/ops.def as OpSpec values (see op_table.h).
#include "harness/lang/op_table.h"

#include <algorithm>
#include <array>
#include <initializer_list>

namespace vmfuzz {

namespace {

constexpr OpSpec make_spec(OpKind kind, const char* name, uint8_t number, uint8_t format, Returns returns,
                           std::initializer_list<Slot> slots) {
  OpSpec s{kind, name, number, format, returns, static_cast<uint8_t>(slots.size()), {}};
  unsigned i = 0;
  for (Slot slot : slots) s.slot_array[i++] = slot;
  return s;
}

#define VMFUZZ_UNPAREN(...) __VA_ARGS__
using enum Slot;
using enum Returns;
constexpr OpSpec kOps[] = {
#define VMFUZZ_OP(E, TEXT, NUM, FORMAT, RETURNS, SLOTS) \
  make_spec(OpKind::E, TEXT, NUM, FORMAT, RETURNS, {VMFUZZ_UNPAREN SLOTS}),
#include "vmfuzz/ops.def"
#undef VMFUZZ_OP
};
#undef VMFUZZ_UNPAREN

constexpr bool rows_in_number_order() {
  for (unsigned i = 0; i < std::size(kOps); i++)
    if (static_cast<unsigned>(kOps[i].kind) != kOps[i].number || (i > 0 && kOps[i].number <= kOps[i - 1].number))
      return false;
  return true;
}
static_assert(std::size(kOps) == kOpRowCount, "op_table: one row per op kind");
static_assert(rows_in_number_order(), "op_table: rows must be in binary-number order");

// Row index by op number (a number no row has: the last row, never asked for).
constexpr auto kRowOf = [] {
  std::array<uint8_t, kOpKindCount> r{};
  for (unsigned i = 0; i < std::size(kOps); i++) r[kOps[i].number] = static_cast<uint8_t>(i);
  return r;
}();

constexpr const char* kSlotNames[kSlotCount] = {
    "task", "new task", "child task", "ending task", "task (with cpu=)", "copy handle",
    "new copy handle", "memory object", "new memory object", "address or any", "address",
    "source address", "destination address", "size", "transfer size", "object size",
    "device size", "offset", "protection", "inheritance", "data", "object flags",
    "device contents", "map mode", "page count", "choice", "reply", "lock request",
};

}  // namespace

bool OpSpec::has(Slot s) const {
  auto sl = slots();
  return std::find(sl.begin(), sl.end(), s) != sl.end();
}

std::span<const OpSpec> op_table() { return kOps; }

const OpSpec& op_spec(OpKind k) { return kOps[kRowOf[static_cast<unsigned>(k) % kOpKindCount]]; }

bool op_has_data(OpKind k) {
  const OpSpec& s = op_spec(k);
  return s.has(Slot::Data) || s.has(Slot::ObjFlags) || s.has(Slot::DevData);
}

bool op_asserts_bytes(OpKind k) {
  Returns r = op_spec(k).returns;
  return r == Returns::Load || r == Returns::Bytes;
}

bool op_asserts_fault(OpKind k) {
  Returns r = op_spec(k).returns;
  return r == Returns::Load || r == Returns::Store;
}

bool op_returns_address(const Op& op) {
  Returns r = op_spec(op.kind).returns;
  return r == Returns::Address || (r == Returns::AddressIfAny && op.anywhere);
}

bool op_returns_nothing(OpKind k) { return op_spec(k).returns == Returns::Nothing; }

const char* slot_name(Slot s) { return kSlotNames[static_cast<unsigned>(s)]; }

}  // namespace vmfuzz
