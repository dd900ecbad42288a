// Skeletons must equal the module tree transformers builds: checked against the demo checkpoint and
// against the conformance cases' skeletons, which were taken from real models.
#include "testkit.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "error.hpp"
#include "format/atomic_file.hpp"
#include "format/checkpoint.hpp"
#include "format/safetensors.hpp"
#include "model/model_source.hpp"
#include "model/module_sizes.hpp"

using namespace devicemap;

class SkeletonTest : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void demo_checkpoint_tree();
  void config_skeleton_equals_real_llama2();
  void config_skeleton_equals_real_qwen2();
  void json_round_trip();
  void generic_skeleton_for_unknown_type();
  void every_catalog_model_builds();
  void config_that_is_not_an_object_is_refused();
  void newest_catalog_models();
  void bad_skeleton_json_names_the_key();
};

void SkeletonTest::demo_checkpoint_tree() {
  const auto ckpt = Checkpoint::open(testkit::demo_dir());
  const Skeleton s = skeleton_from_checkpoint(ckpt);
  QCOMPARE(QString::fromStdString(s.model_type), QString("llama"));
  // Top-level order and classes.
  std::vector<std::string> top;
  for (int c : s.modules[static_cast<std::size_t>(s.find_module("model"))].children) top.push_back(s.modules[static_cast<std::size_t>(c)].name);
  QCOMPARE(top, (std::vector<std::string>{"model.embed_tokens", "model.layers", "model.norm", "model.rotary_emb"}));
  QCOMPARE(s.modules[0].children.size(), std::size_t(2));
  QCOMPARE(QString::fromStdString(s.modules[static_cast<std::size_t>(s.modules[0].children[1])].name), QString("lm_head"));
  QCOMPARE(QString::fromStdString(s.modules[static_cast<std::size_t>(s.find_module("model.layers.4"))].cls), QString("LlamaDecoderLayer"));
  QVERIFY(s.modules[static_cast<std::size_t>(s.find_module("model.layers.4"))].is_layer);
  QCOMPARE(s.no_split_module_classes, std::vector<std::string>{"LlamaDecoderLayer"});
  // Tied lm_head: absent from the file, created last, sharing the embedding.
  QVERIFY(!ckpt.find("lm_head.weight"));
  const int alias = s.find_tensor("lm_head.weight");
  QVERIFY(alias >= 0);
  QCOMPARE(s.tensors[static_cast<std::size_t>(alias)].tied_to, s.find_tensor("model.embed_tokens.weight"));
  QCOMPARE(s.tie_groups(), (std::vector<std::vector<std::string>>{{"lm_head.weight", "model.embed_tokens.weight"}}));
  // Sizes: every stored byte counted once, plus the rotary buffer (head_dim 8 → 4 floats).
  const auto inv_freq = s.find_tensor("model.rotary_emb.inv_freq");
  QVERIFY(inv_freq >= 0);
  QCOMPARE(s.tensors[static_cast<std::size_t>(inv_freq)].shape, std::vector<std::int64_t>{4});
  QCOMPARE(std::uint64_t(compute_module_sizes(s).total()), ckpt.total_bytes() + 16);
  // Layer 0's parameters in registration order.
  std::vector<std::string> layer0;
  const auto skeleton_json = s.to_json();
  for (const auto& p : skeleton_json["params"]) {
    const auto name = p[0].get<std::string>();
    if (name.starts_with("model.layers.0.")) layer0.push_back(name.substr(15));
  }
  QCOMPARE(layer0, (std::vector<std::string>{"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                                              "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                                              "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight"}));
}

void SkeletonTest::config_skeleton_equals_real_llama2() {
  const auto spec = testkit::read_json(testkit::data_dir() / "conformance" / "llama2_7b.json");
  auto config = spec["config"];
  config["model_type"] = "llama";
  const auto ours = skeleton_from_config(config).to_json();
  const auto real = Skeleton::from_json(spec, "llama2_7b").to_json();
  QCOMPARE(ours["params"].dump(), real["params"].dump());
  QCOMPARE(ours["buffers"].dump(), real["buffers"].dump());
  QCOMPARE(ours["modules"].dump(), real["modules"].dump());
  QCOMPARE(ours["module_classes"].dump(), real["module_classes"].dump());
  QCOMPARE(ours["no_split_module_classes"].dump(), real["no_split_module_classes"].dump());
}

