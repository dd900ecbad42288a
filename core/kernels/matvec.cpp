// Highway compiles the block between HWY_BEFORE_NAMESPACE and HWY_AFTER_NAMESPACE once per target
// (foreach_target.h re-includes this file); HWY_DYNAMIC_DISPATCH calls the best one the CPU runs.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matvec.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/highway.h>

#include "kernels/load_f32-inl.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/matvec.hpp"

HWY_BEFORE_NAMESPACE();
namespace devicemap::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Tails shorter than a vector go through zero-padded copies of this many elements.
constexpr std::size_t kPad = 64;

// One row of W times one input row: four accumulators keep the loads of several vectors in flight.
template <class T>
HWY_INLINE float RowDot(DF df, const T* row, std::size_t body, std::size_t tail, const float* x, const float* xt) {
  const std::size_t n = hn::Lanes(df);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  std::size_t c = 0;
  for (; c + 4 * n <= body; c += 4 * n) {
    a0 = hn::MulAdd(LoadF32(df, row + c), hn::LoadU(df, x + c), a0);
    a1 = hn::MulAdd(LoadF32(df, row + c + n), hn::LoadU(df, x + c + n), a1);
    a2 = hn::MulAdd(LoadF32(df, row + c + 2 * n), hn::LoadU(df, x + c + 2 * n), a2);
    a3 = hn::MulAdd(LoadF32(df, row + c + 3 * n), hn::LoadU(df, x + c + 3 * n), a3);
  }
  for (; c < body; c += n) a0 = hn::MulAdd(LoadF32(df, row + c), hn::LoadU(df, x + c), a0);
  if (tail) {
    alignas(64) T wt[kPad] = {};
    std::memcpy(static_cast<void*>(wt), row + body, tail * sizeof(T));
    a1 = hn::MulAdd(LoadF32(df, wt), hn::Load(df, xt), a1);
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
}

// Rows [r0, r1) of W times one input row. Four rows are read side by side, from the four quarters of the
// range: four long sequential streams, which the hardware prefetchers follow across row ends. (Reading
// four adjacent rows instead makes four streams one row long each; on the 2-core AVX-512 machine measured
// that capped large matrices at 0.42-0.78 of a plain read, the quarters reach 0.96-1.1.) Each input
// vector is loaded once for the four rows.
template <class T>
void RowsOfOne(const T* w, std::size_t stride, std::size_t cols, const float* x, float* y, std::size_t r0, std::size_t r1) {
  const DF df;
  const std::size_t n = hn::Lanes(df);
  const std::size_t tail = cols % n, body = cols - tail;
  alignas(64) float xt[kPad] = {};
  if (tail) std::memcpy(xt, x + body, tail * sizeof(float));
  const std::size_t q = (r1 - r0) / 4;
  for (std::size_t i = 0; i < q; ++i) {
    const std::size_t r = r0 + i;
    const T* w0 = w + r * stride;
    const T* w1 = w0 + q * stride;
    const T* w2 = w1 + q * stride;
    const T* w3 = w2 + q * stride;
    auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
    auto b0 = hn::Zero(df), b1 = hn::Zero(df), b2 = hn::Zero(df), b3 = hn::Zero(df);
    std::size_t c = 0;
    for (; c + 2 * n <= body; c += 2 * n) {
      const auto x0 = hn::LoadU(df, x + c), x1 = hn::LoadU(df, x + c + n);
      a0 = hn::MulAdd(LoadF32(df, w0 + c), x0, a0);
      a1 = hn::MulAdd(LoadF32(df, w1 + c), x0, a1);
      a2 = hn::MulAdd(LoadF32(df, w2 + c), x0, a2);
      a3 = hn::MulAdd(LoadF32(df, w3 + c), x0, a3);
      b0 = hn::MulAdd(LoadF32(df, w0 + c + n), x1, b0);
      b1 = hn::MulAdd(LoadF32(df, w1 + c + n), x1, b1);
      b2 = hn::MulAdd(LoadF32(df, w2 + c + n), x1, b2);
      b3 = hn::MulAdd(LoadF32(df, w3 + c + n), x1, b3);
    }
    for (; c < body; c += n) {
      const auto x0 = hn::LoadU(df, x + c);
      a0 = hn::MulAdd(LoadF32(df, w0 + c), x0, a0);
      a1 = hn::MulAdd(LoadF32(df, w1 + c), x0, a1);
      a2 = hn::MulAdd(LoadF32(df, w2 + c), x0, a2);
      a3 = hn::MulAdd(LoadF32(df, w3 + c), x0, a3);
    }
    if (tail) {
      const auto xv = hn::Load(df, xt);
      alignas(64) T wt[kPad] = {};
      const T* rows[4] = {w0, w1, w2, w3};
      decltype(a0)* acc[4] = {&b0, &b1, &b2, &b3};
      for (int i = 0; i < 4; ++i) {
        std::memcpy(static_cast<void*>(wt), rows[i] + body, tail * sizeof(T));
        *acc[i] = hn::MulAdd(LoadF32(df, wt), xv, *acc[i]);
      }
    }
    y[r] = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, b0)));
    y[r + q] = hn::GetLane(hn::SumOfLanes(df, hn::Add(a1, b1)));
    y[r + 2 * q] = hn::GetLane(hn::SumOfLanes(df, hn::Add(a2, b2)));
    y[r + 3 * q] = hn::GetLane(hn::SumOfLanes(df, hn::Add(a3, b3)));
  }
  for (std::size_t r = r0 + 4 * q; r < r1; ++r) y[r] = RowDot(df, w + r * stride, body, tail, x, xt);
}

