#pragma once
// Internal to the running layer (includes ATen). A dense layer y = x·Wᵀ + b. A decode step has one row
// (a batch or a prompt's tail a few): those rows on the CPU go through the decode kernels (kernels/),
// which stream each weight once in its stored dtype (LibTorch 1.13's one-row paths, OpenBLAS sgemv
// and oneDNN bf16, reach about half the memory bandwidth); more rows go through LibTorch's matrix
// multiply, which is faster there, unless the weight is float16 on a float32 CPU (see below).
#include <ATen/ATen.h>

#include <algorithm>
#include <span>
#include <vector>

#include "kernels/matvec.hpp"
#include "run/decode_path.hpp"
#include "run/weights.hpp"

namespace devicemap {

// Whether the decode kernels take x·Wᵀ: CPU tensors, a weight of a dtype they read whose rows are
// contiguous, and at most kernels::kMaxBatch rows of x — or any number when the weight is kept in another
// dtype than x's (a float16 matrix on a float32 CPU): the kernels then take x in blocks of kMaxBatch
// rows, where LibTorch would first cast the whole matrix for every call.
inline bool decode_kernel_takes(const at::Tensor& x, const at::Tensor& weight) {
  if (!decode_kernels_in_use() || !x.is_cpu() || !weight.is_cpu() || x.dim() != 2 || weight.dim() != 2) return false;
  if (x.size(0) < 1 || x.size(1) != weight.size(1)) return false;
  if (x.size(0) > static_cast<std::int64_t>(kernels::kMaxBatch) && weight.scalar_type() == x.scalar_type()) return false;
  return weight.stride(1) == 1 && weight.size(0) > 0 && kernels::supports(dtype_of(weight.scalar_type()));
}

// x·Wᵀ (+ b) for each weight, reading x once: the products of q/k/v or gate/up in one pass over the thread
// pool, kMaxBatch rows of x at a time. Results are in x's dtype, rounded once from float32 as LibTorch's
// own products round.
inline std::vector<at::Tensor> decode_dense(const at::Tensor& x, std::span<const at::Tensor> weights,
                                            std::span<const at::Tensor> biases = {}) {
  const at::Tensor xf = x.to(at::kFloat).contiguous();
  const auto rows = static_cast<std::size_t>(x.size(0)), cols = static_cast<std::size_t>(x.size(1));
  std::vector<at::Tensor> ys;
  std::vector<kernels::Product> products;
  for (const auto& w : weights) {
    ys.push_back(at::empty({x.size(0), w.size(0)}, xf.options()));
    products.push_back({{w.data_ptr(), dtype_of(w.scalar_type()), static_cast<std::size_t>(w.size(0)),
                         static_cast<std::size_t>(w.size(1)), static_cast<std::size_t>(w.stride(0))},
                        nullptr,
                        static_cast<std::size_t>(w.size(0))});
  }
  for (std::size_t first = 0; first < rows; first += kernels::kMaxBatch) {
    for (std::size_t i = 0; i < ys.size(); ++i) products[i].y = ys[i].data_ptr<float>() + first * products[i].y_stride;
    kernels::matvec(products, xf.data_ptr<float>() + first * cols, std::min(kernels::kMaxBatch, rows - first), cols);
  }
  for (std::size_t i = 0; i < ys.size(); ++i) {
    if (i < biases.size() && biases[i].defined()) ys[i].add_(biases[i]);
    if (x.scalar_type() != at::kFloat) ys[i] = ys[i].to(x.scalar_type());
  }
  return ys;
}

// weight is [out, in] (nn.Linear); bias may be undefined.
inline at::Tensor dense(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {}) {
  if (decode_kernel_takes(x, weight)) return decode_dense(x, {&weight, 1}, {&bias, 1}).front();
  // A matrix kept in its stored dtype (a float16 file on a float32 CPU) meets LibTorch's product cast.
  return at::linear(x, weight.scalar_type() == x.scalar_type() ? weight : weight.to(x.scalar_type()), bias);
}

// weight is [in, out] (GPT-2's Conv1D): its rows are not the output's, so one float32 row goes through mv.
inline at::Tensor dense_in_out(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (x.dim() == 2 && x.size(0) == 1 && x.is_cpu() && x.scalar_type() == at::kFloat)
    return at::addmv(bias, weight.t(), x.select(0, 0)).unsqueeze(0);
  return at::addmm(bias, x, weight);
}

}  // namespace devicemap
