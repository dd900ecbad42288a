#pragma once
// Which code runs a CPU decode step: the decode kernels (kernels/, the default) or LibTorch's own
// products, so that a benchmark can compare both in one run. Torch-free.
namespace devicemap {

void use_decode_kernels(bool on);
bool decode_kernels_in_use();

}  // namespace devicemap
