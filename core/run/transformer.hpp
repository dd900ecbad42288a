#pragma once
// Internal to the running layer (includes ATen). One forward pass of a decoder-only transformer, whatever
// the family; the family's file builds it from the loaded weights.
#include <ATen/core/Tensor.h>

#include <memory>

namespace devicemap {

class KvCache;
class Prefetcher;
class Weights;
struct ModelConfig;

class Transformer {
 public:
  virtual ~Transformer() = default;
  // `ids`: int64 CPU [new]. With a cache, the new tokens follow its tokens and are added to it; without
  // one, they are the whole sequence. Returns float32 CPU logits [new, vocab], or [1, vocab] for the last
  // position only.
  virtual at::Tensor forward(const at::Tensor& ids, KvCache* cache, bool all_positions) = 0;
};

// Weights are fetched through `prefetcher`; `weights` and `prefetcher` must outlive the result.
std::unique_ptr<Transformer> make_llama(const ModelConfig& config, const Weights& weights, Prefetcher& prefetcher);
std::unique_ptr<Transformer> make_gpt2(const ModelConfig& config, const Weights& weights, Prefetcher& prefetcher);

}  // namespace devicemap
