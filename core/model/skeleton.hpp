#pragma once
// The "meta model": the module tree with every parameter and buffer (name, shape, dtype), module
// classes, tied parameters and the no-split classes — what Accelerate gets from init_empty_weights().
// Children are kept in registration order, because placement walks that order.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "format/dtype.hpp"

namespace devicemap {

struct SkeletonTensor {
  std::string name;  // full dotted name
  std::vector<std::int64_t> shape;
  DType dtype = DType::F32;
  bool buffer = false;
  bool persistent = true;  // buffers only: non-persistent buffers are not in checkpoints
  int module = 0;          // owning module
  int tied_to = -1;        // for a tied alias: the canonical tensor (the alias holds no bytes of its own)

  std::uint64_t numel() const;
};

struct SkeletonModule {
  std::string name;  // "" is the root
  std::string cls;   // e.g. "LlamaDecoderLayer"
  int parent = -1;
  std::vector<int> children;  // modules, registration order
  std::vector<int> params;    // direct parameters, registration order
  std::vector<int> buffers;   // direct buffers
  bool is_layer = false;      // a repeated decoder block (carries a KV cache)
};

class Skeleton {
 public:
  Skeleton();  // just the root

  std::vector<SkeletonModule> modules;  // modules[0] is the root
  std::vector<SkeletonTensor> tensors;
  std::vector<std::string> no_split_module_classes;
  nlohmann::json config = nlohmann::json::object();  // config.json values when known
  std::string model_type;                            // "llama", …, or "" when unknown
  std::vector<std::string> warnings;                 // e.g. "unknown model_type …, generic skeleton"

  // Adds (or finds) a module by full name, creating missing ancestors; new children are appended.
  int ensure_module(std::string_view name);
  // Adds a parameter or buffer to the module its name implies. Throws on a duplicate name.
  int add_tensor(SkeletonTensor t);
  // Ties two tensors (and the groups they are already in). The one absent is created (last, in its
  // module) as a copy of the other; when both exist, the canonical tensor of the group is the one met
  // first in module order, whichever order the pair is given in, as PyTorch's deduplication of
  // named_parameters() (and so Accelerate) sees it. Throws when neither exists or their shapes differ.
  void tie(std::string_view canonical, std::string_view alias);

  int find_module(std::string_view name) const;  // -1 when absent
  int find_tensor(std::string_view name) const;  // -1 when absent

  // Tie groups [canonical, alias…] by name, as Accelerate's find_tied_parameters (each sorted).
  std::vector<std::vector<std::string>> tie_groups() const;

  std::uint64_t total_bytes() const;  // stored dtypes, aliases counted once

  // Skeleton JSON (PLANNER.md): params, buffers, modules, module_classes, tied, no_split_module_classes,
  // config. Unknown top-level keys are ignored. Throws devicemap::Error naming `source` and the key.
  static Skeleton from_json(const nlohmann::json& j, std::string_view source);
  nlohmann::json to_json() const;

 private:
  std::unordered_map<std::string, int> module_index_;
  std::unordered_map<std::string, int> tensor_index_;
};

}  // namespace devicemap
