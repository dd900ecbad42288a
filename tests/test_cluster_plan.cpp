// A model across hosts: cluster profiles are read (and refused naming the key), a stage holds exactly
// its layers (embedding first, head last, a tied head its own copy), stages are balanced by predicted
// time, each host's device map covers its stage and nothing else, and the vLLM launch has the same split.
#include "testkit.hpp"

#include <set>

#include <nlohmann/json.hpp>

#include "model/model_source.hpp"
#include "model/stage_skeleton.hpp"
#include "plan/cluster.hpp"
#include "plan/stage_plan.hpp"
#include "plan/vllm_launch.hpp"

using namespace devicemap;

namespace {

Cluster bundled(const char* name) { return load_cluster(testkit::resources_dir() / "clusters" / (std::string(name) + ".json")); }

Cluster parse(const std::string& text) {
  return cluster_from_json(nlohmann::json::parse(text), "cluster.json", testkit::resources_dir() / "profiles");
}

PlanOptions bf16(std::uint64_t context = 0) {
  PlanOptions o;
  o.dtype = DType::BF16;
  o.kv = {context, 1};
  return o;
}

std::set<std::string> tensor_names(const Skeleton& s) {
  std::set<std::string> out;
  for (const auto& t : s.tensors) out.insert(t.name);
  return out;
}

}  // namespace

