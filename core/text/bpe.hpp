#pragma once
// Byte-pair encoding of one pre-tokenized word: the model half of a tokenizer. Merges are applied lowest rank
// first (leftmost among equal ranks) with a priority queue over a linked list of symbols, exactly as
// Hugging Face tokenizers' BPE does; SentencePiece BPE models become the same thing with ranks taken from
// piece scores. Results for short words are cached.
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace devicemap {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using TokenIndex = std::unordered_map<std::string, int, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  struct Options {
    std::optional<int> unk_id;
    bool byte_fallback = false;  // unknown characters become <0xXX> tokens
    bool fuse_unk = false;       // consecutive unknown characters give one unk
    bool ignore_merges = false;  // a word that is itself in the vocabulary is taken whole (Llama 3)
    std::string continuing_subword_prefix;
    std::string end_of_word_suffix;
  };

  BpeModel();
  // `tokens[id]` is the token of id (an empty string for an unused id). Throws Error on a duplicate token.
  BpeModel(std::vector<std::string> tokens, Options options);
  BpeModel(BpeModel&&) noexcept;
  BpeModel& operator=(BpeModel&&) noexcept;
  ~BpeModel();

  // Declares that `left` followed by `right` merge into `merged`; a lower rank merges first. A pair declared
  // twice keeps its first (lowest) rank.
  void add_merge(int left, int right, std::uint32_t rank, int merged);
  void reserve_merges(std::size_t n);

  void set_unk_id(std::optional<int> id) { options_.unk_id = id; }

  void encode_word(std::string_view word, std::vector<int>& out) const;

  std::optional<int> token_id(std::string_view token) const;
  const std::string& token(int id) const { return tokens_[static_cast<std::size_t>(id)]; }
  int size() const { return static_cast<int>(tokens_.size()); }
  const Options& options() const { return options_; }

 private:
  // Open-addressing tables: one probe sequence over a flat array instead of a node per entry, which is what
  // makes loading a 150k-token vocabulary and its merges fast.
  struct Merge {
    std::uint64_t key = 0;  // (left + 1) << 32 | right; 0 marks an empty slot
    std::uint32_t rank = 0;
    int merged = 0;
  };
  static std::uint64_t key(int left, int right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left) + 1) << 32) | static_cast<std::uint32_t>(right);
  }
  const Merge* find_merge(int left, int right) const;
  void grow_merges(std::size_t capacity);
  void merge_word(std::string_view word, std::vector<int>& out) const;

  std::vector<std::string> tokens_;
  std::vector<std::uint64_t> index_;  // hash << 32 | (id + 1); 0 marks an empty slot
  std::vector<Merge> merges_;
  std::size_t merge_count_ = 0;
  Options options_;
  int byte_tokens_[256];  // id of <0xXX>, or -1

  struct Cache;
  std::unique_ptr<Cache> cache_;
};

}  // namespace devicemap
