// The Llama family's forward pass (Llama 2/3, Mistral, Qwen2, Qwen3, Phi-3, Gemma 1/2/3, TinyLlama,
// SmolLM, and the routed-expert Mixtral, Qwen2-MoE, Qwen3-MoE), following transformers' modeling files:
// RMSNorm → attention with rotary embeddings → residual, RMSNorm → gated MLP (or routed experts) →
// residual. The features a row of the architecture table turns on (ModelConfig) change the steps:
// Gemma's (1 + weight) norms, scaled embeddings, the norms around attention and MLP, soft-capping, and
// local layers with their own RoPE base. Each part runs on the device that executes its weights; the
// hidden state follows it.
#include <array>
#include <cmath>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "error.hpp"
#include "run/attention.hpp"
#include "run/awq.hpp"
#include "run/bnb4.hpp"
#include "run/dense.hpp"
#include "run/gptq.hpp"
#include "run/kv_cache.hpp"
#include "run/model_config.hpp"
#include "run/packed_linear.hpp"
#include "run/prefetcher.hpp"
#include "run/rope.hpp"
#include "run/tensor_layout.hpp"
#include "run/token_ops.hpp"
#include "run/transformer.hpp"
#include "run/weights.hpp"

namespace devicemap {
namespace {

// transformers' LlamaRMSNorm: normalise in float32, cast back, then scale. GemmaRMSNorm (`plus_one`):
// scale the float32 row by (1 + weight) in float32, then cast.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, bool plus_one = false) {
  if (rms_norm_takes(x, weight))
    return rms_norm_kernel(x, weight, eps, plus_one ? kernels::NormWeight::PlusOne : kernels::NormWeight::Plain);
  const at::Tensor f = x.to(at::kFloat);
  const at::Tensor normed = f.mul(at::rsqrt(f.pow(2).mean(-1, true).add(eps)));
  if (plus_one) return normed.mul(weight.to(at::kFloat).add(1.0)).to(x.scalar_type());
  return weight.mul(normed.to(x.scalar_type()));
}

// Gemma 3's local layers rotate by rope_local_base_freq with default RoPE.
ModelConfig local_rope_config(const ModelConfig& config) {
  ModelConfig local = config;
  if (config.local_rope_theta) {
    local.rope_theta = *config.local_rope_theta;
    local.rope_scaling = {};
  }
  return local;
}

at::Tensor inverse_frequencies(const ModelConfig& config, std::int64_t sequence = 0) {
  const std::vector<float> inv = rope_inverse_frequencies(config, sequence);
  return at::tensor(at::ArrayRef<float>(inv.data(), inv.size()), at::TensorOptions().dtype(at::kFloat));
}

at::Tensor rotate_half(const at::Tensor& x) {
  const std::int64_t half = x.size(-1) / 2;
  return at::cat({x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)}, -1);
}

class Llama final : public Transformer {
 public:
  Llama(const ModelConfig& config, const Weights& weights, Prefetcher& prefetcher, LayerRange layers)
      : Transformer(layers),
        c_(config),
        w_(weights),
        p_(prefetcher),
        inv_freq_(inverse_frequencies(config)),
        local_(local_rope_config(config)),
        local_inv_freq_(inverse_frequencies(local_)),
        scale_(config.attention_scale > 0 ? config.attention_scale : 1.0 / std::sqrt(double(config.head_dim))) {
    if (c_.bnb && c_.bnb->method == Quantization::Method::Bnb4) linear_shapes_ = linear_shapes(c_);  // for codes on "disk"
  }

