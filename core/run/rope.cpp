#include "run/rope.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace devicemap {

namespace {

// yarn's and DeepSeek's scale of the attention for a context `scale` times longer.
double yarn_mscale(double scale, double mscale = 1) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

// The dimension (of head_dim) whose wavelength turns `rotations` times over the original context.
double yarn_correction_dim(double rotations, double dim, double base, double context) {
  return dim * std::log(context / (rotations * 2 * std::numbers::pi)) / (2 * std::log(base));
}

}  // namespace

double rope_attention_scaling(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  if (s.kind == RopeScaling::Kind::Yarn) {
    if (s.attention_factor) return *s.attention_factor;
    if (s.mscale > 0 && s.mscale_all_dim > 0) return yarn_mscale(s.factor, s.mscale) / yarn_mscale(s.factor, s.mscale_all_dim);
    return yarn_mscale(s.factor);
  }
  if (s.kind == RopeScaling::Kind::LongRope) {
    if (s.attention_factor) return *s.attention_factor;
    if (s.factor <= 1) return 1.0;
    return std::sqrt(1 + std::log(s.factor) / std::log(double(s.original_max_position_embeddings)));
  }
  return 1.0;
}

std::vector<float> rope_inverse_frequencies(const ModelConfig& c, std::int64_t sequence) {
  const RopeScaling& s = c.rope_scaling;
  const double dim = double(c.head_dim);
  double theta = c.rope_theta;
  if (s.kind == RopeScaling::Kind::Dynamic && sequence > c.max_position_embeddings)
    theta *= std::pow(s.factor * double(sequence) / double(c.max_position_embeddings) - (s.factor - 1), dim / (dim - 2));
  // yarn's ramp: dimensions below `low` keep their frequency, above `high` are divided by the factor.
  double low = 0, high = 0;
  if (s.kind == RopeScaling::Kind::Yarn) {
    const double context = double(s.original_max_position_embeddings);
    low = yarn_correction_dim(s.beta_fast, dim, theta, context);
    high = yarn_correction_dim(s.beta_slow, dim, theta, context);
    if (s.truncate) {
      low = std::floor(low);
      high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, dim - 1);
    if (low == high) high += 0.001;  // as transformers: no division by zero
  }
  const bool long_factors = sequence > s.original_max_position_embeddings;
  const double old_context = double(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / s.low_freq_factor;
  const double high_freq_wavelen = old_context / s.high_freq_factor;
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(c.head_dim / 2));
  for (std::int64_t i = 0; i < c.head_dim; i += 2) {
    // Rounded to float32 first, as transformers computes it in float32.
    double inv = float(1.0 / std::pow(theta, double(i) / dim));
    if (s.kind == RopeScaling::Kind::Yarn) {
      const double ramp = std::clamp((double(i / 2) - low) / (high - low), 0.0, 1.0);
      const double extrapolation = 1 - ramp;  // the share of the undivided frequency
      inv = float(inv / s.factor) * (1 - extrapolation) + inv * extrapolation;
    } else if (s.kind == RopeScaling::Kind::LongRope) {
      const auto& f = long_factors ? s.long_factor : s.short_factor;
      inv = float(1.0 / (f[static_cast<std::size_t>(i / 2)] * std::pow(theta, double(i) / dim)));
    } else if (s.kind == RopeScaling::Kind::Linear) {
      inv /= s.factor;
    } else if (s.kind == RopeScaling::Kind::Llama3) {
      const double wavelen = 2 * std::numbers::pi / inv;
      if (wavelen > low_freq_wavelen) {
        inv /= s.factor;  // long wavelengths: slowed down fully
      } else if (wavelen >= high_freq_wavelen) {
        const double smooth = (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        inv = (1 - smooth) * inv / s.factor + smooth * inv;
      }  // short wavelengths stay
    }
    out.push_back(static_cast<float>(inv));
  }
  return out;
}

}  // namespace devicemap
