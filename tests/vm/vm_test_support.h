// vm_test_support.h — small helpers the vm/ tests share.
#pragma once

#include <cstdint>
#include <string>

#include "vmfuzz/vocab.h"

namespace vmfuzz::vm::test {

inline constexpr uint64_t P = kPageSize;

/// "page7" (built with append: g++ 12 -O2 warns falsely on "lit" + std::string).
inline std::string tag(const char* prefix, long n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

}  // namespace vmfuzz::vm::test
