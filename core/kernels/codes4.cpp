// Highway compiles the block between HWY_BEFORE_NAMESPACE and HWY_AFTER_NAMESPACE once per target
// (foreach_target.h re-includes this file); HWY_DYNAMIC_DISPATCH calls the best one the CPU runs.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/codes4.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/highway.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/codes4.hpp"

HWY_BEFORE_NAMESPACE();
namespace devicemap::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;

// table[idx] per lane: one permute when the 16 values fill a vector (AVX-512), a gather otherwise.
HWY_INLINE hn::Vec<DF> Lookup(DF df, const float* table, hn::Vec<DF> tbl, hn::Vec<DI> idx) {
  if constexpr (hn::MaxLanes(DF()) == 16) {
    return hn::TableLookupLanes(tbl, hn::IndicesFromVec(df, idx));
  } else {
    (void)tbl;
    return hn::GatherIndex(df, table, idx);
  }
}

// One element, for rows whose blocks do not line up with the vectors.
inline float Element(const unsigned char* row, std::size_t c, const float* table) {
  const unsigned byte = row[c / 2];
  return table[c % 2 == 0 ? byte >> 4 : byte & 15u];
}

// K rows (1 or 4) whose blocks lie inside a row and hold whole vectors of pairs: per block, the codes'
// table values times the input's even and odd elements (xe, xo), in separate accumulators so that no
// chain of dependent adds limits the loads; then one multiply by the block's scale; the offsets meet
// the block sums of x (xsum). K is a template argument so that every accumulator stays in a register;
// V, when not 0, is the vectors per block (2 for bitsandbytes' 64 on AVX-512), so that the block's loop
// unrolls.
template <int K, std::size_t V>
HWY_INLINE void BlockRows(const unsigned char* const* rows, const std::size_t* index, std::size_t blocks, std::size_t pairs_per_block,
                          const Codes4& codes, hn::Vec<DF> tbl, const float* xe, const float* xo, const float* xsum, float* const* out) {
  const DF df;
  const DI di;
  const hn::RebindToUnsigned<DF> du;
  const hn::Rebind<std::uint8_t, DF> d8;
  const std::size_t n = hn::Lanes(df);
  const auto low = hn::Set(di, 15);
  const std::size_t per_block = V ? V * n : pairs_per_block;
  hn::Vec<DF> acc[K];
  float off[K];
  const float* scale[K];
  const float* offset[K];
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) {
    acc[k] = hn::Zero(df), off[k] = 0;
    scale[k] = codes.scale + index[k] * blocks;
    offset[k] = codes.offset ? codes.offset + index[k] * blocks : nullptr;
  }
  for (std::size_t b = 0; b < blocks; ++b) {
    hn::Vec<DF> even[K], odd[K];
#pragma GCC unroll 4
    for (int k = 0; k < K; ++k) even[k] = hn::Zero(df), odd[k] = hn::Zero(df);
#pragma GCC unroll 4
    for (std::size_t i = b * per_block; i < (b + 1) * per_block; i += n) {
      const auto ve = hn::LoadU(df, xe + i), vo = hn::LoadU(df, xo + i);
#pragma GCC unroll 4
      for (int k = 0; k < K; ++k) {
        const auto bytes = hn::BitCast(di, hn::PromoteTo(du, hn::LoadU(d8, rows[k] + i)));
        even[k] = hn::MulAdd(Lookup(df, codes.table, tbl, hn::ShiftRight<4>(bytes)), ve, even[k]);
        odd[k] = hn::MulAdd(Lookup(df, codes.table, tbl, hn::And(bytes, low)), vo, odd[k]);
      }
    }
#pragma GCC unroll 4
    for (int k = 0; k < K; ++k) {
      acc[k] = hn::MulAdd(hn::Add(even[k], odd[k]), hn::Set(df, scale[k][b]), acc[k]);
      if (offset[k]) off[k] += offset[k][b] * xsum[b];
    }
  }
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) *out[k] = hn::GetLane(hn::SumOfLanes(df, acc[k])) + off[k];
}

