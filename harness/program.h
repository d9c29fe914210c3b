// program.h — a parsed or decoded operation sequence, and the error of unusable input.
//
// Theory of operation
// -------------------
// Every engine (replay of a text trace, a libFuzzer input decoded by the binary codec, a
// rapidcheck command sequence) ends up with the same value: a Program, the SystemConfig
// to build the machine with and the ops of docs/language.md in order. A Program remembers
// where each op came from (its 1-based source line; 0 when it was decoded from binary) so
// that every message about an op can name `FILE:LINE`.
//
// A Program is *canonical* when every op has only the fields its kind uses set (the rest
// at their `Op{}` defaults; see `canonical_op` in text.h). The parser and the decoder
// only produce canonical programs, and the printer and the encoder are exact inverses on
// them.
//
// Unusable input (docs/language.md §Details 11 and §Unusable input: a syntax error, or a
// name used before it exists) is a ParseError value, never an exception; the tools print
// `what()` and exit 2.
#pragma once

#include <string>
#include <vector>

#include "vmfuzz/vocab.h"

namespace vmfuzz {

/// One operation sequence with its machine configuration.
struct Program {
  SystemConfig config;
  bool has_config = false;       // a `config` line was given (printing reproduces it)
  std::vector<Op> ops;
  std::vector<unsigned> lines;   // source line of each op (1-based); 0 when decoded from binary
  std::string source;            // file name for messages
};

/// Why a trace is unusable input: the file, the 1-based line and one reason.
struct ParseError {
  std::string file;
  unsigned line = 0;
  std::string reason;
  /// "FILE:LINE: reason" (the form every tool prints: docs/ARCHITECTURE.md §Contracts scripts
  /// rely on).
  std::string what() const;
};

}  // namespace vmfuzz
