// report.cc — rendering of failures: signature, text report, JSON, byte diffs.
//
// Theory of operation: pure functions of a `Failure` (report.h). Nothing here looks at
// either memory system; everything printed was captured by the executor when the oracle
// fired. Output is deterministic: no pointers, no time, fixed widths.
#include "harness/report.h"

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace vmfuzz::harness {

std::string hex_addr(uint64_t a) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, a);
  return buf;
}

std::string failure_key(const Failure& f) {
  std::string s = std::string(oracle_name(f.oracle)) + " in " + f.op_kind;
  if (!f.sub.empty()) s += " [" + f.sub + "]";
  return s;
}

std::string failure_signature(const Failure& f) { return "vmfuzz: " + failure_key(f); }

namespace {
void append_block(std::string& out, const std::string& block, const char* indent) {
  // Append every line of `block` with `indent`, ensuring a final newline.
  size_t pos = 0;
  while (pos < block.size()) {
    size_t nl = block.find('\n', pos);
    if (nl == std::string::npos) nl = block.size();
    out += indent;
    out.append(block, pos, nl - pos);
    out += '\n';
    pos = nl + 1;
  }
}
}  // namespace

std::string format_failure(const Failure& f) {
  std::string out = failure_signature(f) + "\n";
  out += "  op " + std::to_string(f.op_index);
  if (f.line) out += " (line " + std::to_string(f.line) + ")";
  out += ": " + f.op + "\n";
  out += std::string("  oracle: ") + oracle_name(f.oracle) + "\n";
  append_block(out, f.detail, "  ");
  if (!f.diff.empty()) append_block(out, f.diff, "  ");
  if (!f.provenance.empty()) append_block(out, "provenance: " + f.provenance, "  ");
  return out;
}

std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          // Non-ASCII bytes (from quoted trace text) are escaped byte by byte as
          // code points U+0080..U+00FF so that the output is always valid JSON.
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

std::string failure_json(const Failure& f) {
  std::string detail;
  auto add = [&](std::string part) {
    while (!part.empty() && part.back() == '\n') part.pop_back();
    if (part.empty()) return;
    if (!detail.empty()) detail += '\n';
    detail += part;
  };
  add(f.detail);
  add(f.diff);
  if (!f.provenance.empty()) add("provenance: " + f.provenance);
  std::string out = "{\"op_index\": " + std::to_string(f.op_index);
  out += ", \"op\": " + json_quote(f.op);
  out += ", \"oracle\": " + json_quote(oracle_name(f.oracle));
  out += ", \"detail\": " + json_quote(detail);
  out += ", \"signature\": " + json_quote(failure_signature(f));
  out += "}";
  return out;
}

size_t first_difference(std::span<const uint8_t> expected, std::span<const uint8_t> actual,
                        std::span<const uint8_t> unknown) {
  size_t n = std::min(expected.size(), actual.size());
  // Fast path (every full check compares whole pages, every read its bytes): equal bytes
  // differ nowhere, whatever the unknown mask says.
  if (n == 0 || std::memcmp(expected.data(), actual.data(), n) == 0)
    return expected.size() != actual.size() ? n : SIZE_MAX;
  // Some byte differs (perhaps only unknown ones): compare 64-byte blocks with memcmp and
  // look byte by byte only inside blocks that differ.
  constexpr size_t kBlock = 64;
  for (size_t b = 0; b < n; b += kBlock) {
    size_t end = std::min(n, b + kBlock);
    if (std::memcmp(expected.data() + b, actual.data() + b, end - b) == 0) continue;
    for (size_t i = b; i < end; i++) {
      if (i < unknown.size() && unknown[i]) continue;
      if (expected[i] != actual[i]) return i;
    }
  }
  if (expected.size() != actual.size()) return n;
  return SIZE_MAX;
}

namespace {
std::string dump_line(char mark, uint64_t line_addr, uint64_t base, std::span<const uint8_t> bytes,
                      std::span<const uint8_t> unknown, const char* label) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%c0x%012" PRIx64 " ", mark, line_addr);
  std::string s = buf;
  for (uint64_t a = line_addr; a < line_addr + 16; a++) {
    if (a < base) {
      s += "   ";
      continue;
    }
    size_t i = static_cast<size_t>(a - base);
    if (i >= bytes.size()) {
      s += " --";
    } else if (i < unknown.size() && unknown[i]) {
      s += " ??";
    } else {
      std::snprintf(buf, sizeof buf, " %02x", bytes[i]);
      s += buf;
    }
  }
  s += "   (";
  s += label;
  s += ")\n";
  return s;
}
}  // namespace

std::string hex_diff(uint64_t base, std::span<const uint8_t> expected, std::span<const uint8_t> actual,
                     std::span<const uint8_t> unknown, const char* expected_label,
                     const char* actual_label, unsigned max_lines) {
  size_t n = std::max(expected.size(), actual.size());
  if (n == 0) return {};
  std::string out;
  unsigned printed = 0, skipped = 0;
  uint64_t first_line = base & ~uint64_t{15};
  uint64_t end = base + n;
  for (uint64_t line = first_line; line < end && line >= first_line; line += 16) {
    bool differs = false;
    for (uint64_t a = std::max(line, base); a < std::min(line + 16, end); a++) {
      size_t i = static_cast<size_t>(a - base);
      if (i < unknown.size() && unknown[i]) continue;
      if (i >= expected.size() || i >= actual.size() || expected[i] != actual[i]) {
        differs = true;
        break;
      }
    }
    if (!differs) continue;
    if (printed == max_lines) {
      skipped++;
      continue;
    }
    out += dump_line('-', line, base, expected, unknown, expected_label);
    out += dump_line('+', line, base, actual, unknown, actual_label);
    printed++;
  }
  if (skipped) out += "(" + std::to_string(skipped) + " more differing 16-byte lines)\n";
  return out;
}

}  // namespace vmfuzz::harness
