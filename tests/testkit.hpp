#pragma once
// Shared helpers for the test suites: where the data lives, temporary folders, small model writers.
#include <QtTest/QtTest>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace testkit {

std::filesystem::path data_dir();       // tests/data
std::filesystem::path resources_dir();  // resources/
std::filesystem::path demo_dir();       // resources/demo (stories260K)
nlohmann::json read_json(const std::filesystem::path& p);

// A fresh folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Runs the `devicemap` executable with arguments; returns exit code, stdout and stderr.
struct CommandResult {
  int code = -1;
  std::string out;
  std::string err;
};
CommandResult run_cli(const std::vector<std::string>& args, const std::string& stdin_text = {});

// The message of the devicemap::Error that `f` throws; "" when it throws none.
std::string error_of(const std::function<void()>& f);
bool contains(const std::string& haystack, const std::string& needle);

}  // namespace testkit

// QCOMPARE for std::string with a readable failure.
#define DM_COMPARE_STR(a, b) QCOMPARE(QString::fromStdString(a), QString::fromStdString(b))
