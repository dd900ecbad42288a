// Module trees as transformers registers them (…ForCausalLM.__init__ order). Shape symbols:
// H hidden, I intermediate, V vocab, NH heads, KV key/value heads, D head dim, P positions, E experts.
#include "model/architecture.hpp"

namespace devicemap {
namespace {

// The decoder-only tree of the Llama family; `block` is what a decoder layer holds, in registration order.
std::vector<ModuleRule> decoder_tree(std::vector<ModuleRule> block) {
  std::vector<ModuleRule> rows{
      {"", "{}ForCausalLM", ""},
      {"model", "{}Model", ""},
      {"model.embed_tokens", "Embedding", "weight=V,H"},
      {"model.layers", "ModuleList", ""},
      {"model.layers.#", "{}DecoderLayer", ""},
  };
  rows.insert(rows.end(), block.begin(), block.end());
  rows.insert(rows.end(), {
                              {"model.norm", "{}RMSNorm", "weight=H"},
                              {"model.rotary_emb", "{}RotaryEmbedding", ""},
                              {"lm_head", "Linear", "weight!=V,H"},
                          });
  return rows;
}

// Separate q/k/v/o projections (biases where the config asks); Qwen3 adds an RMSNorm over each head of q
// and of k, registered after o_proj.
std::vector<ModuleRule> attention_rows(bool o_proj_bias, bool qk_norm) {
  std::vector<ModuleRule> rows{
      {"model.layers.#.self_attn", "{}Attention", ""},
      {"model.layers.#.self_attn.q_proj", "Linear", "weight=NH*D,H;bias?=NH*D"},
      {"model.layers.#.self_attn.k_proj", "Linear", "weight=KV*D,H;bias?=KV*D"},
      {"model.layers.#.self_attn.v_proj", "Linear", "weight=KV*D,H;bias?=KV*D"},
      {"model.layers.#.self_attn.o_proj", "Linear", o_proj_bias ? "weight=H,NH*D;bias?=H" : "weight=H,NH*D"},
  };
  if (qk_norm) {
    rows.push_back({"model.layers.#.self_attn.q_norm", "{}RMSNorm", "weight=D"});
    rows.push_back({"model.layers.#.self_attn.k_norm", "{}RMSNorm", "weight=D"});
  }
  return rows;
}

// Llama, Mistral, Qwen2, Qwen3: that attention and a gated MLP.
std::vector<ModuleRule> llama_like(bool o_proj_bias, bool qk_norm = false) {
  std::vector<ModuleRule> block = attention_rows(o_proj_bias, qk_norm);
  block.insert(block.end(), {
      {"model.layers.#.mlp", "{}MLP", ""},
      {"model.layers.#.mlp.gate_proj", "Linear", "weight=I,H"},
      {"model.layers.#.mlp.up_proj", "Linear", "weight=I,H"},
      {"model.layers.#.mlp.down_proj", "Linear", "weight=H,I"},
      {"model.layers.#.mlp.act_fn", "SiLU", ""},
      {"model.layers.#.input_layernorm", "{}RMSNorm", "weight=H"},
      {"model.layers.#.post_attention_layernorm", "{}RMSNorm", "weight=H"},
  });
  return decoder_tree(std::move(block));
}

// A Qwen MoE decoder layer after its attention rows: the router, the experts (of moe_intermediate_size,
// "IE"), Qwen2-MoE's shared expert ("IS") and its gate, then the two norms.
std::vector<ModuleRule> qwen_moe_block(std::vector<ModuleRule> block, bool shared_expert) {
  block.insert(block.end(), {
      {"model.layers.#.mlp", "{}SparseMoeBlock", ""},
      {"model.layers.#.mlp.gate", "Linear", "weight=E,H"},
      {"model.layers.#.mlp.experts", "ModuleList", ""},
      {"model.layers.#.mlp.experts.#", "{}MLP", ""},
      {"model.layers.#.mlp.experts.#.gate_proj", "Linear", "weight=IE,H"},
      {"model.layers.#.mlp.experts.#.up_proj", "Linear", "weight=IE,H"},
      {"model.layers.#.mlp.experts.#.down_proj", "Linear", "weight=H,IE"},
      {"model.layers.#.mlp.experts.#.act_fn", "SiLU", ""},
  });
  if (shared_expert)
    block.insert(block.end(), {
        {"model.layers.#.mlp.shared_expert", "{}MLP", ""},
        {"model.layers.#.mlp.shared_expert.gate_proj", "Linear", "weight=IS,H"},
        {"model.layers.#.mlp.shared_expert.up_proj", "Linear", "weight=IS,H"},
        {"model.layers.#.mlp.shared_expert.down_proj", "Linear", "weight=H,IS"},
        {"model.layers.#.mlp.shared_expert.act_fn", "SiLU", ""},
        {"model.layers.#.mlp.shared_expert_gate", "Linear", "weight=1,H"},
    });
  block.insert(block.end(), {
      {"model.layers.#.input_layernorm", "{}RMSNorm", "weight=H"},
      {"model.layers.#.post_attention_layernorm", "{}RMSNorm", "weight=H"},
  });
  return block;
}

const std::vector<BufferRule> kRotary{{"model.rotary_emb.inv_freq", "D/2", DType::F32, false}};

const std::vector<Architecture>& table() {
  static const std::vector<Architecture> rows = [] {
    std::vector<Architecture> t;
    auto llama = [&](std::string_view type, std::string_view prefix, bool qkv_bias, bool o_bias, bool qk_norm = false) {
      t.push_back({type, prefix, "{}DecoderLayer", "model.layers", "model.embed_tokens.weight", "lm_head.weight",
                   qkv_bias, false, llama_like(o_bias, qk_norm), kRotary});
    };
    llama("llama", "Llama", false, true);
    llama("mistral", "Mistral", false, false);
    llama("qwen2", "Qwen2", true, false);
    llama("qwen3", "Qwen3", false, true, true);

    t.push_back({"mixtral", "Mixtral", "{}DecoderLayer", "model.layers", "model.embed_tokens.weight", "lm_head.weight",
                 false, false,
                 decoder_tree({
                     {"model.layers.#.self_attn", "{}Attention", ""},
                     {"model.layers.#.self_attn.q_proj", "Linear", "weight=NH*D,H"},
                     {"model.layers.#.self_attn.k_proj", "Linear", "weight=KV*D,H"},
                     {"model.layers.#.self_attn.v_proj", "Linear", "weight=KV*D,H"},
                     {"model.layers.#.self_attn.o_proj", "Linear", "weight=H,NH*D"},
                     {"model.layers.#.block_sparse_moe", "{}SparseMoeBlock", ""},
                     {"model.layers.#.block_sparse_moe.gate", "Linear", "weight=E,H"},
                     {"model.layers.#.block_sparse_moe.experts", "ModuleList", ""},
                     {"model.layers.#.block_sparse_moe.experts.#", "{}BlockSparseTop2MLP", ""},
                     {"model.layers.#.block_sparse_moe.experts.#.w1", "Linear", "weight=I,H"},
                     {"model.layers.#.block_sparse_moe.experts.#.w2", "Linear", "weight=H,I"},
                     {"model.layers.#.block_sparse_moe.experts.#.w3", "Linear", "weight=I,H"},
                     {"model.layers.#.block_sparse_moe.experts.#.act_fn", "SiLU", ""},
                     {"model.layers.#.input_layernorm", "{}RMSNorm", "weight=H"},
                     {"model.layers.#.post_attention_layernorm", "{}RMSNorm", "weight=H"},
                 }),
                 kRotary});

    // Qwen2-MoE: Qwen2's attention (q/k/v biases), a router, experts, and a shared expert with its gate.
    t.push_back({"qwen2_moe", "Qwen2Moe", "{}DecoderLayer", "model.layers", "model.embed_tokens.weight", "lm_head.weight",
                 true, false, decoder_tree(qwen_moe_block(attention_rows(false, false), true)), kRotary});
    // Qwen3-MoE: Qwen3's attention (q/k norms, biases where asked), a router and experts in every layer.
    // (Layers listed in mlp_only_layers hold a dense MLP instead; the table plans them as sparse.)
    t.push_back({"qwen3_moe", "Qwen3Moe", "{}DecoderLayer", "model.layers", "model.embed_tokens.weight", "lm_head.weight",
                 false, false, decoder_tree(qwen_moe_block(attention_rows(true, true), false)), kRotary});

    t.push_back({"phi3", "Phi3", "{}DecoderLayer", "model.layers", "model.embed_tokens.weight", "lm_head.weight", false, false,
                 decoder_tree({
                     {"model.layers.#.self_attn", "{}Attention", ""},
                     {"model.layers.#.self_attn.o_proj", "Linear", "weight=H,NH*D"},
                     {"model.layers.#.self_attn.qkv_proj", "Linear", "weight=(NH+2*KV)*D,H"},
                     {"model.layers.#.mlp", "{}MLP", ""},
                     {"model.layers.#.mlp.gate_up_proj", "Linear", "weight=2*I,H"},
                     {"model.layers.#.mlp.down_proj", "Linear", "weight=H,I"},
                     {"model.layers.#.mlp.activation_fn", "SiLU", ""},
                     {"model.layers.#.input_layernorm", "{}RMSNorm", "weight=H"},
                     {"model.layers.#.resid_attn_dropout", "Dropout", ""},
                     {"model.layers.#.resid_mlp_dropout", "Dropout", ""},
                     {"model.layers.#.post_attention_layernorm", "{}RMSNorm", "weight=H"},
                 }),
                 kRotary});

    t.push_back({"gpt2", "GPT2", "{}Block", "transformer.h", "transformer.wte.weight", "lm_head.weight", false, true,
                 {
                     {"", "{}LMHeadModel", ""},
                     {"transformer", "{}Model", ""},
                     {"transformer.wte", "Embedding", "weight=V,H"},
                     {"transformer.wpe", "Embedding", "weight=P,H"},
                     {"transformer.drop", "Dropout", ""},
                     {"transformer.h", "ModuleList", ""},
                     {"transformer.h.#", "{}Block", ""},
                     {"transformer.h.#.ln_1", "LayerNorm", "weight=H;bias=H"},
                     {"transformer.h.#.attn", "{}Attention", ""},
                     {"transformer.h.#.attn.c_attn", "Conv1D", "weight=H,3*H;bias=3*H"},
                     {"transformer.h.#.attn.c_proj", "Conv1D", "weight=H,H;bias=H"},
                     {"transformer.h.#.attn.attn_dropout", "Dropout", ""},
                     {"transformer.h.#.attn.resid_dropout", "Dropout", ""},
                     {"transformer.h.#.ln_2", "LayerNorm", "weight=H;bias=H"},
                     {"transformer.h.#.mlp", "{}MLP", ""},
                     {"transformer.h.#.mlp.c_fc", "Conv1D", "weight=H,I;bias=I"},
                     {"transformer.h.#.mlp.c_proj", "Conv1D", "weight=I,H;bias=H"},
                     {"transformer.h.#.mlp.act", "NewGELUActivation", ""},
                     {"transformer.h.#.mlp.dropout", "Dropout", ""},
                     {"transformer.ln_f", "LayerNorm", "weight=H;bias=H"},
                     {"lm_head", "Linear", "weight!=V,H"},
                 },
                 {{"transformer.h.#.attn.bias", "1,1,P,P", DType::Bool, false},
                  {"transformer.h.#.attn.masked_bias", "", DType::F32, false}}});

    t.push_back({"bloom", "Bloom", "{}Block", "transformer.h", "transformer.word_embeddings.weight", "lm_head.weight",
                 false, true,
                 {
                     {"", "{}ForCausalLM", ""},
                     {"transformer", "{}Model", ""},
                     {"transformer.word_embeddings", "Embedding", "weight=V,H"},
                     {"transformer.word_embeddings_layernorm", "LayerNorm", "weight=H;bias=H"},
                     {"transformer.h", "ModuleList", ""},
                     {"transformer.h.#", "{}Block", ""},
                     {"transformer.h.#.input_layernorm", "LayerNorm", "weight=H;bias=H"},
                     {"transformer.h.#.self_attention", "{}Attention", ""},
                     {"transformer.h.#.self_attention.query_key_value", "Linear", "weight=3*H,H;bias=3*H"},
                     {"transformer.h.#.self_attention.dense", "Linear", "weight=H,H;bias=H"},
                     {"transformer.h.#.self_attention.attention_dropout", "Dropout", ""},
                     {"transformer.h.#.post_attention_layernorm", "LayerNorm", "weight=H;bias=H"},
                     {"transformer.h.#.mlp", "{}MLP", ""},
                     {"transformer.h.#.mlp.dense_h_to_4h", "Linear", "weight=4*H,H;bias=4*H"},
                     {"transformer.h.#.mlp.gelu_impl", "{}Gelu", ""},
                     {"transformer.h.#.mlp.dense_4h_to_h", "Linear", "weight=H,4*H;bias=H"},
                     {"transformer.ln_f", "LayerNorm", "weight=H;bias=H"},
                     {"lm_head", "Linear", "weight!=V,H"},
                 },
                 {}});
    return t;
  }();
  return rows;
}

}  // namespace

const Architecture* find_architecture(std::string_view model_type) {
  for (const auto& a : table())
    if (a.model_type == model_type) return &a;
  return nullptr;
}

std::vector<std::string_view> known_model_types() {
  std::vector<std::string_view> out;
  for (const auto& a : table()) out.push_back(a.model_type);
  return out;
}

}  // namespace devicemap
