#pragma once
// Picks the next token from a row of logits, as transformers' logits processors and warpers do, in
// their order: repetition penalty, then (when sampling) temperature, top-k, top-p, and a draw.
// Draws come from a seeded 64-bit Mersenne twister, so a seed reproduces a text on every machine.
#include <cstdint>
#include <random>
#include <span>

#include "run/generation_options.hpp"

namespace devicemap {

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);

  // `logits`: one position's scores over the vocabulary (changed in place); `context`: every token id
  // of the sequence so far (prompt included), for the repetition penalty. Ids outside the vocabulary
  // in `context` are ignored.
  std::int64_t next(std::span<float> logits, std::span<const std::int64_t> context);

 private:
  double uniform();  // in [0, 1)

  SamplingOptions options_;
  std::mt19937_64 rng_;
};

// transformers' RepetitionPenaltyLogitsProcessor: a seen token's score is divided by the penalty when
// positive, multiplied by it when negative.
void apply_repetition_penalty(std::span<float> logits, std::span<const std::int64_t> context, double penalty);

// Index of the largest score; the first one on ties (as torch.argmax).
std::int64_t argmax(std::span<const float> logits);

}  // namespace devicemap
