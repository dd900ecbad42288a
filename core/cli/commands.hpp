#pragma once
// One function per subcommand; cli.cpp maps names to them.
#include "cli/cli.hpp"

namespace devicemap::cli {

int plan_command(Invocation& inv);
int check_command(Invocation& inv);
int devices_command(Invocation& inv);
int inspect_command(Invocation& inv);
int bench_command(Invocation& inv);
int tokenize_command(Invocation& inv);
void print_version(std::ostream& out);  // devicemap --version
#ifdef DEVICEMAP_HAVE_RUN_COMMANDS
int run_command(Invocation& inv);
int make_model_command(Invocation& inv);
#endif

}  // namespace devicemap::cli
