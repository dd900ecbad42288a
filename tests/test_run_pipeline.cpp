// Pipeline stages across processes (run/pipeline.hpp) through `devicemap run --cluster`, on 127.0.0.1
// only: 2 and 3 ranks give exactly the greedy ids of one process (the demo, whose head is tied, and a
// random model with blocks on "disk" on one rank); a rank that is killed, hangs, or never comes ends
// the others with an error naming it, within a bounded time.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <QElapsedTimer>
#include <QProcess>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "testkit.hpp"

namespace fs = std::filesystem;

namespace {

using testkit::ids_of;

// A CPU-only host: `cpu` bounds its budget (forcing "disk" when small).
nlohmann::json host(const std::string& name, const std::string& cpu = "") {
  nlohmann::json h{{"name", name},
                   {"profile",
                    {{"name", "test host"},
                     {"gpus", nlohmann::json::array()},
                     {"cpu", {{"memory", "8GiB"}, {"bandwidth_gbs", 20}, {"gflops", 100}}},
                     {"disk", {{"free", "10GB"}, {"bandwidth_gbs", 2}}}}}};
  if (!cpu.empty()) h["max_memory"] = {{"cpu", cpu}};
  return h;
}

fs::path write_cluster(const testkit::TempDir& dir, const std::string& file, const nlohmann::json& hosts) {
  const fs::path p = dir / file;
  std::ofstream(p) << nlohmann::json{{"name", file}, {"hosts", hosts}, {"link", {{"gbs", 10}, {"latency_us", 20}}}}.dump();
  return p;
}

// A port nothing listens on now, for a master the test starts itself.
int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(s);
    return 0;
  }
  const int port = ntohs(a.sin_port);
  ::close(s);
  return port;
}

std::vector<std::int64_t> greedy(const std::vector<std::string>& extra, const std::string& model, int tokens) {
  std::vector<std::string> args{"run", model, "--prompt-ids", "1", "--max-new-tokens", std::to_string(tokens), "--greedy", "--output", "ids"};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto r = testkit::run_cli(args);
  if (r.code != 0) qWarning("%s", r.err.c_str());
  return r.code == 0 ? ids_of(r.out) : std::vector<std::int64_t>{};
}

// The stages `plan --cluster` makes: [first_layer, last_layer] and whether the host's map uses "disk".
struct PlannedStage {
  int first = 0, last = 0;
  bool disk = false;
};
std::vector<PlannedStage> planned(const std::string& model, const fs::path& cluster) {
  const auto r = testkit::run_cli({"plan", model, "--cluster", cluster.string(), "--format", "json"});
  std::vector<PlannedStage> out;
  if (r.code != 0) qWarning("%s", r.err.c_str());
  if (r.code != 0) return out;
  const auto plan = nlohmann::json::parse(r.out);
  for (const auto& s : plan["stages"]) {
    PlannedStage p{s["first_layer"].get<int>(), s["last_layer"].get<int>(), false};
    for (const auto& [key, device] : s["device_map"].items()) p.disk = p.disk || device == "disk";
    out.push_back(p);
  }
  return out;
}

// A random Llama big enough that a long greedy run takes seconds, without a stop id.
fs::path make_random(const testkit::TempDir& dir, const std::string& name, const nlohmann::json& config) {
  std::ofstream(dir / (name + ".json")) << config.dump();
  const auto r = testkit::run_cli({"make-model", (dir / name).string(), "--config", (dir / (name + ".json")).string(), "--seed", "7"});
  if (r.code != 0) qWarning("%s", r.err.c_str());
  return dir / name;
}

QStringList qargs(const std::vector<std::string>& args) {
  QStringList out;
  for (const auto& a : args) out << QString::fromStdString(a);
  return out;
}

}  // namespace

