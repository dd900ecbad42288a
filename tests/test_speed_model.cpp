// The decode speed model: bytes per token over the bandwidth of where they are read, PCIe and disk for
// offloaded weights, the page cache rule, prefetch overlap, and unknown figures left unknown.
#include "testkit.hpp"

#include <algorithm>

#include "model/model_source.hpp"
#include "model/module_sizes.hpp"
#include "model/skeleton.hpp"
#include "plan/bandwidth.hpp"
#include "plan/device_map.hpp"
#include "plan/machine.hpp"
#include "plan/speed_model.hpp"

using namespace devicemap;

namespace {

// One GPU of 1000 GB/s, 25 GB/s PCIe, RAM of `ram` at 50 GB/s, a 2 GB/s disk; no GPU when gpu_gbs < 0.
Machine machine(const char* ram = "256GiB", double gpu_gbs = 1000) {
  nlohmann::json j{{"name", "test"},
                   {"cpu", {{"memory", ram}, {"bandwidth_gbs", 50}}},
                   {"disk", {{"free", "4TB"}, {"bandwidth_gbs", 2}}},
                   {"pcie_gbs", 25}};
  j["gpus"] = nlohmann::json::array();
  if (gpu_gbs >= 0) j["gpus"].push_back({{"memory", "80GiB"}, {"bandwidth_gbs", gpu_gbs}});
  return machine_from_profile(j, "test profile");
}

double bytes_of(const Skeleton& s, const std::string& tensor, int bytes_per_element) {
  return double(s.tensors[static_cast<std::size_t>(s.find_tensor(tensor))].numel()) * bytes_per_element;
}

const SpeedPart& part(const SpeedPrediction& p, const std::string& resource) {
  for (const auto& x : p.parts)
    if (x.resource == resource) return x;
  throw std::runtime_error("no part " + resource);
}

DeviceMap split_at(int first_offloaded, Device front, Device back, int layers = 32) {
  DeviceMap m({{"", front}});
  for (int l = first_offloaded; l < layers; ++l) m.set("model.layers." + std::to_string(l), back);
  return m;
}

}  // namespace

