#include "run/model_config.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "model/architecture.hpp"
#include "model/size_limits.hpp"

namespace devicemap {
namespace {

// Reads typed keys of one JSON object, naming the file and the key in every error.
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, std::string_view source) : j_(j), source_(source) {}

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  std::int64_t positive_int(const char* key) const {
    if (!has(key)) fail(key, "is missing");
    return positive_int_value(key, j_.at(key));
  }
  std::int64_t positive_int(const char* key, std::int64_t fallback) const {
    return has(key) ? positive_int(key) : fallback;
  }
  std::optional<std::int64_t> optional_positive_int(const char* key) const {
    if (!has(key)) return std::nullopt;
    return positive_int(key);
  }

  double positive_number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const auto& v = j_.at(key);
    if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>()))
      fail(key, "must be a positive number, got " + v.dump());
    return v.get<double>();
  }

  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const auto& v = j_.at(key);
    if (!v.is_boolean()) fail(key, "must be true or false, got " + v.dump());
    return v.get<bool>();
  }

  std::string string(const char* key, std::string fallback) const {
    if (!has(key)) return fallback;
    const auto& v = j_.at(key);
    if (!v.is_string()) fail(key, "must be a string, got " + v.dump());
    return v.get<std::string>();
  }

  // An integer or a list of integers (eos_token_id); empty when absent.
  std::vector<std::int64_t> int_list(const char* key) const {
    std::vector<std::int64_t> out;
    if (!has(key)) return out;
    const auto& v = j_.at(key);
    if (v.is_array()) {
      for (const auto& e : v) out.push_back(non_negative_int_value(key, e));
    } else {
      out.push_back(non_negative_int_value(key, v));
    }
    return out;
  }

  [[noreturn]] void fail(const char* key, const std::string& what) const {
    throw Error(std::string(source_) + ": key '" + key + "' " + what);
  }

 private:
  std::int64_t non_negative_int_value(const char* key, const nlohmann::json& v) const {
    if (v.is_number_unsigned() && v.get<std::uint64_t>() <= std::uint64_t(std::numeric_limits<std::int64_t>::max()))
      return static_cast<std::int64_t>(v.get<std::uint64_t>());
    if (v.is_number_integer() && v.get<std::int64_t>() >= 0) return v.get<std::int64_t>();
    fail(key, "must be a non-negative integer (or a list of them), got " + v.dump());
  }
  std::int64_t positive_int_value(const char* key, const nlohmann::json& v) const {
    // Some exporters write whole numbers as 4096.0; accept those, nothing fractional.
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (d >= 1 && d < 9.0e15 && std::floor(d) == d) return static_cast<std::int64_t>(d);
    } else if (v.is_number_integer() || v.is_number_unsigned()) {
      const std::int64_t i = non_negative_int_value(key, v);
      if (i > 0) return i;
    }
    fail(key, "must be a positive integer, got " + v.dump());
  }

  const nlohmann::json& j_;
  std::string_view source_;
};

