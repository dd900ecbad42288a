// GPT-2's forward pass, following transformers' modeling_gpt2: token + learned position embeddings,
// LayerNorm → attention → residual, LayerNorm → MLP (gelu_new) → residual, final LayerNorm, tied head.
// Conv1D layers store their weights as [in, out]: y = x·W + b.
#include <cmath>

#include "error.hpp"
#include "run/attention.hpp"
#include "run/dense.hpp"
#include "run/kv_cache.hpp"
#include "run/model_config.hpp"
#include "run/prefetcher.hpp"
#include "run/tensor_layout.hpp"
#include "run/transformer.hpp"
#include "run/weights.hpp"

namespace devicemap {
namespace {

class Gpt2 final : public Transformer {
 public:
  Gpt2(const ModelConfig& config, const Weights& weights, Prefetcher& prefetcher, LayerRange layers)
      : Transformer(layers), c_(config), w_(weights), p_(prefetcher) {}

  at::Tensor forward(const at::Tensor& input, KvCache* cache, bool all_positions) override {
    const std::int64_t past = cache ? cache->length() : 0, n = input.size(0);
    if (past + n > c_.max_position_embeddings)
      throw Error("GPT-2 has learned positions for " + std::to_string(c_.max_position_embeddings) +
                  " tokens (n_positions); the sequence would have " + std::to_string(past + n));
    at::Tensor h = input;
    if (has_embedding()) {
      const auto device = w_.execution_device("transformer.wte.weight");
      const at::Tensor positions = at::arange(past, past + n, at::TensorOptions().dtype(at::kLong).device(device));
      h = at::embedding(p_.fetch("transformer.wte.weight", device), input.to(device));
      const auto wpe_device = w_.execution_device("transformer.wpe.weight");
      h = h.add(move(at::embedding(p_.fetch("transformer.wpe.weight", wpe_device), positions.to(wpe_device)), device));
    }
    for (std::int64_t i = layers_.first; i < layers_.end; ++i) {
      stop_if_cancelled();
      p_.enter_block(static_cast<std::size_t>(i));
      h = block(i, h, cache, past);
    }
    p_.leave_blocks();
    if (cache) cache->commit(n);
    if (!has_head(c_.num_layers)) return h;
    if (!all_positions) h = h.narrow(0, n - 1, 1);
    const auto norm_device = w_.execution_device("transformer.ln_f.weight");
    h = layer_norm("transformer.ln_f", move(h, norm_device), norm_device);
    const auto head_device = w_.execution_device("lm_head.weight");
    return dense(move(h, head_device), p_.fetch("lm_head.weight", head_device)).to(at::kCPU, at::kFloat);
  }

 private:
  at::Tensor move(const at::Tensor& h, const c10::Device& device) const {
    return h.to(device, w_.policy().compute_dtype(device));
  }

  at::Tensor layer_norm(const std::string& name, const at::Tensor& x, const c10::Device& device) const {
    return at::layer_norm(x, {c_.hidden_size}, p_.fetch(name + ".weight", device), p_.fetch(name + ".bias", device),
                          c_.norm_eps);
  }

  at::Tensor conv1d(const std::string& name, const at::Tensor& x, const c10::Device& device) const {
    return dense_in_out(x, p_.fetch(name + ".weight", device), p_.fetch(name + ".bias", device));
  }

  at::Tensor activation(const at::Tensor& x) const {
    if (c_.activation == "relu") return at::relu(x);
    if (c_.activation == "gelu") return at::gelu(x);
    return at::gelu(x, "tanh");  // gelu_new and gelu_pytorch_tanh
  }

  c10::Device attention_device(std::int64_t index) const override {
    return w_.execution_device(block_name(c_, index) + ".attn.c_attn.weight");
  }

  at::Tensor block(std::int64_t index, at::Tensor h, KvCache* cache, std::int64_t past) const {
    const std::string b = block_name(c_, index);
    const std::int64_t n = h.size(0), e = c_.hidden_size;

    const auto device = attention_device(index);
    h = move(h, device);
    const at::Tensor qkv = conv1d(b + ".attn.c_attn", layer_norm(b + ".ln_1", h, device), device);
    auto heads = [&](std::int64_t part) {
      return qkv.narrow(1, part * e, e).view({n, c_.num_heads, c_.head_dim}).transpose(0, 1);
    };
    at::Tensor q = heads(0), k = heads(1), v = heads(2);
    if (cache) std::tie(k, v) = cache->append(index, k, v);
    double scale = 1.0 / std::sqrt(double(c_.head_dim));
    if (c_.scale_attn_by_inverse_layer_idx) scale /= double(index + 1);
    h = h.add(conv1d(b + ".attn.c_proj", attention(q, k, v, past, scale), device));

    const auto mlp_device = w_.execution_device(b + ".mlp.c_fc.weight");
    h = move(h, mlp_device);
    const at::Tensor inner = activation(conv1d(b + ".mlp.c_fc", layer_norm(b + ".ln_2", h, mlp_device), mlp_device));
    return h.add(conv1d(b + ".mlp.c_proj", inner, mlp_device));
  }

  const ModelConfig& c_;
  const Weights& w_;
  Prefetcher& p_;
};

}  // namespace

std::unique_ptr<Transformer> make_gpt2(const ModelConfig& config, const Weights& weights, Prefetcher& prefetcher, LayerRange layers) {
  return std::make_unique<Gpt2>(config, weights, prefetcher, layers);
}

}  // namespace devicemap
