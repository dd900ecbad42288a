#include "session/session.hpp"

#include <algorithm>
#include <unordered_set>

#include "error.hpp"
#include "format/atomic_file.hpp"
#include "model/skeleton.hpp"
#include "plan/bandwidth.hpp"
#include "plan/map_pins.hpp"
#include "plan/units.hpp"

namespace devicemap {
namespace {

bool covers(std::string_view key, std::string_view name) {
  return key.empty() || name == key || (name.size() > key.size() && name.starts_with(key) && name[key.size()] == '.');
}

// Registration order of every module and tensor: a module, its parameters, its children, its buffers
// (the order the placement walk takes them in).
void number(const Skeleton& s, int m, int& next, std::unordered_map<std::string, int>& order) {
  const auto& mod = s.modules[static_cast<std::size_t>(m)];
  order.emplace(mod.name, next++);
  for (int t : mod.params) order.emplace(s.tensors[static_cast<std::size_t>(t)].name, next++);
  for (int c : mod.children) number(s, c, next, order);
  for (int t : mod.buffers) order.emplace(s.tensors[static_cast<std::size_t>(t)].name, next++);
}

// The stored dtype holding most of a module's bytes.
DType main_dtype(const Skeleton& s, int m) {
  std::vector<std::pair<DType, std::uint64_t>> bytes;
  std::vector<int> stack{m};
  while (!stack.empty()) {
    const auto& mod = s.modules[static_cast<std::size_t>(stack.back())];
    stack.pop_back();
    auto count = [&](int t) {
      const auto& st = s.tensors[static_cast<std::size_t>(t)];
      const auto b = dtype_bytes(st.dtype, st.numel());
      auto it = std::find_if(bytes.begin(), bytes.end(), [&](const auto& e) { return e.first == st.dtype; });
      if (it == bytes.end())
        bytes.emplace_back(st.dtype, b);
      else
        it->second += b;
    };
    std::for_each(mod.params.begin(), mod.params.end(), count);
    std::for_each(mod.buffers.begin(), mod.buffers.end(), count);
    stack.insert(stack.end(), mod.children.begin(), mod.children.end());
  }
  if (bytes.empty()) return DType::F32;
  return std::max_element(bytes.begin(), bytes.end(), [](const auto& a, const auto& b) { return a.second < b.second; })
      ->first;
}

std::string device_list(const std::vector<Device>& ds) {
  std::string out;
  for (const auto& d : ds) out += (out.empty() ? "" : ", ") + d.name();
  return out;
}

}  // namespace

std::string ImportCheck::message() const {
  std::string out = problems.ok() ? std::string() : problems.message();
  if (!unknown_devices.empty()) {
    if (!out.empty()) out += " ";
    out += "The map uses device" + std::string(unknown_devices.size() > 1 ? "s " : " ") + device_list(unknown_devices) +
           ", which this machine has no budget for; add a GPU under Simulate hardware or edit the map.";
  }
  return out;
}

// --- model ---------------------------------------------------------------------------------------

void Session::open_model(std::string_view what) { set_model(devicemap::open_model(what), std::string(what)); }

void Session::set_model(ModelSource source, std::string ref) {
  model_ = std::move(source);
  model_ref_ = std::move(ref);
  has_model_ = true;
  reset_for_model();
  replan();
}

void Session::reset_for_model() {
  order_.clear();
  int next = 0;
  const Skeleton& s = model_.skeleton;
  number(s, 0, next, order_);
  const std::size_t n = s.modules.size();
  module_has_tensors_.assign(n, 0);
  layers_below_.assign(n, 0);
  module_dtype_.assign(n, DType::F32);
  // Children are created after their parents, so a backward sweep sees every child first.
  for (std::size_t m = n; m-- > 0;) {
    const auto& mod = s.modules[m];
    module_has_tensors_[m] = module_has_tensors_[m] || !mod.params.empty() || !mod.buffers.empty();
    module_dtype_[m] = main_dtype(s, static_cast<int>(m));
    if (mod.parent >= 0) {
      const auto p = static_cast<std::size_t>(mod.parent);
      module_has_tensors_[p] = module_has_tensors_[p] || module_has_tensors_[m];
      layers_below_[p] = layers_below_[p] || layers_below_[m] || mod.is_layer;
    }
  }
  state_.options.pins.clear();
  state_.options.no_split_classes.reset();
}

// --- machine and budgets -------------------------------------------------------------------------

void Session::set_machine(Machine m) {
  state_.machine = std::move(m);
  state_.budgets = default_max_memory(state_.machine);
  std::erase_if(state_.options.pins, [&](const Pin& p) { return !p.device.is_disk() && !state_.budgets.has(p.device); });
  replan();
}

void Session::add_virtual_gpu(std::string name, std::uint64_t bytes) {
  auto& devs = state_.machine.devices;
  int index = 0;
  auto at = devs.begin();
  for (auto it = devs.begin(); it != devs.end(); ++it)
    if (it->device.is_gpu()) {
      index = std::max(index, it->device.index + 1);
      at = it + 1;
    }
  DeviceInfo info;
  info.device = Device::gpu(index);
  info.name = std::move(name);
  info.total = info.free = bytes;
  info.simulated = true;
  devs.insert(at, info);
  state_.machine.simulated = true;
  state_.budgets.set(info.device, bytes);
  replan();
}

void Session::remove_gpu(int index) {
  auto& devs = state_.machine.devices;
  const auto gone = std::find_if(devs.begin(), devs.end(), [&](const DeviceInfo& d) { return d.device == Device::gpu(index); });
  if (gone == devs.end()) throw Error("there is no GPU " + std::to_string(index) + " to remove");
  devs.erase(gone);
  auto moved = [&](Device d) { return d.is_gpu() && d.index > index ? Device::gpu(d.index - 1) : d; };
  for (auto& d : devs) d.device = moved(d.device);
  MaxMemory budgets;
  for (const auto& [d, bytes] : state_.budgets.entries())
    if (d != Device::gpu(index)) budgets.set(moved(d), bytes);
  state_.budgets = std::move(budgets);
  std::erase_if(state_.options.pins, [&](const Pin& p) { return p.device == Device::gpu(index); });
  for (auto& p : state_.options.pins) p.device = moved(p.device);
  state_.machine.simulated = true;
  replan();
}

void Session::set_budget(Device d, std::uint64_t bytes) {
  state_.budgets.set(d, bytes);
  replan();
}

void Session::set_budgets(MaxMemory budgets) {
  state_.budgets = std::move(budgets);
  replan();
}

// --- pins ----------------------------------------------------------------------------------------

void Session::pin(const std::vector<std::string>& names, Device d) {
  auto& pins = state_.options.pins;
  std::erase_if(pins, [&](const Pin& p) {
    return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return !n.empty() && covers(n, p.name); });
  });
  for (const auto& n : names) pins.push_back({n, d});
  replan();
}

