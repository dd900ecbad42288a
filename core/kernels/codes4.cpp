// Highway compiles the block between HWY_BEFORE_NAMESPACE and HWY_AFTER_NAMESPACE once per target
// (foreach_target.h re-includes this file); HWY_DYNAMIC_DISPATCH calls the best one the CPU runs.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/codes4.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/codes4.hpp"

HWY_BEFORE_NAMESPACE();
// Highway 1.0.3's AVX3_DL target names the 256-bit VNNI but not AVX-512's; DotPairs needs the latter.
#if HWY_TARGET == HWY_AVX3_DL && defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("avx512vnni")
#define DEVICEMAP_VNNI512 1
#endif
namespace devicemap::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;

// The 16 table values in registers: one vector of 16 lanes (AVX-512), two of 8 (AVX2), none below.
struct TableRegs {
  hn::Vec<DF> lo, hi;
};

HWY_INLINE TableRegs LoadTable(DF df, const float* table) {
  if constexpr (hn::MaxLanes(DF()) == 16) return {hn::LoadU(df, table), hn::Zero(df)};
  if constexpr (hn::MaxLanes(DF()) == 8) return {hn::LoadU(df, table), hn::LoadU(df, table + 8)};
  return {hn::Zero(df), hn::Zero(df)};
}

