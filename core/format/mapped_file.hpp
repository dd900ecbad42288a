#pragma once
// A read-only memory map of a whole file. Weights are never read to plan; to load, tensors are
// viewed (or aliased, zero copy) straight from the map.
#include <cstddef>
#include <filesystem>
#include <span>

namespace devicemap {

class MappedFile {
 public:
  // Throws devicemap::Error naming the file when it cannot be opened or mapped. An empty file maps to
  // an empty span.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(MappedFile&&) noexcept;
  MappedFile& operator=(MappedFile&&) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace devicemap
