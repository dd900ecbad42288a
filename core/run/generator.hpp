#pragma once
// Generation: feeds the prompt once (prefill), then one token at a time (decode) with the KV cache,
// picking each token with the Sampler, streaming it to a callback, and stopping at a stop id, at
// max_new_tokens, at the model's context length, or when the callback says so.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "run/generation_options.hpp"

namespace devicemap {

class Model;

struct GenerationStats {
  double load_seconds = 0;
  std::int64_t prompt_tokens = 0;
  std::int64_t new_tokens = 0;
  double prefill_seconds = 0;   // the prompt's forward pass and the first token's choice
  std::int64_t decode_steps = 0;  // forward passes of one token
  double decode_seconds = 0;

  double prefill_tokens_per_second() const { return prefill_seconds > 0 ? double(prompt_tokens) / prefill_seconds : 0; }
  double decode_tokens_per_second() const { return decode_seconds > 0 ? double(decode_steps) / decode_seconds : 0; }
};

enum class StopReason : unsigned char { EndOfSequence, MaxNewTokens, ContextFull, Cancelled };

struct GenerationResult {
  std::vector<std::int64_t> tokens;  // the new ids (a stop id that ended generation included)
  StopReason stop = StopReason::MaxNewTokens;
  GenerationStats stats;
};

// Called with each new id as soon as it is chosen; return false to stop after it.
using TokenCallback = std::function<bool(std::int64_t token)>;

// Starts from an empty cache. Throws devicemap::Error for an empty prompt, invalid options, or a
// prompt the model cannot take (ids outside the vocabulary, longer than its context). When the model's
// cancel flag stops a forward pass, returns the tokens so far with StopReason::Cancelled.
GenerationResult generate(Model& model, std::span<const std::int64_t> prompt, const GenerationOptions& options,
                          const TokenCallback& on_token = {});

}  // namespace devicemap
