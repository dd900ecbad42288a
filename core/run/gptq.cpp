#include "run/gptq.hpp"

#include <ATen/ATen.h>

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

}  // namespace devicemap
