#pragma once
// Rows of 4-bit codes for the decode products: bitsandbytes' NF4/FP4 weights as stored, and GPTQ/AWQ
// integer weights repacked row by row. Element c of a row is code q in byte c/2 (the even element in the
// high nibble, bitsandbytes' order) and is worth
//     table[q] · scale[b] + offset[b],   b = (row · cols + c) / block
// (blocks over the flattened matrix, as bitsandbytes counts them), or b = row · row_blocks + c / block
// when blocks restart at each row (GPTQ and AWQ groups, the last one of a row possibly shorter). NF4: table = the NF4 code, scale = absmax, no offset. GPTQ/AWQ:
// table = 0…15, scale = the group's scale, offset = −zero · scale. The codes are read once, converted to
// float32 in registers; nothing is expanded in memory.
//
// Where the blocks fill the vectors, each input row's product runs on integers instead (a multiply-add of
// 16-bit pairs: four times the values per instruction of float32, which is what keeps a 4-bit row at
// the speed of its bytes): the input is rounded per group of elements to ±kInputSteps steps of the
// group's largest |x|, the table to ±kTableSteps steps of its largest |value| (integer codes stay
// exact), and each group's integer sums are scaled back in float32. The error of a product is then at
// most Σ|W|·max|x|/(2·kInputSteps) + Σ|x·scale|·max|table|/(2·kTableSteps) over its row.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace devicemap::kernels {

constexpr int kInputSteps = 8191;
constexpr int kTableSteps = 8191;

struct Codes4 {
  const float* table = nullptr;   // 16 values
  std::size_t block = 0;          // elements per scale, ≥ 1
  const float* scale = nullptr;   // ceil(rows · cols / block) values
  const float* offset = nullptr;  // same count, or null for none
  std::size_t row_blocks = 0;     // blocks per row when they restart at each row; 0: flattened blocks
};

// NF4 (QLoRA's normal-float code, as bitsandbytes' 4-bit kernels decode it) and bitsandbytes' FP4
// (a sign bit, then 0, 1/192, 2/3, 1, 1/3, 1/2, 1/6, 1/4 for codes 0-7), each 16 values.
const float* nf4_table();
const float* fp4_table();
// 0, 1, …, 15: integer codes (GPTQ, AWQ).
const float* integer4_table();

// One input row made ready for the integer products of matrices with these codes' block and table
// (codes4_prepare): ready is false where they do not apply, and the rows then run on float32.
struct Codes4Input {
  bool ready = false;
  bool integer = false;          // the table is 0…15: the codes are the values
  bool halves = false;           // a load of the kernel spans two blocks
  std::size_t group = 0;         // elements per input step
  float unit = 1;                // table steps per table unit
  alignas(64) std::int16_t table[32] = {};       // the table in steps, written twice
  alignas(16) std::uint8_t table_bytes[32] = {};  // its 16 low bytes, then its 16 high bytes
  std::vector<std::int16_t> xq;  // the rounded input in the kernel's order
  std::vector<float> step, xsum; // per group: what a step is worth; per block: Σx
};
void codes4_prepare(const float* x, std::size_t cols, const Codes4& codes, Codes4Input& in);

// Rows [r0, r1) of a Codes4 matrix (`data`, rows `row_stride` bytes apart, `cols` elements each, cols
// even) times `batch` input rows: y[b · y_stride + r] = Σ_c W[r, c] · x[b · x_stride + c]. One call
// covers one slice of rows; the matvec() of matvec.hpp splits a product into slices across its pool,
// having prepared each input row once (`prepared`: one per input row, or null for float32 only).
void codes4_rows(const unsigned char* data, std::size_t row_stride, std::size_t cols, const Codes4& codes, const float* x,
                 std::size_t batch, std::size_t x_stride, float* y, std::size_t y_stride, std::size_t r0, std::size_t r1,
                 const Codes4Input* prepared = nullptr);

}  // namespace devicemap::kernels
