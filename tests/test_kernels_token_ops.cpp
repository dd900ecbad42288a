// The element-wise decode kernels (RMSNorm, rotary embedding, SiLU·mul, residual add) against a reference
// written op by op from transformers' modules, with each bfloat16 rounding where a bfloat16 tensor op
// rounds: on every instruction set this machine runs, at float32 and bfloat16, for lengths that are
// not a multiple of any vector width. And bfloat16 rounding itself, on values worked by hand.
#include "testkit.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "kernels/element_type.hpp"
#include "kernels/matvec.hpp"
#include "kernels/token_ops.hpp"

using namespace devicemap;
using namespace devicemap::kernels;

namespace {

float from_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

// Values held in a dtype: the floats they stand for and their bytes.
struct Held {
  DType dtype;
  std::vector<float> values;
  std::vector<std::uint8_t> bytes;

  Held(DType d, const std::vector<float>& v) : dtype(d), values(v) {
    if (d == DType::BF16)
      for (auto& f : values) f = round_to_bf16(f);
    bytes.resize(values.size() * (d == DType::F32 ? 4 : 2));
    for (std::size_t i = 0; i < values.size(); ++i) {
      std::uint32_t b;
      std::memcpy(&b, &values[i], 4);
      if (d == DType::F32) std::memcpy(&bytes[i * 4], &b, 4);
      else {
        const auto h = static_cast<std::uint16_t>(b >> 16);
        std::memcpy(&bytes[i * 2], &h, 2);
      }
    }
  }
  void* data() { return bytes.data(); }
  float at(std::size_t i) const {
    std::uint32_t b = 0;
    if (dtype == DType::F32) std::memcpy(&b, &bytes[i * 4], 4);
    else {
      std::uint16_t h;
      std::memcpy(&h, &bytes[i * 2], 2);
      b = std::uint32_t{h} << 16;
    }
    return from_bits(b);
  }
};

std::vector<float> randoms(std::size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& f : v) f = dist(rng);
  return v;
}

// The reference rounds like the kernels claim to: r() after every op of a bfloat16 tensor.
struct Ref {
  DType dtype;
  float r(float f) const { return dtype == DType::BF16 ? round_to_bf16(f) : f; }
};

// Distance in units of the dtype's last place at `want`.
double ulps(float got, float want, DType dtype) {
  const double ulp = std::ldexp(1.0, std::ilogb(std::max(std::abs(want), 1e-30f)) - (dtype == DType::BF16 ? 7 : 23));
  return std::abs(double(got) - double(want)) / ulp;
}

}  // namespace

