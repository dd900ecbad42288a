// The `devicemap` command line as people and scripts use it: plan, inspect, devices, bench plan.
#include "testkit.hpp"

#include <fstream>

#include "cli/progress_bar.hpp"
#include "devicemap_version.hpp"
#include "format/resources.hpp"
#include "kernels/matvec.hpp"
#include "model/model_source.hpp"
#include "plan/device_map.hpp"
#include "plan/machine.hpp"
#include "plan/planner.hpp"
#include "plan/speed_model.hpp"

using namespace devicemap;

class CliPlan : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void version_names_the_build_and_what_it_runs_on() {
    const auto r = testkit::run_cli({"--version"});
    QCOMPARE(r.code, 0);
    const auto out = QString::fromStdString(r.out);
    QVERIFY2(out.startsWith(QStringLiteral("devicemap " DEVICEMAP_VERSION "\n")), r.out.c_str());
    QVERIFY2(out.contains(QStringLiteral("running layer: ")), r.out.c_str());
    QVERIFY2(out.contains(QString::fromStdString("CPU kernels: " + kernels::dispatch_target() + " ")), r.out.c_str());
    QVERIFY(!kernels::dispatch_target().empty());
  }
  void json_output_is_the_planner_map() {
    const auto r = testkit::run_cli({"plan", "catalog:llama-3.1-70b", "--max-memory", "0=20GiB,1=20GiB,cpu=64GiB", "--format", "json"});
    QCOMPARE(r.code, 0);
    const auto printed = DeviceMap::from_json(nlohmann::json::parse(r.out), "stdout");
    PlanOptions o;
    const auto expected = plan_device_map(open_model("catalog:llama-3.1-70b").skeleton,
                                          MaxMemory::parse("0=20GiB,1=20GiB,cpu=64GiB"), o);
    QVERIFY(printed == expected.device_map);
    QCOMPARE(printed.device_of("model.layers.79.mlp.up_proj.weight"), std::optional(Device::disk()));
  }
  void writes_the_file_and_never_overwrites_without_force() {
    testkit::TempDir dir;
    const auto out = (dir / "device_map.json").string();
    auto r = testkit::run_cli({"plan", testkit::demo_dir().string(), "--max-memory", "cpu=1GiB", "-o", out});
    QCOMPARE(r.code, 0);
    QCOMPARE(DeviceMap::load(out).to_json().dump(), std::string(R"({"":"cpu"})"));
    std::ofstream(out) << "{\"mine\": 0}\n";
    r = testkit::run_cli({"plan", testkit::demo_dir().string(), "--max-memory", "cpu=1GiB", "-o", out});
    QVERIFY(r.code != 0);
    QVERIFY(QString::fromStdString(r.err).contains("--force"));
    QCOMPARE(read_all(out), std::string("{\"mine\": 0}\n"));
    r = testkit::run_cli({"plan", testkit::demo_dir().string(), "--max-memory", "cpu=1GiB", "-o", out, "--force"});
    QCOMPARE(r.code, 0);
  }
  void table_shows_budgets_ranges_and_fit() {
    const auto r = testkit::run_cli({"plan", "catalog:llama-3.1-70b", "--profile", "2x24gb", "--dtype", "bfloat16"});
    QCOMPARE(r.code, 0);
    const auto out = QString::fromStdString(r.out);
    QVERIFY2(out.contains("model.layers.0-"), r.out.c_str());
    QVERIFY(out.contains("24.00 GiB"));
    QVERIFY(out.contains("fits"));
    // The predicted speed is the speed model's for the printed plan on the profile's figures.
    const Skeleton s = open_model("catalog:llama-3.1-70b").skeleton;
    PlanOptions o;
    o.dtype = DType::BF16;
    const Machine m = load_profile(resources_dir() / "profiles" / "2x24gb.json");
    const Plan plan = plan_device_map(s, default_max_memory(m), o);
    const auto p = predict_decode_speed(s, plan.device_map, m, {DType::BF16});
    QVERIFY(p.known);
    QVERIFY2(out.contains(QString::fromStdString("decode    " + p.summary())), r.out.c_str());
    QVERIFY(out.contains("bound by PCIe"));  // 86 GiB of the 70B cross the link every token
    QVERIFY(out.contains("PCIe 25 GB/s"));
  }
  // The catalog planned at 4 bits: more layers on the GPU than at 16 bits, the walk on 90% budgets, the
  // table by real bytes.
  void catalog_plans_at_four_bits() {
    const std::vector<std::string> base{"plan", "catalog:llama-3.1-8b", "--max-memory", "0=6GiB,cpu=30GiB"};
    auto four = base;
    four.insert(four.end(), {"--load-in-4bit", "--bnb-4bit-quant-type", "nf4"});
    const auto plain = testkit::run_cli(base), quantized = testkit::run_cli(four);
    QVERIFY2(plain.code == 0 && quantized.code == 0, quantized.err.c_str());
    const auto out = QString::fromStdString(quantized.out);
    QVERIFY2(out.contains("quantized bitsandbytes 4-bit nf4: planned as transformers sizes it") && out.contains("5.40 GiB"), quantized.out.c_str());
    QVERIFY2(QString::fromStdString(plain.out).contains("model.layers.9-31"), plain.out.c_str());
    QVERIFY2(!out.contains("model.layers.9-31") && out.contains("fits"), quantized.out.c_str());
  }
  void errors_are_one_clear_line_data() {
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("needle");
    QTest::newRow("bad size") << QStringList{"plan", "catalog:gpt2", "--max-memory", "0=lots"} << "'lots'";
    QTest::newRow("bad device") << QStringList{"plan", "catalog:gpt2", "--max-memory", "tpu=1GB"} << "tpu";
    QTest::newRow("balanced with disk") << QStringList{"plan", "catalog:gpt2", "--max-memory", "0=1GB,cpu=1GB,disk=9GB"} << "disk";
    QTest::newRow("low_0 gaps") << QStringList{"plan", "catalog:gpt2", "--strategy", "balanced_low_0", "--max-memory", "0=1GB,2=1GB,cpu=1GB"} << "balanced_low_0";
    QTest::newRow("unknown model") << QStringList{"plan", "catalog:nope"} << "nope";
    QTest::newRow("missing folder") << QStringList{"plan", "/nonexistent/model"} << "/nonexistent/model";
    QTest::newRow("unknown option") << QStringList{"plan", "catalog:gpt2", "--bogus"} << "--bogus";
    QTest::newRow("both bnb") << QStringList{"plan", "catalog:gpt2", "--load-in-8bit", "--load-in-4bit"} << "--load-in-8bit";
    QTest::newRow("quant type alone") << QStringList{"plan", "catalog:gpt2", "--bnb-4bit-quant-type", "nf4"} << "--load-in-4bit";
    QTest::newRow("bad quant type") << QStringList{"plan", "catalog:gpt2", "--load-in-4bit", "--bnb-4bit-quant-type", "int3"} << "int3";
    QTest::newRow("bad pin") << QStringList{"plan", "catalog:gpt2", "--pin", "transformer.h.99=0", "--max-memory", "0=1GB,cpu=1GB"} << "transformer.h.99";
  }
  void errors_are_one_clear_line() {
    QFETCH(QStringList, args);
    QFETCH(QString, needle);
    std::vector<std::string> a;
    for (const auto& s : args) a.push_back(s.toStdString());
    const auto r = testkit::run_cli(a);
    QCOMPARE(r.code, 1);
    QVERIFY2(QString::fromStdString(r.err).contains(needle), r.err.c_str());
    QCOMPARE(QString::fromStdString(r.err).count('\n'), 1);
  }
  void inspect_describes_the_demo() {
    const auto r = testkit::run_cli({"inspect", testkit::demo_dir().string()});
    QCOMPARE(r.code, 0);
    const auto out = QString::fromStdString(r.out);
    QVERIFY2(out.contains("llama") && out.contains("model.layers.0-4") && out.contains("lm_head.weight"), r.out.c_str());
  }
  void bench_plan_prints_json_lines_with_bounds() {
    const auto r = testkit::run_cli({"bench", "plan", "--format", "json", "--runs", "3"});
    QCOMPARE(r.code, 0);
    int lines = 0;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line); ++lines) {
      const auto j = nlohmann::json::parse(line);
      QVERIFY(j["value"].get<double>() > 0);
      const bool curve = j["name"].get<std::string>().starts_with("what_if.");
      QCOMPARE(QString::fromStdString(j["unit"]), QString(curve ? "ms" : "us"));
      QVERIFY(j["bound"].get<double>() > 0 && j["ratio"].get<double>() > 0);
    }
    QCOMPARE(lines, 6 + 3);  // three planners × two strategies, three What-if curves
  }
  void progress_line_shows_fraction_bytes_speed_and_tensor() {
    LoadProgress p;
    p.bytes_done = 1ull << 30;
    p.bytes_total = 4ull << 30;
    p.tensors_done = 10;
    p.tensors_total = 40;
    p.tensor = "model.layers.3.mlp.up_proj.weight";
    const std::string line = cli::progress_line(p, 2.0, 200);
    DM_COMPARE_STR(line, std::string("loading [######------------------]  25%  1.00 GiB / 4.00 GiB  0.537 GB/s  "
                                     "model.layers.3.mlp.up_proj.weight"));
    // Narrow terminals keep the end of the tensor name.
    DM_COMPARE_STR(cli::progress_line(p, 2.0, 90),
                   std::string("loading [######------------------]  25%  1.00 GiB / 4.00 GiB  0.537 GB/s  ...p_proj.weight"));
    // Done is full; no division by zero before anything is known.
    p.bytes_done = p.bytes_total;
    QVERIFY(cli::progress_line(p, 1.0).find("[########################] 100%") != std::string::npos);
    QVERIFY(cli::progress_line(LoadProgress{}, 0).find("  0%") != std::string::npos);
  }

  void devices_lists_a_profile() {
    const auto r = testkit::run_cli({"devices", "--profile", "8x80gb", "--format", "json"});
    QCOMPARE(r.code, 0);
    const auto j = nlohmann::json::parse(r.out);
    QCOMPARE(j["devices"].size(), std::size_t(10));
    QCOMPARE(j["default_max_memory"]["7"].get<std::uint64_t>(), std::uint64_t(80) << 30);
  }

  void devices_measures_this_machine_into_a_profile() {
    testkit::TempDir dir;
    const std::string out = (dir / "here.json").string();
    auto r = testkit::run_cli({"devices", "--measure", "--save-profile", out});
    QVERIFY2(r.code == 0, r.err.c_str());
    const Machine m = load_profile(out);
    QVERIFY(m.find(Device::cpu()) && m.find(Device::cpu())->bandwidth_gbs > 0);  // a RAM read test ran
#ifdef DEVICEMAP_HAVE_RUNTIME
    QVERIFY(m.cpu_gflops > 0 && m.cpu_gflops_bf16 > 0);  // and the runner's own dense layers
#endif
    // The profile plans and predicts like any other.
    r = testkit::run_cli({"plan", "catalog:gpt2", "--profile", out});
    QVERIFY2(r.code == 0 && r.out.find("tok/s") != std::string::npos, (r.out + r.err).c_str());
    // Never replaced without --force.
    r = testkit::run_cli({"devices", "--save-profile", out});
    QCOMPARE(r.code, 1);
    QVERIFY(r.err.find("--force") != std::string::npos);
    QCOMPARE(load_profile(out).cpu_gflops, m.cpu_gflops);
  }

 private:
  static std::string read_all(const std::string& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
  }
};

QTEST_MAIN(CliPlan)
#include "test_cli_plan.moc"
