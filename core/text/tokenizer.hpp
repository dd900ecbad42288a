#pragma once
// Text to token ids and back, for the tokenizers Hugging Face models ship:
//  - tokenizer.json with a BPE model: byte-level (GPT-2, Llama 3, Qwen2) or SentencePiece-style
//    (Llama 2, Mistral: ▁ for spaces, <0xXX> byte fallback), added and special tokens, post-processor;
//  - tokenizer.model, a SentencePiece BPE model, with tokenizer_config.json beside it for BOS/EOS.
// A folder is searched for tokenizer.json first, then tokenizer.model. Every problem with a file is a
// devicemap::Error naming the file and key. A Tokenizer is cheap to copy and safe to share between threads.
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace devicemap {

struct TokenizerEngine;

class Tokenizer {
 public:
  static Tokenizer load(const std::filesystem::path& dir_or_file);

  // add_special_tokens: BOS/EOS as the tokenizer's post-processor or tokenizer_config.json says.
  std::vector<int> encode(std::string_view text, bool add_special_tokens = true) const;
  // Ill-formed UTF-8 (a character cut off at the end, say) comes out as U+FFFD. Unknown ids are skipped.
  std::string decode(std::span<const int> ids, bool skip_special_tokens = false) const;

  std::optional<int> bos_id() const;
  std::vector<int> eos_ids() const;
  int vocab_size() const;  // one more than the largest id
  std::optional<int> token_id(std::string_view token) const;
  std::optional<std::string> token(int id) const;
  bool is_special(int id) const;
  const std::filesystem::path& source() const;  // the file it was read from

 private:
  friend class StreamDecoder;
  explicit Tokenizer(std::shared_ptr<const TokenizerEngine> engine) : engine_(std::move(engine)) {}
  std::shared_ptr<const TokenizerEngine> engine_;
};

// Decodes ids one at a time as a model generates them. push() returns only text that is complete UTF-8: the
// bytes of a character split over several tokens come out together. The concatenation of every push() and
// the final flush() equals Tokenizer::decode of all the ids.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  StreamDecoder(StreamDecoder&&) noexcept;
  ~StreamDecoder();

  std::string push(int id);
  std::string flush();  // whatever is left, with an unfinished character as U+FFFD

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace devicemap
