#include "plan/units.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "error.hpp"

namespace devicemap {
namespace {

struct Unit {
  std::string_view suffix;  // upper-case
  double scale;
  bool decimal;  // decimal units honour the "b" = bits rule
};

// Longest suffixes first so "GIB" wins over "B"-less matches; order as Accelerate tests them.
constexpr std::array<Unit, 8> kUnits{{
    {"TIB", 1099511627776.0, false},
    {"GIB", 1073741824.0, false},
    {"MIB", 1048576.0, false},
    {"KIB", 1024.0, false},
    {"TB", 1e12, true},
    {"GB", 1e9, true},
    {"MB", 1e6, true},
    {"KB", 1e3, true},
}};

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// Python's float(): optional sign, digits with an optional point and exponent, surrounding blanks.
bool parse_python_float(std::string_view s, double& out) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty() || s.front() == '+') return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(out);
}

[[noreturn]] void bad(std::string_view text) {
  throw Error("'" + std::string(text) +
              "' is not a memory size: use bytes (e.g. 1073741824) or a number with a unit (e.g. \"10GiB\", "
              "\"20GB\", \"512MB\")");
}

}  // namespace

std::uint64_t parse_size(std::string_view text) {
  std::string_view t = text;
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
  if (t.empty()) bad(text);
  if (std::all_of(t.begin(), t.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    std::uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || ptr != t.data() + t.size()) bad(text);
    return v;
  }
  const std::string up = upper(t);
  for (const auto& u : kUnits) {
    if (!up.ends_with(u.suffix)) continue;
    double number = 0;
    if (!parse_python_float(t.substr(0, t.size() - u.suffix.size()), number)) bad(text);
    const double bytes = std::trunc(number * u.scale);  // Python's int() truncates toward zero
    if (bytes < 0 || bytes >= 1.8e19) bad(text);
    auto value = static_cast<std::uint64_t>(bytes);
    if (u.decimal && t.back() == 'b') value /= 8;  // "5Gb" means gigabits
    return value;
  }
  bad(text);
}

std::string format_size(std::uint64_t bytes) {
  static constexpr std::array<const char*, 5> names{"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  std::size_t i = 0;
  while (v >= 1024.0 && i + 1 < names.size()) {
    v /= 1024.0;
    ++i;
  }
  char buf[48];
  if (i == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.2f %s", v, names[i]);
  return buf;
}

std::string format_size_exact(std::uint64_t bytes) {
  static constexpr std::array<std::pair<std::uint64_t, const char*>, 8> units{{{1ull << 40, "TiB"},
                                                                               {1000000000000ull, "TB"},
                                                                               {1ull << 30, "GiB"},
                                                                               {1000000000ull, "GB"},
                                                                               {1ull << 20, "MiB"},
                                                                               {1000000ull, "MB"},
                                                                               {1ull << 10, "KiB"},
                                                                               {1000ull, "KB"}}};
  if (bytes == 0) return "0";
  for (auto [scale, name] : units)
    if (bytes % scale == 0) return std::to_string(bytes / scale) + name;
  return std::to_string(bytes);
}

}  // namespace devicemap
