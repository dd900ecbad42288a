#include "text/pre_tokenizer.hpp"

#include <algorithm>
#include <array>
#include <tuple>

#include "text/split_regex.hpp"
#include "text/tokenizer_json_fields.hpp"
#include "text/unicode.hpp"

namespace devicemap {
namespace {

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kWhitespacePattern = R"(\w+|[^\w\s]+)";

struct ByteAlphabet {
  std::array<char32_t, 256> char_of{};
  std::array<std::string, 256> utf8_of;
  ByteAlphabet() {
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      char_of[static_cast<std::size_t>(b)] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      unicode::append_utf8(utf8_of[static_cast<std::size_t>(b)], char_of[static_cast<std::size_t>(b)]);
    }
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

using Span = std::pair<std::size_t, std::size_t>;

// Byte spans of the regex's matches.
std::vector<Span> regex_matches(std::string_view text, const SplitRegex& re) {
  std::vector<char32_t> cps;
  std::vector<std::size_t> offsets;
  cps.reserve(text.size());
  offsets.reserve(text.size() + 1);
  for (std::size_t pos = 0; pos < text.size();) {
    const auto step = unicode::decode_utf8(text, pos);
    cps.push_back(step.cp);
    offsets.push_back(pos);
    pos += step.length;
  }
  offsets.push_back(text.size());
  auto spans = re.find_all(cps);
  for (auto& [b, e] : spans) b = offsets[b], e = offsets[e];
  return spans;
}

std::vector<Span> literal_matches(std::string_view text, std::string_view literal) {
  std::vector<Span> spans;
  if (literal.empty()) return spans;
  for (std::size_t pos = text.find(literal); pos != std::string_view::npos; pos = text.find(literal, pos + literal.size()))
    spans.emplace_back(pos, pos + literal.size());
  return spans;
}

// One match per character that satisfies `pred`.
template <typename Pred>
std::vector<Span> char_matches(std::string_view text, Pred pred) {
  std::vector<Span> spans;
  for (std::size_t pos = 0; pos < text.size();) {
    const auto step = unicode::decode_utf8(text, pos);
    if (pred(step.cp)) spans.emplace_back(pos, pos + step.length);
    pos += step.length;
  }
  return spans;
}

// Hugging Face's SplitDelimiterBehavior over matches that cover part of `size` bytes.
std::vector<Span> pieces(std::size_t size, const std::vector<Span>& matches, PreTokenizer::Behavior behavior, bool invert) {
  using B = PreTokenizer::Behavior;
  std::vector<std::tuple<std::size_t, std::size_t, bool>> parts;
  std::size_t last = 0;
  for (const auto& [b, e] : matches) {
    if (b > last) parts.emplace_back(last, b, invert);
    parts.emplace_back(b, e, !invert);
    last = e;
  }
  if (last < size) parts.emplace_back(last, size, invert);

  std::vector<Span> out;
  bool previous_match = false;
  switch (behavior) {
    case B::Removed:
      for (const auto& [b, e, m] : parts)
        if (!m) out.emplace_back(b, e);
      break;
    case B::Isolated:
      for (const auto& [b, e, m] : parts) out.emplace_back(b, e);
      break;
    case B::MergedWithPrevious:
      for (const auto& [b, e, m] : parts) {
        if (m && !previous_match && !out.empty()) out.back().second = e;
        else out.emplace_back(b, e);
        previous_match = m;
      }
      break;
    case B::MergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        const auto& [b, e, m] = *it;
        if (m && !previous_match && !out.empty()) out.back().first = b;
        else out.emplace_back(b, e);
        previous_match = m;
      }
      std::reverse(out.begin(), out.end());
      break;
    case B::Contiguous:
      for (const auto& [b, e, m] : parts) {
        if (m == previous_match && !out.empty()) out.back().second = e;
        else out.emplace_back(b, e);
        previous_match = m;
      }
      break;
  }
  std::erase_if(out, [](const Span& s) { return s.first == s.second; });
  return out;
}

PreTokenizer::Behavior behavior_from(const std::string& name, const std::string& where) {
  using B = PreTokenizer::Behavior;
  if (name == "Removed") return B::Removed;
  if (name == "Isolated") return B::Isolated;
  if (name == "MergedWithPrevious") return B::MergedWithPrevious;
  if (name == "MergedWithNext") return B::MergedWithNext;
  if (name == "Contiguous") return B::Contiguous;
  tjson::fail(where, "unknown split behavior '" + name + "'");
}

}  // namespace

namespace byte_level {

std::string encode(std::string_view bytes) {
  const auto& a = alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out += a.utf8_of[b];
  return out;
}

std::optional<unsigned char> byte_of(char32_t cp) {
  static const auto reverse = [] {
    std::array<int, 512> r;
    r.fill(-1);
    for (int b = 0; b < 256; ++b) r[alphabet().char_of[static_cast<std::size_t>(b)]] = b;
    return r;
  }();
  if (cp >= reverse.size() || reverse[cp] < 0) return std::nullopt;
  return static_cast<unsigned char>(reverse[cp]);
}

}  // namespace byte_level

PreTokenizer::PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;
PreTokenizer::~PreTokenizer() = default;

PreTokenizer PreTokenizer::from_json(const nlohmann::json& j, const std::string& where) {
  PreTokenizer p;
  if (!j.is_null()) p.add_from_json(j, where);
  return p;
}

void PreTokenizer::add_from_json(const nlohmann::json& j, const std::string& where) {
  const std::string type = tjson::type_of(j, where);
  if (type == "Sequence") {
    const auto& list = tjson::field(j, "pretokenizers", where);
    if (!list.is_array()) tjson::fail(where + ".pretokenizers", "expected a list");
    for (std::size_t i = 0; i < list.size(); ++i)
      add_from_json(list[i], where + ".pretokenizers[" + std::to_string(i) + "]");
    return;
  }
  Step s;
  if (type == "ByteLevel") {
    s.kind = Step::Kind::ByteLevel;
    s.flag = tjson::bool_field(j, "add_prefix_space", false, where);
    s.use_regex = tjson::bool_field(j, "use_regex", true, where);
    if (s.use_regex) s.regex = std::make_shared<const SplitRegex>(SplitRegex::compile(kGpt2Pattern));
  } else if (type == "Split") {
    s.kind = Step::Kind::Split;
    const auto& pattern = tjson::field(j, "pattern", where);
    if (pattern.is_object() && pattern.contains("Regex")) {
      const std::string re = tjson::string_field(pattern, "Regex", where + ".pattern");
      try {
        s.regex = std::make_shared<const SplitRegex>(SplitRegex::compile(re));
      } catch (const Error& e) {
        tjson::fail(where + ".pattern.Regex", e.what());
      }
    } else if (pattern.is_object() && pattern.contains("String")) {
      s.literal = tjson::string_field(pattern, "String", where + ".pattern");
    } else {
      tjson::fail(where + ".pattern", "expected {\"String\": …} or {\"Regex\": …}");
    }
    s.behavior = behavior_from(tjson::string_field(j, "behavior", where), where + ".behavior");
    s.invert = tjson::bool_field(j, "invert", false, where);
  } else if (type == "Metaspace") {
    s.kind = Step::Kind::Metaspace;
    s.literal = tjson::string_field(j, "replacement", where);
    if (unicode::code_points(s.literal).size() != 1) tjson::fail(where + ".replacement", "expected one character");
    s.flag = tjson::bool_field(j, "split", true, where);
    if (j.contains("prepend_scheme")) {
      const auto scheme = tjson::string_field(j, "prepend_scheme", where);
      if (scheme == "always") s.prepend = Step::Prepend::Always;
      else if (scheme == "first") s.prepend = Step::Prepend::First;
      else if (scheme == "never") s.prepend = Step::Prepend::Never;
      else tjson::fail(where + ".prepend_scheme", "unknown scheme '" + scheme + "'");
    } else {
      s.prepend = tjson::bool_field(j, "add_prefix_space", true, where) ? Step::Prepend::Always : Step::Prepend::Never;
    }
  } else if (type == "Digits") {
    s.kind = Step::Kind::Digits;
    s.flag = tjson::bool_field(j, "individual_digits", false, where);
  } else if (type == "Whitespace") {
    s.kind = Step::Kind::Split;
    s.regex = std::make_shared<const SplitRegex>(SplitRegex::compile(kWhitespacePattern));
    s.behavior = Behavior::Removed;
    s.invert = true;
  } else if (type == "WhitespaceSplit") {
    s.kind = Step::Kind::WhitespaceSplit;
  } else {
    tjson::fail(where, "pre-tokenizer type '" + type + "' is not supported");
  }
  steps_.push_back(std::move(s));
}

void PreTokenizer::apply(const Step& step, Word word, std::vector<Word>& out) {
  std::vector<Span> spans;
  Behavior behavior = step.behavior;
  bool invert = step.invert;
  switch (step.kind) {
    case Step::Kind::ByteLevel:
      if (step.flag && word.text.front() != ' ') word.text.insert(0, " ");
      if (step.use_regex) {
        spans = pieces(word.text.size(), regex_matches(word.text, *step.regex), Behavior::Isolated, false);
      } else {
        spans = {{0, word.text.size()}};
      }
      for (const auto& [b, e] : spans)
        out.push_back({byte_level::encode(std::string_view(word.text).substr(b, e - b)), word.at_start && b == 0});
      return;
    case Step::Kind::Split:
      spans = step.regex ? regex_matches(word.text, *step.regex) : literal_matches(word.text, step.literal);
      break;
    case Step::Kind::Metaspace: {
      std::string s;
      for (char c : word.text) {
        if (c == ' ') s += step.literal;
        else s += c;
      }
      const bool starts = s.compare(0, step.literal.size(), step.literal) == 0;
      if (!starts && (step.prepend == Step::Prepend::Always || (step.prepend == Step::Prepend::First && word.at_start)))
        s.insert(0, step.literal);
      word.text = std::move(s);
      if (!step.flag) {
        out.push_back(std::move(word));
        return;
      }
      spans = literal_matches(word.text, step.literal);
      behavior = Behavior::MergedWithNext, invert = false;
      break;
    }
    case Step::Kind::Digits:
      spans = char_matches(word.text, unicode::is_number);
      behavior = step.flag ? Behavior::Isolated : Behavior::Contiguous, invert = false;
      break;
    case Step::Kind::WhitespaceSplit:
      spans = char_matches(word.text, unicode::is_whitespace);
      behavior = Behavior::Removed, invert = false;
      break;
  }
  for (const auto& [b, e] : pieces(word.text.size(), spans, behavior, invert))
    out.push_back({word.text.substr(b, e - b), word.at_start && b == 0});
}

void PreTokenizer::split(std::string_view text, bool at_text_start, std::vector<std::string>& words) const {
  if (text.empty()) return;
  std::vector<Word> current{{std::string(text), at_text_start}}, next;
  for (const auto& step : steps_) {
    next.clear();
    for (auto& w : current)
      if (!w.text.empty()) apply(step, std::move(w), next);
    std::swap(current, next);
  }
  for (auto& w : current)
    if (!w.text.empty()) words.push_back(std::move(w.text));
}

}  // namespace devicemap