void SkeletonTest::config_skeleton_equals_real_qwen2() {
  const auto spec = testkit::read_json(testkit::data_dir() / "conformance" / "qwen2_0_5b.json");
  auto config = spec["config"];
  config["model_type"] = "qwen2";
  const Skeleton ours = skeleton_from_config(config);
  const auto real = Skeleton::from_json(spec, "qwen2_0_5b").to_json();
  QCOMPARE(ours.to_json()["params"].dump(), real["params"].dump());
  QCOMPARE(ours.to_json()["tied"].dump(), real["tied"].dump());
  // Classes of every module the case names agree (the case predates act_fn/rotary_emb listing).
  for (const auto& [name, cls] : real["module_classes"].items()) {
    const int m = ours.find_module(name);
    QVERIFY2(m >= 0, name.c_str());
    QCOMPARE(QString::fromStdString(ours.modules[static_cast<std::size_t>(m)].cls), QString::fromStdString(cls.get<std::string>()));
  }
}

void SkeletonTest::json_round_trip() {
  const Skeleton a = skeleton_from_checkpoint(Checkpoint::open(testkit::demo_dir()));
  const Skeleton b = Skeleton::from_json(a.to_json(), "round trip");
  QCOMPARE(b.to_json().dump(), a.to_json().dump());
  auto with_extra = a.to_json();
  with_extra["some_future_key"] = {1, 2, 3};
  QCOMPARE(Skeleton::from_json(with_extra, "extra").to_json().dump(), a.to_json().dump());
}

void SkeletonTest::generic_skeleton_for_unknown_type() {
  testkit::TempDir dir;
  std::vector<float> w(4, 1.0f);
  std::vector<TensorToWrite> tensors;
  for (int i : {10, 2, 0, 1}) {
    tensors.push_back({"net.blocks." + std::to_string(i) + ".proj.weight", DType::F32, {2, 2},
                       std::as_bytes(std::span<const float>(w))});
  }
  tensors.push_back({"net.head.weight", DType::F32, {2, 2}, std::as_bytes(std::span<const float>(w))});
  write_safetensors(dir / "model.safetensors", tensors);
  write_file_atomically(dir / "config.json", std::string(R"({"model_type": "mystery"})"));
  const Skeleton s = skeleton_from_checkpoint(Checkpoint::open(dir.path()));
  std::vector<std::string> blocks;
  for (int c : s.modules[static_cast<std::size_t>(s.find_module("net.blocks"))].children)
    blocks.push_back(s.modules[static_cast<std::size_t>(c)].name);
  QCOMPARE(blocks, (std::vector<std::string>{"net.blocks.0", "net.blocks.1", "net.blocks.2", "net.blocks.10"}));
  QVERIFY(s.modules[static_cast<std::size_t>(s.find_module("net.blocks.10"))].is_layer);
  QCOMPARE(s.no_split_module_classes, std::vector<std::string>{"Block"});
  QCOMPARE(s.warnings.size(), std::size_t(1));
  QVERIFY(QString::fromStdString(s.warnings[0]).contains("mystery"));
}

// Found by fuzz_config: a config.json that is a bare number, or whose model_type is not a string, was
// an internal JSON type error; it is a clear Error naming the file.
void SkeletonTest::config_that_is_not_an_object_is_refused() {
  DM_EXPECT_ERROR(skeleton_from_config(nlohmann::json::parse("2")), "config.json", "JSON object");
  DM_EXPECT_ERROR(skeleton_from_config(nlohmann::json::parse(R"({"model_type": 7})")), "config.json", "model_type", "7");
}

