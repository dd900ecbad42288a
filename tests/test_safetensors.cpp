// The safetensors reader, writer and memory map: round trips, the real demo checkpoint, and one test per
// class of malformed header, each written byte by byte.
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "error.hpp"
#include "format/mapped_file.hpp"
#include "format/safetensors.hpp"
#include "testkit.hpp"

using namespace devicemap;
using testkit::contains;
using testkit::error_of;
namespace fs = std::filesystem;

namespace {

// The message of the devicemap::Error that `f` throws, or "" when it throws none.
// Writes the 8-byte little-endian `length`, then `header`, then `data_bytes` bytes counting 0, 1, 2, ...
void write_raw(const fs::path& p, std::uint64_t length, const std::string& header, std::size_t data_bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((length >> (8 * i)) & 0xff));
  out << header;
  for (std::size_t i = 0; i < data_bytes; ++i) out.put(static_cast<char>(i & 0xff));
}

void write_raw(const fs::path& p, const std::string& header, std::size_t data_bytes) {
  write_raw(p, header.size(), header, data_bytes);
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::byte> counting_bytes(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  return v;
}

struct Sample {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> bytes;
};

std::vector<TensorToWrite> to_write(const std::vector<Sample>& samples) {
  std::vector<TensorToWrite> out;
  for (const auto& s : samples) out.push_back({s.name, s.dtype, s.shape, s.bytes});
  return out;
}

}  // namespace

class TestSafetensors : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void mapped_file_reads_bytes_and_empty_files() {
    testkit::TempDir dir;
    write_raw(dir / "a.bin", 0x0102030405060708ull, "xyz", 0);
    MappedFile m(dir / "a.bin");
    QCOMPARE(m.size(), std::size_t(11));
    QCOMPARE(std::to_integer<int>(m.bytes()[0]), 0x08);
    QCOMPARE(std::to_integer<int>(m.bytes()[10]), int('z'));
    MappedFile moved(std::move(m));
    QCOMPARE(moved.size(), std::size_t(11));
    QCOMPARE(m.size(), std::size_t(0));

    std::ofstream(dir / "empty.bin").close();
    MappedFile empty(dir / "empty.bin");
    QCOMPARE(empty.size(), std::size_t(0));
    QVERIFY(empty.bytes().empty());

