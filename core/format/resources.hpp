#pragma once
// Where the program's own data lies (catalog, hardware profiles, demo model): resources/ of the source
// tree a build came from, or share/devicemap-studio/ of an installed prefix.
#include <filesystem>

namespace devicemap {

// $DEVICEMAP_RESOURCES when set; else share/devicemap-studio beside the executable's prefix, the
// configured install prefix, or the source tree, the first that holds a catalog.
std::filesystem::path resources_dir();

}  // namespace devicemap