void SkeletonTest::every_catalog_model_builds() {
  const auto entries = catalog();
  QVERIFY(entries.size() >= 9);
  for (const auto& e : entries) {
    const Skeleton s = open_model("catalog:" + e.id).skeleton;
    QVERIFY2(s.total_bytes() > 0, e.id.c_str());
    QVERIFY2(!s.no_split_module_classes.empty(), e.id.c_str());
  }
  // Llama 3.1 70B: 70.6 B parameters in bf16.
  const auto s70 = open_model("catalog:llama-3.1-70b").skeleton;
  std::uint64_t params70 = 0;
  for (const auto& t : s70.tensors)
    if (!t.buffer && t.tied_to < 0) params70 += t.numel();
  QCOMPARE(params70, std::uint64_t(70553706496));
  // GPT-2 124M: tied lm_head, 124,439,808 parameters in float32.
  const auto gpt2 = open_model("catalog:gpt2").skeleton;
  std::uint64_t params = 0;
  for (const auto& t : gpt2.tensors)
    if (!t.buffer && t.tied_to < 0) params += t.numel();
  QCOMPARE(params, std::uint64_t(124439808));
  // Model cards and Hub pages: Llama 3.3 70B as 3.1 (70,553,706,496), Mistral Small 3 "24B" (23.6B),
  // Phi-4 "14.7B".
  for (const auto& [id, total] : {std::pair{"llama-3.3-70b", 70553706496.0}, std::pair{"mistral-small-3-24b", 23.57e9},
                                  std::pair{"phi-4", 14.66e9}}) {
    double all = 0;
    for (const auto& t : open_model(std::string("catalog:") + id).skeleton.tensors)
      if (!t.buffer && t.tied_to < 0) all += double(t.numel());
    QVERIFY2(std::abs(all - total) < 0.01e9, (std::string(id) + ": " + std::to_string(all)).c_str());
  }
  // Qwen3 (model cards: 8B "8.2B, non-embedding 6.95B"; 32B "32.8B, non-embedding 31.2B"; 30B-A3B "30.5B,
  // non-embedding 29.9B"; 235B-A22B "235B, non-embedding 234B"). Per head q_norm and k_norm included;
  // untied heads, so the embedding counts twice; every expert of the MoE ones counts.
  for (const auto& [id, total, non_embedding] :
       {std::tuple{"qwen3-8b", 8.2e9, 6.95e9}, std::tuple{"qwen3-32b", 32.8e9, 31.2e9}, std::tuple{"qwen3-30b-a3b", 30.5e9, 29.9e9},
        std::tuple{"qwen3-235b-a22b", 235e9, 234e9}}) {
    const auto q = open_model(std::string("catalog:") + id).skeleton;
    double all = 0, embeddings = 0;
    for (const auto& t : q.tensors) {
      if (t.buffer || t.tied_to >= 0) continue;
      all += double(t.numel());
      if (t.name == "model.embed_tokens.weight" || t.name == "lm_head.weight") embeddings += double(t.numel());
    }
    // The cards round to a tenth of a billion (235B: to a billion).
    const double slack = total > 100e9 ? 0.5e9 : 0.05e9;
    QVERIFY2(std::abs(all - total) < slack, id);
    QVERIFY2(std::abs(all - embeddings - non_embedding) < slack, id);
    QVERIFY2(std::any_of(q.tensors.begin(), q.tensors.end(),
                         [](const auto& t) { return t.name == "model.layers.0.self_attn.k_norm.weight" && t.numel() == 128; }),
             id);
  }
}