// table[idx] per lane: one permute when the 16 values fill a vector (AVX-512); two and a blend when
// they fill two (AVX2: a gather there is ten times slower); a gather otherwise.
HWY_INLINE hn::Vec<DF> Lookup(DF df, const float* table, const TableRegs& tbl, hn::Vec<DI> idx) {
  if constexpr (hn::MaxLanes(DF()) == 16) {
    return hn::TableLookupLanes(tbl.lo, hn::IndicesFromVec(df, idx));
  } else if constexpr (hn::MaxLanes(DF()) == 8) {
    const DI di;
    const auto in_half = hn::IndicesFromVec(df, hn::And(idx, hn::Set(di, 7)));
    return hn::IfThenElse(hn::RebindMask(df, hn::Gt(idx, hn::Set(di, 7))), hn::TableLookupLanes(tbl.hi, in_half),
                          hn::TableLookupLanes(tbl.lo, in_half));
  } else {
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
                          const Codes4& codes, const TableRegs& tbl, const float* xe, const float* xo, const float* xsum, float* const* out) {
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

// Rows [r0, r1): four side by side from the quarters of the range, as in matvec.cpp (four long streams,
// and each input vector loaded once for the four), then the rest one by one. four(rows, index, out)
// and one(rows, index, out) get arrays of 4 and of 1.
template <class Four, class One>
HWY_INLINE void QuarterRows(const unsigned char* data, std::size_t row_stride, float* y, std::size_t r0, std::size_t r1,
                            const Four& four, const One& one) {
  const std::size_t q = (r1 - r0) / 4;
  for (std::size_t i = 0; i < q; ++i) {
    const std::size_t index[4] = {r0 + i, r0 + q + i, r0 + 2 * q + i, r0 + 3 * q + i};
    const unsigned char* rows[4];
    float* out[4];
    for (int k = 0; k < 4; ++k) rows[k] = data + index[k] * row_stride, out[k] = y + index[k];
    four(rows, index, out);
  }
  for (std::size_t r = r0 + 4 * q; r < r1; ++r) {
    const unsigned char* row = data + r * row_stride;
    float* out = y + r;
    one(&row, &r, &out);
  }
}

void AlignedRows(const unsigned char* data, std::size_t row_stride, std::size_t cols, const Codes4& codes, const float* xe,
                 const float* xo, const float* xsum, float* y, std::size_t r0, std::size_t r1) {
  const DF df;
  const std::size_t n = hn::Lanes(df);
  const std::size_t blocks = cols / codes.block, pairs_per_block = codes.block / 2;
  const TableRegs tbl = LoadTable(df, codes.table);
  QuarterRows(
      data, row_stride, y, r0, r1,
      [&](const unsigned char* const* rows, const std::size_t* index, float* const* out) {
        if (pairs_per_block == 2 * n)
          BlockRows<4, 2>(rows, index, blocks, pairs_per_block, codes, tbl, xe, xo, xsum, out);
        else if (pairs_per_block == 4 * n)
          BlockRows<4, 4>(rows, index, blocks, pairs_per_block, codes, tbl, xe, xo, xsum, out);
        else
          BlockRows<4, 0>(rows, index, blocks, pairs_per_block, codes, tbl, xe, xo, xsum, out);
      },
      [&](const unsigned char* const* rows, const std::size_t* index, float* const* out) {
        BlockRows<1, 0>(rows, index, blocks, pairs_per_block, codes, tbl, xe, xo, xsum, out);
      });
}

// ---- Integer products (one input row; see codes4.hpp) ----
//
// A load of n16 16-bit lanes holds 4·n16 codes: lane j's low byte is codes 4j (high nibble) and 4j+1,
// its high byte 4j+2 and 4j+3. The four nibbles of each lane become four vectors of 16-bit values; the
// input is laid out ahead in the same four phases (element 4j+1, 4j, 4j+3, 4j+2), so that each vector
// meets its own inputs lane for lane and no shuffle of codes is needed.
using D16 = hn::ScalableTag<std::int16_t>;
using D32 = hn::RepartitionToWide<D16>;
using DF32 = hn::Rebind<float, D32>;

// A 16-entry table of 16-bit values per lane: one permute of 16-bit lanes on AVX-512 (vpermw), which
// reads only the index's low five bits: with the table written twice over the 32 lanes, a code needs no
// mask. Highway 1.0.3 has no 16-bit TableLookupLanes, so this instruction is written by hand.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr bool kHasLookup16 = true;
HWY_INLINE hn::Vec<D16> Lookup16(hn::Vec<D16> table, hn::Vec<D16> idx) {
  return hn::Vec<D16>{_mm512_permutexvar_epi16(idx.raw, table.raw)};
}
#else
constexpr bool kHasLookup16 = false;
HWY_INLINE hn::Vec<D16> Lookup16(hn::Vec<D16> table, hn::Vec<D16>) { return table; }
#endif

// Elsewhere (AVX2, SSE4, NEON) the table goes through byte shuffles (TableLookupBytes: vpshufb, 32
// lookups in one instruction): the low and the high bytes of the 16 values are two tables, each
// nibble of a byte indexes both, and the two results are merged into the 16-bit lanes of the four
// phases (c0…c3 as in IntRows) by shifts of a byte and odd/even blends.
#if HWY_TARGET != HWY_SCALAR
constexpr bool kHasByteTables = true;
using D8 = hn::Repartition<std::uint8_t, D16>;
struct ByteTables {
  hn::Vec<D8> lo, hi;
};
HWY_INLINE void LookupBytes(hn::Vec<D16> w, const ByteTables& t, hn::Vec<D16>& c0, hn::Vec<D16>& c1, hn::Vec<D16>& c2,
                            hn::Vec<D16>& c3) {
  const D8 d8;
  const hn::RebindToUnsigned<D16> du16;
  const auto bytes = hn::BitCast(d8, w);
  const auto odd_codes = hn::And(bytes, hn::Set(d8, 15));  // byte 2j: element 4j+1, byte 2j+1: 4j+3
  const auto even_codes = hn::ShiftRight<4>(bytes);         // byte 2j: element 4j,   byte 2j+1: 4j+2
  const auto merge = [&](hn::Vec<D8> idx, hn::Vec<D16>& first, hn::Vec<D16>& second) {
    const auto lo = hn::TableLookupBytes(t.lo, idx), hi = hn::TableLookupBytes(t.hi, idx);
    // first: the even byte's value (its low byte in place, its high byte moved up); second: the odd's.
    first = hn::BitCast(D16(), hn::OddEven(hn::BitCast(d8, hn::ShiftLeft<8>(hn::BitCast(du16, hi))), lo));
    second = hn::BitCast(D16(), hn::OddEven(hi, hn::BitCast(d8, hn::ShiftRight<8>(hn::BitCast(du16, lo)))));
  };
  merge(odd_codes, c0, c2);
  merge(even_codes, c1, c3);
}
HWY_INLINE ByteTables LoadByteTables(const std::uint8_t* t) { return {hn::LoadDup128(D8(), t), hn::LoadDup128(D8(), t + 16)}; }
#else  // one lane: no bytes to shuffle; table codes stay on float32
constexpr bool kHasByteTables = false;
struct ByteTables {};
HWY_INLINE void LookupBytes(hn::Vec<D16>, const ByteTables&, hn::Vec<D16>&, hn::Vec<D16>&, hn::Vec<D16>&, hn::Vec<D16>&) {}
HWY_INLINE ByteTables LoadByteTables(const std::uint8_t*) { return {}; }
#endif

// sum + a·b over pairs of 16-bit lanes: one instruction with VNNI (vpdpwssd, AVX3_DL), which Highway
// 1.0.3's ReorderWidenMulAccumulate does not use; a multiply-add of pairs and an add elsewhere.
HWY_INLINE hn::Vec<D32> DotPairs(hn::Vec<D16> a, hn::Vec<D16> b, hn::Vec<D32> sum) {
#if defined(DEVICEMAP_VNNI512)
  return hn::Vec<D32>{_mm512_dpwssd_epi32(sum.raw, a.raw, b.raw)};
#else
  auto unused = hn::Zero(D32());
  return hn::ReorderWidenMulAccumulate(D32(), a, b, sum, unused);  // x86 and scalar leave `unused` alone
#endif
}

// False when x is not finite (the float32 path then gives the infinities and NaNs their due).
bool RoundInput(const float* x, std::size_t cols, std::size_t group, std::size_t block, Codes4Input& in) {
  const std::size_t quarter = cols / 4, span = 4 * hn::Lanes(D16()), n32 = hn::Lanes(D32());
  in.xq.resize(cols);
  in.step.resize(cols / span * n32);
  in.xsum.resize(cols / block);
  float total = 0;
  for (std::size_t b = 0; b < cols / block; ++b) {
    float s = 0;
    for (std::size_t c = b * block; c < (b + 1) * block; ++c) s += std::abs(x[c]);
    total += s;
  }
  if (!std::isfinite(total)) return false;
  static constexpr std::size_t kPhase[4] = {1, 0, 3, 2};  // element 4j + kPhase[p] goes to phase p
  for (std::size_t g = 0; g < cols / group; ++g) {
    float top = 0;
    for (std::size_t c = g * group; c < (g + 1) * group; ++c) top = std::max(top, std::abs(x[c]));
    // The step of every 32-bit lane of the kernel's sums in this group: lane m of a load's sum holds
    // elements span / n32 · m onwards.
    for (std::size_t c = g * group; c < (g + 1) * group; c += span / n32) in.step[c / span * n32 + c % span / (span / n32)] = top / kInputSteps;
    const float inv = top > 0 ? kInputSteps / top : 0.0f;
    for (std::size_t j = g * group / 4; j < (g + 1) * group / 4; ++j)
      for (std::size_t p = 0; p < 4; ++p)
        in.xq[p * quarter + j] = static_cast<std::int16_t>(std::lrint(x[4 * j + kPhase[p]] * inv));
  }
  for (std::size_t b = 0; b < cols / block; ++b) {
    float s = 0;
    for (std::size_t c = b * block; c < (b + 1) * block; ++c) s += x[c];
    in.xsum[b] = s;
  }
  return true;
}

// K rows (1 or 4). kTable: codes index a table (else they are the integers 0…15); kHalves: a load
// spans two blocks (bitsandbytes' 64 on AVX-512), its first half of 32-bit lanes in the first (the lane
// order of the x86 pair multiply-add, hence x86 only): then each row has an accumulator per half, and
// only the right half of each is kept. The input's steps come as a vector per load (in.step holds one
// per 32-bit lane), shared by the rows.
template <int K, bool kTable, bool kHalves>
HWY_INLINE void IntRows(const unsigned char* const* rows, const std::size_t* index, std::size_t cols, const Codes4& codes,
                        hn::Vec<D16> tbl, const ByteTables& bytes, float table_unit, const Codes4Input& in, float* const* out) {
  const D16 d16;
  const hn::RebindToUnsigned<D16> du16;
  const D32 d32;
  const DF32 df;
  const std::size_t n16 = hn::Lanes(d16), n32 = hn::Lanes(d32), quarter = cols / 4, blocks = cols / codes.block;
  const auto nibble = hn::Set(du16, 15);
  hn::Vec<DF32> acc[K], acc2[K];
  const float* scale[K];
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) acc[k] = hn::Zero(df), acc2[k] = hn::Zero(df), scale[k] = codes.scale + index[k] * blocks;
  const std::int16_t* x0 = in.xq.data();
  for (std::size_t j = 0, load = 0; j < quarter; j += n16, ++load) {
    const std::size_t b = 4 * j / codes.block;  // the block of this load's first element
    const auto v0 = hn::LoadU(d16, x0 + j), v1 = hn::LoadU(d16, x0 + quarter + j);
    const auto v2 = hn::LoadU(d16, x0 + 2 * quarter + j), v3 = hn::LoadU(d16, x0 + 3 * quarter + j);
    const auto step = hn::LoadU(df, in.step.data() + load * n32);
#pragma GCC unroll 4
    for (int k = 0; k < K; ++k) {
      const auto w = hn::LoadU(du16, reinterpret_cast<const std::uint16_t*>(rows[k]) + j);
      hn::Vec<D16> c0, c1, c2, c3;
      if constexpr (kTable && kHasLookup16) {
        c0 = hn::BitCast(d16, w), c1 = hn::BitCast(d16, hn::ShiftRight<4>(w));
        c2 = hn::BitCast(d16, hn::ShiftRight<8>(w)), c3 = hn::BitCast(d16, hn::ShiftRight<12>(w));
        c0 = Lookup16(tbl, c0), c1 = Lookup16(tbl, c1), c2 = Lookup16(tbl, c2), c3 = Lookup16(tbl, c3);
      } else if constexpr (kTable) {
        LookupBytes(hn::BitCast(d16, w), bytes, c0, c1, c2, c3);
      } else {
        c0 = hn::BitCast(d16, hn::And(w, nibble)), c1 = hn::BitCast(d16, hn::And(hn::ShiftRight<4>(w), nibble));
        c2 = hn::BitCast(d16, hn::And(hn::ShiftRight<8>(w), nibble)), c3 = hn::BitCast(d16, hn::ShiftRight<12>(w));
      }
      const auto sum = DotPairs(c3, v3, DotPairs(c2, v2, DotPairs(c1, v1, DotPairs(c0, v0, hn::Zero(d32)))));
      const auto f = hn::Mul(hn::ConvertTo(df, sum), step);
      acc[k] = hn::MulAdd(f, hn::Set(df, scale[k][b]), acc[k]);
      if constexpr (kHalves) acc2[k] = hn::MulAdd(f, hn::Set(df, scale[k][b + 1]), acc2[k]);
    }
  }
  const auto first_half = hn::FirstN(df, n32 / 2);
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) {
    float off = 0;
    if (codes.offset) {
      const float* o = codes.offset + index[k] * blocks;
      for (std::size_t b = 0; b < blocks; ++b) off += o[b] * in.xsum[b];
    }
    const auto total = kHalves ? hn::IfThenElse(first_half, acc[k], acc2[k]) : acc[k];
    *out[k] = hn::GetLane(hn::SumOfLanes(df, total)) * table_unit + off;
  }
}