RopeScaling read_rope_scaling(const nlohmann::json& config, std::string_view source,
                              std::int64_t max_positions) {
  RopeScaling r;
  if (!config.contains("rope_scaling") || config.at("rope_scaling").is_null()) return r;
  const auto& j = config.at("rope_scaling");
  const std::string where = std::string(source) + ": rope_scaling";
  if (!j.is_object()) throw Error(where + " must be an object or null, got " + j.dump());
  ConfigReader rr(j, where);
  // transformers renamed "type" to "rope_type"; both occur in the wild.
  const std::string type = rr.has("rope_type") ? rr.string("rope_type", "") : rr.string("type", "default");
  if (type == "default") return r;
  if (type == "linear") {
    r.kind = RopeScaling::Kind::Linear;
    r.factor = rr.positive_number("factor", 1.0);
    return r;
  }
  if (type == "llama3") {
    r.kind = RopeScaling::Kind::Llama3;
    if (!rr.has("factor")) rr.fail("factor", "is missing (needed by rope_type llama3)");
    r.factor = rr.positive_number("factor", 1.0);
    r.low_freq_factor = rr.positive_number("low_freq_factor", 1.0);
    r.high_freq_factor = rr.positive_number("high_freq_factor", 4.0);
    r.original_max_position_embeddings = rr.positive_int("original_max_position_embeddings", max_positions);
    if (r.high_freq_factor <= r.low_freq_factor)
      throw Error(where + ": high_freq_factor must be greater than low_freq_factor");
    return r;
  }
  if (type == "yarn") {
    r.kind = RopeScaling::Kind::Yarn;
    if (!rr.has("factor")) rr.fail("factor", "is missing (needed by rope_type yarn)");
    r.factor = rr.positive_number("factor", 1.0);
    r.original_max_position_embeddings = rr.positive_int("original_max_position_embeddings", max_positions);
    if (rr.has("attention_factor")) r.attention_factor = rr.positive_number("attention_factor", 1.0);
    r.beta_fast = rr.positive_number("beta_fast", 32);
    r.beta_slow = rr.positive_number("beta_slow", 1);
    r.mscale = rr.has("mscale") ? rr.positive_number("mscale", 1) : 0;
    r.mscale_all_dim = rr.has("mscale_all_dim") ? rr.positive_number("mscale_all_dim", 1) : 0;
    r.truncate = rr.boolean("truncate", true);
    return r;
  }
  if (type == "dynamic") {
    r.kind = RopeScaling::Kind::Dynamic;
    if (!rr.has("factor")) rr.fail("factor", "is missing (needed by rope_type dynamic)");
    r.factor = rr.positive_number("factor", 1.0);
    r.original_max_position_embeddings = max_positions;
    return r;
  }
  if (type == "longrope" || type == "su") {
    r.kind = RopeScaling::Kind::LongRope;
    for (const char* key : {"short_factor", "long_factor"}) {
      if (!rr.has(key) || !j.at(key).is_array()) rr.fail(key, "must be a list of numbers (needed by rope_type longrope)");
      auto& out = std::string_view(key) == "short_factor" ? r.short_factor : r.long_factor;
      for (const auto& v : j.at(key)) {
        if (!v.is_number() || !(v.get<double>() > 0)) rr.fail(key, "holds " + v.dump() + ", not a positive number");
        out.push_back(v.get<double>());
      }
    }
    if (rr.has("attention_factor")) r.attention_factor = rr.positive_number("attention_factor", 1.0);
    // Phi-3 keeps the pretrained context beside the extended one; their ratio is the factor.
    r.original_max_position_embeddings = rr.positive_int("original_max_position_embeddings", 0);
    if (r.original_max_position_embeddings == 0) {
      ConfigReader top(config, source);
      r.original_max_position_embeddings = top.positive_int("original_max_position_embeddings", max_positions);
    }
    r.factor = rr.has("factor") && !config.contains("original_max_position_embeddings")
                   ? rr.positive_number("factor", 1.0)
                   : double(max_positions) / double(r.original_max_position_embeddings);
    return r;
  }
  throw Error(where + ": rope type '" + type + "' is not supported (supported: default, linear, llama3, yarn, dynamic, longrope)");
}

