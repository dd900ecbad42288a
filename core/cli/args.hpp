#pragma once
// A small argument reader for the subcommands: "--name value", "--name=value", flags, repeated options,
// positionals. Unknown options are errors that name the option.
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace devicemap::cli {

class Args {
 public:
  // `with_value`: options that take a value; `flags`: options that do not.
  Args(const std::vector<std::string>& argv, const std::set<std::string>& with_value, const std::set<std::string>& flags);

  std::optional<std::string> get(const std::string& name) const;  // last occurrence
  std::vector<std::string> all(const std::string& name) const;    // every occurrence, in order
  bool flag(const std::string& name) const;
  const std::vector<std::string>& positionals() const { return positionals_; }
  std::uint64_t get_u64(const std::string& name, std::uint64_t fallback) const;
  double get_double(const std::string& name, double fallback) const;

 private:
  std::vector<std::pair<std::string, std::string>> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positionals_;
};

}  // namespace devicemap::cli
