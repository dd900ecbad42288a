#include "run/generation_options.hpp"

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "error.hpp"

namespace devicemap {
namespace {

std::vector<std::int64_t> token_ids(const nlohmann::json& j, const char* key, std::string_view source) {
  std::vector<std::int64_t> ids;
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return ids;
  const auto& v = j.at(key);
  auto one = [&](const nlohmann::json& e) {
    if (!e.is_number_integer() || e.get<std::int64_t>() < 0)
      throw Error(std::string(source) + ": key '" + key + "' must be a token id or a list of them, got " +
                  v.dump());
    ids.push_back(e.get<std::int64_t>());
  };
  if (v.is_array())
    for (const auto& e : v) one(e);
  else
    one(v);
  return ids;
}

double number(const nlohmann::json& j, const char* key, double fallback, std::string_view source) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  const auto& v = j.at(key);
  if (!v.is_number() || !std::isfinite(v.get<double>()))
    throw Error(std::string(source) + ": key '" + key + "' must be a number, got " + v.dump());
  return v.get<double>();
}

}  // namespace

GenerationOptions generation_defaults(const nlohmann::json& generation_config, const nlohmann::json& config,
                                      std::string_view source) {
  GenerationOptions o;
  if (generation_config.is_object()) {
    const auto& g = generation_config;
    if (g.contains("do_sample") && !g.at("do_sample").is_null()) {
      if (!g.at("do_sample").is_boolean())
        throw Error(std::string(source) + ": key 'do_sample' must be true or false, got " + g.at("do_sample").dump());
      o.sampling.do_sample = g.at("do_sample").get<bool>();
    }
    o.sampling.temperature = number(g, "temperature", o.sampling.temperature, source);
    o.sampling.top_p = number(g, "top_p", o.sampling.top_p, source);
    o.sampling.repetition_penalty = number(g, "repetition_penalty", o.sampling.repetition_penalty, source);
    const double top_k = number(g, "top_k", 0, source);
    const double max_new = number(g, "max_new_tokens", double(o.max_new_tokens), source);
    if (top_k < 0 || std::floor(top_k) != top_k)
      throw Error(std::string(source) + ": key 'top_k' must be a non-negative integer");
    if (max_new < 0 || std::floor(max_new) != max_new)
      throw Error(std::string(source) + ": key 'max_new_tokens' must be a non-negative integer");
    o.sampling.top_k = static_cast<std::int64_t>(top_k);
    o.max_new_tokens = static_cast<std::int64_t>(max_new);
    o.eos_token_ids = token_ids(g, "eos_token_id", source);
  }
  if (o.eos_token_ids.empty()) o.eos_token_ids = token_ids(config, "eos_token_id", "config.json");
  validate(o);
  return o;
}

void validate(const GenerationOptions& o) {
  const auto& s = o.sampling;
  if (!(s.temperature >= 0) || !std::isfinite(s.temperature))
    throw Error("temperature must be 0 or more, got " + std::to_string(s.temperature));
  if (!(s.top_p > 0 && s.top_p <= 1)) throw Error("top_p must be in (0, 1], got " + std::to_string(s.top_p));
  if (s.top_k < 0) throw Error("top_k must be 0 (off) or more, got " + std::to_string(s.top_k));
  if (!(s.repetition_penalty > 0) || !std::isfinite(s.repetition_penalty))
    throw Error("repetition_penalty must be greater than 0, got " + std::to_string(s.repetition_penalty));
  if (o.max_new_tokens < 0) throw Error("max_new_tokens must be 0 or more");
}

}  // namespace devicemap
