#include "run/awq.hpp"

#include <ATen/ATen.h>

#include <cstdint>

#include "error.hpp"

namespace devicemap {
namespace {

// The nibble of output o within its word: AutoAWQ packs output 8c + kOrder[i] at nibble i.
constexpr int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
constexpr int kNibbleOf[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // the inverse: output 8c + j sits at nibble kNibbleOf[j]
static_assert(kOrder[kNibbleOf[1]] == 1 && kOrder[kNibbleOf[6]] == 6);

// [rows, cols/8] words → [rows, cols] values in output order.
std::vector<std::uint8_t> unpack_outputs(const at::Tensor& words, std::int64_t rows, std::int64_t cols) {
  const at::Tensor w = words.contiguous();
  const auto* v = reinterpret_cast<const std::uint32_t*>(w.data_ptr<std::int32_t>());
  std::vector<std::uint8_t> out(static_cast<std::size_t>(rows * cols));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t o = 0; o < cols; ++o)
      out[static_cast<std::size_t>(r * cols + o)] = static_cast<std::uint8_t>((v[r * (cols / 8) + o / 8] >> (4 * kNibbleOf[o % 8])) & 0xF);
  return out;
}

struct Unpacked {
  std::int64_t in = 0, out = 0, groups = 0, group = 0;
  std::vector<std::uint8_t> q, zeros;  // [in, out], [groups, out]
};

Unpacked unpack(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales, const AwqConfig& config) {
  if (qweight.scalar_type() != at::kInt || qzeros.scalar_type() != at::kInt) throw Error("AWQ qweight and qzeros must be int32");
  Unpacked u;
  u.in = qweight.size(0);
  u.out = qweight.size(1) * 8;
  u.group = config.group_size;
  u.groups = (u.in + u.group - 1) / u.group;
  if (qzeros.size(0) != u.groups || qzeros.size(1) * 8 != u.out || scales.size(0) != u.groups || scales.size(1) != u.out)
    throw Error("AWQ tensors do not fit together (qweight, qzeros, scales)");
  u.q = unpack_outputs(qweight, u.in, u.out);
  u.zeros = unpack_outputs(qzeros, u.groups, u.out);
  return u;
}

}  // namespace

at::Tensor dequantize_awq(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales, const AwqConfig& config) {
  const Unpacked u = unpack(qweight, qzeros, scales, config);
  const at::Tensor s = scales.to(at::kFloat).contiguous();
  const float* sp = s.data_ptr<float>();
  at::Tensor w = at::empty({u.out, u.in}, at::TensorOptions().dtype(at::kFloat));
  float* wp = w.data_ptr<float>();
  for (std::int64_t i = 0; i < u.in; ++i) {
    const std::int64_t g = i / u.group;
    for (std::int64_t o = 0; o < u.out; ++o)
      wp[o * u.in + i] = float(int(u.q[i * u.out + o]) - int(u.zeros[g * u.out + o])) * sp[g * u.out + o];
  }
  return w.to(scales.scalar_type());
}

std::shared_ptr<const PackedLinear> pack_awq4(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales,
                                              const AwqConfig& config) {
  const Unpacked u = unpack(qweight, qzeros, scales, config);
  if (u.in % 2 != 0) throw Error("AWQ layer with an odd number of inputs");
  auto p = std::make_shared<PackedLinear>();
  p->out = u.out;
  p->in = u.in;
  p->codes = at::empty({u.out, u.in / 2}, at::TensorOptions().dtype(at::kByte));
  auto* codes = p->codes.data_ptr<std::uint8_t>();
  for (std::int64_t o = 0; o < u.out; ++o)
    for (std::int64_t i = 0; i < u.in; i += 2)
      codes[o * (u.in / 2) + i / 2] = static_cast<std::uint8_t>(u.q[i * u.out + o] << 4 | u.q[(i + 1) * u.out + o]);
  // (q − zero)·scale = q·scale + (−zero·scale), per output row and group.
  const at::Tensor s = scales.to(at::kFloat).t().contiguous();  // [out, groups]
  p->scale = s.reshape({-1});
  p->offset = at::empty({u.out * u.groups}, at::TensorOptions().dtype(at::kFloat));
  const float* sp = p->scale.data_ptr<float>();
  float* op = p->offset.data_ptr<float>();
  for (std::int64_t o = 0; o < u.out; ++o)
    for (std::int64_t g = 0; g < u.groups; ++g) op[o * u.groups + g] = -float(u.zeros[g * u.out + o]) * sp[o * u.groups + g];
  p->layout = {kernels::integer4_table(), static_cast<std::size_t>(u.group), p->scale.data_ptr<float>(), p->offset.data_ptr<float>(),
               static_cast<std::size_t>(u.groups)};
  return p;
}

}  // namespace devicemap
