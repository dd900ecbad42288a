#include "format/safetensors.hpp"

#include <algorithm>
#include <array>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "format/atomic_file.hpp"
#include "format/mapped_file.hpp"

namespace devicemap {
namespace {

using nlohmann::json;

// The reference implementation refuses headers over 100 MB; so do we, before reading a byte of one.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// A valid header nests three deep (root, entry, shape); extra keys are tolerated, deep nesting is not.
constexpr std::size_t kMaxDepth = 16;
constexpr std::string_view kMetadataKey = "__metadata__";

[[noreturn]] void fail(std::string_view file, const std::string& what) {
  throw Error(std::string(file) + ": " + what);
}

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string type_of(const json& j) { return j.type_name(); }

// Bytes of one element as safetensors stores it: a bool takes a whole byte (unlike dtype_bytes, which
// counts bits as Accelerate's size estimate does).
std::uint64_t stored_element_bytes(DType d) {
  return d == DType::Bool ? 1 : static_cast<std::uint64_t>(dtype_bits(d) / 8);
}

std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// nlohmann keeps the last of duplicate keys silently; a header with two entries of one name is
// ambiguous, so the parse is watched and stops at the first repeated key of any object.
class DuplicateKeyGuard {
 public:
  explicit DuplicateKeyGuard(std::string_view file) : file_(file) {}

  bool operator()(int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (frames_.size() >= kMaxDepth) fail(file_, "header is nested deeper than " + std::to_string(kMaxDepth) + " levels");
        frames_.emplace_back();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!frames_.empty()) frames_.pop_back();
        break;
      case json::parse_event_t::key: {
        Frame& f = frames_.back();
        std::string key = parsed.get<std::string>();
        if (!f.keys.insert(key).second) {
          if (frames_.size() == 1)
            fail(file_, key == kMetadataKey ? "__metadata__ appears twice in the header"
                                            : "tensor " + in_quotes(key) + " appears twice in the header");
          fail(file_, "key " + in_quotes(key) + " appears twice in the entry " + in_quotes(frames_.front().last_key));
        }
        f.last_key = std::move(key);
        break;
      }
      case json::parse_event_t::value:
        break;
    }
    return true;
  }

 private:
  struct Frame {
    std::set<std::string> keys;
    std::string last_key;
  };
  std::string_view file_;
  std::vector<Frame> frames_;
};

json parse_header_json(std::string_view text, std::string_view file) {
  DuplicateKeyGuard guard(file);
  try {
    return json::parse(text.begin(), text.end(), std::ref(guard));
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers like 1e999
    // e.what() starts with "[json.exception.parse_error.101] "; the rest is what a user can act on.
    std::string msg = e.what();
    if (auto p = msg.find("] "); msg.starts_with("[json.exception") && p != std::string::npos) msg.erase(0, p + 2);
    fail(file, "header is not valid JSON: " + msg);
  }
}