void SkeletonTest::newest_catalog_models() {
  auto params = [](const Skeleton& s) {
    double all = 0;
    for (const auto& t : s.tensors)
      if (!t.buffer && t.tied_to < 0) all += double(t.numel());
    return all;
  };
  auto find = [](const Skeleton& s, const char* name) -> const SkeletonTensor* {
    const int i = s.find_tensor(name);
    return i < 0 ? nullptr : &s.tensors[static_cast<std::size_t>(i)];
  };
  // Gemma 3 (Hub pages: 27B "27.4B", 4B "4.3B", 1B "1B" params): the multimodal ones with SigLIP's
  // image encoder and the projector, the language model under model.language_model, a tied head.
  for (const auto& [id, total, slack] : {std::tuple{"gemma-3-27b", 27.4e9, 0.05e9}, std::tuple{"gemma-3-4b", 4.3e9, 0.01e9},
                                         std::tuple{"gemma-3-1b", 1.0e9, 0.01e9}}) {
    const Skeleton s = open_model(std::string("catalog:") + id).skeleton;
    QVERIFY2(std::abs(params(s) - total) < slack, (std::string(id) + ": " + std::to_string(params(s))).c_str());
  }
  const Skeleton g27 = open_model("catalog:gemma-3-27b").skeleton;
  QVERIFY(find(g27, "model.language_model.layers.61.post_feedforward_layernorm.weight"));
  QVERIFY(find(g27, "model.language_model.layers.0.self_attn.q_norm.weight"));
  QVERIFY(find(g27, "model.vision_tower.vision_model.encoder.layers.26.mlp.fc2.bias"));
  QCOMPARE(find(g27, "model.multi_modal_projector.mm_input_projection_weight")->shape, (std::vector<std::int64_t>{1152, 5376}));
  QCOMPARE(find(g27, "model.vision_tower.vision_model.embeddings.position_embedding.weight")->shape,
           (std::vector<std::int64_t>{4096, 1152}));
  QVERIFY(find(g27, "lm_head.weight") && find(g27, "lm_head.weight")->tied_to >= 0);
  QVERIFY(std::find(g27.no_split_module_classes.begin(), g27.no_split_module_classes.end(), "SiglipEncoderLayer") !=
          g27.no_split_module_classes.end());
  QCOMPARE(g27.modules[static_cast<std::size_t>(g27.find_module("model.language_model.layers.3"))].is_layer, true);

  // DeepSeek-V3 (model card: 671B total, 37B activated; the Hub's 685B adds the multi-token prediction
  // layer, which transformers does not build): latent attention, 3 dense layers, then 256 routed
  // experts plus a shared one; float8 weights with a float32 inverse scale per 128 × 128 block.
  const Skeleton ds = open_model("catalog:deepseek-v3").skeleton;
  QVERIFY2(std::abs(params(ds) - 671e9) < 0.5e9, std::to_string(params(ds)).c_str());
  QVERIFY(find(ds, "model.layers.2.mlp.down_proj.weight") && !find(ds, "model.layers.2.mlp.experts.0.up_proj.weight"));
  QVERIFY(find(ds, "model.layers.3.mlp.experts.255.down_proj.weight") && !find(ds, "model.layers.3.mlp.down_proj.weight"));
  QVERIFY(find(ds, "model.layers.60.mlp.shared_experts.gate_proj.weight"));
  QVERIFY(!find(ds, "model.layers.61.input_layernorm.weight"));
  const SkeletonTensor* kv_b = find(ds, "model.layers.0.self_attn.kv_b_proj.weight");
  QCOMPARE(kv_b->shape, (std::vector<std::int64_t>{128 * (128 + 128), 512}));
  QCOMPARE(kv_b->dtype, DType::F8_E4M3);
  QCOMPARE(find(ds, "model.layers.0.self_attn.kv_b_proj.weight_scale_inv")->shape, (std::vector<std::int64_t>{256, 4}));
  // q_a_proj: 1536 × 7168 → 12 × 56 blocks; the router, the norms, embeddings and head stay bfloat16.
  QCOMPARE(find(ds, "model.layers.5.self_attn.q_a_proj.weight_scale_inv")->shape, (std::vector<std::int64_t>{12, 56}));
  QCOMPARE(find(ds, "model.layers.5.mlp.gate.weight")->dtype, DType::BF16);
  QCOMPARE(find(ds, "lm_head.weight")->dtype, DType::BF16);
  QVERIFY(!find(ds, "lm_head.weight_scale_inv"));
  QVERIFY(find(ds, "model.layers.3.mlp.gate.e_score_correction_bias") && !find(ds, "model.layers.2.mlp.gate.e_score_correction_bias"));
  // A float8 weight keeps its byte when a plan asks for bfloat16 (Accelerate counts no tensor above its size).
  const auto sizes = compute_module_sizes(ds, DType::BF16, Flavor::Transformers);
  QCOMPARE(sizes.tensor[static_cast<std::size_t>(ds.find_tensor("model.layers.0.self_attn.kv_b_proj.weight"))],
           std::int64_t(128 * 256 * 512));
}

