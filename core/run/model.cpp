#include "run/model.hpp"

#include <chrono>
#include <set>

#include "format/checkpoint.hpp"
#include "kernels/memory_read.hpp"
#include "kernels/thread_pool.hpp"
#include "run/weights.hpp"
#include "plan/device_map.hpp"
#include "plan/machine.hpp"
#include "run/cpu_rate.hpp"
#include "run/heap_policy.hpp"
#include "run/kv_cache.hpp"
#include "run/load_plan.hpp"
#include "run/model_impl.hpp"
#include "run/loader.hpp"
#include "run/packed_linear.hpp"
#include "run/prefetcher.hpp"
#include "run/transformer.hpp"

namespace devicemap {

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&& other) noexcept {
  if (this == &other) return *this;
  const bool held = impl_ != nullptr;
  impl_ = std::move(other.impl_);
  if (held) release_freed_memory();
  return *this;
}
Model::~Model() {
  if (!impl_) return;  // moved from
  impl_.reset();
  release_freed_memory();  // what the weights and buffers took, back to the system
}

Model Model::load(const Checkpoint& checkpoint, const DeviceMap& map, const LoadOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  use_all_cores();
  keep_freed_memory_for_reuse();
  c10::InferenceMode inference;
  auto impl = std::make_unique<Impl>();
  const auto config_path = checkpoint.dir() / "config.json";
  if (checkpoint.config().empty())
    throw Error(config_path.string() + " is missing or empty; the runtime needs it to know the architecture");
  impl->config = ModelConfig::from_json(checkpoint.config(), config_path.string());
  if (!impl->config.gptq && checkpoint.quantize_config()) {  // AutoGPTQ keeps it in its own file
    impl->config.gptq = GptqConfig::from_json(*checkpoint.quantize_config(),
                                              (checkpoint.dir() / "quantize_config.json").string());
    if (impl->config.family != ModelFamily::Llama)
      throw Error(config_path.string() + ": GPTQ quantization is supported for the Llama family only");
  }
  impl->generation = devicemap::generation_defaults(checkpoint.generation_config(), checkpoint.config(),
                                                    (checkpoint.dir() / "generation_config.json").string());
  const LoadPlan plan = plan_load(checkpoint, impl->config, map, options);
  impl->layers = plan.layers;
  if (options.check_memory) check_memory(plan, detect_machine(options.offload_folder.value_or(".")));
  try {
    impl->weights = load_weights(plan, options, impl->report);
    pack_linears(*impl->weights, impl->config);
    impl->weights->for_each_packed([&](const std::string&, const PackedLinear& l) {
      ++impl->report.packed_linears;
      impl->report.packed_bytes += l.bytes();
    });
  } catch (const c10::Error& e) {  // out of device memory, mostly
    throw Error(checkpoint.dir().string() + ": loading failed: " + e.what_without_backtrace());
  }
  impl->prefetcher = std::make_unique<Prefetcher>(*impl->weights, static_cast<std::size_t>(impl->config.num_layers),
                                                  options.prefetch);
  switch (impl->config.family) {
    case ModelFamily::Llama: impl->transformer = make_llama(impl->config, *impl->weights, *impl->prefetcher, plan.layers); break;
    case ModelFamily::Gpt2: impl->transformer = make_gpt2(impl->config, *impl->weights, *impl->prefetcher, plan.layers); break;
  }
  if (options.prefill_chunk < 1) throw Error("prefill_chunk must be at least 1");
  impl->chunk = options.prefill_chunk;
  impl->cache = std::make_unique<KvCache>(impl->config.num_layers, impl->config.max_position_embeddings);
  impl->check_memory = options.check_memory;
  impl->report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return Model(std::move(impl));
}

Model Model::load(const std::filesystem::path& model_folder, const DeviceMap& map, const LoadOptions& options) {
  return load(Checkpoint::open(model_folder), map, options);
}

const ModelConfig& Model::config() const { return impl_->config; }
const LoadReport& Model::load_report() const { return impl_->report; }
const GenerationOptions& Model::generation_defaults() const { return impl_->generation; }
std::int64_t Model::cached_tokens() const { return impl_->cache->length(); }

std::map<std::string, std::uint64_t> Model::kv_cache_bytes(std::int64_t tokens) const {
  const auto& c = impl_->config;
  tokens = std::min(tokens, c.max_position_embeddings);
  std::map<std::string, std::uint64_t> out;
  for (std::int64_t i = impl_->layers.first; i < impl_->layers.end; ++i) {
    const c10::Device device = impl_->transformer->attention_device(i);
    const auto element = c10::elementSize(impl_->weights->policy().compute_dtype(device));
    out[device.str()] += static_cast<std::uint64_t>(2 * c.num_kv_heads * c.head_dim * tokens) * element;
  }
  return out;
}

