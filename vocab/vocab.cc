// vocab.cc — names of the shared vocabulary, generated from its tables.
#include "vmfuzz/vocab.h"

namespace vmfuzz {

namespace {
struct CodeName {
  kern_return_t kr;
  const char* name;
};
constexpr CodeName kCodeNames[] = {
    {KERN_SUCCESS, "KERN_SUCCESS"},
    {KERN_INVALID_ADDRESS, "KERN_INVALID_ADDRESS"},
    {KERN_PROTECTION_FAILURE, "KERN_PROTECTION_FAILURE"},
    {KERN_NO_SPACE, "KERN_NO_SPACE"},
    {KERN_INVALID_ARGUMENT, "KERN_INVALID_ARGUMENT"},
    {KERN_FAILURE, "KERN_FAILURE"},
    {KERN_RESOURCE_SHORTAGE, "KERN_RESOURCE_SHORTAGE"},
    {KERN_MEMORY_ERROR, "KERN_MEMORY_ERROR"},
};

struct OpName {
  OpKind kind;
  const char* name;
};
constexpr OpName kOpNames[] = {
#define VMFUZZ_OP(E, TEXT, NUM) {OpKind::E, TEXT},
#include "vmfuzz/ops.def"
#undef VMFUZZ_OP
};
}  // namespace

std::string kern_return_name(kern_return_t kr) {
  for (const auto& c : kCodeNames)
    if (c.kr == kr) return c.name;
  return "KERN_" + std::to_string(static_cast<int>(kr));
}

bool kern_return_from_name(const std::string& s, kern_return_t* out) {
  for (const auto& c : kCodeNames)
    if (s == c.name) {
      *out = c.kr;
      return true;
    }
  return false;
}

const char* op_kind_name(OpKind k) {
  for (const auto& o : kOpNames)
    if (o.kind == k) return o.name;
  return "?";
}

bool op_kind_from_name(const std::string& s, OpKind* out) {
  for (const auto& o : kOpNames)
    if (s == o.name) {
      *out = o.kind;
      return true;
    }
  return false;
}

std::vector<uint8_t> DataSpec::materialize() const {
  switch (form) {
    case Form::Text:
    case Form::Hex:
      return bytes;
    case Form::Fill:
      return std::vector<uint8_t>(length, value);
    case Form::Pat: {
      std::vector<uint8_t> out(length);
      for (uint64_t i = 0; i < length; i++) out[i] = static_cast<uint8_t>(value + 7 * i + (i >> 8));
      return out;
    }
  }
  return {};
}

}  // namespace vmfuzz
