// What we add to Accelerate's planner: pins and the KV-cache reserve. Off by default (the conformance
// suite covers that), and when on they behave as documented.
#include "testkit.hpp"

#include "error.hpp"
#include "model/model_source.hpp"
#include "model/module_sizes.hpp"
#include "plan/planner.hpp"

using namespace devicemap;

namespace {
const DeviceUsage& usage(const Plan& p, Device d) {
  for (const auto& u : p.devices)
    if (u.device == d) return u;
  throw std::runtime_error("no device " + d.name());
}
}  // namespace

class PlannerAdditions : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void pin_moves_a_layer_and_the_rest_is_planned_around_it() {
    const Skeleton s = open_model("catalog:llama-2-70b").skeleton;
    const auto mm = MaxMemory::parse("0=80GiB,1=80GiB,cpu=200GiB");
    PlanOptions o;
    const Plan before = plan_device_map(s, mm, o);
    QCOMPARE(before.device_map.device_of("model.layers.3"), std::optional(Device::gpu(0)));
    o.pins = {{"model.layers.3", Device::gpu(1)}};
    const Plan after = plan_device_map(s, mm, o);
    QCOMPARE(after.device_map.device_of("model.layers.3.mlp.up_proj.weight"), std::optional(Device::gpu(1)));
    // GPU 1's budget is charged with the pinned layer first.
    const auto layer = compute_module_sizes(s).module[static_cast<std::size_t>(s.find_module("model.layers.3"))];
    QVERIFY(usage(after, Device::gpu(1)).weights >= layer);
    // Everything is still placed exactly once.
    std::int64_t total = 0;
    for (const auto& u : after.devices) total += u.weights;
    QCOMPARE(total, after.total_bytes);
    QVERIFY(after.fits());
  }
  void pinning_a_tied_weight_takes_its_partner_along() {
    const Skeleton s = open_model(testkit::demo_dir().string()).skeleton;
    PlanOptions o;
    o.pins = {{"lm_head", Device::gpu(1)}};
    const Plan p = plan_device_map(s, MaxMemory::parse("0=1GiB,1=1GiB,cpu=1GiB"), o);
    QCOMPARE(p.device_map.device_of("model.embed_tokens.weight"), std::optional(Device::gpu(1)));
    QCOMPARE(p.device_map.device_of("lm_head.weight"), std::optional(Device::gpu(1)));
    QCOMPARE(p.notes.size(), std::size_t(1));
    QVERIFY(QString::fromStdString(p.notes[0]).contains("model.embed_tokens"));
  }
  void bad_pins_are_clear_errors() {
    const Skeleton s = open_model(testkit::demo_dir().string()).skeleton;
    PlanOptions o;
    o.pins = {{"model.layers.99", Device::gpu(0)}};
    QVERIFY_THROWS_EXCEPTION(Error, plan_device_map(s, MaxMemory::parse("0=1GiB,cpu=1GiB"), o));
    o.pins = {{"model.layers.1", Device::gpu(5)}};
    QVERIFY_THROWS_EXCEPTION(Error, plan_device_map(s, MaxMemory::parse("0=1GiB,cpu=1GiB"), o));
    o.pins = {{"lm_head", Device::gpu(0)}, {"model.embed_tokens", Device::cpu()}};
    QVERIFY_THROWS_EXCEPTION(Error, plan_device_map(s, MaxMemory::parse("0=1GiB,cpu=1GiB"), o));
  }
  void kv_reserve_is_charged_per_layer_where_it_runs() {
    const Skeleton s = open_model("catalog:llama-3.1-8b").skeleton;
    PlanOptions o;
    o.strategy = Strategy::Sequential;
    o.kv = {8192, 16};
    const auto mm = MaxMemory::parse("0=24GiB,cpu=64GiB");
    const Plan p = plan_device_map(s, mm, o);
    // 2 × 8 kv heads × 128 head dim × 8192 tokens × 16 sequences × 2 bytes (bf16) = 512 MiB per layer.
    QCOMPARE(p.kv_per_layer, std::int64_t(512) << 20);
    const auto layers_on_gpu0 = [](const Plan& plan) {
      int n = 0;
      for (int l = 0; l < 32; ++l) n += plan.device_map.device_of("model.layers." + std::to_string(l)) == Device::gpu(0);
      return n;
    };
    const int layers_on_gpu = layers_on_gpu0(p);
    const auto& cpu = usage(p, Device::cpu());
    // Layers placed on the CPU still run on GPU 0, so their KV cache is charged there.
    QCOMPARE(usage(p, Device::gpu(0)).kv_cache, std::int64_t(32) * p.kv_per_layer);
    QCOMPARE(cpu.kv_cache, std::int64_t(0));
    // The reserve pushes layers off the GPU compared with the plain plan.
    PlanOptions plain = o;
    plain.kv = {};
    const Plan base = plan_device_map(s, mm, plain);
    const int base_layers = layers_on_gpu0(base);
    QCOMPARE(base_layers, 32);
    QVERIFY2(layers_on_gpu < base_layers, "a KV reserve must leave less room for weights");
  }
  void kv_reserve_on_a_cpu_only_machine_goes_to_ram() {
    const Skeleton s = open_model("catalog:llama-3.1-8b").skeleton;
    PlanOptions o;
    o.kv = {4096, 1};
    const Plan p = plan_device_map(s, MaxMemory::parse("cpu=64GiB"), o);
    QCOMPARE(usage(p, Device::cpu()).kv_cache, std::int64_t(32) * p.kv_per_layer);
    QVERIFY(p.fits());
  }
  void over_budget_devices_report_their_shortfall() {
    const Skeleton s = open_model("catalog:llama-3.1-8b").skeleton;
    PlanOptions o;
    o.pins = {{"model.layers.0", Device::gpu(0)}, {"model.layers.1", Device::gpu(0)}};
    const Plan p = plan_device_map(s, MaxMemory::parse("0=100MB,cpu=64GiB"), o);
    QVERIFY(!p.fits());
    QVERIFY(usage(p, Device::gpu(0)).shortfall() > 0);
  }
};

QTEST_MAIN(PlannerAdditions)
#include "test_planner_additions.moc"
