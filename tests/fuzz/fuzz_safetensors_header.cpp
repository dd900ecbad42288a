// libFuzzer target for the safetensors header parser. The first 8 bytes of an input give the size of the
// data section, the rest is the header text. Whatever the input, the parser either throws
// devicemap::Error or returns tensors that tile the data section exactly.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "error.hpp"
#include "format/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  std::uint64_t data_size = 0;
  for (int i = 7; i >= 0; --i) data_size = (data_size << 8) | data[i];
  const std::string_view header(reinterpret_cast<const char*>(data + 8), size - 8);
  try {
    const auto parsed = devicemap::parse_safetensors_header(header, data_size, "fuzz");
    std::uint64_t end = 0;
    for (const auto& t : parsed.tensors) {
      if (t.begin != end || t.end < t.begin) __builtin_trap();
      const std::uint64_t element = t.dtype == devicemap::DType::Bool ? 1 : devicemap::dtype_bits(t.dtype) / 8;
      if (t.numel() * element != t.nbytes()) __builtin_trap();
      end = t.end;
    }
    if (end != data_size) __builtin_trap();
  } catch (const devicemap::Error&) {
  }
  return 0;
}
