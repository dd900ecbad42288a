// Reads a Hugging Face tokenizer.json into a TokenizerEngine.
#include <fstream>
#include <sstream>

#include "plan/tokenizer_engine.hpp"
#include "plan/tokenizer_json_fields.hpp"

namespace devicemap {
namespace {

using nlohmann::json;

json parse_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file.string() + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    throw Error(file.string() + ": not valid JSON (" + e.what() + ")");
  }
}

std::string optional_string(const json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_string()) tjson::fail(where + "." + key, "expected a string, found " + tjson::describe(*it));
  return it->get<std::string>();
}

BpeModel read_bpe(const json& model, const std::string& where) {
  if (!model.is_object()) tjson::fail(where, "expected an object");
  if (model.contains("type") && tjson::type_of(model, where) != "BPE")
    tjson::fail(where + ".type", "model type '" + tjson::type_of(model, where) + "' is not supported (only BPE)");
  const auto& vocab = tjson::field(model, "vocab", where);
  if (!vocab.is_object()) tjson::fail(where + ".vocab", "expected an object of token: id");
  const auto limit = static_cast<std::int64_t>(vocab.size()) * 2 + 1024;  // ids are dense in practice
  std::vector<std::string> tokens;
  tokens.reserve(vocab.size());
  std::vector<bool> seen;
  for (const auto& [token, id_json] : vocab.items()) {
    const std::string key = where + ".vocab[\"" + token + "\"]";
    const auto id = static_cast<std::size_t>(tjson::id_value(id_json, limit, key));
    if (id >= tokens.size()) tokens.resize(id + 1), seen.resize(id + 1);
    if (seen[id]) tjson::fail(key, "id " + std::to_string(id) + " is used twice");
    seen[id] = true;
    tokens[id] = token;
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

  const auto& merges = tjson::field(model, "merges", where);
  if (!merges.is_array()) tjson::fail(where + ".merges", "expected a list");
  const auto& prefix = opt.continuing_subword_prefix;
  std::string merged;
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& m = merges[rank];
    const std::string key = where + ".merges[" + std::to_string(rank) + "]";
    std::string_view a, b;
    if (m.is_string()) {
      const auto& s = m.get_ref<const std::string&>();
      const auto space = s.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == s.size())
        tjson::fail(key, "expected \"left right\", found \"" + s + "\"");
      a = std::string_view(s).substr(0, space), b = std::string_view(s).substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get_ref<const std::string&>(), b = m[1].get_ref<const std::string&>();
    } else {
      tjson::fail(key, "expected \"left right\" or [left, right]");
    }
    merged.assign(a);
    merged.append(!prefix.empty() && b.starts_with(prefix) ? b.substr(prefix.size()) : b);
    const auto left = bpe.token_id(a), right = bpe.token_id(b), result = bpe.token_id(merged);
    if (!left || !right || !result)
      tjson::fail(key, "'" + std::string(!left ? a : !right ? b : std::string_view(merged)) + "' is not in the vocabulary");
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
  const json j = parse_file(file);
  const std::string f = file.string();
  if (!j.is_object()) tjson::fail(f, "expected a JSON object");
  auto e = std::make_shared<TokenizerEngine>();
  e->source = file;
  e->model = read_bpe(tjson::field(j, "model", f), f + ": model");
  const auto id_limit = static_cast<std::int64_t>(e->model.size()) + (1 << 20);
  e->set_added_tokens(read_added_tokens(j.value("added_tokens", json()), id_limit, f + ": added_tokens"));
  e->normalizer = Normalizer::from_json(j.value("normalizer", json()), f + ": normalizer");
  e->pre_tokenizer = PreTokenizer::from_json(j.value("pre_tokenizer", json()), f + ": pre_tokenizer");
  e->decoder = TokenDecoder::from_json(j.value("decoder", json()), f + ": decoder");
  read_post_processor(j.value("post_processor", json()), *e, e->prefix, e->suffix, f + ": post_processor");
  return e;
}

}  // namespace devicemap
