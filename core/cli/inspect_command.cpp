// devicemap inspect MODEL: architecture, tensors, dtypes, total bytes, largest layer, ties.
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "error.hpp"
#include "model/model_source.hpp"
#include "model/module_sizes.hpp"
#include "model/name_ranges.hpp"
#include "plan/units.hpp"

namespace devicemap::cli {

int inspect_command(Invocation& inv) {
  const Args args(inv.args, {"format"}, {"help", "skeleton"});
  if (args.flag("help") || args.positionals().size() != 1) {
    inv.out << "usage: devicemap inspect MODEL_DIR|SKELETON.json|catalog:NAME [--skeleton]\n"
               "Describes a model; --skeleton prints its skeleton JSON (the planner's input).\n";
    return args.flag("help") ? 0 : 2;
  }
  const ModelSource model = open_model(args.positionals()[0]);
  const Skeleton& s = model.skeleton;
  if (args.flag("skeleton")) {
    inv.out << s.to_json().dump(1) << "\n";
    return 0;
  }
  const ModuleSizes sizes = compute_module_sizes(s);
  std::map<std::string, std::pair<std::size_t, std::uint64_t>> by_dtype;
  std::size_t params = 0, buffers = 0;
  for (std::size_t i = 0; i < s.tensors.size(); ++i) {
    const auto& t = s.tensors[i];
    if (t.tied_to >= 0) continue;
    (t.buffer ? buffers : params)++;
    auto& e = by_dtype[std::string(torch_name(t.dtype))];
    e.first++;
    e.second += static_cast<std::uint64_t>(sizes.tensor[i]);
  }
  int largest = -1;
  std::vector<std::string> layers;
  for (std::size_t m = 0; m < s.modules.size(); ++m) {
    if (!s.modules[m].is_layer) continue;
    layers.push_back(s.modules[m].name);
    if (largest < 0 || sizes.module[m] > sizes.module[static_cast<std::size_t>(largest)]) largest = static_cast<int>(m);
  }
  inv.out << "model         " << model.description << "\n";
  inv.out << "architecture  " << (s.model_type.empty() ? "unknown" : s.model_type) << " ("
          << (s.modules[0].cls.empty() ? "?" : s.modules[0].cls) << ")\n";
  inv.out << "tensors       " << params << " parameters, " << buffers << " buffers\n";
  for (const auto& [dt, e] : by_dtype) inv.out << "  " << dt << ": " << e.first << " tensors, " << format_size(e.second) << "\n";
  inv.out << "total         " << format_size(static_cast<std::uint64_t>(sizes.total())) << " (" << sizes.total() << " bytes)\n";
  inv.out << "layers        ";
  for (const auto& r : compress_name_ranges(layers)) inv.out << r << " ";
  inv.out << "(" << layers.size() << ")\n";
  if (largest >= 0)
    inv.out << "largest layer " << s.modules[static_cast<std::size_t>(largest)].name << ", "
            << format_size(static_cast<std::uint64_t>(sizes.module[static_cast<std::size_t>(largest)])) << "\n";
  inv.out << "no-split      ";
  for (const auto& c : s.no_split_module_classes) inv.out << c << " ";
  inv.out << "\n";
  const auto ties = s.tie_groups();
  if (ties.empty()) inv.out << "tied          none\n";
  for (const auto& g : ties) {
    inv.out << "tied         ";
    for (const auto& n : g) inv.out << " " << n;
    inv.out << "\n";
  }
  for (const auto& w : s.warnings) inv.out << "warning: " << w << "\n";
  return 0;
}

}  // namespace devicemap::cli
