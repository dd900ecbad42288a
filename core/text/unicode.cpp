#include "text/unicode.hpp"

#include <algorithm>
#include <iterator>

namespace devicemap::unicode {
namespace {

#include "text/unicode_tables.inc"

static_assert(std::size(kCategoryNames) == static_cast<std::size_t>(GeneralCategory::Co) + 1);

constexpr char32_t kHangulBase = 0xAC00, kLeadBase = 0x1100, kVowelBase = 0x1161, kTrailBase = 0x11A7;
constexpr char32_t kLeadCount = 19, kVowelCount = 21, kTrailCount = 28;
constexpr char32_t kHangulCount = kLeadCount * kVowelCount * kTrailCount;

std::uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const auto* end = std::end(kCombiningClasses);
  const auto* it = std::upper_bound(std::begin(kCombiningClasses), end, cp,
                                    [](char32_t c, const CombiningRange& r) { return c < r.first; });
  if (it == std::begin(kCombiningClasses)) return 0;
  --it;
  return cp <= it->last ? it->ccc : 0;
}

void decompose(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kHangulBase && cp < kHangulBase + kHangulCount) {
    const char32_t s = cp - kHangulBase;
    out.push_back(kLeadBase + s / (kVowelCount * kTrailCount));
    out.push_back(kVowelBase + (s % (kVowelCount * kTrailCount)) / kTrailCount);
    if (s % kTrailCount != 0) out.push_back(kTrailBase + s % kTrailCount);
    return;
  }
  const auto* it = std::lower_bound(std::begin(kDecompositions), std::end(kDecompositions), cp,
                                    [](const Decomposition& d, char32_t c) { return d.cp < c; });
  if (it != std::end(kDecompositions) && it->cp == cp) {
    out.insert(out.end(), kDecompositionData + it->offset, kDecompositionData + it->offset + it->length);
  } else {
    out.push_back(cp);
  }
}

char32_t compose(char32_t a, char32_t b) {
  if (a >= kLeadBase && a < kLeadBase + kLeadCount && b >= kVowelBase && b < kVowelBase + kVowelCount)
    return kHangulBase + ((a - kLeadBase) * kVowelCount + (b - kVowelBase)) * kTrailCount;
  if (a >= kHangulBase && a < kHangulBase + kHangulCount && (a - kHangulBase) % kTrailCount == 0 &&
      b > kTrailBase && b < kTrailBase + kTrailCount)
    return a + (b - kTrailBase);
  const auto* it = std::lower_bound(std::begin(kCompositions), std::end(kCompositions), std::pair{a, b},
                                    [](const Composition& c, std::pair<char32_t, char32_t> key) {
                                      return c.first != key.first ? c.first < key.first : c.second < key.second;
                                    });
  if (it != std::end(kCompositions) && it->first == a && it->second == b) return it->composite;
  return 0;
}

}  // namespace

GeneralCategory category(char32_t cp) {
  if (cp >= 0x110000) return GeneralCategory::Cn;
  const auto* it = std::upper_bound(std::begin(kCategoryRanges), std::end(kCategoryRanges), cp,
                                    [](char32_t c, const CategoryRange& r) { return c < r.first; });
  return static_cast<GeneralCategory>(std::prev(it)->category);
}

std::optional<GeneralCategory> category_from_name(std::string_view name) {
  for (std::size_t i = 0; i < std::size(kCategoryNames); ++i)
    if (kCategoryNames[i] == name) return static_cast<GeneralCategory>(i);
  return std::nullopt;
}

char major_class(GeneralCategory c) { return kCategoryNames[static_cast<std::size_t>(c)][0]; }

bool is_letter(char32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return major_class(category(cp)) == 'L';
}

bool is_number(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return major_class(category(cp)) == 'N';
}

bool is_whitespace(char32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

Utf8Step decode_utf8(std::string_view s, std::size_t pos) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) return {b0, 1, true, false};
  std::size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte (Unicode table 3-7)
  char32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {kReplacement, 1, false, false};
  }
  for (std::size_t k = 1; k < need; ++k) {
    if (pos + k >= s.size()) return {kReplacement, k, false, true};
    const auto b = static_cast<unsigned char>(s[pos + k]);
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return {kReplacement, k, false, false};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {cp, need, true, false};
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::vector<char32_t> code_points(std::string_view s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  for (std::size_t pos = 0; pos < s.size();) {
    const auto step = decode_utf8(s, pos);
    out.push_back(step.cp);
    pos += step.length;
  }
  return out;
}

std::string to_utf8(const std::vector<char32_t>& cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t cp : cps) append_utf8(out, cp);
  return out;
}

std::string to_valid_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (std::size_t pos = 0; pos < bytes.size();) {
    const auto step = decode_utf8(bytes, pos);
    if (step.valid)
      out.append(bytes.substr(pos, step.length));
    else
      append_utf8(out, kReplacement);
    pos += step.length;
  }
  return out;
}

std::size_t complete_prefix_length(std::string_view bytes) {
  // Only the last three bytes can start an unfinished sequence.
  const std::size_t from = bytes.size() > 3 ? bytes.size() - 3 : 0;
  for (std::size_t pos = from; pos < bytes.size(); ++pos) {
    const auto b = static_cast<unsigned char>(bytes[pos]);
    if (b < 0xC2 || b > 0xF4) continue;
    const auto step = decode_utf8(bytes, pos);
    if (step.truncated) return pos;
  }
  return bytes.size();
}

std::string nfc(std::string_view s) {
  // Everything below U+0300 is already in NFC: no combining marks, and its decomposable letters compose back.
  bool simple = true;
  for (unsigned char c : s) {
    if (c >= 0xCC) {  // lead bytes of U+0300 and above
      simple = false;
      break;
    }
  }
  if (simple) return std::string(s);

  std::vector<char32_t> d;
  d.reserve(s.size());
  for (char32_t cp : code_points(s)) decompose(cp, d);
  // Canonical order: stable-sort every run of non-starters by combining class.
  for (std::size_t i = 0; i < d.size();) {
    if (combining_class(d[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < d.size() && combining_class(d[j]) != 0) ++j;
    std::stable_sort(d.begin() + static_cast<std::ptrdiff_t>(i), d.begin() + static_cast<std::ptrdiff_t>(j),
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  std::vector<char32_t> out;
  out.reserve(d.size());
  std::ptrdiff_t starter = -1;
  for (char32_t cp : d) {
    const auto cc = combining_class(cp);
    if (starter >= 0) {
      const bool adjacent = static_cast<std::ptrdiff_t>(out.size()) - 1 == starter;
      const bool unblocked = adjacent || combining_class(out.back()) < cc;
      if (unblocked) {
        if (char32_t c = compose(out[static_cast<std::size_t>(starter)], cp)) {
          out[static_cast<std::size_t>(starter)] = c;
          continue;
        }
      }
    }
    out.push_back(cp);
    if (cc == 0) starter = static_cast<std::ptrdiff_t>(out.size()) - 1;
  }
  return to_utf8(out);
}

}  // namespace devicemap::unicode
