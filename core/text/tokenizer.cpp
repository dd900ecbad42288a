#include "text/tokenizer.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "text/tokenizer_engine.hpp"
#include "text/unicode.hpp"

namespace devicemap {
namespace fs = std::filesystem;
namespace {

using nlohmann::json;

std::optional<json> read_optional_json(const fs::path& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return std::nullopt;
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file.string() + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  try {
    auto j = json::parse(ss.str());
    if (!j.is_object()) throw Error(file.string() + ": expected a JSON object");
    return j;
  } catch (const json::exception& e) {
    throw Error(file.string() + ": not valid JSON (" + e.what() + ")");
  }
}

// A token named in tokenizer_config.json: "…", {"content": "…"} or null. nullopt when absent.
std::optional<std::optional<std::string>> config_token(const json& config, const char* key, const fs::path& file) {
  const auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_null()) return std::optional<std::string>{};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  throw Error(file.string() + ": " + key + ": expected a token string");
}

std::optional<bool> config_bool(const json& config, const char* key, const fs::path& file) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) throw Error(file.string() + ": " + key + ": expected true or false");
  return it->get<bool>();
}

bool is_llama_class(const json& config) {
  static constexpr std::string_view kClasses[] = {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer",
                                                  "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast"};
  const auto it = config.find("tokenizer_class");
  if (it == config.end() || !it->is_string()) return false;
  return std::find(std::begin(kClasses), std::end(kClasses), it->get<std::string>()) != std::end(kClasses);
}

// BOS/EOS from tokenizer_config.json and generation_config.json beside the tokenizer file. Transformers' Llama
// tokenizers rebuild their template from add_bos_token / add_eos_token, as SentencePiece models need.
void apply_configs(TokenizerEngine& e, bool sentencepiece) {
  const fs::path dir = e.source.parent_path();
  const fs::path config_file = dir / "tokenizer_config.json";
  const auto config = read_optional_json(config_file);
  if (!sentencepiece && e.prefix.size() == 1) e.bos = e.prefix[0];
  bool rebuild = sentencepiece;
  bool add_bos = true, add_eos = false;  // LlamaTokenizer's defaults
  if (config) {
    // -2: not named (or not in the vocabulary: keep what the model file says), -1: named null.
    auto lookup = [&](const char* key) {
      const auto name = config_token(*config, key, config_file);
      if (!name) return -2;
      if (!*name) return -1;
      return e.token_id(**name).value_or(-2);
    };
    if (const int bos = lookup("bos_token"); bos != -2) e.bos = bos >= 0 ? std::optional<int>(bos) : std::nullopt;
    if (const int eos = lookup("eos_token"); eos != -2) e.eos = eos >= 0 ? std::vector<int>{eos} : std::vector<int>{};
    rebuild = rebuild || is_llama_class(*config);
    add_bos = config_bool(*config, "add_bos_token", config_file).value_or(add_bos);
    add_eos = config_bool(*config, "add_eos_token", config_file).value_or(add_eos);
  }
  if (rebuild) {
    e.prefix.clear(), e.suffix.clear();
    if (add_bos && e.bos) e.prefix.push_back(*e.bos);
    if (add_eos && !e.eos.empty()) e.suffix.push_back(e.eos.front());
  }
  const fs::path gen_file = dir / "generation_config.json";
  if (const auto gen = read_optional_json(gen_file)) {
    const auto it = gen->find("eos_token_id");
    if (it != gen->end() && !it->is_null()) {
      const json list = it->is_array() ? *it : json::array({*it});
      for (const auto& v : list) {
        if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() >= e.vocab_size())
          throw Error(gen_file.string() + ": eos_token_id: expected token ids below " + std::to_string(e.vocab_size()));
        const int id = v.get<int>();
        if (std::find(e.eos.begin(), e.eos.end(), id) == e.eos.end()) e.eos.push_back(id);
      }
    }
  }
}

bool looks_like_json(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  char c = 0;
  while (in.get(c))
    if (!std::isspace(static_cast<unsigned char>(c))) return c == '{';
  return false;
}

const std::string* token_text(const TokenizerEngine& e, int id) {
  if (const auto it = e.added.find(id); it != e.added.end()) return &it->second.content;
  if (id >= 0 && id < e.model.size() && !e.model.token(id).empty()) return &e.model.token(id);
  return nullptr;
}

}  // namespace

void TokenizerEngine::set_added_tokens(const std::vector<AddedToken>& tokens) {
  std::vector<AddedToken> raw, normalized;
  for (const auto& t : tokens) {
    added[t.id] = t;
    added_index[t.content] = t.id;
    (t.normalized ? normalized : raw).push_back(t);
  }
  raw_matcher = AddedTokenMatcher(std::move(raw));
  normalized_matcher = AddedTokenMatcher(std::move(normalized));
}