class TestKernelsTokenOps : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void cleanup() { restrict_targets(""); }

  void bfloat16_rounds_to_nearest_even() {
    QCOMPARE(round_to_bf16(1.0f), 1.0f);
    // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: the even one, 1, wins.
    QCOMPARE(round_to_bf16(1.0f + std::ldexp(1.0f, -8)), 1.0f);
    // 1 + 3·2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
    QCOMPARE(round_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 1.0f + std::ldexp(1.0f, -6));
    // Past halfway rounds up, short of it down (truncation would give 1 both times).
    QCOMPARE(round_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 1.0f + std::ldexp(1.0f, -7));
    QCOMPARE(round_to_bf16(1.0f + std::ldexp(1.0f, -9)), 1.0f);
    QCOMPARE(round_to_bf16(-(1.0f + 3 * std::ldexp(1.0f, -8))), -(1.0f + std::ldexp(1.0f, -6)));
    QVERIFY(std::isnan(round_to_bf16(std::nanf(""))));
  }

  void every_target_matches_the_reference() {
    std::mt19937 rng(3);
    for (const auto& target : runnable_targets()) {
      restrict_targets(target);
      for (DType dtype : {DType::F32, DType::BF16}) {
        const Ref ref{dtype};
        const double tol = dtype == DType::BF16 ? 1.0 : 64.0;  // ulps of the dtype
        for (std::size_t cols : {std::size_t{1}, std::size_t{7}, std::size_t{64}, std::size_t{77}, std::size_t{2051}}) {
          const std::size_t rows = 3;
          const std::string what = target + " " + std::string(torch_name(dtype)) + " cols " + std::to_string(cols);
          // RMSNorm: x / sqrt(mean(x²) + eps) in float32, cast to the dtype, times the weight.
          Held x(dtype, randoms(rows * cols, rng, 2.0f)), w(dtype, randoms(cols, rng)), out(dtype, std::vector<float>(rows * cols));
          rms_norm(x.data(), w.data(), out.data(), dtype, rows, cols, 1e-5f);
          for (std::size_t r = 0; r < rows; ++r) {
            double sum = 0;
            for (std::size_t c = 0; c < cols; ++c) sum += double(x.values[r * cols + c]) * x.values[r * cols + c];
            const float inv = float(1.0 / std::sqrt(sum / double(cols) + 1e-5));
            for (std::size_t c = 0; c < cols; ++c) {
              const float want = ref.r(w.values[c] * ref.r(x.values[r * cols + c] * inv));
              // The float32 sum's order may move a bfloat16 value by one place.
              QVERIFY2(ulps(out.at(r * cols + c), want, dtype) <= tol, (what + " rms_norm").c_str());
            }
          }
          // GemmaRMSNorm: the float32 row times (1 + weight), rounded once.
          rms_norm(x.data(), w.data(), out.data(), dtype, rows, cols, 1e-5f, NormWeight::PlusOne);
          for (std::size_t r = 0; r < rows; ++r) {
            double sum = 0;
            for (std::size_t c = 0; c < cols; ++c) sum += double(x.values[r * cols + c]) * x.values[r * cols + c];
            const float inv = float(1.0 / std::sqrt(sum / double(cols) + 1e-5));
            for (std::size_t c = 0; c < cols; ++c) {
              const float want = ref.r((x.values[r * cols + c] * inv) * (1.0f + w.values[c]));
              QVERIFY2(ulps(out.at(r * cols + c), want, dtype) <= tol, (what + " rms_norm plus one").c_str());
            }
          }
          // tanh-GELU(gate)·up (Gemma's GeGLU), from the published formula in double precision.
          {
            Held gg(dtype, randoms(cols, rng, 3.0f)), uu(dtype, randoms(cols, rng)), o(dtype, std::vector<float>(cols));
            gelu_tanh_mul(gg.data(), uu.data(), o.data(), dtype, cols);
            for (std::size_t c = 0; c < cols; ++c) {
              const double v = gg.values[c];
              const float gelu = ref.r(float(0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)))));
              // 1 + tanh(·) cancels for negative gates in float32 (as in LibTorch's kernel), and Highway's tanh
              // is a few float32 places off: a bound of 1e-6 of the values' scale, or one bfloat16 place.
              const float want = ref.r(gelu * uu.values[c]);
              const bool near = std::abs(o.at(c) - want) <= 1e-6f * std::max({1.0f, std::abs(uu.values[c]), std::abs(want)});
              QVERIFY2(near || (dtype == DType::BF16 && ulps(o.at(c), want, dtype) <= 1.0), (what + " gelu_tanh_mul").c_str());
            }
          }
          // SiLU(gate)·up, and the residual add, element-wise.
          Held g(dtype, randoms(cols, rng, 3.0f)), u(dtype, randoms(cols, rng)), s(dtype, std::vector<float>(cols));
          silu_mul(g.data(), u.data(), s.data(), dtype, cols);
          Held h(dtype, randoms(cols, rng)), y(dtype, randoms(cols, rng));
          add_to(h.data(), y.data(), dtype, cols);
          for (std::size_t c = 0; c < cols; ++c) {
            const float silu = ref.r(g.values[c] / (1.0f + std::exp(-g.values[c])));
            QVERIFY2(ulps(s.at(c), ref.r(silu * u.values[c]), dtype) <= (dtype == DType::BF16 ? 1.0 : 4.0), (what + " silu_mul").c_str());
            QCOMPARE(h.at(c), ref.r(h.values[c] + y.values[c]));  // one rounding of an exact sum: no slack
          }
        }
        // Rotary: 2 positions × 3 heads of dim 2·37 (half a head is no multiple of any width).
        const std::size_t positions = 2, heads = 3, dim = 74, half = dim / 2;
        Held q(dtype, randoms(positions * heads * dim, rng));
        std::vector<float> cos(positions * dim), sin(positions * dim);
        for (std::size_t p = 0; p < positions; ++p)
          for (std::size_t i = 0; i < dim; ++i) {
            const double angle = double(p + 5) * std::pow(10000.0, -double(i % half) / double(half));
            cos[p * dim + i] = float(std::cos(angle));
            sin[p * dim + i] = float(std::sin(angle));
          }
        rotary(q.data(), dtype, positions, heads, dim, cos.data(), sin.data());
        for (std::size_t p = 0; p < positions; ++p)
          for (std::size_t hh = 0; hh < heads; ++hh)
            for (std::size_t i = 0; i < dim; ++i) {
              const std::size_t base = (p * heads + hh) * dim;
              // q·cos + rotate_half(q)·sin, rotate_half(q) = [−q₂, q₁]
              const float rot = i < half ? -q.values[base + i + half] : q.values[base + i - half];
              const float want = ref.r(ref.r(q.values[base + i] * ref.r(cos[p * dim + i])) + ref.r(rot * ref.r(sin[p * dim + i])));
              QVERIFY2(q.at(base + i) == want, (target + " " + std::string(torch_name(dtype)) + " rotary at " + std::to_string(i)).c_str());
            }
      }
    }
  }

  void refuses_what_it_cannot_do() {
    std::vector<std::uint16_t> a(4), b(4);
    QVERIFY(!token_ops_support(DType::F16));
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, add_to(a.data(), b.data(), DType::F16, 4));
    std::vector<float> c(6);
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, rotary(c.data(), DType::F32, 1, 1, 3, c.data(), c.data()));
  }
};

QTEST_GUILESS_MAIN(TestKernelsTokenOps)
#include "test_kernels_token_ops.moc"
