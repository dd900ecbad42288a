#pragma once
// "model.layers.0", "model.layers.1", …, "model.layers.39" → "model.layers.0-39": module lists for people.
#include <string>
#include <vector>

namespace devicemap {

std::vector<std::string> compress_name_ranges(const std::vector<std::string>& names);

}  // namespace devicemap
