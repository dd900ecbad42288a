#include "model/skeleton.hpp"

#include <algorithm>

#include "error.hpp"

namespace devicemap {

std::uint64_t SkeletonTensor::numel() const {
  std::uint64_t n = 1;
  for (auto d : shape) n *= static_cast<std::uint64_t>(d);
  return n;
}

Skeleton::Skeleton() {
  modules.push_back(SkeletonModule{});
  module_index_.emplace("", 0);
}

int Skeleton::ensure_module(std::string_view name) {
  if (auto it = module_index_.find(std::string(name)); it != module_index_.end()) return it->second;
  const auto dot = name.rfind('.');
  const int parent = dot == std::string_view::npos ? 0 : ensure_module(name.substr(0, dot));
  const int id = static_cast<int>(modules.size());
  SkeletonModule m;
  m.name = std::string(name);
  m.parent = parent;
  modules.push_back(std::move(m));
  modules[static_cast<std::size_t>(parent)].children.push_back(id);
  module_index_.emplace(std::string(name), id);
  return id;
}

int Skeleton::add_tensor(SkeletonTensor t) {
  if (t.name.empty()) throw Error("a tensor without a name");
  if (tensor_index_.contains(t.name)) throw Error("tensor " + t.name + " is listed twice");
  const auto dot = t.name.rfind('.');
  t.module = dot == std::string::npos ? 0 : ensure_module(std::string_view(t.name).substr(0, dot));
  const int id = static_cast<int>(tensors.size());
  auto& m = modules[static_cast<std::size_t>(t.module)];
  (t.buffer ? m.buffers : m.params).push_back(id);
  tensor_index_.emplace(t.name, id);
  tensors.push_back(std::move(t));
  return id;
}

void Skeleton::tie(std::string_view canonical, std::string_view alias) {
  int c = find_tensor(canonical), a = find_tensor(alias);
  if (c < 0 && a < 0) throw Error("tied weight " + std::string(canonical) + " is not a tensor of the model");
  if (c < 0 || a < 0) {
    SkeletonTensor t = tensors[static_cast<std::size_t>(c < 0 ? a : c)];
    t.name = std::string(c < 0 ? canonical : alias);
    t.tied_to = -1;
    (c < 0 ? c : a) = add_tensor(std::move(t));
  }
  const auto& tc = tensors[static_cast<std::size_t>(c)];
  const auto& ta = tensors[static_cast<std::size_t>(a)];
  if (tc.shape != ta.shape) throw Error("tied weights " + tc.name + " and " + ta.name + " differ in shape");
  const auto root = [&](int i) { return tensors[static_cast<std::size_t>(i)].tied_to >= 0 ? tensors[static_cast<std::size_t>(i)].tied_to : i; };
  const int rc = root(c), ra = root(a);
  if (rc == ra) return;
  // The one named_parameters() meets first: modules depth first in the order they were registered,
  // each module's own tensors before its children's.
  std::vector<int> position(tensors.size(), 0);
  int next = 0;
  std::vector<int> stack{0};
  while (!stack.empty()) {
    const auto& m = modules[static_cast<std::size_t>(stack.back())];
    stack.pop_back();
    for (int t : m.params) position[static_cast<std::size_t>(t)] = next++;
    for (int t : m.buffers) position[static_cast<std::size_t>(t)] = next++;
    for (auto it = m.children.rbegin(); it != m.children.rend(); ++it) stack.push_back(*it);
  }
  const bool c_first = position[static_cast<std::size_t>(rc)] <= position[static_cast<std::size_t>(ra)];
  const int keep = c_first ? rc : ra, other = c_first ? ra : rc;
  for (auto& t : tensors)
    if (t.tied_to == other) t.tied_to = keep;
  tensors[static_cast<std::size_t>(other)].tied_to = keep;
}

int Skeleton::find_module(std::string_view name) const {
  auto it = module_index_.find(std::string(name));
  return it == module_index_.end() ? -1 : it->second;
}

int Skeleton::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? -1 : it->second;
}

