#include "run/rope.hpp"

#include <cmath>
#include <numbers>

namespace devicemap {

std::vector<float> rope_inverse_frequencies(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  const double old_context = double(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / s.low_freq_factor;
  const double high_freq_wavelen = old_context / s.high_freq_factor;
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(c.head_dim / 2));
  for (std::int64_t i = 0; i < c.head_dim; i += 2) {
    // Rounded to float32 first, as transformers computes it in float32.
    double inv = float(1.0 / std::pow(c.rope_theta, double(i) / double(c.head_dim)));
    if (s.kind == RopeScaling::Kind::Linear) {
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
