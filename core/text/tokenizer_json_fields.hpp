#pragma once
// Checked access to the fields of tokenizer.json: a missing key or a wrong type becomes a devicemap::Error
// that names the file and the key path, never a nlohmann exception or a crash.
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "error.hpp"

namespace devicemap::tjson {

inline std::string describe(const nlohmann::json& j) { return j.type_name(); }

[[noreturn]] inline void fail(const std::string& where, const std::string& what) { throw Error(where + ": " + what); }

inline const nlohmann::json& field(const nlohmann::json& j, std::string_view key, const std::string& where) {
  if (!j.is_object()) fail(where, "expected an object, found " + describe(j));
  const auto it = j.find(key);
  if (it == j.end()) fail(where, "missing key '" + std::string(key) + "'");
  return *it;
}

inline std::string string_field(const nlohmann::json& j, std::string_view key, const std::string& where) {
  const auto& v = field(j, key, where);
  if (!v.is_string()) fail(where + "." + std::string(key), "expected a string, found " + describe(v));
  return v.get<std::string>();
}

inline bool bool_field(const nlohmann::json& j, std::string_view key, bool fallback, const std::string& where) {
  if (!j.is_object()) fail(where, "expected an object, found " + describe(j));
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(where + "." + std::string(key), "expected true or false, found " + describe(*it));
  return it->get<bool>();
}

inline std::int64_t int_field(const nlohmann::json& j, std::string_view key, const std::string& where) {
  const auto& v = field(j, key, where);
  if (!v.is_number_integer()) fail(where + "." + std::string(key), "expected an integer, found " + describe(v));
  return v.get<std::int64_t>();
}

// A token id: an integer in [0, limit).
inline int id_value(const nlohmann::json& v, std::int64_t limit, const std::string& where) {
  if (!v.is_number_integer()) fail(where, "expected a token id, found " + describe(v));
  const auto id = v.get<std::int64_t>();
  if (id < 0 || id >= limit) fail(where, "token id " + std::to_string(id) + " is out of range");
  return static_cast<int>(id);
}

// "type" of a component object.
inline std::string type_of(const nlohmann::json& j, const std::string& where) { return string_field(j, "type", where); }

}  // namespace devicemap::tjson
