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

  // Drops this process's pages of `range` (part of bytes()) once its data was copied elsewhere: the page
  // cache keeps the file and a later read faults it back in, but the copy no longer counts twice in the
  // process's memory. Pages shared with a neighbouring range are dropped too (they fault back in).
  void release(std::span<const std::byte> range) const;

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace devicemap
