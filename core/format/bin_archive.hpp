#pragma once
// pytorch_model*.bin as torch.save (PyTorch ≥ 1.6) writes it: an uncompressed zip holding
// PREFIX/data.pkl (a pickle of the state dict) and PREFIX/data/KEY (the raw bytes of each storage).
// The pickle is read by a small interpreter that knows only what a state dict uses (dicts, tuples,
// OrderedDict, torch._utils._rebuild_tensor_v2, the typed storage classes, LibTorch's type tags) and
// refuses every other global, so a checkpoint cannot run code. Tensors then point into the mapped file: zero copy, as
// with safetensors. Torch-free.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "format/dtype.hpp"

namespace devicemap {

class MappedFile;

struct BinTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> strides;  // in elements
  std::string storage;                // the storage's key ("0", "1", …); shared by tied tensors
  std::uint64_t data_offset = 0;      // absolute file offset of the tensor's first element
  std::uint64_t span_bytes = 0;       // bytes from there that its elements cover (0 when empty)
};

class BinArchive {
 public:
  // Maps the file, reads the zip directory and the pickle, validates every tensor against its storage.
  // Throws devicemap::Error naming the file and what is wrong (not a zip, compressed or missing records,
  // a global other than the few a state dict needs, a tensor outside its storage, …).
  static BinArchive open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const std::vector<BinTensor>& tensors() const { return tensors_; }
  const BinTensor* find(std::string_view name) const;
  std::span<const std::byte> bytes(const BinTensor& t) const;  // the span_bytes at data_offset
  std::shared_ptr<const MappedFile> shared_mapping() const { return file_; }

 private:
  std::filesystem::path path_;
  std::shared_ptr<const MappedFile> file_;
  std::vector<BinTensor> tensors_;
};

}  // namespace devicemap
