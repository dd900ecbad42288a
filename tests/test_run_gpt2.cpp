// GPT-2 on a small random checkpoint written by the test: the runtime's logits against a plain
// double-precision forward pass written here from the architecture's definition, and the forward with
// the KV cache against the whole sequence without it, with blocks in RAM and on "disk".
#include <cmath>
#include <fstream>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "error.hpp"
#include "format/checkpoint.hpp"
#include "format/safetensors.hpp"
#include "plan/device_map.hpp"
#include "run/generator.hpp"
#include "run/model.hpp"
#include "testkit.hpp"

using namespace devicemap;
namespace fs = std::filesystem;

namespace {

constexpr int E = 32, H = 4, D = E / H, L = 2, V = 96, P = 40, F = 4 * E;

struct Tensor {
  std::vector<std::int64_t> shape;
  std::vector<float> v;
};

// A random GPT-2; names as in the module tree, without the "transformer." prefix when `bare`.
struct RandomGpt2 {
  std::map<std::string, Tensor> t;

  explicit RandomGpt2(unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    auto add = [&](const std::string& name, std::vector<std::int64_t> shape, float scale, float offset = 0) {
      std::int64_t n = 1;
      for (auto s : shape) n *= s;
      Tensor x{shape, std::vector<float>(static_cast<std::size_t>(n))};
      for (auto& e : x.v) e = offset + scale * normal(rng);
      t[name] = std::move(x);
    };
    add("wte.weight", {V, E}, 0.5f);
    add("wpe.weight", {P, E}, 0.3f);
    for (int i = 0; i < L; ++i) {
      const std::string b = "h." + std::to_string(i) + ".";
      add(b + "ln_1.weight", {E}, 0.1f, 1.0f);
      add(b + "ln_1.bias", {E}, 0.1f);
      add(b + "attn.c_attn.weight", {E, 3 * E}, 0.3f);
      add(b + "attn.c_attn.bias", {3 * E}, 0.1f);
      add(b + "attn.c_proj.weight", {E, E}, 0.2f);
      add(b + "attn.c_proj.bias", {E}, 0.1f);
      add(b + "ln_2.weight", {E}, 0.1f, 1.0f);
      add(b + "ln_2.bias", {E}, 0.1f);
      add(b + "mlp.c_fc.weight", {E, F}, 0.2f);
      add(b + "mlp.c_fc.bias", {F}, 0.1f);
      add(b + "mlp.c_proj.weight", {F, E}, 0.1f);
      add(b + "mlp.c_proj.bias", {E}, 0.1f);
    }
    add("ln_f.weight", {E}, 0.1f, 1.0f);
    add("ln_f.bias", {E}, 0.1f);
  }

  void write(const fs::path& dir, bool bare) const {
    std::vector<TensorToWrite> out;
    for (const auto& [name, x] : t)
      out.push_back({(bare ? "" : "transformer.") + name, DType::F32, x.shape, std::as_bytes(std::span<const float>(x.v))});
    // Old checkpoints carry the causal mask as a buffer; the loader must ignore it.
    static const std::vector<std::uint8_t> mask(P * P, 1);
    out.push_back({(bare ? "" : "transformer.") + std::string("h.0.attn.bias"), DType::U8, {P, P},
                   std::as_bytes(std::span<const std::uint8_t>(mask))});
    write_safetensors(dir / "model.safetensors", out);
    std::ofstream(dir / "config.json") << nlohmann::json{{"model_type", "gpt2"}, {"n_embd", E}, {"n_layer", L},
                                                         {"n_head", H}, {"vocab_size", V}, {"n_positions", P},
                                                         {"layer_norm_epsilon", 1e-5},
                                                         {"activation_function", "gelu_new"}, {"eos_token_id", 0}}
                                              .dump();
  }

