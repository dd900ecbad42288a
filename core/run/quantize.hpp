#pragma once
// Internal to the running layer (includes ATen). Quantizing a float checkpoint's block Linears as they
// load (LoadOptions::quantize), so that a model that does not fit at 16 bits runs:
//   - int8: LLM.int8's vector-wise rows, as bitsandbytes' load_in_8bit makes them: each row's absmax,
//     q = round(w · 127 / absmax), run as q · absmax / 127;
//   - nf4: bitsandbytes' NF4 in blocks of 64 along each row (a row's last block may be shorter): the
//     block's absmax, each weight the nearest NF4 value of w / absmax.
// The weight is read from the checkpoint's mapping and not kept: the result is the layer's only copy.
#include <ATen/core/Tensor.h>

#include <memory>

#include "run/load_options.hpp"
#include "run/packed_linear.hpp"

namespace devicemap {

// weight [out, in], any floating dtype, on the CPU. (quantized_bytes() of load_options.hpp is its size.)
std::shared_ptr<const PackedLinear> quantize_linear(const at::Tensor& weight, LoadQuantization method);

}  // namespace devicemap
