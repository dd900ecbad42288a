#pragma once
// y = W·x for the decode path: one input row, or a few (up to kMaxBatch, for a batch or the last tokens of
// a prompt), with W kept in its stored dtype (float32, bfloat16, float16, or int8 with a float32 scale
// per row: bitsandbytes' LLM.int8 rows; or 4-bit codes with a scale per block, codes4.hpp) and converted to float32 in registers, so that every weight byte is read exactly once and nothing is copied or cast ahead of time.
// Accumulation is in float32. Rows are split across the shared thread pool; several products of the same
// input (q/k/v, gate/up) go in one pass over the pool. Written with Highway, which picks the widest
// vector unit of the machine at run time (AVX-512, AVX2, SSE4, SSSE3, or portable scalar code).
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "format/dtype.hpp"
#include "kernels/codes4.hpp"

namespace devicemap::kernels {

class ThreadPool;

constexpr std::size_t kMaxBatch = 8;

// A weight matrix as it lies in memory: row r starts at data + r * row_stride elements.
struct Matrix {
  const void* data = nullptr;
  DType dtype = DType::F32;
  std::size_t rows = 0, cols = 0, row_stride = 0;
  const float* row_scale = nullptr;  // int8 rows (required there): row r's products are times row_scale[r]
  // 4-bit codes (codes4.hpp): then data holds bytes, row_stride counts bytes, and dtype is not read.
  const Codes4* codes4 = nullptr;
};

// One product of a fused call: y[b * y_stride + r] = Σ_c W[r, c] · x[b * x_stride + c].
struct Product {
  Matrix weight;
  float* y = nullptr;
  std::size_t y_stride = 0;
};

// Element types the kernels read (int8 matrices too, given their row scales: supports_matrix).
bool supports(DType dtype);
bool supports_matrix(DType dtype);

// `batch` rows of x (at most kMaxBatch), each `x_stride` floats apart and as long as the matrices' cols.
// All products share x, so they must have the same cols.
void matvec(std::span<const Product> products, const float* x, std::size_t batch, std::size_t x_stride, ThreadPool& pool);
void matvec(std::span<const Product> products, const float* x, std::size_t batch, std::size_t x_stride);

// The instruction set the kernels dispatch to on this machine ("AVX3", "AVX2", "SSE4", "SSSE3", "SCALAR"), and all
// those this build has code for that the machine can run, best first.
std::string dispatch_target();
std::vector<std::string> runnable_targets();
// Makes the kernels use only `target` (one of runnable_targets()), or every target again with "".
// For tests and benchmarks; not thread-safe against running kernels.
void restrict_targets(const std::string& target);

}  // namespace devicemap::kernels
