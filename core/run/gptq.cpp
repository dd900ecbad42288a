#include "run/gptq.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "error.hpp"

namespace devicemap {
namespace {

// Each int32 word holds 32/bits values, the first in the lowest bits: [rows, cols] → values along `dim`
// multiplied by 32/bits.
at::Tensor unpack(const at::Tensor& packed, int bits, int64_t dim) {
  const int64_t per_word = 32 / bits;
  const at::Tensor shifts = at::arange(0, 32, bits, packed.options());
  const int64_t mask = (int64_t{1} << bits) - 1;
  if (dim == 0) {  // [rows, cols] → [rows·per_word, cols]
    const at::Tensor v = at::bitwise_right_shift(packed.unsqueeze(1), shifts.view({1, per_word, 1})).bitwise_and(mask);
    return v.reshape({packed.size(0) * per_word, packed.size(1)});
  }
  const at::Tensor v = at::bitwise_right_shift(packed.unsqueeze(2), shifts.view({1, 1, per_word})).bitwise_and(mask);
  return v.reshape({packed.size(0), packed.size(1) * per_word});
}

}  // namespace

at::Tensor dequantize_gptq(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales,
                           const at::Tensor& g_idx, const GptqConfig& config) {
  if (qweight.scalar_type() != at::kInt || qzeros.scalar_type() != at::kInt)
    throw Error("GPTQ qweight and qzeros must be int32");
  const at::Tensor q = unpack(qweight, config.bits, 0);  // [in, out]
  at::Tensor zeros = unpack(qzeros, config.bits, 1);     // [groups, out]
  if (config.zero_offset) zeros = zeros.add(1);
  const int64_t in = q.size(0);
  at::Tensor groups;
  if (g_idx.defined()) {
    groups = g_idx.to(at::kLong);
  } else {
    const int64_t size = config.group_size < 0 ? in : config.group_size;
    groups = at::arange(in, q.options().dtype(at::kLong)).div(size, "floor");
  }
  // g_idx values were checked against the scales when the load was planned (load_plan.cpp).
  if (groups.numel() != in || zeros.size(1) != q.size(1) || scales.size(1) != q.size(1))
    throw Error("GPTQ tensors do not fit together (qweight, qzeros, scales, g_idx)");
  const at::Tensor levels = q.sub(zeros.index_select(0, groups)).to(scales.scalar_type());
  return levels.mul(scales.index_select(0, groups)).t();
}

std::shared_ptr<const PackedLinear> pack_gptq4(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales,
                                               const at::Tensor& g_idx, const GptqConfig& config) {
  if (config.bits != 4) throw Error("GPTQ: only 4-bit layers are packed for the decode kernels");
  if (qweight.scalar_type() != at::kInt || qzeros.scalar_type() != at::kInt) throw Error("GPTQ qweight and qzeros must be int32");
  at::Tensor zeros = unpack(qzeros, 4, 1);  // [groups, out]
  if (config.zero_offset) zeros = zeros.add(1);
  const std::int64_t out = qweight.size(1), in = qweight.size(0) * 8;
  const std::int64_t size = config.group_size < 0 ? in : config.group_size;
  const std::int64_t groups = (in + size - 1) / size;
  if (zeros.size(0) != groups || scales.size(0) != groups || zeros.size(1) != out || scales.size(1) != out)
    throw Error("GPTQ tensors do not fit together (qweight, qzeros, scales)");
  auto p = std::make_shared<PackedLinear>();
  p->out = out;
  p->in = in;
  // Word (k, o) holds inputs 8k … 8k+7 of output o, the first in the lowest bits: four bytes of row o's
  // codes, the even input of each pair in the high nibble. Loops, not tensor ops: a load repacks every
  // layer once, and the words are read in order.
  const at::Tensor words = qweight.contiguous();
  const auto* w = reinterpret_cast<const std::uint32_t*>(words.data_ptr<std::int32_t>());
  p->codes = at::empty({out, in / 2}, at::TensorOptions().dtype(at::kByte));
  auto* codes = p->codes.data_ptr<std::uint8_t>();
  const std::int64_t row = in / 2;
  for (std::int64_t k = 0; k < in / 8; ++k)
    for (std::int64_t o = 0; o < out; ++o) {
      const std::uint32_t v = w[k * out + o];
      std::uint8_t* dst = codes + o * row + 4 * k;
      for (int b = 0; b < 4; ++b) dst[b] = static_cast<std::uint8_t>(((v >> (8 * b)) & 0xF) << 4 | ((v >> (8 * b + 4)) & 0xF));
    }
  const at::Tensor natural = at::arange(in, at::TensorOptions().dtype(at::kLong)).div(size, "floor");
  if (g_idx.defined()) {
    const at::Tensor g = g_idx.to(at::kLong);
    if (!at::equal(g, natural)) {
      // Act order: columns sorted by group, each group must then be the group_size columns of a block;
      // each row's codes are permuted in place through a copy of the row.
      const at::Tensor order = std::get<1>(g.sort(/*stable=*/true, 0, false)).contiguous();
      if (!at::equal(g.index_select(0, order), natural)) return nullptr;
      const auto* from = order.data_ptr<std::int64_t>();
      std::vector<std::uint8_t> copy(static_cast<std::size_t>(row));
      const auto nibble = [&](std::int64_t i) { return i % 2 == 0 ? copy[i / 2] >> 4 : copy[i / 2] & 0xF; };
      for (std::int64_t o = 0; o < out; ++o) {
        std::uint8_t* r = codes + o * row;
        std::copy(r, r + row, copy.begin());
        for (std::int64_t j = 0; j < in; j += 2) r[j / 2] = static_cast<std::uint8_t>(nibble(from[j]) << 4 | nibble(from[j + 1]));
      }
      p->columns = order;
    }
  }
  // (q − zero)·scale = q·scale + (−zero·scale), per output row and group.
  const at::Tensor s = scales.to(at::kFloat).t().contiguous();  // [out, groups]
  p->scale = s.reshape({-1});
  p->offset = zeros.t().to(at::kFloat).mul(s).neg().reshape({-1}).contiguous();
  p->layout = {kernels::integer4_table(), static_cast<std::size_t>(size), p->scale.data_ptr<float>(), p->offset.data_ptr<float>(),
               static_cast<std::size_t>(groups)};
  return p;
}

}  // namespace devicemap
