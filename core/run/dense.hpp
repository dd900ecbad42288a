#pragma once
// Internal to the running layer (includes ATen). A dense layer y = x·Wᵀ + b. A decode step has one row
// (a batch or a prompt's tail a few): those rows on the CPU go through the decode kernels (kernels/),
// which stream each weight once in its stored dtype (LibTorch 1.13's one-row paths, OpenBLAS sgemv
// and oneDNN bf16, reach about half the memory bandwidth); more rows go through LibTorch's matrix
// multiply, which is faster there (a matrix kept in float16 is first widened into a reused buffer, and
// so is a bfloat16 one where the CPU has no fast bfloat16 product: run/prompt_path.hpp).
#include <ATen/ATen.h>

#include <span>
#include <vector>

#include "kernels/matvec.hpp"
#include "kernels/widen.hpp"
#include "run/cpu_cast.hpp"
#include "run/decode_path.hpp"
#include "run/packed_linear.hpp"
#include "run/prompt_path.hpp"
#include "run/weights.hpp"

namespace devicemap {

// Whether the decode kernels take x·Wᵀ: CPU tensors, at most kernels::kMaxBatch rows, a weight of a
// dtype they read whose rows are contiguous.
inline bool decode_kernel_takes(const at::Tensor& x, const at::Tensor& weight) {
  if (!decode_kernels_in_use() || !x.is_cpu() || !weight.is_cpu() || x.dim() != 2 || weight.dim() != 2) return false;
  if (x.size(0) < 1 || x.size(0) > static_cast<std::int64_t>(kernels::kMaxBatch) || x.size(1) != weight.size(1)) return false;
  return weight.stride(1) == 1 && weight.size(0) > 0 && kernels::supports(dtype_of(weight.scalar_type()));
}

// x·Wᵀ (+ b) for each weight, reading x once: the products of q/k/v or gate/up in one pass over the thread
// pool. Results are in x's dtype, rounded once from float32 as LibTorch's own products round.
inline std::vector<at::Tensor> decode_dense(const at::Tensor& x, std::span<const at::Tensor> weights,
                                            std::span<const at::Tensor> biases = {}) {
  const at::Tensor xf = x.to(at::kFloat).contiguous();
  std::vector<at::Tensor> ys;
  std::vector<kernels::Product> products;
  for (const auto& w : weights) {
    ys.push_back(at::empty({x.size(0), w.size(0)}, xf.options()));
    products.push_back({{w.data_ptr(), dtype_of(w.scalar_type()), static_cast<std::size_t>(w.size(0)),
                         static_cast<std::size_t>(w.size(1)), static_cast<std::size_t>(w.stride(0))},
                        ys.back().data_ptr<float>(),
                        static_cast<std::size_t>(w.size(0))});
  }
  kernels::matvec(products, xf.data_ptr<float>(), static_cast<std::size_t>(x.size(0)), static_cast<std::size_t>(x.size(1)));
  for (std::size_t i = 0; i < ys.size(); ++i) {
    if (i < biases.size() && biases[i].defined()) ys[i].add_(biases[i]);
    if (x.scalar_type() != at::kFloat) ys[i] = ys[i].to(x.scalar_type());
  }
  return ys;
}

// int8 rows with a float32 scale each (bitsandbytes 8-bit: SCB / 127) through the decode kernels: the
// int8 bytes are all a step reads of the matrix.
inline bool decode_int8_takes(const at::Tensor& x, const at::Tensor& weight) {
  return decode_kernels_in_use() && x.is_cpu() && weight.is_cpu() && x.dim() == 2 && weight.dim() == 2 && x.size(0) >= 1 &&
         x.size(0) <= static_cast<std::int64_t>(kernels::kMaxBatch) && x.size(1) == weight.size(1) &&
         weight.scalar_type() == at::kChar && weight.stride(1) == 1 && weight.size(0) > 0;
}

// x·(diag(row_scale)·W)ᵀ (+ b), in x's dtype; row_scale float32 [out].
inline at::Tensor decode_dense_int8(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& row_scale, const at::Tensor& bias) {
  const at::Tensor xf = x.to(at::kFloat).contiguous();
  const at::Tensor scale = row_scale.to(at::kCPU, at::kFloat).contiguous();
  at::Tensor y = at::empty({x.size(0), weight.size(0)}, xf.options());
  kernels::Matrix m{weight.data_ptr(), DType::I8, static_cast<std::size_t>(weight.size(0)), static_cast<std::size_t>(weight.size(1)),
                    static_cast<std::size_t>(weight.stride(0)), scale.data_ptr<float>()};
  const kernels::Product p{m, y.data_ptr<float>(), static_cast<std::size_t>(weight.size(0))};
  kernels::matvec({&p, 1}, xf.data_ptr<float>(), static_cast<std::size_t>(x.size(0)), static_cast<std::size_t>(x.size(1)));
  if (bias.defined()) y.add_(bias);
  return x.scalar_type() == at::kFloat ? y : y.to(x.scalar_type());
}

// Whether the decode kernels take x for a packed Linear with `in` inputs (run/packed_linear.hpp: 4-bit codes
// or int8 rows): half a byte or one byte per weight read, plus the scales.
// Up to PackedLinear::kernel_rows() rows (run/packed_linear.hpp): a prompt's rows too.
inline bool decode_packed_takes(const at::Tensor& x, const PackedLinear& linear) {
  return decode_kernels_in_use() && x.is_cpu() && x.dim() == 2 && x.size(0) >= 1 && x.size(0) <= linear.kernel_rows() &&
         x.size(1) == linear.in && linear.in % 2 == 0;
}

// A matrix kept in 16 bits (a float16 file on a float32 CPU) widened to float32 for LibTorch's matrix
// multiply, into one huge-page buffer per thread that every call reuses (as large as the largest matrix).
inline at::Tensor widened_to_float(const at::Tensor& w) {
  if (!w.is_cpu() || !w.is_contiguous() || !kernels::supports(dtype_of(w.scalar_type()))) return w.to(at::kFloat);
  thread_local at::Tensor buffer;
  if (!buffer.defined() || buffer.numel() < w.numel())
    buffer = empty_in_huge_pages({w.numel()}, at::TensorOptions().dtype(at::kFloat));
  kernels::widen_to_f32(w.data_ptr(), dtype_of(w.scalar_type()), buffer.data_ptr<float>(), static_cast<std::size_t>(w.numel()));
  return buffer.narrow(0, 0, w.numel()).view(w.sizes());
}

// Whether x·Wᵀ for these bfloat16 rows on the CPU is multiplied in float32 (run/prompt_path.hpp).
inline bool widened_product(const at::Tensor& x) {
  return x.is_cpu() && x.scalar_type() == at::kBFloat16 && bf16_products_widened();
}

// weight is [out, in] (nn.Linear); bias may be undefined.
inline at::Tensor dense(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {}) {
  if (decode_kernel_takes(x, weight)) return decode_dense(x, {&weight, 1}, {&bias, 1}).front();
  if (widened_product(x) && weight.is_cpu()) {
    const at::Tensor w = weight.scalar_type() == at::kFloat ? weight : widened_to_float(weight);
    return at::linear(x.to(at::kFloat), w, bias.defined() ? bias.to(at::kFloat) : bias).to(x.scalar_type());
  }
  if (weight.scalar_type() != x.scalar_type() && x.scalar_type() == at::kFloat) return at::linear(x, widened_to_float(weight), bias);
  return at::linear(x, weight, bias);
}

// weight is [in, out] (GPT-2's Conv1D): its rows are not the output's, so one float32 row goes through mv.
inline at::Tensor dense_in_out(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (x.dim() == 2 && x.size(0) == 1 && x.is_cpu() && x.scalar_type() == at::kFloat)
    return at::addmv(bias, weight.t(), x.select(0, 0)).unsqueeze(0);
  if (widened_product(x) && weight.is_cpu())
    return at::addmm(bias.defined() ? bias.to(at::kFloat) : bias, x.to(at::kFloat), widened_to_float(weight)).to(x.scalar_type());
  return at::addmm(bias, x, weight);
}

}  // namespace devicemap
