#pragma once
// tokenizer.json pre-tokenizers: cut normalized text into the words that BPE encodes one by one.
// ByteLevel (GPT-2's split pattern, then bytes mapped to printable characters), Split (a pattern from the
// file: Llama 3, Qwen2, …), Metaspace (spaces become ▁), Digits, Whitespace, WhitespaceSplit, Sequence.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace devicemap {

class SplitRegex;

// GPT-2's reversible map from bytes to printable characters, so that byte strings can live in a JSON vocabulary.
namespace byte_level {
std::string encode(std::string_view bytes);             // every byte as its character (UTF-8)
std::optional<unsigned char> byte_of(char32_t cp);      // the byte a character stands for
}  // namespace byte_level

class PreTokenizer {
 public:
  PreTokenizer();
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;
  ~PreTokenizer();

  // null: the whole text is one word.
  static PreTokenizer from_json(const nlohmann::json& j, const std::string& where);

  // Appends the words of one stretch of normalized text; `at_text_start` says it begins the input (Metaspace
  // with prepend_scheme "first" prepends ▁ only there).
  void split(std::string_view text, bool at_text_start, std::vector<std::string>& words) const;

  enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

 private:
  struct Step {
    enum class Kind { ByteLevel, Split, Metaspace, Digits, WhitespaceSplit } kind;
    bool flag = false;      // ByteLevel: add_prefix_space; Digits: individual_digits; Metaspace: split
    bool use_regex = true;  // ByteLevel
    std::shared_ptr<const SplitRegex> regex;  // Split with a Regex pattern; ByteLevel's GPT-2 pattern
    std::string literal;    // Split with a String pattern; Metaspace: the replacement
    Behavior behavior = Behavior::Isolated;
    bool invert = false;
    enum class Prepend { Always, First, Never } prepend = Prepend::Always;  // Metaspace
  };
  struct Word {
    std::string text;
    bool at_start;
  };
  void add_from_json(const nlohmann::json& j, const std::string& where);
  static void apply(const Step& step, Word word, std::vector<Word>& out);
  std::vector<Step> steps_;
};

}  // namespace devicemap
