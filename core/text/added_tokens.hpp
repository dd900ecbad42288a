#pragma once
// Added tokens (<|endoftext|>, <s>, CodeGen's runs of spaces, …) are cut out of the text before the
// normalizer and BPE ever see it, longest match first, honouring lstrip / rstrip / single_word.
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace devicemap {

struct AddedToken {
  int id = -1;
  std::string content;
  bool special = false;      // skipped by decode(skip_special_tokens = true)
  bool lstrip = false;       // swallows whitespace on its left
  bool rstrip = false;       // swallows whitespace on its right
  bool normalized = false;   // matched in normalized text rather than the raw input
  bool single_word = false;  // only where it is not part of a longer word
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  struct Piece {
    std::size_t begin, end;  // bytes of the text
    int id;                  // the added token's id, or -1 for plain text between matches
  };
  std::vector<Piece> split(std::string_view text) const;
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedToken> tokens_;
  std::array<std::vector<int>, 256> by_first_byte_;  // indices into tokens_, longest content first
};

}  // namespace devicemap