ModelConfig read_llama(const nlohmann::json& j, std::string_view source, const Architecture& arch) {
  ConfigReader r(j, source);
  const ForwardFeatures& f = arch.forward;
  ModelConfig c;
  c.family = ModelFamily::Llama;
  c.model_type = std::string(arch.model_type);
  c.architecture = &arch;
  c.hidden_size = r.positive_int("hidden_size");
  c.intermediate_size = r.positive_int("intermediate_size");
  c.num_layers = r.positive_int("num_hidden_layers");
  c.num_heads = r.positive_int("num_attention_heads");
  c.num_kv_heads = r.positive_int("num_key_value_heads", c.num_heads);
  c.vocab_size = r.positive_int("vocab_size");
  if (r.has("head_dim")) {
    c.head_dim = r.positive_int("head_dim");
  } else {
    if (c.hidden_size % c.num_heads != 0)
      throw Error(std::string(source) + ": hidden_size " + std::to_string(c.hidden_size) +
                  " is not divisible by num_attention_heads " + std::to_string(c.num_heads) +
                  " (and there is no head_dim key)");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0)
    throw Error(std::string(source) + ": head_dim " + std::to_string(c.head_dim) +
                " is odd; rotary embeddings need an even head size");
  if (c.num_heads % c.num_kv_heads != 0)
    throw Error(std::string(source) + ": num_attention_heads " + std::to_string(c.num_heads) +
                " is not a multiple of num_key_value_heads " + std::to_string(c.num_kv_heads));
  c.max_position_embeddings = r.positive_int("max_position_embeddings", f.default_positions);
  c.norm_eps = r.positive_number("rms_norm_eps", 1e-6);
  c.rope_theta = r.positive_number("rope_theta", f.local_rope ? 1000000.0 : 10000.0);
  c.rope_scaling = read_rope_scaling(j, source, c.max_position_embeddings);
  if (c.rope_scaling.kind == RopeScaling::Kind::LongRope)
    for (const auto* fac : {&c.rope_scaling.short_factor, &c.rope_scaling.long_factor})
      if (static_cast<std::int64_t>(fac->size()) != c.head_dim / 2)
        throw Error(std::string(source) + ": rope_scaling: " + (fac == &c.rope_scaling.short_factor ? "short_factor" : "long_factor") +
                    " holds " + std::to_string(fac->size()) + " factors; head_dim " + std::to_string(c.head_dim) + " needs " +
                    std::to_string(c.head_dim / 2));
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", arch.tie_default);
  const bool attention_bias = r.boolean("attention_bias", false);
  c.qkv_bias = arch.attention_bias_default || attention_bias;
  c.out_proj_bias = attention_bias && !arch.attention_bias_default;  // Qwen2's o_proj never has one
  c.qk_norm = f.qk_norm;
  c.fused_projections = f.fused_projections;
  if (f.fused_projections && r.has("partial_rotary_factor") && r.positive_number("partial_rotary_factor", 1.0) != 1.0)
    r.fail("partial_rotary_factor", "is not 1; the runtime rotates whole heads only");
  c.mlp_bias = r.boolean("mlp_bias", false);
  // Gemma: the activation is hidden_activation (gelu_pytorch_tanh when absent, as transformers chose for
  // Gemma 1 checkpoints whose hidden_act said "gelu").
  c.activation = r.string(std::string(f.activation_key).c_str(), std::string(f.default_activation));
  if (c.activation == "gelu_new") c.activation = "gelu_pytorch_tanh";  // the same tanh approximation
  if (c.activation != "silu" && c.activation != "gelu_pytorch_tanh" && c.activation != "gelu")
    r.fail(std::string(f.activation_key).c_str(),
           "is '" + c.activation + "'; the gated MLP supports silu, gelu_pytorch_tanh, gelu_new and gelu");
  c.gemma_norm = f.gemma_norm;
  c.sandwich_norms = f.sandwich_norms;
  // Gemma multiplies the embeddings by √hidden_size rounded to the compute dtype (see llama.cpp).
  if (f.embed_scale) c.embed_scale = std::sqrt(double(c.hidden_size));
  c.attention_scale = 1.0 / std::sqrt(double(c.head_dim));
  if (f.query_pre_attn_scalar) c.attention_scale = 1.0 / std::sqrt(r.positive_number("query_pre_attn_scalar", double(c.head_dim)));
  if (f.softcapping) {
    if (r.has("attn_logit_softcapping")) c.attn_softcap = r.positive_number("attn_logit_softcapping", 1.0);
    if (r.has("final_logit_softcapping")) c.final_softcap = r.positive_number("final_logit_softcapping", 1.0);
  }
  if (f.local_rope) c.local_rope_theta = r.positive_number("rope_local_base_freq", 10000.0);

  // Sliding windows, by the row's pattern.
  switch (f.windows) {
    case Windows::None: break;
    case Windows::Every: c.sliding_window = r.optional_positive_int("sliding_window"); break;
    case Windows::OptInEvery:
      if (r.boolean("use_sliding_window", false)) c.sliding_window = r.optional_positive_int("sliding_window");
      break;
    case Windows::OptInFrom:
      // Qwen2 and Qwen3 keep a sliding_window value but apply it only with use_sliding_window, and then
      // on the layers from max_window_layers on.
      if (r.boolean("use_sliding_window", false)) {
        c.sliding_window = r.optional_positive_int("sliding_window");
        if (c.sliding_window) {
          const std::int64_t first = r.positive_int("max_window_layers", 28);
          for (std::int64_t i = 0; i < c.num_layers; ++i) c.sliding_layers.push_back(i >= first);
        }
      }
      break;
    case Windows::EvenLayers:
      c.sliding_window = r.positive_int("sliding_window", 4096);
      for (std::int64_t i = 0; i < c.num_layers; ++i) c.sliding_layers.push_back(i % 2 == 0);
      break;
    case Windows::AllButNth: {
      c.sliding_window = r.positive_int("sliding_window", 4096);
      const std::int64_t pattern = r.positive_int("sliding_window_pattern", 6);
      for (std::int64_t i = 0; i < c.num_layers; ++i) c.sliding_layers.push_back((i + 1) % pattern != 0);
      break;
    }
  }
  if (f.experts == Experts::Mixtral) {
    MoeConfig m;
    m.mixtral_names = true;
    m.experts = r.positive_int("num_local_experts", f.default_experts);
    m.top_k = r.positive_int("num_experts_per_tok", f.default_top_k);
    m.expert_intermediate = c.intermediate_size;
    c.moe = m;
  }
  if (f.experts == Experts::Qwen) {
    MoeConfig m;
    m.experts = r.positive_int("num_experts", f.default_experts);
    m.top_k = r.positive_int("num_experts_per_tok", f.default_top_k);
    m.expert_intermediate = r.positive_int("moe_intermediate_size", f.default_expert_intermediate);
    m.normalize_top_k = r.boolean("norm_topk_prob", false);
    m.sparse_step = r.positive_int("decoder_sparse_step", 1);
    for (const auto d : r.int_list("mlp_only_layers")) m.dense_layers.push_back(d);
    if (f.default_shared_intermediate > 0)
      m.shared_intermediate = r.positive_int("shared_expert_intermediate_size", f.default_shared_intermediate);
    c.moe = m;
  }
  if (c.moe && c.moe->top_k > c.moe->experts)
    r.fail("num_experts_per_tok", "is " + std::to_string(c.moe->top_k) + ", more than the " + std::to_string(c.moe->experts) + " experts");
  if (c.sliding_window && r.has("layer_types")) {
    const auto& types = j.at("layer_types");
    if (!types.is_array() || static_cast<std::int64_t>(types.size()) != c.num_layers)
      r.fail("layer_types", "must list one type per layer (" + std::to_string(c.num_layers) + ")");
    c.sliding_layers.clear();
    for (const auto& t : types) {
      if (t == "sliding_attention") c.sliding_layers.push_back(true);
      else if (t == "full_attention") c.sliding_layers.push_back(false);
      else r.fail("layer_types", "holds " + t.dump() + "; known: \"full_attention\", \"sliding_attention\"");
    }
  }
  return c;
}

