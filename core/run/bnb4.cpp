#include "run/bnb4.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "error.hpp"

namespace devicemap {
namespace {

std::string shape_text(const at::Tensor& t) {
  std::string s = "[";
  for (std::int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

// A block size bitsandbytes quantizes with: a power of two from 32 to 4096.
bool bnb_blocksize(std::int64_t b) { return b >= 32 && b <= 4096 && (b & (b - 1)) == 0; }

}  // namespace

std::shared_ptr<const PackedLinear> read_bnb4(const std::string& module, std::int64_t out, std::int64_t in,
                                              const std::function<at::Tensor(const std::string&)>& fetch) {
  const std::string w = module + ".weight";
  if (in % 2 != 0)
    throw Error("bitsandbytes 4-bit Linear '" + module + "' has " + std::to_string(in) + " input features; rows of an odd length do not start on a byte");
  auto q = std::make_shared<PackedLinear>();
  q->out = out;
  q->in = in;
  const std::int64_t n = out * in;
  std::string quant_type;
  std::int64_t blocksize = 0;
  const float* table = nullptr;

  // The quant state's JSON: exactly one of the two names.
  const at::Tensor nf4 = fetch(w + ".quant_state.bitsandbytes__nf4"), fp4 = fetch(w + ".quant_state.bitsandbytes__fp4");
  if (nf4.defined() == fp4.defined())
    throw Error("bitsandbytes 4-bit Linear '" + module + "': the checkpoint needs exactly one of '" + w +
                ".quant_state.bitsandbytes__nf4' and '…__fp4' (it has " + (nf4.defined() ? "both" : "neither") + ")");
  const std::string state_name = w + ".quant_state.bitsandbytes__" + (nf4.defined() ? "nf4" : "fp4");
  const at::Tensor state_bytes = (nf4.defined() ? nf4 : fp4).contiguous();
  if (state_bytes.scalar_type() != at::kByte || state_bytes.dim() != 1)
    throw Error("tensor '" + state_name + "' must be a 1-D uint8 tensor of JSON bytes, not " + std::string(c10::toString(state_bytes.scalar_type())) + " " + shape_text(state_bytes));
  const auto* text = static_cast<const char*>(state_bytes.data_ptr());
  const nlohmann::json state = nlohmann::json::parse(text, text + state_bytes.numel(), nullptr, false);
  if (!state.is_object()) throw Error("tensor '" + state_name + "' does not hold a JSON object");
  const auto fail = [&](const std::string& key, const std::string& why) -> Error {
    return Error("tensor '" + state_name + "': key '" + key + "' " + why);
  };
  const auto integer = [&](const std::string& key) {
    if (!state.contains(key) || !state[key].is_number_integer()) throw fail(key, "must be an integer");
    return state[key].get<std::int64_t>();
  };

  if (!state.contains("quant_type") || !state["quant_type"].is_string()) throw fail("quant_type", "must be a string");
  quant_type = state["quant_type"].get<std::string>();
  if (quant_type != "nf4" && quant_type != "fp4")
    throw fail("quant_type", "is '" + quant_type + "', not a 4-bit type bitsandbytes has (nf4, fp4)");
  if (!state_name.ends_with(quant_type)) throw fail("quant_type", "is '" + quant_type + "', which the tensor's name contradicts");
  table = quant_type == "nf4" ? kernels::nf4_table() : kernels::fp4_table();
  blocksize = integer("blocksize");
  if (!bnb_blocksize(blocksize)) throw fail("blocksize", "is " + std::to_string(blocksize) + ", not a power of two from 32 to 4096");
  if (!state.contains("shape") || !state["shape"].is_array() || state["shape"].size() != 2 || !state["shape"][0].is_number_integer() ||
      !state["shape"][1].is_number_integer() || state["shape"][0].get<std::int64_t>() != out || state["shape"][1].get<std::int64_t>() != in)
    throw fail("shape", "is " + (state.contains("shape") ? state["shape"].dump() : std::string("missing")) + ", where config.json implies [" +
                            std::to_string(out) + ", " + std::to_string(in) + "]");
  if (!state.contains("dtype") || !state["dtype"].is_string()) throw fail("dtype", "must be a string");
  const std::int64_t blocks = (n + blocksize - 1) / blocksize;

  // The codes.
  q->codes = fetch(w);
  if (!q->codes.defined()) throw Error("bitsandbytes 4-bit Linear '" + module + "': the checkpoint has no tensor '" + w + "'");
  if (q->codes.scalar_type() != at::kByte || q->codes.numel() != (n + 1) / 2)
    throw Error("tensor '" + w + "' is " + std::string(c10::toString(q->codes.scalar_type())) + " " + shape_text(q->codes) + ", where " +
                std::to_string(out) + " × " + std::to_string(in) + " 4-bit codes take uint8 [" + std::to_string((n + 1) / 2) + ", 1]");
  q->codes = q->codes.contiguous();

  // The code table must be the one the type names (bitsandbytes' kernels decode with their own).
  const at::Tensor map = fetch(w + ".quant_map");
  if (!map.defined()) throw Error("bitsandbytes 4-bit Linear '" + module + "': the checkpoint has no tensor '" + w + ".quant_map'");
  if (map.scalar_type() != at::kFloat || map.numel() != 16)
    throw Error("tensor '" + w + ".quant_map' is " + std::string(c10::toString(map.scalar_type())) + " " + shape_text(map) + ", not float32 [16]");
  const at::Tensor map_c = map.contiguous();
  for (int i = 0; i < 16; ++i)
    if (!(std::abs(map_c.data_ptr<float>()[i] - table[i]) <= 1e-6f))
      throw Error("tensor '" + w + ".quant_map': value " + std::to_string(i) + " is " + std::to_string(map_c.data_ptr<float>()[i]) +
                  ", not the " + quant_type + " code's " + std::to_string(table[i]));

  // absmax, plain or double-quantized.
  const at::Tensor absmax = fetch(w + ".absmax");
  if (!absmax.defined()) throw Error("bitsandbytes 4-bit Linear '" + module + "': the checkpoint has no tensor '" + w + ".absmax'");
  if (absmax.numel() != blocks)
    throw Error("tensor '" + w + ".absmax' has " + std::to_string(absmax.numel()) + " values, where " + std::to_string(n) +
                " elements in blocks of " + std::to_string(blocksize) + " (key 'blocksize' of '" + state_name + "') need " + std::to_string(blocks));
  const at::Tensor nested = fetch(w + ".nested_absmax"), nested_map = fetch(w + ".nested_quant_map");
  if (nested.defined() != nested_map.defined() || nested.defined() != state.contains("nested_offset"))
    throw Error("bitsandbytes 4-bit Linear '" + module + "': a double-quantized state needs '" + w + ".nested_absmax', '" + w +
                ".nested_quant_map' and key 'nested_offset' of '" + state_name + "' together");
  if (!nested.defined()) {
    if (absmax.scalar_type() != at::kFloat)
      throw Error("tensor '" + w + ".absmax' is " + std::string(c10::toString(absmax.scalar_type())) + ", not float32 (no nested state to decode it)");
    q->scale = absmax.contiguous();
  } else {
    const std::int64_t nested_block = integer("nested_blocksize");
    if (!bnb_blocksize(nested_block)) throw fail("nested_blocksize", "is " + std::to_string(nested_block) + ", not a power of two from 32 to 4096");
    if (!state["nested_offset"].is_number() || !std::isfinite(state["nested_offset"].get<double>())) throw fail("nested_offset", "must be a finite number");
    const auto offset = state["nested_offset"].get<float>();
    if (absmax.scalar_type() != at::kByte)
      throw Error("tensor '" + w + ".absmax' is " + std::string(c10::toString(absmax.scalar_type())) + ", not the uint8 codes a double-quantized state holds");
    if (nested_map.scalar_type() != at::kFloat || nested_map.numel() != 256)
      throw Error("tensor '" + w + ".nested_quant_map' is " + std::string(c10::toString(nested_map.scalar_type())) + " " + shape_text(nested_map) + ", not float32 [256]");
    const std::int64_t nested_blocks = (blocks + nested_block - 1) / nested_block;
    if (nested.scalar_type() != at::kFloat || nested.numel() != nested_blocks)
      throw Error("tensor '" + w + ".nested_absmax' is " + std::string(c10::toString(nested.scalar_type())) + " " + shape_text(nested) + ", where " +
                  std::to_string(blocks) + " absmax codes in blocks of " + std::to_string(nested_block) + " need float32 [" + std::to_string(nested_blocks) + "]");
    // dequantize_blockwise(absmax codes, state2) + offset.
    const at::Tensor scale = nested.contiguous().repeat_interleave(nested_block).narrow(0, 0, blocks);
    q->scale = nested_map.contiguous().index_select(0, absmax.reshape({-1}).to(at::kLong)).mul(scale).add(offset).contiguous();
  }
  if (!at::isfinite(q->scale).all().item<bool>()) throw Error("tensor '" + w + ".absmax' holds a value that is not finite");
  q->layout = {table, static_cast<std::size_t>(blocksize), q->scale.data_ptr<float>(), nullptr, 0};
  return q;
}

}  // namespace devicemap