    DM_EXPECT_ERROR(MappedFile(dir / "missing.bin"), "missing.bin", "cannot open");
    DM_EXPECT_ERROR(MappedFile(dir.path()), dir.path().string(), "not a regular file");
  }

  void writer_round_trip() {
    const std::vector<Sample> samples = {
        {"f32", DType::F32, {2, 3}, counting_bytes(24, 1)},
        {"f16", DType::F16, {4}, counting_bytes(8, 2)},
        {"bf16", DType::BF16, {3, 1}, counting_bytes(6, 3)},
        {"empty", DType::I32, {0, 3}, {}},
        {"i64", DType::I64, {2}, counting_bytes(16, 4)},
        {"mask", DType::Bool, {5}, counting_bytes(5, 5)},  // one byte per bool in safetensors
        {"u8", DType::U8, {7}, counting_bytes(7, 6)},
        {"i8", DType::I8, {1, 3}, counting_bytes(3, 7)},
        {"f64", DType::F64, {1}, counting_bytes(8, 8)},
        {"scalar", DType::F32, {}, counting_bytes(4, 9)},
        {"fp8", DType::F8_E4M3, {2, 2}, counting_bytes(4, 10)},
    };
    testkit::TempDir dir;
    const fs::path path = dir / "m.safetensors";
    write_safetensors(path, to_write(samples), {{"format", "pt"}, {"note", "round trip"}});

    const auto f = SafetensorsFile::open(path);
    QCOMPARE(f.path(), path);
    QCOMPARE(f.tensors().size(), samples.size());
    QCOMPARE(f.data_offset() % 8, std::uint64_t(0));
    QCOMPARE(f.metadata().size(), std::size_t(2));
    DM_COMPARE_STR(f.metadata().at("note"), std::string("round trip"));
    std::uint64_t expected_begin = 0;
    for (std::size_t i = 0; i < samples.size(); ++i) {
      const TensorInfo& t = f.tensors()[i];  // offset order is the order given to the writer
      DM_COMPARE_STR(t.name, samples[i].name);
      QCOMPARE(t.dtype, samples[i].dtype);
      QCOMPARE(t.shape, samples[i].shape);
      QCOMPARE(t.begin, expected_begin);
      QCOMPARE(t.nbytes(), std::uint64_t(samples[i].bytes.size()));
      const auto bytes = f.data(t);
      QVERIFY(std::equal(bytes.begin(), bytes.end(), samples[i].bytes.begin(), samples[i].bytes.end()));
      QCOMPARE(f.find(samples[i].name), &t);
      expected_begin = t.end;
    }
    QCOMPARE(f.find("scalar")->numel(), std::uint64_t(1));
    QCOMPARE(f.find("empty")->numel(), std::uint64_t(0));
    QCOMPARE(f.find("absent"), nullptr);
    QCOMPARE(std::uint64_t(fs::file_size(path)), f.data_offset() + expected_begin);

    // The header: metadata first, then the tensors in the given order, padded with spaces.
    const std::string raw = read_all(path);
    const std::string header = raw.substr(8, f.data_offset() - 8);
    QVERIFY(header.starts_with("{\"__metadata__\":{\"format\":\"pt\",\"note\":\"round trip\"},\"f32\":"));
    std::size_t last = 0;
    for (const auto& s : samples) {
      const std::size_t at = header.find("\"" + s.name + "\":{");
      QVERIFY2(at != std::string::npos && at > last, s.name.c_str());
      last = at;
    }
    const std::size_t close = header.find_last_of('}');
    QVERIFY(header.find_first_not_of(' ', close + 1) == std::string::npos);
    QCOMPARE(nlohmann::json::parse(header)["mask"]["data_offsets"][1].get<std::uint64_t>() -
                 nlohmann::json::parse(header)["mask"]["data_offsets"][0].get<std::uint64_t>(),
             std::uint64_t(5));
  }

  void writer_without_metadata_and_with_no_tensors() {
    testkit::TempDir dir;
    write_safetensors(dir / "none.safetensors", {}, {});
    const std::string raw = read_all(dir / "none.safetensors");
    QCOMPARE(raw.size(), std::size_t(16));  // "{}" padded to 8
    QCOMPARE(raw.substr(8), std::string("{}      "));
    const auto f = SafetensorsFile::open(dir / "none.safetensors");
    QVERIFY(f.tensors().empty());
    QVERIFY(f.metadata().empty());
  }

  void writer_rejects_bad_input_and_leaves_no_file() {
    testkit::TempDir dir;
    const auto four = counting_bytes(4, 0);
    const auto eight = counting_bytes(8, 0);
    const fs::path path = dir / "bad.safetensors";
    DM_EXPECT_ERROR(write_safetensors(path, {{"w", DType::F32, {2}, four}}), "bad.safetensors", "'w'", "8", "4");
    DM_EXPECT_ERROR(write_safetensors(path, {{"w", DType::F32, {1}, four}, {"w", DType::F32, {1}, four}}),
                    "bad.safetensors", "'w'", "twice");
    DM_EXPECT_ERROR(write_safetensors(path, {{"n", DType::F32, {-1}, four}}), "bad.safetensors", "'n'", "negative");
    DM_EXPECT_ERROR(write_safetensors(path, {{"__metadata__", DType::U8, {4}, four}}), "bad.safetensors", "__metadata__");
    DM_EXPECT_ERROR(write_safetensors(path, {{"b", DType::Bool, {8}, std::span(four)}}), "'b'", "8 bytes");
    QVERIFY(!fs::exists(path));
    QVERIFY(fs::is_empty(dir.path()));  // no temporary file left behind either

    // An existing file stays as it was when a rewrite fails.
    write_safetensors(path, {{"w", DType::F32, {2}, eight}});
    const std::string before = read_all(path);
    DM_EXPECT_ERROR(write_safetensors(path, {{"w", DType::F32, {3}, eight}}), "'w'");
    QCOMPARE(read_all(path), before);
  }

  void demo_checkpoint_opens() {
    const auto f = SafetensorsFile::open(testkit::demo_dir() / "model.safetensors");
    QCOMPARE(f.tensors().size(), std::size_t(47));  // embedding, 5 layers of 9, final norm
    const TensorInfo* embed = f.find("model.embed_tokens.weight");
    QVERIFY(embed);
    QCOMPARE(embed->dtype, DType::F32);
    QCOMPARE(embed->shape, (std::vector<std::int64_t>{512, 64}));
    QCOMPARE(embed->begin, std::uint64_t(0));
    QCOMPARE(embed->nbytes(), std::uint64_t(512 * 64 * 4));
    QVERIFY(!f.find("lm_head.weight"));  // tied to the embedding
    const TensorInfo* q = f.find("model.layers.4.self_attn.q_proj.weight");
    QVERIFY(q);
    QCOMPARE(q->shape, (std::vector<std::int64_t>{64, 64}));
    const TensorInfo* k = f.find("model.layers.0.self_attn.k_proj.weight");
    QVERIFY(k);
    QCOMPARE(k->shape, (std::vector<std::int64_t>{32, 64}));  // 4 key/value heads of 8 dims
    DM_COMPARE_STR(f.metadata().at("format"), std::string("pt"));
    QCOMPARE(f.data_offset() + f.tensors().back().end, std::uint64_t(fs::file_size(f.path())));
    for (std::size_t i = 1; i < f.tensors().size(); ++i) QCOMPARE(f.tensors()[i].begin, f.tensors()[i - 1].end);

    // The embedding's first float, read through the map, is the file's bytes at the data offset.
    const std::string raw = read_all(f.path());
    float from_file = 0, from_map = 0;
    std::memcpy(&from_file, raw.data() + f.data_offset(), 4);
    std::memcpy(&from_map, f.data(*embed).data(), 4);
    QCOMPARE(from_map, from_file);
  }

  void demo_rewritten_keeps_every_tensor() {
    const auto demo = SafetensorsFile::open(testkit::demo_dir() / "model.safetensors");
    std::vector<TensorToWrite> tensors;
    for (const auto& t : demo.tensors()) tensors.push_back({t.name, t.dtype, t.shape, demo.data(t)});
    testkit::TempDir dir;
    write_safetensors(dir / "copy.safetensors", tensors, demo.metadata());
    const auto copy = SafetensorsFile::open(dir / "copy.safetensors");
    QCOMPARE(copy.tensors().size(), demo.tensors().size());
    for (const auto& t : demo.tensors()) {
      const TensorInfo* c = copy.find(t.name);
      QVERIFY2(c, t.name.c_str());
      QCOMPARE(c->shape, t.shape);
      QCOMPARE(c->begin, t.begin);
      const auto a = demo.data(t), b = copy.data(*c);
      QVERIFY(std::equal(a.begin(), a.end(), b.begin(), b.end()));
    }
  }

  void malformed_header_data() {
    QTest::addColumn<QByteArray>("header");
    QTest::addColumn<int>("data_bytes");
    QTest::addColumn<QStringList>("needles");
    const auto row = [](const char* tag, const char* header, int data, QStringList needles) {
      QTest::newRow(tag) << QByteArray(header) << data << needles;
    };
    row("not JSON", R"({"w": {"dtype": "F32",)", 0, {"not valid JSON"});
    row("JSON array", R"([1, 2, 3])", 0, {"array", "not an object"});
    row("JSON string", R"("w")", 0, {"string", "not an object"});
    row("entry not an object", R"({"w": [1]})", 0, {"'w'", "not an object"});
    row("unknown dtype", R"({"w": {"dtype": "F12", "shape": [1], "data_offsets": [0, 4]}})", 4, {"'w'", "F12"});
    row("dtype not a string", R"({"w": {"dtype": 32, "shape": [1], "data_offsets": [0, 4]}})", 4, {"'w'", "dtype"});
    row("no dtype", R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4, {"'w'", "dtype"});
    row("no shape", R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4, {"'w'", "shape"});
    row("no offsets", R"({"w": {"dtype": "F32", "shape": [1]}})", 4, {"'w'", "data_offsets"});
    row("negative shape", R"({"w": {"dtype": "F32", "shape": [-1, 4], "data_offsets": [0, 4]}})", 4, {"'w'", "-1"});
    row("fractional shape", R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4, {"'w'", "1.5"});
    row("shape not an array", R"({"w": {"dtype": "F32", "shape": 4, "data_offsets": [0, 16]}})", 16, {"'w'", "shape"});
    row("overflowing shape", R"({"w": {"dtype": "U8", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", 0,
        {"'w'", "2^64"});
    row("overflowing bytes", R"({"w": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}})", 0,
        {"'w'", "2^64"});
    row("dimension beyond uint64", R"({"w": {"dtype": "U8", "shape": [1e30], "data_offsets": [0, 0]}})", 0, {"'w'"});
    row("shape x dtype != span", R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})", 12,
        {"'w'", "16", "12"});
    row("bool is a byte each", R"({"b": {"dtype": "BOOL", "shape": [16], "data_offsets": [0, 2]}})", 2, {"'b'", "16 bytes"});
    row("offsets past data", R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8, {"'w'", "[0,16]", "8 bytes"});
    row("offsets reversed", R"({"w": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}})", 4, {"'w'", "[4,0]"});
    row("offsets negative", R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [-4, 0]}})", 4, {"'w'", "data_offsets"});
    row("offsets not a pair", R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4, 8]}})", 4, {"'w'", "pair"});
    row("overlap",
        R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
        24, {"'a'", "'b'", "overlaps"});
    row("gap",
        R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [20, 36]}})",
        36, {"'b'", "[16, 20)", "gap"});
    row("gap at start", R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8, {"'a'", "[0, 4)"});
    row("trailing bytes", R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 12,
        {"'a'", "[4, 12)", "fully covered"});
    row("data but no tensors", R"({"__metadata__": {"format": "pt"}})", 8, {"no tensors", "[0, 8)"});
    row("non-string metadata", R"({"__metadata__": {"format": "pt", "step": 7}})", 0, {"__metadata__", "'step'", "number"});
    row("metadata not an object", R"({"__metadata__": ["pt"]})", 0, {"__metadata__", "array"});
    row("duplicate names",
        R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "w": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}})",
        8, {"'w'", "twice"});
    row("duplicate metadata", R"({"__metadata__": {}, "__metadata__": {}})", 0, {"__metadata__", "twice"});
    row("duplicate key in entry", R"({"w": {"dtype": "U8", "dtype": "F32", "shape": [4], "data_offsets": [0, 4]}})", 4,
        {"'w'", "'dtype'", "twice"});
    row("nested too deep", R"({"w": {"x": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}})", 0, {"nested"});
    row("number beyond double", R"({"w": {"dtype": "U8", "shape": [5e5360], "data_offsets": [0, 0]}})", 0, {"not valid JSON", "5e5360"});
    row("invalid UTF-8", "{\"w\xff\": {}}", 0, {"not valid JSON"});
  }

  void malformed_header() {
    QFETCH(QByteArray, header);
    QFETCH(int, data_bytes);
    QFETCH(QStringList, needles);
    testkit::TempDir dir;
    const fs::path path = dir / "broken.safetensors";
    write_raw(path, header.toStdString(), static_cast<std::size_t>(data_bytes));
    const std::string msg = error_of([&] { (void)SafetensorsFile::open(path); });
    QVERIFY2(!msg.empty(), "the file was accepted");
    QVERIFY2(contains(msg, path.string()), msg.c_str());
    for (const QString& n : needles) QVERIFY2(contains(msg, n.toStdString()), qPrintable(n + " not in: " + QString::fromStdString(msg)));
    // The same verdict without a file: the parser alone names what it is given.
    const std::string direct = error_of([&] { (void)parse_safetensors_header(header.toStdString(), data_bytes, "hdr"); });
    QVERIFY2(direct.starts_with("hdr: "), direct.c_str());
  }

  void valid_edge_cases_are_accepted() {
    testkit::TempDir dir;
    // Zero-sized tensors share an offset; extra keys in an entry are ignored, as the reference does.
    write_raw(dir / "ok.safetensors",
              R"({"z": {"dtype": "F16", "shape": [0], "data_offsets": [0, 0]}, "s": {"dtype": "I16", "shape": [], "data_offsets": [0, 2], "extra": 1}, "y": {"dtype": "U8", "shape": [3, 0], "data_offsets": [2, 2]}}   )",
              2);
    const auto f = SafetensorsFile::open(dir / "ok.safetensors");
    QCOMPARE(f.tensors().size(), std::size_t(3));
    DM_COMPARE_STR(f.tensors()[0].name, std::string("z"));
    DM_COMPARE_STR(f.tensors()[1].name, std::string("s"));
    QCOMPARE(f.find("s")->numel(), std::uint64_t(1));
    QCOMPARE(f.data(*f.find("y")).size(), std::size_t(0));
  }

  void length_field_beyond_file() {
    testkit::TempDir dir;
    const fs::path path = dir / "long.safetensors";
    write_raw(path, 1000, R"({"__metadata__": {}})", 0);
    DM_EXPECT_ERROR(SafetensorsFile::open(path), path.string(), "1000", "past the end");
  }

  void length_field_absurd() {
    testkit::TempDir dir;
    const fs::path path = dir / "absurd.safetensors";
    write_raw(path, std::uint64_t(1) << 63, "{}", 0);
    DM_EXPECT_ERROR(SafetensorsFile::open(path), path.string(), "9223372036854775808");
    write_raw(path, ~std::uint64_t(0), "{}", 0);  // 8 + N overflows
    DM_EXPECT_ERROR(SafetensorsFile::open(path), path.string(), "18446744073709551615");
  }

  void length_field_over_limit_within_file() {
    // A sparse file large enough to hold a 100 MB + 1 header: refused by the limit before anything is read.
    testkit::TempDir dir;
    const fs::path path = dir / "huge.safetensors";
    write_raw(path, 100'000'001, "{", 0);
    fs::resize_file(path, 100'000'100);
    DM_EXPECT_ERROR(SafetensorsFile::open(path), path.string(), "100000001", "limit");
  }

  void too_short_and_empty_files() {
    testkit::TempDir dir;
    std::ofstream(dir / "empty.safetensors").close();
    DM_EXPECT_ERROR(SafetensorsFile::open(dir / "empty.safetensors"), "empty.safetensors", "0 bytes");
    std::ofstream(dir / "short.safetensors") << "abc";
    DM_EXPECT_ERROR(SafetensorsFile::open(dir / "short.safetensors"), "short.safetensors", "3 bytes");
    DM_EXPECT_ERROR(SafetensorsFile::open(dir / "absent.safetensors"), "absent.safetensors");
  }

  void truncated_file() {
    testkit::TempDir dir;
    const fs::path path = dir / "cut.safetensors";
    const auto a = counting_bytes(64, 1), b = counting_bytes(32, 2);
    write_safetensors(path, {{"first", DType::F32, {16}, a}, {"last", DType::BF16, {16}, b}});
    (void)SafetensorsFile::open(path);
    fs::resize_file(path, fs::file_size(path) - 3);
    DM_EXPECT_ERROR(SafetensorsFile::open(path), path.string(), "'last'", "past the data section");

    // Cut inside the header: the length field now points past the end.
    fs::resize_file(path, 20);
    DM_EXPECT_ERROR(SafetensorsFile::open(path), path.string(), "past the end of the file");
  }
};

QTEST_MAIN(TestSafetensors)
#include "test_safetensors.moc"
