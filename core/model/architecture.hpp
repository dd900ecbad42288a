#pragma once
// The architecture table: one description per model_type, read by the planner and by the runtime. For
// each type: the module tree transformers builds (module paths in registration order with their
// classes), the tensors a config implies (shape expressions over config values), the non-persistent
// buffers transformers creates, the tied weights and the no-split class — and the forward features the
// runtime needs beyond the tensors (which norms, windows, experts, scalings a block uses), or why it
// cannot run the type. Adding a model is adding rows (architecture_table.cpp), not code paths.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "format/dtype.hpp"

namespace devicemap {

// The layers a rule applies to: all of them, or in a model that mixes them only the layers whose MLP is
// dense, or only those whose MLP is routed experts (Qwen3-MoE's mlp_only_layers, DeepSeek-V3's first
// dense layers).
enum class LayerKind : unsigned char { All, Dense, Sparse };

struct ModuleRule {
  std::string_view path;     // "model.layers.#.self_attn.q_proj": '#' = layer index, a second '#' = expert,
                             // '@' = a vision encoder layer
  std::string_view cls;      // "Linear"; "{}" stands for the architecture's class prefix
  std::string_view tensors;  // for config-only skeletons: "weight=NH*D,H;bias?=NH*D". A condition after
                             // the name: '?' only with attention bias, '?mlp' only with MLP bias, '!' only
                             // when the weight is not tied.
  LayerKind layers = LayerKind::All;
};

struct BufferRule {
  std::string_view path;   // "model.rotary_emb.inv_freq"
  std::string_view shape;  // shape expression, "D/2"
  DType dtype;
  bool persistent;
  LayerKind layers = LayerKind::All;
};

// Which layers attend through a sliding window of config.sliding_window keys (config.json's
// layer_types, where present, overrides the pattern).
enum class Windows : unsigned char {
  None,          // never (Llama, GPT-2)
  Every,         // every layer (Mistral, Mixtral, Phi-3)
  OptInFrom,     // with use_sliding_window, the layers from max_window_layers on (Qwen2, Qwen3)
  OptInEvery,    // with use_sliding_window, every layer (Qwen3-MoE)
  EvenLayers,    // layers 0, 2, 4, … (Gemma 2)
  AllButNth,     // all but every sliding_window_pattern-th layer (Gemma 3: 5 local, then 1 global)
};

// How a sparse layer names and routes its experts.
enum class Experts : unsigned char {
  None,
  Mixtral,  // block_sparse_moe.{gate, experts.N.w1|w2|w3}; num_local_experts; top-k always renormalised
  Qwen,     // mlp.{gate, experts.N.gate_proj|up_proj|down_proj}; num_experts; norm_topk_prob
};

// What the runtime's forward pass needs beyond the tensors.
struct ForwardFeatures {
  std::string_view runner = {};   // "llama" (RMSNorm decoder blocks), "gpt2"; empty: the type plans only
  std::string_view missing = {};  // for a type that plans only: what the runtime lacks for it
  std::int64_t default_positions = 2048;  // max_position_embeddings when config.json has none
  std::string_view activation_key = "hidden_act";
  std::string_view default_activation = "silu";
  bool qk_norm = false;            // an RMSNorm over each head of q and k before RoPE (Qwen3, Gemma 3)
  bool fused_projections = false;  // qkv_proj and gate_up_proj (Phi-3)
  bool gemma_norm = false;         // RMSNorm scales by (1 + weight), in float32 (Gemma)
  bool embed_scale = false;        // embeddings times √hidden_size in the compute dtype (Gemma)
  bool sandwich_norms = false;     // norms after attention and around the MLP too (Gemma 2 and 3)
  bool query_pre_attn_scalar = false;  // scores scaled by query_pre_attn_scalar^-½ (Gemma 2 and 3)
  bool softcapping = false;        // attn_logit_softcapping and final_logit_softcapping (Gemma 2, 3)
  bool local_rope = false;         // sliding layers rotate by rope_local_base_freq, unscaled (Gemma 3)
  Windows windows = Windows::None;
  Experts experts = Experts::None;
  // MoE defaults of the config class, for keys config.json leaves out.
  std::int64_t default_experts = 0, default_top_k = 0, default_expert_intermediate = 0, default_shared_intermediate = 0;
};

struct Architecture {
  std::string_view model_type;     // config.json "model_type"
  std::string_view prefix;         // class prefix, "Llama"
  std::string_view layer_class;    // no-split class, "{}DecoderLayer"
  std::string_view layers_path;    // container of the repeated blocks, "model.layers"
  std::string_view tie_canonical;  // "model.embed_tokens.weight"
  std::string_view tie_alias;      // "lm_head.weight"
  bool attention_bias_default;     // Qwen2 always has q/k/v biases
  bool tie_default;                // tie_word_embeddings when config.json does not say (per config class)
  std::vector<ModuleRule> modules;
  std::vector<BufferRule> buffers;
  ForwardFeatures forward;
  std::vector<std::string_view> more_no_split;  // no-split classes besides the layer's (vision encoders)
  // Checkpoints saved by older transformers name tensors under other prefixes, renamed on load
  // (_checkpoint_conversion_mapping): {stored prefix, module-tree prefix}.
  std::vector<std::pair<std::string_view, std::string_view>> checkpoint_renames;
};

// nullptr when the model_type has no row.
const Architecture* find_architecture(std::string_view model_type);
std::vector<std::string_view> known_model_types();
// The types the runtime runs (rows with a runner), for messages.
std::vector<std::string_view> runnable_model_types();
// Why the runtime cannot run a model_type ("the runtime lacks multi-head latent attention …"); empty
// when it can. For the CLI and the Studio to say so next to a plan.
std::string runtime_gap(std::string_view model_type);

}  // namespace devicemap
