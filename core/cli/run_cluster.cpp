#include "cli/run_cluster.hpp"
#ifdef DEVICEMAP_HAVE_RUN_COMMANDS

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>

#include "cli/plan_cluster.hpp"
#include "cli/plan_flags.hpp"
#include "error.hpp"
#include "plan/stage_plan.hpp"

namespace devicemap::cli {

const char* const kClusterRunHelp =
    "across the hosts of a cluster (pipeline stages; see `devicemap plan --cluster`):\n"
    "  --cluster FILE|NAME                      the cluster file every rank plans the same stages from\n"
    "  --rank R --master HOST:PORT              this process's rank; rank 0 serves the rendezvous at\n"
    "                                           HOST:PORT and owns the prompt, sampling and output\n"
    "  --local                                  start every rank on this machine (a child process each)\n"
    "  --timeout S                              a rank waits this long for a message (default 120)\n"
    "  --connect-timeout S                      and this long for every rank to connect (default 300)\n";

void add_cluster_run_options(std::set<std::string>& options, std::set<std::string>& flags) {
  options.insert({"cluster", "rank", "master", "timeout", "connect-timeout"});
  flags.insert("local");
}

namespace {

// "HOST:PORT" (an IPv6 address in brackets: "[::1]:29500").
std::pair<std::string, int> host_and_port(const std::string& text) {
  const auto colon = text.rfind(':');
  std::string host = colon == std::string::npos ? "" : text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = -1;
  if (colon != std::string::npos) {
    const char* begin = text.data() + colon + 1;
    const char* end = text.data() + text.size();
    const auto [stop, ec] = std::from_chars(begin, end, port);
    if (ec != std::errc() || stop != end) port = -1;
  }
  if (host.empty() || port < 0 || port > 65535) throw Error("--master: '" + text + "' is not HOST:PORT");
  return {host, port};
}

}  // namespace

ClusterRank cluster_rank(const Args& args, const Skeleton& skeleton) {
  if (args.get("device-map")) throw Error("--cluster plans each rank's device map; --device-map does not apply");
  ClusterRank r;
  r.local = args.flag("local");
  if (r.local && args.get("rank")) throw Error("--local starts every rank itself; --rank does not apply");
  if (!r.local && (!args.get("rank") || !args.get("master")))
    throw Error("--cluster needs --rank R and --master HOST:PORT on every host (or --local for every rank on this machine)");
  const Cluster cluster = read_cluster_flag(args);
  const StagePlan plan = plan_cluster_stages(skeleton, cluster, read_planning_flags(args, skeleton).options);
  r.ranks = plan.stages.size();
  const std::uint64_t rank = args.get_u64("rank", 0);
  if (rank >= r.ranks)
    throw Error("--rank " + std::to_string(rank) + ": the cluster has " + std::to_string(r.ranks) + " hosts (ranks 0 to " +
                std::to_string(r.ranks - 1) + ")");
  const Stage& stage = plan.stages[rank];
  r.host = stage.host;
  r.map = host_device_map(skeleton, stage);
  r.layers = {static_cast<std::int64_t>(stage.cut.first_layer), static_cast<std::int64_t>(stage.cut.end_layer)};
  auto& p = r.pipeline;
  p.rank = static_cast<int>(rank);
  p.world_size = static_cast<int>(r.ranks);
  if (auto m = args.get("master")) std::tie(p.master_host, p.master_port) = host_and_port(*m);
  else p.master_port = 0;  // --local: a free port
  p.step_timeout_seconds = args.get_double("timeout", p.step_timeout_seconds);
  p.connect_timeout_seconds = args.get_double("connect-timeout", p.connect_timeout_seconds);
  if (!(p.step_timeout_seconds > 0) || !(p.connect_timeout_seconds > 0)) throw Error("--timeout and --connect-timeout must be above 0 seconds");
  return r;
}

void LocalRanks::start(int port) {
  std::vector<std::string> base;
  for (const auto& a : args_)
    if (a != "--local") base.push_back(a);
  for (std::size_t rank = 1; rank < ranks_; ++rank) {
    std::vector<std::string> args{"devicemap", "run"};
    args.insert(args.end(), base.begin(), base.end());
    for (const std::string& a : {std::string("--rank"), std::to_string(rank), std::string("--master"), "127.0.0.1:" + std::to_string(port)})
      args.push_back(a);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) throw Error(std::string("--local: cannot start rank ") + std::to_string(rank) + ": " + std::strerror(errno));
    if (pid == 0) {
      // Only calls that are safe after fork() in a threaded process, until exec.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // rank 0 gone: so is this rank
      if (::getppid() != parent) ::_exit(1);
      const int null = ::open("/dev/null", O_RDWR);
      if (null >= 0) {
        ::dup2(null, STDIN_FILENO);
        ::dup2(null, STDOUT_FILENO);  // rank 0 prints the output; the others speak only to report errors
      }
      ::execv("/proc/self/exe", argv.data());
      ::_exit(127);
    }
    children_.push_back(pid);
  }
}

int LocalRanks::wait() {
  int failed = 0;
  for (const pid_t pid : children_) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  children_.clear();
  return failed;
}

LocalRanks::~LocalRanks() {
  for (const pid_t pid : children_) ::kill(pid, SIGTERM);
  wait();
}

}  // namespace devicemap::cli
#endif
