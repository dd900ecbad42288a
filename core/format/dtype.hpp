#pragma once
// Element types as safetensors, torch and config.json spell them.
#include <cstdint>
#include <optional>
#include <string_view>

namespace devicemap {

enum class DType : std::uint8_t { F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U64, U32, U16, U8, Bool };

// "F32", "BF16", "BOOL", … as in a safetensors header.
std::optional<DType> dtype_from_safetensors(std::string_view name);
std::string_view safetensors_name(DType);

// "float32", "bfloat16", … as torch and config.json's torch_dtype spell them ("torch." prefix allowed,
// also "fp16", "half", "bf16", "float", "fp32").
std::optional<DType> dtype_from_torch_name(std::string_view name);
std::string_view torch_name(DType);

int dtype_bits(DType);
bool is_floating(DType);

// Bytes of `numel` elements; bool counts 1/8 byte as Accelerate does (rounded up to whole bytes).
std::uint64_t dtype_bytes(DType, std::uint64_t numel);

}  // namespace devicemap
