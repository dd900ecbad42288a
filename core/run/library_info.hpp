#pragma once
// What the running layer was built on, for `devicemap --version` and the About box. Torch-free header.
#include <string>

namespace devicemap {

// "LibTorch 1.13.0 (CPU only)" or "LibTorch 2.1.0 with CUDA, 2 GPUs".
std::string running_library();

}  // namespace devicemap
