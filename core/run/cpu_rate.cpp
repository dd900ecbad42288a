#include "run/cpu_rate.hpp"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include "error.hpp"
#include "run/dense.hpp"
#include "run/packed_linear.hpp"
#include "run/prompt_path.hpp"

namespace devicemap {

void use_all_cores() {
  static std::once_flag once;
  std::call_once(once, [] {
    const unsigned cores = std::thread::hardware_concurrency();
    // LibTorch's own (OpenMP) threads only where its oneDNN multiplies bfloat16 (run/prompt_path.hpp).
    // Elsewhere every large product runs on OpenBLAS's threads or the decode kernels' pool, and an OpenMP
    // worker left spinning after each small parallel region (libgomp spins ~300 000 rounds before it
    // sleeps; its wait policy can be set only before the process starts) takes a core from them: a
    // 1.1B bfloat16 prompt of 65 tokens ran at 12.5 tok/s instead of 26.7 on 2 AVX2 cores.
    if (cores > 0) at::set_num_threads(cpu_multiplies_bf16() ? static_cast<int>(cores) : 1);
  });
}

double measure_matvec_gflops(DType dtype) {
  if (dtype != DType::F32 && dtype != DType::BF16) throw Error("the CPU rate is measured for float32 and bfloat16 only");
  use_all_cores();
  c10::InferenceMode inference;
  const auto type = dtype == DType::F32 ? at::kFloat : at::kBFloat16;
  // 32768 × 4096: 512 MiB in float32, 256 MiB in bfloat16, far beyond any last-level cache (at 64 MiB an
  // EPYC answered part of the reads from its cache: bfloat16 streamed 75 GB/s where memory read 66).
  // The values do not change the rate; a constant fill costs no random numbers.
  constexpr std::int64_t rows = 32768, cols = 4096;
  const at::Tensor weight = empty_in_huge_pages({rows, cols}, at::TensorOptions().dtype(type)).fill_(0.01);
  const at::Tensor x = at::full({1, cols}, 0.5, at::TensorOptions().dtype(type));
  dense(x, weight);  // warm-up: first-touch and kernel selection
  double best = 0;
  for (int round = 0; round < 3; ++round) {
    constexpr int steps = 4;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) dense(x, weight);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * rows * cols * steps / s / 1e9);
  }
  return best;
}

double measure_packed_gflops(bool four_bit) {
  use_all_cores();
  c10::InferenceMode inference;
  // 32768 × 4096 weights: 128 MiB as int8 rows, 64 MiB as 4-bit codes, beyond the last-level caches.
  constexpr std::int64_t rows = 32768, cols = 4096, block = 64;
  const at::Tensor codes = empty_in_huge_pages({rows, four_bit ? cols / 2 : cols}, at::TensorOptions().dtype(four_bit ? at::kByte : at::kChar))
                               .fill_(0x35);
  const at::Tensor scale = at::full({four_bit ? rows * cols / block : rows}, 0.01, at::TensorOptions().dtype(at::kFloat));
  PackedLinear p;
  p.out = rows;
  p.in = cols;
  p.codes = codes;
  p.int8 = !four_bit;
  p.scale = scale;
  p.layout = {kernels::nf4_table(), static_cast<std::size_t>(block), scale.data_ptr<float>(), nullptr, static_cast<std::size_t>(cols / block)};
  const at::Tensor x = at::full({1, cols}, 0.5, at::TensorOptions().dtype(at::kFloat));
  p.decode(x, at::Tensor());  // warm-up: first touch
  double best = 0;
  for (int round = 0; round < 3; ++round) {
    constexpr int steps = 4;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) p.decode(x, at::Tensor());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * rows * cols * steps / s / 1e9);
  }
  return best;
}

}  // namespace devicemap
