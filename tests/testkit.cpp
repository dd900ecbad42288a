#include "testkit.hpp"

#include <QProcess>
#include <fstream>
#include <random>
#include <sstream>

#include "error.hpp"

namespace testkit {
namespace fs = std::filesystem;

fs::path data_dir() { return DEVICEMAP_TEST_DATA; }
fs::path resources_dir() { return DEVICEMAP_RESOURCES; }
fs::path demo_dir() { return resources_dir() / "demo"; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const devicemap::Error& e) {
    return e.what();
  }
  return {};
}

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

void write_text(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

devicemap::Machine two_small_gpus() {
  return devicemap::machine_from_profile(nlohmann::json::parse(R"({
      "name": "two small GPUs",
      "gpus": [{"name": "A", "memory": "400KiB"}, {"name": "B", "memory": "400KiB"}],
      "cpu": {"memory": "300KiB"},
      "disk": {"free": "1GiB"}})"),
                                         "test profile");
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return nlohmann::json::parse(in);
}

TempDir::TempDir() {
  std::random_device rd;
  for (;;) {
    path_ = fs::temp_directory_path() / ("devicemap-test-" + std::to_string(rd()));
    if (fs::create_directory(path_)) break;
  }
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::vector<std::int64_t> ids_of(const std::string& text) {
  std::vector<std::int64_t> ids;
  std::istringstream in(text);
  for (std::int64_t v; in >> v;) ids.push_back(v);
  return ids;
}

CommandResult run_cli(const std::vector<std::string>& args, const std::string& stdin_text) {
  QProcess p;
  QStringList qargs;
  for (const auto& a : args) qargs << QString::fromStdString(a);
  p.start(QString::fromUtf8(DEVICEMAP_CLI), qargs);
  if (!p.waitForStarted(30000)) return {};
  if (!stdin_text.empty()) p.write(stdin_text.data(), static_cast<qint64>(stdin_text.size()));
  p.closeWriteChannel();
  p.waitForFinished(600000);
  CommandResult r;
  r.code = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
  r.out = p.readAllStandardOutput().toStdString();
  r.err = p.readAllStandardError().toStdString();
  return r;
}

}  // namespace testkit