  at::Tensor forward(const at::Tensor& input, KvCache* cache, bool all_positions) override {
    const std::int64_t past = cache ? cache->length() : 0, n = input.size(0);
    at::Tensor h = input;
    if (has_embedding()) {
      const auto embed_device = w_.execution_device("model.embed_tokens.weight");
      h = at::embedding(p_.fetch("model.embed_tokens.weight", embed_device), input.to(embed_device));
      // Gemma: times √hidden_size as a tensor of the hidden dtype (so rounded to it, as transformers does).
      if (c_.embed_scale != 1.0) {
        h = move(h, embed_device);
        h = h.mul(at::scalar_tensor(c_.embed_scale, h.options()));
      }
    }
    // "dynamic" and "longrope" frequencies follow the positions this pass reaches.
    const auto kind = c_.rope_scaling.kind;
    const bool by_length = kind == RopeScaling::Kind::Dynamic || kind == RopeScaling::Kind::LongRope;
    Rotary rotary(by_length ? inverse_frequencies(c_, past + n) : inv_freq_, past, n, rope_attention_scaling(c_));
    std::optional<Rotary> local;
    if (c_.local_rope_theta) local.emplace(local_inv_freq_, past, n, 1.0);
    for (std::int64_t i = layers_.first; i < layers_.end; ++i) {
      stop_if_cancelled();
      p_.enter_block(static_cast<std::size_t>(i));
      h = block(i, h, cache, past, local && c_.window_of(i) ? *local : rotary);
    }
    p_.leave_blocks();
    if (cache) cache->commit(n);
    if (!has_head(c_.num_layers)) return h;
    if (!all_positions) h = h.narrow(0, n - 1, 1);
    const auto norm_device = w_.execution_device("model.norm.weight");
    h = norm(move(h, norm_device), p_.fetch("model.norm.weight", norm_device));
    const auto head_device = w_.execution_device("lm_head.weight");
    at::Tensor logits = dense(move(h, head_device), p_.fetch("lm_head.weight", head_device));
    if (c_.final_softcap) logits = logits.div(*c_.final_softcap).tanh().mul(*c_.final_softcap);  // in the head's dtype
    return logits.to(at::kCPU, at::kFloat);
  }

 private:
  // cos/sin of the new positions ([new, head_dim], float32 like transformers), per device and dtype.
  class Rotary {
   public:
    // `scaling`: yarn's and longrope's attention factor, applied to cos and sin in float32.
    Rotary(const at::Tensor& inv_freq, std::int64_t past, std::int64_t n, double scaling) {
      const at::Tensor positions = at::arange(past, past + n, at::TensorOptions().dtype(at::kLong)).to(at::kFloat);
      const at::Tensor freqs = at::outer(positions, inv_freq);
      const at::Tensor emb = at::cat({freqs, freqs}, -1);
      cos_ = emb.cos();
      sin_ = emb.sin();
      if (scaling != 1.0) {
        cos_ = cos_.mul(scaling);
        sin_ = sin_.mul(scaling);
      }
    }
    std::pair<at::Tensor, at::Tensor> on(const c10::Device& device, at::ScalarType dtype) {
      for (const auto& e : cached_)
        if (e.cos.device() == device && e.cos.scalar_type() == dtype) return {e.cos, e.sin};
      cached_.push_back({cos_.to(device, dtype), sin_.to(device, dtype)});
      return {cached_.back().cos, cached_.back().sin};
    }
    // In float32 on the CPU, for the rotary kernel (which rounds them to the dtype as it goes).
    const at::Tensor& cos() const { return cos_; }
    const at::Tensor& sin() const { return sin_; }

   private:
    struct Entry {
      at::Tensor cos, sin;
    };
    at::Tensor cos_, sin_;
    std::vector<Entry> cached_;
  };

  at::Tensor norm(const at::Tensor& x, const at::Tensor& weight) const { return rms_norm(x, weight, c_.norm_eps, c_.gemma_norm); }

  at::Tensor move(const at::Tensor& h, const c10::Device& device) const {
    return h.to(device, w_.policy().compute_dtype(device));
  }

  c10::Device attention_device(std::int64_t index) const override {
    return w_.execution_device(block_name(c_, index) + (c_.fused_projections ? ".self_attn.qkv_proj" : ".self_attn.q_proj") +
                               main_tensor());
  }

