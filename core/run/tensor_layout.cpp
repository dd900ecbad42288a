#include "run/tensor_layout.hpp"

namespace devicemap {
namespace {

using Shape = std::vector<std::int64_t>;

void add_linear(std::vector<TensorSpec>& out, const std::string& name, std::int64_t out_features,
                std::int64_t in_features, bool bias) {
  out.push_back({name + ".weight", {out_features, in_features}, {}, false, true});
  if (bias) out.push_back({name + ".bias", {out_features}, {}});
}

// A GPTQ Linear: packed weights and zeros, scales per group and output, the group of each input row.
void add_gptq_linear(std::vector<TensorSpec>& out, const std::string& name, std::int64_t out_features,
                     std::int64_t in_features, bool bias, const GptqConfig& q) {
  const std::int64_t pack = 32 / q.bits;
  const std::int64_t groups = q.group_size < 0 ? 1 : (in_features + q.group_size - 1) / q.group_size;
  out.push_back({name + ".qweight", {in_features / pack, out_features}, {}});
  out.push_back({name + ".qzeros", {groups, out_features / pack}, {}});
  out.push_back({name + ".scales", {groups, out_features}, {}});
  out.push_back({name + ".g_idx", {in_features}, {}, true});
  // AutoGPTQ saves a bias only where the layer had one; when present, it is used.
  out.push_back({name + ".bias", {out_features}, {}, !bias});
}

std::vector<TensorSpec> llama_tensors(const ModelConfig& c) {
  std::vector<TensorSpec> t;
  // Block Linears are quantized in a GPTQ checkpoint; embeddings and head never are.
  auto block_linear = [&](std::vector<TensorSpec>& out, const std::string& name, std::int64_t o, std::int64_t i, bool bias) {
    if (c.gptq)
      add_gptq_linear(out, name, o, i, bias, *c.gptq);
    else
      add_linear(out, name, o, i, bias);
  };
  const std::int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  t.push_back({"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}, {}, false, true});
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string b = block_name(c, i);
    t.push_back({b + ".input_layernorm.weight", {c.hidden_size}, {}});
    if (c.fused_projections) {  // Phi-3: o_proj registered before qkv_proj
      block_linear(t, b + ".self_attn.o_proj", c.hidden_size, q, c.out_proj_bias);
      block_linear(t, b + ".self_attn.qkv_proj", q + 2 * kv, c.hidden_size, c.qkv_bias);
    } else {
      block_linear(t, b + ".self_attn.q_proj", q, c.hidden_size, c.qkv_bias);
      block_linear(t, b + ".self_attn.k_proj", kv, c.hidden_size, c.qkv_bias);
      block_linear(t, b + ".self_attn.v_proj", kv, c.hidden_size, c.qkv_bias);
      block_linear(t, b + ".self_attn.o_proj", c.hidden_size, q, c.out_proj_bias);
    }
    if (c.qk_norm) {
      t.push_back({b + ".self_attn.q_norm.weight", {c.head_dim}, {}});
      t.push_back({b + ".self_attn.k_norm.weight", {c.head_dim}, {}});
    }
    t.push_back({b + ".post_attention_layernorm.weight", {c.hidden_size}, {}});
    if (c.sparse_layer(i)) {
      // The router, then each expert (as the sparse block registers them).
      const auto& m = *c.moe;
      const std::string block = b + (m.mixtral_names ? ".block_sparse_moe." : ".mlp.");
      t.push_back({block + "gate.weight", {m.experts, c.hidden_size}, {}, false, true});
      for (std::int64_t e = 0; e < m.experts; ++e) {
        const std::string x = block + "experts." + std::to_string(e) + ".";
        const std::int64_t inner = m.expert_intermediate;
        block_linear(t, x + (m.mixtral_names ? "w1" : "gate_proj"), inner, c.hidden_size, false);
        if (m.mixtral_names) {
          block_linear(t, x + "w2", c.hidden_size, inner, false);
          block_linear(t, x + "w3", inner, c.hidden_size, false);
        } else {
          block_linear(t, x + "up_proj", inner, c.hidden_size, false);
          block_linear(t, x + "down_proj", c.hidden_size, inner, false);
        }
      }
      if (m.shared_intermediate > 0) {  // Qwen2-MoE: the shared expert, then its gate
        block_linear(t, block + "shared_expert.gate_proj", m.shared_intermediate, c.hidden_size, false);
        block_linear(t, block + "shared_expert.up_proj", m.shared_intermediate, c.hidden_size, false);
        block_linear(t, block + "shared_expert.down_proj", c.hidden_size, m.shared_intermediate, false);
        t.push_back({block + "shared_expert_gate.weight", {1, c.hidden_size}, {}, false, true});
      }
    } else if (c.fused_projections) {
      block_linear(t, b + ".mlp.gate_up_proj", 2 * c.intermediate_size, c.hidden_size, c.mlp_bias);
      block_linear(t, b + ".mlp.down_proj", c.hidden_size, c.intermediate_size, c.mlp_bias);
    } else {
      block_linear(t, b + ".mlp.gate_proj", c.intermediate_size, c.hidden_size, c.mlp_bias);
      block_linear(t, b + ".mlp.up_proj", c.intermediate_size, c.hidden_size, c.mlp_bias);
      block_linear(t, b + ".mlp.down_proj", c.hidden_size, c.intermediate_size, c.mlp_bias);
    }
  }
  t.push_back({"model.norm.weight", {c.hidden_size}, {}});
  t.push_back({"lm_head.weight", {c.vocab_size, c.hidden_size},
               c.tie_word_embeddings ? "model.embed_tokens.weight" : "", false, true});
  return t;
}

// GPT-2's Conv1D stores weights as [in, out].
void add_conv1d(std::vector<TensorSpec>& out, const std::string& name, std::int64_t in, std::int64_t out_features) {
  out.push_back({name + ".weight", {in, out_features}, {}});
  out.push_back({name + ".bias", {out_features}, {}});
}

void add_layer_norm(std::vector<TensorSpec>& out, const std::string& name, std::int64_t size) {
  out.push_back({name + ".weight", {size}, {}});
  out.push_back({name + ".bias", {size}, {}});
}

std::vector<TensorSpec> gpt2_tensors(const ModelConfig& c) {
  std::vector<TensorSpec> t;
  const std::int64_t e = c.hidden_size;
  t.push_back({"transformer.wte.weight", {c.vocab_size, e}, {}, false, true});
  t.push_back({"transformer.wpe.weight", {c.max_position_embeddings, e}, {}, false, true});
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string b = block_name(c, i);
    add_layer_norm(t, b + ".ln_1", e);
    add_conv1d(t, b + ".attn.c_attn", e, 3 * e);
    add_conv1d(t, b + ".attn.c_proj", e, e);
    add_layer_norm(t, b + ".ln_2", e);
    add_conv1d(t, b + ".mlp.c_fc", e, c.intermediate_size);
    add_conv1d(t, b + ".mlp.c_proj", c.intermediate_size, e);
  }
  add_layer_norm(t, "transformer.ln_f", e);
  t.push_back({"lm_head.weight", {c.vocab_size, e}, c.tie_word_embeddings ? "transformer.wte.weight" : "", false, true});
  return t;
}

}  // namespace

std::vector<TensorSpec> expected_tensors(const ModelConfig& config) {
  switch (config.family) {
    case ModelFamily::Llama: return llama_tensors(config);
    case ModelFamily::Gpt2: return gpt2_tensors(config);
  }
  return {};
}

std::string block_name(const ModelConfig& config, std::int64_t index) {
  return (config.family == ModelFamily::Gpt2 ? "transformer.h." : "model.layers.") + std::to_string(index);
}

std::string alternative_checkpoint_name(const ModelConfig& config, const std::string& name) {
  const std::string prefix = "transformer.";
  if (config.family == ModelFamily::Gpt2 && name.rfind(prefix, 0) == 0) return name.substr(prefix.size());
  return {};
}

}  // namespace devicemap
