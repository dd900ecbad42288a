// Pipeline stages over c10d (see pipeline.hpp). The only translation unit that includes c10d: the
// rendezvous (TCPStore), the process group (ProcessGroupGloo) and the few messages a step needs.
#include "run/pipeline.hpp"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "run/model_impl.hpp"

namespace devicemap {
namespace {

using Milliseconds = std::chrono::milliseconds;

Milliseconds after(double seconds) { return Milliseconds(static_cast<std::int64_t>(std::max(0.001, seconds) * 1000)); }

std::string seconds_text(double s) {
  std::string t = std::to_string(s);
  t.erase(t.find_last_not_of('0') + 1);
  if (t.back() == '.') t.pop_back();
  return t + " s";
}

std::string message_of(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

bool loopback(const std::string& host) {
  return host == "localhost" || host.starts_with("127.") || host == "::1";
}

// What travels ahead of every step: what it is, how many positions, from which position, and the shape
// and dtype of the hidden state that follows.
enum class Kind : std::int64_t { Forward = 1, Reserve = 2, Stop = 3, Echo = 4 };
struct Header {
  Kind kind = Kind::Forward;
  std::int64_t positions = 0;  // Forward: new tokens; Reserve: tokens to size the caches for
  std::int64_t past = 0;       // Forward: the position the new tokens start at
  bool all_positions = false;  // Forward: the last rank returns the logits of every position, not the last
  at::ScalarType dtype = at::kFloat;
  std::int64_t width = 0;  // the hidden state's features

  static constexpr std::int64_t kWords = 6;
  at::Tensor pack() const {
    return at::tensor({static_cast<std::int64_t>(kind), positions, past, std::int64_t{all_positions},
                       static_cast<std::int64_t>(dtype), width},
                      at::TensorOptions().dtype(at::kLong));
  }
  static Header unpack(const at::Tensor& t, int from) {
    const std::int64_t* w = t.data_ptr<std::int64_t>();
    Header h;
    h.kind = static_cast<Kind>(w[0]);
    h.positions = w[1];
    h.past = w[2];
    h.all_positions = w[3] != 0;
    h.dtype = static_cast<at::ScalarType>(w[4]);
    h.width = w[5];
    const bool known = h.kind == Kind::Forward || h.kind == Kind::Reserve || h.kind == Kind::Stop || h.kind == Kind::Echo;
    const bool floating = h.dtype == at::kFloat || h.dtype == at::kBFloat16 || h.dtype == at::kHalf || h.dtype == at::kDouble;
    if (!known || h.positions < 0 || h.past < 0 || ((h.kind == Kind::Forward || h.kind == Kind::Echo) && (!floating || h.width <= 0 || h.positions == 0)))
      throw Error("rank " + std::to_string(from) + " sent a step this rank does not understand (another version of devicemap?)");
    return h;
  }
};

// This process's stage, as the others check it.
nlohmann::json describe(const Model::Impl& m) {
  return {{"first_layer", m.layers.first}, {"end_layer", m.layers.end}, {"layers", m.config.num_layers},
          {"model_type", m.config.model_type}, {"hidden_size", m.config.hidden_size}, {"vocab_size", m.config.vocab_size}};
}

std::string store_text(c10d::Store& store, const std::string& key) {
  const std::vector<std::uint8_t> v = store.get(key);
  return std::string(v.begin(), v.end());
}

// The connection of one rank to the others.
class Group {
 public:
  Group(const PipelineOptions& o, const nlohmann::json& stage) : rank_(o.rank), world_(o.world_size), step_(after(o.step_timeout_seconds)) {
    const std::string where = o.master_host + ":" + std::to_string(o.master_port);
    const auto connect = after(o.connect_timeout_seconds);
    try {
      c10d::TCPStoreOptions so;
      so.port = static_cast<std::uint16_t>(o.master_port);
      so.isServer = o.rank == 0;
      so.numWorkers = static_cast<std::size_t>(o.world_size);
      so.waitWorkers = false;  // the process group's rendezvous waits for them
      so.timeout = connect;
      store_ = c10::make_intrusive<c10d::TCPStore>(o.master_host, so);
    } catch (const std::exception& e) {
      throw Error(o.rank == 0 ? "rank 0 cannot serve the pipeline's rendezvous at " + where + ": " + message_of(e)
                              : "rank " + std::to_string(o.rank) + " cannot reach the pipeline's master at " + where + " within " +
                                    seconds_text(o.connect_timeout_seconds) + ": " + message_of(e));
    }
    if (o.rank == 0 && o.on_listening) o.on_listening(store_->getPort());
    try {
      auto options = c10d::ProcessGroupGloo::Options::create(connect);
      std::string bind = o.bind_host;
      const char* interface = std::getenv("GLOO_SOCKET_IFNAME");  // torch.distributed's own setting
      if (bind.empty() && loopback(o.master_host)) bind = "127.0.0.1";
      if (!bind.empty())
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(bind));
      else if (interface && *interface)
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
      else
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      options->threads = 1;  // point-to-point messages only
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, o.rank, o.world_size, options);
    } catch (const std::exception& e) {
      throw Error("rank " + std::to_string(o.rank) + ": the " + std::to_string(o.world_size) + " ranks of the pipeline at " + where +
                  " did not all connect within " + seconds_text(o.connect_timeout_seconds) + ": " + message_of(e));
    }
    agree(stage);
  }

  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;
  ~Group() {
    // A process group whose peer is gone may wait for it as it closes; the process is ending or
    // giving the pipeline up, so its sockets are left to the system instead.
    if (broken_) {
      (void)group_.release();
      (void)store_.release();
    }
  }

