#include "text/normalizer.hpp"

#include "text/split_regex.hpp"
#include "text/tokenizer_json_fields.hpp"
#include "text/unicode.hpp"

namespace devicemap {
namespace {

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(s);
  std::string out;
  out.reserve(s.size());
  std::size_t pos = 0;
  while (true) {
    const auto hit = s.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos)).append(to);
    pos = hit + from.size();
  }
  out.append(s.substr(pos));
  return out;
}

std::string replace_regex(std::string_view s, const SplitRegex& re, std::string_view to) {
  const auto cps = unicode::code_points(s);
  std::string out;
  std::size_t last = 0;
  for (const auto& [b, e] : re.find_all(cps)) {
    for (std::size_t i = last; i < b; ++i) unicode::append_utf8(out, cps[i]);
    out.append(to);
    last = e;
  }
  for (std::size_t i = last; i < cps.size(); ++i) unicode::append_utf8(out, cps[i]);
  return out;
}

std::string strip(std::string_view s, bool left, bool right) {
  const auto cps = unicode::code_points(s);
  std::size_t b = 0, e = cps.size();
  if (left)
    while (b < e && unicode::is_whitespace(cps[b])) ++b;
  if (right)
    while (e > b && unicode::is_whitespace(cps[e - 1])) --e;
  return unicode::to_utf8(std::vector<char32_t>(cps.begin() + static_cast<std::ptrdiff_t>(b),
                                                cps.begin() + static_cast<std::ptrdiff_t>(e)));
}

std::string collapse_spaces(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

Normalizer::Normalizer() = default;
Normalizer::Normalizer(Normalizer&&) noexcept = default;
Normalizer& Normalizer::operator=(Normalizer&&) noexcept = default;
Normalizer::~Normalizer() = default;

Normalizer Normalizer::from_json(const nlohmann::json& j, const std::string& where) {
  Normalizer n;
  if (!j.is_null()) n.add_from_json(j, where);
  return n;
}

void Normalizer::add_from_json(const nlohmann::json& j, const std::string& where) {
  const std::string type = tjson::type_of(j, where);
  if (type == "Sequence") {
    const auto& list = tjson::field(j, "normalizers", where);
    if (!list.is_array()) tjson::fail(where + ".normalizers", "expected a list");
    for (std::size_t i = 0; i < list.size(); ++i) add_from_json(list[i], where + ".normalizers[" + std::to_string(i) + "]");
  } else if (type == "NFC") {
    steps_.push_back({Step::Kind::Nfc, {}, {}});
  } else if (type == "Prepend") {
    add_prepend(tjson::string_field(j, "prepend", where));
  } else if (type == "Replace") {
    const auto& pattern = tjson::field(j, "pattern", where);
    std::string content = tjson::string_field(j, "content", where);
    if (pattern.contains("String")) {
      add_replace(tjson::string_field(pattern, "String", where + ".pattern"), std::move(content));
    } else if (pattern.contains("Regex")) {
      Step s{Step::Kind::ReplaceRegex, {}, std::move(content)};
      s.regex = std::make_shared<const SplitRegex>(
          SplitRegex::compile(tjson::string_field(pattern, "Regex", where + ".pattern")));
      steps_.push_back(std::move(s));
    } else {
      tjson::fail(where + ".pattern", "expected {\"String\": …} or {\"Regex\": …}");
    }
  } else if (type == "Strip") {
    Step s{Step::Kind::Strip, {}, {}};
    s.left = tjson::bool_field(j, "strip_left", false, where);
    s.right = tjson::bool_field(j, "strip_right", false, where);
    steps_.push_back(std::move(s));
  } else {
    tjson::fail(where, "normalizer type '" + type + "' is not supported");
  }
}

void Normalizer::add_prepend(std::string text) { steps_.push_back({Step::Kind::Prepend, std::move(text), {}}); }

void Normalizer::add_replace(std::string from, std::string to) {
  steps_.push_back({Step::Kind::Replace, std::move(from), std::move(to)});
}

void Normalizer::add_collapse_spaces() { steps_.push_back({Step::Kind::CollapseSpaces, {}, {}}); }

std::string Normalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const auto& step : steps_) {
    switch (step.kind) {
      case Step::Kind::Nfc: s = unicode::nfc(s); break;
      case Step::Kind::Prepend:
        if (!s.empty()) s.insert(0, step.a);
        break;
      case Step::Kind::Replace: s = replace_all(s, step.a, step.b); break;
      case Step::Kind::ReplaceRegex: s = replace_regex(s, *step.regex, step.b); break;
      case Step::Kind::Strip: s = strip(s, step.left, step.right); break;
      case Step::Kind::CollapseSpaces: s = collapse_spaces(s); break;
    }
  }
  return s;
}

}  // namespace devicemap
