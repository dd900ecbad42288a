#pragma once
// float16 or bfloat16 elements widened to float32, split across the thread pool: what a prompt's matrix
// multiply (LibTorch, float32 on the CPU) needs from a matrix kept in 16 bits. LibTorch 1.13 converts
// float16 element by element on one thread; this runs at the memory bandwidth.
#include <cstddef>

#include "format/dtype.hpp"

namespace devicemap::kernels {

class ThreadPool;

// dst[i] = float(src[i]) for i < n; src is float32, bfloat16 or float16.
void widen_to_f32(const void* src, DType dtype, float* dst, std::size_t n, ThreadPool& pool);
void widen_to_f32(const void* src, DType dtype, float* dst, std::size_t n);

}  // namespace devicemap::kernels
