#include "text/added_tokens.hpp"

#include <algorithm>

#include "text/unicode.hpp"

namespace devicemap {
namespace {

bool is_word_char(char32_t c) { return c == '_' || unicode::is_letter(c) || unicode::is_number(c); }

// Start of the character that ends at `end` (exclusive).
std::size_t previous_char(std::string_view s, std::size_t end) {
  std::size_t b = end - 1;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80 && end - b < 4) --b;
  return b;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  std::erase_if(tokens_, [](const AddedToken& t) { return t.content.empty(); });
  for (std::size_t i = 0; i < tokens_.size(); ++i)
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(static_cast<int>(i));
  for (auto& list : by_first_byte_)
    std::stable_sort(list.begin(), list.end(), [&](int a, int b) {
      return tokens_[static_cast<std::size_t>(a)].content.size() > tokens_[static_cast<std::size_t>(b)].content.size();
    });
}

std::vector<AddedTokenMatcher::Piece> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Piece> out;
  std::size_t done = 0;  // end of the previous match
  for (std::size_t pos = 0; pos < text.size();) {
    const AddedToken* hit = nullptr;
    for (int i : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      const auto& t = tokens_[static_cast<std::size_t>(i)];
      if (text.compare(pos, t.content.size(), t.content) != 0) continue;
      if (t.single_word) {
        const std::size_t end = pos + t.content.size();
        const bool word_before = pos > 0 && is_word_char(unicode::decode_utf8(text, previous_char(text, pos)).cp);
        const bool word_after = end < text.size() && is_word_char(unicode::decode_utf8(text, end).cp);
        if (word_before || word_after) continue;
      }
      hit = &t;
      break;
    }
    if (!hit) {
      ++pos;
      continue;
    }
    std::size_t b = pos, e = pos + hit->content.size();
    if (hit->lstrip) {
      while (b > done) {
        const std::size_t p = previous_char(text, b);
        if (!unicode::is_whitespace(unicode::decode_utf8(text, p).cp)) break;
        b = p;
      }
    }
    if (hit->rstrip) {
      while (e < text.size()) {
        const auto step = unicode::decode_utf8(text, e);
        if (!unicode::is_whitespace(step.cp)) break;
        e += step.length;
      }
    }
    if (b > done) out.push_back({done, b, -1});
    out.push_back({b, e, hit->id});
    done = pos = e;
  }
  if (done < text.size()) out.push_back({done, text.size(), -1});
  return out;
}

}  // namespace devicemap
