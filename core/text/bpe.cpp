#include "text/bpe.hpp"

#include <cstdio>
#include <queue>

#include "error.hpp"
#include "text/unicode.hpp"

namespace devicemap {

// Words repeat a lot in real text; the merge loop is the expensive part.
struct BpeModel::Cache {
  static constexpr std::size_t kMaxWordBytes = 128;
  static constexpr std::size_t kMaxEntries = 1 << 16;
  std::mutex mutex;
  std::unordered_map<std::string, std::vector<int>, StringHash, std::equal_to<>> words;
};

namespace {

std::uint32_t hash32(std::string_view s) {
  const auto h = std::hash<std::string_view>{}(s);
  return static_cast<std::uint32_t>(h ^ (h >> 32));
}

std::size_t table_size(std::size_t n) {
  std::size_t cap = 16;
  while (cap < n * 2) cap *= 2;
  return cap;
}

}  // namespace

BpeModel::BpeModel(std::vector<std::string> tokens, Options options)
    : tokens_(std::move(tokens)), options_(std::move(options)), cache_(std::make_unique<Cache>()) {
  index_.assign(table_size(tokens_.size()), 0);
  const std::size_t mask = index_.size() - 1;
  for (std::size_t id = 0; id < tokens_.size(); ++id) {
    if (tokens_[id].empty()) continue;
    const std::uint32_t h = hash32(tokens_[id]);
    if (token_id(tokens_[id])) throw Error("token '" + tokens_[id] + "' appears twice in the vocabulary");
    std::size_t slot = h & mask;
    while (index_[slot] != 0) slot = (slot + 1) & mask;
    index_[slot] = (static_cast<std::uint64_t>(h) << 32) | (id + 1);
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    byte_tokens_[b] = token_id(name).value_or(-1);
  }
}

BpeModel::BpeModel() = default;
BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel& BpeModel::operator=(BpeModel&&) noexcept = default;
BpeModel::~BpeModel() = default;

std::optional<int> BpeModel::token_id(std::string_view token) const {
  if (index_.empty()) return std::nullopt;
  const std::uint32_t h = hash32(token);
  const std::size_t mask = index_.size() - 1;
  for (std::size_t slot = h & mask; index_[slot] != 0; slot = (slot + 1) & mask) {
    if (static_cast<std::uint32_t>(index_[slot] >> 32) != h) continue;
    const auto id = static_cast<std::size_t>(index_[slot] & 0xFFFFFFFFu) - 1;
    if (tokens_[id] == token) return static_cast<int>(id);
  }
  return std::nullopt;
}

void BpeModel::grow_merges(std::size_t capacity) {
  std::vector<Merge> old = std::move(merges_);
  merges_.assign(capacity, Merge{});
  merge_count_ = 0;
  for (const auto& m : old)
    if (m.key) add_merge(static_cast<int>((m.key >> 32) - 1), static_cast<int>(m.key & 0xFFFFFFFFu), m.rank, m.merged);
}

void BpeModel::reserve_merges(std::size_t n) {
  if (table_size(n) > merges_.size()) grow_merges(table_size(n));
}

void BpeModel::add_merge(int left, int right, std::uint32_t rank, int merged) {
  if ((merge_count_ + 1) * 2 > merges_.size()) grow_merges(table_size(merge_count_ + 1));
  const std::uint64_t k = key(left, right);
  const std::size_t mask = merges_.size() - 1;
  std::size_t slot = static_cast<std::size_t>((k * 0x9E3779B97F4A7C15ull) >> 20) & mask;
  for (; merges_[slot].key != 0; slot = (slot + 1) & mask)
    if (merges_[slot].key == k) return;  // declared before, with a lower rank
  merges_[slot] = {k, rank, merged};
  ++merge_count_;
}

const BpeModel::Merge* BpeModel::find_merge(int left, int right) const {
  if (merges_.empty()) return nullptr;
  const std::uint64_t k = key(left, right);
  const std::size_t mask = merges_.size() - 1;
  for (std::size_t slot = static_cast<std::size_t>((k * 0x9E3779B97F4A7C15ull) >> 20) & mask; merges_[slot].key != 0;
       slot = (slot + 1) & mask)
    if (merges_[slot].key == k) return &merges_[slot];
  return nullptr;
}

void BpeModel::encode_word(std::string_view word, std::vector<int>& out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (auto id = token_id(word)) {
      out.push_back(*id);
      return;
    }
  }
  if (word.size() > Cache::kMaxWordBytes || !cache_) {
    merge_word(word, out);
    return;
  }
  {
    std::lock_guard lock(cache_->mutex);
    const auto it = cache_->words.find(word);
    if (it != cache_->words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const auto start = out.size();
  merge_word(word, out);
  std::lock_guard lock(cache_->mutex);
  if (cache_->words.size() >= Cache::kMaxEntries) cache_->words.clear();
  cache_->words.emplace(std::string(word), std::vector<int>(out.begin() + static_cast<std::ptrdiff_t>(start), out.end()));
}

void BpeModel::merge_word(std::string_view word, std::vector<int>& out) const {
  struct Symbol {
    int id;
    int prev;
    int next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto push = [&](int id) {
    const int n = static_cast<int>(symbols.size());
    symbols.push_back({id, n - 1, -1, true});
    if (n > 0) symbols[static_cast<std::size_t>(n - 1)].next = n;
  };

  // Initial symbols: one per character, or its bytes' <0xXX> tokens, or unk.
  std::string piece;
  bool last_was_unk = false;
  for (std::size_t pos = 0; pos < word.size();) {
    const auto step = unicode::decode_utf8(word, pos);
    const std::string_view ch = word.substr(pos, step.length);
    const bool first = pos == 0;
    pos += step.length;
    const bool last = pos >= word.size();
    std::optional<int> id;
    if ((!first && !options_.continuing_subword_prefix.empty()) || (last && !options_.end_of_word_suffix.empty())) {
      piece.clear();
      if (!first) piece += options_.continuing_subword_prefix;
      piece += ch;
      if (last) piece += options_.end_of_word_suffix;
      id = token_id(piece);
    } else {
      id = token_id(ch);
    }
    if (id) {
      push(*id);
      last_was_unk = false;
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (unsigned char b : ch) all = all && byte_tokens_[b] >= 0;
      if (all) {
        for (unsigned char b : ch) push(byte_tokens_[b]);
        last_was_unk = false;
        continue;
      }
    }
    if (!options_.unk_id) continue;  // nothing can stand for it
    if (!(options_.fuse_unk && last_was_unk)) push(*options_.unk_id);
    last_was_unk = true;
  }

  struct Candidate {
    std::uint32_t rank;
    int pos;
    int merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](int left) {
    const int right = symbols[static_cast<std::size_t>(left)].next;
    if (right < 0) return;
    if (const Merge* m = find_merge(symbols[static_cast<std::size_t>(left)].id, symbols[static_cast<std::size_t>(right)].id))
      queue.push({m->rank, left, m->merged});
  };
  for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) consider(i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    auto& left = symbols[static_cast<std::size_t>(top.pos)];
    if (!left.alive || left.next < 0) continue;
    auto& right = symbols[static_cast<std::size_t>(left.next)];
    // Stale entry: one of the two symbols changed since it was queued.
    const Merge* m = find_merge(left.id, right.id);
    if (!m || m->merged != top.merged || m->rank != top.rank) continue;
    left.id = top.merged;
    left.next = right.next;
    right.alive = false;
    if (left.next >= 0) symbols[static_cast<std::size_t>(left.next)].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
  for (const auto& s : symbols)
    if (s.alive) out.push_back(s.id);
}

}  // namespace devicemap
