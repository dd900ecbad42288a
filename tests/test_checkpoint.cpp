// Checkpoint resolution: single files, sharded folders and their indexes, .bin folders, the Hugging Face
// cache layout, and the readings of config.json.
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "error.hpp"
#include "format/checkpoint.hpp"
#include "testkit.hpp"

using namespace devicemap;
using testkit::contains;
using testkit::error_of;
using testkit::write_text;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Tensors named `names`, each F32 [n] whose floats are i + k/100 for the tensor's place i.
void write_model(const fs::path& p, const std::vector<std::string>& names, std::int64_t n = 3) {
  std::vector<std::vector<float>> values;
  for (std::size_t i = 0; i < names.size(); ++i) {
    values.emplace_back();
    for (std::int64_t k = 0; k < n; ++k) values.back().push_back(static_cast<float>(i) + static_cast<float>(k) / 100);
  }
  std::vector<TensorToWrite> tensors;
  for (std::size_t i = 0; i < names.size(); ++i)
    tensors.push_back({names[i], DType::F32, {n}, std::as_bytes(std::span(values[i]))});
  write_safetensors(p, tensors);
}

// Three shards and an index, as transformers' save_pretrained(max_shard_size=...) lays them out.
const std::vector<std::vector<std::string>> kShards = {
    {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight"},
    {"model.layers.0.mlp.up_proj.weight", "model.layers.1.self_attn.q_proj.weight", "model.layers.1.mlp.up_proj.weight"},
    {"model.norm.weight", "lm_head.weight"},
};

std::string shard_name(std::size_t i) { return "model-0000" + std::to_string(i + 1) + "-of-00003.safetensors"; }

json sharded_index() {
  json wm = json::object();
  for (std::size_t s = 0; s < kShards.size(); ++s)
    for (const auto& t : kShards[s]) wm[t] = shard_name(s);
  return {{"metadata", {{"total_size", 7 * 12}}}, {"weight_map", wm}};
}

void write_sharded(const fs::path& dir, const json& index) {
  for (std::size_t s = 0; s < kShards.size(); ++s) write_model(dir / shard_name(s), kShards[s]);
  write_text(dir / "model.safetensors.index.json", index.dump(2));
}

}  // namespace

