#include "run/random_checkpoint.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <map>
#include <ostream>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "format/atomic_file.hpp"
#include "kernels/codes4.hpp"
#include "run/model_config.hpp"
#include "run/tensor_layout.hpp"

namespace devicemap {
namespace {

// xoshiro256**: fast enough that writing, not drawing, sets the pace.
class Random {
 public:
  explicit Random(std::uint64_t seed) {
    for (auto& s : s_) s = seed = splitmix(seed);
  }
  // Uniform in [-1, 1).
  float next() {
    const std::uint64_t r = std::rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
    s_[2] ^= s_[0], s_[3] ^= s_[1], s_[1] ^= s_[2], s_[0] ^= s_[3], s_[2] ^= t, s_[3] = std::rotl(s_[3], 45);
    return static_cast<float>(static_cast<double>(r >> 11) * 0x1.0p-52 - 1.0);
  }

 private:
  static std::uint64_t splitmix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
    x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
    return x ^ (x >> 31);
  }
  std::uint64_t s_[4];
};

std::uint16_t to_bf16(float f) {
  const auto u = std::bit_cast<std::uint32_t>(f);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

std::uint16_t to_f16(float f) {
  const std::uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::abs(double(f));
  if (a >= 65520.0) return sign | 0x7c00;
  if (a < std::ldexp(1.0, -14)) return sign | static_cast<std::uint16_t>(std::nearbyint(a * std::ldexp(1.0, 24)));
  int exp = 0;
  std::frexp(a, &exp);
  int biased = exp + 14;
  auto mantissa = static_cast<int>(std::nearbyint((std::ldexp(a, 1 - exp) - 1) * 1024));
  if (mantissa == 1024) mantissa = 0, ++biased;
  return sign | static_cast<std::uint16_t>(biased << 10 | mantissa);
}

enum class Fill { Random, Ones, Zeros };

Fill fill_of(const std::string& name) {
  const auto ends = [&](std::string_view s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
  if (ends(".bias")) return Fill::Zeros;
  if (ends("norm.weight") || ends("layernorm.weight") || ends("ln_1.weight") || ends("ln_2.weight") || ends("ln_f.weight"))
    return Fill::Ones;
  return Fill::Random;
}

// What a tensor holds: floating weights (by fill_of), or the parts of a quantized Linear.
enum class Content { Float, RandomBytes, Constant, Blob };

struct Planned {
  TensorSpec spec;
  std::uint64_t numel = 1;
  std::uint64_t begin = 0, end = 0;
  DType dtype = DType::F32;
  Content content = Content::Float;
  std::vector<char> blob;  // Constant: one element's bytes; Blob: all of them
};

// Streams one tensor's values.
void write_values(std::ostream& out, const Planned& t, double stddev, Random& random) {
  const DType dtype = t.dtype;
  const std::size_t width = static_cast<std::size_t>(dtype_bits(dtype) / 8);
  if (t.content == Content::Blob) {
    out.write(t.blob.data(), static_cast<std::streamsize>(t.blob.size()));
    return;
  }
  if (t.content != Content::Float) {  // random bytes (int8 rows, 4-bit codes, GPTQ words) or one value repeated
    std::vector<char> chunk;
    for (std::uint64_t done = 0; done < t.numel;) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(t.numel - done, 1 << 20));
      chunk.resize(n * width);
      if (t.content == Content::RandomBytes) {
        for (std::size_t i = 0; i < chunk.size(); ++i) {
          char c = static_cast<char>(static_cast<int>((random.next() + 1.0f) * 128.0f) & 0xff);
          if (dtype == DType::I8 && c == char(-128)) c = char(-127);  // LLM.int8 rows span −127…127
          chunk[i] = c;
        }
      } else {
        for (std::size_t i = 0; i < n; ++i) std::memcpy(&chunk[i * width], t.blob.data(), width);
      }
      out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      done += n;
    }
    return;
  }
  const float amplitude = static_cast<float>(stddev * std::sqrt(3.0));  // uniform with this stddev
  const Fill fill = fill_of(t.spec.name);
  std::vector<char> chunk;
  for (std::uint64_t done = 0; done < t.numel;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(t.numel - done, 1 << 20));
    chunk.resize(n * width);
    for (std::size_t i = 0; i < n; ++i) {
      const float v = fill == Fill::Ones ? 1.0f : fill == Fill::Zeros ? 0.0f : amplitude * random.next();
      if (dtype == DType::F32) {
        std::memcpy(&chunk[i * 4], &v, 4);
      } else {
        const std::uint16_t h = dtype == DType::BF16 ? to_bf16(v) : to_f16(v);
        std::memcpy(&chunk[i * 2], &h, 2);
      }
    }
    out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    done += n;
  }
}

