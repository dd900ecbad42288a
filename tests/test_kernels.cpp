// The decode kernels against a double-precision reference, on every instruction set this machine runs,
// for each stored dtype, odd shapes (rows and columns that are not a multiple of any vector width),
// strided rows, batches of 1 to 8 and fused products; and the thread pool they run on.
#include "testkit.hpp"

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>

#include <QtCore/qfloat16.h>

#include "kernels/matvec.hpp"
#include "kernels/memory_read.hpp"
#include "kernels/thread_pool.hpp"
#include "kernels/widen.hpp"

using namespace devicemap;
using namespace devicemap::kernels;

namespace {

// A weight matrix stored in `dtype`, and the exact values it holds (what the kernel must multiply).
struct StoredMatrix {
  DType dtype;
  std::size_t rows, cols, stride;
  std::vector<std::uint8_t> bytes;
  std::vector<double> values;  // rows × cols
  std::vector<float> row_scale;  // int8: each row's scale (bitsandbytes' SCB / 127)

  Matrix view() const { return {bytes.data(), dtype, rows, cols, stride, row_scale.empty() ? nullptr : row_scale.data()}; }
};

StoredMatrix random_matrix(DType dtype, std::size_t rows, std::size_t cols, std::size_t stride, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const std::size_t elem = dtype == DType::F32 ? 4 : dtype == DType::I8 ? 1 : 2;
  StoredMatrix m{dtype, rows, cols, stride, std::vector<std::uint8_t>(rows * stride * elem, 0xff), {}, {}};
  m.values.resize(rows * cols);
  if (dtype == DType::I8)
    for (std::size_t r = 0; r < rows; ++r) m.row_scale.push_back(float(1 + rng() % 8) / 64.0f);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) {
      const float f = dist(rng);
      std::uint8_t* at = m.bytes.data() + (r * stride + c) * elem;
      double exact = f;
      if (dtype == DType::I8) {  // the whole int8 range, times the row's scale
        const auto level = static_cast<std::int8_t>(static_cast<int>(rng() % 255) - 127);
        std::memcpy(at, &level, 1);
        exact = double(level) * m.row_scale[r];
      } else if (dtype == DType::F32) {
        std::memcpy(at, &f, 4);
      } else if (dtype == DType::BF16) {
        std::uint32_t bits;
        std::memcpy(&bits, &f, 4);
        const std::uint16_t top = static_cast<std::uint16_t>(bits >> 16);  // truncation: exact in bfloat16
        std::memcpy(at, &top, 2);
        bits = std::uint32_t{top} << 16;
        float back;
        std::memcpy(&back, &bits, 4);
        exact = back;
      } else {
        const qfloat16 h(f);
        std::memcpy(at, &h, 2);
        exact = static_cast<float>(h);
      }
      m.values[r * cols + c] = exact;
    }
  return m;
}

std::vector<float> random_input(std::size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = dist(rng);
  return x;
}

// |y − reference| within float32 rounding of a sum of `cols` products.
void expect_product(const StoredMatrix& m, const std::vector<float>& x, std::size_t batch, std::size_t x_stride,
                    const std::vector<float>& y, std::size_t y_stride, const char* what) {
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t r = 0; r < m.rows; ++r) {
      double ref = 0, mag = 0;
      for (std::size_t c = 0; c < m.cols; ++c) {
        ref += m.values[r * m.cols + c] * x[b * x_stride + c];
        mag += std::abs(m.values[r * m.cols + c] * x[b * x_stride + c]);
      }
      const double got = y[b * y_stride + r];
      if (std::abs(got - ref) > 1e-6 * mag + 1e-6)
        QFAIL(qPrintable(QString("%1: row %2 of input %3: %4, reference %5").arg(what).arg(r).arg(b).arg(got).arg(ref)));
    }
}

}  // namespace

