// pytorch_model.bin archives written by LibTorch's own torch.save writer (torch::pickle_save): read
// without a copy and run like the same weights in safetensors, including tied and strided tensors;
// and archives that must be refused (code in the pickle, missing storages, not a zip).
#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "error.hpp"
#include "format/bin_archive.hpp"
#include "format/safetensors.hpp"
#include "plan/device_map.hpp"
#include "run/model.hpp"
#include "testkit.hpp"

using namespace devicemap;
using testkit::contains;
using testkit::error_of;
namespace fs = std::filesystem;

namespace {

constexpr int E = 16, H = 2, L = 2, V = 40, P = 24;

nlohmann::json gpt2_config() {
  return {{"model_type", "gpt2"}, {"n_embd", E}, {"n_layer", L}, {"n_head", H}, {"vocab_size", V}, {"n_positions", P}};
}

// GPT2LMHeadModel's state dict with random values: lm_head.weight is wte's tensor itself (one storage),
// and one Conv1D weight is a transposed view (strides [1, rows]) as a state dict may hold.
std::vector<std::pair<std::string, at::Tensor>> random_state_dict() {
  at::manual_seed(5);
  std::vector<std::pair<std::string, at::Tensor>> sd;
  auto add = [&](const std::string& name, std::vector<std::int64_t> shape, double scale) {
    sd.emplace_back(name, at::randn(shape).mul(scale));
  };
  add("transformer.wte.weight", {V, E}, 0.5);
  add("transformer.wpe.weight", {P, E}, 0.3);
  for (int i = 0; i < L; ++i) {
    const std::string b = "transformer.h." + std::to_string(i) + ".";
    add(b + "ln_1.weight", {E}, 1.0);
    add(b + "ln_1.bias", {E}, 0.1);
    sd.emplace_back(b + "attn.c_attn.weight", at::randn({3 * E, E}).mul(0.3).t());  // [E, 3E], not contiguous
    add(b + "attn.c_attn.bias", {3 * E}, 0.1);
    add(b + "attn.c_proj.weight", {E, E}, 0.2);
    add(b + "attn.c_proj.bias", {E}, 0.1);
    add(b + "ln_2.weight", {E}, 1.0);
    add(b + "ln_2.bias", {E}, 0.1);
    add(b + "mlp.c_fc.weight", {E, 4 * E}, 0.2);
    add(b + "mlp.c_fc.bias", {4 * E}, 0.1);
    add(b + "mlp.c_proj.weight", {4 * E, E}, 0.1);
    add(b + "mlp.c_proj.bias", {E}, 0.1);
  }
  add("transformer.ln_f.weight", {E}, 1.0);
  add("transformer.ln_f.bias", {E}, 0.1);
  sd.emplace_back("lm_head.weight", sd.front().second);
  return sd;
}

std::vector<char> pickled(const std::vector<std::pair<std::string, at::Tensor>>& sd) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, t] : sd) dict.insert(name, t);
  return torch::jit::pickle_save(dict);
}

