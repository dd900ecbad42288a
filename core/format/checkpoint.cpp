#include "format/checkpoint.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <system_error>

#include "error.hpp"
#include "format/atomic_file.hpp"

namespace devicemap {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view kSafetensorsIndex = "model.safetensors.index.json";
constexpr std::string_view kSafetensorsSingle = "model.safetensors";
constexpr std::string_view kBinIndex = "pytorch_model.bin.index.json";
constexpr std::string_view kBinSingle = "pytorch_model.bin";

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);  // follows symlinks, as cache snapshots are links into blobs/
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// nlohmann's message without its "[json.exception.parse_error.101] " prefix.
std::string parse_error_text(const json::exception& e) {
  std::string msg = e.what();
  if (auto k = msg.find("] "); msg.starts_with("[json.exception") && k != std::string::npos) msg.erase(0, k + 2);
  return msg;
}

// Parses a JSON object file; a broken file is an error naming it, never silently ignored.
json read_json_object(const fs::path& p, const json::parser_callback_t& callback = nullptr) {
  const std::string text = read_text_file(p);
  json j;
  try {
    j = json::parse(text, callback);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers like 1e999
    throw Error(p.string() + ": invalid JSON: " + parse_error_text(e));
  }
  if (!j.is_object()) throw Error(p.string() + ": expected a JSON object, found a " + std::string(j.type_name()));
  return j;
}

std::optional<json> read_optional_json(const fs::path& p) {
  if (!fs::exists(p)) return std::nullopt;
  return read_json_object(p);
}

// Files of `dir` whose names satisfy `keep`, sorted by name (shard numbers sort naturally).
template <typename Keep>
std::vector<fs::path> files_in(const fs::path& dir, Keep keep) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (keep(name) && is_file(entry.path())) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A shard name from an index must stay inside the model folder.
void check_shard_name(const std::string& shard, const fs::path& index) {
  if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos ||
      shard.find('\\') != std::string::npos)
    throw Error(index.string() + ": shard file name " + in_quotes(shard) + " is not a plain file name in the model folder");
}

// weight_map: tensor → shard file. nlohmann keeps the last of duplicate keys, so they are caught while parsing.
std::map<std::string, std::string> read_weight_map(const fs::path& index) {
  std::vector<std::set<std::string>> keys;
  std::vector<std::string> last_key;
  auto guard = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) {
      keys.emplace_back();
      last_key.emplace_back();
    } else if (event == json::parse_event_t::object_end || event == json::parse_event_t::array_end) {
      keys.pop_back();
      last_key.pop_back();
    } else if (event == json::parse_event_t::key) {
      std::string key = parsed.get<std::string>();
      if (keys.size() == 2 && last_key.front() == "weight_map" && !keys.back().insert(key).second)
        throw Error(index.string() + ": tensor " + in_quotes(key) + " is listed twice in weight_map");
      last_key.back() = std::move(key);
    }
    return true;
  };
  const json j = read_json_object(index, guard);
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) throw Error(index.string() + ": no \"weight_map\" object");
  std::map<std::string, std::string> out;
  for (const auto& [tensor, shard] : wm->items()) {
    if (!shard.is_string())
      throw Error(index.string() + ": weight_map entry for tensor " + in_quotes(tensor) + " is a " +
                  std::string(shard.type_name()) + ", not a shard file name");
    check_shard_name(shard.get<std::string>(), index);
    out.emplace(tensor, shard.get<std::string>());
  }
  return out;
}

