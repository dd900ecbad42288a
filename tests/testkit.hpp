#pragma once
// Shared helpers for the test suites: where the data lives, temporary folders, small model writers.
#include <QtTest/QtTest>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plan/machine.hpp"

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

// The token ids printed as `run --output ids` prints them (space-separated).
std::vector<std::int64_t> ids_of(const std::string& text);

// The message of the devicemap::Error that `f` throws; "" when it throws none.
std::string error_of(const std::function<void()>& f);
bool contains(const std::string& haystack, const std::string& needle);

// Writes `text` to `p` as it is (binary).
void write_text(const std::filesystem::path& p, const std::string& text);

// Two simulated GPUs of 400 KiB, 300 KiB of RAM and a disk: the demo model (about 1 MiB) spreads over
// every device.
devicemap::Machine two_small_gpus();

}  // namespace testkit

// Expects `call` to throw a devicemap::Error whose message contains every one of the given strings.
#define DM_EXPECT_ERROR(call, ...)                                                                          \
  do {                                                                                                      \
    const std::string dm_msg = testkit::error_of([&] { call; });                                            \
    QVERIFY2(!dm_msg.empty(), "expected a devicemap::Error");                                               \
    for (const std::string& dm_needle : std::initializer_list<std::string>{__VA_ARGS__})                    \
      QVERIFY2(testkit::contains(dm_msg, dm_needle),                                                        \
               qPrintable(QString::fromStdString("'" + dm_needle + "' not in: " + dm_msg)));               \
  } while (0)

// QCOMPARE for std::string with a readable failure.
#define DM_COMPARE_STR(a, b) QCOMPARE(QString::fromStdString(a), QString::fromStdString(b))
