#include "plan/cluster_export.hpp"

#include <system_error>

#include "error.hpp"
#include "format/atomic_file.hpp"

namespace devicemap {

std::vector<std::filesystem::path> cluster_export_files(const std::filesystem::path& folder, const StagePlan& plan) {
  std::vector<std::filesystem::path> files;
  for (const auto& st : plan.stages) files.push_back(folder / (st.host + ".device_map.json"));
  files.push_back(folder / "vllm-launch.sh");
  files.push_back(folder / "devicemap-launch.sh");
  return files;
}

void export_cluster_plan(const std::filesystem::path& folder, const Skeleton& model, const StagePlan& plan,
                         const VllmLaunch& launch, const std::string& devicemap_script, bool replace) {
  std::error_code ec;
  if (std::filesystem::exists(folder, ec) && !std::filesystem::is_directory(folder, ec))
    throw Error(folder.string() + ": a cluster plan is exported to a folder (one device map per host), and this is a file");
  const auto files = cluster_export_files(folder, plan);
  if (!replace)
    for (const auto& f : files)
      if (std::filesystem::exists(f, ec)) throw Error(f.string() + " exists; pass --force to replace it (the old file is never half-written)");
  std::filesystem::create_directories(folder, ec);
  if (ec) throw Error(folder.string() + ": cannot create the folder: " + ec.message());
  for (std::size_t i = 0; i < plan.stages.size(); ++i) host_device_map(model, plan.stages[i]).save(files[i]);
  const std::size_t scripts = plan.stages.size();
  write_file_atomically(files[scripts], launch.script);
  write_file_atomically(files[scripts + 1], devicemap_script);
  for (std::size_t i = scripts; i < files.size(); ++i)
    std::filesystem::permissions(files[i],
                                 std::filesystem::perms::owner_exec | std::filesystem::perms::group_exec | std::filesystem::perms::others_exec,
                                 std::filesystem::perm_options::add, ec);  // scripts to run; without +x they still read
}

}  // namespace devicemap