// Opens every shard an index names and checks that index and shards agree tensor for tensor.
std::vector<SafetensorsFile> open_indexed_shards(const fs::path& dir, const fs::path& index) {
  const auto weight_map = read_weight_map(index);
  std::map<std::string, std::string> first_tensor;  // shard → a tensor that names it, for messages
  for (const auto& [tensor, shard] : weight_map) first_tensor.emplace(shard, tensor);
  for (const auto& [shard, tensor] : first_tensor)
    if (!is_file(dir / shard))
      throw Error(index.string() + ": shard " + in_quotes(shard) + " (holding tensor " + in_quotes(tensor) +
                  ") does not exist in " + dir.string());

  std::vector<SafetensorsFile> shards;
  std::map<std::string, std::size_t> shard_number;
  for (const auto& [shard, tensor] : first_tensor) {
    shard_number.emplace(shard, shards.size());
    shards.push_back(SafetensorsFile::open(dir / shard));
  }
  for (const auto& [tensor, shard] : weight_map) {
    if (shards[shard_number.at(shard)].find(tensor)) continue;
    std::string where;
    for (const auto& s : shards)
      if (s.find(tensor)) where = "; it is in " + in_quotes(s.path().filename().string());
    throw Error(index.string() + ": tensor " + in_quotes(tensor) + " is listed in shard " + in_quotes(shard) +
                " but that shard does not contain it" + where);
  }
  for (const auto& s : shards) {
    const std::string shard = s.path().filename().string();
    for (const TensorInfo& t : s.tensors()) {
      auto it = weight_map.find(t.name);
      if (it == weight_map.end())
        throw Error(s.path().string() + ": tensor " + in_quotes(t.name) + " is not listed in " + index.filename().string());
      if (it->second != shard)
        throw Error(s.path().string() + ": tensor " + in_quotes(t.name) + " is also here, but " +
                    index.filename().string() + " places it in " + in_quotes(it->second));
    }
  }
  return shards;
}

// pytorch_model.bin, or the shards its index lists, or pytorch_model-*.bin.
std::vector<fs::path> find_bin_files(const fs::path& dir) {
  if (const fs::path index = dir / kBinIndex; is_file(index)) {
    std::set<std::string> names;
    for (const auto& [tensor, shard] : read_weight_map(index)) names.insert(shard);
    std::vector<fs::path> out;
    for (const auto& name : names) {
      if (!is_file(dir / name)) throw Error(index.string() + ": shard " + in_quotes(name) + " does not exist in " + dir.string());
      out.push_back(dir / name);
    }
    return out;
  }
  if (is_file(dir / kBinSingle)) return {dir / kBinSingle};
  return files_in(dir, [](const std::string& n) { return n.starts_with("pytorch_model-") && n.ends_with(".bin"); });
}

std::optional<fs::path> newest_snapshot(const fs::path& snapshots) {
  std::optional<fs::path> best;
  fs::file_time_type best_time{};
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(snapshots, ec)) {
    if (!is_dir(entry.path())) continue;
    const auto t = fs::last_write_time(entry.path(), ec);
    if (ec) continue;
    if (!best || t > best_time || (t == best_time && entry.path() > *best)) {
      best = entry.path();
      best_time = t;
    }
  }
  return best;
}

}  // namespace

fs::path resolve_model_folder(const fs::path& path) {
  fs::path p = path;
  if (!p.has_filename()) p = p.parent_path();  // "models--org--name/" → "models--org--name"
  // ".../models--org--name/snapshots" picks a snapshot as the cache folder itself does.
  if (p.filename() == "snapshots" && p.parent_path().filename().string().starts_with("models--")) p = p.parent_path();
  const bool cache_root = is_dir(p / "snapshots") &&
                          (p.filename().string().starts_with("models--") || (is_dir(p / "refs") && !is_file(p / "config.json")));
  if (!cache_root) return path;

  const fs::path snapshots = p / "snapshots";
  if (const fs::path ref = p / "refs" / "main"; is_file(ref)) {
    std::string rev = read_text_file(ref);
    while (!rev.empty() && std::isspace(static_cast<unsigned char>(rev.back()))) rev.pop_back();
    if (rev.empty() || rev.find('/') != std::string::npos || rev == "." || rev == "..")
      throw Error(ref.string() + ": does not hold a revision");
    if (!is_dir(snapshots / rev))
      throw Error(ref.string() + ": names revision " + in_quotes(rev) + " but " + (snapshots / rev).string() + " does not exist");
    return snapshots / rev;
  }
  if (auto newest = newest_snapshot(snapshots)) return *newest;
  throw Error(p.string() + ": Hugging Face cache folder with no snapshot in " + snapshots.string());
}

