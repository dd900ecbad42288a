#pragma once
// Internal to the running layer (includes ATen). The element-wise steps of a decoder block (RMSNorm,
// rotary embedding, SiLU·mul, residual add) for a CPU decode step through kernels/token_ops.hpp: one call
// each instead of LibTorch's chains of small ops. Each `*_takes` says whether the kernels apply; where
// they do not (a GPU, a long prompt, float16 compute), the callers run LibTorch's ops.
#include <ATen/ATen.h>

#include "kernels/matvec.hpp"
#include "kernels/token_ops.hpp"
#include "run/decode_path.hpp"
#include "run/weights.hpp"

namespace devicemap {

// A decode step's rows on the CPU: contiguous, at most kernels::kMaxBatch rows, float32 or bfloat16.
inline bool token_ops_take(const at::Tensor& t) {
  return decode_kernels_in_use() && t.is_cpu() && t.is_contiguous() && t.dim() == 2 && t.size(0) >= 1 &&
         t.size(0) <= static_cast<std::int64_t>(kernels::kMaxBatch) && kernels::token_ops_support(dtype_of(t.scalar_type()));
}

inline bool rms_norm_takes(const at::Tensor& x, const at::Tensor& weight) {
  return token_ops_take(x) && weight.is_cpu() && weight.is_contiguous() && weight.scalar_type() == x.scalar_type() &&
         weight.dim() == 1 && weight.size(0) == x.size(1);
}

inline at::Tensor rms_norm_kernel(const at::Tensor& x, const at::Tensor& weight, double eps,
                                  kernels::NormWeight style = kernels::NormWeight::Plain) {
  at::Tensor out = at::empty_like(x);
  kernels::rms_norm(x.data_ptr(), weight.data_ptr(), out.data_ptr(), dtype_of(x.scalar_type()), static_cast<std::size_t>(x.size(0)),
                    static_cast<std::size_t>(x.size(1)), static_cast<float>(eps), style);
  return out;
}

// x: a projection's output [positions, heads · dim], rotated in place; cos, sin: [positions, dim] float32.
inline void rotary_kernel(at::Tensor& x, std::int64_t heads, std::int64_t dim, const at::Tensor& cos, const at::Tensor& sin) {
  kernels::rotary(x.data_ptr(), dtype_of(x.scalar_type()), static_cast<std::size_t>(x.size(0)), static_cast<std::size_t>(heads),
                  static_cast<std::size_t>(dim), cos.data_ptr<float>(), sin.data_ptr<float>());
}

inline at::Tensor silu_mul_kernel(const at::Tensor& gate, const at::Tensor& up) {
  at::Tensor out = at::empty_like(gate);
  kernels::silu_mul(gate.data_ptr(), up.data_ptr(), out.data_ptr(), dtype_of(gate.scalar_type()), static_cast<std::size_t>(gate.numel()));
  return out;
}

inline at::Tensor gelu_tanh_mul_kernel(const at::Tensor& gate, const at::Tensor& up) {
  at::Tensor out = at::empty_like(gate);
  kernels::gelu_tanh_mul(gate.data_ptr(), up.data_ptr(), out.data_ptr(), dtype_of(gate.scalar_type()), static_cast<std::size_t>(gate.numel()));
  return out;
}

// h += y, in place (h is the block's own hidden state).
inline void add_kernel(at::Tensor& h, const at::Tensor& y) {
  kernels::add_to(h.data_ptr(), y.data_ptr(), dtype_of(h.scalar_type()), static_cast<std::size_t>(h.numel()));
}

}  // namespace devicemap
