// devicemap bench kernels: the decode kernels' weight streaming rate, per stored dtype (and packed form) and shape, with one
// thread and with the whole pool, against a read of memory by every core measured in the same run.
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <vector>

#include "cli/args.hpp"
#include "cli/bench.hpp"
#include "kernels/matvec.hpp"
#include "kernels/memory_read.hpp"
#include "kernels/thread_pool.hpp"
#include "plan/bandwidth.hpp"

namespace devicemap::cli {

int bench_kernels(const std::vector<std::string>& argv, std::ostream& out) {
  const Args args(argv, {"format"}, {});
  const bool json = args.get("format").value_or("table") == "json";
  const double read_gbs = measure_memory_bandwidth_gbs(std::size_t{512} << 20, 3);
  if (!json) out << "(decode kernels: " << kernels::dispatch_target() << "; memory read by every core: " << read_gbs << " GB/s)\n";
  // TinyLlama's and Llama-8B's projections and heads. The smaller ones (23-46 MB) may be served partly
  // from a large last-level cache when read again and again (a ratio above 1 says so); a model's decode
  // step reads each once per token.
  struct Shape {
    std::size_t rows, cols;
  };
  const Shape shapes[] = {{5632, 2048}, {2048, 5632}, {32000, 2048}, {14336, 4096}};
  kernels::ThreadPool one(1);
  kernels::ThreadPool& all = kernels::ThreadPool::shared();
  std::mt19937 rng(1);
  // int8: bitsandbytes' rows, a scale each; nf4: bitsandbytes' 4-bit codes, a float32 scale per 64;
  // int4: GPTQ/AWQ codes, a scale and an offset per row group of 128. Their bytes count the scales.
  struct Case {
    const char* name;
    DType dtype;
    const float* table;
    std::size_t block;
  };
  const Case cases[] = {{"float32", DType::F32, nullptr, 0}, {"bfloat16", DType::BF16, nullptr, 0}, {"float16", DType::F16, nullptr, 0},
                        {"int8", DType::I8, nullptr, 0}, {"nf4", DType::U8, kernels::nf4_table(), 64},
                        {"int4", DType::U8, kernels::integer4_table(), 128}};
  for (const auto& [case_name, dtype, table, block] : cases) {
    const std::size_t elem = dtype == DType::F32 ? 4 : dtype == DType::I8 || dtype == DType::U8 ? 1 : 2;
    for (const auto& [rows, cols] : shapes) {
      // In huge pages, as the runtime's copied and cast weights are (and as the bound's buffer is); small
      // random bit patterns of the dtype (exponent kept in range), written so every page is real.
      constexpr std::size_t kHuge = std::size_t{2} << 20;
      const std::size_t row_bytes = table ? cols / 2 : cols * elem, bytes = rows * row_bytes;
      const std::size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
      std::unique_ptr<std::uint8_t, decltype(&std::free)> w(static_cast<std::uint8_t*>(std::aligned_alloc(kHuge, rounded)), &std::free);
      if (!w) throw std::bad_alloc();
      ::madvise(w.get(), rounded, MADV_HUGEPAGE);  // a hint only
      for (std::size_t i = 0; i + 1 < bytes; i += 2) {
        const std::uint16_t v = static_cast<std::uint16_t>(0x3000 | (rng() & 0x0fff));
        std::memcpy(w.get() + i, &v, 2);
      }
      std::vector<float> x(cols), y(rows), scale(rows, 1.0f / 127);
      for (auto& v : x) v = float(rng() % 2001) / 1000.0f - 1.0f;
      const std::size_t blocks = table ? rows * cols / block : 0;
      std::vector<float> block_scale(blocks, 0.01f), block_offset(table == kernels::integer4_table() ? blocks : 0, -0.08f);
      const kernels::Codes4 codes{table, block, block_scale.data(), block_offset.empty() ? nullptr : block_offset.data(),
                                  table == kernels::integer4_table() ? cols / block : 0};
      kernels::Matrix m{w.get(), dtype, rows, cols, row_bytes / elem, dtype == DType::I8 ? scale.data() : nullptr};
      if (table) m.codes4 = &codes;
      const kernels::Product p{m, y.data(), rows};
      const std::size_t read_bytes = bytes + (block_scale.size() + block_offset.size()) * sizeof(float);
      for (kernels::ThreadPool* pool : {&one, &all}) {
        kernels::matvec({&p, 1}, x.data(), 1, cols, *pool);  // warm-up
        const double us = median_us(9, [&] { kernels::matvec({&p, 1}, x.data(), 1, cols, *pool); });
        const double gbs = double(read_bytes) / us / 1e3;
        char name[96];
        std::snprintf(name, sizeof name, "kernels.matvec.%s.%zux%zu.%ut", case_name, rows, cols, pool->size());
        print_measurement(out, {name, gbs, "GB/s", read_gbs, gbs / read_gbs,
                                "ratio: value / bound; bound: memory read by every core in this run"},
                          json);
        // The same buffer read plainly by the same threads, in 1 MiB pieces, right after: the machine's
        // read rate drifts from one second to the next, so this bound separates the kernel from the drift.
        constexpr std::size_t kPiece = std::size_t{1} << 17;  // words
        const std::size_t words = bytes / 8, pieces = (words + kPiece - 1) / kPiece;
        std::vector<std::uint64_t> sums(pieces);
        const auto* data = reinterpret_cast<const std::uint64_t*>(w.get());
        const double read_us = median_us(9, [&] {
          pool->run(pieces, [&](std::size_t i) { sums[i] = kernels::sum_words(data + i * kPiece, std::min(kPiece, words - i * kPiece)); });
        });
        const double same_gbs = double(words * 8) / read_us / 1e3;
        print_measurement(out, {std::string(name) + ".same_memory", gbs, "GB/s", same_gbs, gbs / same_gbs,
                                "ratio: value / bound; bound: a plain read of the same weights by the same threads, right after"},
                          json);
      }
    }
  }
  return 0;
}

}  // namespace devicemap::cli
