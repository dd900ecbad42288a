// The Llama family on small random checkpoints written by the test, one per variant the runtime must
// get right beyond the demo model: Qwen2's q/k/v biases with an untied head, Llama 3's rotary scaling
// with attention and MLP biases, Mistral's sliding window from float16 weights (run as float32 on the
// CPU). Each is checked against a plain double-precision forward pass written here, and its cached
// forward against the whole sequence.
#include <cmath>
#include <algorithm>
#include <fstream>
#include <functional>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "error.hpp"
#include "format/checkpoint.hpp"
#include "format/safetensors.hpp"
#include "kernels/codes4.hpp"
#include "model/model_source.hpp"
#include "plan/device_map.hpp"
#include "run/load_plan.hpp"
#include "run/model.hpp"
#include "run/rope.hpp"
#include "testkit.hpp"

using namespace devicemap;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int E = 48, H = 6, KVH = 2, D = E / H, L = 2, V = 80, F = 72;

std::uint16_t to_f16(float f) {
  const std::uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::abs(double(f));
  if (a < std::ldexp(1.0, -14)) return sign | static_cast<std::uint16_t>(std::nearbyint(a * std::ldexp(1.0, 24)));
  int exp = 0;
  std::frexp(a, &exp);  // a = fraction · 2^exp, fraction in [0.5, 1)
  int biased = exp - 1 + 15;
  auto mantissa = static_cast<int>(std::nearbyint((a / std::ldexp(1.0, exp - 1) - 1) * 1024));
  if (mantissa == 1024) mantissa = 0, ++biased;
  return sign | static_cast<std::uint16_t>(biased << 10 | mantissa);
}

float from_f16(std::uint16_t h) {
  const int e = (h >> 10) & 31, m = h & 1023;
  const double v = e == 0 ? std::ldexp(double(m), -24) : std::ldexp(1.0 + m / 1024.0, e - 15);
  return static_cast<float>(h & 0x8000 ? -v : v);
}

struct Variant {
  json config;
  bool f16 = false;
};

struct Raw {
  DType dtype;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> bytes;
};

template <typename T>
std::vector<std::byte> bytes_of(const std::vector<T>& v) {
  const auto b = std::as_bytes(std::span<const T>(v));
  return {b.begin(), b.end()};
}

