// Skeletons of real models: from a checkpoint's headers (exact names, shapes, dtypes) or from config.json
// alone (shapes computed), both ordered and classed by the architecture table so that they equal the
// module tree from_pretrained builds. Unknown model types get a generic tree from the tensor names.
#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <set>

#include "error.hpp"
#include "format/checkpoint.hpp"
#include "model/architecture.hpp"
#include "model/architecture_tensors.hpp"
#include "model/model_source.hpp"
#include "model/quantization.hpp"
#include "model/size_limits.hpp"

namespace devicemap {
namespace {

// "llama, mistral, …": the architecture table's model types, for messages.
std::string known_types_list() {
  std::string out;
  for (const auto t : known_model_types()) out += (out.empty() ? "" : ", ") + std::string(t);
  return out;
}

// Modules of the architecture, created in registration order.
Skeleton tree_for(const Architecture& a, const nlohmann::json& config, const ArchitectureValues& values) {
  if (values.symbols.at("L") <= 0) throw Error("config.json: num_hidden_layers (or n_layer) is missing or not positive");
  Skeleton s;
  s.model_type = std::string(a.model_type);
  s.config = config;
  std::string no_split(a.layer_class);
  if (const auto p = no_split.find("{}"); p != std::string::npos) no_split.replace(p, 2, a.prefix);
  s.no_split_module_classes = {no_split};
  for (const auto extra : a.more_no_split) s.no_split_module_classes.emplace_back(extra);
  for (const auto& m : architecture_modules(a, values)) {
    const int id = m.path.empty() ? 0 : s.ensure_module(m.path);
    s.modules[static_cast<std::size_t>(id)].cls = m.cls;
  }
  const std::string layers_prefix = std::string(a.layers_path) + ".";
  for (auto& m : s.modules) {
    const auto& n = m.name;
    m.is_layer = n.starts_with(layers_prefix) && n.find('.', layers_prefix.size()) == std::string::npos;
  }
  return s;
}

void add_buffers(Skeleton& s, const Architecture& a, const ArchitectureValues& values) {
  for (auto& b : architecture_buffers(a, values)) {
    if (s.find_tensor(b.name) >= 0) continue;
    SkeletonTensor t;
    t.name = std::move(b.name);
    t.shape = std::move(b.shape);
    t.dtype = b.dtype;
    t.buffer = true;
    t.persistent = b.persistent;
    s.add_tensor(std::move(t));
  }
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

// quantization_config {"quant_method": "fp8", "weight_block_size": [128, 128]} (DeepSeek-V3, the
// *-FP8 releases): transformers' FineGrainedFP8 quantizer turns every Linear but lm_head and the
// modules_to_not_convert into FP8Linear.
struct Fp8Blocks {
  bool on = false;
  std::int64_t rows = 128, cols = 128;
  std::vector<std::string> not_converted{"lm_head"};
  bool skipped(const std::string& module) const {
    for (const auto& n : not_converted)
      if (module == n || module.ends_with("." + n)) return true;
    return false;
  }
};

Fp8Blocks fp8_blocks(const nlohmann::json& config) {
  Fp8Blocks f;
  if (!config.contains("quantization_config") || !config["quantization_config"].is_object()) return f;
  const auto& q = config["quantization_config"];
  if (q.value("quant_method", "") != "fp8") return f;
  f.on = true;
  if (q.contains("weight_block_size") && q["weight_block_size"].is_array() && q["weight_block_size"].size() == 2 &&
      q["weight_block_size"][0].is_number_integer() && q["weight_block_size"][1].is_number_integer()) {
    f.rows = std::max<std::int64_t>(1, q["weight_block_size"][0].get<std::int64_t>());
    f.cols = std::max<std::int64_t>(1, q["weight_block_size"][1].get<std::int64_t>());
  }
  if (q.contains("modules_to_not_convert") && q["modules_to_not_convert"].is_array())
    for (const auto& m : q["modules_to_not_convert"])
      if (m.is_string()) f.not_converted.push_back(m.get<std::string>());
  return f;
}

}  // namespace

Skeleton skeleton_from_config(const nlohmann::json& config) {
  if (!config.is_object()) throw Error("config.json: expected a JSON object of settings");
  if (config.contains("model_type") && !config["model_type"].is_string())
    throw Error("config.json: model_type must be a string, not " + config["model_type"].dump());
  const std::string type = config.value("model_type", "");
  const Architecture* a = find_architecture(type);
  if (!a) throw Error("config.json: model_type '" + type + "' is not in the architecture table, so its tensors "
                      "cannot be derived from the config alone; open the checkpoint itself");
  check_config_sizes(config);
  const ArchitectureValues values = values_from_config(*a, config);
  Skeleton s = tree_for(*a, config, values);
  DType dtype = DType::F32;
  if (config.contains("torch_dtype") && config["torch_dtype"].is_string())
    dtype = dtype_from_torch_name(config["torch_dtype"].get<std::string>()).value_or(DType::F32);
  const Fp8Blocks fp8 = fp8_blocks(config);
  for (auto& row : architecture_tensors(*a, values)) {
    if (!row.tied_to.empty()) continue;  // a tied alias: registered by the tie below
    SkeletonTensor t;
    t.name = std::move(row.name);
    t.shape = std::move(row.shape);
    t.dtype = dtype;
    const std::string module = t.name.substr(0, t.name.rfind('.'));
    const bool fp8_weight = fp8.on && row.module_class == "Linear" && t.name.ends_with(".weight") && t.shape.size() == 2 &&
                            !fp8.skipped(module);
    SkeletonTensor scale;
    if (fp8_weight) {
      // transformers' FP8Linear: the weight in float8 (e4m3), then its inverse scale per block, float32.
      t.dtype = DType::F8_E4M3;
      scale.name = module + ".weight_scale_inv";
      scale.shape = {(t.shape[0] + fp8.rows - 1) / fp8.rows, (t.shape[1] + fp8.cols - 1) / fp8.cols};
      scale.dtype = DType::F32;
    }
    s.add_tensor(std::move(t));
    if (fp8_weight) s.add_tensor(std::move(scale));
  }
  if (values.tied) s.tie(a->tie_canonical, a->tie_alias);
  add_buffers(s, *a, values);
  return s;
}

Skeleton skeleton_from_checkpoint(const Checkpoint& ckpt) {
  if (ckpt.tensors().empty())
    throw Error(ckpt.dir().string() + ": no safetensors weights to read a skeleton from (pytorch_model*.bin "
                "checkpoints are planned from config.json: use the catalog or convert to safetensors)");
  const Architecture* a = find_architecture(ckpt.model_type());
  if (!a) return generic_skeleton(ckpt);
  check_config_sizes(ckpt.config(), (ckpt.dir() / "config.json").string());
  // A bitsandbytes checkpoint stores packed rows and their scales, but transformers' meta model holds
  // Linear8bitLt / Linear4bit modules of the float shapes: plan from config.json's shapes, as it does.
  if (Quantization::from_config(ckpt.config(), (ckpt.dir() / "config.json").string())) {
    Skeleton s = skeleton_from_config(ckpt.config());
    s.warnings.push_back("a bitsandbytes checkpoint: planned from config.json's shapes (the meta model transformers "
                         "builds), not from its packed tensors");
    return s;
  }
  const ArchitectureValues values = values_from_config(*a, ckpt.config());
  Skeleton s = tree_for(*a, ckpt.config(), values);
  std::set<std::string, std::less<>> buffer_names;
  for (const auto& b : architecture_buffers(*a, values)) buffer_names.insert(b.name);
  const std::string stem = std::string(a->layers_path.substr(0, a->layers_path.find('.'))) + ".";
  std::vector<std::pair<std::string, const TensorInfo*>> named;
  for (const auto& t : ckpt.tensors()) {
    std::string name = t.info->name;
    for (const auto& [stored, tree] : a->checkpoint_renames)
      if (name.starts_with(stored)) {
        name = std::string(tree) + name.substr(stored.size());
        break;
      }
    // GPT-2 style checkpoints store the base model's tensors without its prefix ("h.0…", "wte.weight").
    if (s.find_module(name.substr(0, name.rfind('.'))) < 0 && !name.starts_with(stem) && !name.starts_with("lm_head.") &&
        s.find_module(stem + name.substr(0, name.rfind('.'))) >= 0)
      name = stem + name;
    if (buffer_names.count(name)) continue;  // transformers recreates these and ignores the stored copy
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
  if (values.tied && s.find_tensor(a->tie_canonical) >= 0) s.tie(a->tie_canonical, a->tie_alias);
  add_buffers(s, *a, values);
  return s;
}

}  // namespace devicemap