  int rank() const { return rank_; }
  int world() const { return world_; }

  void send(at::Tensor t, int to, const std::string& what, Milliseconds timeout = Milliseconds(0)) {
    std::vector<at::Tensor> v{std::move(t)};
    finish([&] { group_->send(v, to, 0)->wait(timeout.count() > 0 ? timeout : step_); }, "sending " + what + " to rank " + std::to_string(to));
  }
  void recv(at::Tensor& t, int from, const std::string& what) {
    std::vector<at::Tensor> v{t};
    finish([&] { group_->recv(v, from, 0)->wait(step_); }, "waiting for " + what + " from rank " + std::to_string(from));
  }

 private:
  template <class F>
  void finish(F&& f, const std::string& what) {
    try {
      f();
    } catch (const std::exception& e) {
      broken_ = true;
      throw Error("rank " + std::to_string(rank_) + ": the pipeline failed " + what + " (it exited, or took longer than " +
                  seconds_text(double(step_.count()) / 1000) + "): " + message_of(e));
    }
  }

  // Rank 0 checks that the stages hold one model's layers in order; every rank hears the verdict.
  void agree(const nlohmann::json& stage) {
    try {
      store_->set("devicemap/stage/" + std::to_string(rank_), [&] {
        const std::string s = stage.dump();
        return std::vector<std::uint8_t>(s.begin(), s.end());
      }());
      std::string verdict;
      if (rank_ == 0) {
        std::int64_t expected_first = 0;
        for (int r = 0; r < world_ && verdict.empty(); ++r) {
          const auto s = nlohmann::json::parse(store_text(*store_, "devicemap/stage/" + std::to_string(r)));
          for (const char* key : {"layers", "model_type", "hidden_size", "vocab_size"})
            if (verdict.empty() && s[key] != stage[key])  // the first difference
              verdict = "rank " + std::to_string(r) + " holds another model than rank 0 (" + key + " " + s[key].dump() + " against " +
                        stage[key].dump() + ")";
          if (verdict.empty() && s["first_layer"].get<std::int64_t>() != expected_first)
            verdict = "rank " + std::to_string(r) + " holds layers " + s["first_layer"].dump() + " to " +
                      std::to_string(s["end_layer"].get<std::int64_t>() - 1) + ", but the stage before it ends at layer " +
                      std::to_string(expected_first - 1) + "; every rank must plan the same cluster";
          expected_first = s["end_layer"].get<std::int64_t>();
        }
        if (verdict.empty() && expected_first != stage["layers"].get<std::int64_t>())
          verdict = "the last rank ends at layer " + std::to_string(expected_first - 1) + " of " + stage["layers"].dump() +
                    "; the stages do not reach the head";
        store_->set("devicemap/verdict", std::vector<std::uint8_t>(verdict.begin(), verdict.end()));
      } else {
        verdict = store_text(*store_, "devicemap/verdict");
      }
      if (!verdict.empty()) throw Error("the pipeline's stages disagree: " + verdict);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      broken_ = true;
      throw Error("rank " + std::to_string(rank_) + ": the pipeline's ranks could not compare their stages: " + message_of(e));
    }
  }