// Rows [r0, r1) of W times B input rows: each weight vector is loaded once and used B times.
template <class T, std::size_t B>
void RowsOfBatch(const T* w, std::size_t stride, std::size_t cols, const float* x, std::size_t x_stride, float* y,
                 std::size_t y_stride, std::size_t r0, std::size_t r1) {
  const DF df;
  const std::size_t n = hn::Lanes(df);
  const std::size_t tail = cols % n, body = cols - tail;
  alignas(64) float xt[B][kPad] = {};
  alignas(64) T wt[kPad];
  if (tail)
    for (std::size_t b = 0; b < B; ++b) std::memcpy(xt[b], x + b * x_stride + body, tail * sizeof(float));
  for (std::size_t r = r0; r < r1; ++r) {
    const T* row = w + r * stride;
    hn::Vec<DF> acc[B];
    for (std::size_t b = 0; b < B; ++b) acc[b] = hn::Zero(df);
    for (std::size_t c = 0; c < body; c += n) {
      const auto wv = LoadF32(df, row + c);
      for (std::size_t b = 0; b < B; ++b) acc[b] = hn::MulAdd(wv, hn::LoadU(df, x + b * x_stride + c), acc[b]);
    }
    if (tail) {
      std::memset(static_cast<void*>(wt), 0, sizeof wt);
      std::memcpy(static_cast<void*>(wt), row + body, tail * sizeof(T));
      const auto wv = LoadF32(df, wt);
      for (std::size_t b = 0; b < B; ++b) acc[b] = hn::MulAdd(wv, hn::Load(df, xt[b]), acc[b]);
    }
    for (std::size_t b = 0; b < B; ++b) y[b * y_stride + r] = hn::GetLane(hn::SumOfLanes(df, acc[b]));
  }
}

template <class T>
void RowsTyped(const T* w, std::size_t stride, std::size_t cols, const float* x, std::size_t batch, std::size_t x_stride,
               float* y, std::size_t y_stride, std::size_t r0, std::size_t r1) {
  switch (batch) {
    case 1: return RowsOfOne(w, stride, cols, x, y, r0, r1);
    case 2: return RowsOfBatch<T, 2>(w, stride, cols, x, x_stride, y, y_stride, r0, r1);
    case 3: return RowsOfBatch<T, 3>(w, stride, cols, x, x_stride, y, y_stride, r0, r1);
    case 4: return RowsOfBatch<T, 4>(w, stride, cols, x, x_stride, y, y_stride, r0, r1);
    case 5: return RowsOfBatch<T, 5>(w, stride, cols, x, x_stride, y, y_stride, r0, r1);
    case 6: return RowsOfBatch<T, 6>(w, stride, cols, x, x_stride, y, y_stride, r0, r1);
    case 7: return RowsOfBatch<T, 7>(w, stride, cols, x, x_stride, y, y_stride, r0, r1);
    default: return RowsOfBatch<T, 8>(w, stride, cols, x, x_stride, y, y_stride, r0, r1);
  }
}

