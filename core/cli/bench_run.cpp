// devicemap bench load|generate MODEL: the running layer against what the machine allows.
//   load      load (and one forward pass, so every weight is touched) vs a plain read of the same files;
//             peak resident memory vs the bytes the map puts on the CPU
//   generate  decode tok/s vs the bound of reading every weight once per token at the memory bandwidth
//             measured in the same run (all cores reading), with the decode kernels and with LibTorch's
//             own products
// Every ratio is value / bound: for a rate, the fraction of the bound reached (higher is better).
#ifdef DEVICEMAP_HAVE_RUN_COMMANDS  // built with the running layer only
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "cli/bench.hpp"
#include "cli/plan_flags.hpp"
#include "cli/run_cluster.hpp"
#include "error.hpp"
#include "format/checkpoint.hpp"
#include "kernels/matvec.hpp"
#include "kernels/thread_pool.hpp"
#include "model/model_source.hpp"
#include "model/skeleton.hpp"
#include "plan/bandwidth.hpp"
#include "plan/device_map.hpp"
#include "plan/machine.hpp"
#include "plan/process_memory.hpp"
#include "plan/speed_model.hpp"
#include "run/cpu_rate.hpp"
#include "run/decode_path.hpp"
#include "run/generator.hpp"
#include "run/model.hpp"
#include "run/pipeline.hpp"

namespace devicemap::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct BenchModel {
  Checkpoint checkpoint;
  DeviceMap map;
  LoadOptions options;
  bool json = false;
  std::string name;
};

BenchModel open_bench_model(const std::vector<std::string>& argv, std::set<std::string> extra) {
  extra.insert({"device-map", "dtype", "format"});
  const Args args(argv, extra, {});
  if (args.positionals().size() != 1) throw Error("bench: name one model folder");
  BenchModel b{Checkpoint::open(args.positionals()[0]), DeviceMap({{"", Device::cpu()}}), {}, false, {}};
  if (auto f = args.get("device-map")) b.map = DeviceMap::load(*f);
  if (auto d = args.get("dtype")) {
    b.options.dtype = dtype_from_torch_name(*d);
    if (!b.options.dtype) throw Error("--dtype: '" + *d + "' is not a dtype");
  }
  b.json = args.get("format").value_or("table") == "json";
  b.name = b.checkpoint.dir().filename().string();
  if (b.name.empty()) b.name = b.checkpoint.dir().parent_path().filename().string();
  return b;
}

std::vector<std::filesystem::path> weight_files(const Checkpoint& c) {
  std::vector<std::filesystem::path> files;
  for (const auto& s : c.shards()) files.push_back(s.path());
  if (files.empty()) files = c.bin_files();
  return files;
}

std::uint64_t read_all(const std::vector<std::filesystem::path>& files) {
  std::vector<char> buffer(16 << 20);
  std::uint64_t total = 0;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0)
      total += static_cast<std::uint64_t>(in.gcount());
  }
  return total;
}

}  // namespace

int bench_load(const std::vector<std::string>& argv, std::ostream& out) {
  BenchModel b = open_bench_model(argv, {});
  const auto files = weight_files(b.checkpoint);
  auto t = Clock::now();
  const std::uint64_t bytes = read_all(files);
  const double read_s = seconds_since(t);

  t = Clock::now();
  Model model = Model::load(b.checkpoint, b.map, b.options);
  const std::int64_t bos[] = {model.config().bos_token_id.value_or(0)};
  model.forward(bos);  // touches every weight once
  const double load_s = seconds_since(t);
  const double gbs = double(bytes) / load_s / 1e9, read_gbs = double(bytes) / read_s / 1e9;
  print_measurement(out, {"load." + b.name + ".throughput", gbs, "GB/s", read_gbs, gbs / read_gbs,
                          "bound: reading the same files (page cache as it is); load includes one forward pass"},
                    b.json);
  std::uint64_t cpu = 0;
  for (const auto& [device, n] : model.load_report().bytes_by_device)
    if (device == "cpu") cpu += n;
  const double rss_mib = double(peak_resident_bytes()) / (1 << 20), cpu_mib = double(cpu) / (1 << 20);
  print_measurement(out, {"load." + b.name + ".peak_rss", rss_mib, "MiB", cpu_mib, cpu_mib > 0 ? rss_mib / cpu_mib : 0,
                          "bound: the bytes the map puts on the CPU (the process itself adds LibTorch)"},
                    b.json);
  return 0;
}

