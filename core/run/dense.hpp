#pragma once
// Internal to the running layer (includes ATen). A dense layer y = x·Wᵀ + b. A decode step has one
// row, and OpenBLAS before 0.3.27 (Debian 12 ships 0.3.21) runs a one-row float32 GEMM through its
// packing kernel, which copies the whole weight first: a third of the memory bandwidth. A matrix-vector
// product streams the weight once, so one float32 row on the CPU goes through mv.
#include <ATen/ATen.h>

namespace devicemap {

// weight is [out, in] (nn.Linear); bias may be undefined.
inline at::Tensor dense(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {}) {
  if (x.dim() == 2 && x.size(0) == 1 && x.is_cpu() && x.scalar_type() == at::kFloat) {
    const at::Tensor row = x.select(0, 0);
    return (bias.defined() ? at::addmv(bias, weight, row) : at::mv(weight, row)).unsqueeze(0);
  }
  return at::linear(x, weight, bias);
}

// weight is [in, out] (GPT-2's Conv1D).
inline at::Tensor dense_in_out(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (x.dim() == 2 && x.size(0) == 1 && x.is_cpu() && x.scalar_type() == at::kFloat)
    return at::addmv(bias, weight.t(), x.select(0, 0)).unsqueeze(0);
  return at::addmm(bias, x, weight);
}

}  // namespace devicemap
