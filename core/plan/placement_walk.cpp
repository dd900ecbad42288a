// A line-by-line equivalent of Accelerate's infer_auto_device_map (utils/modeling.py), including its
// quirks, because users compare maps byte for byte: the max-layer reserve on main devices recomputed only
// when every module holding the recorded maximum has left the queue, ">=" in the split test, tied modules
// placed with their partner, fallback allocation by breadth-first search, and never going back to a
// device once left. Additions (pins, KV reserve) only act when asked for.
#include "plan/placement_walk.hpp"

#include <algorithm>
#include <unordered_set>

#include "error.hpp"

namespace devicemap::detail {
namespace {

bool contains_dotted(const std::string& haystack, const std::string& needle) {
  // Python: `name + "." in k + "."`
  return (haystack + ".").find(needle + ".") != std::string::npos;
}

class Walker {
 public:
  explicit Walker(const WalkInput& in) : in_(in), s_(*in.skeleton), sz_(*in.sizes) {
    const auto n = in_.devices.size();
    out_.weights.assign(n, 0);
    out_.kv.assign(n, 0);
    out_.reserve.assign(n, 0);
    out_.used.assign(n, 0);
    out_.buffers.assign(n, 0);
    out_.kv_late.assign(n, 0);
    no_split_.insert(in_.no_split.begin(), in_.no_split.end());
    bool has_gpu = false;
    for (std::size_t i = 0; i < n; ++i) {
      const Device d = in_.devices[i].first;
      if (d.is_gpu() && !has_gpu) {
        main_.push_back(i);
        has_gpu = true;
      }
      if (d.is_cpu()) main_.push_back(i);
    }
    if (has_gpu) exec_gpu_ = main_.front();
    for (std::size_t i = 0; i < n; ++i)
      if (in_.devices[i].first.is_cpu()) cpu_ = i;
    charged_.assign(s_.modules.size(), 0);
    layers_below_.assign(s_.modules.size(), 0);
    for (std::size_t m = s_.modules.size(); m-- > 0;) {  // children come after their parents
      const auto& sm = s_.modules[m];
      if (sm.is_layer) layers_below_[m] += 1;
      if (sm.parent >= 0) layers_below_[static_cast<std::size_t>(sm.parent)] += layers_below_[m];
    }
    setup_pins();
    for (const auto& g : s_.tie_groups()) {
      const bool pinned = std::any_of(g.begin(), g.end(), [&](const std::string& t) {
        return pinned_tensor_[static_cast<std::size_t>(s_.find_tensor(t))];
      });
      if (!pinned) ties_.push_back(g);
    }
  }

  WalkResult run();

 private:
  const std::string& name(Item it) const {
    return it.tensor ? s_.tensors[static_cast<std::size_t>(it.id)].name : s_.modules[static_cast<std::size_t>(it.id)].name;
  }
  std::int64_t size(Item it) const {
    return it.tensor ? sz_.tensor[static_cast<std::size_t>(it.id)] : msize_[static_cast<std::size_t>(it.id)];
  }
  const SkeletonModule& mod(Item it) const { return s_.modules[static_cast<std::size_t>(it.id)]; }
  bool has_children(Item it) const { return !it.tensor && !mod(it).children.empty(); }
  bool no_split(Item it) const { return !it.tensor && no_split_.contains(mod(it).cls); }
  bool splittable(Item it) const { return has_children(it) && (!no_split(it) || has_pin_[static_cast<std::size_t>(it.id)]); }
  bool pinned(Item it) const {
    return it.tensor ? pinned_tensor_[static_cast<std::size_t>(it.id)] : pinned_module_[static_cast<std::size_t>(it.id)];
  }

  // named_parameters(recurse=False) + named_children(), less what the user pinned.
  std::vector<Item> split_items(Item it) const {
    std::vector<Item> out;
    for (int p : mod(it).params)
      if (!pinned_tensor_[static_cast<std::size_t>(p)]) out.push_back({p, true});
    for (int c : mod(it).children)
      if (!pinned_module_[static_cast<std::size_t>(c)]) out.push_back({c, false});
    return out;
  }

