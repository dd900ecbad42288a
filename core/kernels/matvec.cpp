// Highway compiles the block between HWY_BEFORE_NAMESPACE and HWY_AFTER_NAMESPACE once per target
// (foreach_target.h re-includes this file); HWY_DYNAMIC_DISPATCH calls the best one the CPU runs.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matvec.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/highway.h>

#include "kernels/load_f32-inl.hpp"

#include <algorithm>
#include <cstring>

#include "kernels/matvec.hpp"

HWY_BEFORE_NAMESPACE();
namespace devicemap::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Tails shorter than a vector go through zero-padded copies of this many elements.
constexpr std::size_t kPad = 64;

// Rows [r0, r1) of W times one input row: four accumulators keep the loads of several vectors in flight.
template <class T>
void RowsOfOne(const T* w, std::size_t stride, std::size_t cols, const float* x, float* y, std::size_t r0, std::size_t r1) {
  const DF df;
  const std::size_t n = hn::Lanes(df);
  const std::size_t tail = cols % n, body = cols - tail;
  alignas(64) float xt[kPad] = {};
  alignas(64) T wt[kPad];
  if (tail) std::memcpy(xt, x + body, tail * sizeof(float));
  for (std::size_t r = r0; r < r1; ++r) {
    const T* row = w + r * stride;
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
      std::memset(static_cast<void*>(wt), 0, sizeof wt);
      std::memcpy(static_cast<void*>(wt), row + body, tail * sizeof(T));
      a1 = hn::MulAdd(LoadF32(df, wt), hn::Load(df, xt), a1);
    }
    y[r] = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  }
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

// dtype: 0 float32, 1 bfloat16, 2 float16.
void MatvecRows(const void* w, int dtype, std::size_t stride, std::size_t cols, const float* x, std::size_t batch,
                std::size_t x_stride, float* y, std::size_t y_stride, std::size_t r0, std::size_t r1) {
  switch (dtype) {
    case 0: return RowsTyped(static_cast<const float*>(w), stride, cols, x, batch, x_stride, y, y_stride, r0, r1);
    case 1: return RowsTyped(static_cast<const hwy::bfloat16_t*>(w), stride, cols, x, batch, x_stride, y, y_stride, r0, r1);
    default: return RowsTyped(static_cast<const hwy::float16_t*>(w), stride, cols, x, batch, x_stride, y, y_stride, r0, r1);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace devicemap::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <stdexcept>

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
  const std::size_t slice = std::max<std::size_t>(16, (rows + 4 * pool.size() - 1) / (4 * pool.size()));
  std::vector<Slice> slices;
  for (std::size_t i = 0; i < products.size(); ++i) {
    const int type = element_type(products[i].weight.dtype, "matvec");
    for (std::size_t r = 0; r < products[i].weight.rows; r += slice)
      slices.push_back({i, r, std::min(r + slice, products[i].weight.rows), type});
  }
  auto* const run_rows = &HWY_DYNAMIC_DISPATCH(MatvecRows);
  pool.run(slices.size(), [&](std::size_t s) {
    const Slice& sl = slices[s];
    const Product& p = products[sl.product];
    run_rows(p.weight.data, sl.type, p.weight.row_stride, p.weight.cols, x, batch, x_stride, p.y,
             p.y_stride, sl.begin, sl.end);
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
