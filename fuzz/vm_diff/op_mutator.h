// op_mutator.h — vm_diff's op-level mutations of a decoded program.
//
// Theory of operation
// -------------------
// libFuzzer's byte mutations rarely turn one valid program into another that means more:
// most flips land in an argument's mode byte and change its meaning wholesale. The
// mutator therefore works on the decoded program (harness/lang/program.h) and lets the
// encoder write the bytes again. Two kinds of change:
//   - one op: a copy-on-write building block (a trace line of kTemplates with random task,
//     page and byte) or an op of any kind of the op table with its slots drawn from their
//     shapes (harness/lang/op_shapes.h: shaped_op) inserted; an op deleted, duplicated or
//     moved; an op's task renamed;
//   - a whole shape (op_shapes.h: shaped_sequence): a fork chain, a copy object under
//     pressure, a shared mapping written by the kernel and read by the manager, the edges
//     of user space, a held manager with two accesses on one page and its replies and
//     runs interleaved (the concurrency family), ... inserted at a random position. The bugs an empty corpus missed
//     need five or more ops in one order; one op at a time did not build them in minutes.
// Names that a change leaves dangling are remapped by the decoder (codec.h), so every
// mutant is a valid program. Deterministic in the generator's state.
#pragma once

#include <random>

#include "harness/lang/program.h"

namespace vmfuzz::fuzz {

/// Purpose:    One op-level change of `p`, chosen by `rng` (see the top of this file).
/// Results:    false when nothing changed (a deletion from an empty program, ...).
///             p.lines is reset to one 0 per op (binary programs carry no lines).
bool mutate_one_op(Program& p, std::minstd_rand& rng);

/// Purpose:    Insert one shaped sequence (family chosen by `rng`) into `p` at a random
///             position.
void insert_shaped_sequence(Program& p, std::minstd_rand& rng);

}  // namespace vmfuzz::fuzz
