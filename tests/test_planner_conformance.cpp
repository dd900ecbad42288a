// The acceptance bar of the planner: for every run of every vendored case, the map (as an unordered
// dict), the balanced budgets and the INFO log equal what Accelerate itself returned, and a run that
// Accelerate answered with an error errors too.
#include "testkit.hpp"

#include "error.hpp"
#include "model/skeleton.hpp"
#include "plan/planner.hpp"

using namespace devicemap;

class PlannerConformance : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void cases_data();
  void cases();
  void every_case_is_checked();
};

namespace {

std::vector<std::string> case_names() { return {"llama2_7b", "qwen2_0_5b"}; }

// transformers5 is a re-derivation that was never run against transformers itself (README of the cases):
// those runs are counted, not compared.
bool compared(const nlohmann::json& run) { return run.value("flavor", "accelerate") != "transformers5"; }

}  // namespace

void PlannerConformance::cases_data() {
  QTest::addColumn<QString>("case_name");
  QTest::addColumn<QString>("run_name");
  for (const auto& c : case_names()) {
    const auto j = testkit::read_json(testkit::data_dir() / "conformance" / (c + ".json"));
    for (const auto& run : j["runs"])
      if (compared(run))
        QTest::newRow((c + "/" + run["name"].get<std::string>()).c_str())
            << QString::fromStdString(c) << QString::fromStdString(run["name"].get<std::string>());
  }
}

void PlannerConformance::cases() {
  QFETCH(QString, case_name);
  QFETCH(QString, run_name);
  const auto dir = testkit::data_dir() / "conformance";
  const auto spec = testkit::read_json(dir / (case_name.toStdString() + ".json"));
  const auto expected_all = testkit::read_json(dir / "expected" / (case_name.toStdString() + ".json"));
  const auto skeleton = Skeleton::from_json(spec, case_name.toStdString());

  nlohmann::json run;
  for (const auto& r : spec["runs"])
    if (r["name"] == run_name.toStdString()) run = r;
  const auto& expected = expected_all["runs"][run_name.toStdString()];

  PlanOptions opt;
  opt.strategy = *strategy_from_name(run["strategy"].get<std::string>());
  opt.flavor = *flavor_from_name(run.value("flavor", "accelerate"));
  if (run.contains("dtype")) opt.dtype = dtype_from_torch_name(run["dtype"].get<std::string>());
  if (run.contains("no_split_module_classes"))
    opt.no_split_classes = run["no_split_module_classes"].get<std::vector<std::string>>();
  opt.offload_buffers = run.value("offload_buffers", false);
  opt.fallback_allocation = run.value("fallback_allocation", false);
  const auto max_memory = MaxMemory::from_json(run["max_memory"], "max_memory");

  if (expected.contains("error")) {
    bool threw = false;
    try {
      plan_device_map(skeleton, max_memory, opt);
    } catch (const Error& e) {
      threw = true;
      QVERIFY2(std::string(e.what()).size() > 20, e.what());
    }
    QVERIFY2(threw, "Accelerate answers this run with an error; the planner must too");
    return;
  }
  const Plan plan = plan_device_map(skeleton, max_memory, opt);

  // Budgets the walk used, after balancing.
  const auto planned_expected = MaxMemory::from_json(expected["max_memory_planned"], "expected");
  DM_COMPARE_STR(plan.planned_max_memory.to_string(), planned_expected.to_string());

  const auto want = DeviceMap::from_json(expected["device_map"], "expected");
  if (!(plan.device_map == want)) {
    qWarning().noquote() << "got:     " << QString::fromStdString(plan.device_map.to_json().dump());
    qWarning().noquote() << "expected:" << QString::fromStdString(want.to_json().dump());
  }
  QVERIFY(plan.device_map == want);

  std::vector<std::string> want_info;
  for (const auto& line : expected["log"]) {
    const auto s = line.get<std::string>();
    if (s.starts_with("INFO: ")) want_info.push_back(s.substr(6));
  }
  QCOMPARE(plan.info.size(), want_info.size());
  for (std::size_t i = 0; i < want_info.size(); ++i) DM_COMPARE_STR(plan.info[i], want_info[i]);
  std::vector<std::string> want_warnings = expected["warnings"].get<std::vector<std::string>>();
  QCOMPARE(plan.warnings.size(), want_warnings.size());
}

void PlannerConformance::every_case_is_checked() {
  // Guards the data-driven test above against silently running nothing.
  int compared_runs = 0, all_runs = 0;
  for (const auto& c : case_names()) {
    const auto j = testkit::read_json(testkit::data_dir() / "conformance" / (c + ".json"));
    const auto e = testkit::read_json(testkit::data_dir() / "conformance" / "expected" / (c + ".json"));
    for (const auto& run : j["runs"]) {
      ++all_runs;
      QVERIFY2(e["runs"].contains(run["name"].get<std::string>()), "every run has an expected answer");
      if (compared(run)) ++compared_runs;
    }
  }
  qInfo("%d of %d conformance runs compared (the rest are transformers5 re-derivations)", compared_runs, all_runs);
  QVERIFY(compared_runs >= 38);
}

QTEST_MAIN(PlannerConformance)
#include "test_planner_conformance.moc"
