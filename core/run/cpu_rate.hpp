#pragma once
// The CPU as LibTorch uses it: every core, and the rate at which it runs a decode step's matrix-vector
// products. Torch-free, for the CLI.
#include "format/dtype.hpp"

namespace devicemap {

// Once per process: LibTorch's own threads set to the core count where it multiplies bfloat16 through
// oneDNN, and to one elsewhere, where OpenBLAS's threads and the decode kernels' pool use the cores.
void use_all_cores();

// GFLOP/s of one-row dense layers (the runner's own path) in `dtype` (float32 or bfloat16) on a weight
// larger than the caches: what a CPU-run decoder layer gets, memory and kernels included.
double measure_matvec_gflops(DType dtype);

// The same for quantized Linears the decode kernels read packed: int8 rows (`four_bit` false) or 4-bit
// codes in blocks of 64 (true), in GFLOP/s of the weights they stand for (2 flops each).
double measure_packed_gflops(bool four_bit);

}  // namespace devicemap
