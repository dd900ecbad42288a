#pragma once
// Attention of one new position over the KV cache, for the decode step: each query head against the
// keys and values of its key/value head (grouped-query attention, as transformers' repeat_kv), in the
// cache's own dtype, with the scores and softmax in float32. Heads are split across the thread pool.
// When the cache is bfloat16 the scores, the scaled scores and the probabilities are rounded to
// bfloat16 where transformers' eager attention rounds them (a bfloat16 matmul, a bfloat16 multiply, the
// softmax cast back), so a decode step follows the reference as closely as its summation order allows.
#include <cstddef>

#include "format/dtype.hpp"

namespace devicemap::kernels {

class ThreadPool;

// A cache buffer: head h, position t starts at data + h * head_stride + t * head_dim elements.
struct KvBuffer {
  const void* data = nullptr;
  DType dtype = DType::F32;  // F32, BF16 or F16
  std::size_t head_stride = 0;
};

struct AttentionShape {
  std::size_t heads = 0, kv_heads = 0, head_dim = 0;
  std::size_t first = 0, end = 0;  // the positions attended: [first, end) (a sliding window starts late)
  float scale = 1.0f;
  float softcap = 0.0f;  // > 0: scaled scores become softcap · tanh(score / softcap) (Gemma 2)
};

// q: [heads, head_dim] float32 (the new position's queries). out: [heads, head_dim] float32.
void decode_attention(const float* q, const KvBuffer& keys, const KvBuffer& values, const AttentionShape& shape, float* out,
                      ThreadPool& pool);
void decode_attention(const float* q, const KvBuffer& keys, const KvBuffer& values, const AttentionShape& shape, float* out);

}  // namespace devicemap::kernels