  // The tensor that places a block Linear (and the part of the block it belongs to).
  const char* main_tensor() const { return c_.gptq || c_.awq ? ".qweight" : ".weight"; }

  // A block Linear: dense; packed in RAM (4-bit codes or int8 rows: run/packed_linear.hpp), read by the
  // decode kernels as they are and expanded for a prompt; or, on "disk" or a GPU, as stored and expanded
  // on the device that runs it, each time it runs.
  at::Tensor linear(const std::string& name, const at::Tensor& x, const c10::Device& device) const {
    at::Tensor weight;
    if (const PackedLinear* packed = w_.packed(name)) {
      if (decode_packed_takes(x, *packed)) return packed->decode(x, p_.fetch_if_present(name + ".bias", device));
      weight = packed->dequantize(true);  // float32 on the CPU, used before the next layer expands
      if (!widened_product(x)) weight = weight.to(device, x.scalar_type());
    } else if (c_.awq) {  // AWQ on "disk" or a GPU: expanded where it runs
      weight = dequantize_awq(p_.fetch(name + ".qweight", device).to(at::kCPU), p_.fetch(name + ".qzeros", device).to(at::kCPU),
                              p_.fetch(name + ".scales", device).to(at::kCPU), *c_.awq)
                   .to(device, x.scalar_type());
    } else if (c_.gptq)
      weight = dequantize_gptq(p_.fetch(name + ".qweight", device), p_.fetch(name + ".qzeros", device),
                               p_.fetch(name + ".scales", device), p_.fetch_if_present(name + ".g_idx", device), *c_.gptq);
    else if (c_.bnb && w_.contains(name + ".weight.quant_map")) {  // bitsandbytes 4-bit on "disk" or a GPU: read per use
      const auto q = bnb4(name);
      if (decode_packed_takes(x, *q)) return q->decode(x, p_.fetch_if_present(name + ".bias", device));
      weight = q->dequantize();
      if (!widened_product(x)) weight = weight.to(device, x.scalar_type());
    }
    else if (c_.bnb && w_.contains(name + ".SCB")) {  // bitsandbytes 8-bit: int8 rows times absmax / 127
      const at::Tensor rows = p_.fetch(name + ".weight", device);
      const at::Tensor scale = p_.fetch(name + ".SCB", device).to(at::kFloat).div(127.0);
      if (decode_int8_takes(x, rows)) return decode_dense_int8(x, rows, scale, p_.fetch_if_present(name + ".bias", device));
      weight = rows.to(at::kFloat).mul(scale.unsqueeze(1)).to(x.scalar_type());
    }
    else
      weight = p_.fetch(name + ".weight", device);
    return dense(x, weight, p_.fetch_if_present(name + ".bias", device));
  }

  // A bitsandbytes 4-bit Linear not kept packed (its codes on "disk", where keeping them would hold
  // them in RAM, or on a GPU): its state read on the CPU each time it runs (checked once at load).
  std::shared_ptr<const PackedLinear> bnb4(const std::string& name) const {
    const auto shape = linear_shapes_.find(name);
    if (shape == linear_shapes_.end()) throw Error("'" + name + "' is no Linear of this model");
    const c10::Device cpu(c10::kCPU);
    const auto fetch = [&](const std::string& n) { return w_.contains(n) ? p_.fetch(n, cpu) : at::Tensor(); };
    return read_bnb4(name, shape->second.first, shape->second.second, fetch);
  }

