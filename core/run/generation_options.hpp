#pragma once
// What generation does: how to pick each token, how many, and when to stop. Defaults come from a
// model's generation_config.json as transformers reads it.
#include <cstdint>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace devicemap {

struct SamplingOptions {
  bool do_sample = false;           // false: greedy (argmax); so is temperature <= 0
  double temperature = 1.0;
  std::int64_t top_k = 0;           // 0: off
  double top_p = 1.0;               // 1: off
  double repetition_penalty = 1.0;  // 1: off; > 1 discourages tokens already in the sequence
  std::uint64_t seed = 0;

  bool greedy() const { return !do_sample || temperature <= 0; }
};

struct GenerationOptions {
  SamplingOptions sampling;
  std::int64_t max_new_tokens = 128;
  std::vector<std::int64_t> eos_token_ids;  // generation stops after producing one of these
};

// generation_config.json's do_sample, temperature, top_k, top_p, repetition_penalty, max_new_tokens and
// eos_token_id (an int or a list); the stop ids fall back to config.json's eos_token_id. Either JSON may
// be empty. Throws devicemap::Error naming `source` and the key when a value has the wrong type or range.
GenerationOptions generation_defaults(const nlohmann::json& generation_config, const nlohmann::json& config,
                                      std::string_view source = "generation_config.json");

// Throws devicemap::Error when an option is out of range (temperature < 0, top_p outside (0, 1], …).
void validate(const GenerationOptions& options);

}  // namespace devicemap
