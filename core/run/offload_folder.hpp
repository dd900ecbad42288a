#pragma once
// An offload folder in Accelerate's format (accelerate.utils.offload): one NAME.dat per tensor holding
// its raw little-endian elements (a NumPy memmap), and index.json {NAME: {"dtype": "float16",
// "shape": [4096, 4096]}}. bfloat16 is stored as its int16 bits and named "bfloat16", as Accelerate does.
// Tensors written here are mapped back, so "disk" blocks run from the file without a cast at every use.
//
// A folder is this program's when it writes there first (an empty or new folder): it then keeps a
// marker, devicemap-offload.json, beside the index. A folder with an index.json and no marker was
// written by another program (Accelerate's offload_state_dict, transformers' disk offload): it is read
// as it is, in its stored dtypes, and nothing in it is ever written, replaced or re-indexed.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "format/dtype.hpp"

namespace devicemap {

class MappedFile;

class OffloadFolder {
 public:
  struct Entry {
    DType dtype = DType::F32;
    std::vector<std::int64_t> shape;
  };

  // Creates the folder when needed and reads its index.json when there is one. Throws devicemap::Error
  // naming the folder or the index when either is unusable.
  explicit OffloadFolder(std::filesystem::path dir);

  const std::filesystem::path& dir() const { return dir_; }
  const std::map<std::string, Entry>& entries() const { return entries_; }
  // False for another program's folder: write() refuses and save_index() does nothing there.
  bool owned() const { return owned_; }
  const Entry* find(const std::string& name) const;

  // Writes NAME.dat (atomically) and records it; save_index() makes it visible to other readers.
  // Throws devicemap::Error when the bytes do not match dtype × shape, the name is not a file name, or
  // the folder is another program's.
  void write(const std::string& name, DType dtype, const std::vector<std::int64_t>& shape,
             std::span<const std::byte> bytes);
  // Writes index.json and the marker atomically (in an owned folder only).
  void save_index() const;

  // Maps NAME.dat after checking its size against the index.
  std::shared_ptr<const MappedFile> map(const std::string& name) const;

  std::filesystem::path data_file(const std::string& name) const;

 private:
  std::filesystem::path dir_;
  std::map<std::string, Entry> entries_;
  bool owned_ = true;
};

}  // namespace devicemap
