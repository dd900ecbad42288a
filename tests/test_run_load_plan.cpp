// Load plans on the demo checkpoint: what each placement and dtype costs on which device before anything
// is read, and the memory checks (weights, and the KV cache a generation will need) against a machine
// described by hand.
#include <map>
#include <string>

#include "error.hpp"
#include "format/checkpoint.hpp"
#include "plan/device_map.hpp"
#include "plan/machine.hpp"
#include "run/generator.hpp"
#include "run/load_plan.hpp"
#include "run/model.hpp"
#include "run/model_config.hpp"
#include "testkit.hpp"

using namespace devicemap;
using testkit::contains;
using testkit::error_of;
using nlohmann::json;

namespace {

struct Demo {
  Checkpoint checkpoint = Checkpoint::open(testkit::demo_dir());
  ModelConfig config = ModelConfig::from_json(checkpoint.config());
  std::uint64_t weight_bytes = checkpoint.total_bytes();
};

Machine machine(const std::string& gpu_memory, const std::string& ram) {
  json j{{"name", "test"}, {"cpu", {{"memory", ram}}}};
  if (!gpu_memory.empty()) j["gpus"] = json::array({{{"name", "test GPU"}, {"memory", gpu_memory}}});
  return machine_from_profile(j, "test profile");
}

}  // namespace

