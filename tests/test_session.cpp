// The planning session behind the desktop program: blocks, budgets, pins, device-map import and the
// plan file, on the bundled demo model (stories260K: 5 Llama layers, tied embeddings, float32).
#include <QtTest/QtTest>

#include <fstream>

#include "error.hpp"
#include "model/skeleton.hpp"
#include "session/session.hpp"
#include "testkit.hpp"

using namespace devicemap;

namespace {

Session demo_session() {
  Session s;
  s.set_machine(testkit::two_small_gpus());
  s.open_model(testkit::demo_dir().string());
  return s;
}

std::vector<std::string> unit_names(const Session& s) {
  std::vector<std::string> out;
  for (const auto& u : s.units()) out.push_back(u.name);
  return out;
}

}  // namespace

class TestSession : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void predictedSpeedFollowsThePlanAndTheMachine() {
    Session s = demo_session();
    // The small test machine gives no bandwidths: no figure, and it says which are missing.
    QVERIFY(!s.predicted_speed().known);
    QVERIFY(!s.predicted_speed().missing.empty());
    auto profile = nlohmann::json::parse(R"({"name": "fast", "gpus": [{"memory": "1GiB", "bandwidth_gbs": 1000}], "cpu": {"memory": "1GiB", "bandwidth_gbs": 50},
        "disk": {"free": "1GiB", "bandwidth_gbs": 2}, "pcie_gbs": 25})");
    s.set_machine(machine_from_profile(profile, "fast profile"));
    const SpeedPrediction before = s.predicted_speed();
    QVERIFY(before.known);
    DM_COMPARE_STR(s.plan().device_map.to_json().dump(), std::string(R"({"":0})"));
    QCOMPARE(before.tokens_per_second,
             predict_decode_speed(s.model().skeleton, s.plan().device_map, s.machine(), {}).tokens_per_second);
    s.pin({"model.layers.0"}, Device::disk());  // a layer now crosses from the disk every token
    const SpeedPrediction after = s.predicted_speed();
    QVERIFY(after.tokens_per_second_without_prefetch < before.tokens_per_second_without_prefetch);
    // Its 100 KB fetch hides behind the last layer's GPU time, with prefetch.
    QVERIFY(after.tokens_per_second <= before.tokens_per_second);
  }

  void blocksAreLayersInModelOrder() {
    Session s = demo_session();
    QVERIFY(s.plan_error().empty());
    const std::vector<std::string> expected{"model.embed_tokens", "model.layers.0", "model.layers.1", "model.layers.2",
                                            "model.layers.3",     "model.layers.4", "model.norm",     "lm_head"};
    // The rotary embedding holds no checkpoint tensor; everything else is one block.
    auto names = unit_names(s);
    std::erase(names, "model.rotary_emb");
    QCOMPARE(names, expected);
    std::int64_t total = 0;
    for (const auto& u : s.units()) {
      // Every block sits where the exported map puts its tensors.
      QCOMPARE(s.plan().device_map.device_of(u.name).value().name(), u.device.name());
      total += u.bytes;
    }
    QCOMPARE(total, s.plan().total_bytes);
    QCOMPARE(s.units()[1].cls, std::string("LlamaDecoderLayer"));
    QCOMPARE(s.units()[1].dtype, DType::F32);
  }

  void wholeModelOnOneDeviceIsStillOneBlockPerLayer() {
    Session s;
    s.set_machine(machine_from_profile(nlohmann::json::parse(R"({"gpus": [{"memory": "1GiB"}], "cpu": {"memory": "1GiB"}})"), "p"));
    s.open_model(testkit::demo_dir().string());
    QCOMPARE(s.plan().device_map.entries().size(), std::size_t{1});  // {"": 0}
    QVERIFY(s.units().size() >= 8);
    for (const auto& u : s.units()) QCOMPARE(u.device, Device::gpu(0));
  }

  void budgetChangeReplansAsThePlannerDoes() {
    Session s = demo_session();
    s.set_budget(Device::gpu(0), 300 * 1024);
    const Plan expected = plan_device_map(s.model().skeleton, s.budgets(), s.options());
    QVERIFY(s.plan().device_map == expected.device_map);
    QCOMPARE(s.plan().device_map.to_json().dump(), expected.device_map.to_json().dump());
    QCOMPARE(s.usage(Device::gpu(0))->weights, expected.devices[0].weights);
    QCOMPARE(*s.budgets().get(Device::gpu(0)), std::uint64_t{300 * 1024});
  }

  void pinsMoveBlocksAndUnpinRestores() {
    Session s = demo_session();
    const DeviceMap before = s.plan().device_map;
    s.pin({"model.layers.0"}, Device::disk());
    QCOMPARE(s.plan().device_map.device_of("model.layers.0.mlp.up_proj.weight"), std::optional<Device>(Device::disk()));
    const auto it = std::find_if(s.units().begin(), s.units().end(), [](const PlacedUnit& u) { return u.name == "model.layers.0"; });
    QVERIFY(it != s.units().end());
    QVERIFY(it->pinned);
    QCOMPARE(it->device, Device::disk());
    s.unpin({"model.layers.0"});
    QVERIFY(s.pins().empty());
    QVERIFY(s.plan().device_map == before);
  }

  void tiedPartnerFollowsAPin() {
    Session s = demo_session();
    s.pin({"lm_head"}, Device::cpu());
    QCOMPARE(s.plan().device_map.device_of("model.embed_tokens.weight"), std::optional<Device>(Device::cpu()));
    const auto it = std::find_if(s.units().begin(), s.units().end(), [](const PlacedUnit& u) { return u.name == "model.embed_tokens"; });
    QVERIFY(it != s.units().end());
    QCOMPARE(it->follows, std::string("lm_head"));
    QVERIFY(!it->pinned);
    QVERIFY(!s.plan().notes.empty());
  }

  void pinningAParentReplacesPinsBelowIt() {
    Session s = demo_session();
    s.pin({"model.layers.1.mlp"}, Device::cpu());
    s.pin({"model.layers.1"}, Device::gpu(1));
    QCOMPARE(s.pins().size(), std::size_t{1});
    QCOMPARE(s.pins()[0], (Pin{"model.layers.1", Device::gpu(1)}));
  }

  void impossiblePlanIsReportedNotThrown() {
    Session s = demo_session();
    s.set_options([&] {
      PlanOptions o = s.options();
      o.strategy = Strategy::Sequential;
      o.kv.context = 64;
      return o;
    }());
    QVERIFY(s.plan_error().empty());  // the demo's config has the heads a KV reserve needs
    QVERIFY(s.plan().kv_per_layer > 0);
    // Pinning the two sides of a tie to different devices is refused by the planner.
    s.pin({"lm_head"}, Device::cpu());
    s.pin({"model.embed_tokens"}, Device::gpu(0));
    QVERIFY(!s.plan_error().empty());
    QVERIFY(s.units().empty());
  }

  void removingAGpuRenumbersBudgetsAndPins() {
    Session s = demo_session();
    s.add_virtual_gpu("C", 500 * 1024);
    QCOMPARE(s.machine().gpus().size(), std::size_t{3});
    s.pin({"model.layers.4"}, Device::gpu(2));
    s.pin({"model.layers.3"}, Device::gpu(1));
    s.remove_gpu(1);
    QCOMPARE(s.machine().gpus().size(), std::size_t{2});
    QCOMPARE(s.machine().find(Device::gpu(1))->name, std::string("C"));
    QCOMPARE(*s.budgets().get(Device::gpu(1)), std::uint64_t{500 * 1024});
    QVERIFY(!s.budgets().has(Device::gpu(2)));
    QCOMPARE(s.pins().size(), std::size_t{1});
    QCOMPARE(s.pins()[0], (Pin{"model.layers.4", Device::gpu(1)}));
    QVERIFY_THROWS_EXCEPTION(Error, s.remove_gpu(7));
  }

  void importValidHandWrittenMap() {
    Session s = demo_session();
    testkit::TempDir dir;
    testkit::write_text(dir / "map.json", R"({"model.embed_tokens": 0, "model.layers.0": 0, "model.layers.1": 1, "model.layers.2": "cpu",
                                "model.layers.3": "disk", "model.layers.4": "cuda:1", "model.norm": 1, "lm_head": 0})");
    const DeviceMap map = DeviceMap::load(dir / "map.json");
    QVERIFY2(s.check_import(map).ok(), s.check_import(map).message().c_str());
    s.import_map(map);
    QVERIFY(s.plan_error().empty());
    // Every tensor the map names is where the map says; the planner adds only what the map may leave
    // out (the rotary embedding's non-persistent buffer).
    for (const auto& t : s.model().skeleton.tensors) {
      if (const auto d = map.device_of(t.name))
        QCOMPARE(s.plan().device_map.device_of(t.name), d);
      else
        QVERIFY(t.buffer && !t.persistent);
    }
    for (const auto& [key, device] : map.entries()) QVERIFY(s.is_pinned(key));
    QCOMPARE(s.plan().device_map.device_of("model.layers.4.self_attn.q_proj.weight"), std::optional<Device>(Device::gpu(1)));
  }

  void importCollapsedMap() {
    Session s = demo_session();
    const DeviceMap map = DeviceMap::from_json(nlohmann::json::parse(R"({"": "cpu", "model.layers.2": 1})"), "map");
    s.import_map(map);
    QCOMPARE(s.plan().device_map.device_of("model.layers.2.input_layernorm.weight"), std::optional<Device>(Device::gpu(1)));
    QCOMPARE(s.plan().device_map.device_of("model.layers.3.input_layernorm.weight"), std::optional<Device>(Device::cpu()));
    QCOMPARE(s.plan().device_map.device_of("lm_head.weight"), std::optional<Device>(Device::cpu()));
  }

  void importReportsUncoveredTensor() {
    Session s = demo_session();
    const std::string before = s.plan().device_map.to_json().dump();
    const DeviceMap map = DeviceMap::from_json(
        nlohmann::json::parse(R"({"model.embed_tokens": 0, "model.layers": 0, "lm_head": 0})"), "map");
    const ImportCheck c = s.check_import(map);
    QVERIFY(!c.ok());
    QVERIFY(std::find(c.problems.uncovered.begin(), c.problems.uncovered.end(), "model.norm.weight") != c.problems.uncovered.end());
    QVERIFY(c.unknown_devices.empty());
    try {
      s.import_map(map);
      QFAIL("an uncovered tensor was accepted");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("model.norm.weight") != std::string::npos, e.what());
    }
    QCOMPARE(s.plan().device_map.to_json().dump(), before);
    QVERIFY(s.pins().empty());
  }

  void importReportsUnknownDevice() {
    Session s = demo_session();
    const DeviceMap map = DeviceMap::from_json(nlohmann::json::parse(R"({"model": 3, "lm_head": 3})"), "map");
    const ImportCheck c = s.check_import(map);
    QVERIFY(c.problems.ok());
    QCOMPARE(c.unknown_devices, std::vector<Device>{Device::gpu(3)});
    QVERIFY(c.message().find("3") != std::string::npos);
    QVERIFY_THROWS_EXCEPTION(Error, s.import_map(map));
  }

  void planFileRoundTrips() {
    Session s = demo_session();
    s.set_budget(Device::cpu(), 123456);
    s.add_virtual_gpu("extra", 64 * 1024);
    PlanOptions o = s.options();
    o.strategy = Strategy::Sequential;
    o.dtype = DType::F16;
    o.flavor = Flavor::Accelerate;
    o.kv = {256, 2};
    o.no_split_classes = std::vector<std::string>{"LlamaDecoderLayer", "LlamaMLP"};
    o.offload_buffers = true;
    s.set_options(o);
    s.pin({"model.layers.3"}, Device::disk());
    s.pin({"lm_head"}, Device::gpu(1));
    QVERIFY(s.plan_error().empty());

    testkit::TempDir dir;
    const auto path = dir / "demo.plan.json";
    s.plan_file().save(path);
    const PlanFile f = PlanFile::load(path);
    QCOMPARE(f.to_json().dump(), s.plan_file().to_json().dump());
    QCOMPARE(f.model, testkit::demo_dir().string());
    QCOMPARE(f.options.pins, s.pins());

    Session t;
    t.open_model(f.model);
    t.apply(f, machine_from_profile(*f.profile, "plan profile"));
    QCOMPARE(t.plan().device_map.to_json().dump(), s.plan().device_map.to_json().dump());
    QCOMPARE(t.budgets().to_string(), s.budgets().to_string());
    QCOMPARE(t.machine().gpus().size(), std::size_t{3});
    QCOMPARE(t.plan_file().to_json().dump(), s.plan_file().to_json().dump());
  }

  // A bitsandbytes plan: saved as a BitsAndBytesConfig and read back; the session's sizes (the bars)
  // are the real quantized bytes while the walk counted transformers' way.
  void quantizedPlanRoundTripsAndDrawsRealBytes() {
    Session s = demo_session();
    PlanOptions o = s.options();
    Quantization q;
    q.method = Quantization::Method::Bnb4;
    q.quant_type = "nf4";
    q.double_quant = true;
    o.quantization = q;
    s.set_options(o);
    QVERIFY(s.plan_error().empty());
    const auto& sk = s.model().skeleton;
    std::int64_t drawn = 0;
    for (const auto& u : s.units()) drawn += u.bytes;
    QCOMPARE(drawn, real_quantized_sizes(sk, q, std::nullopt).total());
    QCOMPARE(s.plan().total_bytes, transformers_quantized_sizes(sk, q, std::nullopt).total());
    const auto j = s.plan_file().to_json();
    QCOMPARE(j["quantization"]["bnb_4bit_quant_type"].get<std::string>(), std::string("nf4"));
    const PlanFile f = PlanFile::from_json(nlohmann::json::parse(j.dump()), "demo.plan.json");
    QVERIFY(f.options.quantization && f.options.quantization->double_quant && f.options.quantization->method == Quantization::Method::Bnb4);
    auto bad = nlohmann::json::parse(j.dump());
    bad["quantization"] = {{"quant_method", "awq"}};
    try {
      PlanFile::from_json(bad, "demo.plan.json");
      QFAIL("accepted an unknown quantization");
    } catch (const Error& e) {
      QVERIFY2(QString(e.what()).contains("quantization"), e.what());
    }
  }

  void planFileErrorsNameTheKey() {
    testkit::TempDir dir;
    auto expect = [&](const std::string& text, const std::string& needle) {
      testkit::write_text(dir / "bad.plan.json", text);
      try {
        PlanFile::load(dir / "bad.plan.json");
        QFAIL(("accepted: " + text).c_str());
      } catch (const Error& e) {
        QVERIFY2(std::string(e.what()).find(needle) != std::string::npos, e.what());
      }
    };
    expect(R"({"format": "something else", "version": 1, "model": "x"})", "format");
    expect(R"({"format": "devicemap-plan", "version": 99, "model": "x"})", "newer");
    expect(R"({"format": "devicemap-plan", "version": 1})", "model");
    expect(R"({"format": "devicemap-plan", "version": 1, "model": "x", "strategy": "fastest"})", "strategy");
    expect(R"({"format": "devicemap-plan", "version": 1, "model": "x", "pins": {"lm_head": "tpu"}})", "pins.lm_head");
    expect(R"({"format": "devicemap-plan", "version": 1, "model": "x", "kv_cache": {"context": -5}})", "kv_cache.context");
    expect("{not json", "not valid JSON");
  }

  void applyRejectsPinsTheModelLacks() {
    Session s = demo_session();
    PlanFile f = s.plan_file();
    f.options.pins.push_back({"model.layers.99", Device::cpu()});
    const std::string before = s.plan_file().to_json().dump();
    QVERIFY_THROWS_EXCEPTION(Error, s.apply(f, testkit::two_small_gpus()));
    QCOMPARE(s.plan_file().to_json().dump(), before);
  }
};

QTEST_MAIN(TestSession)
#include "test_session.moc"