void SkeletonTest::bad_skeleton_json_names_the_key() {
  // Qwen2-MoE (planning only from its config): experts of moe_intermediate_size, the shared expert of its
  // own size and its one-output gate, as Qwen2MoeSparseMoeBlock registers them.
  {
    const Skeleton q = skeleton_from_config(nlohmann::json{
        {"model_type", "qwen2_moe"}, {"hidden_size", 64}, {"intermediate_size", 256}, {"moe_intermediate_size", 32},
        {"shared_expert_intermediate_size", 96}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
        {"num_experts", 3}, {"num_experts_per_tok", 2}, {"vocab_size", 100}});
    const auto shape = [&](const char* name) {
      const int i = q.find_tensor(name);
      return i < 0 ? std::vector<std::int64_t>{} : q.tensors[static_cast<std::size_t>(i)].shape;
    };
    QCOMPARE(shape("model.layers.1.mlp.experts.2.down_proj.weight"), (std::vector<std::int64_t>{64, 32}));
    QCOMPARE(shape("model.layers.1.mlp.shared_expert.up_proj.weight"), (std::vector<std::int64_t>{96, 64}));
    QCOMPARE(shape("model.layers.1.mlp.shared_expert_gate.weight"), (std::vector<std::int64_t>{1, 64}));
    QCOMPARE(shape("model.layers.0.self_attn.q_proj.bias"), (std::vector<std::int64_t>{64}));
    QVERIFY(shape("model.layers.0.self_attn.o_proj.bias").empty());
    QVERIFY(shape("model.layers.0.mlp.experts.3.up_proj.weight").empty());
  }
  // A config claiming absurd sizes is refused by name before a module is built.
  try {
    skeleton_from_config(nlohmann::json{{"model_type", "llama"}, {"hidden_size", 64}, {"intermediate_size", 128},
                                        {"num_hidden_layers", 1000000000}, {"num_attention_heads", 4}, {"vocab_size", 100}});
    QFAIL("planned a billion layers");
  } catch (const Error& e) {
    QVERIFY2(QString(e.what()).contains("'num_hidden_layers'") && QString(e.what()).contains("1000000000"), e.what());
  }
  // Many layers of many tiny experts: few parameters, but billions of tensors to build.
  try {
    skeleton_from_config(nlohmann::json{{"model_type", "mixtral"}, {"hidden_size", 2}, {"intermediate_size", 2},
                                        {"num_hidden_layers", 8000}, {"num_local_experts", 16000}, {"num_attention_heads", 1},
                                        {"vocab_size", 10}});
    QFAIL("planned 128 million experts");
  } catch (const Error& e) {
    QVERIFY2(QString(e.what()).contains("num_hidden_layers × experts") && QString(e.what()).contains("128000000"), e.what());
  }
  // A negative size is refused too (it used to plan an embedding of -5 rows as a smaller model).
  try {
    skeleton_from_config(nlohmann::json{{"model_type", "llama"}, {"hidden_size", 64}, {"intermediate_size", 128},
                                        {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"vocab_size", -5}});
    QFAIL("planned a vocabulary of -5");
  } catch (const Error& e) {
    QVERIFY2(QString(e.what()).contains("'vocab_size' is -5") && QString(e.what()).contains("negative"), e.what());
  }
  // Also one level down, in a multimodal config's text_config.
  try {
    skeleton_from_config(nlohmann::json{{"model_type", "gemma3"},
                                        {"text_config", {{"hidden_size", 64}, {"num_hidden_layers", 1000000000}}},
                                        {"vision_config", {{"hidden_size", 32}}}});
    QFAIL("planned a billion layers");
  } catch (const Error& e) {
    QVERIFY2(QString(e.what()).contains("text_config: key 'num_hidden_layers'"), e.what());
  }
  const auto expect_error = [](const nlohmann::json& j, const char* needle) {
    try {
      Skeleton::from_json(j, "broken.json");
      QFAIL("accepted a broken skeleton");
    } catch (const Error& e) {
      QVERIFY2(QString(e.what()).contains("broken.json") && QString(e.what()).contains(needle), e.what());
    }
  };
  expect_error(nlohmann::json::array(), "object");
  expect_error({{"modules", {"a"}}}, "params");
  expect_error({{"params", {{"a.weight", {2, -1}, "F32"}}}}, "a.weight");
  expect_error({{"params", {{"a.weight", {2, 2}, "F33"}}}}, "F33");
  expect_error({{"params", {{"a.weight", {2}, "F32"}, {"a.weight", {2}, "F32"}}}}, "twice");
  expect_error({{"params", {{"a.weight", {2}, "F32"}}}, {"tied", nlohmann::json::array({nlohmann::json::array({"b.weight", "c.weight"})})}}, "b.weight");
  // Found by fuzz_plan_inputs: an alias that is not a name escaped as a JSON type error.
  expect_error({{"params", {{"a.weight", {2}, "F32"}}}, {"tied", nlohmann::json::array({nlohmann::json::array({"a.weight", {1}})})}}, "tied");
}

QTEST_MAIN(SkeletonTest)
#include "test_skeleton.moc"
