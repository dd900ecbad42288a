#pragma once
// tokenizer.json normalizers: NFC, Prepend, Replace, Strip, Sequence, and SentencePiece's removal of extra
// spaces. A normalizer runs on every stretch of text between added tokens, before pre-tokenization.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace devicemap {

class SplitRegex;

class Normalizer {
 public:
  Normalizer();
  Normalizer(Normalizer&&) noexcept;
  Normalizer& operator=(Normalizer&&) noexcept;
  ~Normalizer();

  // `where` names the file and key for errors ("…/tokenizer.json: normalizer"). null gives the identity.
  static Normalizer from_json(const nlohmann::json& j, const std::string& where);

  void add_prepend(std::string text);
  void add_replace(std::string from, std::string to);
  void add_collapse_spaces();  // SentencePiece remove_extra_whitespaces: trim, and runs of ' ' become one

  std::string apply(std::string_view text) const;
  bool identity() const { return steps_.empty(); }

 private:
  struct Step {
    enum class Kind { Nfc, Prepend, Replace, ReplaceRegex, Strip, CollapseSpaces } kind;
    std::string a = {}, b = {};
    bool left = false, right = false;
    std::shared_ptr<const SplitRegex> regex = {};
  };
  void add_from_json(const nlohmann::json& j, const std::string& where);
  std::vector<Step> steps_;
};

}  // namespace devicemap
