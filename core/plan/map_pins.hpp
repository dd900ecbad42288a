#pragma once
// A device map made elsewhere (by transformers, by a colleague, by hand) as planner pins: planning with
// them places every module where the map says, so the plan's per-device bytes, reserves and speed are
// the map's own.
#include <vector>

#include "plan/planner.hpp"

namespace devicemap {

class Skeleton;

// One pin per key that holds tensors; a key with other keys below it is pinned through its uncovered
// parts instead, so that no byte is charged to two devices. Keys naming nothing pin nothing.
std::vector<Pin> pins_for_map(const DeviceMap& map, const Skeleton& skeleton);

}  // namespace devicemap
