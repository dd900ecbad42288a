#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/token_ops.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

#include "kernels/load_f32-inl.hpp"

#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/element_type.hpp"
#include "kernels/token_ops.hpp"

HWY_BEFORE_NAMESPACE();
namespace devicemap::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using V = hn::Vec<DF>;

// A value as the dtype T holds it: rounded to bfloat16 for T = bfloat16, itself for float.
template <class T>
HWY_INLINE V Held(DF df, V v) {
  if constexpr (std::is_same_v<T, float>) {
    (void)df;
    return v;
  } else {
    return RoundBF16(df, v);
  }
}
template <class T>
HWY_INLINE float Held(float v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else return round_to_bf16(v);
}

// Stores v (already held in T's precision) as T.
template <class T>
HWY_INLINE void Store(DF df, V v, T* p) {
  if constexpr (std::is_same_v<T, float>) {
    hn::StoreU(v, df, p);
  } else {
    const hn::Rebind<T, DF> dh;
    hn::StoreU(hn::DemoteTo(dh, v), dh, p);  // exact: v is a bfloat16 value already
  }
}
template <class T>
HWY_INLINE float ToFloat(T v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else return hwy::F32FromBF16(v);
}
template <class T>
HWY_INLINE T FromHeld(float v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else {
    std::uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    T out;
    out.bits = static_cast<std::uint16_t>(bits >> 16);
    return out;
  }
}

// Element-wise loop: f(df, vector of each input) over full vectors, g(scalar inputs) over the tail.
template <class T, class FV, class FS>
HWY_INLINE void Map2(const T* a, const T* b, T* out, std::size_t n, FV fv, FS fs) {
  const DF df;
  const std::size_t lanes = hn::Lanes(df);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) Store(df, fv(df, LoadF32(df, a + i), LoadF32(df, b + i)), out + i);
  for (; i < n; ++i) out[i] = FromHeld<T>(fs(ToFloat(a[i]), ToFloat(b[i])));
}

template <class T>
void RmsNormTyped(const T* x, const T* weight, T* out, std::size_t rows, std::size_t cols, float eps, bool plus_one) {
  const DF df;
  const std::size_t lanes = hn::Lanes(df);
  for (std::size_t r = 0; r < rows; ++r) {
    const T* row = x + r * cols;
    auto s0 = hn::Zero(df), s1 = hn::Zero(df);
    std::size_t c = 0;
    for (; c + 2 * lanes <= cols; c += 2 * lanes) {
      const V a = LoadF32(df, row + c), b = LoadF32(df, row + c + lanes);
      s0 = hn::MulAdd(a, a, s0);
      s1 = hn::MulAdd(b, b, s1);
    }
    for (; c + lanes <= cols; c += lanes) {
      const V a = LoadF32(df, row + c);
      s0 = hn::MulAdd(a, a, s0);
    }
    float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(s0, s1)));
    for (; c < cols; ++c) sum += ToFloat(row[c]) * ToFloat(row[c]);
    const float inv = 1.0f / std::sqrt(sum / static_cast<float>(cols) + eps);
    const V vinv = hn::Set(df, inv);
    if (plus_one)  // Gemma: the float32 normalised row times (1 + weight), rounded once
      Map2(row, weight, out + r * cols, cols,
           [&](DF d, V v, V w) { return Held<T>(d, hn::Mul(hn::Mul(v, vinv), hn::Add(hn::Set(d, 1.0f), w))); },
           [&](float v, float w) { return Held<T>((v * inv) * (1.0f + w)); });
    else  // Llama: the normalised row rounded, then times the weight
      Map2(row, weight, out + r * cols, cols,
           [&](DF d, V v, V w) { return Held<T>(d, hn::Mul(w, Held<T>(d, hn::Mul(v, vinv)))); },
           [&](float v, float w) { return Held<T>(w * Held<T>(v * inv)); });
  }
}

