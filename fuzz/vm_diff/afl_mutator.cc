// afl_mutator.cc — vm_diff's op-level mutator for AFL++ (a custom mutator library).
//
// Theory of operation
// -------------------
// AFL++'s own mutations work on bytes, and most byte flips of a vm_diff input land in an
// argument's mode byte and change its meaning wholesale (op_mutator.h says why libFuzzer
// gets an op-level mutator). This library gives AFL++ the same op-level changes: afl-fuzz
// loads it with AFL_CUSTOM_MUTATOR_LIBRARY and calls afl_custom_fuzz once per mutation of
// its custom stage, before its own havoc stage (so byte mutations still happen; libFuzzer's
// target leaves two mutations in eight to bytes for the same reason).
//
// One call: decode the input as the fuzz target does (with a scratch model answering the
// decoder, harness/exec/executor.h: decode_with_model), change it at the op level — one
// call in three inserts a whole shaped sequence (op_shapes.h), two change one op — and
// encode it again. Names a change leaves dangling are remapped by the decoder, so every
// output is a valid program. Deterministic in the seed afl-fuzz passes to afl_custom_init.
//
// The library runs inside afl-fuzz, not inside the instrumented target, so it is built
// without AFL's instrumentation and without sanitizers, as position-independent code: the
// `aflmutator` preset (CMakePresets.json), target vm_diff_afl_mutator. The ABI is AFL++'s
// C API for custom mutators: only the three entry points below are exported; afl-fuzz's
// state pointer is not used.
#include <cstddef>
#include <cstdint>
#include <new>
#include <random>
#include <span>
#include <vector>

#include "fuzz/vm_diff/op_mutator.h"
#include "harness/exec/executor.h"
#include "harness/lang/codec.h"
#include "reference_model/model.h"

namespace {

using namespace vmfuzz;

struct MutatorState {
  std::minstd_rand rng;
  std::vector<uint8_t> out;  // afl_custom_fuzz's result; ours until the next call
};

}  // namespace

extern "C" {

/// Purpose:    afl-fuzz's start of the library: its state, seeded with `seed`.
void* afl_custom_init(void* /*afl*/, unsigned int seed) {
  auto* state = new (std::nothrow) MutatorState;
  if (state != nullptr) state->rng.seed(seed == 0 ? 1 : seed);  // minstd's state must not be 0
  return state;
}

/// Purpose:    One op-level mutation of buf[0, buf_size).
/// Results:    The size of the mutant in *out_buf (memory of the library, valid until the
///             next call). afl-fuzz aborts on a size of 0, so when one op cannot change
///             (an empty program) a shaped sequence goes in instead, and a mutant longer
///             than max_size gives the input back unchanged (afl-fuzz runs it once more).
size_t afl_custom_fuzz(void* data, uint8_t* buf, size_t buf_size, uint8_t** out_buf, uint8_t* /*add_buf*/,
                       size_t /*add_buf_size*/, size_t max_size) {
  auto* state = static_cast<MutatorState*>(data);
  std::span<const uint8_t> bytes(buf, buf_size);
  model::Model scratch(Decoder(bytes).config());
  Program p = harness::decode_with_model(bytes, scratch);
  if (state->rng() % 3 == 0 || !fuzz::mutate_one_op(p, state->rng)) fuzz::insert_shaped_sequence(p, state->rng);
  state->out = encode_program(p);
  if (state->out.size() > max_size) state->out.assign(buf, buf + buf_size);
  *out_buf = state->out.data();
  return state->out.size();
}

/// Purpose:    afl-fuzz's end of the library.
void afl_custom_deinit(void* data) { delete static_cast<MutatorState*>(data); }

}  // extern "C"