  // The reference: GPT2LMHeadModel's definition in doubles, loops only. Logits of every position.
  std::vector<std::vector<double>> forward(const std::vector<std::int64_t>& ids) const {
    const auto& w = [&](const std::string& n) -> const std::vector<float>& { return t.at(n).v; };
    const std::size_t n = ids.size();
    std::vector<std::vector<double>> h(n, std::vector<double>(E));
    for (std::size_t p = 0; p < n; ++p)
      for (int e = 0; e < E; ++e) h[p][e] = w("wte.weight")[ids[p] * E + e] + w("wpe.weight")[p * E + e];
    auto layer_norm = [&](const std::vector<double>& x, const std::string& name) {
      double mean = 0, var = 0;
      for (double v : x) mean += v / E;
      for (double v : x) var += (v - mean) * (v - mean) / E;
      std::vector<double> y(E);
      for (int e = 0; e < E; ++e)
        y[e] = (x[e] - mean) / std::sqrt(var + 1e-5) * w(name + ".weight")[e] + w(name + ".bias")[e];
      return y;
    };
    auto conv1d = [&](const std::vector<double>& x, const std::string& name, int in, int out) {
      std::vector<double> y(out);
      for (int o = 0; o < out; ++o) {
        y[o] = w(name + ".bias")[o];
        for (int i = 0; i < in; ++i) y[o] += x[i] * w(name + ".weight")[i * out + o];
      }
      return y;
    };
    for (int l = 0; l < L; ++l) {
      const std::string b = "h." + std::to_string(l) + ".";
      std::vector<std::vector<double>> qkv(n);
      for (std::size_t p = 0; p < n; ++p) qkv[p] = conv1d(layer_norm(h[p], b + "ln_1"), b + "attn.c_attn", E, 3 * E);
      for (std::size_t p = 0; p < n; ++p) {
        std::vector<double> out(E, 0.0);
        for (int hd = 0; hd < H; ++hd) {
          std::vector<double> score(p + 1);
          double top = -1e300, sum = 0;
          for (std::size_t k = 0; k <= p; ++k) {
            double s = 0;
            for (int d = 0; d < D; ++d) s += qkv[p][hd * D + d] * qkv[k][E + hd * D + d];
            score[k] = s / std::sqrt(double(D));
            top = std::max(top, score[k]);
          }
          for (auto& s : score) sum += s = std::exp(s - top);
          for (std::size_t k = 0; k <= p; ++k)
            for (int d = 0; d < D; ++d) out[hd * D + d] += score[k] / sum * qkv[k][2 * E + hd * D + d];
        }
        const auto proj = conv1d(out, b + "attn.c_proj", E, E);
        for (int e = 0; e < E; ++e) h[p][e] += proj[e];
      }
      for (std::size_t p = 0; p < n; ++p) {
        auto inner = conv1d(layer_norm(h[p], b + "ln_2"), b + "mlp.c_fc", E, F);
        for (auto& x : inner)  // gelu_new
          x = 0.5 * x * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
        const auto proj = conv1d(inner, b + "mlp.c_proj", F, E);
        for (int e = 0; e < E; ++e) h[p][e] += proj[e];
      }
    }
    std::vector<std::vector<double>> logits(n, std::vector<double>(V, 0.0));
    for (std::size_t p = 0; p < n; ++p) {
      const auto x = layer_norm(h[p], "ln_f");
      for (int v = 0; v < V; ++v)
        for (int e = 0; e < E; ++e) logits[p][v] += x[e] * w("wte.weight")[v * E + e];
    }
    return logits;
  }
};

const std::vector<std::int64_t> kSequence{5, 17, 17, 90, 3, 44, 61, 2, 8, 8, 75, 30, 11, 95};

double max_error(const Logits& a, std::int64_t row_a, const std::vector<double>& b) {
  double worst = 0;
  const auto r = a.row(row_a);
  for (std::size_t i = 0; i < b.size(); ++i) worst = std::max(worst, std::abs(double(r[i]) - b[i]));
  return worst;
}

double max_error(const Logits& a, std::int64_t row_a, const Logits& b, std::int64_t row_b) {
  const auto r = b.row(row_b);
  return max_error(a, row_a, std::vector<double>(r.begin(), r.end()));
}

}  // namespace