class SpeedModel : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void one_gpu_reads_every_weight_but_the_embedding_rows() {
    const Skeleton s = open_model("catalog:llama-3.1-8b").skeleton;  // bfloat16, untied head, 32 layers
    const auto p = predict_decode_speed(s, DeviceMap({{"", Device::gpu(0)}}), machine());
    QVERIFY(p.known);
    const auto sizes = compute_module_sizes(s);
    const double read = double(sizes.total() - sizes.module_buffers[0]) - bytes_of(s, "model.embed_tokens.weight", 2);
    QCOMPARE(part(p, "GPU 0 memory").bytes, read);
    // 32 layers, the final norm and the head each cost one dispatch.
    const double seconds = read / 1000e9 + 34 * kGpuBlockOverhead;
    QVERIFY(std::abs(p.tokens_per_second * seconds - 1) < 1e-9);
    QCOMPARE(p.tokens_per_second_without_prefetch, p.tokens_per_second);  // nothing to fetch
    DM_COMPARE_STR(p.bottleneck, std::string("GPU 0 memory"));
  }

  void a_token_reads_only_the_experts_its_router_picks() {
    // Mixtral 8x7B: 2 of 8 experts per token, so of each expert's bytes a quarter is read per token.
    const Skeleton s = open_model("catalog:mixtral-8x7b").skeleton;
    const auto p = predict_decode_speed(s, DeviceMap({{"", Device::gpu(0)}}), machine());
    double experts = 0, rest = 0;
    for (const auto& t : s.tensors) {
      if (t.buffer || t.tied_to >= 0 || t.name == "model.embed_tokens.weight") continue;
      (t.name.find(".experts.") != std::string::npos ? experts : rest) += double(t.numel()) * 2;
    }
    QVERIFY(experts > 0.9 * (experts + rest));  // the experts are most of the model
    QCOMPARE(part(p, "GPU 0 memory").bytes, rest + experts * 2 / 8);
    QVERIFY(std::any_of(p.assumptions.begin(), p.assumptions.end(),
                        [](const std::string& a) { return a.find("25%") != std::string::npos; }));
  }

  void offloaded_layers_cross_pcie_every_token_and_prefetch_hides_the_gpu_time() {
    const Skeleton s = open_model("catalog:llama-3.1-8b").skeleton;
    const auto all_gpu = predict_decode_speed(s, DeviceMap({{"", Device::gpu(0)}}), machine());
    const auto p = predict_decode_speed(s, split_at(16, Device::gpu(0), Device::cpu()), machine());
    QVERIFY(p.known);
    double offloaded = 0;
    for (int l = 16; l < 32; ++l)
      for (const auto& t : s.tensors)
        if (t.name.rfind("model.layers." + std::to_string(l) + ".", 0) == 0 && !t.buffer) offloaded += double(t.numel()) * 2;
    QCOMPARE(part(p, "PCIe").bytes, offloaded);
    DM_COMPARE_STR(p.bottleneck, std::string("PCIe"));
    // Accelerate's order: compute everything on the GPU, and wait for each offloaded layer's copy.
    const double without = 1 / all_gpu.tokens_per_second + offloaded / 25e9;
    QVERIFY(std::abs(p.tokens_per_second_without_prefetch * without - 1) < 1e-9);
    // Prefetch overlaps each copy with the layer before it (15 → 16, …, 30 → 31), and the last layer's
    // compute with block 0's (empty) fetch: 16 layers' GPU time disappears behind the link.
    const double layer = offloaded / 16 / 1000e9 + kGpuBlockOverhead;
    QVERIFY(std::abs(p.tokens_per_second * (without - 16 * layer) - 1) < 1e-9);
    QVERIFY(p.tokens_per_second < 25e9 / offloaded);  // never faster than the link
  }

  void disk_weights_come_from_the_page_cache_only_when_the_ram_left_holds_them() {
    const Skeleton s = open_model("catalog:llama-3.1-8b").skeleton;
    const DeviceMap map = split_at(16, Device::cpu(), Device::disk());
    const auto roomy = predict_decode_speed(s, map, machine("256GiB", -1));
    QVERIFY(roomy.known);
    QVERIFY(roomy.assumptions.front().find("page cache") != std::string::npos);
    QVERIFY_THROWS_NO_EXCEPTION(part(roomy, "CPU RAM"));
    QVERIFY(std::none_of(roomy.parts.begin(), roomy.parts.end(), [](const SpeedPart& x) { return x.resource == "disk"; }));

    const auto tight = predict_decode_speed(s, map, machine("8GiB", -1));  // the CPU half alone takes ~8 GB
    QVERIFY(tight.known);
    QVERIFY(tight.assumptions.front().find("from the disk") != std::string::npos);
    DM_COMPARE_STR(tight.bottleneck, std::string("disk"));
    QVERIFY(tight.tokens_per_second < roomy.tokens_per_second / 10);  // 2 GB/s against 50 GB/s
    // The disk read-ahead of the next layer overlaps the CPU's work on this one.
    QVERIFY(tight.tokens_per_second > tight.tokens_per_second_without_prefetch);
  }

  void float16_matrices_stay_float16_on_the_cpu() {
    const Skeleton s = open_model("catalog:llama-3.1-8b").skeleton;
    const DeviceMap cpu({{"", Device::cpu()}});
    const auto bf16 = predict_decode_speed(s, cpu, machine("256GiB", -1), {DType::BF16});
    const auto f16 = predict_decode_speed(s, cpu, machine("256GiB", -1), {DType::F16});
    // The decode kernels read float16 matrices as they are; only the norms (1-D) run as float32.
    QVERIFY(part(f16, "CPU RAM").bytes > part(bf16, "CPU RAM").bytes);
    QVERIFY(part(f16, "CPU RAM").bytes < 1.001 * part(bf16, "CPU RAM").bytes);
    // On a GPU float16 stays float16.
    const auto gpu = predict_decode_speed(s, DeviceMap({{"", Device::gpu(0)}}), machine(), {DType::F16});
    QCOMPARE(part(gpu, "GPU 0 memory").bytes, part(bf16, "CPU RAM").bytes);
  }

  void a_slow_cpu_is_bound_by_its_compute_rate_per_dtype() {
    const Skeleton s = open_model("catalog:llama-3.1-8b").skeleton;
    const DeviceMap cpu({{"", Device::cpu()}});
    Machine m = machine("256GiB", -1);  // 50 GB/s RAM
    const auto memory_bound = predict_decode_speed(s, cpu, m, {DType::BF16});
    QVERIFY(!memory_bound.assumptions.empty());  // no compute rate: said, and taken to be memory-bound
    m.cpu_gflops = 100;     // float32: 2 flops per 4 bytes at 50 GB/s is 25 GFLOP/s, so memory binds
    m.cpu_gflops_bf16 = 5;  // bfloat16: 25 GFLOP/s of reads, 5 of compute: compute binds
    const auto f32 = predict_decode_speed(s, cpu, m, {DType::F32});
    DM_COMPARE_STR(f32.bottleneck, std::string("CPU RAM"));
    const auto bf16 = predict_decode_speed(s, cpu, m, {DType::BF16});
    DM_COMPARE_STR(bf16.bottleneck, std::string("CPU compute"));
    // Every weight but the embedding is one multiply-add per token.
    const auto sizes = compute_module_sizes(s, DType::BF16);
    const double params = (double(sizes.total() - sizes.module_buffers[0]) - bytes_of(s, "model.embed_tokens.weight", 2)) / 2;
    QVERIFY(std::abs(part(bf16, "CPU compute").seconds - 2 * params / 5e9) < 1e-9);
    QVERIFY(bf16.tokens_per_second < memory_bound.tokens_per_second / 4);
  }

  void packed_quantized_linears_run_at_their_kernels_rate() {
    // At 4 bits a step reads a quarter of the 16-bit bytes, but the 4-bit kernel's own rate may bind.
    const Skeleton s = open_model("catalog:llama-3.1-8b").skeleton;
    const DeviceMap cpu({{"", Device::cpu()}});
    Machine m = machine("256GiB", -1);  // 50 GB/s RAM
    m.cpu_gflops = m.cpu_gflops_bf16 = 1000;
    SpeedInputs nf4;
    nf4.quantization = Quantization{Quantization::Method::Bnb4, "nf4", false, 64, {}};
    const auto unknown = predict_decode_speed(s, cpu, m, nf4);
    bool said = false;
    for (const auto& a : unknown.assumptions) said = said || a.find("quantized Linears") != std::string::npos;
    QVERIFY(said);
    DM_COMPARE_STR(unknown.bottleneck, std::string("CPU RAM"));
    m.cpu_gflops_4bit = 5;
    const auto slow = predict_decode_speed(s, cpu, m, nf4);
    DM_COMPARE_STR(slow.bottleneck, std::string("CPU compute"));
    // The converted Linears (every block Linear; the head stays 16-bit) at 5 GFLOP/s, the rest at 1000.
    double converted = 0;
    for (std::size_t i = 0; i < s.tensors.size(); ++i) {
      const auto& t = s.tensors[i];
      if (t.shape.size() == 2 && t.name.rfind("model.layers.", 0) == 0) converted += double(t.numel());
    }
    QVERIFY(part(slow, "CPU compute").seconds > 2 * converted / 5e9);
    QVERIFY(part(slow, "CPU compute").seconds < 2 * converted / 5e9 * 1.05);
    QVERIFY(slow.tokens_per_second < unknown.tokens_per_second / 2);
  }

  void a_tied_head_reads_the_whole_embedding() {
    const Skeleton s = open_model("catalog:gpt2").skeleton;  // float32, lm_head tied to wte
    const auto p = predict_decode_speed(s, DeviceMap({{"", Device::gpu(0)}}), machine());
    const auto sizes = compute_module_sizes(s);
    const double expected = double(sizes.total() - sizes.module_buffers[0]) - bytes_of(s, "transformer.wpe.weight", 4);
    QCOMPARE(part(p, "GPU 0 memory").bytes, expected);  // wte counted once, by the head; wpe a row
  }

  void a_profile_with_a_bad_figure_is_refused_by_name() {
    const auto error = [](const char* json) {
      return testkit::error_of([&] { machine_from_profile(nlohmann::json::parse(json), "p.json"); });
    };
    auto e = error(R"({"cpu": {"memory": "8GiB", "gflops": "fast"}})");
    QVERIFY2(testkit::contains(e, "p.json: cpu") && testkit::contains(e, "\"gflops\" = \"fast\""), e.c_str());
    e = error(R"({"cpu": {"memory": "8GiB"}, "gpus": [{"memory": "1GiB", "bandwidth_gbs": -5}]})");
    QVERIFY2(testkit::contains(e, "gpus[0]") && testkit::contains(e, "bandwidth_gbs"), e.c_str());
    e = error(R"({"cpu": {"memory": "8GiB"}, "pcie_gbs": [25]})");
    QVERIFY2(testkit::contains(e, "pcie_gbs"), e.c_str());
    e = error(R"({"name": 7, "cpu": {"memory": "8GiB"}})");
    QVERIFY2(testkit::contains(e, "name"), e.c_str());
    QVERIFY(error(R"({"cpu": {"memory": "8GiB", "gflops": 0}})").empty());  // 0 is "unknown"
  }

  void a_missing_figure_leaves_the_prediction_unknown() {
    const Skeleton s = open_model("catalog:llama-3.1-8b").skeleton;
    const auto p = predict_decode_speed(s, split_at(30, Device::gpu(0), Device::cpu()), machine("256GiB", 0));
    QVERIFY(!p.known);
    QCOMPARE(p.tokens_per_second, 0.0);
    QVERIFY(std::find(p.missing.begin(), p.missing.end(), "bandwidth of GPU 0") != p.missing.end());
    QVERIFY(p.summary().rfind("unknown", 0) == 0);
    // A placement that never touches the unknown device is still predicted.
    QVERIFY(predict_decode_speed(s, DeviceMap({{"", Device::cpu()}}), machine("256GiB", 0)).known);
  }

  // A detected disk with no checkpoint to read is measured through a temporary file that leaves nothing.
  void a_folder_probe_measures_the_disk_and_leaves_nothing() {
    testkit::TempDir dir;
    std::string why;
    const auto gbs = measure_folder_read_gbs(dir.path(), &why, std::size_t{32} << 20);
    QVERIFY2(gbs && *gbs > 0, why.c_str());
    QVERIFY(std::filesystem::is_empty(dir.path()));
    QCOMPARE(detected_disk_folder(detect_machine(dir.path())), std::filesystem::absolute(dir.path()));
    QVERIFY(detected_disk_folder(machine("8GiB", 0)).empty());  // a described disk has no folder

    QVERIFY(!measure_folder_read_gbs(dir / "missing", &why));
    QVERIFY2(testkit::contains(why, "missing"), why.c_str());
  }
};

QTEST_GUILESS_MAIN(SpeedModel)
#include "test_speed_model.moc"