class RandomLlama {
 public:
  RandomLlama(const Variant& variant, unsigned seed) : variant_(variant), c_(ModelConfig::from_json(variant.config)) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    auto add = [&](const std::string& name, std::vector<std::int64_t> shape, float scale, float offset = 0) {
      std::int64_t n = 1;
      for (auto s : shape) n *= s;
      std::vector<float> v(static_cast<std::size_t>(n));
      for (auto& e : v) {
        e = offset + scale * normal(rng);
        if (variant.f16) e = from_f16(to_f16(e));  // the reference sees what the checkpoint holds
      }
      shapes_[name] = shape;
      w_[name] = std::move(v);
    };
    auto linear = [&](const std::string& name, int out, int in, bool bias) {
      if (c_.gptq) {
        quantized(name, out, in, rng);
      } else if (c_.awq) {
        awq_words(name, out, in, rng);
      } else if (c_.bnb && c_.bnb->method == Quantization::Method::Bnb4) {
        codes4(name, out, in, rng);
      } else if (c_.bnb) {
        int8_rows(name, out, in, rng);
      } else {
        add(name + ".weight", {out, in}, 1.0f / std::sqrt(float(in)));
      }
      if (bias) add(name + ".bias", {out}, 0.2f);
    };
    add("model.embed_tokens.weight", {V, E}, gemma() ? 0.3f : 1.0f);
    // Gemma's norms scale by 1 + weight: weights near 0 there, near 1 elsewhere.
    const float norm_offset = gemma() ? 0.0f : 1.0f;
    for (int i = 0; i < L; ++i) {
      const std::string b = "model.layers." + std::to_string(i) + ".";
      add(b + "input_layernorm.weight", {E}, 0.1f, norm_offset);
      linear(b + "self_attn.q_proj", H * D, E, c_.qkv_bias);
      linear(b + "self_attn.k_proj", KVH * D, E, c_.qkv_bias);
      linear(b + "self_attn.v_proj", KVH * D, E, c_.qkv_bias);
      linear(b + "self_attn.o_proj", E, H * D, c_.out_proj_bias);
      if (qk_norm()) {
        add(b + "self_attn.q_norm.weight", {D}, 0.1f, norm_offset);
        add(b + "self_attn.k_norm.weight", {D}, 0.1f, norm_offset);
      }
      add(b + "post_attention_layernorm.weight", {E}, 0.1f, norm_offset);
      if (sandwich()) {
        add(b + "pre_feedforward_layernorm.weight", {E}, 0.1f, norm_offset);
        add(b + "post_feedforward_layernorm.weight", {E}, 0.1f, norm_offset);
      }
      if (sparse(i)) {
        // A router with spread-out logits, then each expert.
        add(moe_prefix(b) + "gate.weight", {experts(), E}, 2.0f / std::sqrt(float(E)));
        for (int e = 0; e < experts(); ++e) {
          const auto [gate, up, down] = expert_names(b, e);
          linear(gate, expert_inner(), E, false);
          linear(up, expert_inner(), E, false);
          linear(down, E, expert_inner(), false);
        }
        if (shared_inner() > 0) {
          linear(moe_prefix(b) + "shared_expert.gate_proj", shared_inner(), E, false);
          linear(moe_prefix(b) + "shared_expert.up_proj", shared_inner(), E, false);
          linear(moe_prefix(b) + "shared_expert.down_proj", E, shared_inner(), false);
          add(moe_prefix(b) + "shared_expert_gate.weight", {1, E}, 1.0f / std::sqrt(float(E)));
        }
      } else {
        linear(b + "mlp.gate_proj", inner(), E, c_.mlp_bias);
        linear(b + "mlp.up_proj", inner(), E, c_.mlp_bias);
        linear(b + "mlp.down_proj", E, inner(), c_.mlp_bias);
      }
    }
    add("model.norm.weight", {E}, 0.1f, norm_offset);
    if (!tied()) add("lm_head.weight", {V, E}, 1.0f / std::sqrt(float(E)));  // never quantized
    if (type() == "phi3") {
      // Phi-3's checkpoint holds qkv_proj = [q; k; v] and gate_up_proj = [gate; up] (rows); the reference
      // keeps computing with the parts.
      for (int i = 0; i < L; ++i) {
        const std::string b = "model.layers." + std::to_string(i) + ".";
        fuse(b + "self_attn.qkv_proj.weight", {b + "self_attn.q_proj.weight", b + "self_attn.k_proj.weight", b + "self_attn.v_proj.weight"});
        fuse(b + "mlp.gate_up_proj.weight", {b + "mlp.gate_proj.weight", b + "mlp.up_proj.weight"});
      }
    }
  }

  // Writes `parts` stacked by rows as one tensor `name`; the parts stay for the reference only.
  void fuse(const std::string& name, std::initializer_list<std::string> parts) {
    std::vector<float> all;
    std::int64_t rows = 0, cols = 0;
    for (const auto& p : parts) {
      all.insert(all.end(), w_.at(p).begin(), w_.at(p).end());
      rows += shapes_.at(p)[0];
      cols = shapes_.at(p)[1];
      shapes_.erase(p);
    }
    w_[name] = std::move(all);
    shapes_[name] = {rows, cols};
  }

  // A GPTQ Linear packed as AutoGPTQ's pack() does (2, 4 or 8 bits, 32/bits values to an int32 word,
  // lowest bits first; zeros stored minus one), with integer levels, zeros and power-of-two scales
  // chosen here; the reference keeps the dense weight scale · (level − zero) it stands for.
  void quantized(const std::string& name, int out, int in, std::mt19937& rng) {
    const int bits = c_.gptq->bits, per = 32 / bits, levels = 1 << bits;
    const int group_size = static_cast<int>(c_.gptq->group_size), groups = (in + group_size - 1) / group_size;
    std::vector<int> order(static_cast<std::size_t>(in));
    std::iota(order.begin(), order.end(), 0);
    if (c_.gptq->desc_act) std::shuffle(order.begin(), order.end(), rng);
    std::vector<std::int32_t> g_idx(static_cast<std::size_t>(in));
    for (int i = 0; i < in; ++i) g_idx[i] = order[i] / group_size;
    std::vector<int> level(static_cast<std::size_t>(in * out)), zero(static_cast<std::size_t>(groups * out));
    std::vector<std::uint16_t> scale(static_cast<std::size_t>(groups * out));
    for (auto& l : level) l = static_cast<int>(rng() % levels);
    for (auto& z : zero) z = 1 + static_cast<int>(rng() % (levels - 1));
    // Scales keep level · scale about as large whatever the width (the 4-bit ones: 1/4096 … 1/64).
    for (auto& sc : scale) sc = to_f16(float(1 + rng() % 64) / 4096.0f * 16.0f / float(levels));
    std::vector<float> dense(static_cast<std::size_t>(out * in));
    for (int o = 0; o < out; ++o)
      for (int i = 0; i < in; ++i) {
        const int g = g_idx[i];
        dense[o * in + i] = from_f16(scale[g * out + o]) * float(level[i * out + o] - zero[g * out + o]);
      }
    w_[name + ".weight"] = dense;
    dense_shapes_[name + ".weight"] = {out, in};
    std::vector<std::int32_t> qweight(static_cast<std::size_t>(in / per * out), 0), qzeros(static_cast<std::size_t>(groups * out / per), 0);
    for (int r = 0; r < in / per; ++r)
      for (int o = 0; o < out; ++o)
        for (int j = 0; j < per; ++j)
          qweight[r * out + o] |= static_cast<std::int32_t>(static_cast<std::uint32_t>(level[(r * per + j) * out + o]) << (bits * j));
    for (int g = 0; g < groups; ++g)
      for (int col = 0; col < out / per; ++col)
        for (int j = 0; j < per; ++j)
          qzeros[g * (out / per) + col] |=
              static_cast<std::int32_t>(static_cast<std::uint32_t>(zero[g * out + col * per + j] - 1) << (bits * j));
    raw_[name + ".qweight"] = {DType::I32, {in / per, out}, bytes_of(qweight)};
    raw_[name + ".qzeros"] = {DType::I32, {groups, out / per}, bytes_of(qzeros)};
    raw_[name + ".scales"] = {DType::F16, {groups, out}, bytes_of(scale)};
    raw_[name + ".g_idx"] = {DType::I32, {in}, bytes_of(g_idx)};
  }

  // An AWQ Linear as AutoAWQ's WQLinear_GEMM packs it: qweight [in, out/8], output 8c + order[k] of
  // input i in bits 4k of word (i, c), order = 0, 2, 4, 6, 1, 3, 5, 7; qzeros [groups, out/8] alike,
  // stored as they are; scales float16 [groups, out]. The reference keeps (level − zero) · scale.
  void awq_words(const std::string& name, int out, int in, std::mt19937& rng) {
    static constexpr int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    const int group = static_cast<int>(c_.awq->group_size), groups = (in + group - 1) / group;
    std::vector<int> level(static_cast<std::size_t>(in * out)), zero(static_cast<std::size_t>(groups * out));
    std::vector<std::uint16_t> scale(static_cast<std::size_t>(groups * out));
    for (auto& l : level) l = static_cast<int>(rng() % 16);
    for (auto& z : zero) z = static_cast<int>(rng() % 16);
    for (auto& sc : scale) sc = to_f16(float(1 + rng() % 64) / 4096.0f);
    std::vector<float> dense(static_cast<std::size_t>(out * in));
    for (int o = 0; o < out; ++o)
      for (int i = 0; i < in; ++i) {
        const int g = i / group;
        dense[o * in + i] = from_f16(scale[g * out + o]) * float(level[i * out + o] - zero[g * out + o]);
      }
    w_[name + ".weight"] = dense;  // reference only
    dense_shapes_[name + ".weight"] = {out, in};
    const auto pack = [&](const std::vector<int>& values, int rows) {
      std::vector<std::int32_t> words(static_cast<std::size_t>(rows * out / 8), 0);
      for (int r = 0; r < rows; ++r)
        for (int c = 0; c < out / 8; ++c)
          for (int k = 0; k < 8; ++k)
            words[r * (out / 8) + c] |= static_cast<std::int32_t>(static_cast<std::uint32_t>(values[r * out + c * 8 + order[k]]) << (4 * k));
      return words;
    };
    raw_[name + ".qweight"] = {DType::I32, {in, out / 8}, bytes_of(pack(level, in))};
    raw_[name + ".qzeros"] = {DType::I32, {groups, out / 8}, bytes_of(pack(zero, groups))};
    raw_[name + ".scales"] = {DType::F16, {groups, out}, bytes_of(scale)};
  }

  // A bitsandbytes 8-bit Linear as Linear8bitLt saves it: `weight` int8 [out, in] and `SCB` float32
  // [out], the row's absmax, so that w = weight · SCB / 127 (row absmax chosen here as power-of-two
  // multiples of 127, so the reference's dense weight is exact); `weight_format` 0 (row-major).
  void int8_rows(const std::string& name, int out, int in, std::mt19937& rng) {
    std::vector<std::int8_t> q(static_cast<std::size_t>(out * in));
    std::vector<float> scb(static_cast<std::size_t>(out)), dense(q.size());
    for (auto& v : q) v = static_cast<std::int8_t>(static_cast<int>(rng() % 255) - 127);
    for (int o = 0; o < out; ++o) {
      scb[o] = 127.0f * float(1 + rng() % 16) / 256.0f / std::sqrt(float(in));
      for (int i = 0; i < in; ++i) dense[o * in + i] = float(q[o * in + i]) * (scb[o] / 127.0f);
    }
    w_[name + ".weight"] = dense;  // reference only
    dense_shapes_[name + ".weight"] = {out, in};
    raw_[name + ".weight"] = {DType::I8, {out, in}, bytes_of(q)};
    raw_[name + ".SCB"] = {DType::F32, {out}, bytes_of(scb)};
    raw_[name + ".weight_format"] = {DType::U8, {}, bytes_of(std::vector<std::uint8_t>{0})};
  }

  // A bitsandbytes 4-bit Linear as Params4bit and QuantState.as_dict(packed=True) save it: `weight`
  // uint8 [(out·in + 1) / 2, 1] (row-major codes, the first of each pair in the high nibble), absmax per
  // 64 elements of the flattened matrix (blocks straddle rows here: in is not a multiple of 64),
  // quant_map, and the JSON state; double-quantized, absmax is uint8 codes of a 256-value map over
  // blocks of 256, plus an offset. The reference keeps table[code] · absmax.
  void codes4(const std::string& name, int out, int in, std::mt19937& rng) {
    const bool nf4 = c_.bnb->quant_type == "nf4", nested = c_.bnb->double_quant;
    const float* table = nf4 ? kernels::nf4_table() : kernels::fp4_table();
    const int n = out * in, block = 64, blocks = (n + block - 1) / block;
    std::vector<unsigned> code(static_cast<std::size_t>(n));
    for (auto& c : code) c = rng() % 16;
    std::vector<float> absmax(static_cast<std::size_t>(blocks));
    std::vector<std::uint8_t> absmax_codes(absmax.size());
    std::vector<float> nested_map(256), nested_absmax(static_cast<std::size_t>((blocks + 255) / 256));
    const float offset = 0.5f / std::sqrt(float(in));
    for (int k = 0; k < 256; ++k) nested_map[k] = float(k - 128) / 128.0f;
    for (auto& a : nested_absmax) a = float(1 + rng() % 8) / 16.0f / std::sqrt(float(in));
    for (int b = 0; b < blocks; ++b) {
      if (nested) {
        absmax_codes[b] = static_cast<std::uint8_t>(128 + rng() % 128);
        absmax[b] = nested_map[absmax_codes[b]] * nested_absmax[b / 256] + offset;
      } else {
        absmax[b] = float(1 + rng() % 32) / 16.0f / std::sqrt(float(in));
      }
    }
    std::vector<float> dense(static_cast<std::size_t>(n));
    std::vector<std::uint8_t> packed(static_cast<std::size_t>((n + 1) / 2), 0);
    for (int e = 0; e < n; ++e) {
      dense[e] = table[code[e]] * absmax[e / block];
      packed[e / 2] |= static_cast<std::uint8_t>(e % 2 == 0 ? code[e] << 4 : code[e]);
    }
    w_[name + ".weight"] = dense;  // reference only
    dense_shapes_[name + ".weight"] = {out, in};
    const std::string type = nf4 ? "nf4" : "fp4";
    json state = {{"quant_type", type}, {"blocksize", block}, {"dtype", "float16"}, {"shape", {out, in}}};
    raw_[name + ".weight"] = {DType::U8, {(n + 1) / 2, 1}, bytes_of(packed)};
    raw_[name + ".weight.quant_map"] = {DType::F32, {16}, bytes_of(std::vector<float>(table, table + 16))};
    if (nested) {
      state["nested_blocksize"] = 256;
      state["nested_dtype"] = "float32";
      state["nested_offset"] = offset;
      raw_[name + ".weight.absmax"] = {DType::U8, {blocks}, bytes_of(absmax_codes)};
      raw_[name + ".weight.nested_absmax"] = {DType::F32, {std::int64_t(nested_absmax.size())}, bytes_of(nested_absmax)};
      raw_[name + ".weight.nested_quant_map"] = {DType::F32, {256}, bytes_of(nested_map)};
    } else {
      raw_[name + ".weight.absmax"] = {DType::F32, {blocks}, bytes_of(absmax)};
    }
    const std::string text = state.dump();
    raw_[name + ".weight.quant_state.bitsandbytes__" + type] = {DType::U8, {std::int64_t(text.size())},
                                                                 bytes_of(std::vector<char>(text.begin(), text.end()))};
  }

  void write(const fs::path& dir) const {
    std::vector<std::vector<std::uint16_t>> halves;
    halves.reserve(w_.size());
    std::vector<TensorToWrite> out;
    for (const auto& [name, r] : raw_) out.push_back({name, r.dtype, r.shape, r.bytes});
    for (const auto& [name, v] : w_) {
      if (!shapes_.count(name)) continue;  // a dense stand-in for a quantized layer: reference only
      if (variant_.f16) {
        auto& h = halves.emplace_back(v.size());
        std::transform(v.begin(), v.end(), h.begin(), to_f16);
        out.push_back({name, DType::F16, shapes_.at(name), std::as_bytes(std::span<const std::uint16_t>(h))});
      } else {
        out.push_back({name, DType::F32, shapes_.at(name), std::as_bytes(std::span<const float>(v))});
      }
    }
    write_safetensors(dir / "model.safetensors", out);
    std::ofstream(dir / "config.json") << variant_.config.dump();
  }

  // The same model unquantized: every weight as the reference multiplies it, in float32.
  void write_dequantized(const fs::path& dir) const {
    std::vector<TensorToWrite> out;
    for (const auto& [name, v] : w_) {
      const auto shape = shapes_.count(name) ? shapes_.at(name) : dense_shapes_.at(name);
      out.push_back({name, DType::F32, shape, std::as_bytes(std::span<const float>(v))});
    }
    write_safetensors(dir / "model.safetensors", out);
    json config = variant_.config;
    config.erase("quantization_config");
    config["torch_dtype"] = "float32";
    std::ofstream(dir / "config.json") << config.dump();
  }

  // transformers' LlamaForCausalLM in doubles, loops only: logits of every position.
  std::vector<std::vector<double>> forward(const std::vector<std::int64_t>& ids) const {
    const std::size_t n = ids.size();
    const auto inv_freq = rope_inverse_frequencies(c_);
    std::vector<std::vector<double>> h(n);
    for (std::size_t p = 0; p < n; ++p) {
      h[p] = row("model.embed_tokens.weight", ids[p], E);
      if (gemma())  // GemmaModel: embeddings times √hidden_size
        for (auto& v : h[p]) v *= std::sqrt(double(E));
    }
    for (int l = 0; l < L; ++l) {
      const std::string b = "model.layers." + std::to_string(l) + ".";
      std::vector<std::vector<double>> q(n), k(n), v(n);
      for (std::size_t p = 0; p < n; ++p) {
        const auto x = rms_norm(h[p], b + "input_layernorm.weight");
        auto qp = linear(x, b + "self_attn.q_proj", H * D, E), kp = linear(x, b + "self_attn.k_proj", KVH * D, E);
        if (qk_norm()) {  // Qwen3Attention, Gemma3Attention: q_norm / k_norm over each head, before the rotation
          qp = per_head_norm(qp, H, b + "self_attn.q_norm.weight");
          kp = per_head_norm(kp, KVH, b + "self_attn.k_norm.weight");
        }
        // Gemma 3's sliding layers rotate by rope_local_base_freq, without the global layers' scaling.
        const auto& inv = type() == "gemma3_text" && window(l) ? local_inv_freq() : inv_freq;
        q[p] = rotate(qp, H, p, inv, attention_factor());
        k[p] = rotate(kp, KVH, p, inv, attention_factor());
        v[p] = linear(x, b + "self_attn.v_proj", KVH * D, E);
      }
      for (std::size_t p = 0; p < n; ++p) {
        std::vector<double> out(H * D, 0.0);
        for (int hd = 0; hd < H; ++hd) {
          const int g = hd / (H / KVH);
          std::vector<double> s(p + 1, -INFINITY);
          double top = -INFINITY, sum = 0;
          for (std::size_t j = 0; j <= p; ++j) {
            if (window(l) && p - j >= std::size_t(*window(l))) continue;
            s[j] = 0;
            for (int d = 0; d < D; ++d) s[j] += q[p][hd * D + d] * k[j][g * D + d];
            s[j] *= score_scale();
            if (const double cap = variant_.config.value("attn_logit_softcapping", 0.0); cap > 0) s[j] = cap * std::tanh(s[j] / cap);
            top = std::max(top, s[j]);
          }
          for (auto& x : s) sum += x = std::exp(x - top);
          for (std::size_t j = 0; j <= p; ++j)
            for (int d = 0; d < D; ++d) out[hd * D + d] += s[j] / sum * v[j][g * D + d];
        }
        auto o = linear(out, b + "self_attn.o_proj", E, H * D);
        if (sandwich()) o = rms_norm(o, b + "post_attention_layernorm.weight");  // Gemma2DecoderLayer
        for (int e = 0; e < E; ++e) h[p][e] += o[e];
        const auto x = rms_norm(h[p], b + (sandwich() ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight"));
        std::vector<double> down(E, 0.0);
        if (sparse(l)) {
          // softmax over the router's logits, the top k, renormalised (Mixtral; Qwen3-MoE if asked)
          auto probs = linear(x, moe_prefix(b) + "gate", experts(), E);
          const double top = *std::max_element(probs.begin(), probs.end());
          double sum = 0;
          for (auto& v : probs) sum += v = std::exp(v - top);
          for (auto& v : probs) v /= sum;
          std::vector<int> order(experts());
          std::iota(order.begin(), order.end(), 0);
          std::sort(order.begin(), order.end(), [&](int a, int c) { return probs[a] > probs[c]; });
          const int k = variant_.config["num_experts_per_tok"].get<int>();
          double chosen = 0;
          for (int j = 0; j < k; ++j) chosen += probs[order[j]];
          const bool renormalise = mixtral() || variant_.config.value("norm_topk_prob", false);
          for (int j = 0; j < k; ++j) {
            const auto [gate, up, down_name] = expert_names(b, order[j]);
            const auto y = gated(x, gate, up, down_name, expert_inner());
            const double w = renormalise ? probs[order[j]] / chosen : probs[order[j]];
            for (int e = 0; e < E; ++e) down[e] += w * y[e];
          }
          if (shared_inner() > 0) {  // Qwen2-MoE: + sigmoid(shared_expert_gate(x)) · shared_expert(x)
            const std::string sh = moe_prefix(b) + "shared_expert.";
            const auto y = gated(x, sh + "gate_proj", sh + "up_proj", sh + "down_proj", shared_inner());
            const double g = 1.0 / (1.0 + std::exp(-linear(x, moe_prefix(b) + "shared_expert_gate", 1, E)[0]));
            for (int e = 0; e < E; ++e) down[e] += g * y[e];
          }
        } else {
          down = gated(x, b + "mlp.gate_proj", b + "mlp.up_proj", b + "mlp.down_proj", inner());
        }
        if (sandwich()) down = rms_norm(down, b + "post_feedforward_layernorm.weight");
        for (int e = 0; e < E; ++e) h[p][e] += down[e];
      }
    }
    const std::string head = tied() ? "model.embed_tokens" : "lm_head";
    std::vector<std::vector<double>> logits(n);
    for (std::size_t p = 0; p < n; ++p) {
      logits[p] = linear(rms_norm(h[p], "model.norm.weight"), head, V, E);
      if (const double cap = variant_.config.value("final_logit_softcapping", 0.0); cap > 0)  // Gemma2ForCausalLM
        for (auto& v : logits[p]) v = cap * std::tanh(v / cap);
    }
    return logits;
  }

 // Each block Linear's weight replaced by its quantization on load, computed here from bitsandbytes'
  // rules: int8, round(w · 127 / row absmax) · absmax / 127; nf4, the NF4 value nearest w / absmax of
  // its block of 64 along the row, times that absmax.
  void quantize_block_linears(LoadQuantization method) {
    const float* nf4 = kernels::nf4_table();
    for (auto& [name, v] : w_) {
      if (name.rfind("model.layers.", 0) != 0 || !shapes_.count(name) || shapes_.at(name).size() != 2) continue;
      const auto rows = shapes_.at(name)[0], cols = shapes_.at(name)[1];
      for (std::int64_t r = 0; r < rows; ++r) {
        float* row = v.data() + r * cols;
        const std::int64_t block = method == LoadQuantization::Int8 ? cols : 64;
        for (std::int64_t c0 = 0; c0 < cols; c0 += block) {
          const std::int64_t c1 = std::min(cols, c0 + block);
          float absmax = 0;
          for (std::int64_t c = c0; c < c1; ++c) absmax = std::max(absmax, std::abs(row[c]));
          for (std::int64_t c = c0; c < c1; ++c) {
            if (method == LoadQuantization::Int8) {
              row[c] = float(std::nearbyint(row[c] * (127.0f / absmax))) * (absmax / 127.0f);
            } else {
              const float x = row[c] / absmax;
              int best = 0;
              for (int k = 1; k < 16; ++k)
                if (std::abs(x - nf4[k]) < std::abs(x - nf4[best])) best = k;
              row[c] = nf4[best] * absmax;
            }
          }
        }
      }
    }
  }

 // The tensors written as they are (quantized layers), for tests that spoil one.
  std::map<std::string, Raw>& raw_tensors() { return raw_; }

 private:
  std::string type() const { return variant_.config.value("model_type", ""); }
  bool qwen3() const { return type() == "qwen3" || type() == "qwen3_moe"; }
  bool gemma() const { return type().rfind("gemma", 0) == 0; }
  // The config classes' default: Gemma ties its head, the others do not.
  bool tied() const { return variant_.config.value("tie_word_embeddings", gemma()); }
  bool sandwich() const { return type() == "gemma2" || type() == "gemma3_text"; }
  bool qk_norm() const { return qwen3() || type() == "gemma3_text"; }
  // Gemma 2/3 scale scores by query_pre_attn_scalar^-½, the others by head_dim^-½.
  double score_scale() const {
    return 1.0 / std::sqrt(sandwich() ? variant_.config.value("query_pre_attn_scalar", 256.0) : double(D));
  }
  // theta^(-2j/D) in float32, as transformers' default RoPE, for rope_local_base_freq.
  const std::vector<float>& local_inv_freq() const {
    static std::vector<float> inv;
    inv.clear();
    const float base = variant_.config.value("rope_local_base_freq", 10000.0f);
    for (int j = 0; j < D / 2; ++j) inv.push_back(1.0f / std::pow(base, float(2 * j) / float(D)));
    return inv;
  }
  bool mixtral() const { return type() == "mixtral"; }

  // Routed experts, read from config.json as MixtralConfig / Qwen3MoeConfig define them.
  int experts() const {
    return variant_.config.value(mixtral() ? "num_local_experts" : "num_experts", 0);
  }
  int inner() const { return static_cast<int>(c_.intermediate_size); }  // F unless the variant says otherwise
  int expert_inner() const { return mixtral() ? F : variant_.config.value("moe_intermediate_size", 0); }
  int shared_inner() const { return variant_.config.value("shared_expert_intermediate_size", 0); }
  bool sparse(int layer) const {
    if (experts() == 0) return false;
    for (const auto& d : variant_.config.value("mlp_only_layers", json::array()))
      if (d.get<int>() == layer) return false;
    return (layer + 1) % variant_.config.value("decoder_sparse_step", 1) == 0;
  }
  std::string moe_prefix(const std::string& block) const { return block + (mixtral() ? "block_sparse_moe." : "mlp."); }
  std::tuple<std::string, std::string, std::string> expert_names(const std::string& block, int e) const {
    const std::string x = moe_prefix(block) + "experts." + std::to_string(e) + ".";
    if (mixtral()) return {x + "w1", x + "w3", x + "w2"};
    return {x + "gate_proj", x + "up_proj", x + "down_proj"};
  }
  // down(silu(gate(x)) · up(x))
  std::vector<double> gated(const std::vector<double>& x, const std::string& gate_name, const std::string& up_name,
                            const std::string& down_name, int inner) const {
    auto gate = linear(x, gate_name, inner, E);
    const auto up = linear(x, up_name, inner, E);
    for (int f = 0; f < inner; ++f) {
      const double g = gate[f];
      gate[f] = (gemma() ? 0.5 * g * (1 + std::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)))  // gelu_pytorch_tanh
                         : g / (1 + std::exp(-g))) * up[f];
    }
    return linear(gate, down_name, E, inner);
  }

  // The window of layer l, straight from config.json as transformers' configs read it: Mistral slides
  // on every layer; Qwen2/Qwen3 only with use_sliding_window, from max_window_layers on.
  std::optional<std::int64_t> window(int l) const {
    const json& j = variant_.config;
    if (!j.contains("sliding_window") || j["sliding_window"].is_null()) return std::nullopt;
    const std::string type = j.value("model_type", "");
    if (type == "mistral" || type == "mixtral" || type == "phi3") return j["sliding_window"].get<std::int64_t>();
    if ((type == "qwen2" || type == "qwen3") && j.value("use_sliding_window", false) && l >= j.value("max_window_layers", 28))
      return j["sliding_window"].get<std::int64_t>();
    if (type == "gemma2" && l % 2 == 0) return j["sliding_window"].get<std::int64_t>();  // even layers slide
    if (type == "gemma3_text" && (l + 1) % j.value("sliding_window_pattern", 6) != 0) return j["sliding_window"].get<std::int64_t>();
    return std::nullopt;
  }

  std::vector<double> per_head_norm(std::vector<double> x, int heads, const std::string& name) const {
    for (int hd = 0; hd < heads; ++hd) {
      const std::vector<double> head(x.begin() + hd * D, x.begin() + (hd + 1) * D);
      const auto normed = rms_norm(head, name);
      std::copy(normed.begin(), normed.end(), x.begin() + hd * D);
    }
    return x;
  }

  std::vector<double> row(const std::string& name, std::int64_t r, int width) const {
    const auto& w = w_.at(name);
    return {w.begin() + r * width, w.begin() + (r + 1) * width};
  }
  std::vector<double> linear(const std::vector<double>& x, const std::string& name, int out, int in) const {
    const auto& w = w_.at(name + ".weight");
    const auto bias = w_.find(name + ".bias");
    std::vector<double> y(out, 0.0);
    for (int o = 0; o < out; ++o) {
      y[o] = bias == w_.end() ? 0.0 : bias->second[o];
      for (int i = 0; i < in; ++i) y[o] += w[o * in + i] * x[i];
    }
    return y;
  }
  std::vector<double> rms_norm(const std::vector<double>& x, const std::string& name) const {
    double ms = 0;
    for (double v : x) ms += v * v / double(x.size());
    std::vector<double> y(x.size());
    // GemmaRMSNorm scales by (1 + weight).
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] / std::sqrt(ms + c_.norm_eps) * ((gemma() ? 1.0 : 0.0) + w_.at(name)[i]);
    return y;
  }
  // rotate_half convention: dimension j pairs with j + D/2.
  // yarn's attention factor, 0.1·ln(factor) + 1 (the paper's; transformers multiplies cos and sin by it).
  double attention_factor() const {
    const json& r = variant_.config.value("rope_scaling", json::object());
    if (!r.is_object() || r.value("rope_type", "") != "yarn") return 1.0;
    return 0.1 * std::log(r["factor"].get<double>()) + 1.0;
  }

  static std::vector<double> rotate(std::vector<double> x, int heads, std::size_t pos, const std::vector<float>& inv, double scale) {
    for (int hd = 0; hd < heads; ++hd)
      for (int j = 0; j < D / 2; ++j) {
        const double a = double(pos) * double(inv[j]), c = scale * std::cos(a), s = scale * std::sin(a);
        double& lo = x[hd * D + j];
        double& hi = x[hd * D + j + D / 2];
        const double l = lo, r = hi;
        lo = l * c - r * s;
        hi = r * c + l * s;
      }
    return x;
  }

  Variant variant_;
  ModelConfig c_;
  std::map<std::string, std::vector<float>> w_;
  std::map<std::string, std::vector<std::int64_t>> shapes_;
  std::map<std::string, std::vector<std::int64_t>> dense_shapes_;  // quantized Linears' dense stand-ins
  std::map<std::string, Raw> raw_;
};

