#pragma once
// SentencePiece's tokenizer.model, read by hand: it is a protobuf ModelProto, of which the tokenizer needs
// the pieces (piece, score, type), trainer_spec (model_type, byte_fallback, unk/bos/eos ids) and
// normalizer_spec (name, add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces).
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace devicemap {

struct SentencePieceModel {
  enum class PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };
  struct Piece {
    std::string piece;
    float score = 0;
    PieceType type = PieceType::Normal;
  };
  enum class ModelType { Unigram = 1, Bpe = 2, Word = 3, Char = 4 };

  std::vector<Piece> pieces;
  ModelType model_type = ModelType::Unigram;
  bool byte_fallback = false;
  int unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string normalizer_name;
  bool has_charsmap = false;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;

  // Throws devicemap::Error naming `source` and the field when the bytes are not a well-formed ModelProto.
  static SentencePieceModel parse(std::string_view bytes, const std::string& source);
  static SentencePieceModel read(const std::filesystem::path& file);
};

}  // namespace devicemap
