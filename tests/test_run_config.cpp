// config.json and generation_config.json as the runtime reads them: the demo model, the Llama family's
// variants, GPT-2, rotary scaling, and one clear error per kind of bad key.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "error.hpp"
#include "run/generation_options.hpp"
#include "run/model_config.hpp"
#include "run/rope.hpp"
#include "testkit.hpp"

using namespace devicemap;
using testkit::contains;
using testkit::error_of;
using nlohmann::json;

namespace {

json llama_base() {
  return json{{"model_type", "llama"},       {"hidden_size", 256},          {"intermediate_size", 512},
              {"num_hidden_layers", 4},      {"num_attention_heads", 8},    {"vocab_size", 1000}};
}

}  // namespace

class TestRunConfig : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void demoConfig() {
    const auto c = ModelConfig::from_json(testkit::read_json(testkit::demo_dir() / "config.json"));
    QCOMPARE(c.family, ModelFamily::Llama);
    QCOMPARE(c.hidden_size, std::int64_t{64});
    QCOMPARE(c.intermediate_size, std::int64_t{172});
    QCOMPARE(c.num_layers, std::int64_t{5});
    QCOMPARE(c.num_heads, std::int64_t{8});
    QCOMPARE(c.num_kv_heads, std::int64_t{4});
    QCOMPARE(c.head_dim, std::int64_t{8});
    QCOMPARE(c.vocab_size, std::int64_t{512});
    QCOMPARE(c.max_position_embeddings, std::int64_t{512});
    QCOMPARE(c.norm_eps, 1e-5);
    QCOMPARE(c.rope_theta, 10000.0);
    QVERIFY(c.tie_word_embeddings);
    QVERIFY(!c.qkv_bias && !c.out_proj_bias && !c.mlp_bias);
    QCOMPARE(c.torch_dtype, std::optional<DType>(DType::F32));
    QCOMPARE(c.eos_token_ids, std::vector<std::int64_t>{2});
    QCOMPARE(c.rope_scaling.kind, RopeScaling::Kind::None);
  }

  void llamaFamilyDefaultsAndVariants() {
    auto j = llama_base();
    auto c = ModelConfig::from_json(j);
    QCOMPARE(c.num_kv_heads, std::int64_t{8});  // defaults to the head count
    QCOMPARE(c.head_dim, std::int64_t{32});
    QVERIFY(!c.tie_word_embeddings);            // LlamaConfig's default
    QCOMPARE(c.norm_eps, 1e-6);
    QCOMPARE(c.max_position_embeddings, std::int64_t{2048});

    j["head_dim"] = 64;  // explicit head_dim need not be hidden / heads
    j["attention_bias"] = true;
    c = ModelConfig::from_json(j);
    QCOMPARE(c.head_dim, std::int64_t{64});
    QVERIFY(c.qkv_bias && c.out_proj_bias);

    auto q = llama_base();
    q["model_type"] = "qwen2";
    q["sliding_window"] = 4096;  // ignored unless use_sliding_window
    c = ModelConfig::from_json(q);
    QVERIFY(c.qkv_bias && !c.out_proj_bias);
    QVERIFY(!c.sliding_window);
    QCOMPARE(c.max_position_embeddings, std::int64_t{32768});

    auto m = llama_base();
    m["model_type"] = "mistral";
    m["sliding_window"] = 4096;
    m["torch_dtype"] = "bfloat16";
    m["eos_token_id"] = json::array({128001, 128009});
    c = ModelConfig::from_json(m);
    QCOMPARE(c.sliding_window, std::optional<std::int64_t>(4096));
    QCOMPARE(c.torch_dtype, std::optional<DType>(DType::BF16));
    QCOMPARE(c.eos_token_ids, (std::vector<std::int64_t>{128001, 128009}));

    // Qwen3: q/k norms; a window only with use_sliding_window, on the layers from max_window_layers on
    // (llama_base has 4 layers), or as layer_types lists them.
    auto q3 = llama_base();
    q3["model_type"] = "qwen3";
    q3["sliding_window"] = 4096;
    c = ModelConfig::from_json(q3);
    QVERIFY(c.qk_norm && !c.qkv_bias && !c.sliding_window && !c.window_of(3));
    q3["use_sliding_window"] = true;
    q3["max_window_layers"] = 2;
    c = ModelConfig::from_json(q3);
    QVERIFY(!c.window_of(0) && !c.window_of(1));
    QCOMPARE(c.window_of(2), std::optional<std::int64_t>(4096));
    QCOMPARE(c.window_of(3), std::optional<std::int64_t>(4096));
    q3["layer_types"] = json::array({"sliding_attention", "full_attention", "full_attention", "sliding_attention"});
    c = ModelConfig::from_json(q3);
    QVERIFY(c.window_of(0) && !c.window_of(1) && !c.window_of(2) && c.window_of(3));
    q3["layer_types"] = json::array({"sliding_attention", "chunked_attention", "full_attention", "full_attention"});
    auto e = error_of([&] { ModelConfig::from_json(q3, "q3/config.json"); });
    QVERIFY2(contains(e, "q3/config.json") && contains(e, "layer_types") && contains(e, "chunked_attention"), e.c_str());
    q3["layer_types"] = json::array({"full_attention"});
    QVERIFY(contains(error_of([&] { ModelConfig::from_json(q3); }), "one type per layer"));
    // Mistral slides on every layer.
    QVERIFY(ModelConfig::from_json(m).window_of(3));

    auto a = llama_base();  // no model_type: guessed from architectures
    a.erase("model_type");
    a["architectures"] = json::array({"LlamaForCausalLM"});
    QCOMPARE(ModelConfig::from_json(a).model_type, std::string("llama"));
  }

  // yarn (Qwen3's 4x long-context setting), dynamic NTK and longrope, each against the published
  // formulas written out here in doubles.
  void yarnDynamicAndLongRope() {
    auto j = llama_base();  // hidden 256, 8 heads: head_dim 32
    j["rope_theta"] = 1000000.0;
    j["max_position_embeddings"] = 40960;
    j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}};
    auto c = ModelConfig::from_json(j);
    QCOMPARE(c.rope_scaling.kind, RopeScaling::Kind::Yarn);
    QCOMPARE(rope_attention_scaling(c), 0.1 * std::log(4.0) + 1.0);
    const double dim = 32, base = 1e6, context = 32768;
    const auto correction = [&](double rotations) { return dim * std::log(context / (rotations * 2 * std::numbers::pi)) / (2 * std::log(base)); };
    const double low = std::max(0.0, std::floor(correction(32))), high = std::min(dim - 1, std::ceil(correction(1)));
    const auto yarn = rope_inverse_frequencies(c);
    QCOMPARE(yarn.size(), std::size_t{16});
    int kept = 0, divided = 0;
    for (int i = 0; i < 16; ++i) {
      const double plain = 1.0 / std::pow(base, 2.0 * i / dim);
      const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
      const double want = plain / 4 * ramp + plain * (1 - ramp);
      QVERIFY2(std::abs(yarn[i] - want) <= 1e-6 * want, std::to_string(i).c_str());
      kept += ramp == 0;
      divided += ramp == 1;
    }
    QVERIFY(kept > 0 && divided > 0);  // the ramp lies inside the head
    j["rope_scaling"]["mscale"] = 1.0;  // DeepSeek's form: a ratio of two mscales
    j["rope_scaling"]["mscale_all_dim"] = 0.5;
    QCOMPARE(rope_attention_scaling(ModelConfig::from_json(j)), (0.1 * std::log(4.0) + 1.0) / (0.05 * std::log(4.0) + 1.0));

    // dynamic: unchanged within the context; past it theta grows by (f·L/L₀ − (f − 1))^(d/(d−2)).
    j = llama_base();
    j["max_position_embeddings"] = 2048;
    j["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}};
    c = ModelConfig::from_json(j);
    auto plain = c;
    plain.rope_scaling = {};
    QCOMPARE(rope_inverse_frequencies(c, 2048), rope_inverse_frequencies(plain));
    const double theta = 10000 * std::pow(2.0 * 4096 / 2048 - 1, 32.0 / 30);
    QVERIFY(std::abs(rope_inverse_frequencies(c, 4096)[3] - 1 / std::pow(theta, 6.0 / 32)) < 1e-7);

    // longrope (Phi-3 128k): short factors within the original context, long ones past it; the
    // attention factor from max/original context.
    j = llama_base();
    j["model_type"] = "phi3";
    j["max_position_embeddings"] = 131072;
    j["original_max_position_embeddings"] = 4096;
    std::vector<double> shorts(16), longs(16);
    for (int i = 0; i < 16; ++i) {
      shorts[i] = 1.0 + 0.01 * i;
      longs[i] = 1.0 + i;
    }
    j["rope_scaling"] = {{"type", "longrope"}, {"short_factor", shorts}, {"long_factor", longs}};
    c = ModelConfig::from_json(j);
    QCOMPARE(rope_attention_scaling(c), std::sqrt(1 + std::log(32.0) / std::log(4096.0)));
    for (int i : {0, 7, 15}) {
      const double plain_i = std::pow(10000.0, 2.0 * i / 32);
      QVERIFY(std::abs(rope_inverse_frequencies(c, 4096)[i] - 1 / (shorts[i] * plain_i)) < 1e-6 / plain_i);
      QVERIFY(std::abs(rope_inverse_frequencies(c, 4097)[i] - 1 / (longs[i] * plain_i)) < 1e-6 / plain_i);
    }
    j["rope_scaling"]["long_factor"] = std::vector<double>(15, 1.0);
    const auto e = error_of([&] { ModelConfig::from_json(j, "phi/config.json"); });
    QVERIFY2(contains(e, "phi/config.json") && contains(e, "long_factor") && contains(e, "16"), e.c_str());
  }

  void llama3RopeScaling() {
    auto j = llama_base();
    j["hidden_size"] = 4096;
    j["num_attention_heads"] = 32;
    j["rope_theta"] = 500000.0;
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}};
    const auto c = ModelConfig::from_json(j);
    QCOMPARE(c.rope_scaling.kind, RopeScaling::Kind::Llama3);
    QCOMPARE(c.rope_scaling.factor, 8.0);
    QCOMPARE(c.rope_scaling.original_max_position_embeddings, std::int64_t{8192});

    auto plain = c;
    plain.rope_scaling = {};
    const auto scaled = rope_inverse_frequencies(c), base = rope_inverse_frequencies(plain);
    QCOMPARE(scaled.size(), std::size_t{64});
    QCOMPARE(base[0], 1.0f);
    QVERIFY(std::abs(base[1] - float(1 / std::pow(500000.0, 2.0 / 128))) < 1e-9f);
    int kept = 0, slowed = 0, between = 0;
    for (std::size_t i = 0; i < base.size(); ++i) {
      const double wavelen = 2 * std::numbers::pi / base[i];
      if (wavelen < 8192.0 / 4) {  // short wavelengths stay
        QCOMPARE(scaled[i], base[i]);
        ++kept;
      } else if (wavelen > 8192.0) {  // long ones are slowed down by the factor
        QVERIFY(std::abs(scaled[i] - base[i] / 8) <= 1e-6f * base[i]);
        ++slowed;
      } else {  // the band between is interpolated
        QVERIFY(scaled[i] < base[i] && scaled[i] > base[i] / 8);
        ++between;
      }
    }
    QVERIFY(kept > 0 && slowed > 0 && between > 0);
    // A value of the band computed by hand: index 30, wavelength 2π·500000^(60/128) ≈ 3000.
    const double inv = 1 / std::pow(500000.0, 60.0 / 128), smooth = (8192 * inv / (2 * std::numbers::pi) - 1) / 3;
    QVERIFY(smooth > 0 && smooth < 1);
    QVERIFY(std::abs(scaled[30] - ((1 - smooth) * inv / 8 + smooth * inv)) < 1e-6 * inv);

    auto linear = j;
    linear["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
    const auto lc = ModelConfig::from_json(linear);
    QCOMPARE(lc.rope_scaling.kind, RopeScaling::Kind::Linear);
    QCOMPARE(rope_inverse_frequencies(lc)[5], base[5] / 2);
  }

  void gpt2Config() {
    const json j{{"model_type", "gpt2"}, {"n_embd", 768}, {"n_layer", 12}, {"n_head", 12}, {"vocab_size", 50257},
                 {"n_positions", 1024}, {"layer_norm_epsilon", 1e-5}, {"activation_function", "gelu_new"}};
    const auto c = ModelConfig::from_json(j);
    QCOMPARE(c.family, ModelFamily::Gpt2);
    QCOMPARE(c.head_dim, std::int64_t{64});
    QCOMPARE(c.intermediate_size, std::int64_t{3072});
    QCOMPARE(c.max_position_embeddings, std::int64_t{1024});
    QVERIFY(c.tie_word_embeddings);
    auto bad = j;
    bad["activation_function"] = "swish";
    QVERIFY(contains(error_of([&] { ModelConfig::from_json(bad, "gpt2/config.json"); }), "activation_function"));
  }

  void errorsNameFileAndKey() {
    auto missing = llama_base();
    missing.erase("hidden_size");
    auto e = error_of([&] { ModelConfig::from_json(missing, "m/config.json"); });
    QVERIFY2(contains(e, "m/config.json") && contains(e, "'hidden_size'") && contains(e, "missing"), e.c_str());

    auto negative = llama_base();
    negative["num_hidden_layers"] = -3;
    e = error_of([&] { ModelConfig::from_json(negative); });
    QVERIFY2(contains(e, "config.json") && contains(e, "num_hidden_layers") && contains(e, "-3"), e.c_str());

    auto text = llama_base();
    text["vocab_size"] = "big";
    QVERIFY(contains(error_of([&] { ModelConfig::from_json(text); }), "vocab_size"));

    auto fraction = llama_base();
    fraction["intermediate_size"] = 511.5;
    QVERIFY(contains(error_of([&] { ModelConfig::from_json(fraction); }), "intermediate_size"));

    auto whole = llama_base();
    whole["intermediate_size"] = 512.0;  // whole numbers written as floats are fine
    QCOMPARE(ModelConfig::from_json(whole).intermediate_size, std::int64_t{512});

    auto groups = llama_base();
    groups["num_key_value_heads"] = 3;
    QVERIFY(contains(error_of([&] { ModelConfig::from_json(groups); }), "num_key_value_heads 3"));

    auto indivisible = llama_base();
    indivisible["num_attention_heads"] = 7;
    QVERIFY(contains(error_of([&] { ModelConfig::from_json(indivisible); }), "not divisible"));

    // Absurd sizes are refused by name before anything is built from them.
    auto absurd = llama_base();
    absurd["num_hidden_layers"] = 1000000000;
    e = error_of([&] { ModelConfig::from_json(absurd, "big/config.json"); });
    QVERIFY2(contains(e, "big/config.json") && contains(e, "'num_hidden_layers'") && contains(e, "1000000000"), e.c_str());
    absurd = llama_base();
    absurd["hidden_size"] = 1 << 19;  // each size within bounds, together ~10^15 parameters
    absurd["intermediate_size"] = 1 << 22;
    absurd["num_hidden_layers"] = 1 << 13;
    absurd["num_attention_heads"] = 1 << 10;
    QVERIFY(contains(error_of([&] { ModelConfig::from_json(absurd); }), "trillion parameters"));

    auto type = llama_base();
    type["model_type"] = "mamba";
    QVERIFY(contains(error_of([&] { ModelConfig::from_json(type); }), "'mamba' is not supported"));

    auto rope = llama_base();
    rope["rope_scaling"] = {{"rope_type", "mrope"}, {"factor", 4.0}};  // Qwen2-VL's, not a text model's
    QVERIFY(contains(error_of([&] { ModelConfig::from_json(rope); }), "'mrope' is not supported"));
    rope["rope_scaling"] = {{"rope_type", "yarn"}};
    QVERIFY(contains(error_of([&] { ModelConfig::from_json(rope); }), "factor"));
    rope["rope_scaling"] = {{"rope_type", "llama3"}};
    QVERIFY(contains(error_of([&] { ModelConfig::from_json(rope); }), "factor"));

    auto act = llama_base();
    act["hidden_act"] = "relu2";
    QVERIFY(contains(error_of([&] { ModelConfig::from_json(act); }), "hidden_act"));

    auto dtype = llama_base();
    dtype["torch_dtype"] = "float7";
    QVERIFY(contains(error_of([&] { ModelConfig::from_json(dtype); }), "float7"));

    QVERIFY(contains(error_of([] { ModelConfig::from_json(json::array()); }), "JSON object"));
  }

  void gptqConfig() {
    auto j = llama_base();
    j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 128}, {"desc_act", true}};
    auto c = ModelConfig::from_json(j);
    QVERIFY(c.gptq);
    QCOMPARE(c.gptq->bits, 4);
    QCOMPARE(c.gptq->group_size, std::int64_t{128});
    QVERIFY(c.gptq->desc_act && c.gptq->zero_offset);

    // bitsandbytes: 8-bit and 4-bit checkpoints are read as such.
    j["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}, {"llm_int8_skip_modules", {"mlp.down_proj"}}};
    c = ModelConfig::from_json(j);
    QVERIFY(c.bnb && !c.gptq && c.bnb->method == Quantization::Method::Bnb8);
    QCOMPARE(c.bnb->skip_modules, std::vector<std::string>{"mlp.down_proj"});
    j["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"bnb_4bit_quant_type", "nf4"}};
    c = ModelConfig::from_json(j);
    QVERIFY(c.bnb && c.bnb->method == Quantization::Method::Bnb4 && c.bnb->quant_type == "nf4");
    j["quantization_config"]["bnb_4bit_quant_type"] = "int3";
    const std::string refused = error_of([&] { ModelConfig::from_json(j, "m/config.json"); });
    QVERIFY2(contains(refused, "m/config.json") && contains(refused, "bnb_4bit_quant_type"), refused.c_str());

    // AutoGPTQ's quantize_config.json: no quant_method, group_size -1 for one group.
    const auto q = GptqConfig::from_json(json{{"bits", 8}, {"group_size", -1}, {"checkpoint_format", "gptq_v2"}},
                                         "quantize_config.json");
    QCOMPARE(q.bits, 8);
    QCOMPARE(q.group_size, std::int64_t{-1});
    QVERIFY(!q.zero_offset);

    auto e = error_of([] { GptqConfig::from_json(json{{"bits", 3}}, "quantize_config.json"); });
    QVERIFY2(contains(e, "quantize_config.json") && contains(e, "'bits'"), e.c_str());
    // AWQ: the GEMM layout at 4 bits reads; another layout or width is refused by key.
    j["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 64}, {"version", "GEMM"}};
    c = ModelConfig::from_json(j);
    QVERIFY(c.awq && !c.gptq && !c.bnb && c.awq->group_size == 64);
    j["quantization_config"]["version"] = "gemv";
    e = error_of([&] { ModelConfig::from_json(j); });
    QVERIFY2(contains(e, "'version'") && contains(e, "gemv"), e.c_str());
    j["quantization_config"]["version"] = "gemm";
    j["quantization_config"]["bits"] = 3;
    e = error_of([&] { ModelConfig::from_json(j); });
    QVERIFY2(contains(e, "'bits'"), e.c_str());
  }

  void generationDefaults() {
    const json config{{"eos_token_id", 2}};
    auto o = generation_defaults(json::object(), config);
    QCOMPARE(o.eos_token_ids, std::vector<std::int64_t>{2});
    QVERIFY(o.sampling.greedy());

    const json g{{"do_sample", true}, {"temperature", 0.6}, {"top_p", 0.9}, {"top_k", 50},
                 {"eos_token_id", json::array({128001, 128008, 128009})}, {"max_new_tokens", 64}};
    o = generation_defaults(g, config);
    QCOMPARE(o.eos_token_ids, (std::vector<std::int64_t>{128001, 128008, 128009}));
    QVERIFY(!o.sampling.greedy());
    QCOMPARE(o.sampling.temperature, 0.6);
    QCOMPARE(o.sampling.top_k, std::int64_t{50});
    QCOMPARE(o.max_new_tokens, std::int64_t{64});

    QVERIFY(contains(error_of([] { generation_defaults(json{{"top_p", 1.5}}, json::object()); }), "top_p"));
    QVERIFY(contains(error_of([] { generation_defaults(json{{"eos_token_id", "x"}}, json::object(), "g.json"); }),
                     "g.json: key 'eos_token_id'"));
    QVERIFY(contains(error_of([] { generation_defaults(json{{"top_k", 2.5}}, json::object()); }), "top_k"));
  }
};

QTEST_MAIN(TestRunConfig)
#include "test_run_config.moc"
