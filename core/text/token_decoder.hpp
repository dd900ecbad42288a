#pragma once
// tokenizer.json decoders, turned into a per-token byte stream so that full decoding and streaming
// decoding are the same code: Replace, ByteFallback (<0xE4> → one byte), ByteLevel, Metaspace, Fuse, and
// Strip (after Fuse it trims the start of the whole output). Without a decoder tokens are joined by spaces.
//
// A run of byte-fallback tokens is handed out character by character as soon as each is complete. Bytes
// that cannot form a character become one U+FFFD per token, to the end of the run, as Hugging Face's
// ByteFallback does; unlike it, characters completed earlier in the same run are kept.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace devicemap {

class TokenDecoder {
 public:
  TokenDecoder() = default;  // no decoder: tokens joined by spaces
  static TokenDecoder from_json(const nlohmann::json& j, const std::string& where);
  // SentencePiece's decoding: ▁ → space, <0xXX> → byte, and the dummy prefix's leading space removed.
  static TokenDecoder sentencepiece(bool strip_leading_space);

  // Decodes token by token. Output is raw bytes; a multi-byte character may be split between two calls.
  class Stream {
   public:
    explicit Stream(const TokenDecoder& d) : d_(d), strip_left_(d.fused_strip_start_) {}
    void push(std::string_view token, std::string& out);
    // Ends an unfinished byte-fallback run and removes what a trailing Strip removes.
    void finish(std::string& out);
    // How many bytes at the end of `out` finish() might still remove: a streaming reader holds them back.
    std::size_t strippable_tail(std::string_view out) const;

   private:
    void emit(std::string_view piece, std::string& out);
    void end_byte_run(std::string& out);

    const TokenDecoder& d_;
    std::size_t strip_left_;
    bool first_ = true;
    std::string bytes_;     // byte-fallback bytes of an unfinished character
    bool broken_ = false;  // this byte run went wrong: the rest of it is U+FFFD
  };

 private:
  struct Step {
    enum class Kind { Replace, ByteFallback, ByteLevel, Metaspace, Strip } kind;
    std::string a = {}, b = {};  // Replace: from, to; Metaspace, Strip: the character
    std::size_t start = 0, stop = 0;
    bool flag = false;  // Metaspace: drop the replacement in the first token
  };
  void add_from_json(const nlohmann::json& j, const std::string& where);
  void add_strip(std::string content, std::size_t start, std::size_t stop);
  // The token's bytes; `is_byte` tells that ByteFallback turned it into one raw byte.
  std::string apply(std::string_view token, bool first, bool& is_byte) const;

  std::vector<Step> steps_;
  bool fused_ = false;         // a Fuse or ByteLevel step has run: later steps see the whole output
  bool join_with_space_ = true;
  std::string fused_strip_char_;
  std::size_t fused_strip_start_ = 0, fused_strip_stop_ = 0;
};

}  // namespace devicemap