void write_bytes(const fs::path& p, const std::vector<char>& bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void write_config(const fs::path& dir) { std::ofstream(dir / "config.json") << gpt2_config().dump(); }

// Replaces every occurrence of `from` by `to` (same length) in `bytes`; returns how many.
int patch(std::vector<char>& bytes, const std::string& from, const std::string& to) {
  int n = 0;
  for (auto it = bytes.begin(); (it = std::search(it, bytes.end(), from.begin(), from.end())) != bytes.end(); ++n)
    it = std::copy(to.begin(), to.end(), it);
  return n;
}

// An archive laid out as Python's torch.save writes one: Python's pickle of an OrderedDict state dict
// with its _metadata (set by BUILD after the items), storages as persistent ids, records written by
// Python's zipfile (so not aligned). Storage 0 holds float32 0.5, 1.5, …, 5.5; storage 1 bfloat16 1, 2,
// 3, 4. Tensors: w [2, 3], w_t its transpose, tail = elements 4 and 5, h = storage 1.
const char* const kPythonArchiveHex =
    "504b030414000000000069b6755da07a848e9d0100009d01000010000000617263686976652f646174612e706b6c800263636f6c6c656374696f6e73"
    "0a4f726465726564446963740a71002952710128580100000077710263746f7263682e5f7574696c730a5f72656275696c645f74656e736f725f7632"
    "0a71032828580700000073746f72616765710463746f7263680a466c6f617453746f726167650a71055801000000307106580300000063707571074b"
    "06747108514b004b024b038671094b034b0186710a8968002952710b74710c52710d5803000000775f74710e6803282868046805680668074b067471"
    "0f514b004b034b028671104b014b038671118968002952711274711352711458040000007461696c71156803282868046805680668074b0674711651"
    "4b044b028571174b018571188968002952711974711a52711b580100000068711c68032828680463746f7263680a42466c6f6174313653746f726167"
    "650a711d580100000031711e68074b0474711f514b004b04857120681889680029527121747122527123757d712458090000005f6d65746164617461"
    "7125680029527126580000000071277d7128580700000076657273696f6e71294b01737373622e504b030414000000000069b6755d853de319060000"
    "000600000011000000617263686976652f627974656f726465726c6974746c65504b030414000000000069b6755daf337e7018000000180000000e00"
    "0000617263686976652f646174612f300000003f0000c03f0000204000006040000090400000b040504b030414000000000069b6755d67db10960800"
    "0000080000000e000000617263686976652f646174612f31803f004040408040504b030414000000000069b6755dd19e675502000000020000000f00"
    "0000617263686976652f76657273696f6e330a504b0102140314000000000069b6755da07a848e9d0100009d01000010000000000000000000000080"
    "0100000000617263686976652f646174612e706b6c504b0102140314000000000069b6755d853de31906000000060000001100000000000000000000"
    "008001cb010000617263686976652f627974656f72646572504b0102140314000000000069b6755daf337e7018000000180000000e00000000000000"
    "00000000800100020000617263686976652f646174612f30504b0102140314000000000069b6755d67db109608000000080000000e00000000000000"
    "00000000800144020000617263686976652f646174612f31504b0102140314000000000069b6755dd19e675502000000020000000f00000000000000"
    "00000000800178020000617263686976652f76657273696f6e504b0506000000000500050032010000a70200000000";

std::vector<char> from_hex(const char* hex) {
  std::vector<char> out;
  for (const char* p = hex; p[0] && p[1]; p += 2) out.push_back(static_cast<char>(std::stoi(std::string(p, 2), nullptr, 16)));
  return out;
}

}  // namespace

