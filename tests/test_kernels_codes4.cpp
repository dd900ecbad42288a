// The 4-bit code kernels: the NF4 and FP4 tables against values worked from their definitions, blockwise
// dequantization read back one element at a time, and products against a double-precision reference on
// every instruction set this machine runs, with blocks that line up with the vectors, blocks that
// straddle rows, blocks that restart at each row (GPTQ/AWQ groups), offsets (their zeros), odd row
// counts, batches and fused products.
#include "testkit.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <random>

#include "kernels/codes4.hpp"
#include "kernels/matvec.hpp"
#include "kernels/thread_pool.hpp"

using namespace devicemap;
using namespace devicemap::kernels;

namespace {

// Φ⁻¹(p) by bisection on Φ(x) = erfc(−x/√2)/2: slow, plainly right.
double normal_quantile(double p) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

// 4-bit codes with their scales, and the values they stand for.
struct CodedMatrix {
  std::size_t rows, cols, stride;
  std::vector<unsigned char> bytes;
  std::vector<float> scale, offset;
  Codes4 codes;
  std::vector<double> values;

  Matrix view() const {
    Matrix m;
    m.data = bytes.data();
    m.dtype = DType::U8;
    m.rows = rows;
    m.cols = cols;
    m.row_stride = stride;
    m.codes4 = &codes;
    return m;
  }
};

// per_row: blocks restart at each row (GPTQ/AWQ groups), else they run over the flattened matrix.
CodedMatrix random_coded(std::size_t rows, std::size_t cols, std::size_t block, const float* table, bool offsets, std::mt19937& rng,
                         bool per_row = false) {
  CodedMatrix m{rows, cols, cols / 2 + 3, {}, {}, {}, {}, {}};
  m.bytes.assign(rows * m.stride, 0xAB);  // padding past each row must not be read as codes
  const std::size_t row_blocks = per_row ? (cols + block - 1) / block : 0;
  const std::size_t blocks = per_row ? rows * row_blocks : (rows * cols + block - 1) / block;
  for (std::size_t b = 0; b < blocks; ++b) {
    m.scale.push_back(float(1 + rng() % 64) / 32.0f);
    if (offsets) m.offset.push_back(-float(rng() % 16) * m.scale.back());
  }
  m.codes = {table, block, m.scale.data(), offsets ? m.offset.data() : nullptr, row_blocks};
  m.values.resize(rows * cols);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) {
      const unsigned q = rng() % 16;
      unsigned char& byte = m.bytes[r * m.stride + c / 2];
      if (c % 2 == 0)
        byte = static_cast<unsigned char>((byte & 0x0F) | (q << 4));
      else
        byte = static_cast<unsigned char>((byte & 0xF0) | q);
      const std::size_t at = per_row ? r * row_blocks + c / block : (r * cols + c) / block;
      m.values[r * cols + c] = double(table[q]) * m.scale[at] + (offsets ? double(m.offset[at]) : 0.0);
    }
  return m;
}

std::vector<float> random_input(std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = dist(rng);
  return x;
}

void expect_product(const CodedMatrix& m, const std::vector<float>& x, std::size_t batch, const std::vector<float>& y,
                    const std::string& what) {
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t r = 0; r < m.rows; ++r) {
      double ref = 0, mag = 0, top_x = 0, sum_w = 0, sum_xs = 0, top_t = 0;
      for (int i = 0; i < 16; ++i) top_t = std::max(top_t, std::abs(double(m.codes.table[i])));
      for (std::size_t c = 0; c < m.cols; ++c) top_x = std::max(top_x, std::abs(double(x[b * m.cols + c])));
      for (std::size_t c = 0; c < m.cols; ++c) {
        const double w = m.values[r * m.cols + c], xc = x[b * m.cols + c];
        const std::size_t at = m.codes.row_blocks ? r * m.codes.row_blocks + c / m.codes.block : (r * m.cols + c) / m.codes.block;
        ref += w * xc;
        mag += std::abs(w * xc);
        sum_w += std::abs(w);
        sum_xs += std::abs(xc * m.scale[at]);
      }
      // Products may run on integers: the bound of codes4.hpp (with the row's largest |x|, at least
      // its group's), on top of float32 rounding.
      const double rounding = sum_w * top_x / (2 * kInputSteps) + sum_xs * top_t / (2 * kTableSteps);
      const double got = y[b * m.rows + r];
      if (std::abs(got - ref) > 2e-6 * mag + 1e-6 + rounding)
        QFAIL(qPrintable(QString("%1: row %2 of input %3: %4, reference %5").arg(what.c_str()).arg(r).arg(b).arg(got).arg(ref)));
    }
}

}  // namespace