namespace {

// Measured decode speed of one placement, and what the speed model predicts for it on this machine.
// Returns the measured tok/s.
double decode_case(const BenchModel& b, const Skeleton& skeleton, const Machine& machine, const DeviceMap& map,
                 bool prefetch, std::int64_t tokens, const std::string& label, std::ostream& out,
                 std::int64_t prefill_tokens = 0) {
  LoadOptions options = b.options;
  options.prefetch = prefetch;
  Model model = Model::load(b.checkpoint, map, options);
  GenerationOptions o;
  o.max_new_tokens = tokens;  // no stop ids: every step runs
  const std::vector<std::int64_t> prompt{model.config().bos_token_id.value_or(0)};
  generate(model, prompt, o);  // warm-up: pages in what runs from the files
  // The bound is read right before and right after the timed pass, and the better read is kept: on a
  // shared machine memory bandwidth drifts by half within minutes, so a figure from the start of the
  // run would misstate later cases.
  const double before = measure_memory_bandwidth_gbs(std::size_t{256} << 20, 2);
  const auto r = generate(model, prompt, o);
  const double bandwidth = std::max(before, measure_memory_bandwidth_gbs(std::size_t{256} << 20, 2));
  std::uint64_t weight_bytes = 0;
  for (const auto& [device, n] : model.load_report().bytes_by_device) weight_bytes += n;
  // A step reads one row of an untied embedding, not all of it.
  const auto& c = model.config();
  const std::uint64_t embedding = static_cast<std::uint64_t>(c.vocab_size * c.hidden_size) *
                                  static_cast<std::uint64_t>(std::min(dtype_bits(model.load_report().cpu_dtype),
                                                                      dtype_bits(model.load_report().requested_dtype)) / 8);
  if (!c.tie_word_embeddings && weight_bytes > embedding) weight_bytes -= embedding;
  const double bound = bandwidth * 1e9 / double(weight_bytes), value = r.stats.decode_tokens_per_second();
  const std::string name = "generate." + b.name + "." + label;
  char gbs[32];
  std::snprintf(gbs, sizeof gbs, "%.3g GB/s", bandwidth);
  print_measurement(out, {name, value, "tok/s", bound, value / bound,
                          std::string("ratio: value / bound; bound: every weight read once per token at ") + gbs +
                              " (RAM read by every core, best of right before and after); " + std::to_string(tokens) +
                              " new tokens after a warm-up pass"},
                    b.json);
  // The same bytes read plainly where they lie: the bound on the very memory the weights occupy (its
  // pages, huge or not), which a fresh 256 MiB buffer may not share.
  const double read_s = model.weight_read_seconds(3);
  if (read_s > 0)
    print_measurement(out, {name + ".same_memory", value, "tok/s", 1.0 / read_s, value * read_s,
                            "ratio: value / bound; bound: one plain read of the weights a step reads, where they are held "
                            "(all cores, best of 3, after the timed pass)"},
                      b.json);
  SpeedInputs inputs;
  inputs.dtype = model.load_report().requested_dtype;
  const SpeedPrediction p = predict_decode_speed(skeleton, map, machine, inputs);
  const double predicted = prefetch ? p.tokens_per_second : p.tokens_per_second_without_prefetch;
  print_measurement(out, {name + ".predicted", predicted, "tok/s", value, value > 0 ? predicted / value : 0,
                          "ratio: the speed model's prediction over the measured speed above" +
                              (p.known ? "" : "; " + p.summary())},
                    b.json);
  if (prefill_tokens > 0) {
    // Prompt processing: one forward pass of a long prompt (LibTorch's matrix multiply), best of two.
    std::vector<std::int64_t> long_prompt(static_cast<std::size_t>(std::min<std::int64_t>(prefill_tokens, c.max_position_embeddings - 1)));
    for (std::size_t i = 0; i < long_prompt.size(); ++i) long_prompt[i] = static_cast<std::int64_t>(i * 7919 % std::uint64_t(c.vocab_size));
    GenerationOptions one;
    one.max_new_tokens = 1;
    double best = 0;
    for (int round = 0; round < 2; ++round) best = std::max(best, generate(model, long_prompt, one).stats.prefill_tokens_per_second());
    print_measurement(out, {"prefill." + b.name + "." + std::to_string(long_prompt.size()), best, "tok/s", {}, {},
                            "a prompt's forward pass and the first token's choice, best of two"},
                      b.json);
  }
  return value;
}

// The model as pipeline stages of `cluster_file`'s hosts, every rank on this machine (rank 0 here, the
// others child processes, as `run --cluster --local`), against one process in the same run.
void pipeline_case(const BenchModel& b, const Skeleton& skeleton, const std::string& cluster_file, std::int64_t tokens,
                   double one_process, std::ostream& out) {
  std::vector<std::string> run_args{b.checkpoint.dir().string(), "--cluster", cluster_file, "--local"};
  if (b.options.dtype) run_args.insert(run_args.end(), {"--dtype", std::string(torch_name(*b.options.dtype))});
  auto options = planning_options(), flags = planning_flags();
  add_cluster_run_options(options, flags);
  const Args args(run_args, options, flags);
  ClusterRank rank = cluster_rank(args, skeleton);
  LoadOptions load = b.options;
  load.layers = rank.layers;
  Model model = Model::load(b.checkpoint, rank.map, load);
  LocalRanks locals(run_args, rank.ranks);
  rank.pipeline.on_listening = [&](int port) { locals.start(port); };
  join_pipeline(model, rank.pipeline);
  GenerationOptions o;
  o.max_new_tokens = tokens;
  const std::vector<std::int64_t> prompt{model.config().bos_token_id.value_or(0)};
  generate(model, prompt, o);  // warm-up, as for one process
  const double value = generate(model, prompt, o).stats.decode_tokens_per_second();
  const double transfer = pipeline_transfer_seconds(model, 50);
  end_pipeline(model);
  if (locals.wait() > 0) throw Error("bench: a rank of the pipeline failed (its error is above)");
  const std::string name = "generate." + b.name + ".pipeline" + std::to_string(rank.ranks);
  print_measurement(out, {name, value, "tok/s", one_process, one_process > 0 ? value / one_process : 0,
                          "ratio: value / bound; bound: the same model in one process, measured above; " + std::to_string(rank.ranks) +
                              " ranks on this machine over 127.0.0.1 (c10d Gloo), " + std::to_string(tokens) + " new tokens after a warm-up pass"},
                    b.json);
  // What a token costs beyond the layers themselves: the hidden state sent rank to rank and the logits
  // back, timed alone; the bound is the time of a step.
  print_measurement(out, {name + ".transfer", transfer * 1e6, "us/token", value > 0 ? 1e6 / value : 0, value > 0 ? transfer * value : 0,
                          "ratio: value / bound; value: the " + std::to_string(rank.ranks) +
                              " messages of a decode step alone (hidden state rank to rank, logits back; best of 50); bound: "
                              "a whole pipeline decode step"},
                    b.json);
}

// The first half of the decoder layers on "disk", the rest on the CPU.
DeviceMap half_on_disk(const Skeleton& s) {
  std::vector<std::string> layers;
  for (const auto& m : s.modules)
    if (m.is_layer) layers.push_back(m.name);
  DeviceMap map({{"", Device::cpu()}});
  for (std::size_t i = 0; i < layers.size() / 2; ++i) map.set(layers[i], Device::disk());
  return map;
}

}  // namespace

