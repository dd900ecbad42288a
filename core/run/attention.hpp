#pragma once
// Internal to the running layer (includes ATen). Scaled dot-product attention over cached keys, with
// grouped-query heads (each key/value head serves num_heads / kv_heads query heads, as transformers'
// repeat_kv) computed without copying the keys, a causal mask, an optional sliding window and soft-capping. One new
// position on the CPU (a decode step) goes through the decode kernel (kernels/attention.hpp), on the same
// thread pool as the decode products, instead of two batched BLAS products with their own threads.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>

#include "kernels/attention.hpp"
#include "kernels/matvec.hpp"
#include "run/decode_path.hpp"
#include "run/prompt_path.hpp"
#include "run/weights.hpp"

namespace devicemap {

// Whether the decode kernel takes this step: one query on the CPU, keys and values as the KV cache
// holds them (rows of head_dim elements, heads apart by a stride) in a dtype it reads.
inline bool decode_attention_takes(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (!decode_kernels_in_use() || !q.is_cpu() || !k.is_cpu() || !v.is_cpu() || q.size(1) != 1) return false;
  if (k.scalar_type() != v.scalar_type() || !kernels::supports(dtype_of(k.scalar_type()))) return false;
  const std::int64_t dim = k.size(2);
  return k.stride(2) == 1 && v.stride(2) == 1 && k.stride(1) == dim && v.stride(1) == dim && v.size(2) == dim;
}

inline at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, std::int64_t past, double scale,
                                   std::optional<std::int64_t> sliding_window, std::optional<double> softcap) {
  const std::int64_t heads = q.size(0), dim = q.size(2), total = k.size(1);
  const at::Tensor qf = q.to(at::kFloat).contiguous();
  at::Tensor out = at::empty({1, heads * dim}, qf.options());
  const DType dtype = dtype_of(k.scalar_type());
  kernels::AttentionShape shape;
  shape.heads = static_cast<std::size_t>(heads);
  shape.kv_heads = static_cast<std::size_t>(k.size(0));
  shape.head_dim = static_cast<std::size_t>(dim);
  // The query sits at position `past`; a window of W keeps the keys after past − W.
  shape.first = sliding_window ? static_cast<std::size_t>(std::max<std::int64_t>(0, past - *sliding_window + 1)) : 0;
  shape.end = static_cast<std::size_t>(total);
  shape.scale = static_cast<float>(scale);
  shape.softcap = softcap ? static_cast<float>(*softcap) : 0.0f;
  kernels::decode_attention(qf.data_ptr<float>(), {k.data_ptr(), dtype, static_cast<std::size_t>(k.stride(0))},
                            {v.data_ptr(), dtype, static_cast<std::size_t>(v.stride(0))}, shape, out.data_ptr<float>());
  return q.scalar_type() == at::kFloat ? out : out.to(q.scalar_type());
}

// a·b in a's dtype; bfloat16 on a CPU without fast bfloat16 products multiplied in float32 and rounded
// once, as a bfloat16 product accumulating in float32 does (run/prompt_path.hpp).
inline at::Tensor product(const at::Tensor& a, const at::Tensor& b) {
  if (a.is_cpu() && a.scalar_type() == at::kBFloat16 && bf16_products_widened())
    return at::matmul(a.to(at::kFloat), b.to(at::kFloat)).to(a.scalar_type());
  return at::matmul(a, b);
}

// q: [heads, new, head_dim]; k, v: [kv_heads, past + new, head_dim]. Returns [new, heads * head_dim].
// Scores are scaled (and soft-capped: Gemma 2) in the compute dtype and normalised in float32, as
// transformers' eager attention.
inline at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, std::int64_t past,
                            double scale, std::optional<std::int64_t> sliding_window = std::nullopt,
                            std::optional<double> softcap = std::nullopt) {
  if (decode_attention_takes(q, k, v)) return decode_attention(q, k, v, past, scale, sliding_window, softcap);
  const std::int64_t heads = q.size(0), n = q.size(1), dim = q.size(2);
  const std::int64_t kv_heads = k.size(0), total = k.size(1), group = heads / kv_heads;
  // Query heads h = g * group + r all read kv head g: stack a group's queries as rows.
  const at::Tensor grouped = q.reshape({kv_heads, group * n, dim});
  at::Tensor scaled = product(grouped, k.transpose(1, 2)).mul(scale);
  if (softcap) scaled = scaled.div(*softcap).tanh().mul(*softcap);
  at::Tensor scores = scaled.to(at::kFloat).view({kv_heads, group, n, total});
  if (n > 1 || sliding_window) {
    const auto index = at::TensorOptions().dtype(at::kLong).device(q.device());
    const at::Tensor query_pos = at::arange(past, past + n, index).unsqueeze(1);
    const at::Tensor key_pos = at::arange(total, index).unsqueeze(0);
    at::Tensor blocked = key_pos.gt(query_pos);
    if (sliding_window) blocked = blocked.logical_or(key_pos.le(query_pos - *sliding_window));
    scores.masked_fill_(blocked, -std::numeric_limits<float>::infinity());
  }
  const at::Tensor probs = at::softmax(scores, -1).to(q.scalar_type()).view({kv_heads, group * n, total});
  return product(probs, v).view({heads, n, dim}).transpose(0, 1).reshape({n, heads * dim});
}

}  // namespace devicemap
