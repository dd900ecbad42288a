#pragma once
// The architecture table: for each model_type, the module tree transformers builds — module paths in
// registration order with their classes, the tensors a config implies (shape expressions over config
// values), the non-persistent buffers transformers creates, the tied weights and the no-split class.
// Adding a model is adding rows (architecture_table.cpp), not code paths.
#include <string_view>
#include <vector>

#include "format/dtype.hpp"

namespace devicemap {

struct ModuleRule {
  std::string_view path;     // "model.layers.#.self_attn.q_proj": '#' = layer index, a second '#' = expert
  std::string_view cls;      // "Linear"; "{}" stands for the architecture's class prefix
  std::string_view tensors;  // for config-only skeletons: "weight=NH*D,H;bias?=NH*D" ('?' only with
                             // attention bias, '!' only when the weight is not tied)
};

struct BufferRule {
  std::string_view path;   // "model.rotary_emb.inv_freq"
  std::string_view shape;  // shape expression, "D/2"
  DType dtype;
  bool persistent;
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
};

// nullptr when the model_type has no row.
const Architecture* find_architecture(std::string_view model_type);
std::vector<std::string_view> known_model_types();

}  // namespace devicemap
