// The decode kernels inside the runtime: random Llama checkpoints (odd sizes: no dimension a multiple of
// a vector) stored as float32, bfloat16 and float16 run through the kernels and through LibTorch's own
// products on the same weights, step by step over the KV cache. float32 agrees to rounding and gives the
// same greedy ids over 64 tokens. bfloat16 rounds every activation, so the two paths part by a few
// units of its precision; there both are held against the same weights run in float32, and the kernels
// must be as close to it as LibTorch's bfloat16 path is.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <set>

#include <nlohmann/json.hpp>

#include "plan/device_map.hpp"
#include "run/decode_path.hpp"
#include "run/generator.hpp"
#include "run/model.hpp"
#include "run/prompt_path.hpp"
#include "run/random_checkpoint.hpp"
#include "testkit.hpp"

using namespace devicemap;
using nlohmann::json;

namespace {

// Whether /proc/cpuinfo lists `flag` for this CPU.
bool cpu_flag(const std::string& flag) {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("flags", 0) == 0) return (line + ' ').find(' ' + flag + ' ') != std::string::npos;
  return false;
}

json odd_llama() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", 72}, {"intermediate_size", 200},
          {"num_hidden_layers", 3}, {"num_attention_heads", 6}, {"num_key_value_heads", 2}, {"vocab_size", 301},
          {"max_position_embeddings", 256}, {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0}, {"tie_word_embeddings", false},
          {"bos_token_id", 1}, {"eos_token_id", 2}, {"hidden_act", "silu"}};
}

// The same shapes as Gemma 2 ((1 + weight) norms around attention and MLP, tanh-GELU gate,
// soft-capped scores and logits, a window on even layers): the Gemma kernels' rounding against LibTorch's.
json odd_gemma2() {
  json c = odd_llama();
  c["architectures"] = {"Gemma2ForCausalLM"};
  c["model_type"] = "gemma2";
  // An untied head: through a tied one, a random model's scaled embedding picks the same few ids greedily
  // (test_run_llama covers the tie).
  c.erase("hidden_act");
  c["hidden_activation"] = "gelu_pytorch_tanh";
  c["head_dim"] = 12;
  c["query_pre_attn_scalar"] = 12;
  c["attn_logit_softcapping"] = 50.0;
  c["final_logit_softcapping"] = 30.0;
  c["sliding_window"] = 5;
  return c;
}

// Largest |a − b| over the row, relative to the row's largest |b|.
double relative_error(std::span<const float> a, std::span<const float> b) {
  double diff = 0, scale = 1e-30;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, double(std::abs(a[i] - b[i])));
    scale = std::max(scale, double(std::abs(b[i])));
  }
  return diff / scale;
}

struct KernelsOff {
  KernelsOff() { use_decode_kernels(false); }
  ~KernelsOff() { use_decode_kernels(true); }
};

}  // namespace