ModelConfig read_gpt2(const nlohmann::json& j, std::string_view source) {
  ConfigReader r(j, source);
  ModelConfig c;
  c.family = ModelFamily::Gpt2;
  c.model_type = "gpt2";
  c.architecture = find_architecture("gpt2");
  c.hidden_size = r.positive_int("n_embd");
  c.num_layers = r.positive_int("n_layer");
  c.num_heads = r.positive_int("n_head");
  c.num_kv_heads = c.num_heads;
  c.vocab_size = r.positive_int("vocab_size");
  if (c.hidden_size % c.num_heads != 0)
    throw Error(std::string(source) + ": n_embd " + std::to_string(c.hidden_size) +
                " is not divisible by n_head " + std::to_string(c.num_heads));
  c.head_dim = c.hidden_size / c.num_heads;
  c.intermediate_size = r.positive_int("n_inner", 4 * c.hidden_size);
  c.max_position_embeddings = r.positive_int("n_positions", 1024);
  c.norm_eps = r.positive_number("layer_norm_epsilon", 1e-5);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", true);
  c.qkv_bias = c.out_proj_bias = c.mlp_bias = true;
  c.activation = r.string("activation_function", "gelu_new");
  if (c.activation != "gelu_new" && c.activation != "gelu" && c.activation != "gelu_pytorch_tanh" &&
      c.activation != "relu")
    r.fail("activation_function",
           "is '" + c.activation + "' (supported: gelu_new, gelu_pytorch_tanh, gelu, relu)");
  if (r.boolean("reorder_and_upcast_attn", false))
    r.fail("reorder_and_upcast_attn", "is true, which this runtime does not support");
  c.scale_attn_by_inverse_layer_idx = r.boolean("scale_attn_by_inverse_layer_idx", false);
  if (!r.boolean("scale_attn_weights", true))
    r.fail("scale_attn_weights", "is false, which this runtime does not support");
  return c;
}

// model_type, or a guess from "architectures" for configs that leave it out.
std::string model_type_of(const nlohmann::json& j, std::string_view source) {
  ConfigReader r(j, source);
  std::string type = r.string("model_type", "");
  if (!type.empty()) return type;
  // The longest class prefix of the table that starts an architectures entry ("Qwen2Moe" before "Qwen2").
  if (j.contains("architectures") && j.at("architectures").is_array()) {
    for (const auto& a : j.at("architectures")) {
      if (!a.is_string()) continue;
      const std::string name = a.get<std::string>();
      const Architecture* best = nullptr;
      for (const auto t : known_model_types()) {
        const Architecture* arch = find_architecture(t);
        if (name.starts_with(arch->prefix) && (!best || arch->prefix.size() > best->prefix.size())) best = arch;
      }
      if (best) return std::string(best->model_type);
    }
  }
  throw Error(std::string(source) + ": key 'model_type' is missing and 'architectures' names no supported model");
}

}  // namespace

