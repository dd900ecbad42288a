// devicemap plan --cluster: the stages printed, one device_map.json per host and the vLLM launch
// written (never over a file without --force), JSON for scripts, and flags that do not apply refused.
#include "testkit.hpp"

#include <fstream>

#include <nlohmann/json.hpp>

#include "model/model_source.hpp"
#include "plan/device_map.hpp"

using namespace devicemap;

class CliClusterTest : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void writesOneMapPerHostAndTheLaunch() {
    testkit::TempDir dir;
    const std::string out = (dir / "maps").string();
    auto r = testkit::run_cli({"plan", "catalog:llama-3.1-70b", "--cluster", "3x2x24gb", "--dtype", "bfloat16", "--context", "4096", "-o", out});
    QVERIFY2(r.code == 0, r.err.c_str());
    QVERIFY2(testkit::contains(r.out, "ws0") && testkit::contains(r.out, "ws2") && testkit::contains(r.out, "+ head"), r.out.c_str());
    QVERIFY(testkit::contains(r.out, "tok/s at batch 1"));
    const auto model = open_model("catalog:llama-3.1-70b");
    std::size_t layers = 0;
    for (const char* host : {"ws0", "ws1", "ws2"}) {
      const DeviceMap map = DeviceMap::load(dir / "maps" / (std::string(host) + ".device_map.json"));
      for (const auto& [key, device] : map.entries()) {
        QVERIFY2(model.skeleton.find_module(key) >= 0 || model.skeleton.find_tensor(key) >= 0, key.c_str());
        layers += key.starts_with("model.layers.") && key.find('.', 13) == std::string::npos;
      }
    }
    QCOMPARE(layers, std::size_t(80));  // every layer in exactly one host's map, whole
    std::ifstream script(dir / "maps" / "vllm-launch.sh");
    const std::string text((std::istreambuf_iterator<char>(script)), {});
    QVERIFY2(testkit::contains(text, "vllm serve 'meta-llama/Llama-3.1-70B-Instruct'"), text.c_str());
    QVERIFY(testkit::contains(text, "--pipeline-parallel-size 3 --tensor-parallel-size 2"));
    std::ifstream ours(dir / "maps" / "devicemap-launch.sh");
    const std::string launch((std::istreambuf_iterator<char>(ours)), {});
    for (const char* part : {"'ws0') rank=0 ;;", "'ws2') rank=2 ;;", "master=\"${DEVICEMAP_MASTER:-ws0:29500}\"",
                             "--cluster '3x2x24gb' --rank \"$rank\" --master \"$master\" '--dtype' 'bfloat16' '--context' '4096' '--batch' '1' \"$@\""})
      QVERIFY2(testkit::contains(launch, part), (std::string(part) + " not in:\n" + launch).c_str());
    // Again without --force: refused, the files stay.
    r = testkit::run_cli({"plan", "catalog:llama-3.1-70b", "--cluster", "3x2x24gb", "-o", out});
    QCOMPARE(r.code, 1);
    QVERIFY2(testkit::contains(r.err, "ws0.device_map.json exists"), r.err.c_str());
    r = testkit::run_cli({"plan", "catalog:llama-3.1-70b", "--cluster", "3x2x24gb", "-o", out, "--force"});
    QCOMPARE(r.code, 0);
  }

  // Paths the system refuses (a name longer than a path may be) are named as such, never an internal error.
  void pathsTooLongAreNamed() {
    const std::string long_name(5000, 'a');
    auto r = testkit::run_cli({"plan", long_name});
    QCOMPARE(r.code, 1);
    QVERIFY2(testkit::contains(r.err, ": cannot be read: File name too long") && !testkit::contains(r.err, "internal error"), r.err.c_str());
    r = testkit::run_cli({"plan", "catalog:llama-3.1-8b", "--cluster", "2x8x80gb", "-o", (std::filesystem::temp_directory_path() / long_name).string()});
    QCOMPARE(r.code, 1);
    QVERIFY2(testkit::contains(r.err, "cannot create the folder") && !testkit::contains(r.err, "internal error"), r.err.c_str());
    r = testkit::run_cli({"plan", "catalog:llama-3.1-8b", "--offload-folder", (std::filesystem::temp_directory_path() / long_name).string(), "--format", "json"});
    QVERIFY2(r.code == 0, r.err.c_str());  // the disk free is read where the folder would be
  }

  void jsonCarriesTheStagesAndTheirMaps() {
    const auto r = testkit::run_cli({"plan", "catalog:llama-3.1-405b", "--cluster", "2x8x80gb", "--dtype", "bfloat16", "--format", "json"});
    QVERIFY2(r.code == 0, r.err.c_str());
    const auto j = nlohmann::json::parse(r.out);
    QCOMPARE(j["stages"].size(), std::size_t(2));
    QCOMPARE(j["stages"][0]["first_layer"].get<int>(), 0);
    QCOMPARE(j["stages"][1]["last_layer"].get<int>(), 125);
    QCOMPARE(j["stages"][0]["last_layer"].get<int>() + 1, j["stages"][1]["first_layer"].get<int>());
    QVERIFY(j["fits"].get<bool>());
    QCOMPARE(j["vllm"]["tensor_parallel_size"].get<int>(), 8);
    QVERIFY(j["tokens_per_second"].get<double>() > 0);
    QVERIFY(j["stages"][1]["device_map"].contains("lm_head"));
  }

  void flagsForOneMachineAreRefused() {
    const auto r = testkit::run_cli({"plan", "catalog:llama-3.1-8b", "--cluster", "2x8x80gb", "--profile", "1x24gb"});
    QCOMPARE(r.code, 1);
    QVERIFY2(testkit::contains(r.err, "--profile does not apply"), r.err.c_str());
    testkit::TempDir dir;
    testkit::write_text(dir / "c.json", R"({"hosts": [{"name": "a", "profile": "nope"}], "link": {"gbs": 1}})");
    const auto bad = testkit::run_cli({"plan", "catalog:llama-3.1-8b", "--cluster", (dir / "c.json").string()});
    QCOMPARE(bad.code, 1);
    QVERIFY2(testkit::contains(bad.err, "c.json: hosts[0].profile"), bad.err.c_str());
  }
};

QTEST_MAIN(CliClusterTest)
#include "test_cli_cluster.moc"
