#pragma once
// One exception type for every user-facing failure. Its message names the file, key or tensor and says
// what is wrong, so a command line can print it as one line and a dialog can show it as it is.
#include <stdexcept>
#include <string>

namespace devicemap {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace devicemap
