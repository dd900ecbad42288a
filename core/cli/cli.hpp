#pragma once
// The `devicemap` command line. Each subcommand has its own file (plan_command.cpp, …) and registers
// itself in the table of cli.cpp.
#include <iosfwd>
#include <string>
#include <vector>

namespace devicemap::cli {

int main(int argc, char** argv);

// Arguments after the subcommand name, and the streams a command writes to.
struct Invocation {
  std::vector<std::string> args;
  std::ostream& out;
  std::ostream& err;
};

}  // namespace devicemap::cli
