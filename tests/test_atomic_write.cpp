// No lost work: a process killed with SIGKILL in the middle of writing a file (an export, a plan save,
// an offload tensor: every file the program writes goes through write_file_atomically) leaves the old
// file whole, and the half-written bytes under a temporary name that no reader opens.
#include "testkit.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "format/atomic_file.hpp"

using namespace devicemap;
namespace fs = std::filesystem;

namespace {

// The temporary file write_file_atomically streams into beside `target`, and its size; 0 when none.
std::uintmax_t temporary_size(const fs::path& target, fs::path* found = nullptr) {
  const std::string prefix = "." + target.filename().string() + ".tmp-";
  for (const auto& e : fs::directory_iterator(target.parent_path())) {
    if (!e.path().filename().string().starts_with(prefix)) continue;
    std::error_code ec;
    const auto size = fs::file_size(e.path(), ec);
    if (found) *found = e.path();
    return ec ? 0 : size;
  }
  return 0;
}

}  // namespace

class AtomicWriteTest : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void survives_kill_9_mid_write() {
    testkit::TempDir dir;
    const fs::path target = dir / "layers.plan.json";
    std::string old_content = "{\"old\": true}\n";
    old_content.append(std::size_t{1} << 20, ' ');
    write_file_atomically(target, old_content);

    constexpr std::size_t kChunk = std::size_t{1} << 20, kChunks = 256;
    const pid_t child = ::fork();
    QVERIFY(child >= 0);
    if (child == 0) {  // writes 256 MiB slowly, and is killed long before the end
      try {
        write_file_atomically(target, [&](std::ostream& out) {
          const std::string chunk(kChunk, 'n');
          for (std::size_t i = 0; i < kChunks; ++i) {
            out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
            out.flush();
            ::usleep(20000);
          }
        });
      } catch (...) {
      }
      ::_exit(0);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (temporary_size(target) < 8 * kChunk && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ::kill(child, SIGKILL);
    int status = 0;
    QCOMPARE(::waitpid(child, &status, 0), child);
    QVERIFY2(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the writer was killed, not finished");

    QCOMPARE(read_text_file(target), old_content);  // the old file, whole
    fs::path half;
    const auto written = temporary_size(target, &half);
    QVERIFY2(written >= 8 * kChunk && written < kChunks * kChunk, "the kill landed mid-write");
    QVERIFY(!half.empty());

    // The next save replaces the file whole.
    write_file_atomically(target, std::string("{\"new\": true}\n"));
    DM_COMPARE_STR(read_text_file(target), std::string("{\"new\": true}\n"));
  }

  void a_failed_write_leaves_nothing_behind() {
    testkit::TempDir dir;
    const fs::path target = dir / "device_map.json";
    write_file_atomically(target, std::string("{}\n"));
    QVERIFY_THROWS_EXCEPTION(std::runtime_error, write_file_atomically(target, [](std::ostream& out) {
                               out << "{\"half\": ";
                               throw std::runtime_error("the writer failed");
                             }));
    DM_COMPARE_STR(read_text_file(target), std::string("{}\n"));
    QCOMPARE(temporary_size(target), std::uintmax_t{0});
    QVERIFY(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);
  }
};

QTEST_MAIN(AtomicWriteTest)
#include "test_atomic_write.moc"
