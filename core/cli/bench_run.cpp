// devicemap bench load|generate MODEL: the running layer against what the machine allows.
//   load      load (and one forward pass, so every weight is touched) vs a plain read of the same files;
//             peak resident memory vs the bytes the map puts on the CPU
//   generate  decode tok/s vs the bound of reading every weight once per token at the measured memory
//             bandwidth
#ifdef DEVICEMAP_HAVE_RUN_COMMANDS  // built with the running layer only
#include <algorithm>
#include <chrono>
#include <fstream>
#include <numeric>
#include <thread>
#include <vector>

#include "cli/args.hpp"
#include "cli/bench.hpp"
#include "plan/checkpoint.hpp"
#include "plan/device_map.hpp"
#include "plan/error.hpp"
#include "run/generator.hpp"
#include "run/model.hpp"

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

// Peak resident memory of this process (VmHWM), bytes.
std::uint64_t peak_rss() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

// Read bandwidth of RAM with every core summing its slice of a buffer much larger than the caches, GB/s.
double memory_bandwidth_gbs() {
  const std::size_t words = (std::size_t{512} << 20) / sizeof(std::uint64_t);
  std::vector<std::uint64_t> data(words, 1);
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  double best = 0;
  for (int round = 0; round < 3; ++round) {
    std::vector<std::uint64_t> sums(threads);
    const auto t = Clock::now();
    std::vector<std::thread> pool;
    for (unsigned i = 0; i < threads; ++i)
      pool.emplace_back([&, i] {
        const std::size_t a = words * i / threads, b = words * (i + 1) / threads;
        sums[i] = std::accumulate(data.begin() + static_cast<std::ptrdiff_t>(a), data.begin() + static_cast<std::ptrdiff_t>(b),
                                  std::uint64_t{0});
      });
    for (auto& p : pool) p.join();
    const double s = seconds_since(t);
    if (std::accumulate(sums.begin(), sums.end(), std::uint64_t{0}) != words) throw Error("bench: memory test failed");
    best = std::max(best, double(words * sizeof(std::uint64_t)) / s / 1e9);
  }
  return best;
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
  print_measurement(out, {"load." + b.name + ".throughput", gbs, "GB/s", read_gbs, read_gbs / gbs,
                          "bound: reading the same files (page cache as it is); load includes one forward pass"},
                    b.json);
  std::uint64_t cpu = 0;
  for (const auto& [device, n] : model.load_report().bytes_by_device)
    if (device == "cpu") cpu += n;
  const double rss_mib = double(peak_rss()) / (1 << 20), cpu_mib = double(cpu) / (1 << 20);
  print_measurement(out, {"load." + b.name + ".peak_rss", rss_mib, "MiB", cpu_mib, cpu_mib > 0 ? rss_mib / cpu_mib : 0,
                          "bound: the bytes the map puts on the CPU (the process itself adds LibTorch)"},
                    b.json);
  return 0;
}

int bench_generate(const std::vector<std::string>& argv, std::ostream& out) {
  BenchModel b = open_bench_model(argv, {"tokens"});
  const Args args(argv, {"device-map", "dtype", "format", "tokens"}, {});
  const auto tokens = static_cast<std::int64_t>(args.get_u64("tokens", 64));
  Model model = Model::load(b.checkpoint, b.map, b.options);
  GenerationOptions o;
  o.max_new_tokens = tokens;  // no stop ids: every step runs
  const std::vector<std::int64_t> prompt{model.config().bos_token_id.value_or(0)};
  generate(model, prompt, o);  // warm-up
  const auto r = generate(model, prompt, o);
  std::uint64_t weight_bytes = 0;
  for (const auto& [device, n] : model.load_report().bytes_by_device) weight_bytes += n;
  // A step reads one row of an untied embedding, not all of it.
  const auto& c = model.config();
  const std::uint64_t embedding = static_cast<std::uint64_t>(c.vocab_size * c.hidden_size) *
                                  static_cast<std::uint64_t>(dtype_bits(model.load_report().cpu_dtype) / 8);
  if (!c.tie_word_embeddings && weight_bytes > embedding) weight_bytes -= embedding;
  const double bandwidth = memory_bandwidth_gbs();
  const double bound = bandwidth * 1e9 / double(weight_bytes), value = r.stats.decode_tokens_per_second();
  print_measurement(out, {"generate." + b.name + ".decode", value, "tok/s", bound, value > 0 ? bound / value : 0,
                          "bound: every weight read once per token at " + std::to_string(bandwidth).substr(0, 5) +
                              " GB/s measured read bandwidth"},
                    b.json);
  return 0;
}

}  // namespace devicemap::cli

#endif  // DEVICEMAP_HAVE_RUN_COMMANDS
