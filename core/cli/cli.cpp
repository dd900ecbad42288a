#include "cli/cli.hpp"

#include <array>
#include <iostream>
#include <string_view>

#include "cli/commands.hpp"
#include "error.hpp"

namespace devicemap::cli {
namespace {

struct Command {
  std::string_view name;
  std::string_view summary;
  int (*run)(Invocation&);
};

constexpr Command kCommands[] = {
    {"plan", "plan where every layer goes (device_map.json)", plan_command},
    {"check", "check a device_map.json: coverage, fit, speed, what auto would move", check_command},
    {"devices", "list the GPUs, CPU RAM and disk of this machine", devices_command},
    {"inspect", "describe a checkpoint: architecture, tensors, sizes, ties", inspect_command},
    {"tokenize", "text to token ids and back", tokenize_command},
#ifdef DEVICEMAP_HAVE_RUN_COMMANDS
    {"run", "load a model by a device map and generate text", run_command},
    {"make-model", "write a random checkpoint of any size", make_model_command},
#endif
    {"bench", "measure planning, loading and generation", bench_command},
};

void usage(std::ostream& os) {
  os << "usage: devicemap COMMAND [ARGS]\n\ncommands:\n";
  for (const auto& c : kCommands) os << "  " << c.name << std::string(12 - c.name.size(), ' ') << c.summary << "\n";
  os << "\n'devicemap COMMAND --help' describes one command; 'devicemap --version' the build.\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  if (argc < 2) {
    usage(std::cerr);
    return 2;
  }
  const std::string_view name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    usage(std::cout);
    return 0;
  }
  if (name == "--version" || name == "version") {
    print_version(std::cout);
    return 0;
  }
  for (const auto& c : kCommands) {
    if (c.name != name) continue;
    Invocation inv{{argv + 2, argv + argc}, std::cout, std::cerr};
    try {
      return c.run(inv);
    } catch (const Error& e) {
      std::cout.flush();
      std::cerr << "devicemap " << name << ": " << e.what() << "\n";
      return 1;
    } catch (const std::exception& e) {
      std::cout.flush();
      std::cerr << "devicemap " << name << ": internal error: " << printable(e.what()) << "\n";
      return 3;
    }
  }
  std::cerr << "devicemap: unknown command '" << name << "'\n";
  usage(std::cerr);
  return 2;
}

}  // namespace devicemap::cli