class TestCheckpoint : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void demo_folder() {
    const auto ck = Checkpoint::open(testkit::demo_dir());
    QCOMPARE(ck.dir(), testkit::demo_dir());
    QVERIFY(ck.has_safetensors());
    QCOMPARE(ck.shards().size(), std::size_t(1));
    QVERIFY(ck.bin_files().empty());
    QCOMPARE(ck.tensors().size(), std::size_t(47));
    const auto* embed = ck.find("model.embed_tokens.weight");
    QVERIFY(embed);
    QCOMPARE(embed->shard, std::size_t(0));
    QCOMPARE(embed->info->shape, (std::vector<std::int64_t>{512, 64}));
    QCOMPARE(embed->info, ck.shards()[0].find("model.embed_tokens.weight"));
    QVERIFY(!ck.find("lm_head.weight"));
    const auto& shard = ck.shards()[0];
    QCOMPARE(ck.total_bytes(), std::uint64_t(fs::file_size(shard.path())) - shard.data_offset());
    DM_COMPARE_STR(ck.model_type(), std::string("llama"));
    QCOMPARE(ck.torch_dtype(), std::optional<DType>(DType::F32));
    QVERIFY(ck.tie_word_embeddings());
    QCOMPARE(ck.config()["num_hidden_layers"].get<int>(), 5);
    QVERIFY(ck.generation_config().is_object());
    QVERIFY(!ck.generation_config().empty());
    QVERIFY(!ck.quantize_config());
    for (std::size_t i = 1; i < ck.tensors().size(); ++i) QVERIFY(ck.tensors()[i - 1].info->end <= ck.tensors()[i].info->begin);
  }

  void single_file_path() {
    const auto ck = Checkpoint::open(testkit::demo_dir() / "model.safetensors");
    QCOMPARE(ck.dir(), testkit::demo_dir());
    QCOMPARE(ck.tensors().size(), std::size_t(47));
    DM_COMPARE_STR(ck.model_type(), std::string("llama"));  // config.json beside the file is read
  }

  void copies_point_into_their_own_shards() {
    Checkpoint copy;
    {
      const auto ck = Checkpoint::open(testkit::demo_dir());
      copy = ck;
      QVERIFY(copy.find("model.norm.weight")->info != ck.find("model.norm.weight")->info);
    }
    const auto* norm = copy.find("model.norm.weight");
    QVERIFY(norm);
    DM_COMPARE_STR(norm->info->name, std::string("model.norm.weight"));
    QCOMPARE(norm->info, copy.shards()[norm->shard].find("model.norm.weight"));
    Checkpoint moved(std::move(copy));
    QCOMPARE(moved.find("model.norm.weight")->info, moved.shards()[0].find("model.norm.weight"));
  }

  void sharded_folder() {
    testkit::TempDir dir;
    write_sharded(dir.path(), sharded_index());
    write_text(dir / "config.json", R"({"model_type": "llama", "tie_word_embeddings": false, "torch_dtype": "bfloat16"})");
    const auto ck = Checkpoint::open(dir.path());
    QCOMPARE(ck.shards().size(), std::size_t(3));
    QCOMPARE(ck.tensors().size(), std::size_t(7));
    for (std::size_t s = 0; s < kShards.size(); ++s) {
        DM_COMPARE_STR(ck.shards()[s].path().filename().string(), shard_name(s));
      for (std::size_t i = 0; i < kShards[s].size(); ++i) {
        const auto* t = ck.find(kShards[s][i]);
        QVERIFY2(t, kShards[s][i].c_str());
        QCOMPARE(t->shard, s);
        DM_COMPARE_STR(t->info->name, kShards[s][i]);
        float first = 0;
        std::memcpy(&first, ck.shards()[s].data(*t->info).data(), 4);
        QCOMPARE(first, static_cast<float>(i));  // the bytes written for this tensor, found in its shard
      }
    }
    // Shard order, then offset order.
    std::vector<std::string> order;
    for (const auto& t : ck.tensors()) order.push_back(t.info->name);
    std::vector<std::string> expected;
    for (const auto& s : kShards) expected.insert(expected.end(), s.begin(), s.end());
    QCOMPARE(order, expected);
    QCOMPARE(ck.total_bytes(), std::uint64_t(7 * 12));
    QVERIFY(!ck.tie_word_embeddings());
    QCOMPARE(ck.torch_dtype(), std::optional<DType>(DType::BF16));
  }

  void sharded_missing_shard() {
    testkit::TempDir dir;
    write_sharded(dir.path(), sharded_index());
    fs::remove(dir / shard_name(1));
    DM_EXPECT_ERROR(Checkpoint::open(dir.path()), shard_name(1), "model.safetensors.index.json", "does not exist");
  }

  void sharded_tensor_in_wrong_shard() {
    testkit::TempDir dir;
    json index = sharded_index();
    index["weight_map"]["model.norm.weight"] = shard_name(0);
    write_sharded(dir.path(), index);
    DM_EXPECT_ERROR(Checkpoint::open(dir.path()), "'model.norm.weight'", "'" + shard_name(0) + "'",
                    "'" + shard_name(2) + "'");
  }

  void sharded_unlisted_tensor() {
    testkit::TempDir dir;
    json index = sharded_index();
    index["weight_map"].erase("model.layers.1.mlp.up_proj.weight");
    write_sharded(dir.path(), index);
    DM_EXPECT_ERROR(Checkpoint::open(dir.path()), shard_name(1), "'model.layers.1.mlp.up_proj.weight'", "not listed");
  }

  void sharded_index_problems() {
    testkit::TempDir dir;
    write_sharded(dir.path(), sharded_index());
    const fs::path index = dir / "model.safetensors.index.json";

    json escaping = sharded_index();
    escaping["weight_map"]["lm_head.weight"] = "../elsewhere.safetensors";
    write_text(index, escaping.dump());
    DM_EXPECT_ERROR(Checkpoint::open(dir.path()), "../elsewhere.safetensors", "not a plain file name");
    escaping["weight_map"]["lm_head.weight"] = "..";
    write_text(index, escaping.dump());
    DM_EXPECT_ERROR(Checkpoint::open(dir.path()), "'..'");

    write_text(index, R"({"weight_map": {"lm_head.weight": "a.safetensors", "lm_head.weight": "b.safetensors"}})");
    DM_EXPECT_ERROR(Checkpoint::open(dir.path()), "'lm_head.weight'", "twice");

    write_text(index, R"({"weight_map": {"lm_head.weight": 3}})");
    DM_EXPECT_ERROR(Checkpoint::open(dir.path()), "'lm_head.weight'", "number");

    write_text(index, R"({"metadata": {}})");
    DM_EXPECT_ERROR(Checkpoint::open(dir.path()), index.string(), "weight_map");

    write_text(index, R"({"weight_map": {)");
    DM_EXPECT_ERROR(Checkpoint::open(dir.path()), index.string(), "invalid JSON");
  }

  void bin_folders() {
    testkit::TempDir one;
    write_text(one / "pytorch_model.bin", "not read while planning");
    auto ck = Checkpoint::open(one.path());
    QVERIFY(!ck.has_safetensors());
    QVERIFY(ck.tensors().empty());
    QCOMPARE(ck.bin_files(), (std::vector<fs::path>{one / "pytorch_model.bin"}));

    testkit::TempDir sharded;
    write_text(sharded / "pytorch_model-00002-of-00002.bin", "b");
    write_text(sharded / "pytorch_model-00001-of-00002.bin", "a");
    ck = Checkpoint::open(sharded.path());
    QCOMPARE(ck.bin_files(), (std::vector<fs::path>{sharded / "pytorch_model-00001-of-00002.bin",
                                                    sharded / "pytorch_model-00002-of-00002.bin"}));

    write_text(sharded / "pytorch_model.bin.index.json",
               R"({"weight_map": {"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00003-of-00003.bin"}})");
    DM_EXPECT_ERROR(Checkpoint::open(sharded.path()), "pytorch_model-00003-of-00003.bin", "does not exist");

    // Safetensors win over .bin files, as in transformers.
    write_model(one / "model.safetensors", {"w"});
    ck = Checkpoint::open(one.path());
    QVERIFY(ck.has_safetensors());
    QVERIFY(ck.bin_files().empty());
  }

  void other_safetensors_layouts() {
    testkit::TempDir gptq;
    write_model(gptq / "gptq_model-4bit-128g.safetensors", {"model.layers.0.self_attn.q_proj.qweight"});
    write_text(gptq / "quantize_config.json", R"({"bits": 4, "group_size": 128})");
    const auto ck = Checkpoint::open(gptq.path());
    QCOMPARE(ck.tensors().size(), std::size_t(1));
    QVERIFY(ck.quantize_config());
    QCOMPARE((*ck.quantize_config())["bits"].get<int>(), 4);

    write_model(gptq / "second.safetensors", {"x"});
    DM_EXPECT_ERROR(Checkpoint::open(gptq.path()), gptq.path().string(), "2 .safetensors files", "index");
  }

  void nothing_to_open() {
    testkit::TempDir dir;
    write_text(dir / "config.json", "{}");
    DM_EXPECT_ERROR(Checkpoint::open(dir.path()), dir.path().string(), "no model weights", "model.safetensors",
                    "pytorch_model.bin");
    DM_EXPECT_ERROR(Checkpoint::open(dir / "absent"), "absent", "no such file");
    DM_EXPECT_ERROR(Checkpoint::open(dir / "config.json"), "config.json", "not a model folder");
  }

  void broken_shard_is_named() {
    testkit::TempDir dir;
    write_sharded(dir.path(), sharded_index());
    fs::resize_file(dir / shard_name(2), fs::file_size(dir / shard_name(2)) - 1);
    DM_EXPECT_ERROR(Checkpoint::open(dir.path()), shard_name(2), "'lm_head.weight'");
  }

  void hugging_face_cache() {
    testkit::TempDir cache;
    const fs::path repo = cache / "models--org--name";
    fs::create_directories(repo / "snapshots" / "abc");
    fs::create_directories(repo / "snapshots" / "def");
    fs::create_directories(repo / "refs");
    fs::create_directories(repo / "blobs");
    // As in the real cache, snapshot files are links into blobs/.
    write_model(repo / "blobs" / "0123", {"from_abc"});
    fs::create_symlink("../../blobs/0123", repo / "snapshots" / "abc" / "model.safetensors");
    write_text(repo / "snapshots" / "abc" / "config.json", R"({"model_type": "mistral"})");
    write_model(repo / "snapshots" / "def" / "model.safetensors", {"from_def"});
    const auto now = fs::file_time_type::clock::now();
    fs::last_write_time(repo / "snapshots" / "abc", now - std::chrono::hours(2));
    fs::last_write_time(repo / "snapshots" / "def", now - std::chrono::hours(1));

    write_text(repo / "refs" / "main", "abc\n");
    QCOMPARE(resolve_model_folder(repo), repo / "snapshots" / "abc");
    auto ck = Checkpoint::open(repo);
    QCOMPARE(ck.dir(), repo / "snapshots" / "abc");
    QVERIFY(ck.find("from_abc"));
    DM_COMPARE_STR(ck.model_type(), std::string("mistral"));

    // Without refs/main, the newest snapshot.
    fs::remove(repo / "refs" / "main");
    QCOMPARE(resolve_model_folder(repo), repo / "snapshots" / "def");
    QVERIFY(Checkpoint::open(repo).find("from_def"));
    fs::last_write_time(repo / "snapshots" / "abc", now);
    QCOMPARE(resolve_model_folder(repo), repo / "snapshots" / "abc");

    // A snapshot folder opens as it is; other folders resolve to themselves.
    QVERIFY(Checkpoint::open(repo / "snapshots" / "def").find("from_def"));
    QCOMPARE(resolve_model_folder(testkit::demo_dir()), testkit::demo_dir());

    write_text(repo / "refs" / "main", "0000\n");
    DM_EXPECT_ERROR(Checkpoint::open(repo), "refs", "'0000'");

    const fs::path empty_repo = cache / "models--org--empty";
    fs::create_directories(empty_repo / "snapshots");
    DM_EXPECT_ERROR(Checkpoint::open(empty_repo), "models--org--empty", "no snapshot");
  }

  void config_readings() {
    testkit::TempDir dir;
    write_model(dir / "model.safetensors", {"w"});
    const auto with_config = [&](const std::string& text) {
      write_text(dir / "config.json", text);
      return Checkpoint::open(dir.path());
    };
    QCOMPARE(with_config(R"({"torch_dtype": "float16"})").torch_dtype(), std::optional<DType>(DType::F16));
    QCOMPARE(with_config(R"({"dtype": "bfloat16"})").torch_dtype(), std::optional<DType>(DType::BF16));
    QCOMPARE(with_config(R"({"torch_dtype": "auto", "dtype": "float32"})").torch_dtype(), std::optional<DType>(DType::F32));
    QCOMPARE(with_config(R"({"torch_dtype": "auto"})").torch_dtype(), std::optional<DType>());
    QCOMPARE(with_config(R"({})").torch_dtype(), std::optional<DType>());
    QVERIFY(with_config(R"({})").tie_word_embeddings());
    QVERIFY(with_config(R"({"tie_word_embeddings": true})").tie_word_embeddings());
    QVERIFY(!with_config(R"({"tie_word_embeddings": false})").tie_word_embeddings());
    DM_COMPARE_STR(with_config(R"({"model_type": "qwen2"})").model_type(), std::string("qwen2"));
    DM_COMPARE_STR(with_config(R"({})").model_type(), std::string());

    DM_EXPECT_ERROR(with_config(R"({"model_type": )"), (dir / "config.json").string(), "invalid JSON");
    DM_EXPECT_ERROR(with_config(R"([1, 2])"), "config.json", "array");
    DM_EXPECT_ERROR(with_config(R"({"rope_theta": 1e999})"), "config.json", "invalid JSON", "1e999");
    write_text(dir / "config.json", "{}");
    write_text(dir / "generation_config.json", "{,}");
    DM_EXPECT_ERROR(Checkpoint::open(dir.path()), "generation_config.json", "invalid JSON");
    fs::remove(dir / "generation_config.json");
    fs::remove(dir / "config.json");
    const auto bare = Checkpoint::open(dir.path());
    QVERIFY(bare.config().is_object() && bare.config().empty());
    QVERIFY(bare.tie_word_embeddings());
  }
};

QTEST_MAIN(TestCheckpoint)
#include "test_checkpoint.moc"