  // Block Linears that read the same input (q/k/v, gate/up): one pass of the decode kernels when they
  // take all of them, else one product each.
  std::vector<at::Tensor> linears(const std::string& prefix, std::initializer_list<const char*> names, const at::Tensor& x,
                                  const c10::Device& device) const {
    std::vector<at::Tensor> weights, biases, out;
    std::vector<const PackedLinear*> packed;
    for (const char* n : names)
      if (const PackedLinear* l = w_.packed(prefix + n)) packed.push_back(l);
    if (packed.size() == names.size() && decode_packed_takes(x, *packed.front())) {
      for (const char* n : names) biases.push_back(p_.fetch_if_present(prefix + n + ".bias", device));
      return decode_together(x, packed, biases);
    }
    bool fused = !c_.gptq && !c_.bnb && !c_.awq;
    for (const char* n : names) {
      if (!fused) break;
      weights.push_back(p_.fetch(prefix + n + ".weight", device));
      biases.push_back(p_.fetch_if_present(prefix + n + ".bias", device));
      fused = decode_kernel_takes(x, weights.back());
    }
    if (fused) return decode_dense(x, weights, biases);
    for (const char* n : names) out.push_back(linear(prefix + n, x, device));
    return out;
  }

  at::Tensor block(std::int64_t index, at::Tensor h, KvCache* cache, std::int64_t past, Rotary& rotary) const {
    const std::string b = block_name(c_, index);
    const std::int64_t n = h.size(0);

    // Attention runs where its projections execute; the cache of this block lives there too.
    const auto device = attention_device(index);
    h = move(h, device);
    const at::Tensor x = norm(h, p_.fetch(b + ".input_layernorm.weight", device));
    auto qkv = c_.fused_projections ? split(linear(b + ".self_attn.qkv_proj", x, device),
                                            {c_.num_heads * c_.head_dim, c_.num_kv_heads * c_.head_dim, c_.num_kv_heads * c_.head_dim})
                                    : linears(b + ".self_attn.", {"q_proj", "k_proj", "v_proj"}, x, device);
    if (c_.qk_norm) {  // Qwen3: each head of q and k normalised over head_dim, before RoPE
      qkv[0] = head_norm(qkv[0], c_.num_heads, p_.fetch(b + ".self_attn.q_norm.weight", device));
      qkv[1] = head_norm(qkv[1], c_.num_kv_heads, p_.fetch(b + ".self_attn.k_norm.weight", device));
    }
    // A decode step rotates the projections' rows in place, before they are viewed as heads.
    const bool kernels = token_ops_take(qkv[0]) && token_ops_take(qkv[1]) && qkv[0].scalar_type() == qkv[1].scalar_type();
    if (kernels) {
      rotary_kernel(qkv[0], c_.num_heads, c_.head_dim, rotary.cos(), rotary.sin());
      rotary_kernel(qkv[1], c_.num_kv_heads, c_.head_dim, rotary.cos(), rotary.sin());
    }
    at::Tensor q = qkv[0].view({n, c_.num_heads, c_.head_dim}).transpose(0, 1);
    at::Tensor k = qkv[1].view({n, c_.num_kv_heads, c_.head_dim}).transpose(0, 1);
    at::Tensor v = qkv[2].view({n, c_.num_kv_heads, c_.head_dim}).transpose(0, 1);
    if (!kernels) {
      const auto [cos, sin] = rotary.on(device, h.scalar_type());
      q = q.mul(cos).add(rotate_half(q).mul(sin));
      k = k.mul(cos).add(rotate_half(k).mul(sin));
    }
    if (cache) std::tie(k, v) = cache->append(index, k, v);
    const at::Tensor attended = attention(q, k, v, past, scale_, c_.window_of(index), c_.attn_softcap);
    at::Tensor attn_out = linear(b + ".self_attn.o_proj", attended, device);
    // Gemma 2/3 normalise the attention's output before the residual, and both sides of the MLP.
    if (c_.sandwich_norms) attn_out = norm(attn_out, p_.fetch(b + ".post_attention_layernorm.weight", device));
    h = residual(h, attn_out);

    // The MLP runs where its first weight (a sparse layer: its router) executes.
    const bool sparse = c_.sparse_layer(index);
    const std::string mlp = b + (sparse && c_.moe->mixtral_names ? ".block_sparse_moe." : ".mlp.");
    const std::string first = sparse ? "gate.weight" : (c_.fused_projections ? "gate_up_proj" : "gate_proj") + std::string(main_tensor());
    const auto mlp_device = w_.execution_device(mlp + first);
    h = move(h, mlp_device);
    const char* pre_mlp = c_.sandwich_norms ? ".pre_feedforward_layernorm.weight" : ".post_attention_layernorm.weight";
    const at::Tensor y = norm(h, p_.fetch(b + pre_mlp, mlp_device));
    at::Tensor out = sparse              ? experts(mlp, y, mlp_device)
                     : c_.fused_projections ? gated_mlp(mlp, {"gate_up_proj", "", "down_proj"}, y, mlp_device)
                                            : gated_mlp(mlp, {"gate_proj", "up_proj", "down_proj"}, y, mlp_device);
    if (c_.sandwich_norms) out = norm(out, p_.fetch(b + ".post_feedforward_layernorm.weight", mlp_device));
    return residual(h, out);
  }