// A non-negative JSON integer, or nothing (negative, fractional, too large, not a number).
std::optional<std::uint64_t> as_count(const json& j) {
  if (j.is_number_unsigned()) return j.get<std::uint64_t>();
  if (j.is_number_integer() && j.get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(j.get<std::int64_t>());
  return std::nullopt;
}

TensorInfo parse_entry(const std::string& name, const json& entry, std::uint64_t data_size, std::string_view file) {
  const std::string who = "tensor " + in_quotes(name);
  if (!entry.is_object()) fail(file, who + ": entry is a JSON " + type_of(entry) + ", not an object");
  TensorInfo t;
  t.name = name;

  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end()) fail(file, who + ": no \"dtype\"");
  if (!dtype_it->is_string()) fail(file, who + ": \"dtype\" is a " + type_of(*dtype_it) + ", not a string");
  const auto dtype = dtype_from_safetensors(dtype_it->get<std::string>());
  if (!dtype) fail(file, who + ": unknown dtype " + in_quotes(dtype_it->get<std::string>()));
  t.dtype = *dtype;

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end()) fail(file, who + ": no \"shape\"");
  if (!shape_it->is_array()) fail(file, who + ": \"shape\" is a " + type_of(*shape_it) + ", not an array");
  std::uint64_t numel = 1;
  for (const json& d : *shape_it) {
    const auto dim = as_count(d);
    if (!dim) fail(file, who + ": shape " + shape_it->dump() + " has " + d.dump() + ", which is not a non-negative integer");
    if (*dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      fail(file, who + ": shape " + shape_it->dump() + " has a dimension too large to index");
    const auto product = checked_mul(numel, *dim);
    if (!product) fail(file, who + ": shape " + shape_it->dump() + " has more elements than 2^64");
    numel = *product;
    t.shape.push_back(static_cast<std::int64_t>(*dim));
  }
  const auto expected = checked_mul(numel, stored_element_bytes(t.dtype));
  if (!expected) fail(file, who + ": shape " + shape_text(t.shape) + " of " + std::string(safetensors_name(t.dtype)) + " needs more than 2^64 bytes");

  auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end()) fail(file, who + ": no \"data_offsets\"");
  const json& offsets = *offsets_it;
  if (!offsets.is_array() || offsets.size() != 2)
    fail(file, who + ": \"data_offsets\" " + offsets.dump() + " is not a pair [begin, end]");
  const auto begin = as_count(offsets[0]);
  const auto end = as_count(offsets[1]);
  if (!begin || !end) fail(file, who + ": \"data_offsets\" " + offsets.dump() + " are not non-negative integers");
  if (*begin > *end) fail(file, who + ": \"data_offsets\" " + offsets.dump() + " begin after they end");
  if (*end > data_size)
    fail(file, who + ": \"data_offsets\" " + offsets.dump() + " run past the data section (" + std::to_string(data_size) + " bytes)");
  t.begin = *begin;
  t.end = *end;
  if (t.nbytes() != *expected)
    fail(file, who + ": shape " + shape_text(t.shape) + " of " + std::string(safetensors_name(t.dtype)) + " needs " +
                   std::to_string(*expected) + " bytes but \"data_offsets\" " + offsets.dump() + " span " +
                   std::to_string(t.nbytes()));
  return t;
}

std::map<std::string, std::string> parse_metadata(const json& j, std::string_view file) {
  if (!j.is_object()) fail(file, "__metadata__ is a JSON " + type_of(j) + ", not an object of strings");
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string())
      fail(file, "__metadata__ key " + in_quotes(key) + " is a " + type_of(value) + ", not a string");
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

// Sorted by offsets, each tensor must begin where the previous one ended, and the last must end at the
// end of the data section: the reference format leaves no byte of a file unaccounted for.
void check_coverage(const std::vector<TensorInfo>& tensors, std::uint64_t data_size, std::string_view file) {
  std::uint64_t expected = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : tensors) {
    if (t.begin < expected)
      fail(file, "tensor " + in_quotes(t.name) + " [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                     ") overlaps tensor " + in_quotes(previous->name) + " [" + std::to_string(previous->begin) + ", " +
                     std::to_string(previous->end) + ")");
    if (t.begin > expected)
      fail(file, "bytes [" + std::to_string(expected) + ", " + std::to_string(t.begin) + ") before tensor " +
                     in_quotes(t.name) + " belong to no tensor (gap in the data section)");
    expected = t.end;
    previous = &t;
  }
  if (expected != data_size) {
    const std::string after = previous ? "after tensor " + in_quotes(previous->name) : "with no tensors in the header";
    fail(file, "bytes [" + std::to_string(expected) + ", " + std::to_string(data_size) + ") " + after +
                   " belong to no tensor (the data section must be fully covered)");
  }
}

std::uint64_t read_le64(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
  return v;
}

}  // namespace

std::uint64_t TensorInfo::numel() const {
  std::uint64_t n = 1;
  for (auto d : shape) n *= static_cast<std::uint64_t>(d);
  return n;
}

