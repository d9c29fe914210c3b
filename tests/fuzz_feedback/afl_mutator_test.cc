// afl_mutator_test.cc — vm_diff's AFL++ custom mutator (fuzz/vm_diff/afl_mutator.cc),
// called through its C entry points as afl-fuzz calls them.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness/exec/executor.h"
#include "harness/lang/codec.h"
#include "reference_model/model.h"

extern "C" {
void* afl_custom_init(void* afl, unsigned int seed);
size_t afl_custom_fuzz(void* data, uint8_t* buf, size_t buf_size, uint8_t** out_buf, uint8_t* add_buf,
                       size_t add_buf_size, size_t max_size);
void afl_custom_deinit(void* data);
}

namespace {

using namespace vmfuzz;

// A chain of `n` mutations from the empty program (one byte), each mutant the next input,
// as afl-fuzz's queue grows; the op counts of the mutants.
std::vector<std::vector<uint8_t>> chain(unsigned seed, unsigned n, size_t max_size) {
  void* state = afl_custom_init(nullptr, seed);
  EXPECT_NE(state, nullptr);
  std::vector<std::vector<uint8_t>> out;
  std::vector<uint8_t> input{0};
  for (unsigned i = 0; i < n; ++i) {
    uint8_t* mutant = nullptr;
    size_t size = afl_custom_fuzz(state, input.data(), input.size(), &mutant, nullptr, 0, max_size);
    EXPECT_GT(size, 0u) << "afl-fuzz aborts on a mutation of size 0";
    EXPECT_LE(size, max_size);
    out.emplace_back(mutant, mutant + size);
    input = out.back();
  }
  afl_custom_deinit(state);
  return out;
}

size_t op_count(const std::vector<uint8_t>& bytes) {
  model::Model scratch(Decoder(bytes).config());
  return harness::decode_with_model(bytes, scratch).ops.size();
}

TEST(AflMutator, GrowsProgramsFromTheEmptyOneAndNeverReturnsNothing) {
  auto mutants = chain(7, 200, 1024);
  size_t most = 0;
  for (const auto& m : mutants) most = std::max(most, op_count(m));
  EXPECT_GE(op_count(mutants.front()), 1u) << "the first mutant of the empty program has no op";
  EXPECT_GE(most, 8u) << "200 op-level mutations never built a program of 8 ops";
}

TEST(AflMutator, SameSeedSameMutants) {
  EXPECT_EQ(chain(3, 50, 1024), chain(3, 50, 1024));
  EXPECT_NE(chain(3, 50, 1024), chain(4, 50, 1024));
}

TEST(AflMutator, KeepsWithinMaxSize) {
  // A bound that a shaped sequence soon exceeds: the input comes back unchanged instead.
  for (const auto& m : chain(11, 100, 24)) EXPECT_LE(m.size(), 24u);
}

}  // namespace
