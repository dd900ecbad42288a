#include "run/packed_linear.hpp"

#include <ATen/ATen.h>

#include "error.hpp"
#include "run/bnb4.hpp"
#include "run/gptq.hpp"
#include "run/tensor_layout.hpp"
#include "run/weights.hpp"

namespace devicemap {

kernels::Matrix PackedLinear::matrix() const {
  kernels::Matrix m;
  m.data = codes.data_ptr();
  m.dtype = DType::U8;
  m.rows = static_cast<std::size_t>(out);
  m.cols = static_cast<std::size_t>(in);
  m.row_stride = static_cast<std::size_t>(in / 2);
  m.codes4 = &layout;
  return m;
}

at::Tensor PackedLinear::dequantize() const {
  const std::int64_t n = out * in;
  const at::Tensor bytes = codes.reshape({-1}).to(at::kLong);
  // Element 2i is byte i's high nibble, element 2i + 1 its low one.
  const at::Tensor index = at::stack({bytes.bitwise_right_shift(4), bytes.bitwise_and(15)}, 1).reshape({-1}).narrow(0, 0, n);
  const at::Tensor table = at::from_blob(const_cast<float*>(layout.table), {16}, at::TensorOptions().dtype(at::kFloat));
  const at::Tensor values = table.index_select(0, index);
  const auto block = static_cast<std::int64_t>(layout.block);
  at::Tensor at_block;  // each element's block
  if (layout.row_blocks == 0) {
    at_block = at::arange(n, at::TensorOptions().dtype(at::kLong)).div(block, "floor");
  } else {
    const at::Tensor in_row = at::arange(in, at::TensorOptions().dtype(at::kLong)).div(block, "floor");
    const at::Tensor row_start = at::arange(out, at::TensorOptions().dtype(at::kLong)).mul(static_cast<std::int64_t>(layout.row_blocks));
    at_block = row_start.unsqueeze(1).add(in_row.unsqueeze(0)).reshape({-1});
  }
  at::Tensor w = values.mul(scale.index_select(0, at_block));
  if (offset.defined()) w = w.add(offset.index_select(0, at_block));
  w = w.view({out, in});
  if (!columns.defined()) return w;
  return at::zeros_like(w).index_copy_(1, columns, w);  // codes' column j is input column columns[j]
}

at::Tensor PackedLinear::decode(const at::Tensor& x, const at::Tensor& bias) const {
  at::Tensor xf = x.to(at::kFloat).contiguous();
  if (columns.defined()) xf = xf.index_select(1, columns).contiguous();
  at::Tensor y = at::empty({x.size(0), out}, xf.options());
  const kernels::Matrix m = matrix();
  const kernels::Product p{m, y.data_ptr<float>(), static_cast<std::size_t>(out)};
  kernels::matvec({&p, 1}, xf.data_ptr<float>(), static_cast<std::size_t>(x.size(0)), static_cast<std::size_t>(in));
  if (bias.defined()) y.add_(bias.to(at::kFloat));
  return x.scalar_type() == at::kFloat ? y : y.to(x.scalar_type());
}

std::vector<at::Tensor> decode_together(const at::Tensor& x, std::span<const PackedLinear* const> linears,
                                        std::span<const at::Tensor> biases) {
  std::vector<at::Tensor> ys;
  const auto bias = [&](std::size_t i) { return i < biases.size() ? biases[i] : at::Tensor(); };
  bool gathered = false;
  for (const auto* l : linears) gathered = gathered || l->columns.defined();
  if (gathered) {
    for (std::size_t i = 0; i < linears.size(); ++i) ys.push_back(linears[i]->decode(x, bias(i)));
    return ys;
  }
  const at::Tensor xf = x.to(at::kFloat).contiguous();
  std::vector<kernels::Matrix> matrices;
  std::vector<kernels::Product> products;
  matrices.reserve(linears.size());
  for (const auto* l : linears) {
    ys.push_back(at::empty({x.size(0), l->out}, xf.options()));
    matrices.push_back(l->matrix());
    products.push_back({matrices.back(), ys.back().data_ptr<float>(), static_cast<std::size_t>(l->out)});
  }
  kernels::matvec(products, xf.data_ptr<float>(), static_cast<std::size_t>(x.size(0)), static_cast<std::size_t>(x.size(1)));
  for (std::size_t i = 0; i < ys.size(); ++i) {
    if (bias(i).defined()) ys[i].add_(bias(i).to(at::kFloat));
    if (x.scalar_type() != at::kFloat) ys[i] = ys[i].to(x.scalar_type());
  }
  return ys;
}

std::uint64_t PackedLinear::bytes() const {
  std::uint64_t b = codes.nbytes() + scale.nbytes();
  if (offset.defined()) b += offset.nbytes();
  if (columns.defined()) b += columns.nbytes();
  return b;
}

void pack_linears(Weights& weights, const ModelConfig& config) {
  const bool bnb4 = config.bnb && config.bnb->method == Quantization::Method::Bnb4;
  const bool gptq4 = config.gptq && config.gptq->bits == 4;
  if (!bnb4 && !gptq4) return;
  // The [out, in] of each Linear, as an unquantized checkpoint would hold it.
  ModelConfig plain = config;
  plain.bnb.reset();
  plain.gptq.reset();
  const c10::Device cpu(c10::kCPU);
  const auto resident = [&](const std::string& name) {
    const StoredTensor& s = weights.stored(name);
    return s.placement.is_cpu() && s.tensor.is_cpu();
  };
  for (const auto& t : expected_tensors(plain)) {
    if (!t.name.ends_with(".weight") || t.shape.size() != 2) continue;
    const std::string module = t.name.substr(0, t.name.size() - 7);
    if (bnb4 && weights.contains(module + ".weight.quant_map")) {
      // Checked wherever it lies; kept when its codes stay in RAM.
      const auto fetch = [&](const std::string& n) { return weights.contains(n) ? weights.fetch(n, cpu) : at::Tensor(); };
      auto packed = read_bnb4(module, t.shape[0], t.shape[1], fetch);
      if (resident(module + ".weight")) weights.add_packed(module, std::move(packed));
    } else if (gptq4 && weights.contains(module + ".qweight") && resident(module + ".qweight")) {
      const at::Tensor g_idx = weights.contains(module + ".g_idx") ? weights.fetch(module + ".g_idx", cpu) : at::Tensor();
      auto packed = pack_gptq4(weights.fetch(module + ".qweight", cpu), weights.fetch(module + ".qzeros", cpu),
                               weights.fetch(module + ".scales", cpu), g_idx, *config.gptq);
      if (!packed) continue;
      weights.add_packed(module, std::move(packed));
      for (const char* part : {".qweight", ".qzeros", ".scales", ".g_idx"})
        if (weights.contains(module + part)) weights.release(module + part);
    }
  }
}

}  // namespace devicemap
