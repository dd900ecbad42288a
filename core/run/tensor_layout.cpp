// The runtime's tensors are the architecture table's (model/architecture_tensors.hpp), evaluated with the
// values this runtime read from config.json, then shaped for loading: a GPTQ checkpoint's block Linears
// become their packed tensors, ties point at their canonical tensor, matrices read as stored.
#include "run/tensor_layout.hpp"

#include <set>

#include "error.hpp"
#include "model/architecture.hpp"
#include "model/architecture_tensors.hpp"

namespace devicemap {
namespace {

// One tensor of a packed layer.
void add_part(std::vector<TensorSpec>& out, std::string name, std::vector<std::int64_t> shape, bool optional) {
  TensorSpec t;
  t.name = std::move(name);
  t.shape = std::move(shape);
  t.optional = optional;
  out.push_back(std::move(t));
}

// A GPTQ Linear: packed weights and zeros, scales per group and output, the group of each input row.
void add_gptq_linear(std::vector<TensorSpec>& out, const std::string& name, std::int64_t out_features,
                     std::int64_t in_features, bool bias, const GptqConfig& q) {
  const std::int64_t pack = 32 / q.bits;
  const std::int64_t groups = q.group_size < 0 ? 1 : (in_features + q.group_size - 1) / q.group_size;
  const auto add = [&](const char* leaf, std::vector<std::int64_t> shape, bool optional) { add_part(out, name + leaf, std::move(shape), optional); };
  add(".qweight", {in_features / pack, out_features}, false);
  add(".qzeros", {groups, out_features / pack}, false);
  add(".scales", {groups, out_features}, false);
  add(".g_idx", {in_features}, true);
  // AutoGPTQ saves a bias only where the layer had one; when present, it is used.
  add(".bias", {out_features}, !bias);
}

// An AWQ Linear (GEMM layout): words of eight outputs per input, zeros alike, scales per group.
void add_awq_linear(std::vector<TensorSpec>& out, const std::string& name, std::int64_t out_features, std::int64_t in_features,
                    bool bias, const AwqConfig& q) {
  const std::int64_t groups = (in_features + q.group_size - 1) / q.group_size;
  const auto add = [&](const char* leaf, std::vector<std::int64_t> shape, bool optional) { add_part(out, name + leaf, std::move(shape), optional); };
  add(".qweight", {in_features, out_features / 8}, false);
  add(".qzeros", {groups, out_features / 8}, false);
  add(".scales", {groups, out_features}, false);
  add(".bias", {out_features}, !bias);
}

ArchitectureValues values_of(const ModelConfig& c) {
  ArchitectureValues v;
  auto& s = v.symbols;
  s["H"] = c.hidden_size;
  s["I"] = c.intermediate_size;
  s["V"] = c.vocab_size;
  s["NH"] = c.num_heads;
  s["KV"] = c.num_kv_heads;
  s["D"] = c.head_dim;
  s["P"] = c.max_position_embeddings;
  s["L"] = c.num_layers;
  s["E"] = c.moe ? c.moe->experts : 0;
  s["IE"] = c.moe ? c.moe->expert_intermediate : c.intermediate_size;
  s["IS"] = c.moe && c.moe->shared_intermediate > 0 ? c.moe->shared_intermediate : c.intermediate_size;
  v.attention_bias = c.qkv_bias;
  v.mlp_bias = c.mlp_bias;
  v.tied = c.tie_word_embeddings;
  if (c.moe) v.sparse_layer = [&c](std::int64_t i) { return c.sparse_layer(i); };
  return v;
}

// bitsandbytes 4-bit (run/bnb4.hpp): the packed codes, and the quant state beside them, whose shapes
// follow the block sizes its JSON holds.
void add_bnb4_linear(std::vector<TensorSpec>& out, const std::string& module, std::int64_t out_features, std::int64_t in_features) {
  TensorSpec codes;
  codes.name = module + ".weight";
  codes.shape = {(out_features * in_features + 1) / 2, 1};
  out.push_back(std::move(codes));
  const struct {
    const char* suffix;
    bool optional;
  } state[] = {{".weight.absmax", false},
               {".weight.quant_map", false},
               {".weight.nested_absmax", true},
               {".weight.nested_quant_map", true},
               {".weight.quant_state.bitsandbytes__nf4", true},
               {".weight.quant_state.bitsandbytes__fp4", true}};
  for (const auto& [suffix, optional] : state) {
    TensorSpec s;
    s.name = module + suffix;
    s.optional = optional;
    s.keep_dtype = true;
    s.shape_checked_later = true;
    out.push_back(std::move(s));
  }
}

}  // namespace

std::vector<TensorSpec> expected_tensors(const ModelConfig& config) {
  const Architecture* arch = config.architecture ? config.architecture : find_architecture(config.model_type);
  if (!arch) throw Error("model_type '" + config.model_type + "' has no row in the architecture table");
  const std::string layers = std::string(arch->layers_path) + ".";
  std::vector<TensorSpec> out;
  const ArchitectureValues values = values_of(config);
  auto rows = architecture_tensors(*arch, values);
  std::set<std::string, std::less<>> names;
  for (const auto& t : rows) names.insert(t.name);
  // bitsandbytes leaves llm_int8_skip_modules, else the output head, unconverted (the tied embedding
  // transformers also lists is no Linear).
  const std::vector<std::string> bnb_kept =
      config.bnb && !config.bnb->skip_modules.empty() ? config.bnb->skip_modules : std::vector<std::string>{"lm_head"};
  for (auto& t : rows) {
    const bool linear = t.module_class == "Linear", weight = t.name.ends_with(".weight");
    const std::string module = t.name.substr(0, t.name.rfind('.'));
    const std::string leaf = module.substr(module.rfind('.') + 1);
    // GPTQ quantizes the blocks' Linears but not a router (gate, shared_expert_gate).
    const bool packed_words = config.gptq || config.awq;
    if (packed_words && linear && weight && module.starts_with(layers) && leaf != "gate" && leaf != "shared_expert_gate") {
      if (config.gptq)
        add_gptq_linear(out, module, t.shape.at(0), t.shape.at(1), names.count(module + ".bias") > 0, *config.gptq);
      else
        add_awq_linear(out, module, t.shape.at(0), t.shape.at(1), names.count(module + ".bias") > 0, *config.awq);
      continue;
    }
    if (packed_words && linear && t.name.ends_with(".bias") && module.starts_with(layers) && leaf != "gate" && leaf != "shared_expert_gate")
      continue;  // taken above
    // bitsandbytes 8-bit: every Linear but the unconverted ones (lm_head, llm_int8_skip_modules) holds
    // int8 weights and their per-row absmax.
    if (config.bnb && config.bnb->method == Quantization::Method::Bnb4 && linear && weight && bnb_converts(module, bnb_kept)) {
      add_bnb4_linear(out, module, t.shape.at(0), t.shape.at(1));
      continue;
    }
    if (config.bnb && linear && weight && bnb_converts(module, bnb_kept)) {
      TensorSpec w;
      w.name = t.name;
      w.shape = t.shape;
      out.push_back(std::move(w));
      TensorSpec scb;
      scb.name = module + ".SCB";
      scb.shape = {t.shape.at(0)};
      scb.keep_dtype = true;  // float32 as bitsandbytes keeps it, whatever the compute dtype
      out.push_back(std::move(scb));
      TensorSpec format;  // newer bitsandbytes saves the weight's layout beside it; it must be row-major
      format.name = module + ".weight_format";
      format.optional = true;
      out.push_back(std::move(format));
      continue;
    }
    TensorSpec spec;
    spec.name = std::move(t.name);
    spec.shape = std::move(t.shape);
    spec.tied_to = std::move(t.tied_to);
    for (const auto& d : t.dims) spec.dims.push_back(explain_dimension(d, values, config.family == ModelFamily::Gpt2));
    // Linear weights and embeddings are read by the decode kernels (or looked up by row) as stored.
    spec.read_as_stored = weight && (linear || t.module_class == "Embedding" || t.module_class.ends_with("ScaledWordEmbedding"));
    spec.block_linear = linear && weight && module.starts_with(layers) && leaf != "gate" && leaf != "shared_expert_gate" &&
                        spec.shape.size() == 2;
    out.push_back(std::move(spec));
  }
  return out;
}

std::map<std::string, std::pair<std::int64_t, std::int64_t>, std::less<>> linear_shapes(const ModelConfig& config) {
  ModelConfig plain = config;
  plain.bnb.reset();
  plain.gptq.reset();
  plain.awq.reset();
  std::map<std::string, std::pair<std::int64_t, std::int64_t>, std::less<>> out;
  for (const auto& t : expected_tensors(plain))
    if (t.name.ends_with(".weight") && t.shape.size() == 2) out[t.name.substr(0, t.name.size() - 7)] = {t.shape[0], t.shape[1]};
  return out;
}

std::string block_name(const ModelConfig& config, std::int64_t index) {
  return (config.family == ModelFamily::Gpt2 ? "transformer.h." : "model.layers.") + std::to_string(index);
}

std::string alternative_checkpoint_name(const ModelConfig& config, const std::string& name) {
  const std::string prefix = "transformer.";
  if (config.family == ModelFamily::Gpt2 && name.rfind(prefix, 0) == 0) return name.substr(prefix.size());
  return {};
}

}  // namespace devicemap
