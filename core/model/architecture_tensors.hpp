#pragma once
// The architecture table's rows evaluated for one configuration: every module and every tensor a model
// of that type registers, with its shape, in registration order. The planner builds config-only skeletons
// from this; the runtime derives the tensors it loads from it, so both read one description.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/architecture.hpp"

namespace devicemap {

// The values a row's shape expressions and conditions read.
struct ArchitectureValues {
  // H hidden, I intermediate, V vocab, NH heads, KV key/value heads, D head dim, P positions, L layers,
  // E experts, IE an expert's intermediate size, IS the shared experts' (and the architecture's own).
  std::map<std::string, std::int64_t, std::less<>> symbols;
  bool attention_bias = false;  // '?' tensors
  bool mlp_bias = false;        // '?mlp' tensors
  bool tied = false;            // '!' tensors are left out (listed as ties)
  std::function<bool(std::int64_t)> sparse_layer;  // the layers whose MLP is routed experts; empty: none
};

// The values as the planner reads them from config.json: lenient (a missing key takes the config
// class's default), since a plan needs only the shapes.
ArchitectureValues values_from_config(const Architecture& arch, const nlohmann::json& config);

struct ArchitectureModule {
  std::string path;  // "" for the root
  std::string cls;   // with the class prefix filled in
};

struct ArchitectureTensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::string module_class;  // "Linear", "Embedding", "Conv1D", "LlamaRMSNorm", …
  std::string tied_to;       // a tied alias: the canonical tensor it shares (not stored itself)
  std::vector<std::string> dims;  // each dimension's shape expression ("KV*D")
};

std::vector<ArchitectureModule> architecture_modules(const Architecture& arch, const ArchitectureValues& values);
std::vector<ArchitectureTensor> architecture_tensors(const Architecture& arch, const ArchitectureValues& values);
// Buffers transformers creates itself (rotary frequencies, masks), expanded over layers.
struct ArchitectureBuffer {
  std::string name;
  std::vector<std::int64_t> shape;
  DType dtype;
  bool persistent;
};
std::vector<ArchitectureBuffer> architecture_buffers(const Architecture& arch, const ArchitectureValues& values);

// A dimension's expression in config.json's words: "num_key_value_heads (4) * head_dim (128) = 512",
// for messages about a checkpoint that disagrees with its config. `gpt2_keys`: GPT-2's key names.
std::string explain_dimension(std::string_view expr, const ArchitectureValues& values, bool gpt2_keys = false);

// Evaluates a shape expression ("NH*D,H"): integers, symbols, + - * / and parentheses.
std::vector<std::int64_t> eval_shape(std::string_view spec, const std::map<std::string, std::int64_t, std::less<>>& symbols);

}  // namespace devicemap