class TestRunLoadPlan : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void float32OnCpuAliasesEverything() {
    Demo d;
    const auto plan = plan_load(d.checkpoint, d.config, DeviceMap({{"", Device::cpu()}}), {});
    QCOMPARE(plan.requested_dtype, DType::F32);
    QVERIFY(plan.allocated.empty());
    QCOMPARE(plan.mapped.at(Device::cpu()), d.weight_bytes);
    QCOMPARE(plan.source_bytes, d.weight_bytes);
    // 1 embedding + 5 blocks × 9 tensors + final norm; the head is tied.
    QCOMPARE(plan.tensors.size(), std::size_t{47});
    QCOMPARE(plan.tensors.front().name, std::string("model.embed_tokens.weight"));
    QCOMPARE(plan.ties.size(), std::size_t{1});
    QCOMPARE(plan.ties.front().first, std::string("lm_head.weight"));
    QVERIFY(!plan.main_gpu);
  }

  // A pipeline stage loads its own layers: the first the embedding, the last the final norm and, the
  // demo's head being tied, its own copy of the embedding, placed where its map puts the head.
  void stagesLoadTheirOwnLayers() {
    Demo d;
    const auto names = [](const LoadPlan& p) {
      std::vector<std::string> out;
      for (const auto& t : p.tensors) out.push_back(t.name);
      return out;
    };
    LoadOptions first;
    first.layers = LayerRange{0, 2};
    const auto a = plan_load(d.checkpoint, d.config, DeviceMap({{"model.embed_tokens", Device::cpu()}, {"model.layers.0", Device::cpu()},
                                                                {"model.layers.1", Device::disk()}}),
                             first);
    QCOMPARE(a.tensors.size(), std::size_t{1 + 2 * 9});
    QCOMPARE(names(a).front(), std::string("model.embed_tokens.weight"));
    for (const auto& n : names(a))
      QVERIFY2(n == "model.embed_tokens.weight" || n.starts_with("model.layers.0.") || n.starts_with("model.layers.1."), n.c_str());
    QVERIFY(a.ties.empty());
    QCOMPARE(a.layers.first, std::int64_t{0});
    QCOMPARE(a.layers.end, std::int64_t{2});
    LoadOptions last;
    last.layers = LayerRange{2, 5};
    const auto b = plan_load(d.checkpoint, d.config, DeviceMap({{"model.layers", Device::cpu()}, {"model.norm", Device::cpu()},
                                                                {"lm_head", Device::disk()}}),
                             last);
    QCOMPARE(b.tensors.size(), std::size_t{1 + 3 * 9 + 1});
    QCOMPARE(b.tensors.front().name, std::string("model.embed_tokens.weight"));
    QVERIFY(b.tensors.front().placement.is_disk());  // where the head is
    QCOMPARE(names(b).back(), std::string("model.norm.weight"));
    for (const auto& n : names(b)) QVERIFY2(!n.starts_with("model.layers.0.") && !n.starts_with("model.layers.1."), n.c_str());
    QCOMPARE(b.ties.size(), std::size_t{1});
    for (const auto& range : {LayerRange{3, 3}, LayerRange{-1, 2}, LayerRange{4, 6}}) {
      LoadOptions bad;
      bad.layers = range;
      DM_EXPECT_ERROR(plan_load(d.checkpoint, d.config, DeviceMap({{"", Device::cpu()}}), bad), "is not within the model's 5",
                      "num_hidden_layers");
    }
  }

  void castsAndPlacements() {
    Demo d;
    LoadOptions bf16;
    bf16.dtype = DType::BF16;
    DeviceMap map({{"", Device::cpu()}, {"model.layers.4", Device::disk()}});
    auto plan = plan_load(d.checkpoint, d.config, map, bf16);
    QCOMPARE(plan.cpu_dtype, DType::BF16);
    // RAM holds a bfloat16 copy of everything but block 4, which stays float32 in the file.
    const std::uint64_t block4 = 4 * (64 + 64 + 64 * 172 * 3 + 64 * 64 * 2 + 32 * 64 * 2);
    QCOMPARE(plan.mapped.at(Device::disk()), block4);
    QCOMPARE(plan.allocated.at(Device::cpu()), (d.weight_bytes - block4) / 2);

    LoadOptions f16;
    f16.dtype = DType::F16;
    plan = plan_load(d.checkpoint, d.config, DeviceMap({{"", Device::cpu()}}), f16);
    QCOMPARE(plan.cpu_dtype, DType::F32);  // no float16 kernels on the CPU
    QCOMPARE(plan.notes.size(), std::size_t{1});
    QVERIFY(plan.allocated.empty());

    // GPU placements need no GPU to be planned: block 0 on GPU 0 in float16, the rest run there too.
    map = DeviceMap({{"", Device::cpu()}, {"model.layers.0", Device::gpu(0)}});
    plan = plan_load(d.checkpoint, d.config, map, f16);
    QCOMPARE(plan.main_gpu, std::optional<int>(0));
    const std::uint64_t block0 = block4;
    QCOMPARE(plan.allocated.at(Device::gpu(0)), block0 / 2);
    QCOMPARE(plan.allocated.at(Device::cpu()), (d.weight_bytes - block0) / 2);  // staged in float16 for the GPU
    QVERIFY(plan.notes.empty());
  }

  void memoryCheckNamesTheDevice() {
    Demo d;
    LoadOptions bf16;
    bf16.dtype = DType::BF16;
    const auto in_ram = plan_load(d.checkpoint, d.config, DeviceMap({{"", Device::cpu()}}), bf16);
    check_memory(in_ram, machine("", "1MiB"));  // 0.5 MiB of casts fit
    auto e = error_of([&] { check_memory(in_ram, machine("", "100KiB")); });
    QVERIFY2(e.find("RAM") != std::string::npos && e.find("100.00 KiB") != std::string::npos, e.c_str());

    const auto on_gpu = plan_load(d.checkpoint, d.config, DeviceMap({{"", Device::gpu(0)}}), bf16);
    check_memory(on_gpu, machine("1MiB", "1MiB"));
    e = error_of([&] { check_memory(on_gpu, machine("64KiB", "1GiB")); });
    QVERIFY2(e.find("GPU 0") != std::string::npos, e.c_str());
    // Mapped bytes cost no RAM: float32 on the CPU fits in any RAM.
    check_memory(plan_load(d.checkpoint, d.config, DeviceMap({{"", Device::cpu()}}), {}), machine("", "1KiB"));
  }

  void kvCacheIsSizedAndCheckedBeforeGenerating() {
    Model model = Model::load(testkit::demo_dir(), DeviceMap({{"", Device::cpu()}}));
    const auto& c = model.config();
    const auto per_token = static_cast<std::uint64_t>(2 * c.num_kv_heads * c.head_dim * 4 * c.num_layers);  // float32
    QCOMPARE(model.kv_cache_bytes(100), (std::map<std::string, std::uint64_t>{{"cpu", 100 * per_token}}));
    QCOMPARE(model.kv_cache_bytes(std::int64_t{1} << 40).at("cpu"), static_cast<std::uint64_t>(c.max_position_embeddings) * per_token);

    check_kv_memory({{"cpu", 1000}}, 10, machine("", "1MiB"));
    auto e = error_of([&] { check_kv_memory({{"cpu", 2 << 20}}, 4096, machine("", "1MiB")); });
    QVERIFY2(contains(e, "4096 tokens") && contains(e, "RAM") && contains(e, "1.00 MiB free"), e.c_str());
    e = error_of([&] { check_kv_memory({{"cuda:0", 2 << 20}}, 8, machine("1MiB", "1GiB")); });
    QVERIFY2(contains(e, "GPU 0"), e.c_str());

    // A generation sizes the cache for its whole length before it starts: 1 + 100 tokens, not the 128
    // that doubling from 64 would reach.
    GenerationOptions o;
    o.max_new_tokens = 100;
    const auto r = generate(model, std::vector<std::int64_t>{1}, o);
    QCOMPARE(r.stop, StopReason::MaxNewTokens);
    QCOMPARE(model.kv_cache_held_bytes(), model.kv_cache_bytes(101));
    // A longer generation replaces the buffers with ones of its whole length at its first token.
    o.max_new_tokens = 150;
    generate(model, std::vector<std::int64_t>{1}, o);
    QCOMPARE(model.kv_cache_held_bytes(), model.kv_cache_bytes(151));
  }

  void tiedHeadNeedsNoKeyButOthersDo() {
    Demo d;
    // The tied head is not loaded, so a map over "model" alone covers everything loaded.
    QCOMPARE(plan_load(d.checkpoint, d.config, DeviceMap({{"model", Device::cpu()}}), {}).tensors.size(), std::size_t{47});
    auto e = error_of([&] { plan_load(d.checkpoint, d.config, DeviceMap({{"model.layers", Device::cpu()}}), {}); });
    QVERIFY2(e.find("'model.embed_tokens.weight'") != std::string::npos, e.c_str());
    LoadOptions int8;
    int8.dtype = DType::I8;
    e = error_of([&] { plan_load(d.checkpoint, d.config, DeviceMap({{"", Device::cpu()}}), int8); });
    QVERIFY2(e.find("int8") != std::string::npos, e.c_str());
  }
};

QTEST_MAIN(TestRunLoadPlan)
#include "test_run_load_plan.moc"
