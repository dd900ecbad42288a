// The runtime under repeated use: 100 load / generate / unload cycles of the demo model in one process,
// half of them with blocks on "disk" (served from the file's mapping), a quarter quantized on load, must
// give the reference ids every time and leave nothing behind: no open file, no mapping, and resident
// memory that stops growing once the first cycles have warmed the allocator and LibTorch's caches.
#include <dirent.h>

#include <fstream>
#include <string>
#include <vector>

#include "plan/device_map.hpp"
#include "plan/process_memory.hpp"
#include "run/generator.hpp"
#include "run/model.hpp"
#include "testkit.hpp"

using namespace devicemap;

#if defined(__SANITIZE_ADDRESS__)
// The sanitizer runtime's allocator interface (sanitizer/allocator_interface.h, which GCC does not install).
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace {

// What the cycles may not grow. Under AddressSanitizer freed blocks wait in its quarantine (256 MiB by
// default) and stay resident, so there the live heap is measured instead (LeakSanitizer checks at exit).
#if defined(__SANITIZE_ADDRESS__)
constexpr const char* kHeld = "live heap (AddressSanitizer's count)";
std::uint64_t held_bytes() { return __sanitizer_get_current_allocated_bytes(); }
#else
constexpr const char* kHeld = "resident memory";
std::uint64_t held_bytes() { return current_resident_bytes(); }
#endif

std::size_t count_entries(const char* dir) {
  std::size_t n = 0;
  if (DIR* d = ::opendir(dir)) {
    while (::readdir(d)) ++n;
    ::closedir(d);
  }
  return n;
}

// The process's mappings; under AddressSanitizer only those of files, as its allocator maps anonymous
// regions of its own as it goes.
std::size_t mappings() {
  std::ifstream maps("/proc/self/maps");
  std::size_t n = 0;
  for (std::string line; std::getline(maps, line);) {
#if defined(__SANITIZE_ADDRESS__)
    if (line.find(" /") == std::string::npos) continue;
#endif
    ++n;
  }
  return n;
}

DeviceMap plan_of_cycle(int cycle) {
  DeviceMap map({{"", Device::cpu()}});
  if (cycle % 2 == 1)
    for (int i = 0; i < 5; i += 2) map.set("model.layers." + std::to_string(i), Device::disk());
  return map;
}

}  // namespace

class TestRunCycles : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void hundredCyclesLeaveNothingBehind() {
    const auto expected = testkit::read_json(testkit::demo_dir() / "expected_greedy.json");
    const auto prompt = expected["prompt_ids"].get<std::vector<std::int64_t>>();
    const auto reference = expected["greedy_ids_including_bos"].get<std::vector<std::int64_t>>();
    constexpr int kCycles = 100, kWarm = 10, kTokens = 32;
    GenerationOptions greedy;
    greedy.max_new_tokens = kTokens;
    std::uint64_t warm_rss = 0;
    std::size_t warm_fds = 0, warm_maps = 0;
    for (int cycle = 0; cycle < kCycles; ++cycle) {
      if (cycle == kWarm) warm_rss = held_bytes(), warm_fds = count_entries("/proc/self/fd"), warm_maps = mappings();
      LoadOptions options;
      if (cycle % 4 == 2) options.quantize = LoadQuantization::Int8;
      Model model = Model::load(testkit::demo_dir(), plan_of_cycle(cycle), options);
      const auto result = generate(model, prompt, greedy);
      QCOMPARE(result.tokens.size(), std::size_t{kTokens});
      if (options.quantize == LoadQuantization::None) {  // quantized cycles run other weights; their ids are test_run_llama's concern
        for (std::size_t i = 0; i < result.tokens.size(); ++i)
          QVERIFY2(result.tokens[i] == reference[prompt.size() + i], qPrintable(QString("cycle %1, token %2").arg(cycle).arg(i)));
      }
    }
    const std::uint64_t rss = held_bytes();
    QVERIFY(warm_rss > 0 && rss > 0);  // read at all (0 means /proc could not say)
    const double growth_mib = (double(rss) - double(warm_rss)) / (1 << 20);
    qInfo("%s after %d cycles: %.1f MiB, after %d: %.1f MiB (growth %.2f MiB; the model is %.2f MiB)", kHeld, kWarm,
          double(warm_rss) / (1 << 20), kCycles, double(rss) / (1 << 20), growth_mib,
          double(std::filesystem::file_size(testkit::demo_dir() / "model.safetensors")) / (1 << 20));
    // A model left behind per cycle would add ≥ 90 × 1 MiB; 8 MiB allows for the allocator's own drift.
    QVERIFY2(growth_mib < 8.0, qPrintable(QString("%1 grew by %2 MiB over %3 cycles").arg(kHeld).arg(growth_mib).arg(kCycles - kWarm)));
    QCOMPARE(count_entries("/proc/self/fd"), warm_fds);  // every checkpoint file closed
    QCOMPARE(mappings(), warm_maps);                      // and unmapped
  }
};

QTEST_GUILESS_MAIN(TestRunCycles)
#include "test_run_cycles.moc"