json base_config(const std::string& type) {
  return json{{"model_type", type},       {"hidden_size", E},          {"intermediate_size", F},
              {"num_hidden_layers", L},   {"num_attention_heads", H},  {"num_key_value_heads", KVH},
              {"vocab_size", V},          {"max_position_embeddings", 64}, {"rms_norm_eps", 1e-5},
              {"rope_theta", 1000.0}};
}

const std::vector<std::int64_t> kSequence{3, 14, 15, 9, 26, 53, 58, 9, 79, 32, 38, 46};

double max_error(std::span<const float> row, const std::vector<double>& reference) {
  double worst = 0;
  for (std::size_t i = 0; i < reference.size(); ++i) worst = std::max(worst, std::abs(double(row[i]) - reference[i]));
  return worst;
}

}  // namespace

class TestRunLlama : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void variants_data() {
    QTest::addColumn<QString>("config");
    QTest::addColumn<bool>("f16");
    auto qwen2 = base_config("qwen2");
    qwen2["tie_word_embeddings"] = false;
    auto llama3 = base_config("llama");
    llama3["tie_word_embeddings"] = true;
    llama3["attention_bias"] = true;
    llama3["mlp_bias"] = true;
    // A short original context puts the small model's frequencies in all three bands.
    llama3["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 4.0}, {"low_freq_factor", 1.0},
                              {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 64}};
    auto mistral = base_config("mistral");
    mistral["sliding_window"] = 4;
    mistral["torch_dtype"] = "float16";
    // Qwen3: q/k norms, biases on all four projections, a window of 4 on the second layer only.
    auto qwen3 = base_config("qwen3");
    qwen3["attention_bias"] = true;
    qwen3["use_sliding_window"] = true;
    qwen3["sliding_window"] = 4;
    qwen3["max_window_layers"] = 1;
    QTest::newRow("qwen2 biases, untied head") << QString::fromStdString(qwen2.dump()) << false;
    QTest::newRow("qwen3 q/k norms, biases, window on layer 1") << QString::fromStdString(qwen3.dump()) << false;
    auto yarn = base_config("qwen3");  // yarn over a short original context: the ramp lies inside the head
    yarn["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 16}};
    QTest::newRow("qwen3 yarn") << QString::fromStdString(yarn.dump()) << false;
    // Routed experts: Mixtral (4 experts, top 2, renormalised; float16), Qwen3-MoE (a dense first layer,
    // 4 experts of their own size, top 2 not renormalised) and Qwen2-MoE (with a gated shared expert).
    auto mixtral = base_config("mixtral");
    mixtral["num_local_experts"] = 4;
    mixtral["num_experts_per_tok"] = 2;
    mixtral["torch_dtype"] = "float16";
    auto qwen3_moe = base_config("qwen3_moe");
    qwen3_moe["num_experts"] = 4;
    qwen3_moe["num_experts_per_tok"] = 2;
    qwen3_moe["moe_intermediate_size"] = 24;
    qwen3_moe["norm_topk_prob"] = false;
    qwen3_moe["mlp_only_layers"] = json::array({0});
    QTest::newRow("mixtral experts, float16") << QString::fromStdString(mixtral.dump()) << true;
    QTest::newRow("qwen3_moe experts, dense first layer") << QString::fromStdString(qwen3_moe.dump()) << false;
    auto phi3 = base_config("phi3");  // fused projections, a window of 5 on every layer
    phi3["sliding_window"] = 5;
    QTest::newRow("phi3 fused projections, sliding window") << QString::fromStdString(phi3.dump()) << false;
    auto qwen2_moe = base_config("qwen2_moe");  // q/k/v biases, 4 experts, top 2 renormalised, a shared expert
    qwen2_moe["num_experts"] = 4;
    qwen2_moe["num_experts_per_tok"] = 2;
    qwen2_moe["moe_intermediate_size"] = 16;
    qwen2_moe["shared_expert_intermediate_size"] = 40;
    qwen2_moe["norm_topk_prob"] = true;
    QTest::newRow("qwen2_moe experts and shared expert") << QString::fromStdString(qwen2_moe.dump()) << false;
    QTest::newRow("llama3 rope scaling, biases") << QString::fromStdString(llama3.dump()) << false;
    // Gemma: (1 + weight) norms, √hidden embedding scale, tanh-GELU gate, tied head (the default).
    QTest::newRow("gemma geglu, scaled embeddings, tied") << QString::fromStdString(base_config("gemma").dump()) << false;
    // Gemma 2: the four norms, query_pre_attn_scalar, both soft-caps (small enough to bite), a window
    // of 3 on layer 0.
    auto gemma2 = base_config("gemma2");
    gemma2["query_pre_attn_scalar"] = 24;
    gemma2["attn_logit_softcapping"] = 2.0;
    gemma2["final_logit_softcapping"] = 3.0;
    gemma2["sliding_window"] = 3;
    gemma2["head_dim"] = D;
    QTest::newRow("gemma2 sandwich norms, soft-capping, window") << QString::fromStdString(gemma2.dump()) << false;
    // Gemma 3: q/k norms, layer 0 local (window 4, its own RoPE base, unscaled), layer 1 global (linear
    // scaling); float16 weights.
    auto gemma3 = base_config("gemma3_text");
    gemma3["query_pre_attn_scalar"] = 16;
    gemma3["sliding_window"] = 4;
    gemma3["sliding_window_pattern"] = 2;
    gemma3["rope_local_base_freq"] = 100.0;
    gemma3["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
    gemma3["torch_dtype"] = "float16";
    QTest::newRow("gemma3 q/k norms, local and global layers, float16") << QString::fromStdString(gemma3.dump()) << true;
    QTest::newRow("mistral sliding window, float16") << QString::fromStdString(mistral.dump()) << true;
    // bitsandbytes 8-bit (LLM.int8 checkpoint), float16 elsewhere; run as the dequantized weights.
    auto bnb8 = base_config("llama");
    bnb8["torch_dtype"] = "float16";
    bnb8["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}, {"llm_int8_threshold", 6.0}};
    QTest::newRow("bitsandbytes 8-bit") << QString::fromStdString(bnb8.dump()) << true;
    // bitsandbytes 4-bit: NF4 with float32 absmax, FP4 double-quantized.
    for (const bool fp4_nested : {false, true}) {
      auto bnb4 = base_config("llama");
      bnb4["torch_dtype"] = "float16";
      bnb4["quantization_config"] = {{"quant_method", "bitsandbytes"},
                                     {"load_in_4bit", true},
                                     {"bnb_4bit_quant_type", fp4_nested ? "fp4" : "nf4"},
                                     {"bnb_4bit_use_double_quant", fp4_nested},
                                     {"bnb_4bit_compute_dtype", "float16"}};
      QTest::newRow(fp4_nested ? "bitsandbytes 4-bit fp4, double quant" : "bitsandbytes 4-bit nf4")
          << QString::fromStdString(bnb4.dump()) << true;
    }
    for (const int bits : {2, 4, 8})
      for (const bool desc_act : {false, true}) {
        auto gptq = base_config("llama");
        gptq["torch_dtype"] = "float16";
        // 16-row groups: 72 input rows of the MLP's down projection leave a last, partial group. 2 bits
        // put 16 values in a word, so the MLP is 80 wide there and groups of 32 leave the partial one.
        if (bits == 2) gptq["intermediate_size"] = 80;
        gptq["quantization_config"] = {{"quant_method", "gptq"}, {"bits", bits}, {"group_size", bits == 2 ? 32 : 16}, {"desc_act", desc_act}};
        const std::string row = "gptq " + std::to_string(bits) + "-bit" + (desc_act ? ", act order" : "");
        QTest::newRow(row.c_str()) << QString::fromStdString(gptq.dump()) << true;
      }
    auto awq = base_config("llama");
    awq["torch_dtype"] = "float16";
    awq["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 24}, {"zero_point", true}, {"version", "GEMM"}};
    QTest::newRow("awq 4-bit gemm") << QString::fromStdString(awq.dump()) << true;
  }

  void variants() {
    QFETCH(QString, config);
    QFETCH(bool, f16);
    const Variant variant{json::parse(config.toStdString()), f16};
    testkit::TempDir dir;
    std::optional<RandomLlama> made;
    try {
      made.emplace(variant, 21);
    } catch (const std::exception& e) {
      QFAIL(e.what());
    }
    const RandomLlama& data = *made;
    data.write(dir.path());
    const auto reference = data.forward(kSequence);

    // Block 1 on "disk". With float16 weights the matrices stay float16 on "cpu" and "disk" alike (the
    // decode kernels read them; LibTorch's products cast them), norms and biases are cast into RAM.
    DeviceMap map({{"", Device::cpu()}});
    map.set("model.layers.1", Device::disk());
    std::optional<Model> loaded;
    try {
      // Run from the mapping, so that what needed no cast shows as aliased.
      LoadOptions mapped;
      mapped.map_cpu_weights = true;
      loaded.emplace(Model::load(dir.path(), map, mapped));
    } catch (const std::exception& e) {
      QFAIL(e.what());
    }
    Model& model = *loaded;
    const auto& report = model.load_report();
    QCOMPARE(report.cpu_dtype, DType::F32);
    if (f16) {
      QCOMPARE(report.requested_dtype, DType::F16);
      QVERIFY(!report.notes.empty());
      QVERIFY(report.bytes_by_device.at("cpu") > 0);
      // Packed words, and float16 matrices, need no cast: they stay mapped; the norms do not.
      QVERIFY(report.aliased_bytes > report.bytes_by_device.at("disk"));
      QVERIFY(report.aliased_bytes < report.bytes_by_device.at("disk") + report.bytes_by_device.at("cpu"));
    } else {
      QCOMPARE(report.aliased_bytes, report.bytes_by_device.at("cpu") + report.bytes_by_device.at("disk"));
    }

    // A bitsandbytes checkpoint plans as transformers' meta model holds it: float-shaped Linears.
    if (variant.config.contains("quantization_config") && variant.config["quantization_config"].value("quant_method", "") == "bitsandbytes") {
      const Skeleton s = skeleton_from_checkpoint(Checkpoint::open(dir.path()));
      const int q = s.find_tensor("model.layers.0.self_attn.q_proj.weight");
      QVERIFY(q >= 0 && s.tensors[static_cast<std::size_t>(q)].shape == (std::vector<std::int64_t>{H * D, E}));
      QVERIFY(s.find_tensor("model.layers.0.self_attn.q_proj.SCB") < 0);
      QVERIFY(s.find_tensor("model.layers.0.self_attn.q_proj.weight.absmax") < 0);
    }
    // Quantized layers in RAM (block 0: bitsandbytes, GPTQ at each width, AWQ) are read by the decode
    // kernels as codes or int8 rows; block 1's stay on "disk".
    const auto quant = variant.config.value("quantization_config", json::object());
    if (quant.value("load_in_4bit", false) || quant.value("load_in_8bit", false) || quant.contains("bits"))
      QCOMPARE(report.packed_linears, std::size_t{7});
    else
      QCOMPARE(report.packed_linears, std::size_t{0});
    const Logits whole = model.evaluate(kSequence);
    for (std::size_t p = 0; p < kSequence.size(); ++p) {
      const double err = max_error(whole.row(std::int64_t(p)), reference[p]);
      QVERIFY2(err < 1e-4, ("position " + std::to_string(p) + ": " + std::to_string(err)).c_str());
    }
    const std::span<const std::int64_t> seq(kSequence);
    // In chunks of 5 through the cache, the whole sequence gives the same logits.
    LoadOptions chunked;
    chunked.prefill_chunk = 5;
    Model by_chunks = Model::load(dir.path(), map, chunked);
    const Logits chunk_rows = by_chunks.evaluate(kSequence), chunk_last = by_chunks.forward(kSequence);
    QCOMPARE(by_chunks.cached_tokens(), std::int64_t(kSequence.size()));
    for (std::size_t p = 0; p < kSequence.size(); ++p)
      QVERIFY(max_error(chunk_rows.row(std::int64_t(p)), reference[p]) < 1e-4);
    QVERIFY(max_error(chunk_last.row(0), reference.back()) < 1e-4);

    model.forward(seq.first(4));
    for (std::size_t p = 4; p < seq.size(); ++p) {
      const Logits step = model.forward(seq.subspan(p, 1));
      QVERIFY(max_error(step.row(0), reference[p]) < 1e-4);
    }
  }

  void packedLayersExpandForLongPrompts() {
    // A prompt of more than kPackedPromptRows rows runs each packed Linear expanded to float32 for
    // LibTorch's product (8-bit GPTQ: both planes of nibbles): the logits of every position against
    // the reference's dense weights, all layers on "cpu" so that every one is packed.
    const std::vector<std::pair<std::string, json>> formats = {
        {"bitsandbytes 8-bit", {{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}}},
        {"bitsandbytes nf4", {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"bnb_4bit_quant_type", "nf4"}}},
        {"gptq 2-bit", {{"quant_method", "gptq"}, {"bits", 2}, {"group_size", 32}, {"desc_act", false}}},
        {"gptq 4-bit act order", {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 16}, {"desc_act", true}}},
        {"gptq 8-bit", {{"quant_method", "gptq"}, {"bits", 8}, {"group_size", 16}, {"desc_act", false}}},
        {"gptq 8-bit act order", {{"quant_method", "gptq"}, {"bits", 8}, {"group_size", 16}, {"desc_act", true}}},
        {"awq 4-bit gemm", {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 24}, {"zero_point", true}, {"version", "gemm"}}},
    };
    std::vector<std::int64_t> sequence;
    for (int i = 0; i < 70; ++i) sequence.push_back((3 + i * 7) % V);
    for (const auto& [what, quantization] : formats) {
      auto config = base_config("llama");
      config["torch_dtype"] = "float16";
      config["max_position_embeddings"] = 128;
      config["quantization_config"] = quantization;
      if (quantization.value("bits", 4) == 2) config["intermediate_size"] = 80;  // 16 values to a word
      testkit::TempDir dir;
      const RandomLlama data(Variant{config, true}, 13);
      data.write(dir.path());
      const auto reference = data.forward(sequence);
      Model model = Model::load(dir.path(), DeviceMap({{"", Device::cpu()}}));
      QVERIFY2(model.load_report().packed_linears == 14, what.c_str());
      if (quantization["quant_method"] == "gptq") {
        // What the packed GPTQ layers hold, worked out here: codes of 4 bits (two planes at 8 bits), a
        // float32 scale and offset per group (8 bits: the low plane's scale too), act order's gather.
        const int bits = quantization["bits"], group = quantization["group_size"], inner = config["intermediate_size"];
        const std::uint64_t planes = bits == 8 ? 2 : 1;
        std::uint64_t expected = 0;
        for (const auto [out, in] : std::vector<std::pair<int, int>>{{H * D, E}, {KVH * D, E}, {KVH * D, E}, {E, H * D}, {inner, E}, {inner, E}, {E, inner}}) {
          const std::uint64_t groups = std::uint64_t(in + group - 1) / std::uint64_t(group);
          expected += planes * std::uint64_t(out * in / 2) + (planes + 1) * groups * std::uint64_t(out) * 4 +
                      (quantization["desc_act"] ? std::uint64_t(in) * 8 : 0);
        }
        QCOMPARE(model.load_report().packed_bytes, L * expected);
        // The load's plan counts that RAM (the words' mapping is dropped once they are repacked).
        const LoadPlan plan = plan_load(Checkpoint::open(dir.path()), ModelConfig::from_json(config), DeviceMap({{"", Device::cpu()}}), {});
        QVERIFY2(plan.allocated.at(Device::cpu()) >= L * expected, what.c_str());
        QVERIFY2(plan.allocated.at(Device::cpu()) < L * expected + 64 * 1024, what.c_str());
      }
      const Logits rows = model.evaluate(sequence);
      for (std::size_t p = 0; p < sequence.size(); ++p) {
        const double err = max_error(rows.row(std::int64_t(p)), reference[p]);
        QVERIFY2(err < 1e-4, (what + ", position " + std::to_string(p) + ": " + std::to_string(err)).c_str());
      }
    }
  }

