#pragma once
// Every file the program writes goes to a temporary name beside its target, is flushed, and is renamed
// into place: a reader sees the old file or the new one, never half of one.
#include <filesystem>
#include <functional>
#include <ostream>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace devicemap {

// Writes `content` to `path` atomically. Throws devicemap::Error naming the path on failure.
void write_file_atomically(const std::filesystem::path& path, std::string_view content);

// Streams into a temporary file through `write`, then renames it to `path`. If `write` throws, the
// temporary file is removed and the target is left untouched.
void write_file_atomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);

// Reads a whole (small) file; throws devicemap::Error naming it when it cannot.
std::string read_text_file(const std::filesystem::path& path);
// Reads and parses a JSON file; throws devicemap::Error naming it when it cannot or it is not JSON.
nlohmann::json read_json_file(const std::filesystem::path& path);

}  // namespace devicemap
