#include "run/offload_folder.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "format/atomic_file.hpp"
#include "format/mapped_file.hpp"

namespace devicemap {
namespace {

std::uint64_t element_count(const std::vector<std::int64_t>& shape, const std::string& where) {
  std::uint64_t n = 1;
  for (const auto d : shape) {
    if (d < 0 || (d > 0 && n > UINT64_MAX / static_cast<std::uint64_t>(d)))
      throw Error(where + ": invalid shape");
    n *= static_cast<std::uint64_t>(d);
  }
  return n;
}

// Bytes of a .dat file: NumPy stores a bool in a whole byte.
std::uint64_t file_bytes(DType d, std::uint64_t n) { return d == DType::Bool ? n : dtype_bytes(d, n); }

// Accelerate names dtypes as NumPy does ("float32", "int64", "bool"), bfloat16 as "bfloat16".
std::string index_name(DType d) { return std::string(torch_name(d)); }

constexpr const char* kMarker = "devicemap-offload.json";

}  // namespace

OffloadFolder::OffloadFolder(std::filesystem::path dir) : dir_(std::move(dir)) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec || !std::filesystem::is_directory(dir_))
    throw Error(dir_.string() + ": cannot create the offload folder" + (ec ? " (" + ec.message() + ")" : ""));
  const auto index = dir_ / "index.json";
  if (!std::filesystem::exists(index)) return;
  owned_ = std::filesystem::exists(dir_ / kMarker);
  const nlohmann::json j = read_json_file(index);
  if (!j.is_object()) throw Error(index.string() + ": expected a JSON object of tensors");
  for (const auto& [name, info] : j.items()) {
    const std::string where = index.string() + ": tensor '" + name + "'";
    // Entries pointing into a safetensors file (transformers writes those) need no .dat; skip them.
    if (!info.is_object() || info.contains("safetensors_file")) continue;
    if (!info.contains("dtype") || !info.at("dtype").is_string() || !info.contains("shape") || !info.at("shape").is_array())
      throw Error(where + " needs a string \"dtype\" and an array \"shape\"");
    const auto dtype = dtype_from_torch_name(info.at("dtype").get<std::string>());
    if (!dtype) throw Error(where + " has unknown dtype '" + info.at("dtype").get<std::string>() + "'");
    Entry e{*dtype, {}};
    for (const auto& d : info.at("shape")) {
      if (!d.is_number_integer() || d.get<std::int64_t>() < 0) throw Error(where + " has an invalid shape");
      e.shape.push_back(d.get<std::int64_t>());
    }
    entries_[name] = std::move(e);
  }
}

const OffloadFolder::Entry* OffloadFolder::find(const std::string& name) const {
  const auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

std::filesystem::path OffloadFolder::data_file(const std::string& name) const {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos || name.find('\0') != std::string::npos)
    throw Error("tensor name '" + name + "' cannot be an offload file name");
  return dir_ / (name + ".dat");
}

void OffloadFolder::write(const std::string& name, DType dtype, const std::vector<std::int64_t>& shape,
                          std::span<const std::byte> bytes) {
  const auto path = data_file(name);
  if (!owned_)
    throw Error(dir_.string() + " is another program's offload folder (an index.json without " + kMarker +
                "): it is read as it is and never written to, so tensor '" + name + "' cannot be added there");
  if (file_bytes(dtype, element_count(shape, path.string())) != bytes.size())
    throw Error(path.string() + ": " + std::to_string(bytes.size()) + " bytes do not match the dtype and shape");
  write_file_atomically(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  entries_[name] = Entry{dtype, shape};
}

void OffloadFolder::save_index() const {
  if (!owned_) return;
  // The marker first: a folder with an index of ours is never mistaken for another program's.
  write_file_atomically(dir_ / kMarker, "{\"written_by\": \"devicemap\", \"format\": \"accelerate offload folder\"}\n");
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [name, e] : entries_) j[name] = {{"dtype", index_name(e.dtype)}, {"shape", e.shape}};
  write_file_atomically(dir_ / "index.json", j.dump(2) + "\n");
}

std::shared_ptr<const MappedFile> OffloadFolder::map(const std::string& name) const {
  const Entry* e = find(name);
  const auto path = data_file(name);
  if (!e) throw Error(dir_.string() + ": index.json lists no tensor '" + name + "'");
  auto file = std::make_shared<const MappedFile>(path);
  // Accelerate stores a 0-d tensor as one element.
  const std::uint64_t expected = file_bytes(e->dtype, element_count(e->shape, path.string()));
  if (file->size() != expected)
    throw Error(path.string() + ": " + std::to_string(file->size()) + " bytes, but index.json's dtype and shape need " +
                std::to_string(expected));
  return file;
}

}  // namespace devicemap