// dtype: 0 float32, 1 bfloat16, 2 float16, 3 int8 (then each row's results times row_scale[r]).
void MatvecRows(const void* w, int dtype, std::size_t stride, std::size_t cols, const float* x, std::size_t batch,
                std::size_t x_stride, float* y, std::size_t y_stride, std::size_t r0, std::size_t r1, const float* row_scale) {
  switch (dtype) {
    case 0: return RowsTyped(static_cast<const float*>(w), stride, cols, x, batch, x_stride, y, y_stride, r0, r1);
    case 1: return RowsTyped(static_cast<const hwy::bfloat16_t*>(w), stride, cols, x, batch, x_stride, y, y_stride, r0, r1);
    case 2: return RowsTyped(static_cast<const hwy::float16_t*>(w), stride, cols, x, batch, x_stride, y, y_stride, r0, r1);
    default:
      RowsTyped(static_cast<const std::int8_t*>(w), stride, cols, x, batch, x_stride, y, y_stride, r0, r1);
      for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t r = r0; r < r1; ++r) y[b * y_stride + r] *= row_scale[r];
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace devicemap::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <stdexcept>
#include <cstdlib>

#include "kernels/element_type.hpp"
#include "kernels/thread_pool.hpp"

namespace devicemap::kernels {

HWY_EXPORT(MatvecRows);

namespace {

// A piece of one product: rows [begin, end) of products[product], whose weights are of element `type`.
struct Slice {
  std::size_t product, begin, end;
  int type;
};

}  // namespace

bool supports(DType dtype) { return element_bytes(dtype) > 0; }
bool supports_matrix(DType dtype) { return supports(dtype) || dtype == DType::I8; }

void matvec(std::span<const Product> products, const float* x, std::size_t batch, std::size_t x_stride, ThreadPool& pool) {
  if (batch == 0 || products.empty()) return;
  if (batch > kMaxBatch) throw std::invalid_argument("matvec: at most 8 input rows");
  std::size_t rows = 0;
  for (const auto& p : products) {
    if (p.weight.cols != products[0].weight.cols) throw std::invalid_argument("matvec: fused products differ in cols");
    rows += p.weight.rows;
  }
  // About four slices per thread, so a thread that started late still gets its share; slices of at least
  // 16 rows, so a slice's weights are a long sequential read.
  constexpr std::size_t kPer = 4;
  const std::size_t slice = std::max<std::size_t>(16, (rows + kPer * pool.size() - 1) / (kPer * pool.size()));
  std::vector<Slice> slices;
  for (std::size_t i = 0; i < products.size(); ++i) {
    const Matrix& m = products[i].weight;
    if (m.codes4 && (m.cols % 2 != 0 || m.codes4->block == 0 || !m.codes4->table || !m.codes4->scale || m.row_stride * 2 < m.cols ||
                     (m.codes4->row_blocks && m.codes4->row_blocks != (m.cols + m.codes4->block - 1) / m.codes4->block)))
      throw std::invalid_argument("matvec: 4-bit rows need an even length, a table, a block size and its scales");
    if (!m.codes4 && m.dtype == DType::I8 && !m.row_scale) throw std::invalid_argument("matvec: int8 rows need their row scales");
    const int type = m.codes4 ? 4 : m.dtype == DType::I8 ? 3 : element_type(m.dtype, "matvec");
    for (std::size_t r = 0; r < products[i].weight.rows; r += slice)
      slices.push_back({i, r, std::min(r + slice, products[i].weight.rows), type});
  }
  // 4-bit products get their input rows rounded once here, not once per slice; products of the same
  // block and table share them.
  thread_local std::vector<Codes4Input> prepared;
  std::vector<std::size_t> input_of(products.size(), 0);
  std::size_t inputs = 0;
  for (std::size_t i = 0; i < products.size(); ++i) {
    const Codes4* c = products[i].weight.codes4;
    if (!c) continue;
    std::size_t j = 0;
    while (j < i && !(products[j].weight.codes4 && products[j].weight.codes4->block == c->block &&
                      std::equal(c->table, c->table + 16, products[j].weight.codes4->table)))
      ++j;
    if (j < i) {
      input_of[i] = input_of[j];
      continue;
    }
    input_of[i] = inputs;
    inputs += batch;
    if (prepared.size() < inputs) prepared.resize(inputs);
    for (std::size_t b = 0; b < batch; ++b) codes4_prepare(x + b * x_stride, products[i].weight.cols, *c, prepared[input_of[i] + b]);
  }
  const Codes4Input* const ready = prepared.data();
  auto* const run_rows = &HWY_DYNAMIC_DISPATCH(MatvecRows);
  pool.run(slices.size(), [&](std::size_t s) {
    const Slice& sl = slices[s];
    const Product& p = products[sl.product];
    if (sl.type == 4)
      return codes4_rows(static_cast<const unsigned char*>(p.weight.data), p.weight.row_stride, p.weight.cols, *p.weight.codes4, x,
                         batch, x_stride, p.y, p.y_stride, sl.begin, sl.end, ready + input_of[sl.product]);
    run_rows(p.weight.data, sl.type, p.weight.row_stride, p.weight.cols, x, batch, x_stride, p.y,
             p.y_stride, sl.begin, sl.end, p.weight.row_scale);
  });
}

void matvec(std::span<const Product> products, const float* x, std::size_t batch, std::size_t x_stride) {
  matvec(products, x, batch, x_stride, ThreadPool::shared());
}

std::vector<std::string> runnable_targets() {
  std::vector<std::string> out;
  for (std::int64_t t : hwy::SupportedAndGeneratedTargets()) out.emplace_back(hwy::TargetName(t));
  return out;
}

std::string dispatch_target() {
  const auto targets = hwy::SupportedAndGeneratedTargets();  // best first
  return targets.empty() ? "none" : hwy::TargetName(targets.front());
}

void restrict_targets(const std::string& target) {
  hwy::SetSupportedTargetsForTest(0);
  if (target.empty()) return;
  for (std::int64_t t : hwy::SupportedAndGeneratedTargets())
    if (target == hwy::TargetName(t)) {
      hwy::SetSupportedTargetsForTest(t);
      return;
    }
  throw std::invalid_argument("no kernel target '" + target + "' runs on this machine");
}

}  // namespace devicemap::kernels
#endif  // HWY_ONCE
