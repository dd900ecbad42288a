#pragma once
// Internal to the running layer (includes ATen). GPTQ weights back to a dense matrix, as AutoGPTQ's
// reference dequantization does: w[i][o] = scales[g][o] · (q[i][o] − zero[g][o]) with g = g_idx[i]
// (or i / group_size), q and zero unpacked from int32 words (lowest bits first), and zero stored minus
// one in the "gptq" checkpoint format. Layers on "disk" or a GPU are expanded so where they run, each
// time they run; those resident in RAM are packed for the decode kernels (pack_gptq).
#include <ATen/core/Tensor.h>

#include <memory>

#include "run/model_config.hpp"
#include "run/packed_linear.hpp"

namespace devicemap {

// qweight [in·bits/32, out] and qzeros [groups, out·bits/32] int32, scales [groups, out], g_idx [in]
// int32 or undefined. Returns the Linear weight [out, in] in scales' dtype. Throws devicemap::Error when
// dtypes or shapes do not fit together.
at::Tensor dequantize_gptq(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales,
                           const at::Tensor& g_idx, const GptqConfig& config);

// The same tensors as rows of 4-bit codes for the decode kernels (run/packed_linear.hpp): 2 and 4 bits
// as one plane of codes, 8 bits as two (high and low nibbles); nullptr when act-order groups are not
// each group_size columns (then the layer is expanded as above).
std::shared_ptr<const PackedLinear> pack_gptq(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales,
                                               const at::Tensor& g_idx, const GptqConfig& config);

}  // namespace devicemap
