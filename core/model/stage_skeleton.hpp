#pragma once
// One pipeline stage of a model: a contiguous run of its decoder layers, with the embedding on the first
// stage and the final norm and head on the last, as vLLM and torch.distributed pipelines cut a model.
// Modules without weights of their own (rotary embeddings) are in every stage; a tied head on the last
// stage is its own copy of the embedding there.
#include <cstddef>
#include <vector>

#include "model/skeleton.hpp"

namespace devicemap {

// The decoder layers (modules marked is_layer, not nested in another layer), in registration order.
std::vector<int> decoder_layers(const Skeleton& s);

struct StageCut {
  std::size_t first_layer = 0;  // index into decoder_layers()
  std::size_t end_layer = 0;    // one past the last
  bool first = false;           // holds what comes before the layers (the embedding)
  bool last = false;            // holds what comes after them (final norm, head)
};

// The part of `s` one stage holds, with the model's own names. Throws devicemap::Error for a cut
// outside the model's layers or without any layer.
Skeleton stage_skeleton(const Skeleton& s, const StageCut& cut);

}  // namespace devicemap
