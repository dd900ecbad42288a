#pragma once
// The stored dtypes the kernels read, as the small integer their per-target code switches on.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "format/dtype.hpp"

namespace devicemap::kernels {

// 0 float32, 1 bfloat16, 2 float16. Throws std::invalid_argument naming `what` for any other dtype.
inline int element_type(DType d, const char* what) {
  switch (d) {
    case DType::F32: return 0;
    case DType::BF16: return 1;
    case DType::F16: return 2;
    default: throw std::invalid_argument(std::string(what) + ": dtype " + std::string(torch_name(d)) + " has no kernel");
  }
}

// Bytes of one element of a dtype the kernels read; 0 for any other dtype.
inline std::size_t element_bytes(DType d) {
  return d == DType::F32 ? 4 : (d == DType::BF16 || d == DType::F16) ? 2 : 0;
}

// The nearest bfloat16 (ties to even) as a float: what a bfloat16 tensor op stores. (Highway 1.0.3's
// BF16FromF32 and DemoteTo truncate instead.) NaN stays NaN.
inline float round_to_bf16(float f) {
  if (std::isnan(f)) return f;
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  bits = (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
  std::memcpy(&f, &bits, sizeof bits);
  return f;
}

}  // namespace devicemap::kernels
