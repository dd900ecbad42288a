#pragma once
// The element-wise steps of a decode step, on a few rows held in the CPU's compute dtype (float32 or
// bfloat16): RMSNorm, rotary embedding, SiLU(gate)·up or GELU(gate)·up and the residual add. Each is one call instead of
// the handful of LibTorch ops it takes (about 30 per layer and token, each paying a dispatch), and each
// rounds to bfloat16 exactly where the LibTorch ops of transformers' modules round (to nearest, ties
// to even), computing in float32 in between, so the two paths agree op for op up to summation order and
// the last bit of exp.
#include <cstddef>

#include "format/dtype.hpp"

namespace devicemap::kernels {

// Element types these take: float32 and bfloat16.
bool token_ops_support(DType dtype);

// How the weight scales a normalised row: LlamaRMSNorm rounds the row to the dtype, then multiplies by
// the weight; GemmaRMSNorm multiplies the float32 row by (1 + weight) and rounds once.
enum class NormWeight : unsigned char { Plain, PlusOne };

// RMSNorm of `rows` rows of `cols`: x / sqrt(mean(x²) + eps), scaled by the weight (of the same dtype) as
// `style` says.
void rms_norm(const void* x, const void* weight, void* out, DType dtype, std::size_t rows, std::size_t cols, float eps,
              NormWeight style = NormWeight::Plain);

// Rotary embedding in place, as apply_rotary_pos_emb with rotate_half: x is [positions, heads, dim]
// (a projection's output), cos and sin are [positions, dim] float32, rounded to the dtype first as
// transformers casts them.
void rotary(void* x, DType dtype, std::size_t positions, std::size_t heads, std::size_t dim, const float* cos, const float* sin);

// out = silu(gate) · up over n elements (silu rounded before the multiply).
void silu_mul(const void* gate, const void* up, void* out, DType dtype, std::size_t n);

// out = gelu_tanh(gate) · up over n elements (Gemma's GeGLU; the GELU rounded before the multiply).
void gelu_tanh_mul(const void* gate, const void* up, void* out, DType dtype, std::size_t n);

// h += y over n elements.
void add_to(void* h, const void* y, DType dtype, std::size_t n);

}  // namespace devicemap::kernels
