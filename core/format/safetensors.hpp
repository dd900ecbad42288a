#pragma once
// The safetensors format: 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the data.
// The header is validated completely before anything trusts it; nothing is allocated from its claims.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "format/dtype.hpp"

namespace devicemap {

class MappedFile;

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;  // byte offsets relative to the start of the data section
  std::uint64_t end = 0;

  std::uint64_t numel() const;
  std::uint64_t nbytes() const { return end - begin; }
};

// Parses and validates a header. `header_json` is the N header bytes, `data_size` the bytes that follow
// it in the file, `file` is only used in messages. Tensors come back ordered by data offset.
// Throws devicemap::Error naming the file and the tensor or key: header not JSON or not an object,
// unknown dtype, negative or overflowing shape, shape × dtype size != byte span, offsets out of the data
// section, unordered/overlapping/gapped spans, non-string __metadata__ values, duplicate names.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
};
SafetensorsHeader parse_safetensors_header(std::string_view header_json, std::uint64_t data_size,
                                           std::string_view file);

class SafetensorsFile {
 public:
  // Maps the file and validates its header (length within the file, then parse_safetensors_header).
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const;
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* find(std::string_view name) const;  // nullptr when absent
  // The tensor's bytes inside the map (valid while this object lives).
  std::span<const std::byte> data(const TensorInfo& t) const;
  // Absolute offset of the data section in the file (8 + N).
  std::uint64_t data_offset() const { return data_offset_; }
  const MappedFile& mapped() const { return *file_; }
  std::shared_ptr<const MappedFile> shared_mapping() const { return file_; }

 private:
  std::shared_ptr<const MappedFile> file_;
  SafetensorsHeader header_;
  std::uint64_t data_offset_ = 0;
  std::map<std::string, std::size_t, std::less<>> index_;
};

// One tensor to write: name, dtype, shape and its raw little-endian bytes (size must match).
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> bytes;
};

// Writes a safetensors file atomically (temporary file + rename), tensors in the given order, the header
// padded with spaces to a multiple of 8 as the reference writer does. Throws devicemap::Error on a
// size mismatch or a duplicate name.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace devicemap