  int rank_ = 0, world_ = 1;
  Milliseconds step_;
  bool broken_ = false;
  c10::intrusive_ptr<c10d::TCPStore> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};

// Rank 0's way to the other stages.
class FirstStage final : public StageLink {
 public:
  FirstStage(const PipelineOptions& o, const Model::Impl& m)
      : group_(o, describe(m)), vocab_(m.config.vocab_size), width_(m.config.hidden_size),
        dtype_(m.weights->policy().compute_dtype(m.transformer->attention_device(m.layers.end - 1))) {}
  ~FirstStage() override {
    try {
      Header stop;
      stop.kind = Kind::Stop;
      group_.send(stop.pack(), 1, "the end of the pipeline", after(5));
    } catch (...) {  // a rank already gone has nothing to stop
    }
  }

  at::Tensor run_rest(const at::Tensor& hidden, std::int64_t past, bool all_positions) override {
    Header head;
    head.past = past;
    head.all_positions = all_positions;
    return step(head, hidden);
  }

  // A step's messages without its layers: one token's hidden state passed rank to rank as it is, logits back.
  double echo_seconds(int rounds) {
    Header head;
    head.kind = Kind::Echo;
    const at::Tensor h = at::zeros({1, width_}, at::TensorOptions().dtype(dtype_));
    double best = 0;
    for (int r = 0; r < std::max(1, rounds); ++r) {
      const auto start = std::chrono::steady_clock::now();
      step(head, h);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (r == 0 || s < best) best = s;
    }
    return best;
  }

  void reserve(std::int64_t tokens) override {
    Header head;
    head.kind = Kind::Reserve;
    head.positions = tokens;
    group_.send(head.pack(), 1, "the cache size");
  }

 private:
  // Sends `hidden` headed by `head` (its shape and dtype filled in) to rank 1; the last rank's logits.
  at::Tensor step(Header head, const at::Tensor& hidden) {
    const at::Tensor h = hidden.to(at::kCPU).contiguous();
    head.positions = h.size(0);
    head.dtype = h.scalar_type();
    head.width = h.size(1);
    group_.send(head.pack(), 1, "a step");
    group_.send(h, 1, "the hidden state");
    at::Tensor logits = at::empty({head.all_positions ? head.positions : 1, vocab_}, at::TensorOptions().dtype(at::kFloat));
    group_.recv(logits, group_.world() - 1, "the logits");
    return logits;
  }

  Group group_;
  std::int64_t vocab_;
  std::int64_t width_;
  at::ScalarType dtype_;  // of the hidden state this stage hands on
};

void check_options(const PipelineOptions& o) {
  if (o.world_size < 2) throw Error("a pipeline needs at least 2 ranks");
  if (o.rank < 0 || o.rank >= o.world_size)
    throw Error("rank " + std::to_string(o.rank) + " is not one of the pipeline's " + std::to_string(o.world_size) + " (0 to " +
                std::to_string(o.world_size - 1) + ")");
  if (o.master_port < 0 || o.master_port > 65535 || (o.master_port == 0 && o.rank != 0))
    throw Error("the master's port " + std::to_string(o.master_port) + " is not a port to connect to");
}

}  // namespace

