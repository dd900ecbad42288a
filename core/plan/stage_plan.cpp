#include "plan/stage_plan.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <tuple>

#include "error.hpp"
#include "format/dtype.hpp"

namespace devicemap {
namespace {

// Plans and predicts one host's stage, each at most once.
class StageCosts {
 public:
  StageCosts(const Skeleton& s, const Cluster& c, const PlanOptions& o, const SpeedInputs& in, std::size_t layers)
      : s_(s), c_(c), o_(o), in_(in), layers_(layers) {}

  const Stage& get(std::size_t host, std::size_t first, std::size_t end) {
    const auto key = std::make_tuple(host, first, end);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    Stage st;
    st.host = c_.hosts[host].name;
    st.cut = {first, end, host == 0, host + 1 == c_.hosts.size()};
    const Skeleton part = stage_skeleton(s_, st.cut);
    try {
      st.plan = plan_device_map(part, c_.hosts[host].budgets, o_);
    } catch (const Error& e) {
      throw Error("host " + st.host + ", layers " + std::to_string(first) + "-" + std::to_string(end - 1) + ": " + e.what());
    }
    st.bytes = st.plan.total_bytes;
    SpeedInputs in = in_;
    in.kv_bytes_per_layer = st.plan.kv_per_layer;
    st.speed = predict_decode_speed(part, st.plan.device_map, c_.hosts[host].machine, in);
    if (!st.speed.known) unknown_ = true;
    return cache_.emplace(key, std::move(st)).first->second;
  }

  // What balancing minimises for the slowest stage: seconds per token, a stage that does not fit
  // counting as slower than any that does.
  double cost(std::size_t host, std::size_t first, std::size_t end) {
    const Stage& st = get(host, first, end);
    const double base = by_time_ ? (st.speed.known && st.speed.tokens_per_second > 0 ? 1.0 / st.speed.tokens_per_second : kHuge)
                                 : static_cast<double>(st.bytes);
    return st.plan.fits() ? base : base + kHuge;
  }

  bool unknown() const { return unknown_; }
  void balance_by_bytes() { by_time_ = false; }

  static constexpr double kHuge = 1e12;

