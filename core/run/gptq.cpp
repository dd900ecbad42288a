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

namespace {

// Rows of 4-bit codes [out, in/2] (the even input of each pair in the high nibble) from the values the
// words [in·bits/32, out] hold, after `value`: word (k, o) holds inputs per·k … per·k + per − 1 of
// output o, the first in the lowest bits. Loops, not tensor ops: a load repacks every layer once, and
// the words are read in order.
template <class Value>
at::Tensor code_rows(const std::uint32_t* w, std::int64_t words, std::int64_t out, int bits, Value value) {
  const int per = 32 / bits;
  const std::uint32_t mask = (1u << bits) - 1;
  const std::int64_t in = words * per, row = in / 2;
  at::Tensor codes = at::empty({out, row}, at::TensorOptions().dtype(at::kByte));
  auto* dst = codes.data_ptr<std::uint8_t>();
  for (std::int64_t k = 0; k < words; ++k)
    for (std::int64_t o = 0; o < out; ++o) {
      const std::uint32_t v = w[k * out + o];
      std::uint8_t* d = dst + o * row + k * per / 2;
      for (int j = 0; j < per; j += 2)
        d[j / 2] = static_cast<std::uint8_t>(value((v >> (bits * j)) & mask) << 4 | value((v >> (bits * (j + 1))) & mask));
    }
  return codes;
}

// Act order: each row's codes permuted in place (through a copy of the row) so that codes' column j is
// input column from[j].
void gather_columns(at::Tensor& codes, const std::int64_t* from) {
  const std::int64_t out = codes.size(0), row = codes.size(1), in = row * 2;
  std::vector<std::uint8_t> copy(static_cast<std::size_t>(row));
  const auto nibble = [&](std::int64_t i) { return i % 2 == 0 ? copy[i / 2] >> 4 : copy[i / 2] & 0xF; };
  auto* codes_data = codes.data_ptr<std::uint8_t>();
  for (std::int64_t o = 0; o < out; ++o) {
    std::uint8_t* r = codes_data + o * row;
    std::copy(r, r + row, copy.begin());
    for (std::int64_t j = 0; j < in; j += 2) r[j / 2] = static_cast<std::uint8_t>(nibble(from[j]) << 4 | nibble(from[j + 1]));
  }
}

std::shared_ptr<PackedLinear> plane(at::Tensor codes, at::Tensor scale, at::Tensor offset, std::int64_t out, std::int64_t in,
                                    std::int64_t size, std::int64_t groups, const at::Tensor& columns) {
  auto p = std::make_shared<PackedLinear>();
  p->out = out;
  p->in = in;
  p->codes = std::move(codes);
  p->scale = std::move(scale);
  p->offset = std::move(offset);
  p->columns = columns;
  p->layout = {kernels::integer4_table(), static_cast<std::size_t>(size), p->scale.data_ptr<float>(),
               p->offset.defined() ? p->offset.data_ptr<float>() : nullptr, static_cast<std::size_t>(groups)};
  return p;
}

}  // namespace

std::shared_ptr<const PackedLinear> pack_gptq(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales,
                                              const at::Tensor& g_idx, const GptqConfig& config) {
  const int bits = config.bits;
  if (bits != 2 && bits != 4 && bits != 8) throw Error("GPTQ: only 2-, 4- and 8-bit layers are packed for the decode kernels");
  if (qweight.scalar_type() != at::kInt || qzeros.scalar_type() != at::kInt) throw Error("GPTQ qweight and qzeros must be int32");
  at::Tensor zeros = unpack(qzeros, bits, 1);  // [groups, out]
  if (config.zero_offset) zeros = zeros.add(1);
  const std::int64_t out = qweight.size(1), in = qweight.size(0) * (32 / bits);
  const std::int64_t size = config.group_size < 0 ? in : config.group_size;
  const std::int64_t groups = (in + size - 1) / size;
  if (zeros.size(0) != groups || scales.size(0) != groups || zeros.size(1) != out || scales.size(1) != out)
    throw Error("GPTQ tensors do not fit together (qweight, qzeros, scales)");
  const at::Tensor words_tensor = qweight.contiguous();
  const auto* words = reinterpret_cast<const std::uint32_t*>(words_tensor.data_ptr<std::int32_t>());
  // 2 and 4 bits: one plane of codes (2-bit values held as 4-bit codes, twice their stored bytes: the
  // kernels read nibbles). 8 bits: q = 16·high + low, two planes of nibbles, as many bytes as stored.
  const auto identity = [](std::uint32_t q) { return q; };
  at::Tensor high = bits == 8 ? code_rows(words, qweight.size(0), out, bits, [](std::uint32_t q) { return q >> 4; })
                              : code_rows(words, qweight.size(0), out, bits, identity);
  at::Tensor low = bits == 8 ? code_rows(words, qweight.size(0), out, bits, [](std::uint32_t q) { return q & 0xF; }) : at::Tensor();
  at::Tensor columns;
  if (g_idx.defined()) {
    const at::Tensor g = g_idx.to(at::kLong);
    const at::Tensor natural = at::arange(in, at::TensorOptions().dtype(at::kLong)).div(size, "floor");
    if (!at::equal(g, natural)) {
      // Act order: columns sorted by group; each group must then be the group_size columns of a block.
      const at::Tensor order = std::get<1>(g.sort(/*stable=*/true, 0, false)).contiguous();
      if (!at::equal(g.index_select(0, order), natural)) return nullptr;
      gather_columns(high, order.data_ptr<std::int64_t>());
      if (low.defined()) gather_columns(low, order.data_ptr<std::int64_t>());
      columns = order;
    }
  }
  // (q − zero)·scale = q·scale + (−zero·scale), per output row and group; with two planes,
  // 16·high·scale + low·scale − zero·scale.
  const at::Tensor s = scales.to(at::kFloat).t().contiguous();  // [out, groups]
  const at::Tensor offset = zeros.t().to(at::kFloat).mul(s).neg().reshape({-1}).contiguous();
  if (bits != 8) return plane(high, s.reshape({-1}), offset, out, in, size, groups, columns);
  auto p = plane(high, s.mul(16.0f).reshape({-1}).contiguous(), offset, out, in, size, groups, columns);
  p->low = plane(low, s.reshape({-1}), at::Tensor(), out, in, size, groups, columns);
  return p;
}

}  // namespace devicemap
