#include "model/size_limits.hpp"

#include <algorithm>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "error.hpp"

namespace devicemap {
namespace {

struct Limit {
  const char* key;
  std::int64_t most;
};

// Each at least 64× the largest released model's value (Llama 3.1 405B: hidden 16384, intermediate
// 53248, 126 layers, vocab 128256; DeepSeek-V3: 256 experts; Llama 4 Scout: 10M positions). Layers and
// experts are bounded tighter than the widths: each one is modules and tensors the skeleton holds.
constexpr Limit kLimits[] = {
    {"hidden_size", std::int64_t{1} << 20},          {"n_embd", std::int64_t{1} << 20},
    {"intermediate_size", std::int64_t{1} << 23},    {"moe_intermediate_size", std::int64_t{1} << 23},
    {"shared_expert_intermediate_size", std::int64_t{1} << 23}, {"n_inner", std::int64_t{1} << 23},
    {"num_hidden_layers", std::int64_t{1} << 13},    {"n_layer", std::int64_t{1} << 13},
    {"num_attention_heads", std::int64_t{1} << 16},  {"num_key_value_heads", std::int64_t{1} << 16},
    {"n_head", std::int64_t{1} << 16},               {"head_dim", std::int64_t{1} << 16},
    {"vocab_size", std::int64_t{1} << 26},           {"num_local_experts", std::int64_t{1} << 14},
    {"num_experts", std::int64_t{1} << 14},          {"num_experts_per_tok", std::int64_t{1} << 14},
    {"max_position_embeddings", std::int64_t{1} << 32}, {"n_positions", std::int64_t{1} << 32},
    {"n_routed_experts", std::int64_t{1} << 14},     {"q_lora_rank", std::int64_t{1} << 20},
    {"kv_lora_rank", std::int64_t{1} << 20},         {"qk_nope_head_dim", std::int64_t{1} << 16},
    {"qk_rope_head_dim", std::int64_t{1} << 16},     {"v_head_dim", std::int64_t{1} << 16},
    {"image_size", std::int64_t{1} << 20},           {"patch_size", std::int64_t{1} << 16},
};

std::int64_t value_of(const nlohmann::json& c, const char* key) {
  if (!c.contains(key) || !c.at(key).is_number_integer()) return 0;
  return c.at(key).get<std::int64_t>();
}

}  // namespace

void check_config_sizes(const nlohmann::json& config, std::string_view source) {
  if (!config.is_object()) return;
  // A multimodal config holds its models' keys one level down.
  for (const char* nested : {"text_config", "vision_config"})
    if (config.contains(nested) && config.at(nested).is_object())
      check_config_sizes(config.at(nested), std::string(source) + ": " + nested);
  for (const auto& [key, most] : kLimits) {
    const std::int64_t v = value_of(config, key);
    if (v < 0) throw Error(std::string(source) + ": key '" + key + "' is " + std::to_string(v) + "; a size cannot be negative");
    if (v > most)
      throw Error(std::string(source) + ": key '" + key + "' is " + std::to_string(v) + ", beyond any model (at most " +
                  std::to_string(most) + " is accepted)");
  }
  // Together: layers × (attention + MLP or experts) + embeddings, in doubles (no overflow).
  const auto get = [&](const char* a, const char* b) { return double(value_of(config, a) ? value_of(config, a) : value_of(config, b)); };
  const double h = get("hidden_size", "n_embd"), layers = get("num_hidden_layers", "n_layer");
  const double inner = get("intermediate_size", "n_inner");
  const double experts = std::max(get("num_local_experts", "num_experts"), get("n_routed_experts", "n_routed_experts"));
  const double expert_inner = value_of(config, "moe_intermediate_size") ? double(value_of(config, "moe_intermediate_size")) : inner;
  const double per_layer = 4 * h * h + 3 * h * (experts > 0 ? experts * expert_inner : inner);
  // Tensors the skeleton would hold (a config of tiny matrices can still claim billions of them):
  // DeepSeek-V3 has 61 layers × 257 experts; 2^22 is 267 times that.
  if (layers * std::max(experts, 1.0) > double(std::int64_t{1} << 22))
    throw Error(std::string(source) + ": num_hidden_layers × experts is " + std::to_string(static_cast<long long>(layers * experts)) +
                " experts in all, beyond any model (at most " + std::to_string(std::int64_t{1} << 22) + " is accepted)");
  const double params = layers * per_layer + 2 * get("vocab_size", "vocab_size") * h;
  if (params > 1e14)
    throw Error(std::string(source) + ": hidden_size, num_hidden_layers, intermediate_size, experts and vocab_size together " +
                "claim about " + std::to_string(static_cast<long long>(params / 1e12)) +
                " trillion parameters, beyond any model (at most 100 trillion is accepted)");
}

}  // namespace devicemap