template <bool kTable, bool kHalves>
void IntSlice(const unsigned char* data, std::size_t row_stride, std::size_t cols, const Codes4& codes, hn::Vec<D16> tbl,
              float table_unit, const Codes4Input& in, float* y, std::size_t r0, std::size_t r1) {
  const ByteTables bytes = LoadByteTables(in.table_bytes);
  QuarterRows(
      data, row_stride, y, r0, r1,
      [&](const unsigned char* const* rows, const std::size_t* index, float* const* out) {
        IntRows<4, kTable, kHalves>(rows, index, cols, codes, tbl, bytes, table_unit, in, out);
      },
      [&](const unsigned char* const* rows, const std::size_t* index, float* const* out) {
        IntRows<1, kTable, kHalves>(rows, index, cols, codes, tbl, bytes, table_unit, in, out);
      });
}

// Whether products of these codes can run on integers on this target, and their input if so.
void Codes4Prepare(const float* x, std::size_t cols, const Codes4& codes, Codes4Input& in) {
  in.ready = false;
  const std::size_t span = 4 * hn::Lanes(D16());
  in.halves = HWY_ARCH_X86 && 2 * codes.block == span;
  if (codes.block == 0 || cols % span != 0 || cols % codes.block != 0 || (codes.row_blocks && codes.row_blocks != cols / codes.block) ||
      !(codes.block % span == 0 || in.halves))
    return;
  bool integer = true;
  float top = 0;
  for (int i = 0; i < 16; ++i) integer = integer && codes.table[i] == float(i), top = std::max(top, std::abs(codes.table[i]));
  if (!integer && (!(top > 0) || !std::isfinite(top) || !(kHasLookup16 || kHasByteTables))) return;
  in.integer = integer;
  in.unit = integer ? 1.0f : kTableSteps / top;
  for (int i = 0; i < 32; ++i) in.table[i] = static_cast<std::int16_t>(std::lrint(codes.table[i % 16] * in.unit));
  for (int i = 0; i < 16; ++i) {
    const auto v = static_cast<std::uint16_t>(in.table[i]);
    in.table_bytes[i] = static_cast<std::uint8_t>(v & 0xFF), in.table_bytes[16 + i] = static_cast<std::uint8_t>(v >> 8);
  }
  in.group = std::min(codes.block, span);
  in.ready = RoundInput(x, cols, in.group, codes.block, in);
}