SafetensorsHeader parse_safetensors_header(std::string_view header_json, std::uint64_t data_size, std::string_view file) {
  const json root = parse_header_json(header_json, file);
  if (!root.is_object()) fail(file, "header is a JSON " + type_of(root) + ", not an object");
  SafetensorsHeader header;
  header.tensors.reserve(root.size());
  for (const auto& [name, entry] : root.items()) {
    if (name == kMetadataKey)
      header.metadata = parse_metadata(entry, file);
    else
      header.tensors.push_back(parse_entry(name, entry, data_size, file));
  }
  std::sort(header.tensors.begin(), header.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  check_coverage(header.tensors, data_size, file);
  return header;
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  auto file = std::make_shared<const MappedFile>(path);
  const std::string name = path.string();
  const auto bytes = file->bytes();
  if (bytes.size() < 8)
    fail(name, "file is " + std::to_string(bytes.size()) + " bytes, too short for a safetensors header length");
  const std::uint64_t n = read_le64(bytes.data());
  const std::uint64_t room = bytes.size() - 8;
  if (n > room)
    fail(name, "header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(room) +
                   " bytes follow the length; the file is truncated or not safetensors)");
  if (n > kMaxHeaderBytes)
    fail(name, "header length " + std::to_string(n) + " is over the " + std::to_string(kMaxHeaderBytes) + "-byte limit");
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), static_cast<std::size_t>(n));

  SafetensorsFile out;
  out.header_ = parse_safetensors_header(text, room - n, name);
  out.data_offset_ = 8 + n;
  out.file_ = std::move(file);
  for (std::size_t i = 0; i < out.header_.tensors.size(); ++i) out.index_.emplace(out.header_.tensors[i].name, i);
  return out;
}

const std::filesystem::path& SafetensorsFile::path() const { return file_->path(); }

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

std::span<const std::byte> SafetensorsFile::data(const TensorInfo& t) const {
  const auto bytes = file_->bytes();
  if (t.begin > t.end || t.end > bytes.size() - data_offset_)
    throw Error(path().string() + ": tensor " + in_quotes(t.name) + " lies outside the data section");
  return bytes.subspan(static_cast<std::size_t>(data_offset_ + t.begin), static_cast<std::size_t>(t.nbytes()));
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string file = path.string();
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[std::string(kMetadataKey)] = metadata;
  std::set<std::string_view> names;
  std::uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    const std::string who = "tensor " + in_quotes(t.name);
    if (t.name == kMetadataKey) fail(file, "cannot write a tensor named __metadata__");
    if (!names.insert(t.name).second) fail(file, who + " is given twice");
    std::uint64_t numel = 1;
    for (auto d : t.shape) {
      if (d < 0) fail(file, who + ": shape " + shape_text(t.shape) + " has a negative dimension");
      const auto product = checked_mul(numel, static_cast<std::uint64_t>(d));
      if (!product) fail(file, who + ": shape " + shape_text(t.shape) + " has more elements than 2^64");
      numel = *product;
    }
    const auto expected = checked_mul(numel, stored_element_bytes(t.dtype));
    if (!expected || *expected != t.bytes.size())
      fail(file, who + ": shape " + shape_text(t.shape) + " of " + std::string(safetensors_name(t.dtype)) + " needs " +
                     (expected ? std::to_string(*expected) : std::string("over 2^64")) + " bytes but " +
                     std::to_string(t.bytes.size()) + " were given");
    header[t.name] = {{"dtype", std::string(safetensors_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {offset, offset + *expected}}};
    offset += *expected;
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail(file, std::string("cannot write the header (a name or metadata value is not UTF-8): ") + e.what());
  }
  // Padding with spaces to a multiple of 8 keeps the data section 8-byte aligned, as the reference does.
  text.append((8 - text.size() % 8) % 8, ' ');

  std::array<char, 8> length{};
  for (std::size_t i = 0; i < 8; ++i) length[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(length.data(), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const TensorToWrite& t : tensors)
      out.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
  });
}

}  // namespace devicemap
