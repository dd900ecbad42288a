// Skeletons of real models: from a checkpoint's headers (exact names, shapes, dtypes) or from config.json
// alone (shapes computed), both ordered and classed by the architecture table so that they equal the
// module tree from_pretrained builds. Unknown model types get a generic tree from the tensor names.
#include <algorithm>
#include <cctype>
#include <functional>
#include <map>

#include "error.hpp"
#include "format/checkpoint.hpp"
#include "model/architecture.hpp"
#include "model/model_source.hpp"
#include "model/size_limits.hpp"

namespace devicemap {
namespace {

// "llama, mistral, …": the architecture table's model types, for messages.
std::string known_types_list() {
  std::string out;
  for (const auto t : known_model_types()) out += (out.empty() ? "" : ", ") + std::string(t);
  return out;
}

using Symbols = std::map<std::string, std::int64_t, std::less<>>;

std::int64_t get_int(const nlohmann::json& c, std::initializer_list<const char*> keys, std::int64_t fallback) {
  for (const char* k : keys)
    if (c.contains(k) && c[k].is_number_integer()) return c[k].get<std::int64_t>();
  return fallback;
}

Symbols symbols_from_config(const nlohmann::json& c) {
  Symbols s;
  s["H"] = get_int(c, {"hidden_size", "n_embd", "n_embed"}, 0);
  s["NH"] = get_int(c, {"num_attention_heads", "n_head"}, 0);
  s["KV"] = get_int(c, {"num_key_value_heads"}, s["NH"]);
  s["D"] = get_int(c, {"head_dim"}, s["NH"] > 0 ? s["H"] / s["NH"] : 0);
  s["I"] = get_int(c, {"intermediate_size", "n_inner"}, 4 * s["H"]);
  s["V"] = get_int(c, {"vocab_size"}, 0);
  s["P"] = get_int(c, {"max_position_embeddings", "n_positions"}, 0);
  s["L"] = get_int(c, {"num_hidden_layers", "n_layer"}, 0);
  s["E"] = get_int(c, {"num_local_experts", "num_experts"}, 0);
  s["IE"] = get_int(c, {"moe_intermediate_size"}, s["I"]);  // an expert's intermediate size (Qwen MoE)
  s["IS"] = get_int(c, {"shared_expert_intermediate_size"}, s["I"]);  // Qwen2-MoE's shared expert
  return s;
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

std::string class_name(std::string_view cls, std::string_view prefix) {
  std::string out(cls);
  if (auto p = out.find("{}"); p != std::string::npos) out.replace(p, 2, prefix);
  return out;
}

// Expands '#' in a rule path: the first over layers, a second over experts.
void expand(std::string_view path, const Symbols& sym, const std::function<void(const std::string&)>& fn) {
  const auto first = path.find('#');
  if (first == std::string_view::npos) return fn(std::string(path));
  const auto second = path.find('#', first + 1);
  for (std::int64_t i = 0; i < sym.at("L"); ++i) {
    std::string p = std::string(path.substr(0, first)) + std::to_string(i) + std::string(path.substr(first + 1));
    if (second == std::string_view::npos) {
      fn(p);
      continue;
    }
    const auto at = p.find('#');
    for (std::int64_t e = 0; e < sym.at("E"); ++e) fn(p.substr(0, at) + std::to_string(e) + p.substr(at + 1));
  }
}

bool attention_bias(const Architecture& a, const nlohmann::json& c) {
  if (c.contains("attention_bias") && c["attention_bias"].is_boolean()) return c["attention_bias"].get<bool>();
  return a.attention_bias_default;
}

bool tied(const Architecture& a, const nlohmann::json& c) {
  if (c.contains("tie_word_embeddings") && c["tie_word_embeddings"].is_boolean()) return c["tie_word_embeddings"].get<bool>();
  return a.tie_default;
}

// Modules of the architecture, created in registration order; tensors added by `add_tensors`.
Skeleton tree_for(const Architecture& a, const nlohmann::json& config, const Symbols& sym) {
  if (sym.at("L") <= 0) throw Error("config.json: num_hidden_layers (or n_layer) is missing or not positive");
  Skeleton s;
  s.model_type = std::string(a.model_type);
  s.config = config;
  s.no_split_module_classes = {class_name(a.layer_class, a.prefix)};
  for (const auto& rule : a.modules)
    expand(rule.path, sym, [&](const std::string& p) {
      const int m = p.empty() ? 0 : s.ensure_module(p);
      s.modules[static_cast<std::size_t>(m)].cls = class_name(rule.cls, a.prefix);
    });
  const std::string layers_prefix = std::string(a.layers_path) + ".";
  for (auto& m : s.modules) {
    const auto& n = m.name;
    m.is_layer = n.starts_with(layers_prefix) && n.find('.', layers_prefix.size()) == std::string::npos;
  }
  return s;
}

void add_buffers(Skeleton& s, const Architecture& a, const Symbols& sym) {
  for (const auto& b : a.buffers)
    expand(b.path, sym, [&](const std::string& p) {
      if (s.find_tensor(p) >= 0) return;
      SkeletonTensor t;
      t.name = p;
      t.shape = eval_shape(b.shape, sym);
      t.dtype = b.dtype;
      t.buffer = true;
      t.persistent = b.persistent;
      s.add_tensor(std::move(t));
    });
}

// Parameters in the order modules register them: weight first, then the GPTQ buffers, then bias.
int param_rank(std::string_view leaf) {
  static constexpr std::string_view order[] = {"weight", "qweight", "qzeros", "scales", "g_idx", "bias"};
  for (std::size_t i = 0; i < std::size(order); ++i)
    if (order[i] == leaf) return static_cast<int>(i);
  return static_cast<int>(std::size(order));
}

// "model.layers.10.x" after "model.layers.9.x": digits compare as numbers.
bool numeric_less(std::string_view a, std::string_view b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      std::size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      const auto na = std::stoull(std::string(a.substr(i, ie - i))), nb = std::stoull(std::string(b.substr(j, je - j)));
      if (na != nb) return na < nb;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

Skeleton generic_skeleton(const Checkpoint& ckpt) {
  Skeleton s;
  s.config = ckpt.config();
  s.model_type = ckpt.model_type();
  std::vector<const TensorInfo*> infos;
  for (const auto& t : ckpt.tensors()) infos.push_back(t.info);
  std::sort(infos.begin(), infos.end(), [](auto* x, auto* y) { return numeric_less(x->name, y->name); });
  for (const auto* info : infos) {
    SkeletonTensor t;
    t.name = info->name;
    t.shape = info->shape;
    t.dtype = info->dtype;
    s.add_tensor(std::move(t));
  }
  // Repeated numbered children of one container are the blocks: never split, each a layer.
  for (auto& m : s.modules) {
    std::size_t numbered = 0;
    for (int c : m.children) {
      const auto& n = s.modules[static_cast<std::size_t>(c)].name;
      const auto leaf = n.substr(n.rfind('.') + 1);
      numbered += !leaf.empty() && std::all_of(leaf.begin(), leaf.end(), [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); });
    }
    if (numbered >= 2 && numbered == m.children.size()) {
      m.cls = "ModuleList";
      for (int c : m.children) {
        s.modules[static_cast<std::size_t>(c)].cls = "Block";
        s.modules[static_cast<std::size_t>(c)].is_layer = true;
      }
    }
  }
  for (auto& m : s.modules)
    if (m.cls.empty()) m.cls = m.children.empty() ? "Module" : "Container";
  if (std::any_of(s.modules.begin(), s.modules.end(), [](const auto& m) { return m.is_layer; }))
    s.no_split_module_classes = {"Block"};
  s.warnings.push_back("model_type '" + s.model_type + "' is not in the architecture table; the module tree was " +
                       "guessed from tensor names (numbered blocks are kept whole). Known types: " + known_types_list());
  return s;
}

}  // namespace

Skeleton skeleton_from_config(const nlohmann::json& config) {
  const std::string type = config.value("model_type", "");
  const Architecture* a = find_architecture(type);
  if (!a) throw Error("config.json: model_type '" + type + "' is not in the architecture table, so its tensors "
                      "cannot be derived from the config alone; open the checkpoint itself");
  check_config_sizes(config);
  const Symbols sym = symbols_from_config(config);
  Skeleton s = tree_for(*a, config, sym);
  DType dtype = DType::F32;
  if (config.contains("torch_dtype") && config["torch_dtype"].is_string())
    dtype = dtype_from_torch_name(config["torch_dtype"].get<std::string>()).value_or(DType::F32);
  const bool bias = attention_bias(*a, config);
  const bool is_tied = tied(*a, config);
  for (const auto& rule : a->modules) {
    if (rule.tensors.empty()) continue;
    expand(rule.path, sym, [&](const std::string& p) {
      std::string_view spec = rule.tensors;
      while (!spec.empty()) {
        const auto semi = spec.find(';');
        const auto item = spec.substr(0, semi);
        spec = semi == std::string_view::npos ? std::string_view{} : spec.substr(semi + 1);
        const auto eq = item.find('=');
        std::string_view leaf = item.substr(0, eq);
        if (leaf.ends_with('?')) {
          if (!bias) continue;
          leaf.remove_suffix(1);
        }
        if (leaf.ends_with('!')) {
          if (is_tied) continue;
          leaf.remove_suffix(1);
        }
        SkeletonTensor t;
        t.name = p + "." + std::string(leaf);
        t.shape = eval_shape(item.substr(eq + 1), sym);
        t.dtype = dtype;
        s.add_tensor(std::move(t));
      }
    });
  }
  if (is_tied) s.tie(a->tie_canonical, a->tie_alias);
  add_buffers(s, *a, sym);
  return s;
}

Skeleton skeleton_from_checkpoint(const Checkpoint& ckpt) {
  if (ckpt.tensors().empty())
    throw Error(ckpt.dir().string() + ": no safetensors weights to read a skeleton from (pytorch_model*.bin "
                "checkpoints are planned from config.json: use the catalog or convert to safetensors)");
  const Architecture* a = find_architecture(ckpt.model_type());
  if (!a) return generic_skeleton(ckpt);
  check_config_sizes(ckpt.config(), (ckpt.dir() / "config.json").string());
  Symbols sym = symbols_from_config(ckpt.config());
  Skeleton s = tree_for(*a, ckpt.config(), sym);
  const std::string stem = std::string(a->layers_path.substr(0, a->layers_path.find('.'))) + ".";
  std::vector<std::pair<std::string, const TensorInfo*>> named;
  for (const auto& t : ckpt.tensors()) {
    std::string name = t.info->name;
    // GPT-2 style checkpoints store the base model's tensors without its prefix ("h.0…", "wte.weight").
    if (s.find_module(name.substr(0, name.rfind('.'))) < 0 && !name.starts_with(stem) && !name.starts_with("lm_head.") &&
        s.find_module(stem + name.substr(0, name.rfind('.'))) >= 0)
      name = stem + name;
    bool is_buffer_rule = false;
    for (const auto& b : a->buffers)
      expand(b.path, sym, [&](const std::string& p) { is_buffer_rule = is_buffer_rule || p == name; });
    if (is_buffer_rule) continue;  // transformers recreates these and ignores the stored copy
    named.emplace_back(std::move(name), t.info);
  }
  std::sort(named.begin(), named.end(), [&](const auto& x, const auto& y) {
    const auto mx = x.first.substr(0, x.first.rfind('.')), my = y.first.substr(0, y.first.rfind('.'));
    if (mx != my) return numeric_less(mx, my);
    return param_rank(x.first.substr(x.first.rfind('.') + 1)) < param_rank(y.first.substr(y.first.rfind('.') + 1));
  });
  for (const auto& [name, info] : named) {
    const auto mod = name.substr(0, name.rfind('.'));
    if (s.find_module(mod) < 0)
      s.warnings.push_back("tensor " + info->name + " is outside the " + std::string(a->model_type) + " layout; kept as is");
    SkeletonTensor t;
    t.name = name;
    t.shape = info->shape;
    t.dtype = info->dtype;
    s.add_tensor(std::move(t));
  }
  if (tied(*a, ckpt.config()) && s.find_tensor(a->tie_canonical) >= 0) s.tie(a->tie_canonical, a->tie_alias);
  add_buffers(s, *a, sym);
  return s;
}

}  // namespace devicemap
