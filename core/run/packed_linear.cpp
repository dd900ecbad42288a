#include "run/packed_linear.hpp"

#include <ATen/ATen.h>

#include <algorithm>

#include "error.hpp"
#include "kernels/thread_pool.hpp"
#include "kernels/widen.hpp"
#include "run/awq.hpp"
#include "run/bnb4.hpp"
#include "run/cpu_cast.hpp"
#include "run/gptq.hpp"
#include "run/tensor_layout.hpp"
#include "run/weights.hpp"

namespace devicemap {

kernels::Matrix PackedLinear::matrix() const {
  if (int8)
    return {codes.data_ptr(), DType::I8, static_cast<std::size_t>(out), static_cast<std::size_t>(in), static_cast<std::size_t>(in),
            scale.data_ptr<float>()};
  kernels::Matrix m;
  m.data = codes.data_ptr();
  m.dtype = DType::U8;
  m.rows = static_cast<std::size_t>(out);
  m.cols = static_cast<std::size_t>(in);
  m.row_stride = static_cast<std::size_t>(in / 2);
  m.codes4 = &layout;
  return m;
}

namespace {

// W's rows [r0, r1) written into dst, or added to it (`Add`, a template argument so that the inner loops
// carry no test).
template <bool Add>
void expand_rows(const PackedLinear& l, float* dst, std::int64_t r0, std::int64_t r1) {
  const std::int64_t in = l.in;
  const auto put = [](float& d, float v) { d = Add ? d + v : v; };
  if (l.int8) {  // row r's int8 values times its scale
    const auto* q = static_cast<const std::int8_t*>(l.codes.data_ptr());
    const float* row_scale = l.scale.data_ptr<float>();
    for (std::int64_t r = r0; r < r1; ++r)
      for (std::int64_t c = 0; c < in; ++c) put(dst[r * in + c], float(q[r * in + c]) * row_scale[r]);
    return;
  }
  const auto* src = static_cast<const std::uint8_t*>(l.codes.data_ptr());
  const float* table = l.layout.table;
  const float* s = l.layout.scale;
  const float* o = l.layout.offset;
  const auto block = static_cast<std::int64_t>(l.layout.block), row_blocks = static_cast<std::int64_t>(l.layout.row_blocks);
  // Runs of one block at a time (no division per element), two codes per byte through a table of pairs.
  float pair[256][2];
  for (int b = 0; b < 256; ++b) pair[b][0] = table[b >> 4], pair[b][1] = table[b & 0xF];
  for (std::int64_t r = r0; r < r1; ++r)
    for (std::int64_t c = 0; c < in;) {
      const std::int64_t at = row_blocks ? r * row_blocks + c / block : (r * in + c) / block;
      const std::int64_t end = std::min(in, row_blocks ? (c / block + 1) * block : (at + 1) * block - r * in);
      const float scale = s[at], shift = o ? o[at] : 0.0f;
      float* d = dst + r * in;
      const std::uint8_t* q = src + r * in / 2;  // in is even: a row starts on a byte
      if (c % 2 == 1) put(d[c], pair[q[c / 2]][1] * scale + shift), ++c;
      for (; c + 1 < end; c += 2) {
        const float* v = pair[q[c / 2]];
        put(d[c], v[0] * scale + shift);
        put(d[c + 1], v[1] * scale + shift);
      }
      if (c < end) put(d[c], pair[q[c / 2]][0] * scale + shift), ++c;
    }
}

}  // namespace

void PackedLinear::expand(float* dst, bool add) const {
  if (int8 && !add) {
    kernels::widen_int8_rows(static_cast<const std::int8_t*>(codes.data_ptr()), scale.data_ptr<float>(), static_cast<std::size_t>(out),
                             static_cast<std::size_t>(in), dst, kernels::ThreadPool::shared());
    return;
  }
  const std::int64_t rows_per_task = std::max<std::int64_t>(1, (1 << 16) / std::max<std::int64_t>(1, in));
  const auto tasks = static_cast<std::size_t>((out + rows_per_task - 1) / rows_per_task);
  kernels::ThreadPool::shared().run(tasks, [&](std::size_t t) {
    const std::int64_t r0 = static_cast<std::int64_t>(t) * rows_per_task, r1 = std::min(out, r0 + rows_per_task);
    add ? expand_rows<true>(*this, dst, r0, r1) : expand_rows<false>(*this, dst, r0, r1);
  });
}

at::Tensor PackedLinear::dequantize(bool scratch) const {
  // Loops over rows on the kernels' pool: a prompt's pass expands every packed layer it runs, so this
  // must cost about a write of the float32 matrix (tensor ops on the nibbles took ten times as long;
  // fresh memory for each layer, its page faults as long again). int8 rows likewise.
  at::Tensor w;
  if (scratch && !columns.defined()) {
    thread_local at::Tensor buffer;
    if (!buffer.defined() || buffer.numel() < out * in) buffer = empty_in_huge_pages({out * in}, at::TensorOptions().dtype(at::kFloat));
    w = buffer.narrow(0, 0, out * in).view({out, in});
  } else {
    w = at::empty({out, in}, at::TensorOptions().dtype(at::kFloat));
  }
  expand(w.data_ptr<float>(), false);
  if (low) low->expand(w.data_ptr<float>(), true);  // GPTQ 8-bit: 16·high + low
  if (!columns.defined()) return w;
  return at::zeros_like(w).index_copy_(1, columns, w);  // codes' column j is input column columns[j]
}

namespace {

// The decode kernels' products of float32 rows `xf` (already in the codes' column order) with each
// linear in one pass over the pool per kMaxBatch rows, plus biases, in `dtype`.
std::vector<at::Tensor> products(const at::Tensor& xf, std::span<const PackedLinear* const> linears, std::span<const at::Tensor> biases,
                                 at::ScalarType dtype) {
  std::vector<at::Tensor> ys;
  std::vector<kernels::Matrix> matrices;
  std::vector<kernels::Product> work;
  std::vector<std::pair<std::size_t, at::Tensor>> lows;  // GPTQ 8-bit's low planes: (linear, its product)
  std::size_t planes = linears.size();
  for (const auto* l : linears) planes += l->low ? 1 : 0;
  matrices.reserve(planes);
  for (std::size_t i = 0; i < linears.size(); ++i) {
    const PackedLinear* l = linears[i];
    ys.push_back(at::empty({xf.size(0), l->out}, xf.options()));
    matrices.push_back(l->matrix());
    work.push_back({matrices.back(), ys.back().data_ptr<float>(), static_cast<std::size_t>(l->out)});
  }
  for (std::size_t i = 0; i < linears.size(); ++i)
    if (const auto& low = linears[i]->low) {
      lows.emplace_back(i, at::empty({xf.size(0), low->out}, xf.options()));
      matrices.push_back(low->matrix());
      work.push_back({matrices.back(), lows.back().second.data_ptr<float>(), static_cast<std::size_t>(low->out)});
    }
  const auto rows = static_cast<std::size_t>(xf.size(0)), cols = static_cast<std::size_t>(xf.size(1));
  for (std::size_t r = 0; r < rows; r += kernels::kMaxBatch) {
    for (std::size_t i = 0; i < work.size(); ++i)
      work[i].y = (i < ys.size() ? ys[i] : lows[i - ys.size()].second).data_ptr<float>() + r * work[i].y_stride;
    kernels::matvec(work, xf.data_ptr<float>() + r * cols, std::min(kernels::kMaxBatch, rows - r), cols);
  }
  for (const auto& [i, y] : lows) ys[i].add_(y);
  for (std::size_t i = 0; i < ys.size(); ++i) {
    if (i < biases.size() && biases[i].defined()) ys[i].add_(biases[i].to(at::kFloat));
    if (dtype != at::kFloat) ys[i] = ys[i].to(dtype);
  }
  return ys;
}

}  // namespace

at::Tensor PackedLinear::decode(const at::Tensor& x, const at::Tensor& bias) const {
  at::Tensor xf = x.to(at::kFloat).contiguous();
  if (columns.defined()) xf = xf.index_select(1, columns).contiguous();
  const PackedLinear* self = this;
  return products(xf, {&self, 1}, {&bias, 1}, x.scalar_type()).front();
}

std::vector<at::Tensor> decode_together(const at::Tensor& x, std::span<const PackedLinear* const> linears,
                                        std::span<const at::Tensor> biases) {
  bool gathered = false;
  for (const auto* l : linears) gathered = gathered || l->columns.defined();
  if (!gathered) return products(x.to(at::kFloat).contiguous(), linears, biases, x.scalar_type());
  std::vector<at::Tensor> ys;  // each its own input order
  for (std::size_t i = 0; i < linears.size(); ++i) ys.push_back(linears[i]->decode(x, i < biases.size() ? biases[i] : at::Tensor()));
  return ys;
}

std::int64_t PackedLinear::kernel_rows() const {
  return int8 ? kInt8PromptRows : kPackedPromptRows;
}

std::uint64_t PackedLinear::bytes() const {
  std::uint64_t b = codes.nbytes() + scale.nbytes();
  if (offset.defined()) b += offset.nbytes();
  if (columns.defined()) b += columns.nbytes();
  if (low) b += low->codes.nbytes() + low->scale.nbytes();  // its columns are these
  return b;
}

void pack_linears(Weights& weights, const ModelConfig& config) {
  const bool bnb4 = config.bnb && config.bnb->method == Quantization::Method::Bnb4;
  const bool bnb8 = config.bnb && config.bnb->method == Quantization::Method::Bnb8;
  if (!bnb4 && !bnb8 && !config.gptq && !config.awq) return;
  const c10::Device cpu(c10::kCPU);
  const auto resident = [&](const std::string& name) {
    const StoredTensor& s = weights.stored(name);
    return s.placement.is_cpu() && s.tensor.is_cpu();
  };
  for (const auto& [module, shape] : linear_shapes(config)) {
    const auto [out, in] = shape;
    if (bnb4 && weights.contains(module + ".weight.quant_map")) {
      // Checked wherever it lies; kept when its codes stay in RAM.
      const auto fetch = [&](const std::string& n) { return weights.contains(n) ? weights.fetch(n, cpu) : at::Tensor(); };
      auto packed = read_bnb4(module, out, in, fetch);
      if (resident(module + ".weight")) weights.add_packed(module, std::move(packed));
    } else if (bnb8 && weights.contains(module + ".SCB") && resident(module + ".weight") &&
               weights.stored(module + ".weight").tensor.scalar_type() == at::kChar) {
      // LLM.int8 rows read in place; SCB / 127 in float32 (the stored SCB is float32 whatever runs).
      auto p = std::make_shared<PackedLinear>();
      p->out = out;
      p->in = in;
      p->int8 = true;
      p->codes = weights.fetch(module + ".weight", cpu).contiguous();
      p->scale = weights.stored(module + ".SCB").tensor.to(at::kFloat).div(127.0).contiguous();
      weights.add_packed(module, std::move(p));
    } else if (config.awq && weights.contains(module + ".qweight") && resident(module + ".qweight")) {
      weights.add_packed(module, pack_awq4(weights.fetch(module + ".qweight", cpu), weights.fetch(module + ".qzeros", cpu),
                                           weights.fetch(module + ".scales", cpu), *config.awq));
      for (const char* part : {".qweight", ".qzeros", ".scales"}) weights.release(module + part);
    } else if (config.gptq && weights.contains(module + ".qweight") && resident(module + ".qweight")) {
      const at::Tensor g_idx = weights.contains(module + ".g_idx") ? weights.fetch(module + ".g_idx", cpu) : at::Tensor();
      auto packed = pack_gptq(weights.fetch(module + ".qweight", cpu), weights.fetch(module + ".qzeros", cpu),
                               weights.fetch(module + ".scales", cpu), g_idx, *config.gptq);
      if (!packed) continue;
      weights.add_packed(module, std::move(packed));
      for (const char* part : {".qweight", ".qzeros", ".scales", ".g_idx"})
        if (weights.contains(module + part)) weights.release(module + part);
    }
  }
}

}  // namespace devicemap