class KernelsTest : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void cleanup() { restrict_targets(""); }

  void every_target_every_dtype_every_shape() {
    const auto targets = runnable_targets();
    QVERIFY(!targets.empty());
    QCOMPARE(QString::fromStdString(dispatch_target()), QString::fromStdString(targets.front()));
    ThreadPool pool(3);
    std::mt19937 rng(7);
    const std::size_t shapes[][2] = {{1, 1}, {3, 7}, {17, 33}, {64, 128}, {130, 1000}, {5, 4099}, {40, 2048}};
    for (const auto& target : targets) {
      restrict_targets(target);
      QCOMPARE(QString::fromStdString(dispatch_target()), QString::fromStdString(target));
      for (DType dtype : {DType::F32, DType::BF16, DType::F16, DType::I8})
        for (const auto& [rows, cols] : shapes)
          for (std::size_t batch : {std::size_t{1}, std::size_t{2}, std::size_t{5}, std::size_t{8}}) {
            const StoredMatrix m = random_matrix(dtype, rows, cols, cols, rng);
            const std::vector<float> x = random_input(batch * cols, rng);
            std::vector<float> y(batch * rows, -1.0f);
            const Product p{m.view(), y.data(), rows};
            matvec({&p, 1}, x.data(), batch, cols, pool);
            const std::string what = target + " " + std::string(torch_name(dtype)) + " " + std::to_string(rows) + "x" +
                                     std::to_string(cols) + " batch " + std::to_string(batch);
            expect_product(m, x, batch, cols, y, rows, what.c_str());
          }
    }
  }

  void strided_rows_and_inputs() {
    // Rows of a wider matrix (a view), inputs and outputs with padding between them.
    std::mt19937 rng(11);
    for (DType dtype : {DType::F32, DType::BF16, DType::F16, DType::I8}) {
      const StoredMatrix m = random_matrix(dtype, 37, 21, 29, rng);
      const std::size_t batch = 3, x_stride = 25, y_stride = 40;
      const std::vector<float> x = random_input(batch * x_stride, rng);
      std::vector<float> y(batch * y_stride, -7.0f);
      const Product p{m.view(), y.data(), y_stride};
      matvec({&p, 1}, x.data(), batch, x_stride);
      expect_product(m, x, batch, x_stride, y, y_stride, torch_name(dtype).data());
      for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t r = m.rows; r < y_stride && b * y_stride + r < y.size(); ++r) QCOMPARE(y[b * y_stride + r], -7.0f);
    }
  }

  void fused_products_equal_separate_ones() {
    std::mt19937 rng(3);
    const std::size_t cols = 96, batch = 2;
    const StoredMatrix q = random_matrix(DType::BF16, 96, cols, cols, rng);
    const StoredMatrix k = random_matrix(DType::BF16, 24, cols, cols, rng);
    const StoredMatrix v = random_matrix(DType::BF16, 24, cols, cols, rng);
    const std::vector<float> x = random_input(batch * cols, rng);
    std::vector<float> yq(batch * 96), yk(batch * 24), yv(batch * 24);
    const Product fused[] = {{q.view(), yq.data(), 96}, {k.view(), yk.data(), 24}, {v.view(), yv.data(), 24}};
    matvec(fused, x.data(), batch, cols);
    expect_product(q, x, batch, cols, yq, 96, "q");
    expect_product(k, x, batch, cols, yk, 24, "k");
    expect_product(v, x, batch, cols, yv, 24, "v");
    // The same numbers as one product at a time, bit for bit: fusing changes the scheduling only.
    std::vector<float> alone(batch * 24);
    const Product one{k.view(), alone.data(), 24};
    matvec({&one, 1}, x.data(), batch, cols);
    QVERIFY(alone == yk);
  }

  void widening_is_exact_on_every_target() {
    std::mt19937 rng(13);
    ThreadPool pool(2);
    // More than one of the pool's 1 Mi-element pieces, and an odd tail.
    const std::size_t n = (std::size_t{1} << 20) + 37;
    for (const auto& target : runnable_targets()) {
      restrict_targets(target);
      for (DType dtype : {DType::BF16, DType::F16, DType::F32}) {
        const StoredMatrix m = random_matrix(dtype, 1, n, n, rng);
        std::vector<float> out(n + 1, -3.0f);
        widen_to_f32(m.bytes.data(), dtype, out.data(), n, pool);
        for (std::size_t i = 0; i < n; ++i)
          if (double(out[i]) != m.values[i])
            QFAIL(qPrintable(QString("%1 %2: element %3 is %4, not %5").arg(target.c_str(), torch_name(dtype).data()).arg(i).arg(out[i]).arg(m.values[i])));
        QCOMPARE(out[n], -3.0f);  // nothing written past the end
      }
    }
  }

  void int8_rows_widen_exactly_on_every_target() {
    std::mt19937 rng(17);
    ThreadPool pool(2);
    // Rows of an odd length, more of them than one of the pool's pieces holds.
    const std::size_t rows = 700, cols = 2051;
    std::vector<std::int8_t> q(rows * cols);
    std::vector<float> scale(rows);
    for (auto& v : q) v = static_cast<std::int8_t>(static_cast<int>(rng() % 255) - 127);
    for (auto& s : scale) s = std::ldexp(float(1 + rng() % 1000), -12);
    for (const auto& target : runnable_targets()) {
      restrict_targets(target);
      std::vector<float> out(rows * cols + 1, -3.0f);
      widen_int8_rows(q.data(), scale.data(), rows, cols, out.data(), pool);
      for (std::size_t i = 0; i < rows * cols; ++i)
        if (out[i] != float(q[i]) * scale[i / cols])
          QFAIL(qPrintable(QString("%1: element %2 is %3, not %4").arg(target.c_str()).arg(i).arg(out[i]).arg(float(q[i]) * scale[i / cols])));
      QCOMPARE(out[rows * cols], -3.0f);  // nothing written past the end
    }
  }

  void memory_read_sums_words_modulo_2_64_on_every_target() {
    // Arbitrary words, whose sum wraps many times over (the bandwidth read sums weights as words), and
    // lengths that leave a tail after the four quarters.
    std::mt19937_64 rng(5);
    std::vector<std::uint64_t> words(100003);
    for (auto& w : words) w = rng();
    for (const auto& target : runnable_targets()) {
      restrict_targets(target);
      for (const std::size_t n : {std::size_t{0}, std::size_t{3}, std::size_t{67}, words.size()}) {
        std::uint64_t expected = 0;
        for (std::size_t i = 0; i < n; ++i) expected += words[i];
        QCOMPARE(sum_words(words.data(), n), expected);
      }
    }
  }

  void refuses_what_it_cannot_do() {
    float w[4] = {}, x[4] = {}, y[4] = {};
    const Product wide_batch{{w, DType::F32, 1, 4, 4}, y, 1};
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, matvec({&wide_batch, 1}, x, kMaxBatch + 1, 4));
    const Product int_weights{{w, DType::I32, 1, 4, 4}, y, 1};
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, matvec({&int_weights, 1}, x, 1, 4));
    QVERIFY(!supports(DType::I8) && supports_matrix(DType::I8));  // int8 only as matrices with row scales
    const Product unscaled{{w, DType::I8, 1, 4, 4}, y, 1};
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, matvec({&unscaled, 1}, x, 1, 4));
    QVERIFY(supports(DType::F16));
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, restrict_targets("NO_SUCH_TARGET"));
  }

  void pool_runs_each_task_once() {
    ThreadPool pool(3);
    QCOMPARE(pool.size(), 3u);
    for (int round = 0; round < 200; ++round) {
      std::vector<std::atomic<int>> hits(97);
      pool.run(hits.size(), [&](std::size_t i) { hits[i].fetch_add(1); });
      for (auto& h : hits) QCOMPARE(h.load(), 1);
    }
  }

  void pool_runs_nested_and_concurrent_calls_inline() {
    ThreadPool pool(2);
    std::atomic<int> inner{0};
    pool.run(4, [&](std::size_t) { pool.run(5, [&](std::size_t) { inner.fetch_add(1); }); });
    QCOMPARE(inner.load(), 20);
    std::atomic<int> total{0};
    std::thread other([&] {
      for (int i = 0; i < 100; ++i) pool.run(10, [&](std::size_t) { total.fetch_add(1); });
    });
    for (int i = 0; i < 100; ++i) pool.run(10, [&](std::size_t) { total.fetch_add(1); });
    other.join();
    QCOMPARE(total.load(), 2000);
  }

  void pool_of_one_runs_on_the_caller() {
    ThreadPool pool(1);
    const auto caller = std::this_thread::get_id();
    bool elsewhere = false;
    pool.run(8, [&](std::size_t) { elsewhere |= std::this_thread::get_id() != caller; });
    QVERIFY(!elsewhere);
  }
};

QTEST_GUILESS_MAIN(KernelsTest)
#include "test_kernels.moc"
