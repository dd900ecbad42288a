#include "model/architecture_tensors.hpp"

#include <cctype>

#include <nlohmann/json.hpp>

#include "error.hpp"

namespace devicemap {
namespace {

using Symbols = std::map<std::string, std::int64_t, std::less<>>;

std::int64_t get_int(const nlohmann::json& c, std::initializer_list<const char*> keys, std::int64_t fallback) {
  for (const char* k : keys)
    if (c.contains(k) && c[k].is_number_integer()) return c[k].get<std::int64_t>();
  return fallback;
}

bool get_bool(const nlohmann::json& c, const char* key, bool fallback) {
  return c.contains(key) && c[key].is_boolean() ? c[key].get<bool>() : fallback;
}

// A tiny evaluator for shape expressions: integers, symbols, + - * / and parentheses.
class Expr {
 public:
  Expr(std::string_view text, const Symbols& sym) : t_(text), sym_(sym) {}
  std::int64_t eval() {
    const auto v = sum();
    if (pos_ != t_.size()) fail();
    return v;
  }

 private:
  std::int64_t sum() {
    auto v = product();
    while (pos_ < t_.size() && (t_[pos_] == '+' || t_[pos_] == '-')) v = t_[pos_++] == '+' ? v + product() : v - product();
    return v;
  }
  std::int64_t product() {
    auto v = atom();
    while (pos_ < t_.size() && (t_[pos_] == '*' || t_[pos_] == '/')) {
      const char op = t_[pos_++];
      const auto r = atom();
      if (op == '/' && r == 0) fail();
      v = op == '*' ? v * r : v / r;
    }
    return v;
  }
  std::int64_t atom() {
    if (pos_ >= t_.size()) fail();
    if (t_[pos_] == '(') {
      ++pos_;
      const auto v = sum();
      if (pos_ >= t_.size() || t_[pos_++] != ')') fail();
      return v;
    }
    const auto start = pos_;
    while (pos_ < t_.size() && std::isalnum(static_cast<unsigned char>(t_[pos_]))) ++pos_;
    const auto tok = t_.substr(start, pos_ - start);
    if (tok.empty()) fail();
    if (std::isdigit(static_cast<unsigned char>(tok[0]))) return std::stoll(std::string(tok));
    auto it = sym_.find(tok);
    if (it == sym_.end()) fail();
    return it->second;
  }
  [[noreturn]] void fail() const { throw Error("architecture table: bad shape expression '" + std::string(t_) + "'"); }
  std::string_view t_;
  const Symbols& sym_;
  std::size_t pos_ = 0;
};

std::string class_name(std::string_view cls, std::string_view prefix) {
  std::string out(cls);
  if (auto p = out.find("{}"); p != std::string::npos) out.replace(p, 2, prefix);
  return out;
}

std::int64_t symbol(const ArchitectureValues& v, const char* name) {
  const auto it = v.symbols.find(name);
  return it == v.symbols.end() ? 0 : it->second;
}

// Expands '#' in a rule path: the first over the layers the rule applies to, a second over experts.
void expand(std::string_view path, LayerKind kind, const ArchitectureValues& values,
            const std::function<void(const std::string&)>& fn) {
  if (const auto at = path.find('@'); at != std::string_view::npos) {
    for (std::int64_t i = 0; i < symbol(values, "VL"); ++i)
      fn(std::string(path.substr(0, at)) + std::to_string(i) + std::string(path.substr(at + 1)));
    return;
  }
  const auto first = path.find('#');
  if (first == std::string_view::npos) return fn(std::string(path));
  const auto second = path.find('#', first + 1);
  for (std::int64_t i = 0; i < symbol(values, "L"); ++i) {
    if (kind != LayerKind::All) {
      const bool sparse = values.sparse_layer && values.sparse_layer(i);
      if (sparse != (kind == LayerKind::Sparse)) continue;
    }
    std::string p = std::string(path.substr(0, first)) + std::to_string(i) + std::string(path.substr(first + 1));
    if (second == std::string_view::npos) {
      fn(p);
      continue;
    }
    const auto at = p.find('#');
    for (std::int64_t e = 0; e < symbol(values, "E"); ++e) fn(p.substr(0, at) + std::to_string(e) + p.substr(at + 1));
  }
}

}  // namespace

std::vector<std::int64_t> eval_shape(std::string_view spec, const Symbols& sym) {
  std::vector<std::int64_t> shape;
  std::size_t start = 0;
  while (start < spec.size()) {
    // Split on commas outside parentheses.
    std::size_t end = start;
    for (int depth = 0; end < spec.size() && (spec[end] != ',' || depth > 0); ++end)
      depth += spec[end] == '(' ? 1 : spec[end] == ')' ? -1 : 0;
    shape.push_back(Expr(spec.substr(start, end - start), sym).eval());
    start = end + 1;
  }
  return shape;
}

ArchitectureValues values_from_config(const Architecture& arch, const nlohmann::json& config) {
  ArchitectureValues v;
  Symbols& s = v.symbols;
  // A multimodal config (Gemma 3) holds the language model's keys in text_config and the image
  // encoder's in vision_config: VH hidden, VI intermediate, VL layers, PS patch size, VC channels, VP
  // patches per image.
  static const nlohmann::json kEmpty = nlohmann::json::object();
  const bool nested = config.contains("text_config") && config["text_config"].is_object();
  const nlohmann::json& c = nested ? config["text_config"] : config;
  const nlohmann::json& vision = config.contains("vision_config") && config["vision_config"].is_object() ? config["vision_config"] : kEmpty;
  if (&vision != &kEmpty) {
    s["VH"] = get_int(vision, {"hidden_size"}, 768);
    s["VI"] = get_int(vision, {"intermediate_size"}, 3072);
    s["VL"] = get_int(vision, {"num_hidden_layers"}, 12);
    s["PS"] = get_int(vision, {"patch_size"}, 16);
    s["VC"] = get_int(vision, {"num_channels"}, 3);
    const std::int64_t side = s["PS"] > 0 ? get_int(vision, {"image_size"}, 224) / s["PS"] : 0;
    s["VP"] = side * side;
  }
  s["H"] = get_int(c, {"hidden_size", "n_embd", "n_embed"}, 0);
  s["NH"] = get_int(c, {"num_attention_heads", "n_head"}, 0);
  s["KV"] = get_int(c, {"num_key_value_heads"}, s["NH"]);
  s["D"] = get_int(c, {"head_dim"}, s["NH"] > 0 ? s["H"] / s["NH"] : 0);
  s["I"] = get_int(c, {"intermediate_size", "n_inner"}, 4 * s["H"]);
  s["V"] = get_int(c, {"vocab_size"}, 0);
  s["P"] = get_int(c, {"max_position_embeddings", "n_positions"}, 0);
  s["L"] = get_int(c, {"num_hidden_layers", "n_layer"}, 0);
  s["E"] = get_int(c, {"num_local_experts", "num_experts", "n_routed_experts"}, arch.forward.default_experts);
  s["IE"] = get_int(c, {"moe_intermediate_size"}, arch.forward.default_expert_intermediate > 0 ? arch.forward.default_expert_intermediate : s["I"]);
  s["IS"] = get_int(c, {"shared_expert_intermediate_size"},
                    arch.forward.default_shared_intermediate > 0 ? arch.forward.default_shared_intermediate : s["I"]);
  // DeepSeek's latent attention and shared experts.
  s["QR"] = get_int(c, {"q_lora_rank"}, 0);
  s["KR"] = get_int(c, {"kv_lora_rank"}, 0);
  s["QN"] = get_int(c, {"qk_nope_head_dim"}, 0);
  s["QP"] = get_int(c, {"qk_rope_head_dim"}, 0);
  s["VD"] = get_int(c, {"v_head_dim"}, 0);
  if (c.contains("n_shared_experts")) s["IS"] = s["IE"] * get_int(c, {"n_shared_experts"}, 1);
  v.attention_bias = get_bool(c, "attention_bias", arch.attention_bias_default);
  v.mlp_bias = get_bool(c, "mlp_bias", false);
  v.tied = get_bool(c, "tie_word_embeddings", get_bool(config, "tie_word_embeddings", arch.tie_default));
  // A layer is sparse unless a key of its config class makes it dense: Qwen MoE's decoder_sparse_step
  // and mlp_only_layers, DeepSeek's first_k_dense_replace and moe_layer_freq.
  std::vector<std::int64_t> dense;
  if (c.contains("mlp_only_layers") && c["mlp_only_layers"].is_array())
    for (const auto& d : c["mlp_only_layers"])
      if (d.is_number_integer()) dense.push_back(d.get<std::int64_t>());
  const std::int64_t step = std::max<std::int64_t>(1, get_int(c, {"decoder_sparse_step"}, 1));
  const std::int64_t first_sparse = get_int(c, {"first_k_dense_replace"}, 0);
  const std::int64_t freq = std::max<std::int64_t>(1, get_int(c, {"moe_layer_freq"}, 1));
  if (s["E"] > 0)
    v.sparse_layer = [dense, step, first_sparse, freq](std::int64_t i) {
      for (auto d : dense)
        if (d == i) return false;
      return (i + 1) % step == 0 && i >= first_sparse && i % freq == 0;
    };
  return v;
}

std::string explain_dimension(std::string_view expr, const ArchitectureValues& values, bool gpt2_keys) {
  static const std::map<std::string, std::pair<const char*, const char*>, std::less<>> keys{
      {"H", {"hidden_size", "n_embd"}},
      {"I", {"intermediate_size", "n_inner"}},
      {"V", {"vocab_size", "vocab_size"}},
      {"NH", {"num_attention_heads", "n_head"}},
      {"KV", {"num_key_value_heads", "n_head"}},
      {"D", {"head_dim", "n_embd / n_head"}},
      {"P", {"max_position_embeddings", "n_positions"}},
      {"E", {"num_experts", "num_experts"}},
      {"IE", {"moe_intermediate_size", "moe_intermediate_size"}},
      {"IS", {"shared_expert_intermediate_size", "shared_expert_intermediate_size"}},
  };
  std::string out;
  for (std::size_t i = 0; i < expr.size();) {
    if (!std::isalpha(static_cast<unsigned char>(expr[i]))) {
      out += expr[i] == '*' ? std::string(" × ") : std::string(1, expr[i]);
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < expr.size() && std::isalnum(static_cast<unsigned char>(expr[j]))) ++j;
    const std::string sym(expr.substr(i, j - i));
    const auto k = keys.find(sym);
    out += (k == keys.end() ? sym : std::string(gpt2_keys ? k->second.second : k->second.first)) + " (" +
           std::to_string(symbol(values, sym.c_str())) + ")";
    i = j;
  }
  const auto shape = eval_shape(expr, values.symbols);
  if (expr.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string_view::npos && shape.size() == 1)
    out += " = " + std::to_string(shape[0]);
  return out;
}

std::vector<ArchitectureModule> architecture_modules(const Architecture& arch, const ArchitectureValues& values) {
  std::vector<ArchitectureModule> out;
  for (const auto& rule : arch.modules)
    expand(rule.path, rule.layers, values, [&](const std::string& p) { out.push_back({p, class_name(rule.cls, arch.prefix)}); });
  return out;
}

std::vector<ArchitectureTensor> architecture_tensors(const Architecture& arch, const ArchitectureValues& values) {
  std::vector<ArchitectureTensor> out;
  for (const auto& rule : arch.modules) {
    if (rule.tensors.empty()) continue;
    const std::string cls = class_name(rule.cls, arch.prefix);
    expand(rule.path, rule.layers, values, [&](const std::string& p) {
      std::string_view spec = rule.tensors;
      while (!spec.empty()) {
        const auto semi = spec.find(';');
        const auto item = spec.substr(0, semi);
        spec = semi == std::string_view::npos ? std::string_view{} : spec.substr(semi + 1);
        const auto eq = item.find('=');
        std::string_view leaf = item.substr(0, eq);
        ArchitectureTensor t;
        if (leaf.ends_with("?mlp")) {
          if (!values.mlp_bias) continue;
          leaf.remove_suffix(4);
        } else if (leaf.ends_with('?')) {
          if (!values.attention_bias) continue;
          leaf.remove_suffix(1);
        } else if (leaf.ends_with('!')) {
          leaf.remove_suffix(1);
          if (values.tied) t.tied_to = std::string(arch.tie_canonical);
        }
        t.name = p + "." + std::string(leaf);
        const std::string_view spec_dims = item.substr(eq + 1);
        t.shape = eval_shape(spec_dims, values.symbols);
        t.module_class = cls;
        for (std::size_t start = 0, depth = 0, i = 0; i <= spec_dims.size(); ++i) {
          if (i == spec_dims.size() || (spec_dims[i] == ',' && depth == 0)) {
            t.dims.emplace_back(spec_dims.substr(start, i - start));
            start = i + 1;
          } else if (spec_dims[i] == '(') {
            ++depth;
          } else if (spec_dims[i] == ')') {
            --depth;
          }
        }
        out.push_back(std::move(t));
      }
    });
  }
  return out;
}

std::vector<ArchitectureBuffer> architecture_buffers(const Architecture& arch, const ArchitectureValues& values) {
  std::vector<ArchitectureBuffer> out;
  for (const auto& b : arch.buffers)
    expand(b.path, b.layers, values,
           [&](const std::string& p) { out.push_back({p, eval_shape(b.shape, values.symbols), b.dtype, b.persistent}); });
  return out;
}

}  // namespace devicemap