int bench_generate(const std::vector<std::string>& argv, std::ostream& out) {
  BenchModel b = open_bench_model(argv, {"tokens", "prefill", "cases", "cluster"});
  const Args args(argv, {"device-map", "dtype", "format", "tokens", "prefill", "cases", "cluster"}, {});
  // Which cases run (a long run need not pay for all): decode, mapped, libtorch, half_disk.
  const std::set<std::string> known{"decode", "mapped", "libtorch", "half_disk"};
  std::set<std::string> cases = known;
  if (const auto list = args.get("cases")) {
    cases.clear();
    std::stringstream in(*list);
    for (std::string c; std::getline(in, c, ',');) {
      if (!known.count(c)) throw Error("--cases: unknown case '" + c + "' (known: decode, mapped, libtorch, half_disk)");
      cases.insert(c);
    }
  }
  const auto wanted = [&](const char* c) { return cases.count(c) > 0; };
  // Long enough that attention over the cache shows (it once halved the float32 speed past ~64 positions).
  const auto tokens = static_cast<std::int64_t>(args.get_u64("tokens", 256));
  const Skeleton skeleton = skeleton_from_checkpoint(b.checkpoint);
  // The speed model's figures for this machine, measured once at the start.
  const double bandwidth = measure_memory_bandwidth_gbs(std::size_t{512} << 20, 3);
  Machine machine = detect_machine(b.checkpoint.dir());
  for (auto& d : machine.devices)
    if (d.device.is_cpu()) d.bandwidth_gbs = bandwidth;
  measure_bandwidths(machine);
  machine.cpu_gflops = measure_matvec_gflops(DType::F32);
  machine.cpu_gflops_bf16 = measure_matvec_gflops(DType::BF16);
  machine.cpu_gflops_int8 = measure_packed_gflops(false);
  machine.cpu_gflops_4bit = measure_packed_gflops(true);
  char rates[240];
  std::snprintf(rates, sizeof rates,
                "(CPU one-row dense layers: %.3g GFLOP/s float32, %.3g GFLOP/s bfloat16, %.3g GFLOP/s int8 rows, %.3g GFLOP/s "
                "4-bit codes)\n",
                machine.cpu_gflops, machine.cpu_gflops_bf16, machine.cpu_gflops_int8, machine.cpu_gflops_4bit);
  if (!b.json) out << rates;
  if (!b.json)
    out << "(decode kernels: " << kernels::dispatch_target() << ", " << kernels::ThreadPool::shared().size() << " threads)\n";
  const auto prefill = static_cast<std::int64_t>(args.get_u64("prefill", 512));
  const auto cluster = args.get("cluster");
  if (cluster && args.get("device-map")) throw Error("bench: --cluster plans each rank's map; --device-map does not apply");
  const double one_process = wanted("decode") || cluster ? decode_case(b, skeleton, machine, b.map, true, tokens, "decode", out, prefill) : 0;
  if (cluster) {
    pipeline_case(b, skeleton, *cluster, tokens, one_process, out);
    return 0;  // the other cases compare placements of one process
  }
  // The same placement with CPU weights run from the file mapping: what the page cache's pages cost.
  b.options.map_cpu_weights = true;
  if (wanted("mapped")) decode_case(b, skeleton, machine, b.map, true, tokens, "decode.mapped", out);
  b.options.map_cpu_weights = false;
  // The same placement through LibTorch's own products: what the kernels replace.
  use_decode_kernels(false);
  if (wanted("libtorch")) decode_case(b, skeleton, machine, b.map, true, tokens, "decode.libtorch", out);
  use_decode_kernels(true);
  // Half the layers run from the checkpoint's mapping ("disk"), with and without read-ahead of the next.
  if (wanted("half_disk") && !args.get("device-map")) {
    const DeviceMap disk = half_on_disk(skeleton);
    decode_case(b, skeleton, machine, disk, true, tokens, "decode.half_disk.prefetch", out);
    decode_case(b, skeleton, machine, disk, false, tokens, "decode.half_disk.no_prefetch", out);
  }
  return 0;
}

}  // namespace devicemap::cli

#endif  // DEVICEMAP_HAVE_RUN_COMMANDS