void IntProduct(const unsigned char* data, std::size_t row_stride, std::size_t cols, const Codes4& codes, const Codes4Input& in,
                float* y, std::size_t r0, std::size_t r1) {
  const auto tbl = hn::LoadU(D16(), in.table);
  const float table_unit = 1.0f / in.unit;
  if (in.halves)
    in.integer ? IntSlice<false, true>(data, row_stride, cols, codes, tbl, table_unit, in, y, r0, r1)
               : IntSlice<true, true>(data, row_stride, cols, codes, tbl, table_unit, in, y, r0, r1);
  else
    in.integer ? IntSlice<false, false>(data, row_stride, cols, codes, tbl, table_unit, in, y, r0, r1)
               : IntSlice<true, false>(data, row_stride, cols, codes, tbl, table_unit, in, y, r0, r1);
}

void Codes4Rows(const unsigned char* data, std::size_t row_stride, std::size_t cols, const Codes4& codes, const float* x,
                std::size_t batch, std::size_t x_stride, float* y, std::size_t y_stride, std::size_t r0, std::size_t r1,
                const Codes4Input* prepared) {
  const std::size_t n = hn::Lanes(DF());
  const bool aligned = codes.block % (2 * n) == 0 && cols % codes.block == 0 && (codes.row_blocks == 0 || codes.row_blocks == cols / codes.block);
  thread_local std::vector<float> split;
  for (std::size_t b = 0; b < batch; ++b) {
    const float* xb = x + b * x_stride;
    float* yb = y + b * y_stride;
    if (prepared && prepared[b].ready) {
      IntProduct(data, row_stride, cols, codes, prepared[b], yb, r0, r1);
      continue;
    }
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
#undef DEVICEMAP_VNNI512
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace devicemap::kernels {

HWY_EXPORT(Codes4Rows);
HWY_EXPORT(Codes4Prepare);

void codes4_prepare(const float* x, std::size_t cols, const Codes4& codes, Codes4Input& in) {
  HWY_DYNAMIC_DISPATCH(Codes4Prepare)(x, cols, codes, in);
}

void codes4_rows(const unsigned char* data, std::size_t row_stride, std::size_t cols, const Codes4& codes, const float* x,
                 std::size_t batch, std::size_t x_stride, float* y, std::size_t y_stride, std::size_t r0, std::size_t r1,
                 const Codes4Input* prepared) {
  HWY_DYNAMIC_DISPATCH(Codes4Rows)(data, row_stride, cols, codes, x, batch, x_stride, y, y_stride, r0, r1, prepared);
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