class TestRunPipeline : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void demoOnTwoAndThreeRanksMatchesOneProcess() {
    testkit::TempDir dir;
    const std::string demo = testkit::demo_dir().string();
    const auto reference = greedy({}, demo, 80);
    QCOMPARE(reference.size(), std::size_t{81});
    const fs::path two = write_cluster(dir, "two.json", {host("a"), host("b")});
    const fs::path three = write_cluster(dir, "three.json", {host("a"), host("b"), host("c")});
    for (const auto& cluster : {two, three}) {
      const auto stages = planned(demo, cluster);
      QCOMPARE(stages.size(), cluster == two ? std::size_t{2} : std::size_t{3});
      for (std::size_t i = 0; i < stages.size(); ++i) {  // contiguous, every stage some layers
        QCOMPARE(stages[i].first, i == 0 ? 0 : stages[i - 1].last + 1);
        QVERIFY(stages[i].last >= stages[i].first);
      }
      QCOMPARE(stages.back().last, 4);  // the demo's 5 layers, its tied head on the last stage
      QCOMPARE(greedy({"--cluster", cluster.string(), "--local"}, demo, 80), reference);
    }
  }

  // The launch `plan --cluster -o` writes for devicemap itself, run as a user would on each host (here
  // both on 127.0.0.1, with the master's address replaced), gives the same ids as one process.
  void exportedLaunchScriptRunsThePipeline() {
    testkit::TempDir dir;
    const std::string demo = testkit::demo_dir().string();
    const fs::path cluster = write_cluster(dir, "c.json", {host("first"), host("second")});
    auto r = testkit::run_cli({"plan", demo, "--cluster", cluster.string(), "--dtype", "float32", "-o", (dir / "out").string()});
    QVERIFY2(r.code == 0, r.err.c_str());
    const fs::path script = dir / "out" / "devicemap-launch.sh";
    QVERIFY(fs::exists(script) && (fs::status(script).permissions() & fs::perms::owner_exec) != fs::perms::none);
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("PATH"), QString::fromStdString(fs::path(DEVICEMAP_CLI).parent_path().string()) + QLatin1Char(':') +
                                           env.value(QStringLiteral("PATH")));
    env.insert(QStringLiteral("DEVICEMAP_MASTER"), QString::fromStdString("127.0.0.1:" + std::to_string(free_port())));
    QProcess second, first;
    second.setProcessEnvironment(env);
    first.setProcessEnvironment(env);
    second.start(QStringLiteral("/bin/sh"), qargs({script.string(), "second", "--connect-timeout", "60"}));
    first.start(QStringLiteral("/bin/sh"), qargs({script.string(), "first", "--prompt-ids", "1", "--max-new-tokens", "80", "--greedy",
                                                  "--output", "ids", "--connect-timeout", "60"}));
    QVERIFY(first.waitForFinished(120000) && second.waitForFinished(30000));
    QVERIFY2(first.exitCode() == 0 && second.exitCode() == 0,
             (first.readAllStandardError() + second.readAllStandardError()).constData());
    QCOMPARE(ids_of(first.readAllStandardOutput().toStdString()), greedy({}, demo, 80));
    QProcess stranger;
    stranger.setProcessEnvironment(env);
    stranger.start(QStringLiteral("/bin/sh"), qargs({script.string(), "third"}));
    QVERIFY(stranger.waitForFinished(30000));
    QCOMPARE(stranger.exitCode(), 2);
    QVERIFY(stranger.readAllStandardError().contains("'third' is not a host of this cluster (first second)"));
  }

  // An untied random model, 3 ranks, the middle one with a budget that sends blocks to "disk"; also a
  // prompt longer than a prefill chunk, so the prompt crosses the stages in pieces.
  void randomModelWithDiskOnOneRankMatchesOneProcess() {
    testkit::TempDir dir;
    const fs::path model = make_random(dir, "m", {{"model_type", "llama"}, {"hidden_size", 64}, {"intermediate_size", 96},
                                                  {"num_hidden_layers", 6}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                                                  {"vocab_size", 300}, {"max_position_embeddings", 256}, {"bos_token_id", 1}});
    const fs::path cluster = write_cluster(dir, "c.json", {host("a"), host("b", "40KB"), host("c")});
    const auto stages = planned(model.string(), cluster);
    QCOMPARE(stages.size(), std::size_t{3});
    QVERIFY2(stages[1].disk && !stages[0].disk, "the middle rank's map puts blocks on disk");
    const std::vector<std::string> chunked{"--prompt-ids", "1 5 9 13 17 21 25 29 33 37 41", "--max-new-tokens", "40", "--prefill-chunk", "4"};
    std::vector<std::string> local{"--cluster", cluster.string(), "--local"};
    const auto reference = greedy(chunked, model.string(), 0);
    QCOMPARE(reference.size(), std::size_t{51});
    local.insert(local.end(), chunked.begin(), chunked.end());
    QCOMPARE(greedy(local, model.string(), 0), reference);
  }

  // Rank 1 is started by hand; rank 0 streams ids. Killing rank 1 (or stopping it: a hang) ends rank 0
  // with an error that names rank 1, long before the generation would have ended.
  void killedOrHungRankEndsTheOthers() {
    testkit::TempDir dir;
    const fs::path model = make_random(dir, "big", {{"model_type", "llama"}, {"hidden_size", 256}, {"intermediate_size", 512},
                                                    {"num_hidden_layers", 4}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                                                    {"vocab_size", 4000}, {"max_position_embeddings", 8192}, {"bos_token_id", 1}});
    const fs::path cluster = write_cluster(dir, "c.json", {host("a"), host("b")});
    for (const int signal : {SIGKILL, SIGSTOP}) {
      const std::string master = "127.0.0.1:" + std::to_string(free_port());
      const std::vector<std::string> common{"run", model.string(), "--cluster", cluster.string(), "--master", master, "--timeout", "3"};
      auto rank0_args = common, rank1_args = common;
      rank0_args.insert(rank0_args.end(), {"--rank", "0", "--prompt-ids", "1", "--max-new-tokens", "8000", "--greedy", "--output", "ids"});
      rank1_args.insert(rank1_args.end(), {"--rank", "1"});
      QProcess rank0, rank1;
      rank1.start(QString::fromUtf8(DEVICEMAP_CLI), qargs(rank1_args));
      rank0.start(QString::fromUtf8(DEVICEMAP_CLI), qargs(rank0_args));
      QVERIFY(rank0.waitForStarted(30000) && rank1.waitForStarted(30000));
      QByteArray out;
      QElapsedTimer clock;
      clock.start();
      while (ids_of(out.toStdString()).size() < 20 && rank0.state() == QProcess::Running && clock.elapsed() < 120000) {
        rank0.waitForReadyRead(1000);
        out += rank0.readAllStandardOutput();
      }
      QVERIFY2(ids_of(out.toStdString()).size() >= 20, rank0.readAllStandardError().constData());
      ::kill(static_cast<pid_t>(rank1.processId()), signal);
      clock.restart();
      QVERIFY2(rank0.waitForFinished(30000), "rank 0 ends within the timeout");
      const qint64 took = clock.elapsed();
      const std::string err = rank0.readAllStandardError().toStdString();
      QVERIFY2(rank0.exitStatus() == QProcess::NormalExit && rank0.exitCode() == 1, err.c_str());
      QVERIFY2(testkit::contains(err, "rank 1"), err.c_str());
      out += rank0.readAllStandardOutput();
      QVERIFY2(ids_of(out.toStdString()).size() < 8001, "stopped before the end of the generation");
      if (signal == SIGSTOP) {
        QVERIFY2(testkit::contains(err, "took longer than 3 s"), err.c_str());
        QVERIFY2(took >= 2500, std::to_string(took).c_str());  // it waited for the timeout
      }
      ::kill(static_cast<pid_t>(rank1.processId()), SIGKILL);
      rank1.waitForFinished(30000);
    }
  }

  // Ranks that hold parts of different models (here the demo's 5 layers and a random model's 6) are
  // told so by rank 0 as they connect, each with the same reason, before any step runs.
  void stagesThatDoNotJoinAreRefused() {
    testkit::TempDir dir;
    const fs::path other = make_random(dir, "m", {{"model_type", "llama"}, {"hidden_size", 64}, {"intermediate_size", 96},
                                                  {"num_hidden_layers", 6}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                                                  {"vocab_size", 300}, {"max_position_embeddings", 256}, {"bos_token_id", 1}});
    const fs::path cluster = write_cluster(dir, "c.json", {host("a"), host("b")});
    const std::string master = "127.0.0.1:" + std::to_string(free_port());
    QProcess rank1;
    rank1.start(QString::fromUtf8(DEVICEMAP_CLI),
                qargs({"run", other.string(), "--cluster", cluster.string(), "--rank", "1", "--master", master, "--connect-timeout", "60"}));
    QVERIFY(rank1.waitForStarted(30000));
    const auto r0 = testkit::run_cli({"run", testkit::demo_dir().string(), "--cluster", cluster.string(), "--rank", "0", "--master", master,
                                      "--connect-timeout", "60", "--prompt-ids", "1", "--output", "ids"});
    QVERIFY(rank1.waitForFinished(60000));
    const std::string reason = "the pipeline's stages disagree: rank 1 holds another model than rank 0 (layers 6 against 5)";
    QCOMPARE(r0.code, 1);
    QVERIFY2(testkit::contains(r0.err, reason) && r0.out.empty(), r0.err.c_str());
    const std::string err1 = rank1.readAllStandardError().toStdString();
    QCOMPARE(rank1.exitCode(), 1);
    QVERIFY2(testkit::contains(err1, reason), err1.c_str());
  }

  // bench generate --cluster: the pipeline's speed against one process, and a step's messages alone,
  // which take part of a pipeline step's time (no timing is asserted beyond that ordering).
  void benchReportsThePipelineAgainstOneProcess() {
    testkit::TempDir dir;
    const fs::path cluster = write_cluster(dir, "c.json", {host("a"), host("b")});
    const auto r = testkit::run_cli({"bench", "generate", testkit::demo_dir().string(), "--cluster", cluster.string(), "--tokens", "16",
                                     "--prefill", "0", "--format", "json"});
    QVERIFY2(r.code == 0, r.err.c_str());
    std::map<std::string, nlohmann::json> m;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
      if (!line.empty() && line.front() == '{') {
        const auto j = nlohmann::json::parse(line);
        m[j["name"].get<std::string>()] = j;
      }
    QVERIFY2(m.count("generate.demo.decode") && m.count("generate.demo.pipeline2") && m.count("generate.demo.pipeline2.transfer"), r.out.c_str());
    const auto& pipeline = m["generate.demo.pipeline2"];
    QCOMPARE(pipeline["bound"].get<double>(), m["generate.demo.decode"]["value"].get<double>());
    QVERIFY(pipeline["value"].get<double>() > 0);
    const auto& transfer = m["generate.demo.pipeline2.transfer"];
    QVERIFY(transfer["value"].get<double>() > 0);
    QVERIFY2(transfer["value"].get<double>() < transfer["bound"].get<double>(), r.out.c_str());  // the messages are part of a step
  }

  // A rank whose master never comes, and a master whose ranks never come, give up after the connect
  // timeout with what they waited for.
  void missingRanksFailAfterTheConnectTimeout() {
    testkit::TempDir dir;
    const std::string demo = testkit::demo_dir().string();
    const fs::path cluster = write_cluster(dir, "c.json", {host("a"), host("b")});
    const std::string master = "127.0.0.1:" + std::to_string(free_port());
    QElapsedTimer clock;
    clock.start();
    auto r = testkit::run_cli({"run", demo, "--cluster", cluster.string(), "--rank", "1", "--master", master, "--connect-timeout", "2"});
    QCOMPARE(r.code, 1);
    QVERIFY2(testkit::contains(r.err, "rank 1 cannot reach the pipeline's master at " + master + " within 2 s"), r.err.c_str());
    QVERIFY(clock.elapsed() < 60000);
    r = testkit::run_cli({"run", demo, "--cluster", cluster.string(), "--rank", "0", "--master", master, "--connect-timeout", "2",
                          "--prompt-ids", "1", "--output", "ids"});
    QCOMPARE(r.code, 1);
    QVERIFY2(testkit::contains(r.err, "ranks of the pipeline at " + master + " did not all connect within 2 s"), r.err.c_str());
    r = testkit::run_cli({"run", demo, "--cluster", cluster.string(), "--rank", "2", "--master", master});
    QCOMPARE(r.code, 1);
    QVERIFY2(testkit::contains(r.err, "--rank 2: the cluster has 2 hosts"), r.err.c_str());
    r = testkit::run_cli({"run", demo, "--cluster", cluster.string()});
    QCOMPARE(r.code, 1);
    QVERIFY2(testkit::contains(r.err, "--cluster needs --rank R and --master HOST:PORT"), r.err.c_str());
  }
};

QTEST_MAIN(TestRunPipeline)
#include "test_run_pipeline.moc"
