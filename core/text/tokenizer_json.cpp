// Reads a Hugging Face tokenizer.json into a TokenizerEngine.
#include <fstream>
#include <sstream>

#include "text/tokenizer_engine.hpp"
#include "text/tokenizer_json_fields.hpp"

namespace devicemap {
namespace {

using nlohmann::json;

// tokenizer.json is mostly model.vocab and model.merges (Qwen2: 150k of each). A SAX reader collects those two
// straight into flat lists and builds a DOM only for the rest, which keeps loading well under a second.
struct RawBpe {
  bool has_vocab = false, has_merges = false;
  std::vector<std::pair<std::string, json>> vocab;        // token, id as written
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<std::string> bad_merges;                     // index and what was found, for the error
};

class TokenizerJsonReader : public nlohmann::json_sax<json> {
 public:
  TokenizerJsonReader(std::string file, RawBpe& raw) : file_(std::move(file)), raw_(raw) {}
  json root;

  bool null() override { return value(json()); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override { return value(json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return value(json(v)); }
  bool number_float(number_float_t v, const string_t&) override { return value(json(v)); }
  bool binary(binary_t&) override { return value(json()); }
  bool string(string_t& v) override {
    if (mode_ == Mode::Merges) {
      if (pair_depth_) pair_.push_back(std::move(v));
      else split_merge(v);
      return true;
    }
    return value(json(std::move(v)));
  }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool start_object(std::size_t) override { return open(json::object()); }
  bool start_array(std::size_t) override { return open(json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    throw Error(file_ + ": not valid JSON (" + e.what() + ")");
  }

 private:
  enum class Mode { Dom, Vocab, Merges };

  bool value(json v) {
    if (mode_ == Mode::Vocab) {
      raw_.vocab.emplace_back(std::move(key_), std::move(v));
    } else if (mode_ == Mode::Merges) {
      if (pair_depth_) {
        pair_.push_back({});  // not a string: reported when the pair closes
      } else {
        raw_.bad_merges.push_back(std::to_string(raw_.merges.size()));
        raw_.merges.emplace_back();
      }
    } else if (stack_.empty()) {
      root = std::move(v);
    } else if (stack_.back()->is_object()) {
      (*stack_.back())[key_] = std::move(v);
    } else {
      stack_.back()->push_back(std::move(v));
    }
    return true;
  }

  bool open(json container) {
    if (mode_ == Mode::Vocab) throw Error(file_ + ": model.vocab[\"" + key_ + "\"]: expected a token id");
    if (mode_ == Mode::Merges) {
      if (pair_depth_ || !container.is_array())
        throw Error(file_ + ": model.merges[" + std::to_string(raw_.merges.size()) + "]: expected \"left right\" or [left, right]");
      pair_depth_ = true;
      pair_.clear();
      return true;
    }
    if (stack_.size() == 2 && path_[1] == "model") {
      if (key_ == "vocab" && container.is_object()) {
        mode_ = Mode::Vocab, raw_.has_vocab = true;
        return true;
      }
      if (key_ == "merges" && container.is_array()) {
        mode_ = Mode::Merges, raw_.has_merges = true;
        return true;
      }
    }
    json* slot;
    if (stack_.empty()) {
      root = std::move(container);
      slot = &root;
    } else if (stack_.back()->is_object()) {
      slot = &((*stack_.back())[key_] = std::move(container));
    } else {
      stack_.back()->push_back(std::move(container));
      slot = &stack_.back()->back();
    }
    path_.push_back(stack_.empty() || stack_.back()->is_object() ? key_ : std::string());
    stack_.push_back(slot);
    return true;
  }

  bool close() {
    if (mode_ == Mode::Merges && pair_depth_) {
      pair_depth_ = false;
      if (pair_.size() == 2 && !pair_[0].empty() && !pair_[1].empty()) raw_.merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      else raw_.bad_merges.push_back(std::to_string(raw_.merges.size())), raw_.merges.emplace_back();
      return true;
    }
    if (mode_ != Mode::Dom) {
      mode_ = Mode::Dom;
      return true;
    }
    stack_.pop_back();
    path_.pop_back();
    return true;
  }

  void split_merge(const std::string& s) {
    const auto space = s.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == s.size()) {
      raw_.bad_merges.push_back(std::to_string(raw_.merges.size()) + " (\"" + s + "\")");
      raw_.merges.emplace_back();
      return;
    }
    raw_.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
  }

  std::string file_;
  RawBpe& raw_;
  std::vector<json*> stack_;
  std::vector<std::string> path_;  // key of each open container (empty inside arrays)
  std::string key_;
  Mode mode_ = Mode::Dom;
  bool pair_depth_ = false;
  std::vector<std::string> pair_;
};

json parse_file(const std::filesystem::path& file, RawBpe& raw) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file.string() + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string text = std::move(ss).str();
  TokenizerJsonReader reader(file.string(), raw);
  try {
    json::sax_parse(text, &reader);
  } catch (const json::exception& e) {
    throw Error(file.string() + ": not valid JSON (" + e.what() + ")");
  }
  return std::move(reader.root);
}

std::string optional_string(const json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_string()) tjson::fail(where + "." + key, "expected a string, found " + tjson::describe(*it));
  return it->get<std::string>();
}

BpeModel read_bpe(const json& model, RawBpe& raw, const std::string& where) {
  if (!model.is_object()) tjson::fail(where, "expected an object");
  if (model.contains("type") && tjson::type_of(model, where) != "BPE")
    tjson::fail(where + ".type", "model type '" + tjson::type_of(model, where) + "' is not supported (only BPE)");
  if (model.contains("vocab")) tjson::fail(where + ".vocab", "expected an object of token: id");
  if (model.contains("merges")) tjson::fail(where + ".merges", "expected a list");
  if (!raw.has_vocab) tjson::fail(where, "missing key 'vocab'");
  if (!raw.has_merges) tjson::fail(where, "missing key 'merges'");
  const auto limit = static_cast<std::int64_t>(raw.vocab.size()) * 2 + 1024;  // ids are dense in practice
  std::vector<std::string> tokens;
  tokens.reserve(raw.vocab.size());
  std::vector<bool> seen;
  for (auto& [token, id_json] : raw.vocab) {
    const auto id = static_cast<std::size_t>(tjson::id_value(id_json, limit, where + ".vocab[\"" + token + "\"]"));
    if (id >= tokens.size()) tokens.resize(id + 1), seen.resize(id + 1);
    if (seen[id]) tjson::fail(where + ".vocab[\"" + token + "\"]", "id " + std::to_string(id) + " is used twice");
    seen[id] = true;
    tokens[id] = std::move(token);
  }

  BpeModel::Options opt;
  const std::string unk = optional_string(model, "unk_token", where);
  opt.continuing_subword_prefix = optional_string(model, "continuing_subword_prefix", where);
  opt.end_of_word_suffix = optional_string(model, "end_of_word_suffix", where);
  opt.byte_fallback = tjson::bool_field(model, "byte_fallback", false, where);
  opt.fuse_unk = tjson::bool_field(model, "fuse_unk", false, where);
  opt.ignore_merges = tjson::bool_field(model, "ignore_merges", false, where);
  BpeModel bpe(std::move(tokens), opt);
  if (!unk.empty()) {
    const auto id = bpe.token_id(unk);
    if (!id) tjson::fail(where + ".unk_token", "'" + unk + "' is not in the vocabulary");
    bpe.set_unk_id(id);
  }

  if (!raw.bad_merges.empty())
    tjson::fail(where + ".merges[" + raw.bad_merges.front() + "]", "expected \"left right\" or [left, right]");
  const auto& prefix = opt.continuing_subword_prefix;
  bpe.reserve_merges(raw.merges.size());
  std::string merged;
  for (std::size_t rank = 0; rank < raw.merges.size(); ++rank) {
    const std::string_view a = raw.merges[rank].first, b = raw.merges[rank].second;
    merged.assign(a);
    merged.append(!prefix.empty() && b.starts_with(prefix) ? b.substr(prefix.size()) : b);
    const auto left = bpe.token_id(a), right = bpe.token_id(b), result = bpe.token_id(merged);
    if (!left || !right || !result)
      tjson::fail(where + ".merges[" + std::to_string(rank) + "]",
                  "'" + std::string(!left ? a : !right ? b : std::string_view(merged)) + "' is not in the vocabulary");
    bpe.add_merge(*left, *right, static_cast<std::uint32_t>(rank), *result);
  }
  return bpe;
}

std::vector<AddedToken> read_added_tokens(const json& list, std::int64_t id_limit, const std::string& where) {
  std::vector<AddedToken> out;
  if (list.is_null()) return out;
  if (!list.is_array()) tjson::fail(where, "expected a list");
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string key = where + "[" + std::to_string(i) + "]";
    const auto& t = list[i];
    AddedToken a;
    a.id = tjson::id_value(tjson::field(t, "id", key), id_limit, key + ".id");
    a.content = tjson::string_field(t, "content", key);
    if (a.content.empty()) tjson::fail(key + ".content", "empty token");
    a.special = tjson::bool_field(t, "special", false, key);
    a.lstrip = tjson::bool_field(t, "lstrip", false, key);
    a.rstrip = tjson::bool_field(t, "rstrip", false, key);
    a.normalized = tjson::bool_field(t, "normalized", !a.special, key);
    a.single_word = tjson::bool_field(t, "single_word", false, key);
    out.push_back(std::move(a));
  }
  return out;
}

// The ids a post-processor puts before and after the text of a single sequence.
void read_post_processor(const json& p, const TokenizerEngine& e, std::vector<int>& prefix, std::vector<int>& suffix,
                         const std::string& where) {
  if (p.is_null()) return;
  const std::string type = tjson::type_of(p, where);
  const auto limit = static_cast<std::int64_t>(e.vocab_size());
  if (type == "Sequence") {
    const auto& list = tjson::field(p, "processors", where);
    if (!list.is_array()) tjson::fail(where + ".processors", "expected a list");
    for (std::size_t i = 0; i < list.size(); ++i)
      read_post_processor(list[i], e, prefix, suffix, where + ".processors[" + std::to_string(i) + "]");
  } else if (type == "ByteLevel") {
    // Offsets only.
  } else if (type == "TemplateProcessing") {
    const auto& single = tjson::field(p, "single", where);
    const auto& specials = tjson::field(p, "special_tokens", where);
    if (!single.is_array()) tjson::fail(where + ".single", "expected a list");
    bool after = false;
    for (std::size_t i = 0; i < single.size(); ++i) {
      const std::string key = where + ".single[" + std::to_string(i) + "]";
      const auto& item = single[i];
      if (item.is_object() && item.contains("Sequence")) {
        after = true;
      } else if (item.is_object() && item.contains("SpecialToken")) {
        const std::string name = tjson::string_field(item["SpecialToken"], "id", key + ".SpecialToken");
        const auto& ids = tjson::field(tjson::field(specials, name, where + ".special_tokens"), "ids",
                                       where + ".special_tokens[\"" + name + "\"]");
        if (!ids.is_array()) tjson::fail(where + ".special_tokens[\"" + name + "\"].ids", "expected a list");
        for (const auto& id : ids)
          (after ? suffix : prefix).push_back(tjson::id_value(id, limit, where + ".special_tokens[\"" + name + "\"].ids"));
      } else {
        tjson::fail(key, "expected {\"SpecialToken\": …} or {\"Sequence\": …}");
      }
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    for (const char* k : {"cls", "sep"}) {
      const auto& pair = tjson::field(p, k, where);
      if (!pair.is_array() || pair.size() != 2) tjson::fail(where + "." + k, "expected [token, id]");
      (std::string(k) == "cls" ? prefix : suffix).push_back(tjson::id_value(pair[1], limit, where + "." + k));
    }
  } else {
    tjson::fail(where, "post-processor type '" + type + "' is not supported");
  }
}

}  // namespace

std::shared_ptr<TokenizerEngine> read_tokenizer_json(const std::filesystem::path& file) {
  RawBpe raw;
  const json j = parse_file(file, raw);
  const std::string f = file.string();
  if (!j.is_object()) tjson::fail(f, "expected a JSON object");
  auto e = std::make_shared<TokenizerEngine>();
  e->source = file;
  e->model = read_bpe(tjson::field(j, "model", f), raw, f + ": model");
  raw = {};
  const auto id_limit = static_cast<std::int64_t>(e->model.size()) + (1 << 20);
  e->set_added_tokens(read_added_tokens(j.value("added_tokens", json()), id_limit, f + ": added_tokens"));
  e->normalizer = Normalizer::from_json(j.value("normalizer", json()), f + ": normalizer");
  e->pre_tokenizer = PreTokenizer::from_json(j.value("pre_tokenizer", json()), f + ": pre_tokenizer");
  e->decoder = TokenDecoder::from_json(j.value("decoder", json()), f + ": decoder");
  read_post_processor(j.value("post_processor", json()), *e, e->prefix, e->suffix, f + ": post_processor");
  return e;
}

}  // namespace devicemap
