#include "format/dtype.hpp"

#include <array>
#include <string>

namespace devicemap {
namespace {

struct Row {
  DType dtype;
  std::string_view safetensors;
  std::string_view torch;
  int bits;
  bool floating;
};

constexpr std::array<Row, 15> kRows{{
    {DType::F64, "F64", "float64", 64, true},
    {DType::F32, "F32", "float32", 32, true},
    {DType::F16, "F16", "float16", 16, true},
    {DType::BF16, "BF16", "bfloat16", 16, true},
    {DType::F8_E4M3, "F8_E4M3", "float8_e4m3fn", 8, true},
    {DType::F8_E5M2, "F8_E5M2", "float8_e5m2", 8, true},
    {DType::I64, "I64", "int64", 64, false},
    {DType::I32, "I32", "int32", 32, false},
    {DType::I16, "I16", "int16", 16, false},
    {DType::I8, "I8", "int8", 8, false},
    {DType::U64, "U64", "uint64", 64, false},
    {DType::U32, "U32", "uint32", 32, false},
    {DType::U16, "U16", "uint16", 16, false},
    {DType::U8, "U8", "uint8", 8, false},
    {DType::Bool, "BOOL", "bool", 1, false},
}};

const Row& row(DType d) { return kRows[static_cast<std::size_t>(d)]; }

}  // namespace

std::optional<DType> dtype_from_safetensors(std::string_view name) {
  for (const auto& r : kRows)
    if (r.safetensors == name) return r.dtype;
  return std::nullopt;
}

std::string_view safetensors_name(DType d) { return row(d).safetensors; }

std::optional<DType> dtype_from_torch_name(std::string_view name) {
  if (name.starts_with("torch.")) name.remove_prefix(6);
  for (const auto& r : kRows)
    if (r.torch == name) return r.dtype;
  if (name == "fp16" || name == "half") return DType::F16;
  if (name == "bf16") return DType::BF16;
  if (name == "fp32" || name == "float") return DType::F32;
  if (name == "double") return DType::F64;
  return std::nullopt;
}

std::string_view torch_name(DType d) { return row(d).torch; }
int dtype_bits(DType d) { return row(d).bits; }
bool is_floating(DType d) { return row(d).floating; }

std::uint64_t dtype_bytes(DType d, std::uint64_t numel) {
  if (d == DType::Bool) return (numel + 7) / 8;
  return numel * static_cast<std::uint64_t>(row(d).bits / 8);
}

}  // namespace devicemap
