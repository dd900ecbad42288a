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
#include <memory>
#include <string>

#include "run/packed_linear.hpp"

namespace devicemap {

// `fetch(name)` returns the named tensor on the CPU, or an undefined tensor when the checkpoint has none.
// `module` is the Linear's name ("model.layers.0.mlp.down_proj"), out × in its shape from config.json
// (in even). The result reads the stored codes in place; absmax is float32 (decoded when nested).
// Throws devicemap::Error naming the tensor and key when the state disagrees with the shape, a block
// size does not fit, or the quant type is unknown.
std::shared_ptr<const PackedLinear> read_bnb4(const std::string& module, std::int64_t out, std::int64_t in,
                                              const std::function<at::Tensor(const std::string&)>& fetch);

}  // namespace devicemap