  void gptqGroupIndexOutOfRange() {
    testkit::TempDir dir;
    auto config = base_config("llama");
    config["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 16}, {"desc_act", true}};
    RandomLlama(Variant{config, true}, 4).write(dir.path());
    std::uint64_t at = 0;
    {
      const auto file = SafetensorsFile::open(dir / "model.safetensors");
      const TensorInfo* g = file.find("model.layers.1.mlp.down_proj.g_idx");
      QVERIFY(g);
      at = file.data_offset() + g->begin + 4 * 7;
    }
    std::fstream f(dir / "model.safetensors", std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(at));
    const std::int32_t bad = 99;
    f.write(reinterpret_cast<const char*>(&bad), 4);
    f.close();
    try {
      Model::load(dir.path(), DeviceMap({{"", Device::cpu()}}));
      QFAIL("a g_idx naming a group the scales lack was accepted");
    } catch (const Error& e) {
      const std::string m = e.what();
      QVERIFY2(m.find("model.layers.1.mlp.down_proj.g_idx") != std::string::npos && m.find("group 99") != std::string::npos,
               m.c_str());
    }
  }

  void quantizedCheckpointsRunAsTheirDequantizedWeights() {
    // Through the command line: each quantized format, with block 1 on "disk", greedily continues a
    // prompt exactly as the float32 checkpoint of its dequantized weights does.
    const std::vector<std::pair<std::string, json>> formats = {
        {"bitsandbytes nf4", {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"bnb_4bit_quant_type", "nf4"}}},
        {"bitsandbytes fp4, double quant",
         {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"bnb_4bit_quant_type", "fp4"}, {"bnb_4bit_use_double_quant", true}}},
        {"bitsandbytes 8-bit", {{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}}},
        {"gptq 4-bit act order", {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 16}, {"desc_act", true}}},
        {"gptq 2-bit", {{"quant_method", "gptq"}, {"bits", 2}, {"group_size", 32}, {"desc_act", false}}},
        {"gptq 8-bit act order", {{"quant_method", "gptq"}, {"bits", 8}, {"group_size", 16}, {"desc_act", true}}},
        {"awq 4-bit gemm", {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 24}, {"zero_point", true}, {"version", "gemm"}}},
    };
    for (const auto& [what, quantization] : formats) {
      testkit::TempDir quantized, dense;
      auto config = base_config("llama");
      config["torch_dtype"] = "float16";
      config["quantization_config"] = quantization;
      if (quantization.value("bits", 4) == 2) config["intermediate_size"] = 80;  // 16 values to a word
      config["max_position_embeddings"] = 128;
      const RandomLlama made(Variant{config, true}, 8);
      made.write(quantized.path());
      made.write_dequantized(dense.path());
      std::ofstream(quantized / "map.json") << R"({"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
                                                   "model.norm": "cpu", "lm_head": "cpu"})";
      // A prompt longer than kPackedPromptRows expands the packed layers for LibTorch's product.
      std::string long_prompt = "3";
      for (int i = 1; i < 70; ++i) long_prompt += "," + std::to_string(i * 7 % V);
      const auto ids = [&](const fs::path& dir, const std::string& prompt, const char* tokens) {
        const auto r = testkit::run_cli({"run", dir.string(), "--device-map", (quantized / "map.json").string(), "--prompt-ids",
                                         prompt, "--max-new-tokens", tokens, "--greedy", "--output", "ids"});
        if (r.code != 0) return "exit " + std::to_string(r.code) + ": " + r.err;
        return r.out;
      };
      const std::string got = ids(quantized.path(), "3,14,15,9", "24"), expected = ids(dense.path(), "3,14,15,9", "24");
      QVERIFY2(expected.rfind("3 14 15 9 ", 0) == 0, (what + ": " + expected).c_str());
      QVERIFY2(got == expected, (what + ": " + got + " against " + expected).c_str());
      const std::string got_long = ids(quantized.path(), long_prompt, "8"), expected_long = ids(dense.path(), long_prompt, "8");
      QVERIFY2(expected_long.rfind("3 7 14 ", 0) == 0, (what + ": " + expected_long).c_str());
      QVERIFY2(got_long == expected_long, (what + ", 70-token prompt: " + got_long + " against " + expected_long).c_str());
    }
    // --quantize on the command line: a float checkpoint runs quantized (the --stats line says so); a
    // quantized one, or an unknown method, is refused.
    testkit::TempDir dense;
    RandomLlama(Variant{base_config("llama"), false}, 8).write(dense.path());
    const auto quantized_run = testkit::run_cli({"run", dense.path().string(), "--prompt-ids", "3,14", "--max-new-tokens", "4", "--greedy",
                                                 "--output", "ids", "--quantize", "nf4", "--stats"});
    QVERIFY2(quantized_run.code == 0 && quantized_run.out.rfind("3 14 ", 0) == 0, quantized_run.err.c_str());
    QVERIFY2(quantized_run.err.find("14 quantized Linears read packed") != std::string::npos, quantized_run.err.c_str());
    const auto unknown = testkit::run_cli({"run", dense.path().string(), "--prompt-ids", "3", "--quantize", "int3"});
    QVERIFY2(unknown.code != 0 && unknown.err.find("--quantize: 'int3'") != std::string::npos, unknown.err.c_str());
  }

  void quantizeOnLoad() {
    // A float32 checkpoint quantized as it loads gives the logits of its weights quantized by the rule
    // written out here, and stays within a stated distance of the float model: int8 rows within 2% of
    // the largest logit, NF4 within 25% (16 levels per block of 64; this model measured 1.0% and 15.5%).
    testkit::TempDir dir;
    const RandomLlama made(Variant{base_config("llama"), false}, 12);
    made.write(dir.path());
    const auto exact = made.forward(kSequence);
    double top = 0;
    for (const auto& row : exact)
      for (double v : row) top = std::max(top, std::abs(v));
    for (const auto method : {LoadQuantization::Int8, LoadQuantization::Nf4}) {
      const bool int8 = method == LoadQuantization::Int8;
      RandomLlama rule = made;
      rule.quantize_block_linears(method);
      const auto reference = rule.forward(kSequence);
      LoadOptions options;
      options.quantize = method;
      Model model = Model::load(dir.path(), DeviceMap({{"", Device::cpu()}}), options);
      QCOMPARE(model.load_report().packed_linears, std::size_t{L * 7});
      const Logits got = model.evaluate(kSequence);
      double from_float = 0;
      for (std::size_t p = 0; p < kSequence.size(); ++p) {
        const double err = max_error(got.row(std::int64_t(p)), reference[p]);
        QVERIFY2(err < 1e-4, ((int8 ? "int8" : "nf4") + std::string(" position ") + std::to_string(p) + ": " + std::to_string(err)).c_str());
        from_float = std::max(from_float, max_error(got.row(std::int64_t(p)), exact[p]));
      }
      qInfo("quantized on load (%s): largest logit error %.4f of the float model's largest logit %.4f", int8 ? "int8" : "nf4", from_float, top);
      QVERIFY(from_float > 0);
      QVERIFY2(from_float < (int8 ? 0.02 : 0.25) * top, std::to_string(from_float).c_str());
      // Decoding through the cache agrees too (the kernels' path).
      model.reset();
      model.forward(std::span<const std::int64_t>(kSequence).first(4));
      for (std::size_t p = 4; p < kSequence.size(); ++p)
        QVERIFY(max_error(model.forward(std::span<const std::int64_t>(kSequence).subspan(p, 1)).row(0), reference[p]) < 1e-4);
    }
    // A map with no block on "cpu" leaves nothing to quantize: said, not ignored.
    try {
      LoadOptions on_disk;
      on_disk.quantize = LoadQuantization::Int8;
      Model::load(dir.path(), DeviceMap({{"", Device::disk()}}), on_disk);
      QFAIL("quantizing on load with nothing on \"cpu\" was accepted");
    } catch (const Error& e) {
      QVERIFY2(std::string(e.what()).find("nothing to quantize") != std::string::npos, e.what());
    }
    // A checkpoint quantized already is refused.
    testkit::TempDir gptq_dir;
    auto gptq = base_config("llama");
    gptq["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 16}};
    RandomLlama(Variant{gptq, true}, 3).write(gptq_dir.path());
    LoadOptions options;
    options.quantize = LoadQuantization::Nf4;
    QVERIFY_THROWS_EXCEPTION(Error, Model::load(gptq_dir.path(), DeviceMap({{"", Device::cpu()}}), options));
  }

  void bnb4BadStatesAreNamed() {
    // Each spoils one part of block 1's q_proj (on "disk": checked at load all the same) and must be
    // refused at load, naming the tensor and the key.
    auto config = base_config("llama");
    config["torch_dtype"] = "float16";
    config["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true}, {"bnb_4bit_quant_type", "nf4"}};
    const std::string w = "model.layers.1.self_attn.q_proj.weight";
    const std::string state_name = w + ".quant_state.bitsandbytes__nf4";
    const auto text_tensor = [](const std::string& t) {
      return Raw{DType::U8, {std::int64_t(t.size())}, bytes_of(std::vector<char>(t.begin(), t.end()))};
    };
    const json state = {{"quant_type", "nf4"}, {"blocksize", 64}, {"dtype", "float16"}, {"shape", {H * D, E}}};
    struct Case {
      const char* what;
      std::function<void(std::map<std::string, Raw>&)> spoil;
      std::vector<std::string> named;
    };
    const std::vector<Case> cases = {
        {"a block size bitsandbytes has not", [&](auto& raw) { auto s = state; s["blocksize"] = 48; raw[state_name] = text_tensor(s.dump()); },
         {state_name, "'blocksize'", "48"}},
        {"an unknown quant type", [&](auto& raw) { auto s = state; s["quant_type"] = "nf5"; raw[state_name] = text_tensor(s.dump()); },
         {state_name, "'quant_type'", "nf5"}},
        {"a shape that is not the module's", [&](auto& raw) { auto s = state; s["shape"] = {E, E + 2}; raw[state_name] = text_tensor(s.dump()); },
         {state_name, "'shape'", std::to_string(H * D) + ", " + std::to_string(E)}},
        {"a block size absmax disagrees with", [&](auto& raw) { auto s = state; s["blocksize"] = 128; raw[state_name] = text_tensor(s.dump()); },
         {w + ".absmax", "'blocksize'", "36 values"}},
        {"a code table that is not NF4", [&](auto& raw) { reinterpret_cast<float*>(raw[w + ".quant_map"].bytes.data())[3] = 0.5f; },
         {w + ".quant_map", "value 3"}},
        {"a state that is no JSON", [&](auto& raw) { raw[state_name] = text_tensor("{x"); },
         {state_name, "JSON"}},
        {"codes that do not cover the matrix", [&](auto& raw) { raw[w].shape = {H * D * E / 2 - 1, 1}; raw[w].bytes.resize(raw[w].bytes.size() - 1); },
         {w, "[1151, 1]", "config.json implies"}},
        {"both quant state names", [&](auto& raw) { raw[w + ".quant_state.bitsandbytes__fp4"] = raw[state_name]; }, {state_name, "both"}},
    };
    for (const auto& c : cases) {
      testkit::TempDir dir;
      RandomLlama made(Variant{config, true}, 5);
      c.spoil(made.raw_tensors());
      made.write(dir.path());
      DeviceMap map({{"", Device::cpu()}});
      map.set("model.layers.1", Device::disk());
      try {
        Model::load(dir.path(), map);
        QFAIL((std::string(c.what) + " was accepted").c_str());
      } catch (const Error& e) {
        const std::string m = e.what();
        for (const auto& part : c.named) QVERIFY2(m.find(part) != std::string::npos, (std::string(c.what) + ": " + m).c_str());
      } catch (const std::exception& e) {
        QFAIL((std::string(c.what) + ": not a devicemap::Error: " + e.what()).c_str());
      }
    }
  }

  void missingTensorIsNamed() {
    testkit::TempDir dir;
    auto config = base_config("qwen2");
    RandomLlama(Variant{config, false}, 3).write(dir.path());
    config["mlp_bias"] = true;  // the checkpoint has no MLP biases
    std::ofstream(dir / "config.json") << config.dump();
    try {
      Model::load(dir.path(), DeviceMap({{"", Device::cpu()}}));
      QFAIL("a checkpoint without the tensors config.json implies was accepted");
    } catch (const Error& e) {
      const std::string m = e.what();
      QVERIFY2(m.find("model.layers.0.mlp.gate_proj.bias") != std::string::npos, m.c_str());
    }
  }

  // A config.json whose sizes disagree with the checkpoint: the message names the tensor, the config
  // keys behind the dimension with their values, and what the checkpoint holds.
  void configDisagreeingWithCheckpointIsNamed() {
    testkit::TempDir dir;
    auto config = base_config("llama");
    RandomLlama(Variant{config, false}, 3).write(dir.path());
    const auto error_with = [&](const char* key, int value) {
      auto wrong = config;
      wrong[key] = value;
      std::ofstream(dir / "config.json") << wrong.dump();
      try {
        Model::load(dir.path(), DeviceMap({{"", Device::cpu()}}));
      } catch (const Error& e) {
        return std::string(e.what());
      }
      return std::string("accepted");
    };
    const std::string kv = error_with("num_key_value_heads", 3);
    QVERIFY2(kv.find("'model.layers.0.self_attn.k_proj.weight' has shape [16, 48]") != std::string::npos, kv.c_str());
    QVERIFY2(kv.find("dimension 0 is 16 in the checkpoint, where config.json has num_key_value_heads (3) × head_dim (8) = 24") !=
                 std::string::npos, kv.c_str());
    const std::string inner = error_with("intermediate_size", 80);
    QVERIFY2(inner.find("mlp.gate_proj.weight") != std::string::npos && inner.find("intermediate_size (80)") != std::string::npos &&
                 inner.find("72 in the checkpoint") != std::string::npos,
             inner.c_str());
  }
};

QTEST_MAIN(TestRunLlama)
#include "test_run_llama.moc"
