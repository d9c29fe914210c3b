// op_shapes.h — an op of any kind, its arguments drawn slot by slot from small shapes.
//
// Theory of operation
// -------------------
// Engines that make ops from nothing (the vm_diff mutator, tests that walk the op table)
// need, for every op kind, arguments that are likely to matter: names among the first few
// slots (so that ops name the same tasks, handles and objects), addresses on a few pages
// of one window (so that ops collide), sizes of a page or a few, and now and then the
// values where VM bugs live: the edges of user space and of 2^64, unaligned addresses,
// sizes that wrap. `shaped_op` builds such an op from the kind's row in the op table
// (op_table.h), one draw per slot, so a new op has shapes the day its row is written.
// Names are only suggestions: the codec's decoder moves a name that does not exist (or
// already exists) to the next usable slot, so every shaped op becomes a usable one.
#pragma once

#include <cstdint>
#include <functional>

#include "vmfuzz/vocab.h"

namespace vmfuzz {

/// A source of choices: pick(n) returns a number in [0, n) (n >= 1).
using Pick = std::function<uint64_t(uint64_t n)>;

/// Purpose:    An op of kind `k` with every slot of its row drawn from its shape.
/// Results:    canonical (canonical_op(op) == op), no assertions. Deterministic in the
///             sequence of numbers `pick` returns.
Op shaped_op(OpKind k, const Pick& pick);

}  // namespace vmfuzz
