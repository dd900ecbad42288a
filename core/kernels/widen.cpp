#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/widen.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/highway.h>

#include "kernels/load_f32-inl.hpp"

#include <cstdint>
#include <cstring>

#include "kernels/widen.hpp"

HWY_BEFORE_NAMESPACE();
namespace devicemap::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class T>
void WidenTyped(const T* src, float* dst, std::size_t n) {
  const DF df;
  const std::size_t lanes = hn::Lanes(df);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(LoadF32(df, src + i), df, dst + i);
  if (i < n) {  // the tail through zero-padded copies
    alignas(64) T in[64] = {};
    alignas(64) float out[64];
    std::memcpy(static_cast<void*>(in), src + i, (n - i) * sizeof(T));
    hn::Store(LoadF32(df, in), df, out);
    std::memcpy(dst + i, out, (n - i) * sizeof(float));
  }
}

// One int8 row times its scale.
void WidenScaledRow(const std::int8_t* src, float scale, float* dst, std::size_t n) {
  const DF df;
  const std::size_t lanes = hn::Lanes(df);
  const auto s = hn::Set(df, scale);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(hn::Mul(LoadF32(df, src + i), s), df, dst + i);
  for (; i < n; ++i) dst[i] = float(src[i]) * scale;
}

// type: 0 float32, 1 bfloat16, 2 float16.
void Widen(const void* src, int type, float* dst, std::size_t n) {
  switch (type) {
    case 0: return WidenTyped(static_cast<const float*>(src), dst, n);
    case 1: return WidenTyped(static_cast<const hwy::bfloat16_t*>(src), dst, n);
    default: return WidenTyped(static_cast<const hwy::float16_t*>(src), dst, n);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace devicemap::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>

#include "kernels/element_type.hpp"
#include "kernels/thread_pool.hpp"

namespace devicemap::kernels {

HWY_EXPORT(Widen);
HWY_EXPORT(WidenScaledRow);

void widen_to_f32(const void* src, DType dtype, float* dst, std::size_t n, ThreadPool& pool) {
  const int type = element_type(dtype, "widen_to_f32");
  const std::size_t elem = element_bytes(dtype);
  // Pieces of 1 Mi elements: long sequential reads, and enough of them to share out.
  constexpr std::size_t kPiece = std::size_t{1} << 20;
  auto* const widen = &HWY_DYNAMIC_DISPATCH(Widen);
  pool.run((n + kPiece - 1) / kPiece, [&](std::size_t p) {
    const std::size_t first = p * kPiece, count = std::min(kPiece, n - first);
    widen(static_cast<const std::byte*>(src) + first * elem, type, dst + first, count);
  });
}

void widen_to_f32(const void* src, DType dtype, float* dst, std::size_t n) {
  widen_to_f32(src, dtype, dst, n, ThreadPool::shared());
}

void widen_int8_rows(const std::int8_t* src, const float* row_scale, std::size_t rows, std::size_t cols, float* dst, ThreadPool& pool) {
  if (rows == 0 || cols == 0) return;
  // Pieces of about 1 Mi elements, whole rows each.
  const std::size_t per = std::max<std::size_t>(1, (std::size_t{1} << 20) / cols);
  auto* const widen = &HWY_DYNAMIC_DISPATCH(WidenScaledRow);
  pool.run((rows + per - 1) / per, [&](std::size_t p) {
    for (std::size_t r = p * per; r < std::min(rows, (p + 1) * per); ++r) widen(src + r * cols, row_scale[r], dst + r * cols, cols);
  });
}

}  // namespace devicemap::kernels
#endif  // HWY_ONCE
