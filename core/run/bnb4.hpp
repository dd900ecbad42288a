#pragma once
// Internal to the running layer (includes ATen). A bitsandbytes 4-bit Linear as transformers saves it
// (Params4bit with QuantState.as_dict(packed=True)), beside `weight`:
//   weight                                  uint8 [(out·in + 1) / 2, 1]: the row-major [out, in] codes, two
//                                           per byte, the first in the high nibble
//   weight.absmax                           float32 [blocks], or uint8 codes of it when double-quantized
//   weight.quant_map                        float32 [16]: the NF4 or FP4 code
//   weight.nested_absmax, .nested_quant_map double quantization: absmax = nested_quant_map[code] ·
//                                           nested_absmax[block / nested_blocksize] + nested_offset
//   weight.quant_state.bitsandbytes__nf4    uint8: JSON with quant_type, blocksize, dtype, shape (and the
//   (or __fp4)                              nested_blocksize, nested_dtype, nested_offset)
// Everything is checked against the module's shape before any of it is trusted. The codes stay as
// stored; the decode kernels read them (kernels/codes4.hpp), a prompt's pass expands them.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>

#include "kernels/codes4.hpp"

namespace devicemap {

struct Bnb4Linear {
  at::Tensor codes;   // uint8, as stored
  at::Tensor absmax;  // float32 [blocks], contiguous
  std::int64_t out = 0, in = 0, blocksize = 0;
  std::string quant_type;  // "nf4" or "fp4"
  const float* table = nullptr;

  // The kernels' view; valid while this object lives.
  kernels::Codes4 codes4() const { return {table, static_cast<std::size_t>(blocksize), absmax.data_ptr<float>(), nullptr}; }
  // W [out, in] in float32: table[code] · absmax[block], as bitsandbytes' dequantize_4bit computes it.
  at::Tensor dequantize() const;
};

// `fetch(name)` returns the named tensor on the CPU, or an undefined tensor when the checkpoint has none.
// `module` is the Linear's name ("model.layers.0.mlp.down_proj"), out × in its shape from config.json.
// Throws devicemap::Error naming the tensor and key when the state disagrees with the shape, a block
// size does not fit, or the quant type is unknown.
Bnb4Linear read_bnb4(const std::string& module, std::int64_t out, std::int64_t in,
                     const std::function<at::Tensor(const std::string&)>& fetch);

}  // namespace devicemap
