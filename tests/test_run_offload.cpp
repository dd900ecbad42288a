// The offload folder in Accelerate's format: what it writes, what it reads from an index Accelerate or
// transformers wrote, and the checks on names and sizes.
#include <fstream>
#include <string>
#include <vector>

#include "error.hpp"
#include "format/mapped_file.hpp"
#include "run/offload_folder.hpp"
#include "testkit.hpp"

using namespace devicemap;
namespace fs = std::filesystem;

class TestRunOffload : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void writesAccelerateLayout() {
    testkit::TempDir dir;
    OffloadFolder folder(dir / "off");
    const std::vector<float> values{1.5f, -2.0f, 0.25f, 8.0f, 0.0f, 3.0f};
    folder.write("model.layers.0.mlp.up_proj.weight", DType::F32, {2, 3}, std::as_bytes(std::span<const float>(values)));
    const std::vector<std::uint16_t> halves{0x3f80, 0xc000};  // bfloat16 1.0, -2.0
    folder.write("model.norm.weight", DType::BF16, {2}, std::as_bytes(std::span<const std::uint16_t>(halves)));
    folder.save_index();

    const auto index = testkit::read_json(dir / "off" / "index.json");
    QCOMPARE(index.size(), std::size_t{2});
    DM_COMPARE_STR(index["model.norm.weight"]["dtype"].get<std::string>(), std::string("bfloat16"));
    QCOMPARE(index["model.layers.0.mlp.up_proj.weight"]["shape"].get<std::vector<int>>(), (std::vector<int>{2, 3}));
    std::ifstream in(dir / "off" / "model.layers.0.mlp.up_proj.weight.dat", std::ios::binary);
    std::vector<float> back(6);
    in.read(reinterpret_cast<char*>(back.data()), 24);
    QCOMPARE(back, values);

    const auto mapped = folder.map("model.norm.weight");
    QCOMPARE(mapped->size(), std::size_t{4});
  }

  void readsIndexWrittenByOthers() {
    testkit::TempDir dir;
    // transformers lists safetensors-backed entries next to .dat ones; only the latter need files.
    std::ofstream(dir / "index.json") << R"({
      "lm_head.weight": {"dtype": "float16", "shape": [4, 2]},
      "model.layers.1.self_attn.q_proj.weight": {"safetensors_file": "model.safetensors", "weight_name": "x", "dtype": "bfloat16"}
    })";
    std::ofstream(dir / "lm_head.weight.dat", std::ios::binary) << std::string(16, '\0');
    OffloadFolder folder(dir.path());
    QCOMPARE(folder.entries().size(), std::size_t{1});
    QCOMPARE(folder.find("lm_head.weight")->dtype, DType::F16);
    QCOMPARE(folder.map("lm_head.weight")->size(), std::size_t{16});

    // Another program's folder is never written to: no tensor is added, the index stays as it was.
    QVERIFY(!folder.owned());
    const std::vector<std::int64_t> one{7};
    DM_EXPECT_ERROR(folder.write("extra", DType::I64, {1}, std::as_bytes(std::span<const std::int64_t>(one))),
                    dir.path().string(), "another program's offload folder", "'extra'");
    const std::string index_before = testkit::read_json(dir / "index.json").dump();
    folder.save_index();
    DM_COMPARE_STR(testkit::read_json(dir / "index.json").dump(), index_before);
    QVERIFY(!fs::exists(dir / "extra.dat") && !fs::exists(dir / "devicemap-offload.json"));
  }

  void ownFolderIsMarkedAndReopenedAsOwn() {
    testkit::TempDir dir;
    const std::vector<float> v{1, 2};
    {
      OffloadFolder folder(dir / "off");
      QVERIFY(folder.owned());
      folder.write("w", DType::F32, {2}, std::as_bytes(std::span<const float>(v)));
      folder.save_index();
    }
    QVERIFY(fs::exists(dir / "off" / "devicemap-offload.json"));
    OffloadFolder again(dir / "off");
    QVERIFY(again.owned());
    QCOMPARE(again.find("w")->dtype, DType::F32);
    again.write("x", DType::F32, {2}, std::as_bytes(std::span<const float>(v)));
    again.save_index();
    QCOMPARE(testkit::read_json(dir / "off" / "index.json").size(), std::size_t{2});
  }

  void checksNamesAndSizes() {
    testkit::TempDir dir;
    OffloadFolder folder(dir.path());
    const std::vector<float> v{1, 2};
    QVERIFY_THROWS_EXCEPTION(Error, folder.write("../escape", DType::F32, {2}, std::as_bytes(std::span<const float>(v))));
    QVERIFY_THROWS_EXCEPTION(Error, folder.write("w", DType::F32, {3}, std::as_bytes(std::span<const float>(v))));
    folder.write("w", DType::F32, {2}, std::as_bytes(std::span<const float>(v)));
    std::ofstream(dir / "w.dat", std::ios::binary | std::ios::trunc) << "short";
    try {
      folder.map("w");
      QFAIL("a truncated .dat was mapped");
    } catch (const Error& e) {
      QVERIFY(std::string(e.what()).find("w.dat") != std::string::npos);
    }
    QVERIFY_THROWS_EXCEPTION(Error, folder.map("absent"));

    std::ofstream(dir / "index.json") << R"({"t": {"dtype": "complex128", "shape": [1]}})";
    QVERIFY_THROWS_EXCEPTION(Error, OffloadFolder(dir.path()));
    std::ofstream(dir / "index.json", std::ios::trunc) << "{not json";
    QVERIFY_THROWS_EXCEPTION(Error, OffloadFolder(dir.path()));
  }
};

QTEST_MAIN(TestRunOffload)
#include "test_run_offload.moc"