std::map<std::string, std::uint64_t> Model::kv_cache_held_bytes() const { return impl_->cache->held_bytes(); }

void Model::reserve_cache(std::int64_t tokens) {
  if (impl_->check_memory) {
    // RAM only: a GPU's free memory as NVML reports it leaves out what LibTorch's caching allocator holds
    // for reuse, so checking it would refuse generations that fit. The whole reservation is allocated at
    // the first token, so a GPU that is too small fails there, not half-way.
    auto needed = kv_cache_bytes(tokens);
    std::erase_if(needed, [](const auto& entry) { return entry.first != "cpu"; });
    for (const auto& [device, held] : impl_->cache->held_bytes())  // buffers kept from an earlier sequence
      if (auto it = needed.find(device); it != needed.end()) it->second -= std::min(it->second, held);
    check_kv_memory(needed, std::min(tokens, impl_->config.max_position_embeddings), detect_machine());
  }
  impl_->cache->reserve(tokens);
  if (impl_->link) impl_->link->reserve(tokens);
}
TransferStats Model::transfer_stats() const { return impl_->prefetcher->stats(); }

double Model::weight_read_seconds(int passes) const {
  // Pieces of at most 1 MiB, so both threads share every tensor's read.
  struct Piece {
    const std::uint64_t* words;
    std::size_t n;
  };
  std::vector<Piece> pieces;
  std::set<const void*> read;  // a packed Linear may hold stored tensors themselves (bitsandbytes codes)
  const auto add = [&](const at::Tensor& t) {
    if (!t.defined() || !read.insert(t.data_ptr()).second) return;
    const auto* words = static_cast<const std::uint64_t*>(t.data_ptr());
    const std::size_t n = t.nbytes() / 8;
    for (std::size_t at = 0; at < n; at += std::size_t{1} << 17) pieces.push_back({words + at, std::min<std::size_t>(std::size_t{1} << 17, n - at)});
  };
  const bool tied = impl_->config.tie_word_embeddings;
  impl_->weights->for_each([&](const std::string& name, const StoredTensor& t) {
    if (!t.tensor.is_cpu()) return;
    const bool input_embedding = name.ends_with("embed_tokens.weight") || name.ends_with("wte.weight") || name.ends_with("wpe.weight");
    if (input_embedding && !(tied && !name.ends_with("wpe.weight"))) return;  // a lookup reads one row
    add(t.tensor);
  });
  impl_->weights->for_each_packed([&](const std::string&, const PackedLinear& l) {  // codes and their block scales
    for (const at::Tensor* t : {&l.codes, &l.scale, &l.offset}) add(*t);
    if (l.low) add(l.low->codes), add(l.low->scale);  // GPTQ 8-bit's second plane
  });
  double best = 0;
  std::vector<std::uint64_t> sums(pieces.size());
  for (int p = 0; p < std::max(1, passes); ++p) {
    const auto start = std::chrono::steady_clock::now();
    kernels::ThreadPool::shared().run(pieces.size(), [&](std::size_t i) { sums[i] = kernels::sum_words(pieces[i].words, pieces[i].n); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (p == 0 || s < best) best = s;
  }
  return best;
}
void Model::set_cancel_flag(const std::atomic<bool>* flag) { impl_->transformer->set_cancel_flag(flag); }
void Model::reset() { impl_->cache->clear(); }

Logits Model::forward(std::span<const std::int64_t> ids, bool all_positions) {
  c10::InferenceMode inference;
  const at::Tensor t = impl_->ids_tensor(ids, impl_->cache->length());
  try {
    return Impl::to_logits(impl_->run(t, impl_->cache.get(), all_positions));
  } catch (const c10::Error& e) {
    impl_->cache->clear();
    impl_->prefetcher->reset();
    throw Error(std::string("the forward pass failed: ") + e.what_without_backtrace());
  } catch (...) {
    impl_->cache->clear();
    impl_->prefetcher->reset();
    throw;
  }
}

Logits Model::evaluate(std::span<const std::int64_t> ids) {
  c10::InferenceMode inference;
  if (impl_->link) throw Error("evaluate() runs a whole model in one process; across a pipeline, use forward()");
  const at::Tensor t = impl_->ids_tensor(ids, 0);
  try {
    return Impl::to_logits(impl_->run(t, nullptr, true));
  } catch (const c10::Error& e) {
    impl_->prefetcher->reset();
    throw Error(std::string("the forward pass failed: ") + e.what_without_backtrace());
  } catch (...) {
    impl_->prefetcher->reset();
    throw;
  }
}

}  // namespace devicemap
