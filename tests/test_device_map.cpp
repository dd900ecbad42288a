#include "testkit.hpp"

#include <fstream>

#include "error.hpp"
#include "format/atomic_file.hpp"
#include "format/checkpoint.hpp"
#include "model/model_source.hpp"
#include "plan/device_map.hpp"

using namespace devicemap;

class DeviceMapTest : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void longest_prefix_wins() {
    DeviceMap m({{"", Device::cpu()}, {"model.layers.1", Device::gpu(0)}, {"model.layers.1.mlp", Device::disk()}});
    QCOMPARE(m.device_of("model.layers.1.mlp.up_proj.weight"), std::optional(Device::disk()));
    QCOMPARE(m.device_of("model.layers.1.self_attn.q_proj.weight"), std::optional(Device::gpu(0)));
    // "model.layers.10" is not under "model.layers.1".
    QCOMPARE(m.device_of("model.layers.10.mlp.up_proj.weight"), std::optional(Device::cpu()));
    QCOMPARE(DeviceMap({{"a", Device::cpu()}}).device_of("b.weight"), std::nullopt);
  }
  void clean_collapses_like_accelerate() {
    DeviceMap raw({{"model.embed_tokens", Device::gpu(0)}, {"model.layers.0", Device::gpu(0)}, {"model.layers.1", Device::gpu(0)},
                   {"model.norm", Device::gpu(0)}, {"lm_head", Device::gpu(0)}});
    QCOMPARE(raw.cleaned().to_json().dump(), std::string(R"({"":0})"));
    DeviceMap mixed({{"model.embed_tokens", Device::gpu(0)}, {"model.layers.0", Device::gpu(0)}, {"model.layers.1.mlp", Device::cpu()},
                     {"model.layers.1.self_attn", Device::cpu()}, {"model.layers.2", Device::cpu()}, {"lm_head", Device::cpu()}});
    const auto c = mixed.cleaned();
    QVERIFY(c == DeviceMap({{"model.embed_tokens", Device::gpu(0)}, {"model.layers.0", Device::gpu(0)}, {"model.layers.1", Device::cpu()},
                            {"model.layers.2", Device::cpu()}, {"lm_head", Device::cpu()}}));
  }
  void json_round_trip_and_atomic_save() {
    testkit::TempDir dir;
    DeviceMap m({{"model.embed_tokens", Device::gpu(1)}, {"model.layers", Device::cpu()}, {"lm_head", Device::disk()}});
    m.save(dir / "device_map.json");
    const auto text = read_text_file(dir / "device_map.json");
    QCOMPARE(nlohmann::json::parse(text), nlohmann::json::parse(R"({"model.embed_tokens": 1, "model.layers": "cpu", "lm_head": "disk"})"));
    QVERIFY(DeviceMap::load(dir / "device_map.json") == m);
    // Only the file itself is left: no temporary beside it.
    QCOMPARE(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()), 1);
  }
  void import_accepts_torch_spellings_and_rejects_others() {
    const auto m = DeviceMap::from_json(nlohmann::json::parse(R"({"a": "cuda:2", "b": "0", "c": "mps"})"), "map.json");
    QCOMPARE(m.device_of("a.x"), std::optional(Device::gpu(2)));
    QCOMPARE(m.device_of("b.x"), std::optional(Device::gpu(0)));
    for (const char* bad : {R"({"a": "tpu"})", R"({"a": -1})", R"({"a": [0]})", R"([1, 2])"}) {
      try {
        DeviceMap::from_json(nlohmann::json::parse(bad), "map.json");
        QFAIL(bad);
      } catch (const Error& e) {
        QVERIFY2(QString(e.what()).contains("map.json"), e.what());
      }
    }
    testkit::TempDir dir;
    std::ofstream(dir / "broken.json") << "{\"a\": ";
    try {
      DeviceMap::load(dir / "broken.json");
      QFAIL("accepted broken JSON");
    } catch (const Error& e) {
      QVERIFY(QString(e.what()).contains("broken.json"));
    }
  }
  void validation_reports_coverage_unknown_keys_and_split_ties() {
    const Skeleton s = open_model(testkit::demo_dir().string()).skeleton;
    QVERIFY(validate(DeviceMap({{"", Device::cpu()}}), s).ok());
    const auto p = validate(DeviceMap({{"model.embed_tokens", Device::gpu(0)}, {"model.layers", Device::cpu()}, {"lm_head", Device::cpu()},
                                       {"model.nope", Device::cpu()}}),
                            s);
    // The rotary inv_freq buffer is non-persistent: not in state_dict, so not required (as in Accelerate).
    QCOMPARE(p.uncovered, (std::vector<std::string>{"model.norm.weight"}));
    QCOMPARE(p.unknown_keys, std::vector<std::string>{"model.nope"});
    QCOMPARE(p.split_ties.size(), std::size_t(1));
    QVERIFY(QString::fromStdString(p.message()).contains("model.norm.weight"));
  }
};

QTEST_MAIN(DeviceMapTest)
#include "test_device_map.moc"