GptqConfig GptqConfig::from_json(const nlohmann::json& j, std::string_view source) {
  if (!j.is_object()) throw Error(std::string(source) + ": the quantization config must be a JSON object");
  ConfigReader r(j, source);
  GptqConfig g;
  const std::string method = r.string("quant_method", "gptq");
  if (method != "gptq")
    r.fail("quant_method", "is '" + method + "'; the runtime supports GPTQ checkpoints only");
  g.bits = static_cast<int>(r.positive_int("bits", 4));
  if (g.bits != 2 && g.bits != 4 && g.bits != 8)
    r.fail("bits", "is " + std::to_string(g.bits) + "; the runtime supports 2, 4 and 8 bits");
  if (r.has("group_size") && j.at("group_size").is_number_integer() && j.at("group_size").get<std::int64_t>() == -1)
    g.group_size = -1;
  else
    g.group_size = r.positive_int("group_size", 128);
  g.desc_act = r.boolean("desc_act", false);
  const std::string format = r.string("checkpoint_format", "gptq");
  if (format != "gptq" && format != "gptq_v2")
    r.fail("checkpoint_format", "is '" + format + "' (supported: gptq, gptq_v2)");
  g.zero_offset = format == "gptq";
  return g;
}

AwqConfig AwqConfig::from_json(const nlohmann::json& j, std::string_view source) {
  if (!j.is_object()) throw Error(std::string(source) + ": the quantization config must be a JSON object");
  ConfigReader r(j, source);
  AwqConfig a;
  const auto bits = r.positive_int("bits", 4);
  if (bits != 4) r.fail("bits", "is " + std::to_string(bits) + "; AWQ checkpoints run at 4 bits");
  a.group_size = r.positive_int("group_size", 128);
  if (!r.boolean("zero_point", true)) r.fail("zero_point", "is false; the runtime reads AWQ checkpoints with zero points");
  std::string version = r.string("version", "gemm");
  std::transform(version.begin(), version.end(), version.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (version != "gemm") r.fail("version", "is '" + version + "'; the runtime reads AutoAWQ's GEMM layout only");
  return a;
}

ModelConfig ModelConfig::from_json(const nlohmann::json& config, std::string_view source) {
  if (!config.is_object()) throw Error(std::string(source) + ": expected a JSON object");
  check_config_sizes(config, source);
  const std::string type = model_type_of(config, source);
  std::string runnable;
  for (const auto t : runnable_model_types()) runnable += (runnable.empty() ? "" : ", ") + std::string(t);
  const Architecture* arch = find_architecture(type);
  if (!arch)
    throw Error(std::string(source) + ": model_type '" + type + "' is not supported by the runtime (supported: " + runnable + ")");
  if (arch->forward.runner.empty())
    throw Error(std::string(source) + ": model_type '" + type + "' can be planned but not run: the runtime lacks " +
                std::string(arch->forward.missing) + " (it runs: " + runnable + ")");
  ModelConfig c = arch->forward.runner == "gpt2" ? read_gpt2(config, source) : read_llama(config, source, *arch);
  ConfigReader r(config, source);
  const std::string dtype = r.string("torch_dtype", r.string("dtype", ""));
  if (!dtype.empty()) {
    c.torch_dtype = dtype_from_torch_name(dtype);
    if (!c.torch_dtype) r.fail(config.contains("torch_dtype") ? "torch_dtype" : "dtype", "names an unknown dtype '" + dtype + "'");
  }
  if (r.has("bos_token_id")) {
    const auto ids = r.int_list("bos_token_id");
    if (ids.size() == 1) c.bos_token_id = ids.front();
  }
  c.eos_token_ids = r.int_list("eos_token_id");
  if (r.has("quantization_config")) {
    if (const auto bnb = Quantization::from_config(config, source)) {
      c.bnb = bnb;
    } else if (config.at("quantization_config").is_object() && config.at("quantization_config").value("quant_method", "") == "awq") {
      c.awq = AwqConfig::from_json(config.at("quantization_config"), std::string(source) + ": quantization_config");
    } else {
      c.gptq = GptqConfig::from_json(config.at("quantization_config"), std::string(source) + ": quantization_config");
    }
    if (c.family != ModelFamily::Llama)
      throw Error(std::string(source) + ": quantized checkpoints run for the Llama family only");
  }
  return c;
}

std::string_view family_name(ModelFamily f) {
  switch (f) {
    case ModelFamily::Llama: return "llama";
    case ModelFamily::Gpt2: return "gpt2";
  }
  return "?";
}

}  // namespace devicemap
