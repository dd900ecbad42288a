#include "run/library_info.hpp"

#include <ATen/Context.h>
#include <torch/version.h>

namespace devicemap {

std::string running_library() {
  std::string s = "LibTorch " TORCH_VERSION;
  if (!at::hasCUDA()) return s + " (CPU only)";
  const auto gpus = at::getNumGPUs();
  return s + " with CUDA, " + std::to_string(gpus) + (gpus == 1 ? " GPU" : " GPUs");
}

}  // namespace devicemap
