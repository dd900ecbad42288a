#pragma once
// Internal to the running layer (includes ATen): what a loaded Model holds, for model.cpp and for the
// pipeline stages (run/pipeline.cpp), which run a stage's layers on hidden states from another process.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "run/kv_cache.hpp"
#include "run/model.hpp"
#include "run/prefetcher.hpp"
#include "run/transformer.hpp"
#include "run/weights.hpp"

namespace devicemap {

// How the first stage of a pipeline reaches the stages after it.
class StageLink {
 public:
  virtual ~StageLink() = default;
  // Sends the first stage's hidden state of the tokens after the first `past` through the other stages;
  // returns the last stage's float32 logits ([new, vocab], or [1, vocab] for the last position only).
  virtual at::Tensor run_rest(const at::Tensor& hidden, std::int64_t past, bool all_positions) = 0;
  // Every other stage sizes its KV cache for `tokens` tokens (Model::reserve_cache).
  virtual void reserve(std::int64_t tokens) = 0;
};

struct Model::Impl {
  ModelConfig config;
  GenerationOptions generation;
  LoadReport report;
  std::unique_ptr<Weights> weights;
  std::unique_ptr<Prefetcher> prefetcher;
  std::unique_ptr<Transformer> transformer;
  std::unique_ptr<KvCache> cache;
  bool check_memory = true;  // also before a generation sizes the KV cache
  LayerRange layers;          // the decoder layers this process holds (all, or a pipeline stage's)
  // On the first stage of a pipeline: the stages after it (run/pipeline.hpp).
  std::unique_ptr<StageLink> link;

  at::Tensor ids_tensor(std::span<const std::int64_t> ids, std::int64_t past) const {
    if (ids.empty()) throw Error("no tokens to run");
    for (const auto id : ids)
      if (id < 0 || id >= config.vocab_size)
        throw Error("token id " + std::to_string(id) + " is outside the vocabulary (vocab_size " +
                    std::to_string(config.vocab_size) + ")");
    const auto total = past + static_cast<std::int64_t>(ids.size());
    if (total > config.max_position_embeddings)
      throw Error("the sequence would have " + std::to_string(total) + " tokens, more than max_position_embeddings " +
                  std::to_string(config.max_position_embeddings) + " in config.json");
    return at::tensor(at::ArrayRef<std::int64_t>(ids.data(), ids.size()), at::TensorOptions().dtype(at::kLong));
  }

  // Long prompts run through the cache in chunks: attention scores then take chunk × context floats
  // per head instead of prompt × context (64 heads × 8k × 8k would be 16 GiB per layer).
  std::int64_t chunk = 512;

  // This process's layers, then (on a pipeline's first stage) the other stages'.
  at::Tensor step(const at::Tensor& ids, KvCache* kv, bool all_positions) {
    const std::int64_t past = kv ? kv->length() : 0;
    at::Tensor out = transformer->forward(ids, kv, all_positions);
    return link ? link->run_rest(out, past, all_positions) : out;
  }

  at::Tensor run(const at::Tensor& ids, KvCache* kv, bool all_positions) {
    const std::int64_t n = ids.size(0);
    if (n <= chunk) return step(ids, kv, all_positions);
    KvCache scratch(config.num_layers, config.max_position_embeddings);
    if (!kv) kv = &scratch;  // a whole sequence without the model's cache: chunks need one all the same
    std::vector<at::Tensor> rows;
    at::Tensor last;
    for (std::int64_t start = 0; start < n; start += chunk) {
      last = step(ids.narrow(0, start, std::min(chunk, n - start)), kv, all_positions);
      if (all_positions) rows.push_back(last);
    }
    return all_positions ? at::cat(rows, 0) : last;
  }

  static Logits to_logits(const at::Tensor& t) {
    Logits l;
    const at::Tensor c = t.contiguous();
    l.positions = c.size(0);
    l.vocab = c.size(1);
    l.values.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    return l;
  }
};

}  // namespace devicemap
