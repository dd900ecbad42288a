#pragma once
// Where each tensor of a checkpoint lies, whatever the format: safetensors shards, or torch.save archives
// (pytorch_model*.bin) when a model has no safetensors. Every tensor is a span of a mapped file, so the
// loader treats both formats alike and aliases either without a copy. Torch-free.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "format/bin_archive.hpp"
#include "format/dtype.hpp"

namespace devicemap {

class Checkpoint;
class MappedFile;

struct TensorSource {
  std::string name;  // as the checkpoint names it
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> strides;         // in elements; empty: contiguous
  std::span<const std::byte> bytes;          // covering every element
  std::shared_ptr<const MappedFile> mapping;  // keeps `bytes` valid
  std::filesystem::path file;
  std::uint64_t file_offset = 0;             // of bytes in the file

  std::uint64_t numel() const;
  std::uint64_t nbytes() const;  // numel × element size
};

class WeightFiles {
 public:
  // The checkpoint's safetensors shards, else its .bin archives (each read and validated). Throws
  // devicemap::Error naming the folder when it has neither, or the archive that is unusable, or a tensor
  // two archives both hold.
  static WeightFiles open(const Checkpoint& checkpoint);

  const std::vector<TensorSource>& tensors() const { return tensors_; }
  const TensorSource* find(std::string_view name) const;
  bool from_bin() const { return !archives_.empty(); }

 private:
  std::vector<BinArchive> archives_;
  std::vector<TensorSource> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

}  // namespace devicemap
