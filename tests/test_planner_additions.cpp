// What we add to Accelerate's planner: pins and the KV-cache reserve. Off by default (the conformance
// suite covers that), and when on they behave as documented.
#include "testkit.hpp"

#include "error.hpp"
#include "model/model_source.hpp"
#include "model/module_sizes.hpp"
#include "model/quantization.hpp"
#include "plan/planner.hpp"

using namespace devicemap;

namespace {
const DeviceUsage& usage(const Plan& p, Device d) {
  for (const auto& u : p.devices)
    if (u.device == d) return u;
  throw std::runtime_error("no device " + d.name());
}
std::int64_t config_layers(const Skeleton& s) { return s.config["num_hidden_layers"].get<std::int64_t>(); }
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
  // A GPU too small for the first module leaves the whole model on the CPU: it runs there, so its KV
  // cache is in RAM and no GPU needs an offload reserve (before, a 0-byte GPU was "over budget").
  void a_plan_with_nothing_on_a_gpu_runs_on_the_cpu() {
    const Skeleton s = open_model("catalog:llama-3.1-8b").skeleton;
    PlanOptions o;
    o.kv = {8192, 1};
    for (const char* budgets : {"0=0,cpu=48GiB", "0=512MiB,cpu=48GiB"}) {
      const Plan p = plan_device_map(s, MaxMemory::parse(budgets), o);
      QVERIFY2(p.device_map.devices() == std::vector<Device>{Device::cpu()}, budgets);
      const auto& gpu = usage(p, Device::gpu(0));
      QCOMPARE(gpu.kv_cache, std::int64_t(0));
      QCOMPARE(gpu.offload_reserve, std::int64_t(0));
      QCOMPARE(usage(p, Device::cpu()).kv_cache, std::int64_t(32) * p.kv_per_layer);
      QVERIFY2(p.fits(), budgets);
    }
  }
  // Pinned layers have their KV cache where they run, as placed ones: a map checked as pins (every key
  // pinned) reserves the same KV as the plan that made it.
  void pinned_layers_carry_their_kv_cache() {
    const Skeleton s = open_model("catalog:llama-3.1-8b").skeleton;
    PlanOptions o;
    o.kv = {8192, 1};
    const auto mm = MaxMemory::parse("0=10GiB,cpu=64GiB");
    const Plan plan = plan_device_map(s, mm, o);
    PlanOptions pinned = o;
    for (const auto& [name, device] : plan.device_map.entries()) pinned.pins.push_back({name, device});
    const Plan again = plan_device_map(s, mm, pinned);
    QVERIFY(again.device_map == plan.device_map);
    for (const Device d : {Device::gpu(0), Device::cpu()}) QCOMPARE(usage(again, d).kv_cache, usage(plan, d).kv_cache);
    QCOMPARE(usage(again, Device::gpu(0)).kv_cache, std::int64_t(32) * plan.kv_per_layer);  // every layer runs there
    // One layer pinned to the CPU still runs on GPU 0; a pinned piece of a layer charges its layer once.
    PlanOptions pieces = o;
    pieces.pins = {{"model.layers.31.self_attn", Device::cpu()}, {"model.layers.31.mlp", Device::cpu()}};
    QCOMPARE(usage(plan_device_map(s, mm, pieces), Device::gpu(0)).kv_cache, std::int64_t(32) * plan.kv_per_layer);
  }
  // Offloaded layers run on the main GPU, so their KV cache lands there after the walk has left it: the
  // planner leaves room for it, and a plan with a KV reserve never overfills a GPU by it.
  void a_kv_reserve_never_overfills_the_main_gpu() {
    for (const char* id : {"catalog:llama-3.1-8b", "catalog:llama-3.1-70b"}) {
      const Skeleton s = open_model(id).skeleton;
      // From 4 GiB a card holds the KV of every layer (at most 2.5 GiB here) beside the largest layer.
      for (const std::uint64_t context : {4096, 8192})
        for (int tenth_gib = 40; tenth_gib <= 240; tenth_gib += 15) {
          PlanOptions o;
          o.dtype = DType::BF16;
          o.kv = {context, 1};
          const std::string budgets = "0=" + std::to_string(tenth_gib * 1024 / 10) + "MiB,1=" +
                                      std::to_string(tenth_gib * 1024 / 10) + "MiB,cpu=200GiB";
          const Plan p = plan_device_map(s, MaxMemory::parse(budgets), o);
          const std::string what = std::string(id) + " " + budgets + " context " + std::to_string(context);
          QVERIFY2(p.fits(), what.c_str());
          // The KV of every layer is somewhere: its own GPU, or the main GPU for an offloaded one.
          std::int64_t kv = 0;
          for (const auto& u : p.devices) kv += u.kv_cache;
          QCOMPARE(kv, p.kv_per_layer * config_layers(s));
        }
    }
  }
  // A map made of pins only (as `check` and the Studio's import see one) still needs room on the GPU that
  // runs its offloaded layers: the largest of them, a whole layer or the head, not a whole container.
  void a_pinned_map_reserves_its_largest_offloaded_layer() {
    const Skeleton s = open_model("catalog:llama-3.1-8b").skeleton;
    PlanOptions o;
    o.dtype = DType::BF16;
    o.pins = {{"model.embed_tokens", Device::gpu(0)}, {"model.layers", Device::cpu()}, {"model.norm", Device::gpu(0)},
              {"model.rotary_emb", Device::gpu(0)}, {"lm_head", Device::gpu(0)}};
    const auto mm = MaxMemory::parse("0=24GiB,cpu=64GiB");
    const Plan p = plan_device_map(s, mm, o);
    QCOMPARE(usage(p, Device::gpu(0)).offload_reserve, compute_module_sizes(s, o.dtype).module[static_cast<std::size_t>(s.find_module("model.layers.0"))]);
    o.pins.back().device = Device::cpu();  // the head offloaded too: it is the largest
    QCOMPARE(usage(plan_device_map(s, mm, o), Device::gpu(0)).offload_reserve,
             compute_module_sizes(s, o.dtype).module[static_cast<std::size_t>(s.find_module("lm_head"))]);
  }
  void over_budget_devices_report_their_shortfall() {
    const Skeleton s = open_model("catalog:llama-3.1-8b").skeleton;
    PlanOptions o;
    o.pins = {{"model.layers.0", Device::gpu(0)}, {"model.layers.1", Device::gpu(0)}};
    const Plan p = plan_device_map(s, MaxMemory::parse("0=100MB,cpu=64GiB"), o);
    QVERIFY(!p.fits());
    QVERIFY(usage(p, Device::gpu(0)).shortfall() > 0);
  }