template <class T>
void RotaryTyped(T* x, std::size_t positions, std::size_t heads, std::size_t dim, const float* cos, const float* sin) {
  const DF df;
  const std::size_t lanes = hn::Lanes(df), half = dim / 2;
  for (std::size_t p = 0; p < positions; ++p) {
    const float* c = cos + p * dim;
    const float* s = sin + p * dim;
    for (std::size_t h = 0; h < heads; ++h) {
      T* v = x + (p * heads + h) * dim;
      std::size_t i = 0;
      // out[i] = x[i]·cos[i] − x[i+half]·sin[i]; out[i+half] = x[i+half]·cos[i+half] + x[i]·sin[i+half].
      for (; i + lanes <= half; i += lanes) {
        const V a = LoadF32(df, v + i), b = LoadF32(df, v + half + i);
        const V c0 = Held<T>(df, hn::LoadU(df, c + i)), c1 = Held<T>(df, hn::LoadU(df, c + half + i));
        const V s0 = Held<T>(df, hn::LoadU(df, s + i)), s1 = Held<T>(df, hn::LoadU(df, s + half + i));
        const V lo = Held<T>(df, hn::Add(Held<T>(df, hn::Mul(a, c0)), Held<T>(df, hn::Mul(hn::Neg(b), s0))));
        const V hi = Held<T>(df, hn::Add(Held<T>(df, hn::Mul(b, c1)), Held<T>(df, hn::Mul(a, s1))));
        Store(df, lo, v + i);
        Store(df, hi, v + half + i);
      }
      for (; i < half; ++i) {
        const float a = ToFloat(v[i]), b = ToFloat(v[half + i]);
        const float lo = Held<T>(Held<T>(a * Held<T>(c[i])) + Held<T>(-b * Held<T>(s[i])));
        const float hi = Held<T>(Held<T>(b * Held<T>(c[half + i])) + Held<T>(a * Held<T>(s[half + i])));
        v[i] = FromHeld<T>(lo);
        v[half + i] = FromHeld<T>(hi);
      }
    }
  }
}

template <class T>
void SiluMulTyped(const T* gate, const T* up, T* out, std::size_t n) {
  Map2(gate, up, out, n,
       [](DF d, V g, V u) {
         // silu(g) = g / (1 + e^-g), as LibTorch computes it
         const V silu = Held<T>(d, hn::Div(g, hn::Add(hn::Set(d, 1.0f), hn::Exp(d, hn::Neg(g)))));
         return Held<T>(d, hn::Mul(silu, u));
       },
       [](float g, float u) { return Held<T>(Held<T>(g / (1.0f + std::exp(-g))) * u); });
}

// gelu_pytorch_tanh(g) · up: 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³))) as LibTorch's tanh GELU, rounded
// before the multiply.
template <class T>
void GeluTanhMulTyped(const T* gate, const T* up, T* out, std::size_t n) {
  constexpr float kBeta = 0.7978845608028654f, kKappa = 0.044715f;
  Map2(gate, up, out, n,
       [](DF d, V g, V u) {
         const V cube = hn::Mul(hn::Mul(g, g), g);
         const V inner = hn::Mul(hn::Set(d, kBeta), hn::Add(g, hn::Mul(hn::Set(d, kKappa), cube)));
         const V gelu = hn::Mul(hn::Mul(hn::Set(d, 0.5f), g), hn::Add(hn::Set(d, 1.0f), hn::Tanh(d, inner)));
         return Held<T>(d, hn::Mul(Held<T>(d, gelu), u));
       },
       [](float g, float u) {
         const float gelu = 0.5f * g * (1.0f + std::tanh(kBeta * (g + kKappa * (g * g * g))));
         return Held<T>(Held<T>(gelu) * u);
       });
}

template <class T>
void AddTyped(T* h, const T* y, std::size_t n) {
  Map2(static_cast<const T*>(h), y, h, n, [](DF d, V a, V b) { return Held<T>(d, hn::Add(a, b)); },
       [](float a, float b) { return Held<T>(a + b); });
}

