#include "run/weights.hpp"

#include "error.hpp"
#include "run/cpu_cast.hpp"

namespace devicemap {

c10::Device ExecutionPolicy::execution_device(const Device& placement) const {
  if (placement.is_gpu()) return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(placement.index));
  return main;
}

void Weights::add(const std::string& name, StoredTensor tensor) {
  if (contains(name)) throw Error("tensor '" + name + "' is loaded twice");
  tensors_.emplace(name, std::move(tensor));
}

void Weights::tie(const std::string& name, const std::string& target) {
  if (tensors_.find(target) == tensors_.end())
    throw Error("tensor '" + name + "' is tied to '" + target + "', which is not loaded");
  ties_.emplace(name, target);
}

bool Weights::contains(std::string_view name) const {
  return tensors_.find(name) != tensors_.end() || ties_.find(name) != ties_.end();
}

const StoredTensor& Weights::stored(std::string_view name) const {
  if (auto tie = ties_.find(name); tie != ties_.end()) name = tie->second;
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error("tensor '" + std::string(name) + "' is not loaded");
  return it->second;
}

namespace {

c10::ScalarType dtype_on(const StoredTensor& s, const ExecutionPolicy& policy, const c10::Device& device) {
  const at::Tensor& t = s.tensor;
  if ((s.as_stored && device.is_cpu()) || s.keep_dtype) return t.scalar_type();
  return at::isFloatingType(t.scalar_type()) ? policy.compute_dtype(device) : t.scalar_type();
}

}  // namespace

bool Weights::needs_transfer(std::string_view name, const c10::Device& device) const {
  const StoredTensor& s = stored(name);
  return s.tensor.device() != device || s.tensor.scalar_type() != dtype_on(s, policy_, device);
}

at::Tensor Weights::fetch(std::string_view name, const c10::Device& device) const {
  const StoredTensor& s = stored(name);
  const at::Tensor& t = s.tensor;
  // to() returns the tensor itself when device and dtype already match: resident weights cost nothing.
  const auto dtype = dtype_on(s, policy_, device);
  if (t.is_cpu() && device.is_cpu()) return cast_on_cpu(t, dtype);  // a "disk" tensor run in another dtype
  return t.to(device, dtype);
}

at::Tensor Weights::fetch_if_present(std::string_view name, const c10::Device& device) const {
  return contains(name) ? fetch(name, device) : at::Tensor();
}

void Weights::for_each(const std::function<void(const std::string&, const StoredTensor&)>& f) const {
  for (const auto& [name, t] : tensors_) f(name, t);
}

std::optional<c10::ScalarType> scalar_type_of(DType dtype) {
  switch (dtype) {
    case DType::F64: return c10::kDouble;
    case DType::F32: return c10::kFloat;
    case DType::F16: return c10::kHalf;
    case DType::BF16: return c10::kBFloat16;
    case DType::I64: return c10::kLong;
    case DType::I32: return c10::kInt;
    case DType::I16: return c10::kShort;
    case DType::I8: return c10::kChar;
    case DType::U8: return c10::kByte;
    case DType::Bool: return c10::kBool;
    case DType::F8_E4M3:
    case DType::F8_E5M2:
    case DType::U16:
    case DType::U32:
    case DType::U64: return std::nullopt;
  }
  return std::nullopt;
}

DType dtype_of(c10::ScalarType type) {
  switch (type) {
    case c10::kDouble: return DType::F64;
    case c10::kFloat: return DType::F32;
    case c10::kHalf: return DType::F16;
    case c10::kBFloat16: return DType::BF16;
    case c10::kLong: return DType::I64;
    case c10::kInt: return DType::I32;
    case c10::kShort: return DType::I16;
    case c10::kChar: return DType::I8;
    case c10::kByte: return DType::U8;
    case c10::kBool: return DType::Bool;
    default: throw Error(std::string("LibTorch dtype ") + c10::toString(type) + " has no checkpoint equivalent");
  }
}

void Weights::add_packed(const std::string& module, std::shared_ptr<const PackedLinear> linear) {
  packed_[module] = std::move(linear);
}

const PackedLinear* Weights::packed(std::string_view module) const {
  const auto it = packed_.find(module);
  return it == packed_.end() ? nullptr : it->second.get();
}

void Weights::for_each_packed(const std::function<void(const std::string&, const PackedLinear&)>& f) const {
  for (const auto& [name, p] : packed_) f(name, *p);
}

void Weights::release(std::string_view name) {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error("tensor '" + std::string(name) + "' is not loaded");
  it->second.tensor = at::empty({0}, it->second.tensor.options());
  it->second.aliases_file = false;
}

}  // namespace devicemap
