// devicemap check: maps made elsewhere, each kind of defect, the fit, the speed and what auto would move.
#include "testkit.hpp"

#include <nlohmann/json.hpp>

#include "model/model_source.hpp"
#include "plan/device_map.hpp"
#include "plan/machine.hpp"
#include "plan/planner.hpp"
#include "plan/speed_model.hpp"

using namespace devicemap;

namespace {

struct Checked {
  int code = 0;
  nlohmann::json j;
  std::string err;
};

Checked check_json(const std::string& model, const std::filesystem::path& map, const std::vector<std::string>& more) {
  std::vector<std::string> args{"check", model, map.string(), "--format", "json"};
  args.insert(args.end(), more.begin(), more.end());
  const auto r = testkit::run_cli(args);
  Checked c{r.code, nlohmann::json(), r.err};
  if (!r.out.empty()) c.j = nlohmann::json::parse(r.out);
  return c;
}

std::int64_t weights_in(const nlohmann::json& devices) {
  std::int64_t sum = 0;
  for (const auto& d : devices) sum += d["weights"].get<std::int64_t>();
  return sum;
}

}  // namespace

class CliCheck : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  // A map as people share them: split layers, "cuda:N", "disk", keys for modules without weights.
  void realWorldMapLoadsAndFits() {
    testkit::TempDir dir;
    testkit::write_text(dir / "map.json", R"({"model.embed_tokens": "cuda:0", "model.rotary_emb": 0, "model.layers.0": 0,
      "model.layers.1": 0, "model.layers.2": "cpu", "model.layers.3.self_attn": "cpu", "model.layers.3.mlp": "disk",
      "model.layers.3.mlp.act_fn": "disk", "model.layers.3.input_layernorm": "cpu",
      "model.layers.3.post_attention_layernorm": "cpu", "model.layers.4": "disk", "model.norm": 0, "lm_head": "cuda:0"})");
    const auto c = check_json(testkit::demo_dir().string(), dir / "map.json", {"--profile", "1x24gb"});
    QCOMPARE(c.code, 0);
    QVERIFY(c.j["coverage"]["loads"].get<bool>());
    QVERIFY(c.j["coverage"]["unknown_keys"].empty());
    QVERIFY(c.j["fits"].get<bool>());
    // Every byte of the model is on some device, and each device holds what the map sends there.
    const auto model = open_model(testkit::demo_dir().string());
    QCOMPARE(weights_in(c.j["devices"]), static_cast<std::int64_t>(model.skeleton.total_bytes()));
    for (const auto& d : c.j["devices"])
      if (d["device"] == "disk") QVERIFY(d["weights"].get<std::int64_t>() > 0);
    QVERIFY(c.j["speed"]["known"].get<bool>());
    QVERIFY(c.j["speed"]["tokens_per_second"].get<double>() > 0);
    // auto puts the whole demo on the GPU: layers 2-4 moved.
    bool moved_layer_2 = false;
    for (const auto& m : c.j["auto"]["moved"]) moved_layer_2 = moved_layer_2 || m["modules"].get<std::string>().starts_with("model.layers.2");
    QVERIFY2(moved_layer_2, c.j["auto"]["moved"].dump().c_str());
  }

  void theAutoPlansOwnMapChecksAsItself() {
    testkit::TempDir dir;
    const auto machine = load_profile(testkit::resources_dir() / "profiles" / "2x24gb.json");
    const auto model = open_model("catalog:llama-3.1-70b");
    PlanOptions o;
    o.dtype = DType::BF16;
    const Plan plan = plan_device_map(model.skeleton, default_max_memory(machine), o);
    plan.device_map.save(dir / "map.json");
    const auto c = check_json("catalog:llama-3.1-70b", dir / "map.json", {"--profile", "2x24gb", "--dtype", "bfloat16"});
    QCOMPARE(c.code, 0);
    QVERIFY2(c.j["auto"]["moved"].empty(), c.j["auto"]["moved"].dump().c_str());
    const SpeedPrediction p = predict_decode_speed(model.skeleton, plan.device_map, machine, {o.dtype});
    QCOMPARE(c.j["speed"]["tokens_per_second"].get<double>(), p.tokens_per_second);
    QCOMPARE(c.j["auto"]["speed"]["tokens_per_second"].get<double>(), p.tokens_per_second);
    QCOMPARE(weights_in(c.j["devices"]), plan.total_bytes);
  }

  void overBudgetExitsThreeWithTheShortfall() {
    testkit::TempDir dir;
    testkit::write_text(dir / "map.json", R"({"": 0})");
    const auto c = check_json("catalog:llama-3.1-70b", dir / "map.json", {"--profile", "2x24gb", "--dtype", "bfloat16"});
    QCOMPARE(c.code, 3);
    QVERIFY(!c.j["fits"].get<bool>());
    std::int64_t shortfall = 0;
    for (const auto& d : c.j["devices"])
      if (d["device"] == "0") shortfall = d["shortfall"].get<std::int64_t>();
    // 70.6B parameters at 2 bytes on a 24 GiB card: more than 100 GiB short.
    QVERIFY2(shortfall > (std::int64_t(100) << 30), c.j["devices"].dump().c_str());
    // auto spreads it over both GPUs, the CPU and the disk, and is faster than a GPU that cannot hold it…
    QVERIFY(c.j["auto"]["fits"].get<bool>());
    QVERIFY(!c.j["auto"]["moved"].empty());
    // …and the table says so in words.
    const auto t = testkit::run_cli({"check", "catalog:llama-3.1-70b", (dir / "map.json").string(), "--profile", "2x24gb"});
    QCOMPARE(t.code, 3);
    QVERIFY2(testkit::contains(t.out, "does NOT fit"), t.out.c_str());
  }

  void aGpuTheMachineLacksHasNoRoom() {
    testkit::TempDir dir;
    testkit::write_text(dir / "map.json", R"({"model.embed_tokens": 0, "model.layers": "cuda:3", "model.norm": 0, "lm_head": 0})");
    const auto c = check_json(testkit::demo_dir().string(), dir / "map.json", {"--profile", "1x24gb"});
    QCOMPARE(c.code, 3);
    QCOMPARE(c.j["coverage"]["unknown_devices"].dump(), std::string(R"(["3"])"));
  }

  void eachCoverageDefectIsNamed() {
    testkit::TempDir dir;
    // lm_head left out, a misspelt key.
    testkit::write_text(dir / "map.json", R"({"model.embed_tokens": 0, "model.layers": 0, "model.norm": 0, "lm_hed": 0})");
    auto c = check_json(testkit::demo_dir().string(), dir / "map.json", {"--profile", "1x24gb"});
    QCOMPARE(c.code, 1);
    QCOMPARE(c.j["coverage"]["uncovered"].dump(), std::string(R"(["lm_head.weight"])"));
    QCOMPARE(c.j["coverage"]["unknown_keys"].dump(), std::string(R"(["lm_hed"])"));
    QVERIFY(c.j["devices"].empty());
    const auto t = testkit::run_cli({"check", testkit::demo_dir().string(), (dir / "map.json").string(), "--profile", "1x24gb"});
    QCOMPARE(t.code, 1);
    QVERIFY2(testkit::contains(t.out, "lm_head.weight") && testkit::contains(t.out, "does not give any device"), t.out.c_str());

    // GPT-2 ties lm_head to the token embedding: a map that splits them does not load as it is.
    testkit::write_text(dir / "split.json", R"({"transformer": 0, "lm_head": "cpu"})");
    c = check_json("catalog:gpt2", dir / "split.json", {"--profile", "1x24gb"});
    QCOMPARE(c.code, 1);
    QCOMPARE(c.j["coverage"]["split_ties"].size(), std::size_t(1));
    QVERIFY2(testkit::contains(c.j["coverage"]["split_ties"][0].get<std::string>(), "lm_head.weight"), c.j.dump().c_str());
  }

  void badInputIsAnErrorNamingTheFile() {
    testkit::TempDir dir;
    testkit::write_text(dir / "map.json", R"({"model.layers": "gpu0"})");
    const auto r = testkit::run_cli({"check", testkit::demo_dir().string(), (dir / "map.json").string(), "--profile", "1x24gb"});
    QCOMPARE(r.code, 1);
    QVERIFY2(testkit::contains(r.err, "map.json") && testkit::contains(r.err, "gpu0"), r.err.c_str());
    const auto missing = testkit::run_cli({"check", testkit::demo_dir().string(), (dir / "none.json").string()});
    QCOMPARE(missing.code, 1);
    QVERIFY2(testkit::contains(missing.err, "none.json"), missing.err.c_str());
  }
};

QTEST_MAIN(CliCheck)
#include "test_cli_check.moc"
