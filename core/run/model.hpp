#pragma once
// A model loaded by a device map, ready to run: the running layer's public face (torch-free, so the GUI
// and the CLI include it without LibTorch's headers). load() is Accelerate's
// load_checkpoint_and_dispatch; forward() runs tokens through every block on its device, keeping a KV
// cache so that a generation step only runs its new token.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "run/generation_options.hpp"
#include "run/load_options.hpp"
#include "run/model_config.hpp"

namespace devicemap {

class Checkpoint;
class DeviceMap;

// Scores over the vocabulary for some positions, float32, row-major [positions × vocab].
struct Logits {
  std::int64_t positions = 0;
  std::int64_t vocab = 0;
  std::vector<float> values;

  std::span<float> row(std::int64_t position) {
    return std::span<float>(values).subspan(static_cast<std::size_t>(position * vocab), static_cast<std::size_t>(vocab));
  }
  std::span<const float> row(std::int64_t position) const {
    return std::span<const float>(values).subspan(static_cast<std::size_t>(position * vocab), static_cast<std::size_t>(vocab));
  }
};

// What running moved between devices: weights fetched to their execution device (GPU copies of "cpu"
// and "disk" blocks, casts of "disk" tensors), on demand or prefetched while the previous block ran.
struct TransferStats {
  std::uint64_t fetched_tensors = 0;     // copies or casts made when a block asked
  std::uint64_t prefetched_tensors = 0;  // copies or casts made ahead of time and used
  std::uint64_t transferred_bytes = 0;   // bytes of both
  std::uint64_t advised_bytes = 0;       // "disk" bytes the kernel was asked to read ahead
};

class Model {
 public:
  // Reads config.json, generation_config.json and quantize_config.json, plans the load (load_plan.hpp),
  // checks it against the machine's free memory, and loads every weight by `map` (see loader.hpp for
  // what goes where). Throws devicemap::Error naming the file, key or tensor; LoadCancelled when
  // options.on_progress returns false. The checkpoint may be closed afterwards: tensors that alias its
  // files keep their mappings alive.
  static Model load(const Checkpoint& checkpoint, const DeviceMap& map, const LoadOptions& options = {});
  static Model load(const std::filesystem::path& model_folder, const DeviceMap& map, const LoadOptions& options = {});

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  const ModelConfig& config() const;
  const LoadReport& load_report() const;
  // generation_config.json's settings (stop ids falling back to config.json's eos_token_id).
  const GenerationOptions& generation_defaults() const;

  // Runs `ids` after the cached tokens and caches them. Returns the logits of the last new position, or
  // of every new one. Throws devicemap::Error for an empty `ids`, an id outside the vocabulary, or a
  // sequence longer than max_position_embeddings; the cache is cleared when a forward fails.
  Logits forward(std::span<const std::int64_t> ids, bool all_positions = false);
  // Runs `ids` as a whole sequence without the model's cache (which stays as it is); logits of every
  // position. Not thread-safe, like every call here: one thread runs a Model at a time.
  Logits evaluate(std::span<const std::int64_t> ids);

  std::int64_t cached_tokens() const;

  // Bytes the KV cache takes for `tokens` tokens (capped at the context), by execution device ("cpu",
  // "cuda:0").
  std::map<std::string, std::uint64_t> kv_cache_bytes(std::int64_t tokens) const;
  // Sizes the cache for `tokens` tokens so that running them never grows it, after checking (unless the
  // model was loaded with check_memory off) that the RAM has that much free beyond what the cache holds
  // already. Throws devicemap::Error naming the device, the bytes needed and the bytes free.
  void reserve_cache(std::int64_t tokens);
  // Bytes of KV cache allocated now, by device.
  std::map<std::string, std::uint64_t> kv_cache_held_bytes() const;
  TransferStats transfer_stats() const;
  // Seconds to read once, on the decode kernels' threads, every weight a decode step reads from this
  // machine's RAM (CPU and "disk" tensors where they are held; an untied input embedding left out, a
  // step reads one row of it); the best of `passes`. The bound of a decode step on the very pages the
  // weights occupy (huge pages or not, whichever memory the system gave them): benchmarks divide by it.
  double weight_read_seconds(int passes = 3) const;

  // While `flag` (which must outlive its use; nullptr: none) reads true, a forward pass stops at the
  // next block and throws Cancelled, clearing the cache. Set it from any thread, e.g. a GUI's Stop.
  void set_cancel_flag(const std::atomic<bool>* flag);
  void reset();  // forget the cached tokens

  // What the model holds (run/model_impl.hpp): for the pipeline stages of the running layer, which run
  // a stage's layers on hidden states from another process. Not for the CLI or the GUI.
  struct Impl;
  Impl& internals() { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace devicemap