// Four rows side by side, from the quarters of the slice, as in matvec.cpp: four long streams, and each
// input vector loaded once for the four.
void AlignedRows(const unsigned char* data, std::size_t row_stride, std::size_t cols, const Codes4& codes, const float* xe,
                 const float* xo, const float* xsum, float* y, std::size_t r0, std::size_t r1) {
  const DF df;
  const std::size_t n = hn::Lanes(df);
  const std::size_t blocks = cols / codes.block, pairs_per_block = codes.block / 2;
  hn::Vec<DF> tbl = hn::Zero(df);
  if constexpr (hn::MaxLanes(DF()) == 16) tbl = hn::LoadU(df, codes.table);
  const std::size_t q = (r1 - r0) / 4;
  for (std::size_t i = 0; i < q; ++i) {
    const std::size_t index[4] = {r0 + i, r0 + q + i, r0 + 2 * q + i, r0 + 3 * q + i};
    const unsigned char* rows[4];
    float* out[4];
    for (int k = 0; k < 4; ++k) rows[k] = data + index[k] * row_stride, out[k] = y + index[k];
    if (pairs_per_block == 2 * n)
      BlockRows<4, 2>(rows, index, blocks, pairs_per_block, codes, tbl, xe, xo, xsum, out);
    else if (pairs_per_block == 4 * n)
      BlockRows<4, 4>(rows, index, blocks, pairs_per_block, codes, tbl, xe, xo, xsum, out);
    else
      BlockRows<4, 0>(rows, index, blocks, pairs_per_block, codes, tbl, xe, xo, xsum, out);
  }
  for (std::size_t r = r0 + 4 * q; r < r1; ++r) {
    const unsigned char* row = data + r * row_stride;
    float* out = y + r;
    BlockRows<1, 0>(&row, &r, blocks, pairs_per_block, codes, tbl, xe, xo, xsum, &out);
  }
}

void Codes4Rows(const unsigned char* data, std::size_t row_stride, std::size_t cols, const Codes4& codes, const float* x,
                std::size_t batch, std::size_t x_stride, float* y, std::size_t y_stride, std::size_t r0, std::size_t r1) {
  const std::size_t n = hn::Lanes(DF());
  const bool aligned = codes.block % (2 * n) == 0 && cols % codes.block == 0 && (codes.row_blocks == 0 || codes.row_blocks == cols / codes.block);
  thread_local std::vector<float> split;
  for (std::size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * x_stride;
    float* yb = y + b * y_stride;
    if (!aligned) {  // element by element, each with its own block
      for (std::size_t r = r0; r < r1; ++r) {
        const unsigned char* row = data + r * row_stride;
        float sum = 0;
        for (std::size_t c = 0; c < cols; ++c) {
          const std::size_t at = codes.row_blocks ? r * codes.row_blocks + c / codes.block : (r * cols + c) / codes.block;
          sum += (Element(row, c, codes.table) * codes.scale[at] + (codes.offset ? codes.offset[at] : 0.0f)) * xb[c];
        }
        yb[r] = sum;
      }
      continue;
    }
    const std::size_t pairs = cols / 2, blocks = cols / codes.block;
    split.resize(2 * pairs + blocks);
    float* xe = split.data();
    float* xo = xe + pairs;
    float* xsum = xo + pairs;
    for (std::size_t i = 0; i < pairs; ++i) {
      xe[i] = xb[2 * i];
      xo[i] = xb[2 * i + 1];
    }
    for (std::size_t k = 0; k < blocks; ++k) {
      float s = 0;
      for (std::size_t c = k * codes.block; c < (k + 1) * codes.block; ++c) s += xb[c];
      xsum[k] = s;
    }
    AlignedRows(data, row_stride, cols, codes, xe, xo, xsum, yb, r0, r1);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace devicemap::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace devicemap::kernels {

HWY_EXPORT(Codes4Rows);

void codes4_rows(const unsigned char* data, std::size_t row_stride, std::size_t cols, const Codes4& codes, const float* x,
                 std::size_t batch, std::size_t x_stride, float* y, std::size_t y_stride, std::size_t r0, std::size_t r1) {
  HWY_DYNAMIC_DISPATCH(Codes4Rows)(data, row_stride, cols, codes, x, batch, x_stride, y, y_stride, r0, r1);
}

const float* nf4_table() {
  // bitsandbytes' NF4 code (functional.get_4bit_type("nf4"), the constants of its dequantization kernels).
  static const float t[16] = {-1.0f,
                              -0.6961928009986877f,
                              -0.5250730514526367f,
                              -0.39491748809814453f,
                              -0.28444138169288635f,
                              -0.18477343022823334f,
                              -0.09105003625154495f,
                              0.0f,
                              0.07958029955625534f,
                              0.16093020141124725f,
                              0.24611230194568634f,
                              0.33791524171829224f,
                              0.44070982933044434f,
                              0.5626170039176941f,
                              0.7229568362236023f,
                              1.0f};
  return t;
}

const float* fp4_table() {
  // bitsandbytes' FP4: 0, 0.0625, 8, 12, 4, 6, 2, 3 (two exponent bits, one mantissa bit, its own bias),
  // over the largest, 12; the high bit is the sign.
  static const float t[16] = {0.0f,  0.0625f / 12,  8.0f / 12,  1.0f,  4.0f / 12,  6.0f / 12,  2.0f / 12,  3.0f / 12,
                              -0.0f, -0.0625f / 12, -8.0f / 12, -1.0f, -4.0f / 12, -6.0f / 12, -2.0f / 12, -3.0f / 12};
  return t;
}

const float* integer4_table() {
  static const float t[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  return t;
}

}  // namespace devicemap::kernels
#endif  // HWY_ONCE
