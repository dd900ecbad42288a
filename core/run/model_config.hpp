#pragma once
// The architecture hyper-parameters the runtime needs, read from config.json by the features its
// architecture table row lists (model/architecture.hpp). The Llama runner's family (llama, mistral,
// qwen2, qwen3, phi3, gemma, gemma2, gemma3_text, the routed-expert mixtral, qwen2_moe and qwen3_moe, and
// the models that reuse their model_type: TinyLlama, SmolLM, …) and GPT-2.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "format/dtype.hpp"
#include "model/quantization.hpp"

namespace devicemap {

struct Architecture;

enum class ModelFamily : unsigned char { Llama, Gpt2 };

// HF transformers' rope_scaling (modeling_rope_utils): "linear" divides positions by factor; "llama3"
// rescales the low and medium frequencies (Llama 3.1+); "yarn" blends interpolated and extrapolated
// frequencies over a ramp of dimensions and scales cos/sin by an attention factor; "dynamic" (NTK) raises
// the base once the sequence outgrows the original context; "longrope" (Phi-3) divides each frequency by
// its own short or long factor, long ones once the sequence outgrows the original context.
struct RopeScaling {
  enum class Kind : unsigned char { None, Linear, Llama3, Yarn, Dynamic, LongRope };
  Kind kind = Kind::None;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  std::int64_t original_max_position_embeddings = 8192;
  // yarn
  double beta_fast = 32, beta_slow = 1;
  std::optional<double> attention_factor;  // yarn, longrope: given, else derived from the factor
  double mscale = 0, mscale_all_dim = 0;   // yarn (DeepSeek): attention factor as a ratio of the two
  bool truncate = true;                    // yarn: the ramp's ends rounded to whole dimensions
  // longrope: one factor per frequency (head_dim / 2 of each)
  std::vector<double> short_factor, long_factor;
};

// GPTQ weight quantization (AutoGPTQ / GPTQModel checkpoints): each block Linear stores qweight
// (int32, 32/bits input rows packed per element), qzeros (packed likewise along outputs), scales and
// g_idx (the group of each input row).
struct GptqConfig {
  int bits = 4;                   // 2, 4 or 8
  std::int64_t group_size = 128;  // input rows per group; -1: one group
  bool desc_act = false;          // rows were quantized in activation order (g_idx is a permutation)
  bool zero_offset = true;        // checkpoint_format "gptq": zeros are stored minus one

  // quantize_config.json, or config.json's quantization_config with quant_method "gptq". Throws
  // devicemap::Error naming `source` and the key that is wrong or unsupported.
  static GptqConfig from_json(const nlohmann::json& j, std::string_view source);
};

// An AutoAWQ checkpoint in its GEMM layout (config.json's quantization_config with quant_method "awq"):
// qweight int32 [in, out/8], each word eight outputs of one input in the order 0, 2, 4, 6, 1, 3, 5, 7
// (lowest bits first); qzeros [groups, out/8] packed alike, stored as they are; scales [groups, out];
// w = (q − zero) · scale.
struct AwqConfig {
  std::int64_t group_size = 128;  // input rows per group

