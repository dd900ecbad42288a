#include "run/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "error.hpp"

namespace devicemap {

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {}

double Sampler::uniform() {
  // 53 random bits: the same doubles from the same seed with any standard library.
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

void apply_repetition_penalty(std::span<float> logits, std::span<const std::int64_t> context, double penalty) {
  if (penalty == 1.0) return;
  std::vector<bool> seen(logits.size(), false);
  for (const auto id : context) {
    if (id < 0 || static_cast<std::size_t>(id) >= logits.size() || seen[id]) continue;
    seen[id] = true;
    float& s = logits[id];
    s = s < 0 ? static_cast<float>(s * penalty) : static_cast<float>(s / penalty);
  }
}

std::int64_t argmax(std::span<const float> logits) {
  if (logits.empty()) throw Error("cannot pick a token from an empty vocabulary");
  std::size_t best = 0;
  for (std::size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best] || (std::isnan(logits[best]) && !std::isnan(logits[i]))) best = i;
  return static_cast<std::int64_t>(best);
}

std::int64_t Sampler::next(std::span<float> logits, std::span<const std::int64_t> context) {
  apply_repetition_penalty(logits, context, options_.repetition_penalty);
  if (options_.greedy()) return argmax(logits);

  const float neg_inf = -std::numeric_limits<float>::infinity();
  const auto temperature = static_cast<float>(options_.temperature);
  for (float& s : logits) s = std::isnan(s) ? neg_inf : s / temperature;

  // Candidates: every token with a finite score, best first (stable, so ties keep id order).
  std::vector<std::int64_t> order;
  order.reserve(logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i)
    if (logits[i] != neg_inf) order.push_back(static_cast<std::int64_t>(i));
  if (order.empty()) return argmax(logits);
  auto by_score = [&](std::int64_t a, std::int64_t b) { return logits[a] > logits[b]; };

  // Top-k keeps every token scoring at least the k-th best (ties with it included).
  if (options_.top_k > 0 && static_cast<std::size_t>(options_.top_k) < order.size()) {
    const auto k = static_cast<std::size_t>(options_.top_k);
    std::nth_element(order.begin(), order.begin() + (k - 1), order.end(), by_score);
    const float kth = logits[order[k - 1]];
    std::erase_if(order, [&](std::int64_t i) { return logits[i] < kth; });
  }
  std::stable_sort(order.begin(), order.end(), by_score);

  // Softmax over the candidates.
  const float top = logits[order.front()];
  std::vector<double> probs(order.size());
  double sum = 0;
  for (std::size_t i = 0; i < order.size(); ++i) sum += probs[i] = std::exp(double(logits[order[i]]) - top);
  for (auto& p : probs) p /= sum;

  // Top-p as transformers: drop the least likely tokens whose cumulative probability (counted from the
  // least likely up) stays within 1 - top_p; the most likely token always stays.
  if (options_.top_p < 1.0) {
    double from_bottom = 0;
    std::size_t keep = order.size();
    for (std::size_t i = order.size(); i-- > 1;) {
      from_bottom += probs[i];
      if (from_bottom > 1.0 - options_.top_p) break;
      keep = i;
    }
    order.resize(keep);
    probs.resize(keep);
    const double kept = std::accumulate(probs.begin(), probs.end(), 0.0);
    for (auto& p : probs) p /= kept;
  }

  const double u = uniform();
  double cumulative = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    cumulative += probs[i];
    if (u < cumulative) return order[i];
  }
  return order.back();
}

}  // namespace devicemap