std::vector<std::vector<std::string>> Skeleton::tie_groups() const {
  std::vector<std::vector<std::string>> groups;
  std::unordered_map<int, std::size_t> by_canonical;
  for (const auto& t : tensors) {
    if (t.tied_to < 0) continue;
    auto [it, fresh] = by_canonical.emplace(t.tied_to, groups.size());
    if (fresh) groups.push_back({tensors[static_cast<std::size_t>(t.tied_to)].name});
    groups[it->second].push_back(t.name);
  }
  for (auto& g : groups) std::sort(g.begin(), g.end());
  return groups;
}

std::uint64_t Skeleton::total_bytes() const {
  std::uint64_t total = 0;
  for (const auto& t : tensors)
    if (t.tied_to < 0) total += dtype_bytes(t.dtype, t.numel());
  return total;
}

namespace {

std::vector<std::int64_t> read_shape(const nlohmann::json& j, const std::string& where) {
  if (!j.is_array()) throw Error(where + ": shape must be an array of non-negative integers");
  std::vector<std::int64_t> shape;
  std::uint64_t numel = 1;
  for (const auto& d : j) {
    if (!d.is_number_integer() || d.get<long long>() < 0)
      throw Error(where + ": shape must be an array of non-negative integers, got " + j.dump());
    const auto v = static_cast<std::uint64_t>(d.get<long long>());
    if (v != 0 && numel > (std::uint64_t{1} << 62) / v) throw Error(where + ": shape " + j.dump() + " is too large");
    numel *= v;
    shape.push_back(d.get<std::int64_t>());
  }
  return shape;
}

DType read_dtype(const nlohmann::json& j, const std::string& where) {
  if (j.is_string()) {
    const auto s = j.get<std::string>();
    if (auto d = dtype_from_safetensors(s)) return *d;
    if (auto d = dtype_from_torch_name(s)) return *d;
  }
  throw Error(where + ": unknown dtype " + j.dump());
}

}  // namespace

