// The real stories260K Llama (resources/demo) run by the runtime: greedy decoding and logits against the
// reference of expected_greedy.json, with every block in RAM, with the blocks left on "disk" (served from
// the safetensors mapping), and from a bfloat16 copy written sharded.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "error.hpp"
#include "format/checkpoint.hpp"
#include "format/safetensors.hpp"
#include "plan/device_map.hpp"
#include "run/generator.hpp"
#include "run/model.hpp"
#include "testkit.hpp"

using namespace devicemap;
namespace fs = std::filesystem;

namespace {

std::vector<std::int64_t> ints(const nlohmann::json& j) { return j.get<std::vector<std::int64_t>>(); }

nlohmann::json expected() { return testkit::read_json(testkit::demo_dir() / "expected_greedy.json"); }

DeviceMap all_on(Device d) { return DeviceMap({{"", d}}); }

// Embeddings, final norm and head in RAM; every block on "disk".
DeviceMap blocks_on_disk(int layers) {
  DeviceMap map({{"model.embed_tokens", Device::cpu()}});
  for (int i = 0; i < layers; ++i) map.set("model.layers." + std::to_string(i), Device::disk());
  map.set("model.norm", Device::cpu());
  map.set("lm_head", Device::cpu());
  return map;
}

GenerationOptions greedy(std::int64_t n) {
  GenerationOptions o;
  o.max_new_tokens = n;
  return o;
}

std::vector<std::int64_t> with_prompt(std::vector<std::int64_t> prompt, const std::vector<std::int64_t>& tokens) {
  prompt.insert(prompt.end(), tokens.begin(), tokens.end());
  return prompt;
}

// The largest |a - b| over the reference logits.
double max_logit_error(const Logits& logits, const std::vector<double>& reference) {
  double worst = 0;
  const auto row = logits.row(logits.positions - 1);
  for (std::size_t i = 0; i < reference.size(); ++i) worst = std::max(worst, std::abs(double(row[i]) - reference[i]));
  return worst;
}

std::uint16_t to_bf16(float f) {
  const auto u = std::bit_cast<std::uint32_t>(f);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);  // round to nearest even
}

// Writes the demo model as bfloat16 in two shards with model.safetensors.index.json.
void write_bf16_sharded(const fs::path& dir) {
  const auto source = SafetensorsFile::open(testkit::demo_dir() / "model.safetensors");
  std::vector<std::vector<std::uint16_t>> storage;
  std::vector<TensorToWrite> first, second;
  nlohmann::json weight_map = nlohmann::json::object();
  std::uint64_t total = 0;
  for (const auto& t : source.tensors()) {
    QCOMPARE(t.dtype, DType::F32);
    const auto bytes = source.data(t);
    std::vector<float> values(bytes.size() / 4);
    std::memcpy(values.data(), bytes.data(), bytes.size());
    auto& halves = storage.emplace_back(values.size());
    std::transform(values.begin(), values.end(), halves.begin(), to_bf16);
    const bool early = t.name.rfind("model.embed_tokens", 0) == 0 || t.name.rfind("model.layers.0.", 0) == 0 ||
                       t.name.rfind("model.layers.1.", 0) == 0;
    const std::string file = early ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    (early ? first : second)
        .push_back({t.name, DType::BF16, t.shape, std::as_bytes(std::span<const std::uint16_t>(halves))});
    weight_map[t.name] = file;
    total += halves.size() * 2;
  }
  write_safetensors(dir / "model-00001-of-00002.safetensors", first);
  write_safetensors(dir / "model-00002-of-00002.safetensors", second);
  std::ofstream(dir / "model.safetensors.index.json")
      << nlohmann::json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2);
  auto config = testkit::read_json(testkit::demo_dir() / "config.json");
  config["torch_dtype"] = "bfloat16";
  std::ofstream(dir / "config.json") << config.dump(2);
  fs::copy_file(testkit::demo_dir() / "generation_config.json", dir / "generation_config.json");
}

}  // namespace