// type: 0 float32, 1 bfloat16 (the callers check).
void RmsNorm(const void* x, const void* w, void* out, int type, std::size_t rows, std::size_t cols, float eps, bool plus_one) {
  if (type == 0)
    return RmsNormTyped(static_cast<const float*>(x), static_cast<const float*>(w), static_cast<float*>(out), rows, cols, eps, plus_one);
  RmsNormTyped(static_cast<const hwy::bfloat16_t*>(x), static_cast<const hwy::bfloat16_t*>(w), static_cast<hwy::bfloat16_t*>(out),
               rows, cols, eps, plus_one);
}
void GeluTanhMul(const void* g, const void* u, void* out, int type, std::size_t n) {
  if (type == 0) return GeluTanhMulTyped(static_cast<const float*>(g), static_cast<const float*>(u), static_cast<float*>(out), n);
  GeluTanhMulTyped(static_cast<const hwy::bfloat16_t*>(g), static_cast<const hwy::bfloat16_t*>(u), static_cast<hwy::bfloat16_t*>(out), n);
}
void Rotary(void* x, int type, std::size_t positions, std::size_t heads, std::size_t dim, const float* cos, const float* sin) {
  if (type == 0) return RotaryTyped(static_cast<float*>(x), positions, heads, dim, cos, sin);
  RotaryTyped(static_cast<hwy::bfloat16_t*>(x), positions, heads, dim, cos, sin);
}
void SiluMul(const void* g, const void* u, void* out, int type, std::size_t n) {
  if (type == 0) return SiluMulTyped(static_cast<const float*>(g), static_cast<const float*>(u), static_cast<float*>(out), n);
  SiluMulTyped(static_cast<const hwy::bfloat16_t*>(g), static_cast<const hwy::bfloat16_t*>(u), static_cast<hwy::bfloat16_t*>(out), n);
}
void Add(void* h, const void* y, int type, std::size_t n) {
  if (type == 0) return AddTyped(static_cast<float*>(h), static_cast<const float*>(y), n);
  AddTyped(static_cast<hwy::bfloat16_t*>(h), static_cast<const hwy::bfloat16_t*>(y), n);
}

}  // namespace HWY_NAMESPACE
}  // namespace devicemap::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <stdexcept>
#include <string>

namespace devicemap::kernels {

HWY_EXPORT(RmsNorm);
HWY_EXPORT(Rotary);
HWY_EXPORT(SiluMul);
HWY_EXPORT(GeluTanhMul);
HWY_EXPORT(Add);

namespace {

int checked(DType dtype, const char* what) {
  if (!token_ops_support(dtype)) throw std::invalid_argument(std::string(what) + ": dtype " + std::string(torch_name(dtype)) + " has no kernel");
  return dtype == DType::F32 ? 0 : 1;
}

}  // namespace

bool token_ops_support(DType dtype) { return dtype == DType::F32 || dtype == DType::BF16; }

void rms_norm(const void* x, const void* weight, void* out, DType dtype, std::size_t rows, std::size_t cols, float eps,
              NormWeight style) {
  HWY_DYNAMIC_DISPATCH(RmsNorm)(x, weight, out, checked(dtype, "rms_norm"), rows, cols, eps, style == NormWeight::PlusOne);
}

void gelu_tanh_mul(const void* gate, const void* up, void* out, DType dtype, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(GeluTanhMul)(gate, up, out, checked(dtype, "gelu_tanh_mul"), n);
}

void rotary(void* x, DType dtype, std::size_t positions, std::size_t heads, std::size_t dim, const float* cos, const float* sin) {
  if (dim % 2 != 0) throw std::invalid_argument("rotary: odd head dim");
  HWY_DYNAMIC_DISPATCH(Rotary)(x, checked(dtype, "rotary"), positions, heads, dim, cos, sin);
}

void silu_mul(const void* gate, const void* up, void* out, DType dtype, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(SiluMul)(gate, up, out, checked(dtype, "silu_mul"), n);
}

void add_to(void* h, const void* y, DType dtype, std::size_t n) { HWY_DYNAMIC_DISPATCH(Add)(h, y, checked(dtype, "add_to"), n); }

}  // namespace devicemap::kernels
#endif
