// libFuzzer target: tokenizer.json. Whatever the file holds, loading either works or throws
// devicemap::Error; a loaded tokenizer encodes text (fixed words, and the input's own bytes as text),
// decodes every id it knows and streams them, without crashing.
#include <string_view>

#include "error.hpp"
#include "fuzz_scratch.hpp"
#include "text/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace devicemap;
  const auto file = fuzz::write("tokenizer.json", data, size);
  try {
    const Tokenizer t = Tokenizer::load(file);
    std::vector<int> ids = t.encode("Once upon a time, 1234 héllo\n\t  <s> world");
    const auto more = t.encode(std::string_view(reinterpret_cast<const char*>(data), std::min<std::size_t>(size, 256)), false);
    ids.insert(ids.end(), more.begin(), more.end());
    for (int i = 0; i < std::min(t.vocab_size(), 512); ++i) ids.push_back(i);
    ids.push_back(-1);
    (void)t.decode(ids);
    (void)t.decode(ids, true);
    StreamDecoder stream(t);
    for (int id : ids) (void)stream.push(id);
    (void)stream.flush();
  } catch (const Error&) {
  }
  return 0;
}
