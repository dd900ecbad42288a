#pragma once
// The regular expressions of tokenizer.json `Split` pre-tokenizers (GPT-2, Llama 3, Qwen2, cl100k-style
// patterns), matched over code points with Oniguruma's leftmost-first semantics.
//
// Supported: alternation, groups (?:…) (?i:…) (?i), lookahead (?=…) (?!…), quantifiers ? * + {n} {n,}
// {n,m} (greedy or lazy) on single characters and classes, bounded quantifiers on groups, classes […] with
// ranges and negation, \p{..}/\P{..} by general category (L, Lu, N, Nd, …), \s \S \d \D \w \W, ., ^, $, and
// the usual escapes. Anything else (lookbehind, backreferences, scripts) is rejected when compiled.
// Backtracking keeps its recursion bounded by the pattern, not the text: a repeated class is counted in a
// loop.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace devicemap {

class SplitRegex {
 public:
  // Throws devicemap::Error saying what is unsupported or malformed, and where.
  static SplitRegex compile(std::string_view pattern);

  // Non-overlapping matches, left to right, as [begin, end) code-point indices. Empty matches are skipped.
  std::vector<std::pair<std::size_t, std::size_t>> find_all(const std::vector<char32_t>& text) const;

  struct CharSet;
  struct Node;
  using Seq = std::vector<int>;

 private:
  friend class RegexParser;
  friend class RegexMatcher;
  std::string source_;
  std::vector<CharSet> sets_;
  std::vector<Node> nodes_;
  Seq root_;
};

struct SplitRegex::CharSet {
  struct Item {
    enum class Kind : std::uint8_t { Range, Categories, Space } kind;
    bool negated = false;
    char32_t lo = 0, hi = 0;     // Range
    std::uint32_t mask = 0;      // Categories: bit per unicode::GeneralCategory
  };
  std::vector<Item> items;
  bool negated = false;
  bool fold_case = false;
  std::uint64_t ascii[2] = {0, 0};  // precomputed answers for code points below 128

  bool contains(char32_t cp) const;
  bool contains_slow(char32_t cp) const;
  void finish();
};

struct SplitRegex::Node {
  enum class Kind : std::uint8_t { Set, Alt, Look, Repeat, Begin, End } kind;
  int set = -1;             // Set, Repeat
  std::vector<Seq> alts = {};  // Alt: alternatives in order; Look: alts[0]
  bool negative = false;    // Look
  std::size_t min = 1, max = 1;
  bool greedy = true;
};

}  // namespace devicemap
