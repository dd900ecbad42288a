#include "text/token_decoder.hpp"

#include "text/pre_tokenizer.hpp"
#include "text/tokenizer_json_fields.hpp"
#include "text/unicode.hpp"

namespace devicemap {
namespace {

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(s);
  std::string out;
  std::size_t pos = 0;
  for (auto hit = s.find(from); hit != std::string_view::npos; hit = s.find(from, pos)) {
    out.append(s.substr(pos, hit - pos)).append(to);
    pos = hit + from.size();
  }
  return out.append(s.substr(pos));
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

TokenDecoder TokenDecoder::from_json(const nlohmann::json& j, const std::string& where) {
  TokenDecoder d;
  if (!j.is_null()) {
    d.join_with_space_ = false;
    d.add_from_json(j, where);
  }
  return d;
}

TokenDecoder TokenDecoder::sentencepiece(bool strip_leading_space) {
  TokenDecoder d;
  d.join_with_space_ = false;
  d.steps_.push_back({Step::Kind::Replace, "\xE2\x96\x81", " "});
  d.steps_.push_back({Step::Kind::ByteFallback, {}, {}});
  d.fused_ = true;
  if (strip_leading_space) d.add_strip(" ", 1, 0);
  return d;
}

void TokenDecoder::add_strip(std::string content, std::size_t start, std::size_t stop) {
  if (!fused_) {
    steps_.push_back({Step::Kind::Strip, std::move(content), {}, start, stop});
    return;
  }
  // On the fused output: trim its start as it streams out, its end when it is complete.
  fused_strip_char_ = std::move(content);
  fused_strip_start_ = start;
  fused_strip_stop_ = stop;
}

void TokenDecoder::add_from_json(const nlohmann::json& j, const std::string& where) {
  const std::string type = tjson::type_of(j, where);
  if (type == "Sequence") {
    const auto& list = tjson::field(j, "decoders", where);
    if (!list.is_array()) tjson::fail(where + ".decoders", "expected a list");
    for (std::size_t i = 0; i < list.size(); ++i) add_from_json(list[i], where + ".decoders[" + std::to_string(i) + "]");
  } else if (type == "Replace") {
    const auto& pattern = tjson::field(j, "pattern", where);
    if (!pattern.is_object() || !pattern.contains("String"))
      tjson::fail(where + ".pattern", "only {\"String\": …} patterns are supported in decoders");
    steps_.push_back({Step::Kind::Replace, tjson::string_field(pattern, "String", where + ".pattern"),
                      tjson::string_field(j, "content", where)});
  } else if (type == "ByteFallback") {
    steps_.push_back({Step::Kind::ByteFallback, {}, {}});
  } else if (type == "ByteLevel") {
    steps_.push_back({Step::Kind::ByteLevel, {}, {}});
    fused_ = true;
  } else if (type == "Fuse") {
    fused_ = true;
  } else if (type == "Strip") {
    const std::string content = tjson::string_field(j, "content", where);
    if (unicode::code_points(content).size() != 1) tjson::fail(where + ".content", "expected one character");
    const auto start = tjson::int_field(j, "start", where), stop = tjson::int_field(j, "stop", where);
    if (start < 0 || stop < 0 || start > 1024 || stop > 1024) tjson::fail(where, "start/stop out of range");
    add_strip(content, static_cast<std::size_t>(start), static_cast<std::size_t>(stop));
  } else if (type == "Metaspace") {
    Step s{Step::Kind::Metaspace, tjson::string_field(j, "replacement", where), {}};
    if (j.contains("prepend_scheme")) s.flag = tjson::string_field(j, "prepend_scheme", where) != "never";
    else s.flag = tjson::bool_field(j, "add_prefix_space", true, where);
    steps_.push_back(std::move(s));
  } else {
    tjson::fail(where, "decoder type '" + type + "' is not supported");
  }
}

std::string TokenDecoder::apply(std::string_view token, bool first, bool& is_byte) const {
  std::string s(token);
  is_byte = false;
  for (const auto& step : steps_) {
    switch (step.kind) {
      case Step::Kind::Replace:
        s = replace_all(s, step.a, step.b);
        break;
      case Step::Kind::ByteFallback:
        if (s.size() == 6 && s.compare(0, 3, "<0x") == 0 && s[5] == '>' && hex_digit(s[3]) >= 0 && hex_digit(s[4]) >= 0)
          s = std::string(1, static_cast<char>(hex_digit(s[3]) * 16 + hex_digit(s[4]))), is_byte = true;
        break;
      case Step::Kind::ByteLevel: {
        // Characters of the byte alphabet become their bytes; a token with any other character stays as it is.
        std::string bytes;
        bool all = true;
        for (std::size_t pos = 0; pos < s.size() && all;) {
          const auto step8 = unicode::decode_utf8(s, pos);
          const auto b = byte_level::byte_of(step8.cp);
          if (!step8.valid || !b) all = false;
          else bytes += static_cast<char>(*b);
          pos += step8.length;
        }
        if (all) s = std::move(bytes);
        break;
      }
      case Step::Kind::Metaspace:
        s = replace_all(s, step.a, first && step.flag ? "" : " ");
        break;
      case Step::Kind::Strip: {
        std::size_t b = 0, e = s.size(), n = 0;
        while (n < step.start && s.compare(b, step.a.size(), step.a) == 0 && b < e) b += step.a.size(), ++n;
        n = 0;
        while (n < step.stop && e >= b + step.a.size() && s.compare(e - step.a.size(), step.a.size(), step.a) == 0)
          e -= step.a.size(), ++n;
        s = s.substr(b, e - b);
        break;
      }
    }
  }
  return s;
}

void TokenDecoder::Stream::emit(std::string_view piece, std::string& out) {
  std::size_t b = 0;
  const auto& c = d_.fused_strip_char_;
  while (strip_left_ > 0 && b < piece.size()) {
    if (piece.compare(b, c.size(), c) != 0) {
      strip_left_ = 0;
      break;
    }
    b += c.size();
    --strip_left_;
  }
  out.append(piece.substr(b));
}

void TokenDecoder::Stream::end_byte_run(std::string& out) {
  std::string replacement;
  for (std::size_t i = 0; i < bytes_.size(); ++i) unicode::append_utf8(replacement, unicode::kReplacement);
  emit(replacement, out);
  bytes_.clear();
  broken_ = false;
}

void TokenDecoder::Stream::push(std::string_view token, std::string& out) {
  bool is_byte = false;
  std::string piece = d_.apply(token, first_, is_byte);
  if (d_.join_with_space_ && !first_) piece.insert(0, " ");
  first_ = false;
  if (!is_byte) {
    end_byte_run(out);
    emit(piece, out);
    return;
  }
  if (broken_) {
    emit("\xEF\xBF\xBD", out);
    return;
  }
  bytes_ += piece;
  const auto step = unicode::decode_utf8(bytes_, 0);
  if (step.valid) {
    emit(bytes_, out);
    bytes_.clear();
  } else if (!step.truncated) {
    end_byte_run(out);
    broken_ = true;
  }
}

std::size_t TokenDecoder::Stream::strippable_tail(std::string_view out) const {
  const auto& c = d_.fused_strip_char_;
  std::size_t tail = 0;
  for (std::size_t n = 0; n < d_.fused_strip_stop_ && out.size() >= tail + c.size() &&
                          out.compare(out.size() - tail - c.size(), c.size(), c) == 0;
       ++n)
    tail += c.size();
  return tail;
}

void TokenDecoder::Stream::finish(std::string& out) {
  end_byte_run(out);
  out.resize(out.size() - strippable_tail(out));
}

}  // namespace devicemap
