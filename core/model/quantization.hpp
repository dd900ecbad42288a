#pragma once
// Weight quantization a plan sizes for: bitsandbytes 8-bit (LLM.int8) and 4-bit (NF4/FP4, optionally
// double-quantized), asked for on load (transformers' load_in_8bit / BitsAndBytesConfig) or read from a
// checkpoint's quantization_config. Two sizings of the same module tree:
//   - as transformers sizes it for Accelerate (_get_device_map): every floating tensor counts at the
//     quantized size (int8: 1 byte, int4: ½), at most its own (Accelerate's compute_module_sizes takes
//     the smaller), except the modules left unconverted, which count in torch_dtype (special_dtypes);
//     and the budgets shrink to 90% (the quantizer's adjust_max_memory). The map made this way is the
//     map transformers makes.
//   - the real bytes: packed weights with their scales (SCB; absmax, nested absmax, quant maps), biases,
//     norms and embeddings in torch_dtype. The fit and the picture use these.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "format/dtype.hpp"
#include "model/module_sizes.hpp"

namespace devicemap {

class Skeleton;

struct Quantization {
  enum class Method : unsigned char { Bnb8, Bnb4 };
  Method method = Method::Bnb8;
  std::string quant_type = "nf4";  // 4-bit: "nf4" or "fp4"
  bool double_quant = false;       // 4-bit: absmax quantized to 8 bits in blocks of 256
  std::int64_t blocksize = 64;     // 4-bit: elements per absmax
  std::vector<std::string> skip_modules;  // llm_int8_skip_modules; empty: transformers' own choice

  // A config.json's quantization_config when it is bitsandbytes' (nullopt otherwise, or when absent).
  // Throws devicemap::Error naming `source` and the key for a malformed one.
  static std::optional<Quantization> from_config(const nlohmann::json& config, std::string_view source);
  std::string name() const;  // "bitsandbytes 8-bit", "bitsandbytes 4-bit nf4 (double quant)"
  // As a BitsAndBytesConfig's JSON (what from_config reads back), for plan files.
  nlohmann::json to_config() const;
};

// The modules transformers leaves in torch_dtype: the skip list when given, else its
// get_keys_to_not_convert: the output head (and, for a tied model, the embedding it shares).
std::vector<std::string> modules_not_converted(const Skeleton& s, const Quantization& q);

// replace_with_bnb_linear's rule for a Linear named `module` (a full name): converted unless a key of
// `not_converted` equals the name or, followed by a dot, occurs in it.
bool bnb_converts(std::string_view module, const std::vector<std::string>& not_converted);
// Whether the skeleton's module `module` is a Linear that rule converts.
bool quantized_module(const Skeleton& s, int module, const std::vector<std::string>& not_converted);

ModuleSizes transformers_quantized_sizes(const Skeleton& s, const Quantization& q, std::optional<DType> torch_dtype);
ModuleSizes real_quantized_sizes(const Skeleton& s, const Quantization& q, std::optional<DType> torch_dtype);

// The quantizer's adjust_max_memory: bitsandbytes plans on 90% of each budget.
constexpr double kBnbMaxMemoryFactor = 0.90;

}  // namespace devicemap