class TestRunGpt2 : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void matchesReferenceForward() {
    testkit::TempDir dir;
    const RandomGpt2 model_data(11);
    model_data.write(dir.path(), true);
    Model model = Model::load(dir.path(), DeviceMap({{"", Device::cpu()}}));
    QCOMPARE(model.config().family, ModelFamily::Gpt2);
    QCOMPARE(model.load_report().tied, std::size_t{1});
    const Logits all = model.evaluate(kSequence);
    const auto reference = model_data.forward(kSequence);
    QCOMPARE(all.positions, std::int64_t(kSequence.size()));
    for (std::size_t p = 0; p < kSequence.size(); ++p) {
      const double err = max_error(all, std::int64_t(p), reference[p]);
      QVERIFY2(err < 1e-3, ("position " + std::to_string(p) + ": " + std::to_string(err)).c_str());
    }
  }

  void cacheEqualsWholeSequence() {
    testkit::TempDir dir;
    RandomGpt2(12).write(dir.path(), false);  // "transformer." names this time
    for (const bool disk : {false, true}) {
      DeviceMap map({{"", Device::cpu()}});
      if (disk) map.set("transformer.h.1", Device::disk());
      Model model = Model::load(dir.path(), map);
      QCOMPARE(model.load_report().bytes_by_device.count("disk"), std::size_t(disk ? 1 : 0));
      const Logits whole = model.evaluate(kSequence);
      QCOMPARE(model.cached_tokens(), std::int64_t{0});  // evaluate leaves the cache alone

      // A prefix of five, then one token at a time: each step's logits are the whole pass's row.
      const std::span<const std::int64_t> seq(kSequence);
      const Logits prefix = model.forward(seq.first(5), true);
      QCOMPARE(prefix.positions, std::int64_t{5});
      for (std::int64_t p = 0; p < 5; ++p) QVERIFY(max_error(prefix, p, whole, p) < 1e-5);
      for (std::size_t p = 5; p < seq.size(); ++p) {
        const Logits step = model.forward(seq.subspan(p, 1));
        QCOMPARE(step.positions, std::int64_t{1});
        const double err = max_error(step, 0, whole, std::int64_t(p));
        QVERIFY2(err < 1e-5, ("position " + std::to_string(p) + ": " + std::to_string(err)).c_str());
      }
      QCOMPARE(model.cached_tokens(), std::int64_t(kSequence.size()));

      // Greedy generation picks each token as the whole pass over the grown sequence would.
      const auto result = generate(model, seq.first(3), GenerationOptions{{}, 6, {}});
      std::vector<std::int64_t> grown(seq.begin(), seq.begin() + 3);
      for (const auto id : result.tokens) {
        const Logits l = model.evaluate(grown);
        const auto row = l.row(l.positions - 1);
        QCOMPARE(id, std::int64_t(std::max_element(row.begin(), row.end()) - row.begin()));
        grown.push_back(id);
      }
    }
  }

  void learnedPositionsBoundTheContext() {
    testkit::TempDir dir;
    RandomGpt2(13).write(dir.path(), true);
    Model model = Model::load(dir.path(), DeviceMap({{"", Device::cpu()}}));
    const std::vector<std::int64_t> full(P, 4);
    QCOMPARE(model.forward(full).positions, std::int64_t{1});
    const std::vector<std::int64_t> one{4};
    QVERIFY_THROWS_EXCEPTION(Error, model.forward(one));
    // Generation stops when the context is full instead of failing.
    const auto r = generate(model, std::vector<std::int64_t>(P - 3, 4), GenerationOptions{{}, 10, {}});
    QCOMPARE(r.stop, StopReason::ContextFull);
    QCOMPARE(r.tokens.size(), std::size_t{3});
  }

  void wrongShapeNamesTensorAndConfig() {
    testkit::TempDir dir;
    RandomGpt2(14).write(dir.path(), true);
    auto config = testkit::read_json(dir / "config.json");
    config["n_positions"] = P + 1;
    std::ofstream(dir / "config.json") << config.dump();
    try {
      Model::load(dir.path(), DeviceMap({{"", Device::cpu()}}));
      QFAIL("a checkpoint that does not fit its config was accepted");
    } catch (const Error& e) {
      const std::string m = e.what();
      QVERIFY2(m.find("transformer.wpe.weight") != std::string::npos && m.find("config.json") != std::string::npos,
               m.c_str());
    }
  }
};

QTEST_MAIN(TestRunGpt2)
#include "test_run_gpt2.moc"