void Session::unpin(const std::vector<std::string>& names) {
  std::erase_if(state_.options.pins, [&](const Pin& p) {
    return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return !n.empty() && covers(n, p.name); });
  });
  replan();
}

void Session::unpin_all() {
  state_.options.pins.clear();
  replan();
}

bool Session::is_pinned(std::string_view name) const {
  return std::any_of(pins().begin(), pins().end(), [&](const Pin& p) { return covers(p.name, name); });
}

// --- options -------------------------------------------------------------------------------------

void Session::set_options(PlanOptions options) {
  options.pins = std::move(state_.options.pins);
  state_.options = std::move(options);
  replan();
}

const std::vector<std::string>& Session::no_split_classes() const {
  return state_.options.no_split_classes ? *state_.options.no_split_classes : model_.skeleton.no_split_module_classes;
}

void Session::restore(State s) {
  state_ = std::move(s);
  replan();
}

// --- the plan ------------------------------------------------------------------------------------

void Session::replan() {
  plan_ = Plan{};
  plan_error_.clear();
  units_.clear();
  if (!has_model_) return;
  try {
    plan_ = plan_device_map(model_.skeleton, state_.budgets, state_.options);
  } catch (const Error& e) {
    plan_ = Plan{};
    plan_error_ = e.what();
    return;
  }
  // Quantized: what the modules really take (the walk counted them as transformers does).
  sizes_ = state_.options.quantization ? real_quantized_sizes(model_.skeleton, *state_.options.quantization, state_.options.dtype)
                                       : compute_module_sizes(model_.skeleton, state_.options.dtype, state_.options.flavor);
  compute_units();
}