int TokenizerEngine::vocab_size() const {
  int n = model.size();
  for (const auto& [id, t] : added) n = std::max(n, id + 1);
  return n;
}

std::optional<int> TokenizerEngine::token_id(std::string_view token) const {
  if (const auto it = added_index.find(token); it != added_index.end()) return it->second;
  return model.token_id(token);
}

Tokenizer Tokenizer::load(const fs::path& dir_or_file) {
  std::error_code ec;
  fs::path file = dir_or_file;
  if (fs::is_directory(dir_or_file, ec)) {
    if (fs::is_regular_file(dir_or_file / "tokenizer.json", ec)) file = dir_or_file / "tokenizer.json";
    else if (fs::is_regular_file(dir_or_file / "tokenizer.model", ec)) file = dir_or_file / "tokenizer.model";
    else throw Error(dir_or_file.string() + ": no tokenizer.json or tokenizer.model in this folder");
  } else if (!fs::is_regular_file(dir_or_file, ec)) {
    throw Error(dir_or_file.string() + ": no such file or folder");
  }
  const bool sentencepiece = file.extension() == ".model" || (file.extension() != ".json" && !looks_like_json(file));
  auto engine = sentencepiece ? read_sentencepiece_model(file) : read_tokenizer_json(file);
  apply_configs(*engine, sentencepiece);
  return Tokenizer(std::move(engine));
}

std::vector<int> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const auto& e = *engine_;
  std::vector<int> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special_tokens) ids = e.prefix;
  std::vector<std::string> words;
  for (const auto& piece : e.raw_matcher.split(text)) {
    if (piece.id >= 0) {
      ids.push_back(piece.id);
      continue;
    }
    const std::string normalized = e.normalizer.apply(text.substr(piece.begin, piece.end - piece.begin));
    for (const auto& sub : e.normalized_matcher.split(normalized)) {
      if (sub.id >= 0) {
        ids.push_back(sub.id);
        continue;
      }
      words.clear();
      e.pre_tokenizer.split(std::string_view(normalized).substr(sub.begin, sub.end - sub.begin),
                            piece.begin == 0 && sub.begin == 0, words);
      for (const auto& w : words) e.model.encode_word(w, ids);
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), e.suffix.begin(), e.suffix.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const int> ids, bool skip_special_tokens) const {
  StreamDecoder stream(*this, skip_special_tokens);
  std::string out;
  for (int id : ids) out += stream.push(id);
  return out + stream.flush();
}

std::optional<int> Tokenizer::bos_id() const { return engine_->bos; }
std::vector<int> Tokenizer::eos_ids() const { return engine_->eos; }
int Tokenizer::vocab_size() const { return engine_->vocab_size(); }
std::optional<int> Tokenizer::token_id(std::string_view token) const { return engine_->token_id(token); }
const fs::path& Tokenizer::source() const { return engine_->source; }

std::optional<std::string> Tokenizer::token(int id) const {
  if (const auto* t = token_text(*engine_, id)) return *t;
  return std::nullopt;
}

bool Tokenizer::is_special(int id) const {
  const auto it = engine_->added.find(id);
  return it != engine_->added.end() && it->second.special;
}

struct StreamDecoder::State {
  std::shared_ptr<const TokenizerEngine> engine;
  TokenDecoder::Stream stream;
  bool skip_special;
  std::string pending;  // decoded bytes not handed out yet
};

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : state_(std::make_unique<State>(State{tokenizer.engine_, TokenDecoder::Stream(tokenizer.engine_->decoder),
                                           skip_special_tokens, {}})) {}
StreamDecoder::StreamDecoder(StreamDecoder&&) noexcept = default;
StreamDecoder::~StreamDecoder() = default;

std::string StreamDecoder::push(int id) {
  auto& s = *state_;
  const std::string* text = token_text(*s.engine, id);
  if (!text) return {};
  if (s.skip_special) {
    const auto it = s.engine->added.find(id);
    if (it != s.engine->added.end() && it->second.special) return {};
  }
  s.stream.push(*text, s.pending);
  // Hand out whole characters only, and keep what a trailing Strip may still remove.
  const std::size_t n = std::min(unicode::complete_prefix_length(s.pending), s.pending.size() - s.stream.strippable_tail(s.pending));
  std::string out = unicode::to_valid_utf8(std::string_view(s.pending).substr(0, n));
  s.pending.erase(0, n);
  return out;
}

std::string StreamDecoder::flush() {
  auto& s = *state_;
  s.stream.finish(s.pending);
  std::string out = unicode::to_valid_utf8(s.pending);
  s.pending.clear();
  return out;
}

}  // namespace devicemap
