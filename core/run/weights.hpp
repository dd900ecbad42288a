#pragma once
// Internal to the running layer (includes ATen). The loaded parameters by module-tree name, each kept
// where the device map put it, and fetched onto the device that executes it in that device's compute
// dtype. Resident tensors come back as they are (no copy); tensors in RAM or left in the checkpoint's
// mapping for a GPU, or of another dtype, are copied just in time — the same call serves every placement,
// so a prefetcher can later call it ahead of time.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "format/dtype.hpp"
#include "plan/device.hpp"

namespace devicemap {

// Where blocks execute and in which dtype. A GPU executes what it holds; what the map puts on "cpu" or
// "disk" executes on the main device (the map's first GPU, else the CPU), as Accelerate's offload hooks do.
struct ExecutionPolicy {
  c10::Device main{c10::kCPU};
  c10::ScalarType gpu_dtype = c10::kFloat;
  c10::ScalarType cpu_dtype = c10::kFloat;

  c10::Device execution_device(const Device& placement) const;
  c10::ScalarType compute_dtype(const c10::Device& device) const { return device.is_cpu() ? cpu_dtype : gpu_dtype; }
};

struct PackedLinear;  // run/packed_linear.hpp

struct StoredTensor {
  at::Tensor tensor;    // on its GPU, in RAM, or aliasing the checkpoint's mapping
  Device placement;     // as the device map says
  bool aliases_file = false;  // zero copy: the bytes are the checkpoint file's pages
  bool as_stored = false;     // the CPU reads it in its own dtype, not the compute dtype (a 16-bit matrix)
  bool keep_dtype = false;    // every device reads it in its own dtype (quantization state)
};

class Weights {
 public:
  explicit Weights(ExecutionPolicy policy) : policy_(policy) {}

  const ExecutionPolicy& policy() const { return policy_; }
  void add(const std::string& name, StoredTensor tensor);
  // `name` shares the weights of `target` (tie_word_embeddings); `target` must be added already.
  void tie(const std::string& name, const std::string& target);

  bool contains(std::string_view name) const;
  // Throws devicemap::Error naming the tensor when absent. Follows ties.
  const StoredTensor& stored(std::string_view name) const;
  c10::Device execution_device(std::string_view name) const { return policy_.execution_device(stored(name).placement); }

  // Whether fetch() must copy or cast (the tensor lives elsewhere or in another dtype).
  bool needs_transfer(std::string_view name, const c10::Device& device) const;
  // The tensor on `device`, floating tensors in that device's compute dtype.
  at::Tensor fetch(std::string_view name, const c10::Device& device) const;
  // Same, or an undefined tensor when absent (optional biases).
  at::Tensor fetch_if_present(std::string_view name, const c10::Device& device) const;

  void for_each(const std::function<void(const std::string&, const StoredTensor&)>& f) const;

  // A Linear's packed form for the decode kernels (run/packed_linear.hpp), by module name.
  void add_packed(const std::string& module, std::shared_ptr<const PackedLinear> linear);
  const PackedLinear* packed(std::string_view module) const;
  void for_each_packed(const std::function<void(const std::string&, const PackedLinear&)>& f) const;
  // Frees a tensor whose data now lives in a packed form: it stays listed with its placement (so that
  // execution_device() still answers), holding no bytes.
  void release(std::string_view name);
  std::size_t size() const { return tensors_.size(); }
  std::size_t tied() const { return ties_.size(); }

 private:
  ExecutionPolicy policy_;
  std::map<std::string, StoredTensor, std::less<>> tensors_;
  std::map<std::string, std::string, std::less<>> ties_;
  std::map<std::string, std::shared_ptr<const PackedLinear>, std::less<>> packed_;
};

// LibTorch's element type for a checkpoint dtype; nullopt for those LibTorch cannot hold (float8 and the
// unsigned types wider than a byte in LibTorch 1.13).
std::optional<c10::ScalarType> scalar_type_of(DType dtype);
DType dtype_of(c10::ScalarType type);

}  // namespace devicemap
