#pragma once
// Internal to the running layer (includes ATen). A quantized block Linear in the form the decode kernels
// read, made once when the model loads:
//   - bitsandbytes 4-bit: the stored codes as they are, absmax in float32 (decoded from its nested state
//     when double-quantized; run/bnb4.hpp);
//   - GPTQ: the int32 words [in·bits/32, out] repacked into rows of 4-bit codes [out, in/2], with the
//     group's scale and −zero·scale as each block's scale and offset; act-order columns are sorted by
//     group so that a group is one block, and the input is gathered in that order (`columns`). 2-bit
//     values are held as 4-bit codes (twice their stored bytes); 8-bit ones as two planes of nibbles,
//     q = 16·high + low, the high plane's scale 16·scale and the low plane (`low`) added to it, so that
//     every width runs on the one 4-bit kernel and 8 bits take the bytes they are stored in;
//   - AWQ (GEMM layout): the words [in, out/8] likewise, outputs put back in order (run/awq.hpp).
//   - bitsandbytes 8-bit: the int8 rows as stored, SCB / 127 as each row's scale;
//   - a float checkpoint quantized on load (LoadOptions::quantize, run/quantize.hpp).
// Repacked originals are released, so a layer is held once.
// Layers on "disk" or a GPU are left as stored (read per use, or expanded where they run).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kernels/codes4.hpp"
#include "kernels/matvec.hpp"
#include "run/model_config.hpp"

namespace devicemap {

class Weights;

struct PackedLinear {
  std::int64_t out = 0, in = 0;
  // 4-bit: uint8 [out, in/2] or the stored flat codes, two per byte, high nibble first.
  // int8 (bitsandbytes 8-bit, or quantized on load): int8 [out, in] rows, `scale` float32 [out] each.
  at::Tensor codes;
  bool int8 = false;
  at::Tensor scale, offset;  // float32 per block (per row for int8); offset undefined when none
  at::Tensor columns;        // int64 [in]: codes' column j is input columns[j] (GPTQ act order); else undefined
  kernels::Codes4 layout;    // table, block, row_blocks; its pointers refer to scale and offset
  // GPTQ 8-bit: the low nibbles, a plane of the same shape, columns and blocks whose product is added
  // to this one's.
  std::shared_ptr<const PackedLinear> low;

  kernels::Matrix matrix() const;
  // W [out, in] in float32, columns in the input's order; with `scratch`, in one buffer per thread that
  // the next such call overwrites (a prompt's pass expands one layer at a time).
  at::Tensor dequantize(bool scratch = false) const;
  // This plane's W [out, in] in codes' column order written into `dst` (float32), or added to it.
  void expand(float* dst, bool add) const;
  // y = x·Wᵀ (+ bias) in x's dtype through the decode kernels, kMaxBatch rows at a time; x [rows, in]
  // on the CPU.
  at::Tensor decode(const at::Tensor& x, const at::Tensor& bias) const;
  std::uint64_t bytes() const;
  // The most rows of one product the decode kernels take (kPackedPromptRows, or kInt8PromptRows).
  std::int64_t kernel_rows() const;
};

// A prompt of up to this many rows runs packed Linears through the decode kernels, reading the codes
// once per kernels::kMaxBatch rows: below it that costs less than expanding each layer to float32 for a
// matrix multiply (`bench generate --prefill N`, 1.1B nf4, 2 AVX2 cores: 64 rows 16.8 tok/s through
// the kernels, 65 rows 11.6 expanded; 1.1B GPTQ 4-bit on 2 AVX-512 cores: 36.1 and 36.3).
constexpr std::int64_t kPackedPromptRows = 64;
// int8 rows read twice the bytes of 4-bit codes per pass, so expanding pays off sooner (1.1B bnb 8-bit,
// 2 AVX-512 cores, through the kernels / expanded: 16 rows 21.2 / 18.1 tok/s, 24 rows 19.4 / 15.8,
// 32 rows 18.0 / 23.0, 64 rows 23.5 / 38.8).
constexpr std::int64_t kInt8PromptRows = 24;

// decode() of several packed Linears of one input (q/k/v, gate/up) in one pass over the thread pool;
// those whose input is gathered (act order) run one by one.
std::vector<at::Tensor> decode_together(const at::Tensor& x, std::span<const PackedLinear* const> linears,
                                        std::span<const at::Tensor> biases);

// Builds the packed forms of every quantized block Linear resident on the CPU and registers them with
// `weights` (Weights::packed), checking each bitsandbytes 4-bit state wherever it lies.
void pack_linears(Weights& weights, const ModelConfig& config);

}  // namespace devicemap
