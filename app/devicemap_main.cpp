// The `devicemap` command line: every subcommand lives in core/cli.
#include "cli/cli.hpp"

int main(int argc, char** argv) { return devicemap::cli::main(argc, argv); }
