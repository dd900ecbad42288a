// Per-target part shared by the kernels (Highway's -inl convention: re-included once per target by
// foreach_target.h, hence the toggling guard instead of #pragma once): a vector of float32 from weights
// or cache entries in their stored dtype, converted in registers.
#if defined(DEVICEMAP_KERNELS_LOAD_F32_INL_) == defined(HWY_TARGET_TOGGLE)
#ifdef DEVICEMAP_KERNELS_LOAD_F32_INL_
#undef DEVICEMAP_KERNELS_LOAD_F32_INL_
#else
#define DEVICEMAP_KERNELS_LOAD_F32_INL_
#endif

#include <hwy/highway.h>

#include <type_traits>

HWY_BEFORE_NAMESPACE();
namespace devicemap::kernels {
namespace HWY_NAMESPACE {

using DF = hwy::HWY_NAMESPACE::ScalableTag<float>;

// T is float, hwy::bfloat16_t or hwy::float16_t; p need not be aligned.
template <class T>
HWY_INLINE hwy::HWY_NAMESPACE::Vec<DF> LoadF32(DF df, const T* p) {
  namespace hn = hwy::HWY_NAMESPACE;
  if constexpr (std::is_same_v<T, float>) {
    return hn::LoadU(df, p);
  } else if constexpr (std::is_same_v<T, std::int8_t>) {  // int8 → int32 → float32, exact
    const hn::Rebind<std::int8_t, DF> d8;
    const hn::Rebind<std::int32_t, DF> d32;
    return hn::ConvertTo(df, hn::PromoteTo(d32, hn::LoadU(d8, p)));
  } else {
    const hn::Rebind<T, DF> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, p));
  }
}

// Each lane rounded to the nearest bfloat16 (ties to even), as a float; finite inputs only (a NaN may
// turn into an infinity). Highway 1.0.3's DemoteTo to bfloat16 truncates, so stores round with this first.
HWY_INLINE hwy::HWY_NAMESPACE::Vec<DF> RoundBF16(DF df, hwy::HWY_NAMESPACE::Vec<DF> v) {
  namespace hn = hwy::HWY_NAMESPACE;
  const hn::RebindToUnsigned<DF> du;
  auto bits = hn::BitCast(du, v);
  const auto lsb = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1u));
  bits = hn::And(hn::Add(bits, hn::Add(hn::Set(du, 0x7FFFu), lsb)), hn::Set(du, 0xFFFF0000u));
  return hn::BitCast(df, bits);
}

}  // namespace HWY_NAMESPACE
}  // namespace devicemap::kernels
HWY_AFTER_NAMESPACE();

#endif  // DEVICEMAP_KERNELS_LOAD_F32_INL_
