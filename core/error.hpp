#pragma once
// One exception type for every user-facing failure. Its message names the file, key or tensor and says
// what is wrong, so a command line can print it as one line and a dialog can show it as it is.
//
// Messages quote what users' files hold (names, keys, JSON parsers' "last read" text), which may be any
// bytes: an Error keeps valid UTF-8 as it is and writes every other byte, and control characters but
// newline and tab, as \xNN, so that a terminal or a dialog never receives raw bytes from a stranger's file.
#include <stdexcept>
#include <string>
#include <string_view>

namespace devicemap {

// `text` with bytes that are not valid UTF-8 (stray continuation bytes, overlong forms, surrogates,
// code points past U+10FFFF, cut-off sequences) and control characters written as \xNN.
inline std::string printable(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  const auto escape = [&](unsigned char b) {
    out += "\\x";
    out += kHex[b >> 4];
    out += kHex[b & 15];
  };
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned char b = s[i];
    if (b < 0x80) {
      if ((b < 0x20 && b != '\n' && b != '\t') || b == 0x7f) escape(b);
      else out += static_cast<char>(b);
      ++i;
      continue;
    }
    // Length and the range of the second byte (RFC 3629's table), else the byte is escaped alone.
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) len = 2;
    else if (b == 0xE0) len = 3, lo = 0xA0;
    else if (b >= 0xE1 && b <= 0xEC) len = 3;
    else if (b == 0xED) len = 3, hi = 0x9F;
    else if (b >= 0xEE && b <= 0xEF) len = 3;
    else if (b == 0xF0) len = 4, lo = 0x90;
    else if (b >= 0xF1 && b <= 0xF3) len = 4;
    else if (b == 0xF4) len = 4, hi = 0x8F;
    bool ok = len > 0 && i + len <= n && s[i + 1] >= lo && s[i + 1] <= hi;
    for (std::size_t k = 2; ok && k < len; ++k) ok = s[i + k] >= 0x80 && s[i + k] <= 0xBF;
    if (!ok) {
      escape(b);
      ++i;
      continue;
    }
    out.append(text.substr(i, len));
    i += len;
  }
  return out;
}

struct Error : std::runtime_error {
  explicit Error(const std::string& what) : std::runtime_error(printable(what)) {}
  explicit Error(const char* what) : std::runtime_error(printable(what)) {}
};

}  // namespace devicemap