void Session::compute_units() {
  const Skeleton& s = model_.skeleton;
  units_.reserve(plan_.raw_map.entries().size());
  auto add_tensor = [&](int t, Device device) {
    const auto& st = s.tensors[static_cast<std::size_t>(t)];
    PlacedUnit u;
    u.name = st.name;
    u.device = device;
    u.tensor = true;
    u.cls = st.buffer ? "buffer" : "parameter";
    u.bytes = sizes_.tensor[static_cast<std::size_t>(t)];
    u.dtype = st.dtype;
    units_.push_back(std::move(u));
  };
  // A key above the decoder layers ("model", "model.layers") is shown as its parts, so that the picture
  // always has one block per layer, embedding, norm and head, however the map was cleaned.
  auto add_module = [&](auto&& self, int m, Device device) -> void {
    const auto& mod = s.modules[static_cast<std::size_t>(m)];
    if (!module_has_tensors_[static_cast<std::size_t>(m)]) return;
    if (!mod.is_layer && layers_below_[static_cast<std::size_t>(m)]) {
      for (int t : mod.params) add_tensor(t, device);
      for (int c : mod.children) self(self, c, device);
      for (int t : mod.buffers) add_tensor(t, device);
      return;
    }
    PlacedUnit u;
    u.name = mod.name;
    u.device = device;
    u.cls = mod.cls;
    u.bytes = sizes_.module[static_cast<std::size_t>(m)];
    u.dtype = module_dtype_[static_cast<std::size_t>(m)];
    units_.push_back(std::move(u));
  };
  for (const auto& [name, device] : plan_.raw_map.entries()) {
    if (const int m = s.find_module(name); m >= 0)
      add_module(add_module, m, device);
    else if (const int t = s.find_tensor(name); t >= 0)
      add_tensor(t, device);
  }
  for (auto& u : units_) {
    const auto& name = u.name;
    const auto o = order_.find(name);
    u.order = o == order_.end() ? static_cast<int>(order_.size()) : o->second;
    u.pinned = is_pinned(name);
    // The planner's note for a tied partner: "NAME follows PIN to DEVICE (tied weight …)".
    const std::string head = name + " follows ";
    for (const auto& note : plan_.notes)
      if (note.starts_with(head)) {
        const auto to = note.find(" to ", head.size());
        u.follows = note.substr(head.size(), to == std::string::npos ? std::string::npos : to - head.size());
      }
  }
  std::stable_sort(units_.begin(), units_.end(), [](const PlacedUnit& a, const PlacedUnit& b) { return a.order < b.order; });
}

const DeviceUsage* Session::usage(Device d) const {
  for (const auto& u : plan_.devices)
    if (u.device == d) return &u;
  return nullptr;
}

// --- files ---------------------------------------------------------------------------------------

PlanFile Session::plan_file() const {
  PlanFile f;
  f.model = model_ref_;
  if (state_.machine.simulated) f.profile = profile_to_json(state_.machine);
  f.budgets = state_.budgets;
  f.options = state_.options;
  return f;
}

void Session::apply(const PlanFile& file, Machine m) {
  if (!has_model_) throw Error("open the plan's model (" + file.model + ") before applying its settings");
  for (const auto& p : file.options.pins)
    if (model_.skeleton.find_module(p.name) < 0 && model_.skeleton.find_tensor(p.name) < 0)
      throw Error("plan file pin '" + p.name + "' names nothing in " + model_.description);
  state_.machine = std::move(m);
  state_.budgets = file.budgets;
  state_.options = file.options;
  replan();
}

ImportCheck Session::check_import(const DeviceMap& map) const {
  ImportCheck c;
  c.problems = validate(map, model_.skeleton);
  // As Accelerate's check_device_map (over state_dict()): non-persistent buffers need no key.
  std::erase_if(c.problems.uncovered, [&](const std::string& name) {
    const int t = model_.skeleton.find_tensor(name);
    return t >= 0 && model_.skeleton.tensors[static_cast<std::size_t>(t)].buffer &&
           !model_.skeleton.tensors[static_cast<std::size_t>(t)].persistent;
  });
  for (const auto& d : map.devices())
    if (!d.is_disk() && !state_.budgets.has(d)) c.unknown_devices.push_back(d);
  return c;
}

