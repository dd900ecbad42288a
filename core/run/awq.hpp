#pragma once
// Internal to the running layer (includes ATen). AutoAWQ's GEMM layout (model_config.hpp's AwqConfig):
// each int32 word of qweight [in, out/8] holds eight outputs of one input, output 8c + order[i] in bits
// 4i … 4i+3 with order = 0, 2, 4, 6, 1, 3, 5, 7; qzeros [groups, out/8] likewise; scales [groups, out];
// w[o][i] = (q − zero) · scale of group i / group_size, as AutoAWQ's dequantize_gemm computes it.
#include <ATen/core/Tensor.h>

#include <memory>

#include "run/model_config.hpp"
#include "run/packed_linear.hpp"

namespace devicemap {

// The Linear weight [out, in] in scales' dtype. Throws devicemap::Error when the shapes do not fit.
at::Tensor dequantize_awq(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales, const AwqConfig& config);

// The same as rows of codes for the decode kernels (run/packed_linear.hpp).
std::shared_ptr<const PackedLinear> pack_awq4(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales,
                                              const AwqConfig& config);

}  // namespace devicemap
