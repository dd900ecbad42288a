#pragma once
// Internal to the running layer (includes ATen). Keys and values of every block for the tokens seen so
// far, one [kv_heads, capacity, head_dim] buffer pair per block, allocated on the device that executes
// the block's attention when the block first runs. Capacity grows by doubling up to the model's context.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace devicemap {

class KvCache {
 public:
  KvCache(std::int64_t blocks, std::int64_t max_tokens) : blocks_(static_cast<std::size_t>(blocks)), max_tokens_(max_tokens) {}

  // Tokens whose keys and values every block holds.
  std::int64_t length() const { return length_; }
  std::int64_t max_tokens() const { return max_tokens_; }

  // Buffers allocated from now on hold at least `tokens` tokens (at most the context), so that a
  // generation of that length never grows them: the memory it needs is known before it starts.
  void reserve(std::int64_t tokens) { reserved_ = std::min(tokens, max_tokens_); }

  // Bytes of the buffers allocated now, by device ("cpu", "cuda:0").
  std::map<std::string, std::uint64_t> held_bytes() const {
    std::map<std::string, std::uint64_t> out;
    for (const auto& b : blocks_)
      if (b.k.defined()) out[b.k.device().str()] += static_cast<std::uint64_t>(b.k.nbytes() + b.v.nbytes());
    return out;
  }

  // Stores block `index`'s keys and values of the new tokens ([kv_heads, new, head_dim]) after the
  // cached ones; returns all of them so far ([kv_heads, length() + new, head_dim]).
  std::pair<at::Tensor, at::Tensor> append(std::int64_t index, const at::Tensor& k, const at::Tensor& v) {
    Block& b = blocks_.at(static_cast<std::size_t>(index));
    const std::int64_t used = length_, added = k.size(1), needed = used + added;
    // A buffer smaller than the reservation is replaced at once, not grown while the tokens run.
    if (!b.k.defined() || needed > b.k.size(1) || b.k.size(1) < reserved_ || b.k.device() != k.device() ||
        b.k.scalar_type() != k.scalar_type()) {
      // Beyond the reservation (forward() calls outside a generation) buffers double as they fill.
      const std::int64_t current = b.k.defined() ? b.k.size(1) : 0;
      const std::int64_t grown = needed > std::max(reserved_, current) ? 2 * current : 0;
      const std::int64_t capacity =
          std::min(std::max({needed, std::int64_t{64}, reserved_, grown}), std::max(needed, max_tokens_));
      at::Tensor nk = at::empty({k.size(0), capacity, k.size(2)}, k.options());
      at::Tensor nv = at::empty({v.size(0), capacity, v.size(2)}, v.options());
      if (used > 0) {
        nk.narrow(1, 0, used).copy_(b.k.narrow(1, 0, used));
        nv.narrow(1, 0, used).copy_(b.v.narrow(1, 0, used));
      }
      b.k = nk;
      b.v = nv;
    }
    b.k.narrow(1, used, added).copy_(k);
    b.v.narrow(1, used, added).copy_(v);
    return {b.k.narrow(1, 0, needed), b.v.narrow(1, 0, needed)};
  }

  // Called once every block has appended `added` tokens.
  void commit(std::int64_t added) { length_ += added; }

  // Forgets every token; buffers stay allocated for the next sequence.
  void clear() { length_ = 0; }

 private:
  struct Block {
    at::Tensor k, v;
  };
  std::vector<Block> blocks_;
  std::int64_t max_tokens_ = 0;
  std::int64_t reserved_ = 0;
  std::int64_t length_ = 0;
};

}  // namespace devicemap
