#pragma once
// A word for a POSIX shell script, in single quotes: the launch scripts the cluster export writes.
#include <string>

namespace devicemap {

inline std::string shell_quoted(const std::string& s) {
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace devicemap
