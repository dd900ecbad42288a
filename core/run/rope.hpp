#pragma once
// Rotary position embeddings' inverse frequencies, as transformers' ROPE_INIT_FUNCTIONS compute them:
// theta^(-2i/head_dim) for i < head_dim / 2, then rope_scaling ("linear" divides them by factor,
// "llama3" slows the long wavelengths down and interpolates the band between, "yarn" blends divided and
// undivided ones over a ramp, "dynamic" raises theta, "longrope" divides each by its own factor).
#include <cstdint>
#include <vector>

#include "run/model_config.hpp"

namespace devicemap {

// `sequence`: the positions the forward pass reaches (past + new); "dynamic" and "longrope" change with
// it once it passes the original context, as transformers' dynamic_rope_update does.
std::vector<float> rope_inverse_frequencies(const ModelConfig& config, std::int64_t sequence = 0);

// The factor cos and sin are multiplied by (yarn's and longrope's attention factor; 1 otherwise).
double rope_attention_scaling(const ModelConfig& config);

}  // namespace devicemap
