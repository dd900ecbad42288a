#pragma once
// Rotary position embeddings' inverse frequencies, as transformers' ROPE_INIT_FUNCTIONS compute them:
// theta^(-2i/head_dim) for i < head_dim / 2, then rope_scaling ("linear" divides them by factor,
// "llama3" slows the long wavelengths down and interpolates the band between).
#include <vector>

#include "run/model_config.hpp"

namespace devicemap {

std::vector<float> rope_inverse_frequencies(const ModelConfig& config);

}  // namespace devicemap
