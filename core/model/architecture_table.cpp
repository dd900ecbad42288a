// Module trees as transformers registers them (…ForCausalLM.__init__ order), and the forward features
// of each type. Shape symbols: H hidden, I intermediate, V vocab, NH heads, KV key/value heads, D head
// dim, P positions, E experts, IE an expert's intermediate size, IS the shared experts'; DeepSeek's
// attention: QR q_lora_rank, KR kv_lora_rank, QN qk_nope_head_dim, QP qk_rope_head_dim, VD v_head_dim;
// image encoders: VH, VI, VP, PS, VC (see architecture_tensors.hpp).
#include "model/architecture.hpp"

#include <deque>
#include <string>

namespace devicemap {
namespace {

using Rows = std::vector<ModuleRule>;

// Rows hold string_views: paths made up here are kept for the program's life (the table is built once).
std::string_view keep(std::string s) {
  static std::deque<std::string> storage;
  return storage.emplace_back(std::move(s));
}

// The decoder-only tree of the Llama family under `base` ("model"); `block` is what a decoder layer
// holds, in registration order, with paths under "model.layers.#".
Rows decoder_tree(Rows block, Rows after_norm = {{"model.rotary_emb", "{}RotaryEmbedding", ""}}) {
  Rows rows{
      {"", "{}ForCausalLM", ""},
      {"model", "{}Model", ""},
      {"model.embed_tokens", "Embedding", "weight=V,H"},
      {"model.layers", "ModuleList", ""},
      {"model.layers.#", "{}DecoderLayer", ""},
  };
  rows.insert(rows.end(), block.begin(), block.end());
  rows.push_back({"model.norm", "{}RMSNorm", "weight=H"});
  rows.insert(rows.end(), after_norm.begin(), after_norm.end());
  rows.push_back({"lm_head", "Linear", "weight!=V,H"});
  return rows;
}

// Separate q/k/v/o projections (biases where the config asks); Qwen3 and Gemma 3 add an RMSNorm over each
// head of q and of k, registered after o_proj.
Rows attention_rows(bool o_proj_bias, bool qk_norm) {
  Rows rows{
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

// A gated MLP under `path` of inner size `inner` ("I", "IE", "IS"), on the layers of `kind`.
Rows gated_mlp(std::string_view path, std::string_view cls, std::string_view act, const char* shapes[3],
               LayerKind kind = LayerKind::All) {
  const std::string p(path);
  return {
      {path, cls, "", kind},
      {keep(p + ".gate_proj"), "Linear", shapes[0], kind},
      {keep(p + ".up_proj"), "Linear", shapes[1], kind},
      {keep(p + ".down_proj"), "Linear", shapes[2], kind},
      {keep(p + ".act_fn"), act, "", kind},
  };
}

const char* kDenseMlp[3] = {"weight=I,H;bias?mlp=I", "weight=I,H;bias?mlp=I", "weight=H,I;bias?mlp=H"};
const char* kExpertMlp[3] = {"weight=IE,H", "weight=IE,H", "weight=H,IE"};
const char* kSharedMlp[3] = {"weight=IS,H", "weight=IS,H", "weight=H,IS"};

Rows concat(std::initializer_list<Rows> parts) {
  Rows out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

const Rows kLlamaNorms{
    {"model.layers.#.input_layernorm", "{}RMSNorm", "weight=H"},
    {"model.layers.#.post_attention_layernorm", "{}RMSNorm", "weight=H"},
};

// Gemma 2 and 3 normalise the attention's output and both sides of the MLP as well.
const Rows kSandwichNorms{
    {"model.layers.#.input_layernorm", "{}RMSNorm", "weight=H"},
    {"model.layers.#.post_attention_layernorm", "{}RMSNorm", "weight=H"},
    {"model.layers.#.pre_feedforward_layernorm", "{}RMSNorm", "weight=H"},
    {"model.layers.#.post_feedforward_layernorm", "{}RMSNorm", "weight=H"},
};

// Llama, Mistral, Qwen2, Qwen3: that attention and a gated MLP.
Rows llama_like(bool o_proj_bias, bool qk_norm = false) {
  return decoder_tree(concat({attention_rows(o_proj_bias, qk_norm), gated_mlp("model.layers.#.mlp", "{}MLP", "SiLU", kDenseMlp), kLlamaNorms}));
}

// A Qwen MoE decoder layer after its attention rows: on sparse layers the router, the experts and
// Qwen2-MoE's shared expert with its gate; on the layers mlp_only_layers keeps dense, a gated MLP.
Rows qwen_moe_block(Rows block, bool shared_expert) {
  block.insert(block.end(), {
      {"model.layers.#.mlp", "{}SparseMoeBlock", "", LayerKind::Sparse},
      {"model.layers.#.mlp.gate", "Linear", "weight=E,H", LayerKind::Sparse},
      {"model.layers.#.mlp.experts", "ModuleList", "", LayerKind::Sparse},
  });
  block = concat({block, gated_mlp("model.layers.#.mlp.experts.#", "{}MLP", "SiLU", kExpertMlp, LayerKind::Sparse)});
  if (shared_expert) {
    block = concat({block, gated_mlp("model.layers.#.mlp.shared_expert", "{}MLP", "SiLU", kSharedMlp, LayerKind::Sparse)});
    block.push_back({"model.layers.#.mlp.shared_expert_gate", "Linear", "weight=1,H", LayerKind::Sparse});
  }
  return concat({block, gated_mlp("model.layers.#.mlp", "{}MLP", "SiLU", kDenseMlp, LayerKind::Dense), kLlamaNorms});
}

// Gemma 2 and 3 decoder layers: attention (Gemma 3: with q/k norms), a GELU-gated MLP, four norms.
Rows gemma_block(bool qk_norm, bool sandwich) {
  return concat({attention_rows(true, qk_norm), gated_mlp("model.layers.#.mlp", "{}MLP", "PytorchGELUTanh", kDenseMlp),
                 sandwich ? kSandwichNorms : kLlamaNorms});
}

const std::vector<BufferRule> kRotary{{"model.rotary_emb.inv_freq", "D/2", DType::F32, false}};

// Gemma 3's language model rows (its decoder layer, with the local rotary embedding after the global
// one), rooted at `model`: "model" for Gemma3ForCausalLM, "model.language_model" inside the multimodal model.
Rows gemma3_language_model(bool multimodal) {
  Rows block = decoder_tree(gemma_block(true, true), {{"model.rotary_emb", "{}RotaryEmbedding", ""},
                                                      {"model.rotary_emb_local", "{}RotaryEmbedding", ""}});
  block[0].cls = "{}ForCausalLM";
  block[1].cls = "{}TextModel";
  block[2].cls = "{}TextScaledWordEmbedding";
  if (!multimodal) return block;
  Rows out;
  for (auto r : block) {
    if (r.path.empty() || r.path == "lm_head") continue;
    r.path = keep("model.language_model" + std::string(r.path.substr(5)));
    if (r.path == "model.language_model") r.cls = "{}TextModel";
    out.push_back(r);
  }
  return out;
}

// SigLIP's vision transformer as Gemma 3 holds it (no pooling head): patch and position embeddings, the
// encoder layers ('@'), a final LayerNorm.
Rows siglip_vision_tower() {
  return {
      {"model.vision_tower", "SiglipVisionModel", ""},
      {"model.vision_tower.vision_model", "SiglipVisionTransformer", ""},
      {"model.vision_tower.vision_model.embeddings", "SiglipVisionEmbeddings", ""},
      {"model.vision_tower.vision_model.embeddings.patch_embedding", "Conv2d", "weight=VH,VC,PS,PS;bias=VH"},
      {"model.vision_tower.vision_model.embeddings.position_embedding", "Embedding", "weight=VP,VH"},
      {"model.vision_tower.vision_model.encoder", "SiglipEncoder", ""},
      {"model.vision_tower.vision_model.encoder.layers", "ModuleList", ""},
      {"model.vision_tower.vision_model.encoder.layers.@", "SiglipEncoderLayer", ""},
      {"model.vision_tower.vision_model.encoder.layers.@.self_attn", "SiglipAttention", ""},
      {"model.vision_tower.vision_model.encoder.layers.@.self_attn.k_proj", "Linear", "weight=VH,VH;bias=VH"},
      {"model.vision_tower.vision_model.encoder.layers.@.self_attn.v_proj", "Linear", "weight=VH,VH;bias=VH"},
      {"model.vision_tower.vision_model.encoder.layers.@.self_attn.q_proj", "Linear", "weight=VH,VH;bias=VH"},
      {"model.vision_tower.vision_model.encoder.layers.@.self_attn.out_proj", "Linear", "weight=VH,VH;bias=VH"},
      {"model.vision_tower.vision_model.encoder.layers.@.layer_norm1", "LayerNorm", "weight=VH;bias=VH"},
      {"model.vision_tower.vision_model.encoder.layers.@.mlp", "SiglipMLP", ""},
      {"model.vision_tower.vision_model.encoder.layers.@.mlp.activation_fn", "PytorchGELUTanh", ""},
      {"model.vision_tower.vision_model.encoder.layers.@.mlp.fc1", "Linear", "weight=VI,VH;bias=VI"},
      {"model.vision_tower.vision_model.encoder.layers.@.mlp.fc2", "Linear", "weight=VH,VI;bias=VH"},
      {"model.vision_tower.vision_model.encoder.layers.@.layer_norm2", "LayerNorm", "weight=VH;bias=VH"},
      {"model.vision_tower.vision_model.post_layernorm", "LayerNorm", "weight=VH;bias=VH"},
  };
}

// DeepSeek-V3's multi-head latent attention: q through a low-rank bottleneck with its norm, k and v
// from one shared latent (plus the rotary part of k) and its norm.
Rows deepseek_attention() {
  return {
      {"model.layers.#.self_attn", "{}Attention", ""},
      {"model.layers.#.self_attn.q_a_proj", "Linear", "weight=QR,H;bias?=QR"},
      {"model.layers.#.self_attn.q_a_layernorm", "{}RMSNorm", "weight=QR"},
      {"model.layers.#.self_attn.q_b_proj", "Linear", "weight=NH*(QN+QP),QR"},
      {"model.layers.#.self_attn.kv_a_proj_with_mqa", "Linear", "weight=KR+QP,H;bias?=KR+QP"},
      {"model.layers.#.self_attn.kv_a_layernorm", "{}RMSNorm", "weight=KR"},
      {"model.layers.#.self_attn.kv_b_proj", "Linear", "weight=NH*(QN+VD),KR"},
      {"model.layers.#.self_attn.o_proj", "Linear", "weight=H,NH*VD;bias?=H"},
  };
}

const std::vector<Architecture>& table() {
  static const std::vector<Architecture> rows = [] {
    std::vector<Architecture> t;
    auto row = [&](std::string_view type, std::string_view prefix, bool qkv_bias, bool tie, Rows modules,
                   ForwardFeatures forward, std::vector<BufferRule> buffers = kRotary) {
      t.push_back({type, prefix, "{}DecoderLayer", "model.layers", "model.embed_tokens.weight", "lm_head.weight", qkv_bias,
                   tie, std::move(modules), std::move(buffers), forward, {}, {}});
    };
    row("llama", "Llama", false, false, llama_like(true), {.runner = "llama"});
    row("mistral", "Mistral", false, false, llama_like(false),
        {.runner = "llama", .default_positions = 4096 * 32, .windows = Windows::Every});
    row("qwen2", "Qwen2", true, false, llama_like(false),
        {.runner = "llama", .default_positions = 32768, .windows = Windows::OptInFrom});
    row("qwen3", "Qwen3", false, false, llama_like(true, true),
        {.runner = "llama", .default_positions = 32768, .qk_norm = true, .windows = Windows::OptInFrom});

    row("mixtral", "Mixtral", false, false,
        decoder_tree(concat({attention_rows(false, false),
                             {
                                 {"model.layers.#.block_sparse_moe", "{}SparseMoeBlock", ""},
                                 {"model.layers.#.block_sparse_moe.gate", "Linear", "weight=E,H"},
                                 {"model.layers.#.block_sparse_moe.experts", "ModuleList", ""},
                                 {"model.layers.#.block_sparse_moe.experts.#", "{}BlockSparseTop2MLP", ""},
                                 {"model.layers.#.block_sparse_moe.experts.#.w1", "Linear", "weight=I,H"},
                                 {"model.layers.#.block_sparse_moe.experts.#.w2", "Linear", "weight=H,I"},
                                 {"model.layers.#.block_sparse_moe.experts.#.w3", "Linear", "weight=I,H"},
                                 {"model.layers.#.block_sparse_moe.experts.#.act_fn", "SiLU", ""},
                             },
                             kLlamaNorms})),
        {.runner = "llama", .default_positions = 4096 * 32, .windows = Windows::Every, .experts = Experts::Mixtral,
         .default_experts = 8, .default_top_k = 2});

    // Qwen2-MoE: Qwen2's attention (q/k/v biases), a router, experts, and a shared expert with its gate.
    row("qwen2_moe", "Qwen2Moe", true, false, decoder_tree(qwen_moe_block(attention_rows(false, false), true)),
        {.runner = "llama", .default_positions = 32768, .windows = Windows::OptInFrom, .experts = Experts::Qwen,
         .default_experts = 60, .default_top_k = 4, .default_expert_intermediate = 1408, .default_shared_intermediate = 5632});
    // Qwen3-MoE: Qwen3's attention (q/k norms, biases where asked), a router and experts.
    row("qwen3_moe", "Qwen3Moe", false, false, decoder_tree(qwen_moe_block(attention_rows(true, true), false)),
        {.runner = "llama", .default_positions = 32768, .qk_norm = true, .windows = Windows::OptInEvery,
         .experts = Experts::Qwen, .default_experts = 128, .default_top_k = 8, .default_expert_intermediate = 768});

    row("phi3", "Phi3", false, false,
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
        {.runner = "llama", .default_positions = 4096, .fused_projections = true, .windows = Windows::Every});

    // Gemma: RMSNorm by (1 + weight), embeddings scaled by √hidden, a GELU-gated MLP, a tied head.
    // Gemma 2 adds the sandwich norms, query_pre_attn_scalar, soft-capping and a window on even layers;
    // Gemma 3 (text) q/k norms, five local layers per global one, each kind with its own RoPE base.
    const ForwardFeatures gemma{.runner = "llama", .default_positions = 8192, .activation_key = "hidden_activation",
                                .default_activation = "gelu_pytorch_tanh", .gemma_norm = true, .embed_scale = true};
    row("gemma", "Gemma", false, true, decoder_tree(gemma_block(false, false)), gemma);
    ForwardFeatures gemma2 = gemma;
    gemma2.sandwich_norms = gemma2.query_pre_attn_scalar = gemma2.softcapping = true;
    gemma2.windows = Windows::EvenLayers;
    row("gemma2", "Gemma2", false, true, decoder_tree(gemma_block(false, true)), gemma2);
    ForwardFeatures gemma3 = gemma2;
    gemma3.qk_norm = gemma3.local_rope = true;
    gemma3.windows = Windows::AllButNth;
    gemma3.default_positions = 131072;
    const std::vector<BufferRule> gemma3_buffers{{"model.embed_tokens.embed_scale", "", DType::F32, false},
                                                 {"model.rotary_emb.inv_freq", "D/2", DType::F32, false},
                                                 {"model.rotary_emb_local.inv_freq", "D/2", DType::F32, false}};
    row("gemma3_text", "Gemma3", false, true, gemma3_language_model(false), gemma3, gemma3_buffers);
    // Gemma 3 with its image encoder (Gemma3ForConditionalGeneration, the 4B–27B releases): plans only.
    {
      Rows modules{{"", "{}ForConditionalGeneration", ""}, {"model", "{}Model", ""}};
      modules = concat({modules, siglip_vision_tower(),
                        {{"model.multi_modal_projector", "{}MultiModalProjector", "mm_input_projection_weight=VH,H"},
                         {"model.multi_modal_projector.mm_soft_emb_norm", "{}RMSNorm", "weight=VH"},
                         {"model.multi_modal_projector.avg_pool", "AvgPool2d", ""}},
                        gemma3_language_model(true), {{"lm_head", "Linear", "weight!=V,H"}}});
      ForwardFeatures f;
      f.missing = "the image encoder and the multimodal model (model_type gemma3); Gemma 3 text checkpoints (gemma3_text) run";
      t.push_back({"gemma3", "Gemma3", "{}DecoderLayer", "model.language_model.layers", "model.language_model.embed_tokens.weight",
                   "lm_head.weight", false, true, std::move(modules),
                   {{"model.vision_tower.vision_model.embeddings.position_ids", "1,VP", DType::I64, false},
                    {"model.language_model.embed_tokens.embed_scale", "", DType::F32, false},
                    {"model.language_model.rotary_emb.inv_freq", "D/2", DType::F32, false},
                    {"model.language_model.rotary_emb_local.inv_freq", "D/2", DType::F32, false}},
                   f,
                   {"SiglipVisionEmbeddings", "SiglipEncoderLayer", "SiglipMultiheadAttentionPoolingHead"},
                   {{"language_model.model.", "model.language_model."},
                    {"language_model.lm_head.", "lm_head."},
                    {"vision_tower.", "model.vision_tower."},
                    {"multi_modal_projector.", "model.multi_modal_projector."}}});
    }

    // DeepSeek-V3: multi-head latent attention; the first first_k_dense_replace layers dense, the others
    // 256 routed experts behind a sigmoid top-k router (its score correction bias a persistent buffer)
    // plus shared experts. Plans only.
    {
      Rows block = concat({deepseek_attention(),
                           {{"model.layers.#.mlp", "{}MoE", "", LayerKind::Sparse},
                            {"model.layers.#.mlp.experts", "ModuleList", "", LayerKind::Sparse}},
                           gated_mlp("model.layers.#.mlp.experts.#", "{}MLP", "SiLU", kExpertMlp, LayerKind::Sparse),
                           {{"model.layers.#.mlp.gate", "{}TopkRouter", "weight=E,H", LayerKind::Sparse}},
                           gated_mlp("model.layers.#.mlp.shared_experts", "{}MLP", "SiLU", kSharedMlp, LayerKind::Sparse),
                           gated_mlp("model.layers.#.mlp", "{}MLP", "SiLU", kDenseMlp, LayerKind::Dense), kLlamaNorms});
      ForwardFeatures f;
      f.missing = "multi-head latent attention and DeepSeek's sigmoid expert routing (DeepSeek-V3)";
      f.default_experts = 256;
      f.default_expert_intermediate = 2048;
      row("deepseek_v3", "DeepseekV3", false, false, decoder_tree(block), f,
          {{"model.layers.#.mlp.gate.e_score_correction_bias", "E", DType::F32, true, LayerKind::Sparse},
           {"model.rotary_emb.inv_freq", "QP/2", DType::F32, false}});
    }

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
                  {"transformer.h.#.attn.masked_bias", "", DType::F32, false}},
                 {.runner = "gpt2", .default_positions = 1024},
                 {},
                 {}});

    ForwardFeatures bloom;
    bloom.missing = "ALiBi attention (BLOOM)";
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
                 {},
                 bloom,
                 {},
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

std::vector<std::string_view> runnable_model_types() {
  std::vector<std::string_view> out;
  for (const auto& a : table())
    if (!a.forward.runner.empty()) out.push_back(a.model_type);
  return out;
}

}  // namespace devicemap

namespace devicemap {

std::string runtime_gap(std::string_view model_type) {
  if (model_type.empty()) return {};  // the runtime guesses it from config.json's architectures
  const Architecture* a = find_architecture(model_type);
  if (!a) return "model_type '" + std::string(model_type) + "' is not in the architecture table, which the runtime runs from";
  if (a->forward.runner.empty()) return "the runtime lacks " + std::string(a->forward.missing);
  return {};
}

}  // namespace devicemap