class TestRunDecodeKernels : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void agree_with_libtorch_data() {
    QTest::addColumn<QString>("dtype");
    QTest::addColumn<double>("tolerance");
    QTest::addColumn<bool>("gemma2");
    QTest::newRow("float32") << "float32" << 1e-4 << false;
    QTest::newRow("bfloat16") << "bfloat16" << 0.1 << false;
    QTest::newRow("float16") << "float16" << 1e-3 << false;  // float16 matrices, float32 activations on the CPU
    QTest::newRow("gemma2 float32") << "float32" << 1e-4 << true;
    // Norms on both sides of each sublayer amplify bfloat16's rounding: both paths sit ~4e-2 from float32
    // (each step up to 0.16 apart); the distance check below is the one that matters.
    QTest::newRow("gemma2 bfloat16") << "bfloat16" << 0.25 << true;
  }

  void agree_with_libtorch() {
    QFETCH(QString, dtype);
    QFETCH(double, tolerance);
    QFETCH(bool, gemma2);
    testkit::TempDir dir;
    RandomCheckpointOptions o;
    o.dtype = *dtype_from_torch_name(dtype.toStdString());
    o.seed = 5;
    o.stddev = 0.2;  // large enough that the logits spread and greedy choices are clear
    write_random_checkpoint(dir.path(), gemma2 ? odd_gemma2() : odd_llama(), o);
    const DeviceMap map({{"", Device::cpu()}});
    Model fast = Model::load(dir.path(), map);
    Model reference = [&] {
      KernelsOff off;
      return Model::load(dir.path(), map);
    }();
    const std::vector<std::int64_t> prompt{1, 17, 200, 5};
    fast.forward(prompt);
    {
      KernelsOff off;
      reference.forward(prompt);
    }
    // A prompt longer than the kernels' 8 rows goes through LibTorch's matrix multiply; float16 matrices
    // are widened to float32 for it (kernels/widen.hpp).
    std::vector<std::int64_t> long_prompt(21);
    for (std::size_t i = 0; i < long_prompt.size(); ++i) long_prompt[i] = static_cast<std::int64_t>((i * 37 + 3) % 301);
    const Logits whole = fast.evaluate(long_prompt);
    Logits whole_reference;
    {
      KernelsOff off;
      whole_reference = reference.evaluate(long_prompt);
    }
    for (std::int64_t p = 0; p < whole.positions; ++p) {
      const double err = relative_error(whole.row(p), whole_reference.row(p));
      QVERIFY2(err < tolerance, qPrintable(QString("prompt position %1: relative error %2").arg(p).arg(err)));
    }

    // The same weights computed in float32 throughout (bfloat16 → float32 is exact).
    LoadOptions in_f32;
    in_f32.dtype = DType::F32;
    Model exact = Model::load(dir.path(), map, in_f32);
    exact.forward(prompt);
    double fast_off = 0, reference_off = 0;  // summed distance of each path from float32
    std::int64_t next = 42;
    for (int step = 0; step < 40; ++step) {
      const std::int64_t id[] = {next};
      const Logits a = fast.forward(id);
      Logits b;
      {
        KernelsOff off;
        b = reference.forward(id);
      }
      const Logits truth = exact.forward(id);
      const double err = relative_error(a.row(0), b.row(0));
      QVERIFY2(err < tolerance, qPrintable(QString("step %1: relative error %2").arg(step).arg(err)));
      fast_off += relative_error(a.row(0), truth.row(0));
      reference_off += relative_error(b.row(0), truth.row(0));
      next = (next * 31 + step) % 301;
    }
    qInfo("%s: mean relative distance from float32: kernels %.2e, LibTorch %.2e", qPrintable(dtype), fast_off / 40, reference_off / 40);
    QVERIFY2(fast_off <= 1.25 * reference_off + 40 * 1e-5,
             qPrintable(QString("kernels %1 from float32, LibTorch %2").arg(fast_off / 40).arg(reference_off / 40)));

    if (dtype == "float32") {
      GenerationOptions g;
      g.max_new_tokens = 64;
      const auto with_kernels = generate(fast, prompt, g).tokens;
      std::vector<std::int64_t> without;
      {
        KernelsOff off;
        without = generate(reference, prompt, g).tokens;
      }
      QCOMPARE(with_kernels.size(), std::size_t{64});
      QVERIFY(with_kernels == without);
      // Not a constant sequence: the test would pass vacuously on a degenerate model.
      QVERIFY(std::set<std::int64_t>(with_kernels.begin(), with_kernels.end()).size() > 3);
    }
  }

  // A bfloat16 prompt's products widened to float32 (where the CPU has no fast bfloat16 matrix multiply:
  // run/prompt_path.hpp) against LibTorch's own bfloat16 products, on the same weights and on either
  // machine: every position's logits within bfloat16's rounding, and at least as close to the float32
  // model as LibTorch's bfloat16 path is.
  void widened_bfloat16_prompts_agree_with_libtorch_data() {
    QTest::addColumn<bool>("gemma2");
    QTest::newRow("llama") << false;
    QTest::newRow("gemma2") << true;
  }

  void widened_bfloat16_prompts_agree_with_libtorch() {
    QFETCH(bool, gemma2);
    testkit::TempDir dir;
    RandomCheckpointOptions o;
    o.dtype = DType::BF16;
    o.seed = 11;
    o.stddev = 0.2;
    write_random_checkpoint(dir.path(), gemma2 ? odd_gemma2() : odd_llama(), o);
    const DeviceMap map({{"", Device::cpu()}});
    std::vector<std::int64_t> prompt(23);
    for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<std::int64_t>((i * 53 + 7) % 301);
    const auto run = [&](Bf16Products path) {
      use_bf16_products(path);
      Model m = Model::load(dir.path(), map);
      Logits l = m.evaluate(prompt);
      use_bf16_products(Bf16Products::ByCpu);
      return l;
    };
    const Logits widened = run(Bf16Products::Widened), native = run(Bf16Products::Native);
    LoadOptions in_f32;
    in_f32.dtype = DType::F32;
    const Logits truth = Model::load(dir.path(), map, in_f32).evaluate(prompt);
    QCOMPARE(widened.positions, std::int64_t(prompt.size()));
    double widened_off = 0, native_off = 0;
    for (std::int64_t p = 0; p < widened.positions; ++p) {
      const double err = relative_error(widened.row(p), native.row(p));
      QVERIFY2(err < (gemma2 ? 0.25 : 0.1), qPrintable(QString("position %1: relative error %2").arg(p).arg(err)));
      widened_off += relative_error(widened.row(p), truth.row(p));
      native_off += relative_error(native.row(p), truth.row(p));
    }
    const double n = double(widened.positions);
    qInfo("mean relative distance from float32: widened %.2e, LibTorch bfloat16 %.2e", widened_off / n, native_off / n);
    QVERIFY(widened_off > 0);                     // it did round to bfloat16
    // And the two paths are not one. Where the CPU has bfloat16 dot products (AVX-512 BF16), oneDNN's
    // differ from the widened ones only in the order of float32 sums, which the final rounding to
    // bfloat16 can hide in every logit of a small model: equal values prove nothing there.
    if (!cpu_flag("avx512_bf16")) QVERIFY(widened.values != native.values);
    QVERIFY2(widened_off <= 1.25 * native_off, qPrintable(QString("widened %1, LibTorch %2").arg(widened_off / n).arg(native_off / n)));
  }

  // CPU weights copied out of the mapping (the default) and run from it (LoadOptions::map_cpu_weights)
  // hold the same values: the same logits bit for bit; "disk" weights stay in the file either way.
  void copied_weights_run_the_same() {
    testkit::TempDir dir;
    RandomCheckpointOptions o;
    o.dtype = DType::BF16;
    o.seed = 9;
    o.stddev = 0.2;
    write_random_checkpoint(dir.path(), odd_llama(), o);
    DeviceMap map({{"", Device::cpu()}});
    map.set("model.layers.2", Device::disk());
    LoadOptions map_them;
    map_them.map_cpu_weights = true;
    Model mapped = Model::load(dir.path(), map, map_them);
    Model copied = Model::load(dir.path(), map);
    const auto& a = mapped.load_report();
    const auto& b = copied.load_report();
    QCOMPARE(a.aliased_bytes, a.bytes_by_device.at("cpu") + a.bytes_by_device.at("disk"));
    QCOMPARE(b.aliased_bytes, b.bytes_by_device.at("disk"));
    QVERIFY(b.bytes_by_device.at("cpu") > 0);
    QCOMPARE(b.bytes_by_device.at("cpu"), a.bytes_by_device.at("cpu"));
    const std::vector<std::int64_t> ids{1, 17, 200, 5, 99};
    const Logits x = mapped.forward(ids), y = copied.forward(ids);
    QVERIFY(x.values == y.values);
  }
};

QTEST_GUILESS_MAIN(TestRunDecodeKernels)
#include "test_run_decode_kernels.moc"
