// libFuzzer target: tokenizer.model (a SentencePiece ModelProto, read by our own protobuf reader).
// Parsing either works or throws devicemap::Error; a model that parses loads as a tokenizer that
// encodes and decodes.
#include "error.hpp"
#include "fuzz_scratch.hpp"
#include "text/sentencepiece_model.hpp"
#include "text/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace devicemap;
  try {
    (void)SentencePieceModel::parse(std::string_view(reinterpret_cast<const char*>(data), size), "tokenizer.model");
    fuzz::write("tokenizer.model", data, size);
    const Tokenizer t = Tokenizer::load(fuzz::scratch() / "tokenizer.model");
    std::vector<int> ids = t.encode("Once upon a time, héllo  world\n");
    for (int i = 0; i < std::min(t.vocab_size(), 300); ++i) ids.push_back(i);
    (void)t.decode(ids);
  } catch (const Error&) {
  }
  return 0;
}
