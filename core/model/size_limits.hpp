#pragma once
// Bounds on the sizes a config.json may claim, far above any model there is, checked before anything is
// built from them: a config that says num_hidden_layers is 10⁹ is refused by name instead of allocating
// a billion layers' worth of plan (or failing as "std::bad_alloc").
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace devicemap {

// Throws devicemap::Error naming `source`, the key, its value and the bound, for the first size key
// (hidden_size, num_hidden_layers, vocab_size, experts, …) beyond its bound, or when the sizes together
// imply more than 10¹⁴ parameters. Keys that are absent or not integers are left to the readers.
void check_config_sizes(const nlohmann::json& config, std::string_view source = "config.json");

}  // namespace devicemap
