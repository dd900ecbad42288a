#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/attention.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/highway.h>

#include "kernels/load_f32-inl.hpp"

#include "kernels/element_type.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/attention.hpp"

HWY_BEFORE_NAMESPACE();
namespace devicemap::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Rounds to the nearest bfloat16 (ties to even), as a bfloat16 tensor op stores its result.
inline float RoundBF16(float f) { return round_to_bf16(f); }

// Sum over the first `n` elements of a · b, with the tail read through zero-padded copies.
template <class T>
HWY_INLINE float Dot(DF df, const float* a, const T* b, std::size_t n) {
  const std::size_t lanes = hn::Lanes(df);
  auto acc0 = hn::Zero(df), acc1 = hn::Zero(df);
  std::size_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    acc0 = hn::MulAdd(hn::LoadU(df, a + i), LoadF32(df, b + i), acc0);
    acc1 = hn::MulAdd(hn::LoadU(df, a + i + lanes), LoadF32(df, b + i + lanes), acc1);
  }
  for (; i + lanes <= n; i += lanes) acc0 = hn::MulAdd(hn::LoadU(df, a + i), LoadF32(df, b + i), acc0);
  float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1)));
  for (; i < n; ++i) {
    if constexpr (std::is_same_v<T, float>) {
      sum += a[i] * b[i];
    } else if constexpr (std::is_same_v<T, hwy::bfloat16_t>) {
      sum += a[i] * hwy::F32FromBF16(b[i]);
    } else {
      alignas(64) T one[64] = {};
      one[0] = b[i];
      sum += a[i] * hn::GetLane(LoadF32(df, one));
    }
  }
  return sum;
}

// out[0, n) += p · row[0, n)
template <class T>
HWY_INLINE void Axpy(DF df, float p, const T* row, float* out, std::size_t n) {
  const std::size_t lanes = hn::Lanes(df);
  const auto pv = hn::Set(df, p);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(hn::MulAdd(pv, LoadF32(df, row + i), hn::LoadU(df, out + i)), df, out + i);
  for (; i < n; ++i) {
    if constexpr (std::is_same_v<T, float>) {
      out[i] += p * row[i];
    } else if constexpr (std::is_same_v<T, hwy::bfloat16_t>) {
      out[i] += p * hwy::F32FromBF16(row[i]);
    } else {
      alignas(64) T one[64] = {};
      one[0] = row[i];
      out[i] += p * hn::GetLane(LoadF32(df, one));
    }
  }
}

template <class T>
void HeadTyped(const float* q, const T* keys, const T* values, std::size_t dim, std::size_t first, std::size_t end, float scale,
               float softcap, float* out) {
  const DF df;
  constexpr bool kRound = std::is_same_v<T, hwy::bfloat16_t>;
  thread_local std::vector<float> scores;
  scores.resize(end - first);
  float top = -INFINITY;
  for (std::size_t t = first; t < end; ++t) {
    float s = Dot(df, q, keys + t * dim, dim);
    if constexpr (kRound) s = RoundBF16(RoundBF16(s) * scale);
    else s *= scale;
    if (softcap > 0) {  // Gemma 2: cap · tanh(s / cap), each op rounded as the compute dtype holds it
      if constexpr (kRound) s = RoundBF16(RoundBF16(std::tanh(RoundBF16(s / softcap))) * softcap);
      else s = std::tanh(s / softcap) * softcap;
    }
    scores[t - first] = s;
    top = std::max(top, s);
  }
  float total = 0;
  for (float& s : scores) total += (s = std::exp(s - top));
  std::memset(out, 0, dim * sizeof(float));
  for (std::size_t t = first; t < end; ++t) {
    float p = scores[t - first] / total;
    if constexpr (kRound) p = RoundBF16(p);
    Axpy(df, p, values + t * dim, out, dim);
  }
}

// dtype: 0 float32, 1 bfloat16, 2 float16.
void AttendHead(const float* q, const void* keys, const void* values, int dtype, std::size_t dim, std::size_t first,
                std::size_t end, float scale, float softcap, float* out) {
  switch (dtype) {
    case 0: return HeadTyped(q, static_cast<const float*>(keys), static_cast<const float*>(values), dim, first, end, scale, softcap, out);
    case 1:
      return HeadTyped(q, static_cast<const hwy::bfloat16_t*>(keys), static_cast<const hwy::bfloat16_t*>(values), dim, first,
                       end, scale, softcap, out);
    default:
      return HeadTyped(q, static_cast<const hwy::float16_t*>(keys), static_cast<const hwy::float16_t*>(values), dim, first,
                       end, scale, softcap, out);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace devicemap::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <stdexcept>
#include <string>

#include "kernels/element_type.hpp"
#include "kernels/thread_pool.hpp"

namespace devicemap::kernels {

HWY_EXPORT(AttendHead);


void decode_attention(const float* q, const KvBuffer& keys, const KvBuffer& values, const AttentionShape& s, float* out,
                      ThreadPool& pool) {
  if (s.kv_heads == 0 || s.heads % s.kv_heads != 0) throw std::invalid_argument("decode_attention: heads must be a multiple of kv_heads");
  if (s.first >= s.end) throw std::invalid_argument("decode_attention: no position to attend");
  if (keys.dtype != values.dtype) throw std::invalid_argument("decode_attention: keys and values differ in dtype");
  const int dtype = element_type(keys.dtype, "decode_attention");
  const std::size_t group = s.heads / s.kv_heads, elem = element_bytes(keys.dtype);
  auto* const attend = &HWY_DYNAMIC_DISPATCH(AttendHead);
  pool.run(s.heads, [&](std::size_t h) {
    const std::size_t g = h / group;
    const auto* k = static_cast<const std::byte*>(keys.data) + g * keys.head_stride * elem;
    const auto* v = static_cast<const std::byte*>(values.data) + g * values.head_stride * elem;
    attend(q + h * s.head_dim, k, v, dtype, s.head_dim, s.first, s.end, s.scale, s.softcap, out + h * s.head_dim);
  });
}

void decode_attention(const float* q, const KvBuffer& keys, const KvBuffer& values, const AttentionShape& shape, float* out) {
  decode_attention(q, keys, values, shape, out, ThreadPool::shared());
}

}  // namespace devicemap::kernels
#endif  // HWY_ONCE
