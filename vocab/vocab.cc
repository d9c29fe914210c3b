// vocab.cc — names of the shared vocabulary, generated from its tables.
#include "vmfuzz/vocab.h"

#include <algorithm>
#include <cstring>

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
#define VMFUZZ_OP(E, TEXT, NUM, ...) {OpKind::E, TEXT},
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
      // Byte i is value + 7*i + (i >> 8) mod 256. Within block k of 256 bytes that is
      // (value + k) + 7*j for j = 0..255 (7*256*k vanishes mod 256): one table row per
      // starting byte, copied a block at a time (fuzz inputs materialize up to 64 KiB).
      static const auto rows = [] {
        std::vector<uint8_t> t(256 * 256);
        for (unsigned c = 0; c < 256; c++)
          for (unsigned j = 0; j < 256; j++) t[c * 256 + j] = static_cast<uint8_t>(c + 7 * j);
        return t;
      }();
      std::vector<uint8_t> out(length);
      for (uint64_t b = 0; b < length; b += 256) {
        uint8_t start = static_cast<uint8_t>(value + (b >> 8));
        std::memcpy(out.data() + b, rows.data() + size_t(start) * 256, std::min<uint64_t>(256, length - b));
      }
      return out;
    }
  }
  return {};
}

}  // namespace vmfuzz