  // A fused projection's output cut into its parts along the features, each contiguous (Phi-3's
  // qkv_proj holds the q, k and v rows in that order; gate_up_proj the gate rows, then the up rows).
  static std::vector<at::Tensor> split(const at::Tensor& fused, std::initializer_list<std::int64_t> widths) {
    std::vector<at::Tensor> parts;
    std::int64_t at = 0;
    for (const auto w : widths) {
      parts.push_back(fused.narrow(-1, at, w).contiguous());
      at += w;
    }
    return parts;
  }

  // down(act(gate(y)) · up(y)), `names` = {gate, up, down} under `prefix` ({"gate_up_proj", "", down}
  // for Phi-3's fused gate and up); act is SiLU, or Gemma's tanh GELU (or exact GELU where asked).
  at::Tensor gated_mlp(const std::string& prefix, std::array<const char*, 3> names, const at::Tensor& y,
                       const c10::Device& device) const {
    const auto gate_up = *names[1] == '\0' ? split(linear(prefix + names[0], y, device), {c_.intermediate_size, c_.intermediate_size})
                                           : linears(prefix, {names[0], names[1]}, y, device);
    const bool kernels = token_ops_take(gate_up[0]) && gate_up[1].scalar_type() == gate_up[0].scalar_type();
    at::Tensor gated;
    if (c_.activation == "silu")
      gated = kernels ? silu_mul_kernel(gate_up[0], gate_up[1]) : at::silu(gate_up[0]).mul(gate_up[1]);
    else if (c_.activation == "gelu_pytorch_tanh")
      gated = kernels ? gelu_tanh_mul_kernel(gate_up[0], gate_up[1]) : at::gelu(gate_up[0], "tanh").mul(gate_up[1]);
    else
      gated = at::gelu(gate_up[0]).mul(gate_up[1]);
    return linear(prefix + names[2], gated, device);
  }