  // bitsandbytes on load, for Llama-2-7B (hidden 4096, intermediate 11008, 32 layers, vocab 32000,
  // untied, float16), worked by hand from transformers' _get_device_map: every floating tensor at the
  // target size (int8: 1 byte, int4: half), at most its own, except lm_head (get_keys_to_not_convert's
  // output head, a special dtype: float16); the rotary buffer (64 float32) at the target size too.
  void bitsandbytes_plans_size_as_transformers_does() {
    const Skeleton s = skeleton_from_config(nlohmann::json{
        {"model_type", "llama"}, {"hidden_size", 4096}, {"intermediate_size", 11008}, {"num_hidden_layers", 32},
        {"num_attention_heads", 32}, {"num_key_value_heads", 32}, {"vocab_size", 32000}, {"torch_dtype", "float16"}});
    const std::int64_t embed = 32000LL * 4096, per_layer = 4LL * 4096 * 4096 + 3LL * 4096 * 11008 + 2 * 4096;
    Quantization q8;
    q8.method = Quantization::Method::Bnb8;
    QCOMPARE(modules_not_converted(s, q8), std::vector<std::string>{"lm_head"});
    QCOMPARE(transformers_quantized_sizes(s, q8, DType::F16).total(), embed + 32 * per_layer + 4096 + 64 + 2 * embed);
    Quantization q4;
    q4.method = Quantization::Method::Bnb4;
    q4.quant_type = "nf4";
    QCOMPARE(transformers_quantized_sizes(s, q4, DType::F16).total(), embed / 2 + 32 * (per_layer / 2) + 2048 + 32 + 2 * embed);
    // Real bytes, 8-bit: int8 weights plus a float32 scale per output row; norms, embeddings, the head
    // and the buffer in float16.
    const std::int64_t linears = 4LL * 4096 * 4096 + 3LL * 4096 * 11008, rows = 4 * 4096 + 2 * 11008 + 4096;
    QCOMPARE(real_quantized_sizes(s, q8, DType::F16).total(),
             2 * embed + 32 * (linears + 4 * rows + 2 * 2 * 4096) + 2 * 4096 + 2 * 64 + 2 * embed);
    // 4-bit NF4: two codes per byte, a float32 absmax per 64 weights and a 16-entry code table per Linear.
    const std::int64_t per_linear_tables = 4 * 16;
    QCOMPARE(real_quantized_sizes(s, q4, DType::F16).total(),
             2 * embed + 32 * (linears / 2 + 4 * (linears / 64) + 7 * per_linear_tables + 2 * 2 * 4096) + 2 * 4096 + 2 * 64 + 2 * embed);

    // The walk plans on 90% of each budget (adjust_max_memory) and the fit is by the real bytes.
    PlanOptions o;
    o.dtype = DType::F16;
    o.quantization = q4;
    const Plan p = plan_device_map(s, MaxMemory::parse("0=2GiB,cpu=30GiB"), o);
    QCOMPARE(p.planned_max_memory.get(Device::gpu(0)), std::optional<std::uint64_t>(std::uint64_t(0.9 * double(2ULL << 30))));
    QCOMPARE(p.total_bytes, transformers_quantized_sizes(s, q4, DType::F16).total());
    std::int64_t real = 0, counted = 0;
    for (const auto& u : p.devices) {
      real += u.real_weights.value_or(-1);
      counted += u.weights;
      QVERIFY(u.weights <= (u.planned ? *u.planned : INT64_MAX));
    }
    QCOMPARE(real, p.real_total_bytes);  // every module placed once, by real bytes too
    QCOMPARE(counted, p.total_bytes);
    QVERIFY(usage(p, Device::gpu(0)).real_weights > usage(p, Device::gpu(0)).weights);
    // A skip list replaces transformers' own choice: the MLPs stay float16 (counted at 2 bytes).
    Quantization skip = q8;
    skip.skip_modules = {"mlp", "lm_head"};
    QCOMPARE(transformers_quantized_sizes(s, skip, DType::F16).total() - transformers_quantized_sizes(s, q8, DType::F16).total(),
             32 * 3LL * 4096 * 11008);
    // A tied model also keeps its embedding (the tied parameters' modules) unconverted.
    const Skeleton tied = skeleton_from_config(nlohmann::json{{"model_type", "llama"}, {"hidden_size", 64}, {"intermediate_size", 128},
                                                              {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"vocab_size", 100},
                                                              {"tie_word_embeddings", true}});
    const auto kept = modules_not_converted(tied, q8);
    QVERIFY(std::find(kept.begin(), kept.end(), "model.embed_tokens") != kept.end());
    QVERIFY(std::find(kept.begin(), kept.end(), "lm_head") != kept.end());
  }

  // A bitsandbytes checkpoint's quantization_config, and its errors.
  void bitsandbytes_config_is_read_and_checked() {
    const auto q = Quantization::from_config(nlohmann::json{{"quantization_config", {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true},
                                                                                       {"bnb_4bit_quant_type", "nf4"},
                                                                                       {"bnb_4bit_use_double_quant", true}}}},
                                             "config.json");
    QVERIFY(q && q->method == Quantization::Method::Bnb4 && q->quant_type == "nf4" && q->double_quant);
    QVERIFY(!Quantization::from_config(nlohmann::json{{"quantization_config", {{"quant_method", "gptq"}}}}, "config.json"));
    try {
      Quantization::from_config(nlohmann::json{{"quantization_config", {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true},
                                                                          {"bnb_4bit_quant_type", "nf3"}}}},
                                "m/config.json");
      QFAIL("accepted nf3");
    } catch (const Error& e) {
      QVERIFY2(QString(e.what()).contains("m/config.json") && QString(e.what()).contains("bnb_4bit_quant_type"), e.what());
    }
  }
};

QTEST_MAIN(PlannerAdditions)
#include "test_planner_additions.moc"