  void max_layer_size(const std::deque<Item>& items, bool modules_only);
  std::vector<std::string> tied_params_outside(const std::string& nm) const;
  std::int64_t size_with_ties(const std::vector<std::string>& tied_params, std::int64_t own_size,
                              const std::deque<Item>& items, std::vector<Item>* tied_modules) const;
  std::optional<Item> fallback_allocate(std::int64_t limit);
  void setup_pins();
  // Charges the KV cache of the layers `it` holds (or of its layer, once) where they run.
  void charge_kv(Item it, std::size_t dev);
  // Where a layer offloaded while the walk is at device `current` runs, and so holds its KV cache.
  std::size_t runs_offloaded_on(std::size_t current) const;
  std::int64_t kv_for(Item it, std::size_t dev, std::optional<int>* layer, std::int64_t* layers) const;

  const WalkInput& in_;
  const Skeleton& s_;
  const ModuleSizes& sz_;
  std::unordered_set<std::string> no_split_;
  std::vector<std::vector<std::string>> ties_;
  std::vector<std::size_t> main_;
  std::optional<std::size_t> exec_gpu_, cpu_;
  std::vector<std::int64_t> msize_;  // module sizes less pinned parts
  std::vector<char> pinned_module_, pinned_tensor_, has_pin_, charged_;
  std::vector<std::int64_t> layers_below_;  // decoder layers in each module's subtree
  std::deque<Item> queue_;
  std::int64_t max_layer_ = 0;
  std::vector<Item> max_layer_items_;
  WalkResult out_;
};

void Walker::setup_pins() {
  msize_ = sz_.module;
  pinned_module_.assign(s_.modules.size(), 0);
  pinned_tensor_.assign(s_.tensors.size(), 0);
  has_pin_.assign(s_.modules.size(), 0);
  for (const auto& pin : in_.pins) {
    const auto dev = std::find_if(in_.devices.begin(), in_.devices.end(), [&](const auto& d) { return d.first == pin.device; });
    if (dev == in_.devices.end())
      throw Error("pin " + pin.name + "=" + pin.device.name() + ": device " + pin.device.name() + " has no budget");
    const auto di = static_cast<std::size_t>(dev - in_.devices.begin());
    int parent = -1;
    std::int64_t bytes = 0;
    Item item{};
    if (int m = s_.find_module(pin.name); m >= 0) {
      item = {m, false};
      if (m == 0) throw Error("pin: the whole model (\"\") cannot be pinned; pin its modules");
      pinned_module_[static_cast<std::size_t>(m)] = 1;
      std::vector<int> stack{m};
      while (!stack.empty()) {  // everything below a pinned module is pinned with it
        const auto& sm = s_.modules[static_cast<std::size_t>(stack.back())];
        stack.pop_back();
        for (int t : sm.params) pinned_tensor_[static_cast<std::size_t>(t)] = 1;
        for (int t : sm.buffers) pinned_tensor_[static_cast<std::size_t>(t)] = 1;
        for (int c : sm.children) {
          pinned_module_[static_cast<std::size_t>(c)] = 1;
          stack.push_back(c);
        }
      }
      bytes = msize_[static_cast<std::size_t>(m)];
      parent = s_.modules[static_cast<std::size_t>(m)].parent;
    } else if (int t = s_.find_tensor(pin.name); t >= 0) {
      item = {t, true};
      pinned_tensor_[static_cast<std::size_t>(t)] = 1;
      bytes = sz_.tensor[static_cast<std::size_t>(t)];
      parent = s_.tensors[static_cast<std::size_t>(t)].module;
    } else {
      throw Error("pin: '" + pin.name + "' is neither a module nor a tensor of the model");
    }
    for (int a = parent; a >= 0; a = s_.modules[static_cast<std::size_t>(a)].parent) {
      has_pin_[static_cast<std::size_t>(a)] = 1;
      msize_[static_cast<std::size_t>(a)] -= bytes;
    }
    out_.assignments.emplace_back(pin.name, pin.device);
    out_.weights[di] += bytes;
    out_.used[di] += bytes;
    charge_kv(item, di);  // a pinned layer has its KV cache where it runs, as a placed one
  }
}

std::size_t Walker::runs_offloaded_on(std::size_t current) const {
  // Accelerate dispatches offloaded modules to the first GPU of the map (the walk has passed the GPUs by
  // the time it offloads); with none, the model runs on the CPU.
  for (std::size_t i = 0; i < in_.devices.size(); ++i)
    if (in_.devices[i].first.is_gpu() && out_.weights[i] > 0) return i;
  return cpu_.value_or(current);
}

void Walker::charge_kv(Item it, std::size_t dev) {
  std::optional<int> layer;
  std::int64_t layers = 0;
  const std::int64_t here = kv_for(it, dev, &layer, &layers);
  if (layer) charged_[static_cast<std::size_t>(*layer)] = 1;
  if (here > 0) {
    out_.kv[dev] += here;
    out_.used[dev] += here;
  } else if (layers > 0) {
    const std::size_t runs_on = exec_gpu_ ? *exec_gpu_ : cpu_.value_or(dev);
    out_.kv[runs_on] += layers * in_.kv_per_layer;
    out_.used[runs_on] += layers * in_.kv_per_layer;
  }
}

void Walker::max_layer_size(const std::deque<Item>& items, bool modules_only) {
  // get_max_layer_size: leaves and no-split modules compete; everything else is opened.
  max_layer_ = 0;
  max_layer_items_.clear();
  std::vector<Item> stack;
  for (auto it = items.rbegin(); it != items.rend(); ++it)
    if (!(modules_only && it->tensor)) stack.push_back(*it);
  while (!stack.empty()) {
    const Item it = stack.back();
    stack.pop_back();
    if (!has_children(it) || (no_split(it) && !has_pin_[static_cast<std::size_t>(it.id)])) {
      const std::int64_t sz = size(it);
      if (sz > max_layer_) {
        max_layer_ = sz;
        max_layer_items_.assign(1, it);
      } else if (sz == max_layer_) {
        max_layer_items_.push_back(it);
      }
      continue;
    }
    const auto& ch = mod(it).children;
    for (auto c = ch.rbegin(); c != ch.rend(); ++c)
      if (!pinned_module_[static_cast<std::size_t>(*c)]) stack.push_back({*c, false});
  }
}

std::vector<std::string> Walker::tied_params_outside(const std::string& nm) const {
  std::vector<std::string> out;
  for (const auto& g : ties_) {
    bool any = false, all = true;
    for (const auto& k : g) {
      const bool in = contains_dotted(k, nm);
      any = any || in;
      all = all && in;
    }
    if (!any || all) continue;
    for (const auto& k : g)
      if (!contains_dotted(k, nm)) out.push_back(k);
  }
  return out;
}

std::int64_t Walker::size_with_ties(const std::vector<std::string>& tied_params, std::int64_t own_size,
                                    const std::deque<Item>& items, std::vector<Item>* tied_modules) const {
  std::int64_t total = own_size;
  for (const auto& tp : tied_params) {
    auto it = std::find_if(items.begin(), items.end(), [&](Item i) {
      const auto& n = name(i);
      return tp.size() > n.size() && tp.compare(0, n.size(), n) == 0 && tp[n.size()] == '.';
    });
    if (it == items.end())
      throw Error("tied weight " + tp + " is not in any module still waiting to be placed; Accelerate fails on "
                  "this skeleton too (tied weights split apart before placement)");
    if (tied_modules) tied_modules->push_back(*it);
    total += size(*it) - sz_.tensor[static_cast<std::size_t>(s_.find_tensor(tp))];
  }
  return total;
}

std::int64_t Walker::kv_for(Item it, std::size_t dev, std::optional<int>* layer, std::int64_t* layers) const {
  // The KV cache of a decoder layer lives where the layer runs: its own GPU, or the main GPU for a layer
  // offloaded to CPU or disk, or the CPU on a machine without GPUs. A module placed whole carries the
  // KV of every layer inside it; a piece of a split layer carries its layer's, once.
  *layer = std::nullopt;
  *layers = 0;
  if (in_.kv_per_layer == 0) return 0;
  int m = it.tensor ? s_.tensors[static_cast<std::size_t>(it.id)].module : it.id;
  for (; m >= 0; m = s_.modules[static_cast<std::size_t>(m)].parent)
    if (s_.modules[static_cast<std::size_t>(m)].is_layer) break;
  if (m >= 0) {
    if (charged_[static_cast<std::size_t>(m)]) return 0;
    *layer = m;
    *layers = 1;
  } else if (!it.tensor) {
    *layers = layers_below_[static_cast<std::size_t>(it.id)];
  }
  const Device d = in_.devices[dev].first;
  const bool runs_here = d.is_gpu() || (!exec_gpu_ && d.is_cpu());
  return runs_here ? *layers * in_.kv_per_layer : 0;
}

std::optional<Item> Walker::fallback_allocate(std::int64_t limit) {
  if (limit < 0) return std::nullopt;  // convert_file_size_to_int rejects it, and nothing is found
  std::deque<Item> search = queue_;
  std::optional<Item> found;
  while (!search.empty()) {
    const Item it = search.front();
    search.pop_front();
    const auto tied = tied_params_outside(name(it));
    if (size_with_ties(tied, size(it), search, nullptr) <= limit) {
      found = it;
      break;
    }
    if (!splittable(it)) continue;
    const auto children = split_items(it);
    search.insert(search.begin(), children.begin(), children.end());
  }
  if (!found) return std::nullopt;
  // Open every ancestor of the found module that is still whole in the queue, then take it out.
  const std::string& nm = name(*found);
  for (std::size_t dot = nm.find('.'); dot != std::string::npos; dot = nm.find('.', dot + 1)) {
    const std::string parent = nm.substr(0, dot);
    auto pos = std::find_if(queue_.begin(), queue_.end(), [&](Item i) { return name(i) == parent; });
    if (pos == queue_.end()) continue;
    const auto children = split_items(*pos);
    pos = queue_.erase(pos);
    queue_.insert(pos, children.begin(), children.end());
  }
  auto pos = std::find(queue_.begin(), queue_.end(), *found);
  if (pos == queue_.end()) return std::nullopt;
  queue_.erase(pos);
  return found;
}

WalkResult Walker::run() {
  // The root's direct parameters, then its children, then its direct buffers.
  const auto& root = s_.modules[0];
  for (int p : root.params)
    if (!pinned_tensor_[static_cast<std::size_t>(p)]) queue_.push_back({p, true});
  for (int c : root.children)
    if (!pinned_module_[static_cast<std::size_t>(c)]) queue_.push_back({c, false});
  for (int b : root.buffers)
    if (!pinned_tensor_[static_cast<std::size_t>(b)]) queue_.push_back({b, true});
  if (has_pin_[0]) {
    // The root holds a pin: it is already open (its pieces are in the queue).
  } else if (!in_.pins.empty()) {
    // unreachable: any pin marks the root
  }
  max_layer_size(queue_, false);
  std::size_t current = 0;
  std::unordered_set<std::string> placed_names;

  while (!queue_.empty()) {
    const Item item = queue_.front();
    queue_.pop_front();
    const std::string& nm = name(item);
    std::erase_if(max_layer_items_, [&](Item i) {
      const auto& n = name(i);
      return n == nm || (n.size() > nm.size() && n.compare(0, nm.size(), nm) == 0 && n[nm.size()] == '.');
    });
    if (max_layer_items_.empty()) max_layer_size(queue_, true);

    // A module holding a pin is opened at once: its other parts are placed around the pin.
    if (!item.tensor && has_pin_[static_cast<std::size_t>(item.id)]) {
      const auto children = split_items(item);
      queue_.insert(queue_.begin(), children.begin(), children.end());
      max_layer_size(queue_, true);
      continue;
    }

    if (current >= in_.devices.size()) throw Error("no device left to place " + nm);
    const auto [device, budget] = in_.devices[current];
    const bool is_main = std::find(main_.begin(), main_.end(), current) != main_.end();
    std::optional<std::int64_t> max_size = budget;
    std::int64_t reserved = 0;
    if (max_size && is_main) {
      *max_size -= max_layer_;
      reserved = max_layer_;
    }
    if (is_main) out_.reserve[current] = max_layer_;

    std::optional<int> layer;
    std::int64_t kv_layers = 0;
    const std::int64_t kv_here = kv_for(item, current, &layer, &kv_layers);
    const std::int64_t module_size = size(item) + kv_here;
    const auto tied_params = tied_params_outside(nm);
    std::vector<Item> tied_modules;
    const std::int64_t with_ties = size_with_ties(tied_params, module_size, queue_, &tied_modules);
    std::int64_t& used = out_.used[current];

    if (!max_size || used + with_ties <= *max_size) {
      used += with_ties;
      out_.weights[current] += with_ties - kv_here;
      out_.assignments.emplace_back(nm, device);
      for (Item t : tied_modules) {
        if (auto pos = std::find(queue_.begin(), queue_.end(), t); pos != queue_.end()) queue_.erase(pos);
        out_.assignments.emplace_back(name(t), device);
      }
      if (layer) charged_[static_cast<std::size_t>(*layer)] = 1;
      if (kv_here > 0) {
        out_.kv[current] += kv_here;
      } else if (kv_layers > 0) {
        const std::size_t runs_on = runs_offloaded_on(current);
        out_.kv[runs_on] += kv_layers * in_.kv_per_layer;
        out_.used[runs_on] += kv_layers * in_.kv_per_layer;
        if (runs_on < current) out_.kv_late[runs_on] += kv_layers * in_.kv_per_layer;
      }
      if (!in_.offload_buffers && !item.tensor) out_.buffers[current] += sz_.module_buffers[static_cast<std::size_t>(item.id)];
      continue;
    }

    // The module alone fits: try to open one of its tied partners instead of moving on.
    if (!tied_params.empty() && used + module_size <= *max_size) {
      bool split = false;
      for (Item t : tied_modules) {
        if (!has_children(t) || no_split(t)) continue;
        const auto children = split_items(t);
        auto pos = std::find(queue_.begin(), queue_.end(), t);
        pos = queue_.erase(pos);
        queue_.insert(pos, children.begin(), children.end());
        queue_.push_front(item);
        max_layer_size(queue_, true);
        split = true;
        break;
      }
      if (split) continue;
    }

    if (used + module_size >= *max_size && splittable(item)) {
      const auto children = split_items(item);
      queue_.insert(queue_.begin(), children.begin(), children.end());
      max_layer_size(queue_, true);
      continue;
    }

    if (used == 0 && in_.fallback_allocation && !device.is_disk()) {
      const std::int64_t limit = *budget - std::max(max_layer_, with_ties);
      if (auto found = fallback_allocate(limit - used)) {
        queue_.push_front(item);
        queue_.push_front(*found);
        continue;
      }
    }

    if (used == 0) out_.minimum_assignment.emplace_back(device, with_ties + reserved);
    used += reserved;
    ++current;
    queue_.push_front(item);
  }
  return std::move(out_);
}

}  // namespace

WalkResult walk(const WalkInput& in) { return Walker(in).run(); }

}  // namespace devicemap::detail
