// No weight is lost from a plan: for every skeleton the tests and the catalog know, with its ties listed
// in either order and with the alias named in "params" after or before its partner, every tensor is
// placed, and the bytes the plan places add up to the skeleton's total (each tied group once), under every
// strategy on budgets that fit, offload and split across GPUs.
#include "testkit.hpp"

#include <map>

#include "error.hpp"
#include "model/model_source.hpp"
#include "model/skeleton.hpp"
#include "plan/planner.hpp"

using namespace devicemap;

namespace {

struct Case {
  std::string name;
  nlohmann::json json;  // a skeleton file
  std::string canonical_of = "";  // the variants: the tie groups of the skeleton they were made from
  std::uint64_t total = 0;        // and its bytes
};

std::string groups_text(const Skeleton& s) {
  std::string out;
  for (const auto& g : s.tie_groups()) {
    for (const auto& n : g) out += n + " ";
    out += "| canonical ";
    for (const auto& n : g)
      if (s.tensors[static_cast<std::size_t>(s.find_tensor(n))].tied_to < 0) out += n;
    out += "; ";
  }
  return out;
}

// The skeleton file with each tie pair listed alias first, and the alias also named in "params", after
// its partner or before it. The canonical tensor stays the one first in module order (the modules are
// listed as they were), as PyTorch's deduplication sees it.
nlohmann::json with_ties_reversed(const nlohmann::json& j, bool alias_first) {
  nlohmann::json out = j;
  if (!j.contains("tied")) return out;
  std::map<std::string, nlohmann::json> param_of;
  for (const auto& p : j["params"]) param_of[p[0].get<std::string>()] = p;
  auto tied = nlohmann::json::array();
  nlohmann::json params = out["params"];
  for (const auto& pair : j["tied"]) {
    const auto canonical = pair[0].get<std::string>();
    for (std::size_t k = 1; k < pair.size(); ++k) {
      const auto alias = pair[k].get<std::string>();
      tied.push_back({alias, canonical});
      if (!param_of.contains(canonical) || param_of.contains(alias)) continue;
      nlohmann::json entry = param_of[canonical];
      entry[0] = alias;
      auto at = params.begin();
      while (at != params.end() && (*at)[0] != canonical) ++at;
      params.insert(alias_first ? at : at + 1, entry);
    }
  }
  out["params"] = params;
  out["tied"] = tied;
  return out;
}

std::vector<Case> every_skeleton() {
  std::vector<Case> base;
  for (const char* name : {"llama2_7b", "qwen2_0_5b"})
    base.push_back({std::string("conformance ") + name, testkit::read_json(testkit::data_dir() / "conformance" / (std::string(name) + ".json"))});
  for (const auto& e : catalog()) base.push_back({"catalog " + e.id, skeleton_from_config(e.config).to_json()});
  base.push_back({"demo", open_model(std::string(DEVICEMAP_RESOURCES) + "/demo").skeleton.to_json()});
  // GPT-2 as the report that found the loss wrote it: both names in params, the embedding first, the
  // pair listed head first.
  nlohmann::json gpt2 = skeleton_from_config(find_catalog_entry(catalog(), "gpt2")->config).to_json();
  base.push_back({"gpt2 as listed", with_ties_reversed(gpt2, false)});
  std::vector<Case> all;
  for (const auto& c : base) {
    all.push_back(c);
    if (!c.json.contains("tied") || c.json["tied"].empty()) continue;
    // Written back first, so that the file lists its modules in order and an alias named early in
    // "params" does not reorder them.
    const Skeleton s = Skeleton::from_json(c.json, c.name);
    const nlohmann::json listed = s.to_json();
    all.push_back({c.name + " (ties reversed, alias after)", with_ties_reversed(listed, false), groups_text(s), s.total_bytes()});
    all.push_back({c.name + " (ties reversed, alias before)", with_ties_reversed(listed, true), groups_text(s), s.total_bytes()});
  }
  return all;
}

std::uint64_t tensor_bytes(const SkeletonTensor& t) { return dtype_bytes(t.dtype, t.numel()); }

}  // namespace

class PlanBytesTest : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void reversed_ties_keep_their_bytes();
  void every_plan_places_every_byte();
};

