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
//
// One op at a time rarely builds the state a VM bug needs: five or more ops in one order
// (share, fork, vm_read, write, pageout). `shaped_sequence` writes whole shapes, one
// family per bug mechanism, each a few trace lines with its addresses, sizes, bytes and
// names drawn; the vm_diff mutator inserts them and a property suite runs them
// (StateMachine.ShapedSequences), so a user's new VM change meets these shapes without
// seeds. `classify_shapes` recognizes the three classes no engine reached before, so a test
// can count them in what the engines actually produce.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "vmfuzz/vocab.h"

namespace vmfuzz {

/// A source of choices: pick(n) returns a number in [0, n) (n >= 1).
using Pick = std::function<uint64_t(uint64_t n)>;

/// Purpose:    An op of kind `k` with every slot of its row drawn from its shape.
/// Results:    canonical (canonical_op(op) == op), no assertions. Deterministic in the
///             sequence of numbers `pick` returns.
Op shaped_op(OpKind k, const Pick& pick);

/// Purpose:    A short program of one of the shapes VM bugs need (kShapeFamilies below):
///             a fork chain, a copy object under pressure, a shared region copied, a
///             pageout between a snapshot and a write, pageout of a shadowing object's
///             own pages then a collapse, kernel-side vm_copy/vm_write into a shared
///             mapping of a memory object observed through `file`, addresses at and
///             beyond the edges of user space, ...; and, for the race bugs, a held
///             manager's requests in flight with the schedule interleaved (two accesses on
///             one page, a waiter's page freed before it runs, destroy or unmap during
///             page-in, more requests than kAbsentMax, unavailable and error replies, two
///             tasks on one page); for the format-5 race bugs, a copy without a fault or a
///             kernel path (vm_copy, vm_write) or a flush meeting a page in transit, an
///             unrequested supply over a written page, and faults before a held init's
///             ready. Each family sets up its own memory
///             and names (tasks, handles and objects in slots 6..13, rarely used by
///             other ops, so that the decoder keeps them), then touches it and reads.
/// Conditions: `family` < kShapeFamilies, or kShapeFamilies to let `pick` choose.
/// Results:    canonical ops, no assertions; every op parses from and prints to its text.
///             Names are suggestions as for shaped_op: the decoder remaps a name that is
///             dead (or taken) when the sequence lands in a program. Deterministic in
///             the numbers `pick` returns.
inline constexpr unsigned kShapeFamilies = 31;
std::vector<Op> shaped_sequence(const Pick& pick, unsigned family = kShapeFamilies);

/// The name of family `f` (< kShapeFamilies), for tests and counters.
const char* shape_family_name(unsigned f);

/// The three classes of program that no engine reached before shaped sequences (docs/bugs.md,
/// "From an empty corpus"), recognized in a program's ops by their structure alone:
///   edge              an address op at or above the last page below the hole
///                     (kUserMax - 4096: the last page, the hole, non-canonical addresses)
///                     or whose range wraps past 2^64;
///   pageout_collapse  a fork, then a write, then a pageout, then a terminate or deallocate
///                     (what collapses the forked object into its shadow), then an access;
///   kernel_write_file a shared `map` of an object, then a vm_copy or vm_write, then a
///                     `file` of that object with no user store between the kernel-side
///                     write and the `file`.
///   held_race         a `hold`, then two user accesses or more, then a `reply` of a
///                     held object, then a `run` or `quiesce`: the race bugs' shape
///                     (docs/concurrency.md), which one-op mutations rarely assemble.
///   init_race         a `hold_init`, then a user access, then a `ready` of that object
///                     (format 5: faults that must wait for the manager's readiness).
struct ShapeClasses {
  bool edge = false;
  bool pageout_collapse = false;
  bool kernel_write_file = false;
  bool held_race = false;
  bool init_race = false;
};
ShapeClasses classify_shapes(std::span<const Op> ops);

}  // namespace vmfuzz