Skeleton Skeleton::from_json(const nlohmann::json& j, std::string_view source) {
  const std::string src(source);
  if (!j.is_object()) throw Error(src + ": a skeleton must be a JSON object");
  if (!j.contains("params") || !j["params"].is_array())
    throw Error(src + ": key \"params\" (an array of [name, shape, dtype]) is missing");
  Skeleton s;
  if (j.contains("modules")) {
    if (!j["modules"].is_array()) throw Error(src + ": \"modules\" must be an array of names");
    for (const auto& m : j["modules"]) {
      if (!m.is_string()) throw Error(src + ": \"modules\" must hold names, got " + m.dump());
      s.ensure_module(m.get<std::string>());
    }
  }
  std::size_t i = 0;
  for (const auto& p : j["params"]) {
    const std::string where = src + ": params[" + std::to_string(i++) + "]";
    if (!p.is_array() || p.size() < 3 || !p[0].is_string()) throw Error(where + " must be [name, shape, dtype]");
    SkeletonTensor t;
    t.name = p[0].get<std::string>();
    t.shape = read_shape(p[1], where + " (" + t.name + ")");
    t.dtype = read_dtype(p[2], where + " (" + t.name + ")");
    try {
      s.add_tensor(std::move(t));
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
  }
  if (j.contains("buffers")) {
    i = 0;
    for (const auto& b : j["buffers"]) {
      const std::string where = src + ": buffers[" + std::to_string(i++) + "]";
      if (!b.is_array() || b.size() < 3 || !b[0].is_string())
        throw Error(where + " must be [name, shape, dtype, persistent]");
      SkeletonTensor t;
      t.name = b[0].get<std::string>();
      t.shape = read_shape(b[1], where + " (" + t.name + ")");
      t.dtype = read_dtype(b[2], where + " (" + t.name + ")");
      t.buffer = true;
      t.persistent = b.size() < 4 || !b[3].is_boolean() || b[3].get<bool>();
      s.add_tensor(std::move(t));
    }
  }
  if (j.contains("module_classes")) {
    if (!j["module_classes"].is_object()) throw Error(src + ": \"module_classes\" must be an object {name: class}");
    for (const auto& [name, cls] : j["module_classes"].items()) {
      if (!cls.is_string()) throw Error(src + ": module_classes[\"" + name + "\"] must be a class name");
      if (int m = s.find_module(name); m >= 0) s.modules[static_cast<std::size_t>(m)].cls = cls.get<std::string>();
    }
  }
  if (j.contains("tied")) {
    for (const auto& pair : j["tied"]) {
      if (!pair.is_array() || pair.size() < 2 || !std::all_of(pair.begin(), pair.end(), [](const auto& n) { return n.is_string(); }))
        throw Error(src + ": \"tied\" must hold [canonical, alias…] name lists");
      for (std::size_t k = 1; k < pair.size(); ++k) {
        const auto alias = pair[k].get<std::string>();
        const bool created = s.find_tensor(alias) < 0;
        try {
          s.tie(pair[0].get<std::string>(), alias);
        } catch (const Error& e) {
          throw Error(src + ": tied: " + e.what());
        }
        // A module created for the alias takes the class the skeleton names for it.
        if (created && j.contains("module_classes")) {
          const int m = s.tensors[static_cast<std::size_t>(s.find_tensor(alias))].module;
          auto& mod = s.modules[static_cast<std::size_t>(m)];
          if (mod.cls.empty() && j["module_classes"].contains(mod.name)) mod.cls = j["module_classes"][mod.name];
        }
      }
    }
  }
  if (j.contains("no_split_module_classes")) {
    for (const auto& c : j["no_split_module_classes"]) {
      if (!c.is_string()) throw Error(src + ": no_split_module_classes must hold class names");
      s.no_split_module_classes.push_back(c.get<std::string>());
    }
  }
  if (j.contains("config") && j["config"].is_object()) s.config = j["config"];
  if (j.contains("model_type") && j["model_type"].is_string()) s.model_type = j["model_type"];
  else if (s.config.contains("model_type") && s.config["model_type"].is_string()) s.model_type = s.config["model_type"];
  for (auto& m : s.modules)
    m.is_layer = !m.cls.empty() && std::find(s.no_split_module_classes.begin(), s.no_split_module_classes.end(),
                                             m.cls) != s.no_split_module_classes.end();
  return s;
}

nlohmann::json Skeleton::to_json() const {
  nlohmann::json j;
  auto params = nlohmann::json::array();
  auto buffers = nlohmann::json::array();
  // Tensors in module order, as named_parameters() yields them; an alias last in its module.
  std::vector<int> order;
  std::vector<int> stack{0};
  while (!stack.empty()) {
    const int m = stack.back();
    stack.pop_back();
    const auto& mod = modules[static_cast<std::size_t>(m)];
    for (int p : mod.params) order.push_back(p);
    for (int b : mod.buffers) order.push_back(b);
    for (auto it = mod.children.rbegin(); it != mod.children.rend(); ++it) stack.push_back(*it);
  }
  auto tied = nlohmann::json::array();
  for (int t : order) {
    const auto& ten = tensors[static_cast<std::size_t>(t)];
    if (ten.tied_to >= 0) {
      tied.push_back({tensors[static_cast<std::size_t>(ten.tied_to)].name, ten.name});
      continue;
    }
    if (ten.buffer)
      buffers.push_back({ten.name, ten.shape, std::string(safetensors_name(ten.dtype)), ten.persistent});
    else
      params.push_back({ten.name, ten.shape, std::string(safetensors_name(ten.dtype))});
  }
  auto names = nlohmann::json::array();
  auto classes = nlohmann::json::object();
  stack = {0};
  while (!stack.empty()) {
    const int m = stack.back();
    stack.pop_back();
    const auto& mod = modules[static_cast<std::size_t>(m)];
    if (m != 0) names.push_back(mod.name);
    if (!mod.cls.empty()) classes[mod.name] = mod.cls;
    for (auto it = mod.children.rbegin(); it != mod.children.rend(); ++it) stack.push_back(*it);
  }
  j["model_type"] = model_type;
  j["params"] = std::move(params);
  j["buffers"] = std::move(buffers);
  j["modules"] = std::move(names);
  j["module_classes"] = std::move(classes);
  j["tied"] = std::move(tied);
  j["no_split_module_classes"] = no_split_module_classes;
  if (!config.empty()) j["config"] = config;
  return j;
}

}  // namespace devicemap
