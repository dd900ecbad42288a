#pragma once
// What a Tokenizer is made of, whichever file it came from. Filled in by the tokenizer.json and the
// SentencePiece readers; used by tokenizer.cpp. Not part of the public API.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/added_tokens.hpp"
#include "text/bpe.hpp"
#include "text/normalizer.hpp"
#include "text/pre_tokenizer.hpp"
#include "text/token_decoder.hpp"

namespace devicemap {

struct TokenizerEngine {
  std::filesystem::path source;
  BpeModel model;
  std::unordered_map<int, AddedToken> added;  // by id; may lie beyond the model's vocabulary
  TokenIndex added_index;                      // content → id
  AddedTokenMatcher raw_matcher;               // added tokens matched in the raw text
  AddedTokenMatcher normalized_matcher;        // added tokens matched after normalization
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  TokenDecoder decoder;
  std::vector<int> prefix, suffix;  // what add_special_tokens puts around the text
  std::optional<int> bos;
  std::vector<int> eos;

  // Splits the added tokens between the two matchers.
  void set_added_tokens(const std::vector<AddedToken>& tokens);
  int vocab_size() const;
  std::optional<int> token_id(std::string_view token) const;
};

// Readers (tokenizer_json.cpp, sentencepiece_model.cpp). They do not look at the files beside.
std::shared_ptr<TokenizerEngine> read_tokenizer_json(const std::filesystem::path& file);
std::shared_ptr<TokenizerEngine> read_sentencepiece_model(const std::filesystem::path& file);

}  // namespace devicemap