std::string shard_name(std::size_t index, std::size_t count) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return buf;
}

}  // namespace

RandomCheckpoint write_random_checkpoint(const std::filesystem::path& dir, const nlohmann::json& config,
                                         const RandomCheckpointOptions& options) {
  if (options.dtype != DType::F32 && options.dtype != DType::F16 && options.dtype != DType::BF16)
    throw Error("random checkpoints are float32, float16 or bfloat16");
  const ModelConfig c = ModelConfig::from_json(config, "config");
  if (c.bnb && c.bnb->double_quant) throw Error("random bitsandbytes 4-bit checkpoints are not double-quantized");
  // Each quantized Linear's [out, in], from the unquantized layout.
  const auto linears = linear_shapes(c);
  const auto bytes_of = [](const auto& v) {
    std::vector<char> b(sizeof v);
    std::memcpy(b.data(), &v, sizeof v);
    return b;
  };
  const float amplitude = static_cast<float>(options.stddev * std::sqrt(3.0));
  const auto names = expected_tensors(c);
  std::set<std::string> listed;
  for (const auto& spec : names) listed.insert(spec.name);
  // The dtype, shape and content of a quantized Linear's parts (GPTQ: random words, middle zeros, one scale;
  // bitsandbytes 8-bit: random rows, one row scale; 4-bit: random codes, one absmax, the code table and
  // the JSON state). Floating tensors stay in options.dtype.
  const auto plan_quantized = [&](Planned& p) {
    const std::string& n = p.spec.name;
    const auto module_of = [&](std::string_view suffix) { return n.substr(0, n.size() - suffix.size()); };
    if (n.ends_with(".qweight")) {
      p.dtype = DType::I32, p.content = Content::RandomBytes;
    } else if (n.ends_with(".qzeros")) {
      // Zeros at the middle level, 2^(bits − 1), stored minus one in GPTQ v1, 32/bits to a word.
      const int bits = c.gptq ? c.gptq->bits : 4;
      const std::uint32_t zero = (1u << (bits - 1)) - (c.gptq && c.gptq->zero_offset ? 1u : 0u);
      std::uint32_t word = 0;
      for (int j = 0; j < 32 / bits; ++j) word |= zero << (bits * j);
      p.dtype = DType::I32, p.content = Content::Constant, p.blob = bytes_of(word);
    } else if (n.ends_with(".scales")) {
      const int bits = c.gptq ? c.gptq->bits : 4;  // levels −2^(bits−1) … 2^(bits−1) − 1 span ±amplitude
      p.dtype = DType::F16, p.content = Content::Constant, p.blob = bytes_of(to_f16(amplitude / float(1 << (bits - 1))));
    } else if (n.ends_with(".SCB")) {
      p.dtype = DType::F32, p.content = Content::Constant, p.blob = bytes_of(amplitude);
    } else if (n.ends_with(".weight") && listed.count(n.substr(0, n.size() - 7) + ".SCB")) {
      p.dtype = DType::I8, p.content = Content::RandomBytes;
    } else if (n.ends_with(".weight") && listed.count(n + ".quant_map")) {
      p.dtype = DType::U8, p.content = Content::RandomBytes;
    } else if (c.bnb && n.ends_with(".weight.absmax")) {
      const auto [out, in] = linears.at(module_of(".weight.absmax"));
      p.spec.shape = {(out * in + c.bnb->blocksize - 1) / c.bnb->blocksize};
      p.dtype = DType::F32, p.content = Content::Constant, p.blob = bytes_of(amplitude);
    } else if (c.bnb && n.ends_with(".weight.quant_map")) {
      const float* table = c.bnb->quant_type == "nf4" ? kernels::nf4_table() : kernels::fp4_table();
      p.spec.shape = {16};
      p.dtype = DType::F32, p.content = Content::Blob, p.blob.assign(reinterpret_cast<const char*>(table), reinterpret_cast<const char*>(table + 16));
    } else if (c.bnb && n.ends_with(".weight.quant_state.bitsandbytes__" + c.bnb->quant_type)) {
      const auto [out, in] = linears.at(module_of(".weight.quant_state.bitsandbytes__" + c.bnb->quant_type));
      const std::string state = nlohmann::json{{"quant_type", c.bnb->quant_type}, {"blocksize", c.bnb->blocksize},
                                               {"dtype", std::string(torch_name(options.dtype))}, {"shape", {out, in}}}.dump();
      p.spec.shape = {static_cast<std::int64_t>(state.size())};
      p.dtype = DType::U8, p.content = Content::Blob, p.blob.assign(state.begin(), state.end());
    } else {
      return false;
    }
    return true;
  };
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir.string() + ": cannot create the folder (" + ec.message() + ")");

  // Tensors in order, cut into shards of at most shard_bytes (a bigger tensor gets a shard of its own).
  std::vector<std::vector<Planned>> shards(1);
  std::uint64_t in_shard = 0, total = 0;
  for (const auto& spec : names) {
    if (!spec.tied_to.empty()) continue;
    Planned p{spec, 1, 0, 0, options.dtype, Content::Float, {}};
    const bool quantized = (c.gptq || c.bnb || c.awq) && plan_quantized(p);
    if (spec.optional && !quantized) continue;
    for (const auto d : p.spec.shape) {
      if (d > 0 && p.numel > UINT64_MAX / 8 / static_cast<std::uint64_t>(d)) throw Error("config: tensor '" + spec.name + "' is too large");
      p.numel *= static_cast<std::uint64_t>(d);
    }
    const std::uint64_t bytes = p.numel * static_cast<std::uint64_t>(dtype_bits(p.dtype) / 8);
    if (in_shard > 0 && in_shard + bytes > options.shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    p.begin = in_shard;
    p.end = in_shard + bytes;
    in_shard += bytes;
    total += bytes;
    shards.back().push_back(std::move(p));
  }

  Random random(options.seed);
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  const bool sharded = shards.size() > 1;
  for (std::size_t s = 0; s < shards.size(); ++s) {
    const std::string file = sharded ? shard_name(s, shards.size()) : "model.safetensors";
    nlohmann::ordered_json header = {{"__metadata__", {{"format", "pt"}}}};
    for (const auto& t : shards[s]) {
      header[t.spec.name] = {{"dtype", std::string(safetensors_name(t.dtype))}, {"shape", t.spec.shape},
                             {"data_offsets", {t.begin, t.end}}};
      weight_map[t.spec.name] = file;
    }
    std::string text = header.dump();
    text.resize((text.size() + 7) / 8 * 8, ' ');  // the data starts 8-byte aligned, as the reference writer does
    write_file_atomically(dir / file, [&](std::ostream& out) {
      const std::uint64_t n = text.size();
      for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
      out << text;
      for (const auto& t : shards[s]) write_values(out, t, options.stddev, random);
    });
  }
  if (sharded)
    write_file_atomically(dir / "model.safetensors.index.json",
                          nlohmann::ordered_json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2) + "\n");
  nlohmann::json out_config = config;
  out_config["torch_dtype"] = std::string(torch_name(options.dtype));
  write_file_atomically(dir / "config.json", out_config.dump(2) + "\n");
  nlohmann::json generation = nlohmann::json::object();
  for (const char* key : {"bos_token_id", "eos_token_id"})
    if (config.contains(key)) generation[key] = config.at(key);
  write_file_atomically(dir / "generation_config.json", generation.dump(2) + "\n");
  std::size_t count = 0;
  for (const auto& s : shards) count += s.size();
  return {total, count, shards.size()};
}

}  // namespace devicemap