void Session::import_map(const DeviceMap& map) {
  if (!has_model_) throw Error("open a model before importing a device map");
  const ImportCheck check = check_import(map);
  if (!check.ok()) throw Error(check.message());
  state_.options.pins = pins_for_map(map, model_.skeleton);
  replan();
}

// --- plan file -----------------------------------------------------------------------------------

nlohmann::ordered_json PlanFile::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = "devicemap-plan";
  j["version"] = kVersion;
  j["model"] = model;
  if (profile)
    j["machine"] = {{"profile", nlohmann::ordered_json::parse(profile->dump())}};
  else
    j["machine"] = {{"detected", true}};
  j["max_memory"] = budgets.to_json();
  j["strategy"] = std::string(strategy_name(options.strategy));
  j["dtype"] = options.dtype ? nlohmann::ordered_json(std::string(torch_name(*options.dtype))) : nlohmann::ordered_json();
  j["dtype_flavor"] = std::string(flavor_name(options.flavor));
  j["quantization"] = options.quantization ? nlohmann::ordered_json::parse(options.quantization->to_config().dump()) : nlohmann::ordered_json();
  j["no_split_module_classes"] =
      options.no_split_classes ? nlohmann::ordered_json(*options.no_split_classes) : nlohmann::ordered_json();
  j["kv_cache"] = {{"context", options.kv.context}, {"batch", options.kv.batch}};
  j["offload_buffers"] = options.offload_buffers;
  j["fallback_allocation"] = options.fallback_allocation;
  nlohmann::ordered_json pins = nlohmann::ordered_json::object();
  for (const auto& p : options.pins) pins[p.name] = nlohmann::ordered_json::parse(to_json_value(p.device).dump());
  j["pins"] = std::move(pins);
  return j;
}

PlanFile PlanFile::from_json(const nlohmann::json& j, std::string_view source) {
  const std::string where(source);
  auto fail = [&](const std::string& key, const std::string& what) -> Error {
    return Error(where + ": key '" + key + "': " + what);
  };
  if (!j.is_object()) throw Error(where + ": a plan file is a JSON object");
  if (j.value("format", std::string()) != "devicemap-plan")
    throw fail("format", "this is not a DeviceMap Studio plan file (expected \"devicemap-plan\")");
  if (!j.contains("version") || !j["version"].is_number_integer()) throw fail("version", "missing or not an integer");
  if (j["version"].get<int>() > kVersion)
    throw fail("version", "version " + std::to_string(j["version"].get<int>()) + " is newer than this program reads (" +
                              std::to_string(kVersion) + ")");
  PlanFile f;
  if (!j.contains("model") || !j["model"].is_string()) throw fail("model", "missing or not a string");
  f.model = j["model"].get<std::string>();
  if (j.contains("machine")) {
    const auto& m = j["machine"];
    if (!m.is_object()) throw fail("machine", "expected {\"detected\": true} or {\"profile\": {…}}");
    if (m.contains("profile")) {
      machine_from_profile(m["profile"], where + ": machine.profile");  // validates it now
      f.profile = m["profile"];
    }
  }
  if (j.contains("max_memory")) f.budgets = MaxMemory::from_json(j["max_memory"], where + ": max_memory");
  auto& o = f.options;
  if (j.contains("strategy")) {
    const auto s = j["strategy"].is_string() ? strategy_from_name(j["strategy"].get<std::string>()) : std::nullopt;
    if (!s) throw fail("strategy", "expected auto, balanced, balanced_low_0 or sequential");
    o.strategy = *s;
  }
  if (j.contains("dtype") && !j["dtype"].is_null()) {
    const auto d = j["dtype"].is_string() ? dtype_from_torch_name(j["dtype"].get<std::string>()) : std::nullopt;
    if (!d) throw fail("dtype", "expected a torch dtype name such as \"float16\", or null");
    o.dtype = *d;
  }
  if (j.contains("quantization") && !j["quantization"].is_null()) {
    o.quantization = Quantization::from_config(nlohmann::json{{"quantization_config", j["quantization"]}}, where);
    if (!o.quantization) throw fail("quantization", "expected a bitsandbytes config (quant_method \"bitsandbytes\") or null");
  }
  if (j.contains("dtype_flavor")) {
    const auto fl = j["dtype_flavor"].is_string() ? flavor_from_name(j["dtype_flavor"].get<std::string>()) : std::nullopt;
    if (!fl) throw fail("dtype_flavor", "expected \"transformers\" or \"accelerate\"");
    o.flavor = *fl;
  }
  if (j.contains("no_split_module_classes") && !j["no_split_module_classes"].is_null()) {
    const auto& n = j["no_split_module_classes"];
    if (!n.is_array() || !std::all_of(n.begin(), n.end(), [](const auto& v) { return v.is_string(); }))
      throw fail("no_split_module_classes", "expected a list of class names, or null");
    o.no_split_classes = n.get<std::vector<std::string>>();
  }
  if (j.contains("kv_cache")) {
    const auto& kv = j["kv_cache"];
    auto count = [&](const char* key, std::uint64_t fallback) {
      if (!kv.is_object() || !kv.contains(key)) return fallback;
      if (!kv[key].is_number_unsigned()) throw fail(std::string("kv_cache.") + key, "expected a non-negative integer");
      return kv[key].get<std::uint64_t>();
    };
    o.kv.context = count("context", 0);
    o.kv.batch = count("batch", 1);
  }
  auto flag = [&](const char* key) {
    if (!j.contains(key)) return false;
    if (!j[key].is_boolean()) throw fail(key, "expected true or false");
    return j[key].get<bool>();
  };
  o.offload_buffers = flag("offload_buffers");
  o.fallback_allocation = flag("fallback_allocation");
  if (j.contains("pins")) {
    if (!j["pins"].is_object()) throw fail("pins", "expected an object {module name: device}");
    for (const auto& [name, dev] : j["pins"].items())
      o.pins.push_back({name, device_from_json(dev, where + ": pins." + name)});
  }
  return f;
}

