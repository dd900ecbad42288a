#pragma once
// The tensors each model family's forward pass reads, with the shapes its config.json implies, named as
// in the module tree (the names device maps use): the architecture table's rows (the planner's own
// description, model/architecture_tensors.hpp) evaluated with this runtime's reading of config.json.
// The loader loads exactly these and checks their shapes.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "run/model_config.hpp"

namespace devicemap {

struct TensorSpec {
  std::string name;                  // module-tree name, e.g. "model.layers.0.self_attn.q_proj.weight"
  std::vector<std::int64_t> shape;   // as stored in the checkpoint
  std::string tied_to;               // non-empty: shares that tensor's weights and is not loaded itself
  bool optional = false;             // used when the checkpoint has it (a GPTQ layer's bias, g_idx)
  // An [out, in] Linear weight or an embedding: the CPU reads it in its stored dtype (the decode
  // kernels convert in registers; a lookup takes a row), so a float32 CPU keeps it as the file has it.
  bool read_as_stored = false;
  // Quantization state (bitsandbytes' absmax and code tables): kept and fetched in the stored dtype on
  // every device, never cast to the compute dtype.
  bool keep_dtype = false;
  // Shapes the loader cannot know (they follow a block size stored beside them): checked by the reader
  // of the quantization state instead.
  bool shape_checked_later = false;
  // A decoder block's Linear weight (not a router): what quantization on load converts.
  bool block_linear = false;
  // Each dimension in config.json's words ("num_key_value_heads (4) × head_dim (128) = 512"), for the
  // message when the checkpoint disagrees; empty for GPTQ's packed tensors.
  std::vector<std::string> dims;
};

// Every parameter the forward pass reads, in execution order (embeddings, blocks, final norm, head).
std::vector<TensorSpec> expected_tensors(const ModelConfig& config);

// The [out, in] of every 2-D weight by module name ("model.layers.0.mlp.down_proj"), as an unquantized
// checkpoint of the same config holds it: the shapes quantized tensors (codes, words, states) stand for.
std::map<std::string, std::pair<std::int64_t, std::int64_t>, std::less<>> linear_shapes(const ModelConfig& config);

// "model.layers.3" / "transformer.h.3": the module of block `index`.
std::string block_name(const ModelConfig& config, std::int64_t index);

// The name a checkpoint may use instead of a module-tree name: GPT-2 checkpoints saved from GPT2Model
// leave out the "transformer." prefix. Empty when there is no alternative.
std::string alternative_checkpoint_name(const ModelConfig& config, const std::string& name);

}  // namespace devicemap