class ClusterPlanTest : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void clusterProfilesAreReadAndBadOnesNamed() {
    const Cluster c = bundled("2x8x80gb");
    QCOMPARE(c.hosts.size(), std::size_t(2));
    QCOMPARE(c.hosts[1].name, std::string("node1"));
    QCOMPARE(c.hosts[0].machine.gpus().size(), std::size_t(8));
    QCOMPARE(c.link_gbs, 50.0);
    QVERIFY(c.hosts[0].budgets.has(Device::gpu(7)) && c.hosts[0].budgets.has(Device::cpu()));
    // A host's own budgets, a profile given inline.
    const Cluster own = parse(R"({"hosts": [{"name": "a", "profile": "1x24gb", "max_memory": {"0": "10GiB"}},
      {"name": "b", "profile": {"gpus": [{"memory": "80GiB"}], "cpu": {"memory": "64GiB"}}}], "link": {"gbs": 1}})");
    QCOMPARE(own.hosts[0].budgets.get(Device::gpu(0)), std::optional<std::uint64_t>(10ull << 30));
    QVERIFY(own.hosts[0].budgets.has(Device::cpu()));
    QCOMPARE(own.hosts[1].machine.find(Device::gpu(0))->total, 80ull << 30);

    DM_EXPECT_ERROR(parse(R"({"link": {"gbs": 1}})"), "cluster.json", "\"hosts\"");
    DM_EXPECT_ERROR(parse(R"({"hosts": [{"name": "a", "profile": "1x24gb"}, {"name": "a", "profile": "1x24gb"}], "link": {"gbs": 1}})"),
                    "hosts[1].name", "twice");
    DM_EXPECT_ERROR(parse(R"({"hosts": [{"name": "a b", "profile": "1x24gb"}], "link": {"gbs": 1}})"), "hosts[0].name");
    DM_EXPECT_ERROR(parse(R"({"hosts": [{"name": "a", "profile": "9x9gb"}], "link": {"gbs": 1}})"), "hosts[0].profile", "9x9gb");
    DM_EXPECT_ERROR(parse(R"({"hosts": [{"name": "a"}], "link": {"gbs": 1}})"), "hosts[0].profile");
    DM_EXPECT_ERROR(parse(R"({"hosts": [{"name": "a", "profile": "1x24gb"}], "link": {"gbs": 0}})"), "link.gbs");
    DM_EXPECT_ERROR(parse(R"({"hosts": [{"name": "a", "profile": "1x24gb"}]})"), "\"link\"");
    DM_EXPECT_ERROR(parse(R"({"hosts": [{"name": "a", "profile": "1x24gb", "max_memory": {"3": "1GiB"}}], "link": {"gbs": 1}})"),
                    "hosts[0].max_memory", "GPU 3");
  }

  void aStageHoldsItsLayersAndNothingElse() {
    const Skeleton s = open_model("catalog:llama-3.1-8b").skeleton;
    QCOMPARE(decoder_layers(s).size(), std::size_t(32));
    const Skeleton first = stage_skeleton(s, {0, 12, true, false});
    const Skeleton last = stage_skeleton(s, {12, 32, false, true});
    QCOMPARE(decoder_layers(first).size(), std::size_t(12));
    QCOMPARE(decoder_layers(last).size(), std::size_t(20));
    QVERIFY(first.find_tensor("model.embed_tokens.weight") >= 0 && first.find_tensor("lm_head.weight") < 0);
    QVERIFY(last.find_tensor("lm_head.weight") >= 0 && last.find_tensor("model.norm.weight") >= 0);
    QVERIFY(last.find_module("model.layers.11") < 0 && last.find_module("model.layers.12") >= 0);
    QVERIFY(first.find_module("model.rotary_emb") >= 0 && last.find_module("model.rotary_emb") >= 0);  // no weights: both
    // Every weight in exactly one stage; only buffers that are no weights (inv_freq) in both.
    const auto a = tensor_names(first), b = tensor_names(last);
    std::uint64_t both = 0;
    for (const auto& t : s.tensors) {
      if (!t.buffer || t.persistent) QVERIFY2(a.contains(t.name) != b.contains(t.name), t.name.c_str());
      if (a.contains(t.name) && b.contains(t.name)) both += dtype_bytes(t.dtype, t.numel());
    }
    QVERIFY(both > 0 && both < 4096);
    QCOMPARE(first.total_bytes() + last.total_bytes(), s.total_bytes() + both);
    // A tied head: the last stage holds its own copy of the embedding, the first keeps the original.
    const Skeleton tied = open_model("catalog:gemma-3-1b").skeleton;
    QVERIFY(!tied.tie_groups().empty());
    const std::size_t n = decoder_layers(tied).size();
    const Skeleton head = stage_skeleton(tied, {n / 2, n, false, true});
    const Skeleton body = stage_skeleton(tied, {0, n / 2, true, false});
    QVERIFY(head.tie_groups().empty() && head.find_tensor("lm_head.weight") >= 0);
    const auto embed = tied.tensors[static_cast<std::size_t>(tied.find_tensor("model.embed_tokens.weight"))];
    std::uint64_t shared = 0;
    for (const auto& t : body.tensors)
      if (head.find_tensor(t.name) >= 0) shared += dtype_bytes(t.dtype, t.numel());
    QCOMPARE(body.total_bytes() + head.total_bytes(), tied.total_bytes() + dtype_bytes(embed.dtype, embed.numel()) + shared);
    DM_EXPECT_ERROR(stage_skeleton(s, {10, 10, false, false}), "32 decoder layers");
    DM_EXPECT_ERROR(stage_skeleton(s, {0, 33, true, true}), "32 decoder layers");
  }

  // Llama 3.1 405B on 2 × 8×80 GB: two stages of whole layers that fit, balanced in time; the speed is
  // the stages in turn plus the transfer.
  void llama405bSplitsOverTwoEightGpuHosts() {
    const Skeleton s = open_model("catalog:llama-3.1-405b").skeleton;
    const Cluster c = bundled("2x8x80gb");
    const StagePlan p = plan_stages(s, c, bf16(8192), {DType::BF16});
    QCOMPARE(p.stages.size(), std::size_t(2));
    QVERIFY(p.fits && p.by_time);
    QCOMPARE(p.stages[0].cut.first_layer, std::size_t(0));
    QCOMPARE(p.stages[0].cut.end_layer, p.stages[1].cut.first_layer);
    QCOMPARE(p.stages[1].cut.end_layer, std::size_t(126));
    QVERIFY(p.stages[0].cut.first && !p.stages[0].cut.last && p.stages[1].cut.last);
    for (const auto& st : p.stages) {
      QVERIFY(st.plan.fits());
      for (const Device d : st.plan.device_map.devices()) QVERIFY2(d.is_gpu(), st.host.c_str());
    }
    const double a = p.stages[0].seconds, b = p.stages[1].seconds;
    QVERIFY(std::abs(a - b) < 0.05 * std::max(a, b));
    QCOMPARE(p.activation_bytes, 16384.0 * 2);
    QCOMPARE(p.transfer_seconds, 5e-6 + 16384.0 * 2 / 50e9);
    QCOMPARE(p.tokens_per_second, 1.0 / (a + b + p.transfer_seconds));
    QCOMPARE(p.pipelined_tokens_per_second, 1.0 / (std::max(a, b) + p.transfer_seconds));
  }

  // Unequal hosts get unequal stages: balancing by time gives the small host fewer layers, and no
  // other cut of the layers has a faster slowest stage.
  void stagesAreBalancedByTimeNotBytes() {
    const Skeleton s = open_model("catalog:llama-3.1-70b").skeleton;
    const Cluster c = parse(R"({"hosts": [{"name": "big", "profile": "8x80gb"}, {"name": "small", "profile": "2x24gb"}],
                                "link": {"gbs": 12.5, "latency_us": 20}})");
    const StagePlan p = plan_stages(s, c, bf16(), {DType::BF16});
    QVERIFY(p.fits);
    const auto layers = [](const Stage& st) { return st.cut.end_layer - st.cut.first_layer; };
    QVERIFY2(layers(p.stages[1]) < layers(p.stages[0]), std::to_string(layers(p.stages[1])).c_str());
    const double slowest = std::max(p.stages[0].seconds, p.stages[1].seconds);
    for (std::size_t cut = 1; cut < 80; cut += 1) {
      Stage one, two;
      one.cut = {0, cut, true, false};
      two.cut = {cut, 80, false, true};
      double worst = 0;
      for (const auto& [host, st] : {std::pair{0, one}, std::pair{1, two}}) {
        const Skeleton part = stage_skeleton(s, st.cut);
        const Plan plan = plan_device_map(part, c.hosts[static_cast<std::size_t>(host)].budgets, bf16());
        const auto speed = predict_decode_speed(part, plan.device_map, c.hosts[static_cast<std::size_t>(host)].machine, {DType::BF16});
        worst = std::max(worst, plan.fits() ? 1.0 / speed.tokens_per_second : 1e12);
      }
      QVERIFY2(worst >= slowest * (1 - 1e-9), ("cut at " + std::to_string(cut)).c_str());
    }
  }

  // Each host's map names the model's own modules, covers every tensor of its stage and no other.
  void eachHostsMapCoversItsStage() {
    const Skeleton s = open_model("catalog:llama-3.1-70b").skeleton;
    const StagePlan p = plan_stages(s, bundled("3x2x24gb"), bf16(4096), {DType::BF16});
    QCOMPARE(p.stages.size(), std::size_t(3));
    std::set<std::string> covered;
    for (const auto& st : p.stages) {
      const DeviceMap map = host_device_map(s, st);
      const Skeleton part = stage_skeleton(s, st.cut);
      QVERIFY2(validate(map, part).ok(), validate(map, part).message().c_str());
      for (const auto& [key, device] : map.entries()) {
        QVERIFY2(!key.empty() && key != "model" && key != "model.layers", key.c_str());
        QVERIFY2(s.find_module(key) >= 0 || s.find_tensor(key) >= 0, key.c_str());
      }
      const DeviceMapIndex index(map);
      for (const auto& t : s.tensors) {
        const bool mine = part.find_tensor(t.name) >= 0;
        QVERIFY2(index.device_of(t.name).has_value() == mine, t.name.c_str());
        if (mine && (!t.buffer || t.persistent)) covered.insert(t.name);
      }
    }
    for (const auto& t : s.tensors)
      if (!t.buffer || t.persistent) QVERIFY2(covered.contains(t.name), t.name.c_str());
  }

  void theVllmLaunchHasTheSameSplit() {
    const Skeleton s = open_model("catalog:llama-3.1-70b").skeleton;
    const Cluster c = bundled("3x2x24gb");
    const StagePlan p = plan_stages(s, c, bf16(4096), {DType::BF16});
    const VllmLaunch v = vllm_launch(p, c, "meta-llama/Llama-3.1-70B-Instruct", bf16(4096));
    QCOMPARE(v.pipeline_parallel, 3);
    QCOMPARE(v.tensor_parallel, 2);
    std::string expected;
    for (const auto& st : p.stages) expected += (expected.empty() ? "" : ",") + std::to_string(st.cut.end_layer - st.cut.first_layer);
    QCOMPARE(v.layer_partition, expected);
    QVERIFY(testkit::contains(v.script, "VLLM_PP_LAYER_PARTITION=" + expected + " exec vllm serve 'meta-llama/Llama-3.1-70B-Instruct'"));
    QVERIFY(testkit::contains(v.script, "--pipeline-parallel-size 3 --tensor-parallel-size 2"));
    QVERIFY(testkit::contains(v.script, "--max-model-len 4096"));
    QVERIFY(testkit::contains(v.script, "ray start --address=ws0:6379"));
    // Hosts with different GPU counts: one tensor-parallel size, the smallest, and the script says so.
    const Cluster mixed = parse(R"({"hosts": [{"name": "a", "profile": "8x80gb"}, {"name": "b", "profile": "2x24gb"}], "link": {"gbs": 5}})");
    const VllmLaunch m = vllm_launch(plan_stages(s, mixed, bf16(), {DType::BF16}), mixed, "x", bf16());
    QCOMPARE(m.tensor_parallel, 2);
    QVERIFY(testkit::contains(m.script, "smallest host's 2 GPU(s)"));
  }

  void tooFewLayersForTheHostsIsRefused() {
    const Skeleton demo = open_model(testkit::demo_dir().string()).skeleton;  // 5 layers
    nlohmann::json j = {{"link", {{"gbs", 1}}}, {"hosts", nlohmann::json::array()}};
    for (int i = 0; i < 6; ++i) j["hosts"].push_back({{"name", "h" + std::to_string(i)}, {"profile", "1x24gb"}});
    DM_EXPECT_ERROR(plan_stages(demo, parse(j.dump()), {}), "5 decoder layers", "6 hosts");
  }
};

QTEST_MAIN(ClusterPlanTest)
#include "test_cluster_plan.moc"