PlanFile PlanFile::load(const std::filesystem::path& path) {
  const std::string text = read_text_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(path.string() + ": not valid JSON (" + e.what() + ")");
  }
  PlanFile f = from_json(j, path.string());
  // Pins keep the order the file gives them (nlohmann::json sorts object keys).
  const auto ordered = nlohmann::ordered_json::parse(text);
  if (ordered.contains("pins")) {
    f.options.pins.clear();
    for (const auto& [name, dev] : ordered["pins"].items())
      f.options.pins.push_back({name, device_from_json(nlohmann::json::parse(dev.dump()), path.string() + ": pins." + name)});
  }
  return f;
}

void PlanFile::save(const std::filesystem::path& path) const { write_file_atomically(path, to_json().dump(2) + "\n"); }

// --- startup -------------------------------------------------------------------------------------

SpeedPrediction Session::predicted_speed() const {
  if (!has_model_ || !plan_error_.empty()) return {};
  return predict_decode_speed(model_.skeleton, plan_.device_map, state_.machine,
                              {state_.options.dtype, state_.options.flavor, plan_.kv_per_layer, false, state_.options.quantization});
}

Machine startup_machine(std::string& why) {
  Machine m = detect_machine();
  measure_bandwidths(m);  // RAM; a disk figure needs a model file, and comes from a profile otherwise
  why.clear();
  if (!m.gpus().empty()) return m;
  DeviceInfo gpu;
  gpu.device = Device::gpu(0);
  gpu.name = "GPU 24 GB";
  gpu.total = gpu.free = 24ull << 30;
  gpu.simulated = true;
  for (const auto& p : bundled_profiles())
    if (p.stem() == "1x24gb") {
      try {
        const Machine profile = load_profile(p);
        if (const auto* g = profile.find(Device::gpu(0))) gpu = *g;
        m.pcie_gbs = profile.pcie_gbs;
        gpu.simulated = true;
      } catch (const Error&) {
        // a broken bundled profile: keep the built-in description
      }
    }
  m.devices.insert(m.devices.begin(), gpu);
  m.simulated = true;
  why = "No GPU found on this machine: planning for a simulated " + gpu.name + " (" + format_size(gpu.total) +
        ") with this machine's CPU RAM and disk.";
  return m;
}

}  // namespace devicemap