  // Throws devicemap::Error naming `source` and the key for what the runtime does not read: other
  // bit widths, no zero point, or a layout other than GEMM.
  static AwqConfig from_json(const nlohmann::json& j, std::string_view source);
};

// Routed experts (Mixtral, Qwen2-MoE, Qwen3-MoE): a sparse layer's MLP is the sum of the top_k experts its router
// picks per token, weighted by the router's softmax (renormalised over the chosen ones when asked).
struct MoeConfig {
  std::int64_t experts = 0;
  std::int64_t top_k = 0;
  std::int64_t expert_intermediate = 0;
  bool normalize_top_k = true;               // Mixtral always; Qwen3-MoE when norm_topk_prob
  std::int64_t sparse_step = 1;              // Qwen3-MoE: layer i is sparse when (i + 1) % step == 0 …
  std::vector<std::int64_t> dense_layers;    // … and it is not one of mlp_only_layers
  bool mixtral_names = false;                // block_sparse_moe.{gate, experts.N.w1|w2|w3}, else
                                             // mlp.{gate, experts.N.gate_proj|up_proj|down_proj}
  std::int64_t shared_intermediate = 0;      // Qwen2-MoE: a shared expert of this size, gated by a sigmoid
};

struct ModelConfig {
  ModelFamily family = ModelFamily::Llama;
  std::string model_type;  // as config.json spells it
  const Architecture* architecture = nullptr;  // its row of the architecture table (tensors, features)
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_layers = 0;
  std::int64_t num_heads = 0;
  std::int64_t num_kv_heads = 0;  // == num_heads for GPT-2
  std::int64_t head_dim = 0;
  std::int64_t vocab_size = 0;
  std::int64_t max_position_embeddings = 0;
  double norm_eps = 1e-6;  // rms_norm_eps (Llama) or layer_norm_epsilon (GPT-2)
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;       // q/k/v projections carry a bias (qwen2, attention_bias)
  bool out_proj_bias = false;  // o_proj carries a bias (attention_bias)
  bool mlp_bias = false;
  std::string activation;  // gated MLP: "silu", "gelu_pytorch_tanh", "gelu"; GPT-2: "gelu_new", "gelu", "relu"
  bool fused_projections = false;  // Phi-3: qkv_proj ([q; k; v] rows) and gate_up_proj ([gate; up] rows)
  bool qk_norm = false;        // Qwen3, Gemma 3: an RMSNorm over each head of q and k before RoPE
  bool gemma_norm = false;     // Gemma: RMSNorm scales by (1 + weight) in float32, then rounds
  bool sandwich_norms = false; // Gemma 2/3: post_attention_layernorm on the attention's output,
                               // pre_/post_feedforward_layernorm around the MLP
  double embed_scale = 1.0;    // Gemma: embeddings × √hidden_size (in the compute dtype)
  double attention_scale = 0;  // scores × this: head_dim^-½, Gemma 2/3 query_pre_attn_scalar^-½
  std::optional<double> attn_softcap;   // Gemma 2: scores → cap · tanh(scores / cap) before the mask
  std::optional<double> final_softcap;  // Gemma 2: logits → cap · tanh(logits / cap)
  std::optional<double> local_rope_theta;  // Gemma 3: sliding layers rotate by this base, unscaled
  // A query sees at most this many keys back on the layers that slide (Mistral: all of them; Qwen2/Qwen3
  // with use_sliding_window: those from max_window_layers on, or as config.json's layer_types say).
  std::optional<std::int64_t> sliding_window;
  std::vector<bool> sliding_layers;  // per layer when sliding_window is set; empty: every layer
  std::optional<std::int64_t> window_of(std::int64_t layer) const {
    if (!sliding_window) return std::nullopt;
    if (sliding_layers.empty() || sliding_layers[static_cast<std::size_t>(layer)]) return sliding_window;
    return std::nullopt;
  }
  bool scale_attn_by_inverse_layer_idx = false;  // GPT-2 option
  std::optional<DType> torch_dtype;
  std::optional<MoeConfig> moe;
  bool sparse_layer(std::int64_t layer) const {
    if (!moe) return false;
    for (auto d : moe->dense_layers)
      if (d == layer) return false;
    return (layer + 1) % moe->sparse_step == 0;
  }
  std::optional<GptqConfig> gptq;  // from config.json's quantization_config (or quantize_config.json)
  std::optional<AwqConfig> awq;    // from config.json's quantization_config
  // A bitsandbytes checkpoint (quantization_config with load_in_8bit or load_in_4bit): the Linears
  // transformers converted store `weight` as int8 [out, in] and `SCB`, a float32 absmax per output row
  // (8-bit), or 4-bit codes with their quant state (run/bnb4.hpp).
  std::optional<Quantization> bnb;
  std::optional<std::int64_t> bos_token_id;
  std::vector<std::int64_t> eos_token_ids;  // config.json's eos_token_id (int or list)

  // `source` names the file in messages (e.g. the path of config.json). Throws devicemap::Error naming
  // the file and the key that is missing or wrong.
  static ModelConfig from_json(const nlohmann::json& config, std::string_view source = "config.json");
};

std::string_view family_name(ModelFamily);

}  // namespace devicemap