 private:
  const Skeleton& s_;
  const Cluster& c_;
  const PlanOptions& o_;
  const SpeedInputs& in_;
  std::size_t layers_;
  std::map<std::tuple<std::size_t, std::size_t, std::size_t>, Stage> cache_;
  bool unknown_ = false;
  bool by_time_ = true;
};

// The cut of each host when no stage may cost more than `limit`: each host takes as many layers as it
// can (cost grows with layers), leaving at least one to each host after it. Empty when none exists.
std::vector<std::size_t> greedy_ends(StageCosts& costs, std::size_t hosts, std::size_t layers, double limit) {
  std::vector<std::size_t> ends;
  std::size_t first = 0;
  for (std::size_t h = 0; h < hosts; ++h) {
    if (h + 1 == hosts) {
      if (costs.cost(h, first, layers) > limit) return {};
      ends.push_back(layers);
      break;
    }
    const std::size_t most = layers - (hosts - 1 - h);  // one past the last layer this host may take
    if (costs.cost(h, first, first + 1) > limit) return {};
    std::size_t lo = first + 1, hi = most;  // cost(lo) ≤ limit; find the largest end that is
    while (lo < hi) {
      const std::size_t mid = (lo + hi + 1) / 2;
      if (costs.cost(h, first, mid) <= limit) lo = mid;
      else hi = mid - 1;
    }
    ends.push_back(lo);
    first = lo;
  }
  return ends;
}

std::vector<std::size_t> balance(StageCosts& costs, std::size_t hosts, std::size_t layers) {
  // Even split first: its slowest stage bounds the search from above.
  std::vector<std::size_t> best;
  for (std::size_t h = 1; h <= hosts; ++h) best.push_back(layers * h / hosts);
  double hi = 0;
  for (std::size_t h = 0, first = 0; h < hosts; first = best[h], ++h) hi = std::max(hi, costs.cost(h, first, best[h]));
  double lo = 0;
  for (int i = 0; i < 48 && hi - lo > 1e-6 * hi; ++i) {
    const double mid = (lo + hi) / 2;
    if (auto ends = greedy_ends(costs, hosts, layers, mid); !ends.empty()) {
      best = std::move(ends);
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return best;
}

}  // namespace

StagePlan plan_stages(const Skeleton& s, const Cluster& c, const PlanOptions& o, const SpeedInputs& in) {
  const std::size_t layers = decoder_layers(s).size();
  const std::size_t hosts = c.hosts.size();
  if (hosts == 0) throw Error("a cluster without hosts");
  if (layers < hosts)
    throw Error("the model has " + std::to_string(layers) + " decoder layers for " + std::to_string(hosts) +
                " hosts: each stage needs at least one");
  if (!o.pins.empty()) throw Error("pins do not apply to a cluster plan (each host's map is planned within its stage)");
  StageCosts costs(s, c, o, in, layers);
  StagePlan out;
  std::vector<std::size_t> ends = balance(costs, hosts, layers);
  if (costs.unknown()) {
    // Some stage had no prediction: balance the bytes instead, and say so.
    out.by_time = false;
    costs.balance_by_bytes();
    ends = balance(costs, hosts, layers);
  }
  out.fits = true;
  double total = 0, slowest = 0;
  for (std::size_t h = 0, first = 0; h < hosts; first = ends[h], ++h) {
    Stage st = costs.get(h, first, ends[h]);
    st.seconds = st.speed.known && st.speed.tokens_per_second > 0 ? 1.0 / st.speed.tokens_per_second : 0;
    out.fits = out.fits && st.plan.fits();
    total += st.seconds;
    out.stages.push_back(std::move(st));
  }
  // The hidden state of one token crosses each link: hidden_size values in the compute dtype.
  const auto& cfg = s.config;
  const double hidden = cfg.is_object() && cfg.contains("hidden_size") && cfg["hidden_size"].is_number() ? cfg["hidden_size"].get<double>() : 0;
  const DType act = o.dtype.value_or(DType::BF16);
  out.activation_bytes = hidden * dtype_bits(act) / 8.0;
  out.transfer_seconds = c.link_latency_us * 1e-6 + out.activation_bytes / (c.link_gbs * 1e9);
  if (hidden == 0) out.notes.push_back("the config has no hidden_size: the transfer between hosts counts latency only");
  if (out.by_time) {
    total += static_cast<double>(hosts - 1) * out.transfer_seconds;
    for (const auto& st : out.stages) slowest = std::max(slowest, st.seconds + (hosts > 1 ? out.transfer_seconds : 0));
    out.tokens_per_second = total > 0 ? 1.0 / total : 0;
    out.pipelined_tokens_per_second = slowest > 0 ? 1.0 / slowest : 0;
  } else {
    out.notes.push_back("balanced by bytes: a stage's speed is unknown (" +
                        (out.stages.empty() || out.stages.front().speed.missing.empty() ? std::string("a figure is missing")
                                                                                        : out.stages.front().speed.missing.front()) +
                        ")");
  }
  return out;
}

DeviceMap host_device_map(const Skeleton& model, const Stage& stage) {
  const Skeleton part = stage_skeleton(model, stage.cut);
  // A key is partial when the model's module has children the stage lacks.
  const auto partial = [&](const std::string& name) {
    const int m = model.find_module(name);
    const int p = part.find_module(name);
    return m >= 0 && p >= 0 && model.modules[static_cast<std::size_t>(m)].children.size() > part.modules[static_cast<std::size_t>(p)].children.size();
  };
  std::vector<DeviceMap::Entry> out;
  std::vector<DeviceMap::Entry> todo(stage.plan.device_map.entries().rbegin(), stage.plan.device_map.entries().rend());
  while (!todo.empty()) {
    auto [name, device] = todo.back();
    todo.pop_back();
    if (!partial(name)) {
      out.emplace_back(name, device);
      continue;
    }
    const auto& pm = part.modules[static_cast<std::size_t>(part.find_module(name))];
    std::vector<DeviceMap::Entry> pieces;
    for (const int t : pm.params) pieces.emplace_back(part.tensors[static_cast<std::size_t>(t)].name, device);
    for (const int c : pm.children) pieces.emplace_back(part.modules[static_cast<std::size_t>(c)].name, device);
    for (const int t : pm.buffers) pieces.emplace_back(part.tensors[static_cast<std::size_t>(t)].name, device);
    todo.insert(todo.end(), pieces.rbegin(), pieces.rend());
  }
  return DeviceMap(std::move(out));
}

}  // namespace devicemap
