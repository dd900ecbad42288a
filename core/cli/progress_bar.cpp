#include "cli/progress_bar.hpp"

#include <algorithm>
#include <cstdio>

#include "plan/units.hpp"

namespace devicemap::cli {

std::string progress_line(const LoadProgress& p, double seconds, std::size_t width) {
  const double fraction = p.bytes_total ? std::min(1.0, double(p.bytes_done) / double(p.bytes_total))
                                        : p.tensors_total ? double(p.tensors_done) / double(p.tensors_total) : 0;
  constexpr int kBar = 24;
  const int filled = static_cast<int>(fraction * kBar);
  std::string line = "loading [" + std::string(static_cast<std::size_t>(filled), '#') +
                     std::string(static_cast<std::size_t>(kBar - filled), '-') + "] ";
  char buf[96];
  std::snprintf(buf, sizeof buf, "%3d%%  ", static_cast<int>(fraction * 100));
  line += buf;
  line += format_size(p.bytes_done) + " / " + format_size(p.bytes_total);
  if (seconds > 0) {
    std::snprintf(buf, sizeof buf, "  %.3g GB/s", double(p.bytes_done) / seconds / 1e9);
    line += buf;
  }
  line += "  ";
  if (line.size() >= width) return line.substr(0, width);
  std::string tensor(p.tensor);
  const std::size_t room = width - line.size();
  if (tensor.size() > room) tensor = room > 3 ? "..." + tensor.substr(tensor.size() - (room - 3)) : "";
  return line + tensor;
}

}  // namespace devicemap::cli
