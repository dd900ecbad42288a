// libFuzzer target: pytorch_model.bin (a zip of a pickle and storages, read by our own small pickle
// interpreter). Opening either works or throws devicemap::Error; every tensor of an archive that opens
// lies inside the file.
#include "error.hpp"
#include "format/bin_archive.hpp"
#include "format/mapped_file.hpp"
#include "fuzz_scratch.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace devicemap;
  const auto file = fuzz::write("pytorch_model.bin", data, size);
  try {
    const BinArchive a = BinArchive::open(file);
    for (const auto& t : a.tensors()) {
      const auto bytes = a.bytes(t);
      if (t.data_offset + t.span_bytes > size || (bytes.size() != t.span_bytes)) __builtin_trap();
      volatile std::byte sink{};
      if (!bytes.empty()) sink = bytes[bytes.size() - 1];
      (void)sink;
    }
  } catch (const Error&) {
  }
  return 0;
}