void PlanBytesTest::reversed_ties_keep_their_bytes() {
  // The report: GPT-2 (124M, float32: 497,759,232 bytes with the embedding once) listed as
  // [["lm_head.weight", "transformer.wte.weight"]] counted 147 MiB less.
  const Skeleton gpt2 = skeleton_from_config(find_catalog_entry(catalog(), "gpt2")->config);
  const Skeleton listed = Skeleton::from_json(with_ties_reversed(gpt2.to_json(), false), "gpt2 as listed");
  QCOMPARE(listed.total_bytes(), gpt2.total_bytes());
  const int head = listed.find_tensor("lm_head.weight"), wte = listed.find_tensor("transformer.wte.weight");
  QVERIFY(head >= 0 && wte >= 0);
  QCOMPARE(listed.tensors[static_cast<std::size_t>(head)].tied_to, wte);  // registered first: canonical
  QCOMPARE(listed.tensors[static_cast<std::size_t>(wte)].tied_to, -1);
  MaxMemory small;
  small.set(Device::gpu(0), std::uint64_t(0.35 * (1ull << 30)));
  small.set(Device::cpu(), std::uint64_t(8) << 30);
  const Plan plan = plan_device_map(listed, small, {});
  QVERIFY2(plan.device_map.device_of("transformer.h.11.mlp.c_proj.weight") != Device::gpu(0),
           "0.35 GiB cannot hold all of GPT-2's 0.46 GiB");
  // Every other skeleton with its ties in both orders.
  int variants = 0;
  for (const auto& c : every_skeleton()) {
    const Skeleton s = Skeleton::from_json(c.json, c.name);
    QVERIFY2(s.total_bytes() > 0, c.name.c_str());
    if (c.canonical_of.empty()) continue;
    ++variants;
    QVERIFY2(s.total_bytes() == c.total, c.name.c_str());
    DM_COMPARE_STR(groups_text(s), c.canonical_of);
  }
  QVERIFY(variants >= 10);
}

void PlanBytesTest::every_plan_places_every_byte() {
  int plans = 0;
  for (const auto& c : every_skeleton()) {
    const Skeleton s = Skeleton::from_json(c.json, c.name);
    const std::uint64_t total = s.total_bytes();
    std::uint64_t counted = 0;
    for (const auto& t : s.tensors)
      if (t.tied_to < 0) counted += tensor_bytes(t);
    QCOMPARE(counted, total);
    const std::uint64_t t3 = total / 3 + 1, t5 = total / 5 + 1;
    std::vector<MaxMemory> budgets(3);
    budgets[0].set(Device::gpu(0), 2 * total), budgets[0].set(Device::cpu(), 2 * total);  // all fits
    budgets[1].set(Device::gpu(0), t3), budgets[1].set(Device::cpu(), t3);                // a third on disk
    budgets[2].set(Device::gpu(0), t5), budgets[2].set(Device::gpu(1), t5), budgets[2].set(Device::cpu(), t5);
    for (Strategy strategy : {Strategy::Auto, Strategy::Sequential, Strategy::BalancedLow0}) {
      for (std::size_t b = 0; b < budgets.size(); ++b) {
        const std::string what = c.name + ", " + std::string(strategy_name(strategy)) + ", budget " + std::to_string(b);
        PlanOptions opt;
        opt.strategy = strategy;
        const Plan plan = plan_device_map(s, budgets[b], opt);
        ++plans;
        // As the walk counted it, and tensor by tensor through the exported map.
        std::uint64_t walked = 0;
        for (const auto& u : plan.devices) walked += static_cast<std::uint64_t>(u.weights);
        QVERIFY2(walked == total, (what + ": the walk counted " + std::to_string(walked) + " of " + std::to_string(total)).c_str());
        // One index per plan (a lookup per tensor through the map would rebuild it each time), and the
        // message built only on failure: 405B MoE skeletons hold ~10^5 tensors.
        const DeviceMapIndex where(plan.device_map);
        std::uint64_t placed = 0;
        for (const auto& t : s.tensors) {
          if (!where.device_of(t.name)) QFAIL((what + ": " + t.name + " is placed nowhere").c_str());
          if (t.tied_to < 0) placed += tensor_bytes(t);
        }
        QVERIFY2(placed == total, (what + ": placed " + std::to_string(placed) + " of " + std::to_string(total)).c_str());
        QVERIFY2(plan.total_bytes == static_cast<std::int64_t>(total), what.c_str());
      }
    }
  }
  QVERIFY(plans > 100);
}

QTEST_MAIN(PlanBytesTest)
#include "test_plan_bytes.moc"
