// vm_state_feedback.h — VM shapes as coverage: libFuzzer extra counters for vm_diff.
//
// Theory of operation
// -------------------
// Code coverage says which lines ran, not which VM states were reached: a shadow chain of
// depth 5 runs the same lines as one of depth 2. After every op, vm_diff describes the
// kernel's state as a set of small features — the depth of each object's shadow chain, a
// copy object present, the number of sharers (ref_count), resident pages, a pager, the
// copy strategy, needs_copy/shared entries over chains of each depth, and every mechanism
// counter (collapses, bypasses, pushes, copy-object reuses, copy-ups, zero-fills,
// pageouts, page-ins, cache hits, ...) bucketed by log2 — and bumps one 8-bit counter per
// feature in a table placed in the `__libfuzzer_extra_counters` section. libFuzzer reads
// that section like its own inline counters, so an input that reaches a new VM shape is
// new coverage and is kept, even if no new line ran.
//
// The features are a pure function of the kernel's introspection (creation-order ids,
// never pointers): deterministic. In builds without libFuzzer the table is written and
// never read. kVmStateCounters bounds the table; features hash into it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmfuzz::vm {
class Kernel;
}

namespace vmfuzz::fuzz {

inline constexpr size_t kVmStateCounters = 4096;

/// Purpose:    Bump the extra counter of every feature of `kernel`'s current state.
/// Conditions: no side effect on the kernel (const introspection only).
void record_vm_state(const vm::Kernel& kernel);

/// The counter a feature (kind, value) bumps: a fixed hash of the pair, modulo the table.
size_t vm_state_slot(uint32_t kind, uint32_t value);

/// Number of distinct counters ever set in this process (libFuzzer clears the table before
/// each input; this count is cumulative), for the driver's progress line.
size_t vm_state_features_seen();

}  // namespace vmfuzz::fuzz
