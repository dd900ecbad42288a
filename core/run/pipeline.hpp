#pragma once
// A model split into pipeline stages across processes: the hosts of a cluster (plan/stage_plan.hpp), or
// ranks on one machine. Each process loads only its stage's decoder layers (LoadOptions::layers) and
// keeps their KV cache; rank 0 holds the embedding and owns the tokenizer, sampling and output, the last
// rank holds the head. Torch-free: the CLI and the GUI include it.
//
// A step: rank 0 runs its layers on the new tokens and sends the hidden state to rank 1, which runs its
// layers and sends on, …; the last rank sends its logits back to rank 0, which picks the next token.
// Every message is headed by the position it starts at, so a stage whose cache is out of step refuses to
// go on instead of computing garbage. The transport is LibTorch's c10d: ProcessGroupGloo over TCP, with
// the rendezvous through a c10d::TCPStore that rank 0 serves at the master address.
//
// Failure: a rank that exits closes its connections and every peer's next receive fails at once; a rank
// that hangs fails its peers after step_timeout_seconds; a rank that cannot connect fails after
// connect_timeout_seconds. Each then throws devicemap::Error naming the rank and what it waited for.
#include <functional>
#include <string>

namespace devicemap {

class Model;

struct PipelineOptions {
  std::string master_host = "127.0.0.1";  // where rank 0 serves the rendezvous
  int master_port = 29500;                // on rank 0, 0 picks a free port (told through on_listening)
  int rank = 0;
  int world_size = 1;
  // Until every rank has connected: it covers the slowest rank's load, which comes before.
  double connect_timeout_seconds = 300;
  // One message: how long a rank waits for its neighbour's hidden state or for rank 0's next step.
  double step_timeout_seconds = 120;
  // The address this rank's peers reach it at. Default: 127.0.0.1 when the master is a loopback
  // address, else the interface GLOO_SOCKET_IFNAME names, else the address this host's name resolves to.
  std::string bind_host;
  // Rank 0: called once the rendezvous listens, before waiting for the others (a launcher starts them here).
  std::function<void(int port)> on_listening;
};

// Rank 0: connects to the other ranks and checks that their stages cover the model's layers in order
// and hold the same model; from then on forward(), reserve_cache() and generate() on `model` run the
// whole pipeline. `model` must hold the first stage. Ends when end_pipeline is called or `model` dies.
void join_pipeline(Model& model, const PipelineOptions& options);
// Rank 0: tells the other ranks to stop (their serve_pipeline returns) and disconnects. Does nothing
// when `model` is not in a pipeline. Never throws: ranks already gone are left as they are.
void end_pipeline(Model& model) noexcept;
// Rank 0: seconds of a decode step's messages alone (one token's hidden state from rank to rank, the
// logits back), the best of `rounds`; the layers do not run and the caches stay as they are.
double pipeline_transfer_seconds(Model& model, int rounds = 20);
// Every rank after 0: connects, then runs what rank 0 asks until it ends the pipeline.
void serve_pipeline(Model& model, const PipelineOptions& options);

}  // namespace devicemap