class TestRunDemo : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void greedyOnCpuReproducesReference() {
    Model model = Model::load(testkit::demo_dir(), all_on(Device::cpu()));
    const auto& report = model.load_report();
    QCOMPARE(report.cpu_dtype, DType::F32);
    QCOMPARE(report.main_device, std::string("cpu"));
    QCOMPARE(report.tied, std::size_t{1});  // lm_head shares the embedding
    // "cpu" weights are copied out of the mapping by default; asked to run from it, float32 weights need
    // no cast and every byte is served from the file's pages.
    QCOMPARE(report.aliased_bytes, std::uint64_t{0});
    LoadOptions map_them;
    map_them.map_cpu_weights = true;
    const Model mapped_model = Model::load(testkit::demo_dir(), all_on(Device::cpu()), map_them);
    const auto& mapped = mapped_model.load_report();
    QCOMPARE(mapped.aliased_bytes, mapped.bytes_by_device.at("cpu"));
    QCOMPARE(mapped.aliased_bytes, std::uint64_t(fs::file_size(testkit::demo_dir() / "model.safetensors")) -
                                       SafetensorsFile::open(testkit::demo_dir() / "model.safetensors").data_offset());

    const auto e = expected();
    const auto reference = ints(e["greedy_ids_including_bos"]);
    const auto prompt = ints(e["prompt_ids"]);
    std::vector<std::int64_t> streamed;
    const auto result = generate(model, prompt, greedy(200), [&](std::int64_t id) {
      streamed.push_back(id);
      return true;
    });
    QCOMPARE(result.stop, StopReason::MaxNewTokens);
    QCOMPARE(with_prompt(prompt, result.tokens), reference);
    QCOMPARE(streamed, result.tokens);
    QCOMPARE(result.stats.prompt_tokens, std::int64_t{1});
    QCOMPARE(result.stats.new_tokens, std::int64_t{200});
    QCOMPARE(result.stats.decode_steps, std::int64_t{199});
    QVERIFY(result.stats.decode_tokens_per_second() > 0);
  }

  void logitsMatchReference() {
    Model model = Model::load(testkit::demo_dir(), all_on(Device::cpu()));
    const auto ref = expected()["reference_logits"];
    const auto ids = ints(ref["prompt_ids"]);
    const auto reference = ref["last_position_logits"].get<std::vector<double>>();
    const Logits last = model.forward(ids);
    QCOMPARE(last.positions, std::int64_t{1});
    QCOMPARE(last.vocab, std::int64_t{512});
    QVERIFY2(max_logit_error(last, reference) < 1e-4, std::to_string(max_logit_error(last, reference)).c_str());
    QCOMPARE(model.cached_tokens(), std::int64_t(ids.size()));

    // Without the cache, every position: the last row is the same, each argmax is the reference's.
    const Logits all = model.evaluate(ids);
    QCOMPARE(all.positions, std::int64_t(ids.size()));
    QVERIFY(max_logit_error(all, reference) < 1e-4);
    const auto argmaxes = ints(ref["argmax_per_position"]);
    for (std::int64_t p = 0; p < all.positions; ++p) {
      const auto row = all.row(p);
      QCOMPARE(std::int64_t(std::max_element(row.begin(), row.end()) - row.begin()), argmaxes[std::size_t(p)]);
    }
  }

  void blocksOnDiskRunFromTheMapping() {
    Model model = Model::load(testkit::demo_dir(), blocks_on_disk(5));
    const auto& report = model.load_report();
    QVERIFY(report.bytes_by_device.at("disk") > 0);
    QVERIFY(report.bytes_by_device.at("cpu") > 0);
    QCOMPARE(report.aliased_bytes, report.bytes_by_device.at("disk"));  // "cpu" ones are copied

    const auto e = expected();
    const auto prompt = ints(e["prompt_ids"]);
    QCOMPARE(with_prompt(prompt, generate(model, prompt, greedy(200)).tokens), ints(e["greedy_ids_including_bos"]));
    const auto ref = e["reference_logits"];
    QVERIFY(max_logit_error(model.evaluate(ints(ref["prompt_ids"])), ref["last_position_logits"].get<std::vector<double>>()) < 1e-4);
  }

  void bfloat16ShardedCopy() {
    testkit::TempDir dir;
    write_bf16_sharded(dir.path());
    const auto checkpoint = Checkpoint::open(dir.path());
    QCOMPARE(checkpoint.shards().size(), std::size_t{2});
    const auto ref = expected()["reference_logits"];
    const auto ids = ints(ref["prompt_ids"]);
    const auto reference = ref["last_position_logits"].get<std::vector<double>>();

    // bfloat16 runs as bfloat16 on the CPU: no cast, so it can run straight from the mapping.
    LoadOptions map_them;
    map_them.map_cpu_weights = true;
    Model bf16 = Model::load(checkpoint, all_on(Device::cpu()), map_them);
    QCOMPARE(bf16.load_report().cpu_dtype, DType::BF16);
    QCOMPARE(bf16.load_report().aliased_bytes, bf16.load_report().bytes_by_device.at("cpu"));
    const Logits low = bf16.forward(ids);
    // bfloat16 keeps 8 bits of mantissa: logits of magnitude up to 18 move by a few tenths at most.
    QVERIFY2(max_logit_error(low, reference) < 0.5, std::to_string(max_logit_error(low, reference)).c_str());
    const auto best = [](const Logits& l) {
      const auto r = l.row(l.positions - 1);
      return std::max_element(r.begin(), r.end()) - r.begin();
    };
    QCOMPARE(best(low), std::ptrdiff_t(std::max_element(reference.begin(), reference.end()) - reference.begin()));

    // Asked for float32: "cpu" tensors are cast once into RAM, "disk" ones at every use; same numbers.
    LoadOptions f32;
    f32.dtype = DType::F32;
    Model in_ram = Model::load(checkpoint, all_on(Device::cpu()), f32);
    Model on_disk = Model::load(checkpoint, blocks_on_disk(5), f32);
    QCOMPARE(in_ram.load_report().aliased_bytes, std::uint64_t{0});
    QCOMPARE(in_ram.load_report().cpu_dtype, DType::F32);
    QVERIFY(on_disk.load_report().aliased_bytes > 0);
    const Logits a = in_ram.forward(ids), b = on_disk.forward(ids);
    QCOMPARE(a.values, b.values);
    // Rounding the weights alone costs less than computing in bfloat16.
    QVERIFY(max_logit_error(a, reference) < max_logit_error(low, reference));
  }

  void prefetchingOffloadedBlocks() {
    testkit::TempDir dir;
    write_bf16_sharded(dir.path());
    const auto checkpoint = Checkpoint::open(dir.path());
    // bfloat16 blocks on "disk" run as float32: every pass casts them, ahead of time when prefetching.
    LoadOptions f32;
    f32.dtype = DType::F32;
    f32.prefetch = false;
    Model plain = Model::load(checkpoint, blocks_on_disk(5), f32);
    f32.prefetch = true;
    Model ahead = Model::load(checkpoint, blocks_on_disk(5), f32);
    const std::vector<std::int64_t> prompt{1, 403, 407};
    const auto a = generate(plain, prompt, greedy(30)), b = generate(ahead, prompt, greedy(30));
    QCOMPARE(a.tokens, b.tokens);
    QCOMPARE(ahead.evaluate(prompt).values, plain.evaluate(prompt).values);

    constexpr std::uint64_t per_pass = 5 * 9;  // every tensor of every block
    const std::uint64_t passes = 1 + 29 + 1;   // prefill, decode steps, evaluate
    QCOMPARE(plain.transfer_stats().fetched_tensors, per_pass * passes);
    QCOMPARE(plain.transfer_stats().prefetched_tensors, std::uint64_t{0});
    // Only the first pass, which learns what each block needs, fetches on demand.
    QCOMPARE(ahead.transfer_stats().fetched_tensors, per_pass);
    QCOMPARE(ahead.transfer_stats().prefetched_tensors, per_pass * (passes - 1));
    QCOMPARE(ahead.transfer_stats().transferred_bytes, plain.transfer_stats().transferred_bytes);

    // float32 blocks on "disk" run from the mapping: nothing to copy, their pages are read ahead.
    Model mapped = Model::load(testkit::demo_dir(), blocks_on_disk(5));
    generate(mapped, prompt, greedy(5));
    QCOMPARE(mapped.transfer_stats().fetched_tensors + mapped.transfer_stats().prefetched_tensors, std::uint64_t{0});
    QVERIFY(mapped.transfer_stats().advised_bytes > 0);
    Model resident = Model::load(testkit::demo_dir(), all_on(Device::cpu()));
    generate(resident, prompt, greedy(5));
    QCOMPARE(resident.transfer_stats().advised_bytes, std::uint64_t{0});
  }

  void offloadFolderHoldsCastDiskBlocks() {
    testkit::TempDir dir;
    write_bf16_sharded(dir.path());
    const auto checkpoint = Checkpoint::open(dir.path());
    LoadOptions f32;
    f32.dtype = DType::F32;
    Model in_ram = Model::load(checkpoint, all_on(Device::cpu()), f32);
    f32.offload_folder = dir.path() / "offload";
    Model offloaded = Model::load(checkpoint, blocks_on_disk(5), f32);

    // The blocks were cast once to float32 and written in Accelerate's layout; they run from those files.
    const std::uint64_t block_f32 = 4 * (64 + 64 + 64 * 172 * 3 + 64 * 64 * 2 + 32 * 64 * 2);
    QCOMPARE(offloaded.load_report().offloaded_bytes, 5 * block_f32);
    const auto index = testkit::read_json(dir.path() / "offload" / "index.json");
    QCOMPARE(index.size(), std::size_t{45});
    const auto& q = index.at("model.layers.3.self_attn.q_proj.weight");
    DM_COMPARE_STR(q.at("dtype").get<std::string>(), std::string("float32"));
    QCOMPARE(q.at("shape").get<std::vector<std::int64_t>>(), (std::vector<std::int64_t>{64, 64}));
    QCOMPARE(fs::file_size(dir.path() / "offload" / "model.layers.3.self_attn.q_proj.weight.dat"), std::uintmax_t{64 * 64 * 4});
    QVERIFY(!fs::exists(dir.path() / "offload" / "model.embed_tokens.weight.dat"));

    const std::vector<std::int64_t> ids{1, 403, 407, 261, 378};
    QCOMPARE(offloaded.forward(ids).values, in_ram.forward(ids).values);
    generate(offloaded, ids, greedy(3));
    const auto stats = offloaded.transfer_stats();
    QCOMPARE(stats.fetched_tensors + stats.prefetched_tensors, std::uint64_t{0});
    QVERIFY(stats.advised_bytes > 0);

    // Loading again reuses the files: nothing is cast or written.
    const auto q_file = dir.path() / "offload" / "model.layers.3.self_attn.q_proj.weight.dat";
    const auto written = fs::last_write_time(q_file);
    Model again = Model::load(checkpoint, blocks_on_disk(5), f32);
    QCOMPARE(again.load_report().offloaded_bytes, std::uint64_t{0});
    QCOMPARE(again.load_report().reused_offload_bytes, 5 * block_f32);
    QCOMPARE(fs::last_write_time(q_file), written);
    QCOMPARE(again.evaluate(ids).values, in_ram.evaluate(ids).values);

    // A checkpoint newer than its cast copies is cast again.
    for (const auto& shard : checkpoint.shards())
      fs::last_write_time(shard.path(), written + std::chrono::seconds(10));
    Model recast = Model::load(checkpoint, blocks_on_disk(5), f32);
    QCOMPARE(recast.load_report().offloaded_bytes, 5 * block_f32);
    QCOMPARE(recast.evaluate(ids).values, in_ram.evaluate(ids).values);
  }

  void aCancelledOffloadKeepsWhatItFinished() {
    testkit::TempDir dir;
    write_bf16_sharded(dir.path());
    const auto checkpoint = Checkpoint::open(dir.path());
    LoadOptions f32;
    f32.dtype = DType::F32;
    f32.offload_folder = dir.path() / "offload";
    f32.on_progress = [](const LoadProgress& p) { return p.tensors_done < 20; };
    QVERIFY_THROWS_EXCEPTION(LoadCancelled, Model::load(checkpoint, blocks_on_disk(5), f32));
    // Every file listed is whole; no temporary file is left behind.
    const auto index = testkit::read_json(dir.path() / "offload" / "index.json");
    QVERIFY(!index.empty() && index.size() < 45);
    std::size_t files = 0;
    for (const auto& e : fs::directory_iterator(dir.path() / "offload")) {
      const auto name = e.path().filename().string();
      if (name == "index.json" || name == "devicemap-offload.json") continue;  // the index, and the marker of a folder of ours
      ++files;
      QVERIFY2(name.size() > 4 && name.substr(name.size() - 4) == ".dat", name.c_str());
      QVERIFY2(index.contains(name.substr(0, name.size() - 4)), name.c_str());
    }
    QCOMPARE(files, index.size());
    // The next load finishes the job, reusing what was there.
    f32.on_progress = {};
    Model model = Model::load(checkpoint, blocks_on_disk(5), f32);
    QVERIFY(model.load_report().reused_offload_bytes > 0);
    QVERIFY(model.load_report().offloaded_bytes > 0);
    QCOMPARE(testkit::read_json(dir.path() / "offload" / "index.json").size(), std::size_t{45});
  }

  void stopsAtStopIdAndWhenTheCallbackSaysSo() {
    Model model = Model::load(testkit::demo_dir(), all_on(Device::cpu()));
    const auto reference = ints(expected()["greedy_ids_including_bos"]);
    GenerationOptions o = greedy(200);
    o.eos_token_ids = {reference[62]};  // the first newline
    auto r = generate(model, std::vector<std::int64_t>{1}, o);
    QCOMPARE(r.stop, StopReason::EndOfSequence);
    QCOMPARE(r.tokens, std::vector<std::int64_t>(reference.begin() + 1, reference.begin() + 63));

    int calls = 0;
    r = generate(model, std::vector<std::int64_t>{1}, greedy(200), [&](std::int64_t) { return ++calls < 5; });
    QCOMPARE(r.stop, StopReason::Cancelled);
    QCOMPARE(r.tokens, std::vector<std::int64_t>(reference.begin() + 1, reference.begin() + 6));

    // A cancel flag set from elsewhere stops the running forward pass between blocks.
    std::atomic<bool> stop{false};
    model.set_cancel_flag(&stop);
    calls = 0;
    r = generate(model, std::vector<std::int64_t>{1}, greedy(200), [&](std::int64_t) {
      if (++calls == 5) stop = true;
      return true;
    });
    QCOMPARE(r.stop, StopReason::Cancelled);
    QCOMPARE(r.tokens, std::vector<std::int64_t>(reference.begin() + 1, reference.begin() + 6));
    QCOMPARE(model.cached_tokens(), std::int64_t{0});
    QVERIFY_THROWS_EXCEPTION(Cancelled, model.forward(std::vector<std::int64_t>{1}));
    QCOMPARE(generate(model, std::vector<std::int64_t>{1}, greedy(5)).tokens.size(), std::size_t{0});
    stop = false;
    QCOMPARE(generate(model, std::vector<std::int64_t>{1}, greedy(5)).tokens,
             std::vector<std::int64_t>(reference.begin() + 1, reference.begin() + 6));
    model.set_cancel_flag(nullptr);

    // The demo's generation_config.json names 2 as its stop id.
    QCOMPARE(model.generation_defaults().eos_token_ids, std::vector<std::int64_t>{2});
  }

  void samplingIsSeeded() {
    Model model = Model::load(testkit::demo_dir(), all_on(Device::cpu()));
    GenerationOptions o = greedy(40);
    o.sampling.do_sample = true;
    o.sampling.temperature = 1.0;
    o.sampling.top_p = 0.95;
    o.sampling.seed = 7;
    const auto a = generate(model, std::vector<std::int64_t>{1}, o).tokens;
    const auto b = generate(model, std::vector<std::int64_t>{1}, o).tokens;
    QCOMPARE(a, b);
    o.sampling.seed = 8;
    const auto c = generate(model, std::vector<std::int64_t>{1}, o).tokens;
    QVERIFY(a != c);
    const auto reference = ints(expected()["greedy_ids_including_bos"]);
    QVERIFY(a != std::vector<std::int64_t>(reference.begin() + 1, reference.begin() + 41));
  }

  void rejectsWhatItCannotRun() {
    Model model = Model::load(testkit::demo_dir(), all_on(Device::cpu()));
    try {
      model.forward(std::vector<std::int64_t>{1, 512});
      QFAIL("an id outside the vocabulary was accepted");
    } catch (const Error& e) {
      QVERIFY(std::string(e.what()).find("outside the vocabulary") != std::string::npos);
    }
    QCOMPARE(model.cached_tokens(), std::int64_t{0});
    std::vector<std::int64_t> too_long(513, 1);
    QVERIFY_THROWS_EXCEPTION(Error, model.forward(too_long));
    QVERIFY_THROWS_EXCEPTION(Error, generate(model, std::vector<std::int64_t>{}, greedy(3)));

    // No key covers the blocks.
    try {
      Model::load(testkit::demo_dir(), DeviceMap({{"model.embed_tokens", Device::cpu()}}));
      QFAIL("a map that covers no block was accepted");
    } catch (const Error& e) {
      QVERIFY(std::string(e.what()).find("model.layers.0") != std::string::npos);
    }
    // A GPU this machine (or this LibTorch) does not have.
    try {
      Model::load(testkit::demo_dir(), all_on(Device::gpu(99)));
      QFAIL("a map naming GPU 99 was accepted");
    } catch (const Error& e) {
      QVERIFY(std::string(e.what()).find("GPU 99") != std::string::npos);
    }
    LoadOptions cancel;
    cancel.on_progress = [](const LoadProgress& p) { return p.tensors_done < 3; };
    QVERIFY_THROWS_EXCEPTION(LoadCancelled, Model::load(testkit::demo_dir(), all_on(Device::cpu()), cancel));
  }
};

QTEST_MAIN(TestRunDemo)
#include "test_run_demo.moc"
