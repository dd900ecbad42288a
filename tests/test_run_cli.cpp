// The commands that need the running layer, through the built `devicemap` executable: run (ids, text,
// JSON, planned or given maps), make-model, and their errors.
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "format/safetensors.hpp"
#include "testkit.hpp"

namespace fs = std::filesystem;

namespace {

using testkit::ids_of;

nlohmann::json expected() { return testkit::read_json(testkit::demo_dir() / "expected_greedy.json"); }

std::string demo() { return testkit::demo_dir().string(); }

// IEEE half to float, exactly (normal, subnormal, zero; the test's weights hold nothing else).
float half_to_float(std::uint16_t h) {
  const int exponent = (h >> 10) & 31, mantissa = h & 1023;
  const float magnitude = exponent == 0 ? std::ldexp(float(mantissa), -24) : std::ldexp(float(mantissa + 1024), exponent - 25);
  return (h & 0x8000) ? -magnitude : magnitude;
}

// Every file of a folder and its bytes.
std::map<std::string, std::string> folder_contents(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    out[e.path().filename().string()] = bytes.str();
  }
  return out;
}

}  // namespace

class TestRunCli : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void runPrintsGreedyIds() {
    testkit::TempDir dir;
    std::ofstream(dir / "map.json") << R"({"model.embed_tokens": "cpu", "model.layers": "disk", "model.norm": "cpu", "lm_head": "cpu"})";
    const auto r = testkit::run_cli({"run", demo(), "--device-map", (dir / "map.json").string(), "--prompt-ids", "1",
                                     "--max-new-tokens", "200", "--greedy", "--output", "ids"});
    QVERIFY2(r.code == 0, r.err.c_str());
    const auto reference = expected()["greedy_ids_including_bos"].get<std::vector<std::int64_t>>();
    QCOMPARE(ids_of(r.out), reference);  // the whole sequence, the prompt's BOS included
  }

  void anEmptyPromptIsBosAlone() {
    const auto r = testkit::run_cli({"run", demo(), "--prompt", "", "--max-new-tokens", "4", "--greedy", "--output", "ids"});
    QVERIFY2(r.code == 0, r.err.c_str());
    const auto reference = expected()["greedy_ids_including_bos"].get<std::vector<std::int64_t>>();
    QCOMPARE(ids_of(r.out), std::vector<std::int64_t>(reference.begin(), reference.begin() + 5));
  }

  void runPlansAndStreamsText() {
    // No map given: planned for this machine, as `devicemap plan` would.
    const auto r = testkit::run_cli({"run", demo(), "--prompt", "Once upon a time", "--max-new-tokens", "40", "--stats"});
    QVERIFY2(r.code == 0, r.err.c_str());
    const std::string text = expected()["expected_text"].get<std::string>();
    QVERIFY(r.out.size() > 20 && r.out.back() == '\n');
    const std::string story = "Once upon a time" + r.out.substr(0, r.out.size() - 1);
    QVERIFY2(text.rfind(story, 0) == 0, story.c_str());
    QVERIFY2(r.err.find("tok/s") != std::string::npos && r.err.find("device map:") != std::string::npos, r.err.c_str());
  }

  void runJson() {
    const auto r = testkit::run_cli({"run", demo(), "--prompt-ids", "1,403,407", "--max-new-tokens", "5", "--format", "json"});
    QVERIFY2(r.code == 0, r.err.c_str());
    const auto j = nlohmann::json::parse(r.out);
    const auto reference = expected()["greedy_ids_including_bos"].get<std::vector<std::int64_t>>();
    QCOMPARE(j["prompt_ids"].get<std::vector<std::int64_t>>(), (std::vector<std::int64_t>{1, 403, 407}));
    QCOMPARE(j["ids"].get<std::vector<std::int64_t>>(), std::vector<std::int64_t>(reference.begin() + 3, reference.begin() + 8));
    DM_COMPARE_STR(j["stop"].get<std::string>(), std::string("max_new_tokens"));
    // The text continues the prompt "Once upon": the first new word keeps its space.
    DM_COMPARE_STR(j["text"].get<std::string>(), std::string(" a time, there was"));
  }

  void makeModelThenRunIt() {
    testkit::TempDir dir;
    std::ofstream(dir / "config.json") << R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
      "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300,
      "max_position_embeddings": 128, "bos_token_id": 1, "eos_token_id": 2})";
    auto r = testkit::run_cli({"make-model", (dir / "m").string(), "--config", (dir / "config.json").string(), "--layers", "3",
                               "--dtype", "bfloat16", "--shard-size", "40KB"});
    QVERIFY2(r.code == 0, r.err.c_str());
    QVERIFY(fs::exists(dir / "m" / "model.safetensors.index.json"));
    const auto config = testkit::read_json(dir / "m" / "config.json");
    QCOMPARE(config["num_hidden_layers"].get<int>(), 3);
    DM_COMPARE_STR(config["torch_dtype"].get<std::string>(), std::string("bfloat16"));

    r = testkit::run_cli({"run", (dir / "m").string(), "--prompt-ids", "1 5 9", "--max-new-tokens", "6", "--output", "ids", "--greedy",
                          "--stats"});
    QVERIFY2(r.code == 0, r.err.c_str());
    const auto ids = ids_of(r.out);
    QVERIFY(ids.size() > 3 && ids.size() <= 9);  // a random model may still hit its stop id
    QCOMPARE(std::vector<std::int64_t>(ids.begin(), ids.begin() + 3), (std::vector<std::int64_t>{1, 5, 9}));
    for (const auto id : ids) QVERIFY(id >= 0 && id < 300);
    QVERIFY2(r.err.find("bfloat16") != std::string::npos, r.err.c_str());

    r = testkit::run_cli({"make-model", (dir / "m").string(), "--config", (dir / "config.json").string()});
    QCOMPARE(r.code, 1);  // refuses to overwrite without --force
    QVERIFY(r.err.find("--force") != std::string::npos);
  }

  // Every model_type the runtime runs, from make-model through `run`: greedy ids are the same with the
  // middle block on "disk" as all on the CPU. A type that only plans says so in `plan` and is refused
  // by `run` with the reason.
  void everyRunnableTypeRunsFromTheCli() {
    const nlohmann::json base{{"hidden_size", 64}, {"intermediate_size", 96}, {"num_hidden_layers", 3}, {"num_attention_heads", 4},
                              {"num_key_value_heads", 2}, {"vocab_size", 300}, {"max_position_embeddings", 128},
                              {"bos_token_id", 1}, {"eos_token_id", 2}};
    const std::vector<std::pair<std::string, nlohmann::json>> types{
        {"llama", {}},
        {"mistral", {{"sliding_window", 4}}},
        {"qwen2", {}},
        {"qwen3", {{"head_dim", 16}}},
        {"phi3", {{"sliding_window", 5}}},
        {"gemma", {{"head_dim", 16}}},
        {"gemma2", {{"head_dim", 16}, {"query_pre_attn_scalar", 16}, {"sliding_window", 4}, {"attn_logit_softcapping", 50.0},
                    {"final_logit_softcapping", 30.0}}},
        {"gemma3_text", {{"head_dim", 16}, {"query_pre_attn_scalar", 16}, {"sliding_window", 4}, {"sliding_window_pattern", 2}}},
        {"mixtral", {{"num_local_experts", 4}, {"num_experts_per_tok", 2}}},
        {"qwen2_moe", {{"num_experts", 4}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 32}, {"shared_expert_intermediate_size", 48}}},
        {"qwen3_moe", {{"num_experts", 4}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 32}, {"mlp_only_layers", {0}}}},
    };
    for (const auto& [type, extra] : types) {
      testkit::TempDir dir;
      nlohmann::json config = base;
      config["model_type"] = type;
      if (extra.is_object()) config.update(extra);
      std::ofstream(dir / "config.json") << config.dump();
      auto r = testkit::run_cli({"make-model", (dir / "m").string(), "--config", (dir / "config.json").string()});
      QVERIFY2(r.code == 0, (type + ": " + r.err).c_str());
      const std::vector<std::string> run{"run", (dir / "m").string(), "--prompt-ids", "1,5,9", "--max-new-tokens", "6", "--output", "ids",
                                         "--greedy"};
      r = testkit::run_cli(run);
      QVERIFY2(r.code == 0, (type + ": " + r.err).c_str());
      const auto ids = ids_of(r.out);
      QVERIFY2(ids.size() > 3 && ids.size() <= 9, (type + ": " + r.out).c_str());
      std::ofstream(dir / "map.json") << R"({"": "cpu", "model.layers.1": "disk"})";
      auto with_disk = run;
      with_disk.insert(with_disk.end(), {"--device-map", (dir / "map.json").string()});
      r = testkit::run_cli(with_disk);
      QVERIFY2(r.code == 0, (type + ": " + r.err).c_str());
      QVERIFY2(ids_of(r.out) == ids, (type + ": " + r.out).c_str());
    }
    const auto plan = testkit::run_cli({"plan", "catalog:deepseek-v3", "--max-memory", "0=80GiB,cpu=1TiB"});
    QVERIFY2(plan.code == 0, plan.err.c_str());
    QVERIFY2(plan.out.find("deepseek_v3 plans but does not run here: the runtime lacks multi-head latent attention") != std::string::npos,
             plan.out.c_str());
    testkit::TempDir dir;
    std::ofstream(dir / "config.json") << R"({"model_type": "deepseek_v3", "hidden_size": 64})";
    std::ofstream(dir / "model.safetensors", std::ios::binary) << std::string("\x02\0\0\0\0\0\0\0{}", 10);  // no tensors
    const auto refused = testkit::run_cli({"run", dir.path().string(), "--prompt-ids", "1"});
    QCOMPARE(refused.code, 1);
    QVERIFY2(refused.err.find("can be planned but not run") != std::string::npos, refused.err.c_str());
  }

  // An offload folder that Accelerate's offload_state_dict wrote (index.json and NAME.dat, no marker of
  // ours) is used as it is: a tensor in the dtype wanted is mapped, one in another dtype is cast into
  // memory, and not one of its files is written, replaced or re-indexed.
  void aForeignOffloadFolderIsUsedAsItIs() {
    testkit::TempDir dir;
    std::ofstream(dir / "config.json") << R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
      "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300,
      "max_position_embeddings": 128, "bos_token_id": 1, "eos_token_id": 2})";
    auto r = testkit::run_cli({"make-model", (dir / "m").string(), "--config", (dir / "config.json").string(), "--dtype", "float16"});
    QVERIFY2(r.code == 0, r.err.c_str());
    const std::vector<std::string> run{"run", (dir / "m").string(), "--prompt-ids", "1,5,9", "--max-new-tokens", "8", "--output", "ids",
                                       "--greedy", "--stats"};
    r = testkit::run_cli(run);
    QVERIFY2(r.code == 0, r.err.c_str());
    const auto ids = ids_of(r.out);

    // Block 1 as Accelerate offloads a float16 model: its norms in float32 (loaded with
    // torch_dtype=float32) and in float16, its matrices in float16.
    const fs::path foreign = dir / "accelerate-offload";
    fs::create_directories(foreign);
    const auto checkpoint = devicemap::SafetensorsFile::open(dir / "m" / "model.safetensors");
    nlohmann::json index = nlohmann::json::object();
    for (const auto& t : checkpoint.tensors()) {
      if (!t.name.starts_with("model.layers.1.")) continue;
      const auto raw = checkpoint.data(t);
      std::string bytes(reinterpret_cast<const char*>(raw.data()), raw.size());
      std::string dtype = "float16";
      if (t.name.ends_with("input_layernorm.weight")) {
        std::string widened;
        for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) {
          const float v = half_to_float(static_cast<std::uint16_t>(std::uint8_t(bytes[i]) | std::uint8_t(bytes[i + 1]) << 8));
          widened.append(reinterpret_cast<const char*>(&v), 4);
        }
        bytes = widened;
        dtype = "float32";
      }
      std::ofstream(foreign / (t.name + ".dat"), std::ios::binary) << bytes;
      index[t.name] = {{"dtype", dtype}, {"shape", t.shape}};
    }
    std::ofstream(foreign / "index.json") << index.dump(1);
    const auto before = folder_contents(foreign);

    std::ofstream(dir / "map.json") << R"({"": "cpu", "model.layers.1": "disk"})";
    auto with_disk = run;
    with_disk.insert(with_disk.end(), {"--device-map", (dir / "map.json").string(), "--offload-folder", foreign.string()});
    r = testkit::run_cli(with_disk);
    QVERIFY2(r.code == 0, r.err.c_str());
    QCOMPARE(ids_of(r.out), ids);
    QVERIFY2(r.err.find("reused from the offload folder") != std::string::npos, r.err.c_str());       // the float32 norm
    QVERIFY2(r.err.find("held in RAM, cast from or missing in an offload folder") != std::string::npos, r.err.c_str());  // float16
    QVERIFY2(r.err.find("cast into the offload folder") == std::string::npos, r.err.c_str());
    QVERIFY(folder_contents(foreign) == before);

    // A folder of our own is still written, and marked as ours.
    const fs::path own = dir / "own-offload";
    with_disk.back() = own.string();
    r = testkit::run_cli(with_disk);
    QVERIFY2(r.code == 0, r.err.c_str());
    QCOMPARE(ids_of(r.out), ids);
    QVERIFY2(r.err.find("cast into the offload folder") != std::string::npos, r.err.c_str());
    QVERIFY(fs::exists(own / "devicemap-offload.json") && fs::exists(own / "index.json"));
    r = testkit::run_cli(with_disk);
    QVERIFY2(r.err.find("reused from the offload folder") != std::string::npos, r.err.c_str());
  }

  void makeModelGpt2ThenRunIt() {
    // GPT-2's own layout (Conv1D weights, learned positions, tied head), float16 on disk, float32 to run.
    testkit::TempDir dir;
    std::ofstream(dir / "config.json") << R"({"model_type": "gpt2", "n_embd": 64, "n_layer": 3, "n_head": 4,
      "n_positions": 64, "vocab_size": 200, "bos_token_id": 0, "eos_token_id": 199})";
    auto r = testkit::run_cli({"make-model", (dir / "m").string(), "--config", (dir / "config.json").string(), "--shard-size", "100KB"});
    QVERIFY2(r.code == 0, r.err.c_str());
    QVERIFY(fs::exists(dir / "m" / "model.safetensors.index.json"));
    r = testkit::run_cli({"run", (dir / "m").string(), "--prompt-ids", "0,5,9", "--max-new-tokens", "8", "--output", "ids",
                          "--greedy", "--stats", "--max-memory", "cpu=1GiB"});
    QVERIFY2(r.code == 0, r.err.c_str());
    const auto ids = ids_of(r.out);
    QVERIFY2(ids.size() > 3 && ids.size() <= 11, r.out.c_str());
    QCOMPARE(std::vector<std::int64_t>(ids.begin(), ids.begin() + 3), (std::vector<std::int64_t>{0, 5, 9}));
    for (const auto id : ids) QVERIFY(id >= 0 && id < 200);
    QVERIFY2(r.err.find("float16 matrices stay float16 on the CPU") != std::string::npos, r.err.c_str());
    // Greedy decoding is deterministic: the same map with blocks on "disk" gives the same ids.
    std::ofstream(dir / "map.json") << R"({"transformer.wte": "cpu", "transformer.wpe": "cpu", "transformer.h": "disk",
      "transformer.ln_f": "cpu", "lm_head": "cpu"})";
    const auto disk = testkit::run_cli({"run", (dir / "m").string(), "--prompt-ids", "0,5,9", "--max-new-tokens", "8",
                                        "--output", "ids", "--greedy", "--device-map", (dir / "map.json").string()});
    QVERIFY2(disk.code == 0, disk.err.c_str());
    QCOMPARE(ids_of(disk.out), ids);
  }

  void runErrors() {
    auto r = testkit::run_cli({"run", "/nonexistent/model", "--prompt-ids", "1"});
    QCOMPARE(r.code, 1);
    QVERIFY(r.err.find("/nonexistent/model") != std::string::npos);
    r = testkit::run_cli({"run", demo(), "--prompt-ids", "1", "--prompt", "x"});
    QCOMPARE(r.code, 1);
    r = testkit::run_cli({"run", demo(), "--prompt-ids", "1 9999", "--output", "ids"});
    QCOMPARE(r.code, 1);
    QVERIFY2(r.err.find("vocabulary") != std::string::npos, r.err.c_str());
    r = testkit::run_cli({"run", demo(), "--prompt-ids", "1", "--device-map", "/nonexistent/map.json"});
    QCOMPARE(r.code, 1);
    QVERIFY(r.err.find("map.json") != std::string::npos);
  }
};

QTEST_MAIN(TestRunCli)
#include "test_run_cli.moc"
