#include "format/resources.hpp"

#include <cstdlib>

namespace devicemap {
namespace fs = std::filesystem;

fs::path resources_dir() {
  if (const char* env = std::getenv("DEVICEMAP_RESOURCES"); env && *env) return env;
  // Installed next to the executable's prefix, else the source tree this was built from.
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed = exe.parent_path().parent_path() / "share" / "devicemap-studio";
    if (fs::exists(installed / "catalog")) return installed;
  }
  if (fs::exists(fs::path(DEVICEMAP_INSTALLED_RESOURCES) / "catalog")) return DEVICEMAP_INSTALLED_RESOURCES;
  return DEVICEMAP_SOURCE_RESOURCES;
}

}  // namespace devicemap
