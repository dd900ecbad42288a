#include "model/stage_skeleton.hpp"

#include <algorithm>
#include <string>

#include "error.hpp"

namespace devicemap {
namespace {

bool inside_layer(const Skeleton& s, int m) {
  for (int a = s.modules[static_cast<std::size_t>(m)].parent; a >= 0; a = s.modules[static_cast<std::size_t>(a)].parent)
    if (s.modules[static_cast<std::size_t>(a)].is_layer) return true;
  return false;
}

}  // namespace

std::vector<int> decoder_layers(const Skeleton& s) {
  // Depth first in registration order: the order the layers run in.
  std::vector<int> out, stack{0};
  while (!stack.empty()) {
    const int m = stack.back();
    stack.pop_back();
    const auto& sm = s.modules[static_cast<std::size_t>(m)];
    if (sm.is_layer && !inside_layer(s, m)) {
      out.push_back(m);
      continue;
    }
    for (auto c = sm.children.rbegin(); c != sm.children.rend(); ++c) stack.push_back(*c);
  }
  return out;
}

Skeleton stage_skeleton(const Skeleton& s, const StageCut& cut) {
  const std::vector<int> layers = decoder_layers(s);
  if (cut.first_layer >= cut.end_layer || cut.end_layer > layers.size())
    throw Error("stage: layers " + std::to_string(cut.first_layer) + "-" + std::to_string(cut.end_layer) + " of a model with " +
                std::to_string(layers.size()) + " decoder layers");

  // Where each module belongs: a module of a layer goes with its layer; an ancestor of layers is a
  // container every stage has; other modules go first or last by where they stand against the layers,
  // unless no persistent weight lies below them (rotary embeddings), which every stage keeps.
  const std::size_t n = s.modules.size();
  std::vector<int> layer_of(n, -1);  // index into `layers`
  for (std::size_t i = 0; i < layers.size(); ++i) layer_of[static_cast<std::size_t>(layers[i])] = static_cast<int>(i);
  for (std::size_t m = 1; m < n; ++m)  // parents come before their children
    if (layer_of[m] < 0 && s.modules[m].parent >= 0) layer_of[m] = layer_of[static_cast<std::size_t>(s.modules[m].parent)];
  std::vector<char> holds_layers(n, 0), has_weights(n, 0);
  for (const int l : layers)
    for (int a = l; a >= 0; a = s.modules[static_cast<std::size_t>(a)].parent) holds_layers[static_cast<std::size_t>(a)] = 1;
  for (const auto& t : s.tensors)
    if (!t.buffer || t.persistent)
      for (int a = t.module; a >= 0; a = s.modules[static_cast<std::size_t>(a)].parent) has_weights[static_cast<std::size_t>(a)] = 1;
  // Registration position, to tell before the layers from after them.
  std::vector<int> position(n, 0);
  {
    int next = 0;
    std::vector<int> stack{0};
    while (!stack.empty()) {
      const int m = stack.back();
      stack.pop_back();
      position[static_cast<std::size_t>(m)] = next++;
      const auto& c = s.modules[static_cast<std::size_t>(m)].children;
      for (auto it = c.rbegin(); it != c.rend(); ++it) stack.push_back(*it);
    }
  }
  const int first_layer_position = position[static_cast<std::size_t>(layers.front())];
  const auto keep = [&](int m) {
    const auto i = static_cast<std::size_t>(m);
    if (layer_of[i] >= 0)
      return static_cast<std::size_t>(layer_of[i]) >= cut.first_layer && static_cast<std::size_t>(layer_of[i]) < cut.end_layer;
    if (holds_layers[i] || !has_weights[i]) return true;
    return position[i] < first_layer_position ? cut.first : cut.last;
  };

  Skeleton out;
  out.no_split_module_classes = s.no_split_module_classes;
  out.config = s.config;
  out.model_type = s.model_type;
  out.warnings = s.warnings;
  out.modules[0].cls = s.modules[0].cls;
  for (std::size_t m = 1; m < n; ++m) {
    if (!keep(static_cast<int>(m))) continue;
    const int k = out.ensure_module(s.modules[m].name);
    out.modules[static_cast<std::size_t>(k)].cls = s.modules[m].cls;
    out.modules[static_cast<std::size_t>(k)].is_layer = s.modules[m].is_layer;
  }
  // A container's own tensors (rare) go with the first stage.
  const auto keep_tensor = [&](const SkeletonTensor& t) {
    return holds_layers[static_cast<std::size_t>(t.module)] ? cut.first : keep(t.module);
  };
  for (const auto& t : s.tensors) {
    if (!keep_tensor(t)) continue;
    SkeletonTensor copy = t;
    copy.tied_to = -1;  // an alias whose partner is elsewhere holds its own copy here
    out.add_tensor(std::move(copy));
  }
  for (const auto& t : s.tensors)
    if (t.tied_to >= 0 && keep_tensor(t) && keep_tensor(s.tensors[static_cast<std::size_t>(t.tied_to)]))
      out.tie(s.tensors[static_cast<std::size_t>(t.tied_to)].name, t.name);
  return out;
}

}  // namespace devicemap