Checkpoint Checkpoint::open(const fs::path& path) {
  if (!fs::exists(path)) throw Error(path.string() + ": no such file or folder");
  const fs::path resolved = resolve_model_folder(path);
  Checkpoint ck;

  if (is_file(resolved)) {
    const std::string name = resolved.filename().string();
    ck.dir_ = resolved.parent_path().empty() ? fs::path(".") : resolved.parent_path();
    if (name.ends_with(".index.json") && name.find(".safetensors") != std::string::npos)
      ck.shards_ = open_indexed_shards(ck.dir_, resolved);
    else if (name.ends_with(".safetensors"))
      ck.shards_.push_back(SafetensorsFile::open(resolved));
    else if (name.ends_with(".bin"))
      ck.bin_files_.push_back(resolved);
    else
      throw Error(resolved.string() + ": not a model folder, a .safetensors file or a .bin file");
  } else if (is_dir(resolved)) {
    ck.dir_ = resolved;
    const auto unindexed = files_in(resolved, [](const std::string& n) { return n.ends_with(".safetensors"); });
    if (is_file(resolved / kSafetensorsIndex)) {
      ck.shards_ = open_indexed_shards(resolved, resolved / kSafetensorsIndex);
    } else if (is_file(resolved / kSafetensorsSingle)) {
      ck.shards_.push_back(SafetensorsFile::open(resolved / kSafetensorsSingle));
    } else if (unindexed.size() == 1) {  // GPTQ and others name their single file freely
      ck.shards_.push_back(SafetensorsFile::open(unindexed.front()));
    } else if (unindexed.size() > 1) {
      throw Error(resolved.string() + ": " + std::to_string(unindexed.size()) + " .safetensors files but no " +
                  std::string(kSafetensorsIndex) + " saying which tensor is in which");
    } else {
      ck.bin_files_ = find_bin_files(resolved);
      if (ck.bin_files_.empty())
        throw Error(resolved.string() + ": no model weights found (looked for " + std::string(kSafetensorsSingle) + ", " +
                    std::string(kSafetensorsIndex) + ", *.safetensors, " + std::string(kBinSingle) + ", " +
                    std::string(kBinIndex) + " and pytorch_model-*.bin)");
    }
  } else {
    throw Error(resolved.string() + ": not a model folder, a .safetensors file or a .bin file");
  }

  if (auto c = read_optional_json(ck.dir_ / "config.json")) ck.config_ = std::move(*c);
  if (auto g = read_optional_json(ck.dir_ / "generation_config.json")) ck.generation_config_ = std::move(*g);
  ck.quantize_config_ = read_optional_json(ck.dir_ / "quantize_config.json");

  for (std::size_t s = 0; s < ck.shards_.size(); ++s)
    for (const TensorInfo& t : ck.shards_[s].tensors()) {
      if (!ck.index_.emplace(t.name, ck.tensors_.size()).second)
        throw Error(ck.shards_[s].path().string() + ": tensor " + in_quotes(t.name) + " is also in another shard");
      ck.tensors_.push_back({&t, s});
    }
  return ck;
}

Checkpoint::Checkpoint(const Checkpoint& other)
    : dir_(other.dir_),
      config_(other.config_),
      generation_config_(other.generation_config_),
      quantize_config_(other.quantize_config_),
      shards_(other.shards_),
      bin_files_(other.bin_files_),
      tensors_(other.tensors_),
      index_(other.index_) {
  for (CheckpointTensor& t : tensors_) {
    const auto position = static_cast<std::size_t>(t.info - other.shards_[t.shard].tensors().data());
    t.info = &shards_[t.shard].tensors()[position];
  }
}

Checkpoint& Checkpoint::operator=(const Checkpoint& other) {
  if (this != &other) *this = Checkpoint(other);
  return *this;
}

const CheckpointTensor* Checkpoint::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::uint64_t Checkpoint::total_bytes() const {
  std::uint64_t total = 0;
  for (const auto& t : tensors_) total += t.info->nbytes();
  return total;
}

std::string Checkpoint::model_type() const {
  auto it = config_.find("model_type");
  return it != config_.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<DType> Checkpoint::torch_dtype() const {
  // transformers wrote "torch_dtype" for years and writes "dtype" since 4.56; either may be "auto" or absent.
  for (const char* key : {"torch_dtype", "dtype"}) {
    auto it = config_.find(key);
    if (it != config_.end() && it->is_string())
      if (auto d = dtype_from_torch_name(it->get<std::string>())) return d;
  }
  return std::nullopt;
}

bool Checkpoint::tie_word_embeddings() const {
  auto it = config_.find("tie_word_embeddings");
  return it == config_.end() || !it->is_boolean() || it->get<bool>();
}

}  // namespace devicemap