class Codes4Test : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void cleanup() { restrict_targets(""); }

  void nf4_is_the_normal_float_code() {
    // QLoRA's NF4 as bitsandbytes builds it (create_normal_map, offset 0.9677083): 8 positive quantiles
    // Φ⁻¹ at linspace(offset, 0.5, 9) without the last, 7 negative ones at linspace(offset, 0.5, 8)
    // without the last, a zero; sorted and divided by the largest.
    const double offset = 0.9677083;
    std::vector<double> v{0.0};
    for (int i = 0; i < 8; ++i) v.push_back(normal_quantile(offset + (0.5 - offset) * i / 8.0));
    for (int i = 0; i < 7; ++i) v.push_back(-normal_quantile(offset + (0.5 - offset) * i / 7.0));
    std::sort(v.begin(), v.end());
    const double top = v.back();
    for (int i = 0; i < 16; ++i)
      if (std::abs(nf4_table()[i] - v[i] / top) > 1e-6)
        QFAIL(qPrintable(QString("NF4 code %1: %2, definition %3").arg(i).arg(nf4_table()[i]).arg(v[i] / top)));
    QCOMPARE(nf4_table()[7], 0.0f);
    QCOMPARE(nf4_table()[0], -1.0f);
    QCOMPARE(nf4_table()[15], 1.0f);
  }

  void fp4_is_bitsandbytes_fp4() {
    // Worked by hand from bitsandbytes' FP4 (its dequantization tree): the high bit is the sign, the low
    // three pick 0, 0.0625, 8, 12, 4, 6, 2, 3, all over 12.
    const double magnitude[8] = {0, 0.0625, 8, 12, 4, 6, 2, 3};
    for (int i = 0; i < 16; ++i) {
      const double expected = (i & 8 ? -1 : 1) * magnitude[i & 7] / 12;
      QVERIFY2(std::abs(fp4_table()[i] - expected) < 1e-7, qPrintable(QString("FP4 code %1").arg(i)));
    }
    QCOMPARE(fp4_table()[3], 1.0f);
    QVERIFY(std::signbit(fp4_table()[8]));
    for (int i = 0; i < 16; ++i) QCOMPARE(integer4_table()[i], float(i));
  }

  void blockwise_dequantization_element_by_element() {
    // Two rows of 6 (blocks of 4 straddle the rows, as bitsandbytes counts blocks over the flattened
    // matrix). Byte 0x7F holds element 0 as code 7 (high nibble) and element 1 as code 15.
    const unsigned char bytes[6] = {0x7F, 0x80, 0x3C, 0x01, 0xF0, 0x88};
    const float absmax[3] = {2.0f, 0.5f, 4.0f};
    const Codes4 codes{nf4_table(), 4, absmax, nullptr};
    Matrix m;
    m.data = bytes;
    m.dtype = DType::U8;
    m.rows = 2;
    m.cols = 6;
    m.row_stride = 3;
    m.codes4 = &codes;
    const unsigned code[12] = {7, 15, 8, 0, 3, 12, 0, 1, 15, 0, 8, 8};
    for (std::size_t c = 0; c < 6; ++c) {
      float x[6] = {}, y[2] = {-1, -1};
      x[c] = 1.0f;
      const Product p{m, y, 2};
      matvec({&p, 1}, x, 1, 6);
      for (std::size_t r = 0; r < 2; ++r) {
        const std::size_t e = r * 6 + c;
        QCOMPARE(y[r], nf4_table()[code[e]] * absmax[e / 4]);
      }
    }
  }

  void every_target_every_shape() {
    ThreadPool pool(3);
    std::mt19937 rng(5);
    struct Case {
      std::size_t rows, cols, block;
    };
    // Blocks of 64 and 128 (bitsandbytes', GPTQ's) that fill the vectors; blocks of 2 and 6 that do not;
    // 64-element blocks over 96 columns straddle rows.
    const Case cases[] = {{1, 64, 64}, {7, 128, 64}, {33, 256, 128}, {130, 2048, 64}, {5, 96, 64}, {9, 30, 6}, {4, 2, 2}, {17, 4096, 128}};
    for (const auto& target : runnable_targets()) {
      restrict_targets(target);
      for (const auto& [rows, cols, block] : cases)
        for (const float* table : {nf4_table(), fp4_table(), integer4_table()})
          for (bool offsets : {false, true})
            for (std::size_t batch : {std::size_t{1}, std::size_t{3}}) {
              const CodedMatrix m = random_coded(rows, cols, block, table, offsets, rng);
              const std::vector<float> x = random_input(batch * cols, rng);
              std::vector<float> y(batch * rows, -1.0f);
              const Product p{m.view(), y.data(), rows};
              matvec({&p, 1}, x.data(), batch, cols, pool);
              expect_product(m, x, batch, y,
                             target + " " + std::to_string(rows) + "x" + std::to_string(cols) + " block " + std::to_string(block) +
                                 (offsets ? " offsets" : "") + " batch " + std::to_string(batch));
            }
    }
  }

  void blocks_per_row() {
    // GPTQ's groups: 72 columns in groups of 16 leave a last group of 8 in every row; 256 in groups of
    // 128 line up with the vectors.
    std::mt19937 rng(17);
    for (const auto& target : runnable_targets()) {
      restrict_targets(target);
      for (const auto& [rows, cols, block] : {std::array<std::size_t, 3>{48, 72, 16}, std::array<std::size_t, 3>{21, 256, 128}}) {
        const CodedMatrix m = random_coded(rows, cols, block, integer4_table(), true, rng, true);
        const std::vector<float> x = random_input(2 * cols, rng);
        std::vector<float> y(2 * rows, -1.0f);
        const Product p{m.view(), y.data(), rows};
        matvec({&p, 1}, x.data(), 2, cols);
        expect_product(m, x, 2, y, target + " per-row blocks " + std::to_string(cols) + "/" + std::to_string(block));
      }
    }
  }

  void fused_with_other_codes() {
    std::mt19937 rng(9);
    const std::size_t cols = 256;
    const CodedMatrix gate = random_coded(40, cols, 64, nf4_table(), false, rng);
    const CodedMatrix up = random_coded(24, cols, 128, integer4_table(), true, rng, true);
    const std::vector<float> x = random_input(cols, rng);
    std::vector<float> yg(40), yu(24);
    const Product fused[] = {{gate.view(), yg.data(), 40}, {up.view(), yu.data(), 24}};
    matvec(fused, x.data(), 1, cols);
    expect_product(gate, x, 1, yg, "gate");
    expect_product(up, x, 1, yu, "up");
  }

  void refuses_incomplete_codes() {
    unsigned char bytes[4] = {};
    float x[8] = {}, y[1] = {};
    const float scale[1] = {1};
    Codes4 codes{nf4_table(), 0, scale, nullptr};
    Matrix m;
    m.data = bytes;
    m.rows = 1;
    m.cols = 8;
    m.row_stride = 4;
    m.codes4 = &codes;
    const auto run = [&] {
      const Product p{m, y, 1};
      matvec({&p, 1}, x, 1, 8);
    };
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, run());  // block 0
    codes.block = 8;
    m.cols = 7;
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, run());  // odd length
    m.cols = 8;
    m.row_stride = 3;
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, run());  // rows shorter than their codes
    m.row_stride = 4;
    codes.row_blocks = 2;
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, run());  // one block of 8 per row, not two
    codes.row_blocks = 0;
    run();  // and with everything in place the call goes through
    QCOMPARE(std::abs(y[0]), 0.0f);
  }
};

QTEST_MAIN(Codes4Test)
#include "test_kernels_codes4.moc"
