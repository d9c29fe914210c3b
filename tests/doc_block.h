// doc_block.h — the text a document shows between two markers, for the tests that hold a
// doc's table equal to the table in the code (docs/oracles.md, docs/concurrency.md).
#pragma once

#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace vmfuzz::test {

/// The lines of `path` between "<!-- NAME: begin -->\n" and "<!-- NAME: end -->", or
/// nothing if the file or either marker is missing.
inline std::optional<std::string> doc_block(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  const std::string begin = "<!-- " + name + ": begin -->\n", end = "<!-- " + name + ": end -->";
  const size_t b = doc.find(begin);
  if (b == std::string::npos) return std::nullopt;
  const size_t e = doc.find(end, b);
  if (e == std::string::npos) return std::nullopt;
  return doc.substr(b + begin.size(), e - b - begin.size());
}

}  // namespace vmfuzz::test
