#include "run/quantize.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "error.hpp"
#include "kernels/codes4.hpp"
#include "kernels/thread_pool.hpp"

namespace devicemap {
namespace {

constexpr std::int64_t kNf4Block = 64;

// The NF4 code nearest to v (|v| ≤ 1): the first midpoint above v, as bitsandbytes' quantizer decides.
std::uint8_t nearest_nf4(float v, const float* mid) { return static_cast<std::uint8_t>(std::upper_bound(mid, mid + 15, v) - mid); }

}  // namespace

std::uint64_t quantized_bytes(std::int64_t out, std::int64_t in, LoadQuantization method) {
  const auto o = static_cast<std::uint64_t>(out), i = static_cast<std::uint64_t>(in);
  if (method == LoadQuantization::Int8) return o * i + o * 4;
  return o * (i / 2) + o * static_cast<std::uint64_t>((in + kNf4Block - 1) / kNf4Block) * 4;
}

std::shared_ptr<const PackedLinear> quantize_linear(const at::Tensor& weight, LoadQuantization method) {
  if (weight.dim() != 2 || !weight.is_cpu() || !at::isFloatingType(weight.scalar_type()))
    throw Error("quantize on load: a Linear weight must be a 2-D floating tensor on the CPU");
  const at::Tensor w = weight.to(at::kFloat).contiguous();
  auto p = std::make_shared<PackedLinear>();
  p->out = w.size(0);
  p->in = w.size(1);
  const std::int64_t out = p->out, in = p->in;
  const float* src = w.data_ptr<float>();
  kernels::ThreadPool& pool = kernels::ThreadPool::shared();
  if (method == LoadQuantization::Int8) {
    p->int8 = true;
    p->codes = at::empty({out, in}, at::TensorOptions().dtype(at::kChar));
    p->scale = at::empty({out}, at::TensorOptions().dtype(at::kFloat));
    auto* q = p->codes.data_ptr<std::int8_t>();
    float* scale = p->scale.data_ptr<float>();
    pool.run(static_cast<std::size_t>(out), [&](std::size_t r) {
      const float* row = src + r * in;
      float absmax = 0;
      for (std::int64_t c = 0; c < in; ++c) absmax = std::max(absmax, std::abs(row[c]));
      const float inv = absmax > 0 ? 127.0f / absmax : 0.0f;
      for (std::int64_t c = 0; c < in; ++c) q[r * in + c] = static_cast<std::int8_t>(std::nearbyint(row[c] * inv));
      scale[r] = absmax / 127.0f;
    });
    return p;
  }
  if (method != LoadQuantization::Nf4) throw Error("quantize on load: no method asked");
  if (in % 2 != 0) throw Error("quantize on load: nf4 needs an even number of inputs per row, not " + std::to_string(in));
  const float* table = kernels::nf4_table();
  float mid[15];
  for (int k = 0; k < 15; ++k) mid[k] = (table[k] + table[k + 1]) / 2;
  const std::int64_t blocks = (in + kNf4Block - 1) / kNf4Block;
  p->codes = at::empty({out, in / 2}, at::TensorOptions().dtype(at::kByte));
  p->scale = at::empty({out * blocks}, at::TensorOptions().dtype(at::kFloat));
  auto* codes = p->codes.data_ptr<std::uint8_t>();
  float* scale = p->scale.data_ptr<float>();
  pool.run(static_cast<std::size_t>(out), [&](std::size_t r) {
    const float* row = src + r * in;
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t c0 = b * kNf4Block, c1 = std::min(in, c0 + kNf4Block);
      float absmax = 0;
      for (std::int64_t c = c0; c < c1; ++c) absmax = std::max(absmax, std::abs(row[c]));
      scale[r * blocks + b] = absmax;
      const float inv = absmax > 0 ? 1.0f / absmax : 0.0f;
      for (std::int64_t c = c0; c < c1; ++c) {
        const std::uint8_t code = nearest_nf4(row[c] * inv, mid);
        std::uint8_t& byte = codes[r * (in / 2) + c / 2];
        byte = c % 2 == 0 ? static_cast<std::uint8_t>(code << 4) : static_cast<std::uint8_t>(byte | code);
      }
    }
  });
  p->layout = {table, static_cast<std::size_t>(kNf4Block), scale, nullptr, static_cast<std::size_t>(blocks)};
  return p;
}

}  // namespace devicemap
