#pragma once
// Memory sizes as Accelerate's convert_file_size_to_int reads them: "10GiB" = 10·2^30, "20GB" = 20·10^9,
// "512MB", "1.5GiB", KB/KiB/MiB/TB/TiB, plain digits = bytes; a lower-case final "b" means bits.
#include <cstdint>
#include <string>
#include <string_view>

namespace devicemap {

// Throws devicemap::Error quoting `text` when it is not a size.
std::uint64_t parse_size(std::string_view text);

// "15.69 GiB", "512.00 MiB", "12 B": binary units, two decimals, for people.
std::string format_size(std::uint64_t bytes);

// The shortest Accelerate-readable string that parses back to exactly `bytes` when one exists
// ("10GiB", "512MB"), else the plain byte count.
std::string format_size_exact(std::uint64_t bytes);

}  // namespace devicemap
