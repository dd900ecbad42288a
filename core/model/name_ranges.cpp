#include "model/name_ranges.hpp"

#include <cctype>
#include <optional>

namespace devicemap {
namespace {

// Splits "a.b.12" into ("a.b.", 12); nullopt when the last part is not a number.
std::optional<std::pair<std::string, long long>> numbered(const std::string& name) {
  const auto dot = name.rfind('.');
  const std::string tail = dot == std::string::npos ? name : name.substr(dot + 1);
  if (tail.empty() || tail.size() > 12) return std::nullopt;
  for (char c : tail)
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  return std::pair{name.substr(0, name.size() - tail.size()), std::stoll(tail)};
}

}  // namespace

std::vector<std::string> compress_name_ranges(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < names.size();) {
    const auto first = numbered(names[i]);
    std::size_t j = i + 1;
    if (first) {
      while (j < names.size()) {
        const auto next = numbered(names[j]);
        if (!next || next->first != first->first || next->second != first->second + static_cast<long long>(j - i)) break;
        ++j;
      }
    }
    if (j - i >= 2)
      out.push_back(first->first + std::to_string(first->second) + "-" + std::to_string(first->second + static_cast<long long>(j - i) - 1));
    else
      out.push_back(names[i].empty() ? "(whole model)" : names[i]);
    i = j;
  }
  return out;
}

}  // namespace devicemap