void join_pipeline(Model& model, const PipelineOptions& options) {
  check_options(options);
  Model::Impl& m = model.internals();
  if (options.rank != 0) throw Error("join_pipeline is for rank 0; rank " + std::to_string(options.rank) + " serves (serve_pipeline)");
  if (m.layers.first != 0 || m.layers.end == m.config.num_layers)
    throw Error("rank 0 must hold the first stage and not the last: it holds layers " + std::to_string(m.layers.first) + " to " +
                std::to_string(m.layers.end - 1) + " of " + std::to_string(m.config.num_layers));
  m.link.reset();
  m.cache->clear();
  m.link = std::make_unique<FirstStage>(options, m);
}

void end_pipeline(Model& model) noexcept { model.internals().link.reset(); }

double pipeline_transfer_seconds(Model& model, int rounds) {
  auto* first = dynamic_cast<FirstStage*>(model.internals().link.get());
  if (!first) throw Error("the model is not the first stage of a pipeline");
  c10::InferenceMode inference;
  return first->echo_seconds(rounds);
}

void serve_pipeline(Model& model, const PipelineOptions& options) {
  check_options(options);
  Model::Impl& m = model.internals();
  if (options.rank == 0) throw Error("rank 0 joins the pipeline (join_pipeline); serve_pipeline is for the ranks after it");
  if (m.layers.first == 0)
    throw Error("rank " + std::to_string(options.rank) + " holds the embedding (layer 0); only rank 0 may");
  const bool last = options.rank == options.world_size - 1;
  if (last != (m.layers.end == m.config.num_layers))
    throw Error("rank " + std::to_string(options.rank) + (last ? " is the last and must hold the head" : " holds the head but is not the last rank"));
  Group group(options, describe(m));
  const int previous = options.rank - 1, next = options.rank + 1;
  c10::InferenceMode inference;
  for (;;) {
    at::Tensor packed = at::empty({Header::kWords}, at::TensorOptions().dtype(at::kLong));
    group.recv(packed, previous, "the next step");
    const Header head = Header::unpack(packed, previous);
    if (head.kind == Kind::Stop) {
      if (!last) {
        try {
          group.send(packed, next, "the end of the pipeline", after(5));
        } catch (const Error&) {  // the next rank is gone already: it stopped anyway
        }
      }
      return;
    }
    if (head.kind == Kind::Reserve) {
      model.reserve_cache(head.positions);
      if (!last) group.send(packed, next, "the cache size");
      continue;
    }
    // Checked before anything is allocated for it.
    if (head.width != m.config.hidden_size)
      throw Error("rank " + std::to_string(previous) + " sends hidden states of " + std::to_string(head.width) + " features; this model has " +
                  std::to_string(m.config.hidden_size));
    const std::int64_t context = m.config.max_position_embeddings;
    if (head.past > context || head.positions > context - head.past)
      throw Error("rank " + std::to_string(previous) + " sends " + std::to_string(head.positions) + " positions from position " +
                  std::to_string(head.past) + ", beyond max_position_embeddings " + std::to_string(context));
    at::Tensor hidden = at::empty({head.positions, head.width}, at::TensorOptions().dtype(head.dtype));
    group.recv(hidden, previous, "the hidden state");
    if (head.kind == Kind::Echo) {  // the messages of a step, without its layers
      if (last) {
        group.send(at::zeros({1, m.config.vocab_size}, at::TensorOptions().dtype(at::kFloat)), 0, "the logits");
      } else {
        group.send(packed, next, "a step");
        group.send(hidden, next, "the hidden state");
      }
      continue;
    }
    if (head.past == 0) m.cache->clear();  // a new sequence
    if (m.cache->length() != head.past)
      throw Error("rank " + std::to_string(options.rank) + " has cached " + std::to_string(m.cache->length()) +
                  " tokens, but the step starts at position " + std::to_string(head.past));
    at::Tensor out;
    try {
      out = m.transformer->forward(hidden, m.cache.get(), head.all_positions).to(at::kCPU).contiguous();
    } catch (const c10::Error& e) {
      throw Error("rank " + std::to_string(options.rank) + ": the forward pass failed: " + e.what_without_backtrace());
    }
    if (last) {
      group.send(out, 0, "the logits");
      continue;
    }
    Header on = head;
    on.dtype = out.scalar_type();
    group.send(on.pack(), next, "a step");
    group.send(out, next, "the hidden state");
  }
}

}  // namespace devicemap
