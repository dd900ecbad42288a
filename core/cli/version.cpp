// devicemap --version: the program's version (from CMake) and what it runs on.
#include <ostream>
#include <string>

#include "cli/commands.hpp"
#include "devicemap_version.hpp"
#include "kernels/matvec.hpp"
#ifdef DEVICEMAP_HAVE_RUN_COMMANDS
#include "run/library_info.hpp"
#endif

namespace devicemap::cli {

void print_version(std::ostream& out) {
  out << "devicemap " << DEVICEMAP_VERSION << "\n";
#ifdef DEVICEMAP_HAVE_RUN_COMMANDS
  out << "running layer: " << running_library() << "\n";
#else
  out << "running layer: not built (planning only)\n";
#endif
  std::string runnable;
  for (const auto& t : kernels::runnable_targets()) runnable += (runnable.empty() ? "" : " ") + t;
  out << "CPU kernels: " << kernels::dispatch_target() << " (Highway; this CPU runs " << runnable << ")\n";
}

}  // namespace devicemap::cli