  // A sparse layer's MLP, as MixtralSparseMoeBlock / Qwen2MoeSparseMoeBlock / Qwen3MoeSparseMoeBlock compute it: softmax of the
  // router's logits in float32, the top_k of it (renormalised where the model does), cast to the hidden
  // dtype; each chosen expert runs on the rows that chose it, in ascending expert order, and its output
  // times the routing weight is added into a zeroed sum. Only the chosen experts' weights are read.
  at::Tensor experts(const std::string& prefix, const at::Tensor& y, const c10::Device& device) const {
    const auto& m = *c_.moe;
    const at::Tensor probs = at::softmax(dense(y, p_.fetch(prefix + "gate.weight", device)), 1, at::kFloat);
    auto [weights, chosen] = at::topk(probs, m.top_k, -1);
    if (m.normalize_top_k) weights = weights / weights.sum(-1, true);
    weights = weights.to(y.scalar_type());
    const at::Tensor picks = chosen.to(at::kCPU, at::kLong).contiguous();
    const std::int64_t* pick = picks.data_ptr<std::int64_t>();
    std::vector<std::vector<std::int64_t>> rows(static_cast<std::size_t>(m.experts)), slots(rows.size());
    for (std::int64_t t = 0; t < y.size(0); ++t)
      for (std::int64_t k = 0; k < m.top_k; ++k) {
        const std::int64_t e = pick[t * m.top_k + k];
        rows[static_cast<std::size_t>(e)].push_back(t);
        slots[static_cast<std::size_t>(e)].push_back(k);
      }
    at::Tensor out = at::zeros_like(y);
    const auto names = m.mixtral_names ? std::array<const char*, 3>{"w1", "w3", "w2"}
                                       : std::array<const char*, 3>{"gate_proj", "up_proj", "down_proj"};
    const auto index = [&](const std::vector<std::int64_t>& v) {
      return at::tensor(at::ArrayRef<std::int64_t>(v.data(), v.size()), at::TensorOptions().dtype(at::kLong)).to(y.device());
    };
    for (std::size_t e = 0; e < rows.size(); ++e) {
      if (rows[e].empty()) continue;
      const at::Tensor tokens = index(rows[e]);
      const at::Tensor x = rows[e].size() == static_cast<std::size_t>(y.size(0)) ? y : y.index_select(0, tokens);
      const at::Tensor routed = gated_mlp(prefix + "experts." + std::to_string(e) + ".", names, x, device);
      const at::Tensor w = weights.index({tokens, index(slots[e])}).unsqueeze(1);
      out.index_add_(0, tokens, routed.mul(w));
    }
    if (m.shared_intermediate > 0) {  // Qwen2-MoE: + sigmoid(shared_expert_gate(y)) · shared_expert(y)
      const at::Tensor shared = gated_mlp(prefix + "shared_expert.", {"gate_proj", "up_proj", "down_proj"}, y, device);
      const at::Tensor gate = at::sigmoid(dense(y, p_.fetch(prefix + "shared_expert_gate.weight", device)));
      out = out.add(gate.mul(shared));
    }
    return out;
  }

  // RMSNorm of each head of a projection's output [n, heads · head_dim], as q_norm(q.view(…, head_dim)).
  at::Tensor head_norm(const at::Tensor& x, std::int64_t heads, const at::Tensor& weight) const {
    const at::Tensor rows = x.contiguous().view({x.size(0) * heads, c_.head_dim});
    const kernels::NormWeight style = c_.gemma_norm ? kernels::NormWeight::PlusOne : kernels::NormWeight::Plain;
    const at::Tensor normed = token_ops_take(x) && rms_norm_takes(rows.narrow(0, 0, 1), weight)
                                  ? rms_norm_kernel(rows, weight, c_.norm_eps, style)
                                  : rms_norm(rows, weight, c_.norm_eps, c_.gemma_norm);
    return normed.view({x.size(0), heads * c_.head_dim});
  }

  // h + y: in place on a decode step's CPU rows (h is this forward's own tensor), else LibTorch's add.
  static at::Tensor residual(at::Tensor h, const at::Tensor& y) {
    if (token_ops_take(h) && token_ops_take(y) && y.scalar_type() == h.scalar_type() && y.sizes() == h.sizes()) {
      add_kernel(h, y);
      return h;
    }
    return h.add(y);
  }

  const ModelConfig& c_;
  const Weights& w_;
  Prefetcher& p_;
  std::map<std::string, std::pair<std::int64_t, std::int64_t>, std::less<>> linear_shapes_;
  at::Tensor inv_freq_;
  ModelConfig local_;  // the config of Gemma 3's local layers' RoPE
  at::Tensor local_inv_freq_;
  double scale_;
};

}  // namespace

std::unique_ptr<Transformer> make_llama(const ModelConfig& config, const Weights& weights, Prefetcher& prefetcher, LayerRange layers) {
  return std::make_unique<Llama>(config, weights, prefetcher, layers);
}

}  // namespace devicemap
