#include "model/quantization.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "model/skeleton.hpp"

namespace devicemap {
namespace {

// The last parameter in registration order (module tree, depth first), as named_parameters() ends.
int last_parameter(const Skeleton& s, int module = 0) {
  const auto& m = s.modules[static_cast<std::size_t>(module)];
  for (auto c = m.children.rbegin(); c != m.children.rend(); ++c)
    if (const int p = last_parameter(s, *c); p >= 0) return p;
  for (auto p = m.params.rbegin(); p != m.params.rend(); ++p)
    if (s.tensors[static_cast<std::size_t>(*p)].tied_to < 0) return *p;
  return -1;
}

std::string module_of(const std::string& tensor) {
  const auto dot = tensor.rfind('.');
  return dot == std::string::npos ? std::string() : tensor.substr(0, dot);
}

// special_dtypes: `any(m in name for m in modules_to_not_convert)` over parameter names.
bool left_in_torch_dtype(const std::string& name, const std::vector<std::string>& not_converted) {
  return std::any_of(not_converted.begin(), not_converted.end(),
                     [&](const std::string& m) { return !m.empty() && name.find(m) != std::string::npos; });
}

std::int64_t floating_bytes(const SkeletonTensor& t, DType torch_dtype) {
  return static_cast<std::int64_t>(is_floating(t.dtype) ? dtype_bytes(torch_dtype, t.numel()) : dtype_bytes(t.dtype, t.numel()));
}

bool is_linear(const Skeleton& s, int module) {
  const auto& cls = s.modules[static_cast<std::size_t>(module)].cls;
  return cls == "Linear" || cls == "Conv1D";
}

}  // namespace

std::optional<Quantization> Quantization::from_config(const nlohmann::json& config, std::string_view source) {
  if (!config.is_object() || !config.contains("quantization_config")) return std::nullopt;
  const auto& q = config.at("quantization_config");
  const std::string where = std::string(source) + ": quantization_config";
  if (!q.is_object()) throw Error(where + " must be an object");
  const std::string method = q.value("quant_method", "");
  if (method != "bitsandbytes") return std::nullopt;
  const bool eight = q.value("load_in_8bit", false), four = q.value("load_in_4bit", false);
  if (eight == four) throw Error(where + ": exactly one of load_in_8bit and load_in_4bit must be true");
  Quantization out;
  out.method = eight ? Method::Bnb8 : Method::Bnb4;
  if (four) {
    out.quant_type = q.value("bnb_4bit_quant_type", std::string("fp4"));
    if (out.quant_type != "nf4" && out.quant_type != "fp4")
      throw Error(where + ": key 'bnb_4bit_quant_type' is '" + out.quant_type + "' (known: nf4, fp4)");
    out.double_quant = q.value("bnb_4bit_use_double_quant", false);
  }
  if (q.contains("llm_int8_skip_modules") && q.at("llm_int8_skip_modules").is_array())
    for (const auto& m : q.at("llm_int8_skip_modules"))
      if (m.is_string()) out.skip_modules.push_back(m.get<std::string>());
  return out;
}

nlohmann::json Quantization::to_config() const {
  nlohmann::json j{{"quant_method", "bitsandbytes"}, {"load_in_8bit", method == Method::Bnb8}, {"load_in_4bit", method == Method::Bnb4}};
  if (method == Method::Bnb4) {
    j["bnb_4bit_quant_type"] = quant_type;
    j["bnb_4bit_use_double_quant"] = double_quant;
  }
  if (!skip_modules.empty()) j["llm_int8_skip_modules"] = skip_modules;
  return j;
}

std::string Quantization::name() const {
  if (method == Method::Bnb8) return "bitsandbytes 8-bit";
  return "bitsandbytes 4-bit " + quant_type + (double_quant ? " (double quant)" : "");
}

std::vector<std::string> modules_not_converted(const Skeleton& s, const Quantization& q) {
  if (!q.skip_modules.empty()) return q.skip_modules;
  // get_keys_to_not_convert: the tied parameters' modules and the output head (the module of the last
  // parameter when the model has no output embeddings to name).
  std::vector<std::string> out;
  auto add = [&](const std::string& m) {
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  };
  for (const auto& group : s.tie_groups())
    for (const auto& name : group) add(module_of(name));
  if (s.find_module("lm_head") >= 0)
    add("lm_head");
  else if (const int p = last_parameter(s); p >= 0)
    add(module_of(s.tensors[static_cast<std::size_t>(p)].name));
  return out;
}

bool bnb_converts(std::string_view module, const std::vector<std::string>& not_converted) {
  return std::none_of(not_converted.begin(), not_converted.end(),
                      [&](const std::string& k) { return k == module || module.find(k + ".") != std::string_view::npos; });
}

bool quantized_module(const Skeleton& s, int module, const std::vector<std::string>& not_converted) {
  return module >= 0 && is_linear(s, module) && bnb_converts(s.modules[static_cast<std::size_t>(module)].name, not_converted);
}

ModuleSizes transformers_quantized_sizes(const Skeleton& s, const Quantization& q, std::optional<DType> torch_dtype) {
  const DType dtype = torch_dtype.value_or(DType::F16);  // bitsandbytes' default when none is given
  const auto not_converted = modules_not_converted(s, q);
  return sizes_from_tensor_bytes(s, [&](const SkeletonTensor& t) -> std::int64_t {
    if (left_in_torch_dtype(t.name, not_converted)) return floating_bytes(t, dtype);
    if (!is_floating(t.dtype)) return static_cast<std::int64_t>(dtype_bytes(t.dtype, t.numel()));
    // The target dtype (int8, or Accelerate's INT4 of half a byte), at most the tensor's own size.
    const double own = double(dtype_bits(dtype)) / 8, target = q.method == Quantization::Method::Bnb8 ? 1.0 : 0.5;
    return static_cast<std::int64_t>(double(t.numel()) * std::min(own, target));
  });
}

ModuleSizes real_quantized_sizes(const Skeleton& s, const Quantization& q, std::optional<DType> torch_dtype) {
  const DType dtype = torch_dtype.value_or(DType::F16);
  const auto not_converted = modules_not_converted(s, q);
  return sizes_from_tensor_bytes(s, [&](const SkeletonTensor& t) -> std::int64_t {
    const bool weight = !t.buffer && t.name.ends_with(".weight") && t.shape.size() == 2;
    if (!weight || !quantized_module(s, t.module, not_converted)) return floating_bytes(t, dtype);
    const std::int64_t n = static_cast<std::int64_t>(t.numel());
    if (q.method == Quantization::Method::Bnb8) return n + 4 * t.shape[0];  // int8 weights, a float32 scale per row (SCB)
    // Two 4-bit codes per byte; an absmax per block (float32, or 8 bits with a float32 absmax per 256
    // blocks and their 256-entry code table); the 16-entry code table.
    const std::int64_t blocks = (n + q.blocksize - 1) / q.blocksize;
    const std::int64_t absmax = q.double_quant ? blocks + 4 * ((blocks + 255) / 256) + 4 * 256 + 4 : 4 * blocks;
    return (n + 1) / 2 + absmax + 4 * 16;
  });
}

}  // namespace devicemap
