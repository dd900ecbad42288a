// The sampler on hand-made logits: greedy, repetition penalty, top-k, top-p, temperature and seeds.
#include <cmath>
#include <map>
#include <vector>

#include "error.hpp"
#include "run/sampler.hpp"
#include "testkit.hpp"

using namespace devicemap;

namespace {

SamplingOptions sampling(std::uint64_t seed) {
  SamplingOptions o;
  o.do_sample = true;
  o.seed = seed;
  return o;
}

// How often each id comes out of `draws` samples of `logits`.
std::map<std::int64_t, int> histogram(const SamplingOptions& o, const std::vector<float>& logits, int draws) {
  Sampler s(o);
  std::map<std::int64_t, int> h;
  for (int i = 0; i < draws; ++i) {
    auto copy = logits;
    ++h[s.next(copy, {})];
  }
  return h;
}

}  // namespace

class TestRunSampler : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void greedyTakesFirstLargest() {
    Sampler s(SamplingOptions{});
    std::vector<float> l{0.5f, 3.0f, -1.0f, 3.0f};
    QCOMPARE(s.next(l, {}), std::int64_t{1});
    QCOMPARE(argmax(std::vector<float>{-2, -1, -3}), std::int64_t{1});
    QVERIFY_THROWS_EXCEPTION(Error, argmax(std::vector<float>{}));
  }

  void repetitionPenaltyAsTransformers() {
    std::vector<float> l{2.0f, -2.0f, 1.0f, 4.0f};
    const std::vector<std::int64_t> seen{0, 1, 1, 99, -5};  // repeats count once, strangers are ignored
    apply_repetition_penalty(l, seen, 2.0);
    QCOMPARE(l, (std::vector<float>{1.0f, -4.0f, 1.0f, 4.0f}));
    // Greedy with a penalty: the seen best token loses to an unseen one.
    SamplingOptions o;
    o.repetition_penalty = 3.0;
    Sampler s(o);
    std::vector<float> m{6.0f, 5.0f};
    const std::vector<std::int64_t> context{0};
    QCOMPARE(s.next(m, context), std::int64_t{1});
  }

  void topKKeepsOnlyTheBest() {
    auto o = sampling(1);
    o.top_k = 2;
    const auto h = histogram(o, {1.0f, 4.0f, 3.9f, 0.0f, 2.0f}, 2000);
    QCOMPARE(h.size(), std::size_t{2});
    QVERIFY(h.count(1) && h.count(2));
    // Ties with the k-th score stay in.
    o.top_k = 1;
    const auto tie = histogram(o, {5.0f, 1.0f, 5.0f}, 500);
    QVERIFY(tie.count(0) && tie.count(2) && !tie.count(1));
  }

  void topPDropsTheTail() {
    // Probabilities 0.5, 0.3, 0.15, 0.05 (as logs): top_p 0.75 keeps the first two only (the tail's
    // cumulative 0.2 stays within 1 - 0.75); 0.9 keeps the third as well (0.2 > 0.1).
    const std::vector<float> logits{std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
    auto o = sampling(3);
    o.top_p = 0.75;
    auto h = histogram(o, logits, 4000);
    QCOMPARE(h.size(), std::size_t{2});
    // 0.5 : 0.3 renormalised is 62.5 % : 37.5 %.
    QVERIFY(std::abs(h[0] / 4000.0 - 0.625) < 0.04);
    o.top_p = 0.9;
    h = histogram(o, logits, 4000);
    QCOMPARE(h.size(), std::size_t{3});
  }

  void temperatureSharpensAndFlattens() {
    const std::vector<float> logits{1.0f, 0.0f};
    auto o = sampling(5);
    o.temperature = 1.0;
    const double p1 = histogram(o, logits, 4000)[0] / 4000.0;  // e/(e+1) ≈ 0.731
    QVERIFY(std::abs(p1 - 0.731) < 0.03);
    o.temperature = 0.25;
    const double sharp = histogram(o, logits, 4000)[0] / 4000.0;  // e^4/(e^4+1) ≈ 0.982
    QVERIFY(std::abs(sharp - 0.982) < 0.015);
    o.temperature = 0;  // zero temperature is greedy
    QVERIFY(o.greedy());
  }

  void seedsReproduce() {
    const std::vector<float> logits{0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    auto draws = [&](std::uint64_t seed) {
      Sampler s(sampling(seed));
      std::vector<std::int64_t> out;
      for (int i = 0; i < 50; ++i) {
        auto copy = logits;
        out.push_back(s.next(copy, {}));
      }
      return out;
    };
    QCOMPARE(draws(42), draws(42));
    QVERIFY(draws(42) != draws(43));
  }
};

QTEST_MAIN(TestRunSampler)
#include "test_run_sampler.moc"