class TestRunBin : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void readsTorchSaveArchive() {
    testkit::TempDir dir;
    const auto sd = random_state_dict();
    write_bytes(dir / "pytorch_model.bin", pickled(sd));
    const auto archive = BinArchive::open(dir / "pytorch_model.bin");
    QCOMPARE(archive.tensors().size(), sd.size());
    for (const auto& [name, t] : sd) {
      const BinTensor* b = archive.find(name);
      QVERIFY2(b, name.c_str());
      QCOMPARE(b->shape, std::vector<std::int64_t>(t.sizes().begin(), t.sizes().end()));
      QCOMPARE(b->strides, std::vector<std::int64_t>(t.strides().begin(), t.strides().end()));
      QCOMPARE(b->dtype, DType::F32);
      QCOMPARE(b->data_offset % 64, std::uint64_t{0});  // records are aligned for zero-copy use
    }
    // The tied head is the embedding's storage, not a copy.
    QCOMPARE(archive.find("lm_head.weight")->data_offset, archive.find("transformer.wte.weight")->data_offset);
    // Bytes in the file are the tensor's values.
    const std::string name = "transformer.h.1.mlp.c_fc.bias";
    const auto bytes = archive.bytes(*archive.find(name));
    const auto it = std::find_if(sd.begin(), sd.end(), [&](const auto& e) { return e.first == name; });
    QCOMPARE(bytes.size(), std::size_t{4 * E * 4});
    QCOMPARE(std::memcmp(bytes.data(), it->second.data_ptr(), bytes.size()), 0);
  }

  void readsPythonStyleArchive() {
    testkit::TempDir dir;
    write_bytes(dir / "pytorch_model.bin", from_hex(kPythonArchiveHex));
    const auto archive = BinArchive::open(dir / "pytorch_model.bin");
    QCOMPARE(archive.tensors().size(), std::size_t{4});
    const BinTensor& w = *archive.find("w");
    const BinTensor& w_t = *archive.find("w_t");
    QCOMPARE(w.shape, (std::vector<std::int64_t>{2, 3}));
    QCOMPARE(w_t.strides, (std::vector<std::int64_t>{1, 3}));
    QCOMPARE(w.data_offset, w_t.data_offset);
    QCOMPARE(w.span_bytes, std::uint64_t{24});
    const BinTensor& tail = *archive.find("tail");
    QCOMPARE(tail.data_offset, w.data_offset + 16);
    float values[2];
    std::memcpy(values, archive.bytes(tail).data(), 8);
    QCOMPARE(values[0], 4.5f);
    QCOMPARE(values[1], 5.5f);
    const BinTensor& h = *archive.find("h");
    QCOMPARE(h.dtype, DType::BF16);
    QCOMPARE(h.span_bytes, std::uint64_t{8});
    QCOMPARE(std::to_integer<int>(archive.bytes(h)[1]), 0x3f);  // bfloat16 1.0 = 0x3f80
  }

  void runsLikeSafetensors() {
    testkit::TempDir bin_dir, st_dir;
    const auto sd = random_state_dict();
    write_bytes(bin_dir / "pytorch_model.bin", pickled(sd));
    write_config(bin_dir.path());
    // The same weights as safetensors (contiguous copies, head left out as tied).
    std::vector<at::Tensor> keep;
    std::vector<TensorToWrite> tensors;
    for (const auto& [name, t] : sd) {
      if (name == "lm_head.weight") continue;
      const at::Tensor& c = keep.emplace_back(t.contiguous());
      tensors.push_back({name, DType::F32, std::vector<std::int64_t>(c.sizes().begin(), c.sizes().end()),
                         std::span<const std::byte>(static_cast<const std::byte*>(c.data_ptr()), c.nbytes())});
    }
    write_safetensors(st_dir / "model.safetensors", tensors);
    write_config(st_dir.path());

    LoadOptions mapped;
    mapped.map_cpu_weights = true;
    Model from_bin = Model::load(bin_dir.path(), DeviceMap({{"", Device::cpu()}, {"transformer.h.1", Device::disk()}}), mapped);
    Model from_st = Model::load(st_dir.path(), DeviceMap({{"", Device::cpu()}}));
    // float32 run from the mapping: every tensor, the strided one included, is served by the archive's pages.
    QCOMPARE(from_bin.load_report().aliased_bytes,
             from_bin.load_report().bytes_by_device.at("cpu") + from_bin.load_report().bytes_by_device.at("disk"));
    const std::vector<std::int64_t> ids{3, 1, 4, 1, 5, 9, 2, 6};
    const Logits a = from_bin.evaluate(ids), b = from_st.evaluate(ids);
    QCOMPARE(a.positions, std::int64_t(ids.size()));
    for (std::size_t i = 0; i < a.values.size(); ++i) QVERIFY(std::abs(a.values[i] - b.values[i]) < 1e-5f);
  }

  void refusesWhatIsNotAStateDict() {
    testkit::TempDir dir;
    const auto bytes = pickled(random_state_dict());

    auto evil = bytes;  // a pickle that would call builtins.eval
    const std::string rebuild = "torch._utils\n_rebuild_tensor_v2\n";
    std::string eval = "builtins\neval\n";
    eval.resize(rebuild.size(), 'x');
    QVERIFY(patch(evil, rebuild, eval) > 0);
    write_bytes(dir / "evil.bin", evil);
    auto e = error_of([&] { BinArchive::open(dir / "evil.bin"); });
    QVERIFY2(e.find("builtins.eval") != std::string::npos && e.find("refusing") != std::string::npos, e.c_str());

    // A storage record that is not there.
    const std::string text(bytes.begin(), bytes.end());
    const auto pkl = text.find("/data.pkl");
    QVERIFY(pkl != std::string::npos);
    const std::string prefix = text.substr(text.rfind('\0', pkl) + 1, pkl - text.rfind('\0', pkl) - 1);
    auto missing = bytes;
    QVERIFY(patch(missing, prefix + "/data/0", prefix + "/data/Z") > 0);
    write_bytes(dir / "missing.bin", missing);
    e = error_of([&] { BinArchive::open(dir / "missing.bin"); });
    QVERIFY2(e.find("missing") != std::string::npos, e.c_str());

    write_bytes(dir / "short.bin", std::vector<char>(bytes.begin(), bytes.begin() + 100));
    e = error_of([&] { BinArchive::open(dir / "short.bin"); });
    QVERIFY2(e.find("short.bin") != std::string::npos, e.c_str());
    std::vector<char> legacy{'\x80', '\x02', 'K', '\x01', '.'};  // a pre-1.6 torch.save starts as a plain pickle
    legacy.resize(200, 0);
    write_bytes(dir / "legacy.bin", legacy);
    e = error_of([&] { BinArchive::open(dir / "legacy.bin"); });
    QVERIFY2(e.find("1.6") != std::string::npos, e.c_str());
  }
};

QTEST_MAIN(TestRunBin)
#include "test_run_bin.moc"
