#pragma once
// float16 or bfloat16 elements (or int8 rows with their scales) widened to float32, split across the
// thread pool: what a prompt's matrix multiply (LibTorch, float32 on the CPU) needs from a matrix kept in
// 16 or 8 bits. LibTorch 1.13 converts
// float16 element by element on one thread; this runs at the memory bandwidth.
#include <cstddef>
#include <cstdint>

#include "format/dtype.hpp"

namespace devicemap::kernels {

class ThreadPool;

// dst[i] = float(src[i]) for i < n; src is float32, bfloat16 or float16.
void widen_to_f32(const void* src, DType dtype, float* dst, std::size_t n, ThreadPool& pool);
void widen_to_f32(const void* src, DType dtype, float* dst, std::size_t n);

// int8 rows times their scales (bitsandbytes' LLM.int8 rows): dst[r·cols + c] = src[r·cols + c] ·
// row_scale[r] for r < rows, c < cols, each product rounded once to float32.
void widen_int8_rows(const std::int8_t* src, const float* row_scale, std::size_t rows, std::size_t cols, float* dst, ThreadPool& pool);

}  // namespace devicemap::kernels
