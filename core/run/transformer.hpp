#pragma once
// Internal to the running layer (includes ATen). One forward pass of a decoder-only transformer, whatever
// the family; the family's file builds it from the loaded weights.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <atomic>
#include <memory>

#include "run/load_options.hpp"

namespace devicemap {

class KvCache;
class Prefetcher;
class Weights;
struct ModelConfig;

class Transformer {
 public:
  virtual ~Transformer() = default;
  // `input`: int64 CPU ids [new]. With a cache, the new tokens follow its tokens and are added to it;
  // without one, they are the whole sequence. Returns float32 CPU logits [new, vocab], or [1, vocab] for
  // the last position only. A pipeline stage runs only its layers: without the embedding, `input` is the
  // hidden state [new, hidden] the stage before returned; without the head, it returns its hidden state
  // [new, hidden] of every new position (the next stage caches them all), as it leaves the last layer.
  virtual at::Tensor forward(const at::Tensor& input, KvCache* cache, bool all_positions) = 0;
  // Where block `index`'s attention runs, and so where its keys and values are cached.
  virtual c10::Device attention_device(std::int64_t index) const = 0;

  // Checked between blocks: when it reads true, forward() throws Cancelled.
  void set_cancel_flag(const std::atomic<bool>* flag) { cancel_ = flag; }

 protected:
  explicit Transformer(LayerRange layers) : layers_(layers) {}
  bool has_embedding() const { return layers_.first == 0; }
  bool has_head(std::int64_t num_layers) const { return layers_.end == num_layers; }
  const LayerRange layers_;

  void stop_if_cancelled() const {
    if (cancel_ && cancel_->load(std::memory_order_relaxed)) throw Cancelled("the forward pass was cancelled");
  }

 private:
  const std::atomic<bool>* cancel_ = nullptr;
};

// Weights are fetched through `prefetcher`; `weights` and `prefetcher` must outlive the result.
// `layers`: the decoder layers loaded (all of them, or a pipeline stage's).
std::unique_ptr<Transformer> make_llama(const ModelConfig& config, const Weights& weights, Prefetcher& prefetcher, LayerRange layers);
std::unique_ptr<Transformer> make_gpt2(const ModelConfig& config, const Weights& weights, Prefetcher& prefetcher, LayerRange layers);

}  // namespace devicemap
