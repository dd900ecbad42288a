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

std::shared_ptr<const PackedLinear> pack_gptq4(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales,
                                               const at::Tensor& g_idx, const GptqConfig& config) {
  if (config.bits != 4) throw Error("GPTQ: only 4-bit layers are packed for the decode kernels");
  if (qweight.scalar_type() != at::kInt || qzeros.scalar_type() != at::kInt) throw Error("GPTQ qweight and qzeros must be int32");
  at::Tensor q = unpack(qweight, 4, 0).t();  // [out, in]
  at::Tensor zeros = unpack(qzeros, 4, 1);   // [groups, out]
  if (config.zero_offset) zeros = zeros.add(1);
  const std::int64_t out = q.size(0), in = q.size(1);
  const std::int64_t size = config.group_size < 0 ? in : config.group_size;
  const std::int64_t groups = (in + size - 1) / size;
  if (zeros.size(0) != groups || scales.size(0) != groups || zeros.size(1) != out || scales.size(1) != out)
    throw Error("GPTQ tensors do not fit together (qweight, qzeros, scales)");
  auto p = std::make_shared<PackedLinear>();
  p->out = out;
  p->in = in;
  const at::Tensor natural = at::arange(in, at::TensorOptions().dtype(at::kLong)).div(size, "floor");
  if (g_idx.defined()) {
    const at::Tensor g = g_idx.to(at::kLong);
    if (!at::equal(g, natural)) {
      // Act order: sorted by group, each group must be the group_size columns a block covers.
      const at::Tensor order = std::get<1>(g.sort(/*stable=*/true, 0, false));
      if (!at::equal(g.index_select(0, order), natural)) return nullptr;
      q = q.index_select(1, order);
      p->columns = order.contiguous();
    }
  }
  const at::Tensor even = q.slice(1, 0, in, 2), odd = q.slice(1, 1, in, 2);
  p->codes = even.bitwise_left_shift(4).bitwise_or(odd).to(at::kByte).contiguous();
  // (q − zero)·scale = q·scale + (−zero·scale), per output row and group.
  const at::Tensor s = scales.to(at::kFloat).t().contiguous();  // [out, groups]
  p->scale = s.reshape({-1});
  p->offset = zeros.t().to(at::kFloat).mul(s).neg().reshape({-1}).contiguous();
  p->layout = {kernels::integer4_table(), static_cast<std::size_t>(size), p->scale.data_ptr<float>(), p->offset.data_ptr<float>(),
               static_cast<std::size_t>(groups)};
  return p;
}

}  // namespace devicemap
