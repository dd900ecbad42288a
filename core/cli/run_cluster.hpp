#pragma once
// devicemap run … --cluster FILE: this process's rank of a pipeline across the cluster's hosts. Every
// rank plans the cluster's stages as `devicemap plan --cluster` does (same model, flags and cluster
// file: the ranks check at connection that their stages join up) and loads only its own. --local
// starts every rank on this machine instead, as child processes of this one (tests, trials).
#ifdef DEVICEMAP_HAVE_RUN_COMMANDS
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "model/skeleton.hpp"
#include "plan/device_map.hpp"
#include "run/load_options.hpp"
#include "run/pipeline.hpp"

namespace devicemap::cli {

// The options `run` takes for a cluster, and their help.
extern const char* const kClusterRunHelp;
void add_cluster_run_options(std::set<std::string>& options, std::set<std::string>& flags);

struct ClusterRank {
  std::string host;          // the cluster host this rank stands for
  std::size_t ranks = 0;     // the cluster's hosts
  DeviceMap map;             // the host's device map of its stage
  LayerRange layers;         // the stage's decoder layers
  PipelineOptions pipeline;  // rank, master, timeouts
  bool local = false;        // --local: this process is rank 0 and starts the others here
};

// Reads --cluster, --rank, --master, --timeout, --connect-timeout and --local, and plans the stages.
// Throws devicemap::Error naming the flag that is missing or wrong.
ClusterRank cluster_rank(const Args& args, const Skeleton& skeleton);

// The ranks after 0 of a --local run: this program again with the same arguments, each with its
// --rank and the master's port. Killed when this object dies before wait() (rank 0 failed).
class LocalRanks {
 public:
  LocalRanks(std::vector<std::string> run_args, std::size_t ranks) : args_(std::move(run_args)), ranks_(ranks) {}
  LocalRanks(const LocalRanks&) = delete;
  LocalRanks& operator=(const LocalRanks&) = delete;
  ~LocalRanks();
  // Throws devicemap::Error when a process cannot be started.
  void start(int port);
  // Waits for every rank; returns how many exited with an error.
  int wait();

 private:
  std::vector<std::string> args_;
  std::size_t ranks_;
  std::vector<pid_t> children_;
};

}  // namespace devicemap::cli
#endif
