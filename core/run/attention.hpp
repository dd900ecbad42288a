#pragma once
// Internal to the running layer (includes ATen). Scaled dot-product attention over cached keys, with
// grouped-query heads (each key/value head serves num_heads / kv_heads query heads, as transformers'
// repeat_kv) computed without copying the keys, a causal mask, and an optional sliding window.
#include <ATen/ATen.h>

#include <cstdint>
#include <limits>
#include <optional>

namespace devicemap {

// q: [heads, new, head_dim]; k, v: [kv_heads, past + new, head_dim]. Returns [new, heads * head_dim].
// Scores are scaled in the compute dtype and normalised in float32, as transformers' eager attention.
inline at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, std::int64_t past,
                            double scale, std::optional<std::int64_t> sliding_window = std::nullopt) {
  const std::int64_t heads = q.size(0), n = q.size(1), dim = q.size(2);
  const std::int64_t kv_heads = k.size(0), total = k.size(1), group = heads / kv_heads;
  // Query heads h = g * group + r all read kv head g: stack a group's queries as rows.
  const at::Tensor grouped = q.reshape({kv_heads, group * n, dim});
  at::Tensor scores = at::matmul(grouped, k.transpose(1, 2)).mul(scale).to(at::kFloat).view({kv_heads, group, n, total});
  if (n > 1 || sliding_window) {
    const auto index = at::TensorOptions().dtype(at::kLong).device(q.device());
    const at::Tensor query_pos = at::arange(past, past + n, index).unsqueeze(1);
    const at::Tensor key_pos = at::arange(total, index).unsqueeze(0);
    at::Tensor blocked = key_pos.gt(query_pos);
    if (sliding_window) blocked = blocked.logical_or(key_pos.le(query_pos - *sliding_window));
    scores.masked_fill_(blocked, -std::numeric_limits<float>::infinity());
  }
  const at::Tensor probs = at::softmax(scores, -1).to(q.scalar_type()).view({kv_heads, group * n, total});
  return at::matmul(probs, v).view({heads, n, dim}).transpose(0, 1).reshape({n, heads * dim});
}

}  // namespace devicemap
