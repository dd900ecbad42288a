#pragma once
// The loading progress line `devicemap run` draws on a terminal's standard error.
#include <cstddef>
#include <string>

#include "run/load_options.hpp"

namespace devicemap::cli {

// "loading [########------------]  37%  1.33 GiB / 3.58 GiB  1.21 GB/s  model.layers.3.mlp.up_proj.weight",
// cut to `width` columns (the tensor name is shortened from the left).
std::string progress_line(const LoadProgress& p, double seconds, std::size_t width = 100);

}  // namespace devicemap::cli
