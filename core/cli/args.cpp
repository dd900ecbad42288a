#include "cli/args.hpp"

#include <charconv>

#include "error.hpp"

namespace devicemap::cli {

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& with_value, const std::set<std::string>& flags) {
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (!a.starts_with("--") || a == "--") {
      positionals_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    if (flags.contains(name)) {
      if (inline_value) throw Error("option --" + name + " takes no value");
      flags_.insert(name);
    } else if (with_value.contains(name)) {
      if (!inline_value) {
        if (i + 1 >= argv.size()) throw Error("option --" + name + " needs a value");
        value = argv[++i];
      }
      values_.emplace_back(name, value);
    } else {
      throw Error("unknown option --" + name + " (see --help)");
    }
  }
}

std::optional<std::string> Args::get(const std::string& name) const {
  std::optional<std::string> v;
  for (const auto& [k, val] : values_)
    if (k == name) v = val;
  return v;
}

std::vector<std::string> Args::all(const std::string& name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : values_)
    if (k == name) out.push_back(v);
  return out;
}

bool Args::flag(const std::string& name) const { return flags_.contains(name); }

std::uint64_t Args::get_u64(const std::string& name, std::uint64_t fallback) const {
  const auto v = get(name);
  if (!v) return fallback;
  std::uint64_t out = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || p != v->data() + v->size()) throw Error("--" + name + ": '" + *v + "' is not a non-negative integer");
  return out;
}

double Args::get_double(const std::string& name, double fallback) const {
  const auto v = get(name);
  if (!v) return fallback;
  double out = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || p != v->data() + v->size()) throw Error("--" + name + ": '" + *v + "' is not a number");
  return out;
}

}  // namespace devicemap::cli
