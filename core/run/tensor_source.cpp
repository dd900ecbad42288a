#include "run/tensor_source.hpp"

#include "error.hpp"
#include "format/checkpoint.hpp"
#include "format/mapped_file.hpp"
#include "format/safetensors.hpp"

namespace devicemap {

std::uint64_t TensorSource::numel() const {
  std::uint64_t n = 1;
  for (const auto d : shape) n *= static_cast<std::uint64_t>(d);
  return n;
}

std::uint64_t TensorSource::nbytes() const {
  return dtype == DType::Bool ? numel() : dtype_bytes(dtype, numel());
}

WeightFiles WeightFiles::open(const Checkpoint& checkpoint) {
  WeightFiles w;
  if (checkpoint.has_safetensors()) {
    for (const auto& t : checkpoint.tensors()) {
      const SafetensorsFile& shard = checkpoint.shards().at(t.shard);
      const TensorInfo& info = *t.info;
      w.tensors_.push_back({info.name, info.dtype, info.shape, {}, shard.data(info), shard.shared_mapping(),
                            shard.path(), shard.data_offset() + info.begin});
    }
  } else {
    const auto bins = checkpoint.bin_files();
    if (bins.empty())
      throw Error(checkpoint.dir().string() + ": no weights (neither *.safetensors nor pytorch_model*.bin)");
    for (const auto& path : bins) {
      const BinArchive& a = w.archives_.emplace_back(BinArchive::open(path));
      for (const auto& t : a.tensors())
        w.tensors_.push_back({t.name, t.dtype, t.shape, t.strides, a.bytes(t), a.shared_mapping(), path, t.data_offset});
    }
  }
  for (std::size_t i = 0; i < w.tensors_.size(); ++i)
    if (!w.index_.emplace(w.tensors_[i].name, i).second)
      throw Error(w.tensors_[i].file.string() + ": tensor '" + w.tensors_[i].name + "' is stored twice");
  return w;
}

const TensorSource* WeightFiles::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace devicemap
