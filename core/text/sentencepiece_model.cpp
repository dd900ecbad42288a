#include "text/sentencepiece_model.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#include "error.hpp"
#include "text/tokenizer_engine.hpp"
#include "text/unicode.hpp"

namespace devicemap {
namespace {

// Just enough of the protobuf wire format: varints, 32-bit floats, length-delimited fields.
class ProtoReader {
 public:
  ProtoReader(std::string_view bytes, std::string where) : b_(bytes), where_(std::move(where)) {}

  bool done() const { return pos_ >= b_.size(); }

  // Next field: number and wire type.
  std::pair<std::uint32_t, int> tag() {
    const auto t = varint();
    const auto field = t >> 3;
    if (field == 0 || field > (1u << 29)) fail("bad field number");
    return {static_cast<std::uint32_t>(field), static_cast<int>(t & 7)};
  }

  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= b_.size()) fail("truncated varint");
      const auto byte = static_cast<unsigned char>(b_[pos_++]);
      v |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
      if (byte < 0x80) return v;
    }
    fail("varint longer than 10 bytes");
  }

  std::string_view bytes() {
    const auto n = varint();
    if (n > b_.size() - pos_) fail("length " + std::to_string(n) + " runs past the end");
    const auto s = b_.substr(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }

  float float32() {
    if (b_.size() - pos_ < 4) fail("truncated float");
    std::uint32_t u = 0;
    for (int i = 0; i < 4; ++i) u |= static_cast<std::uint32_t>(static_cast<unsigned char>(b_[pos_ + i])) << (8 * i);
    pos_ += 4;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }

  // An int32 field: negative values travel as 10-byte varints.
  int int32() { return static_cast<int>(static_cast<std::int32_t>(static_cast<std::uint32_t>(varint()))); }

  void skip(int wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1:
        if (b_.size() - pos_ < 8) fail("truncated fixed64");
        pos_ += 8;
        break;
      case 2: bytes(); break;
      case 5:
        if (b_.size() - pos_ < 4) fail("truncated fixed32");
        pos_ += 4;
        break;
      default: fail("unsupported wire type " + std::to_string(wire));
    }
  }

  void expect(int wire, int want, const char* field) {
    if (wire != want) fail(std::string(field) + " has wire type " + std::to_string(wire));
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(where_ + ": not a SentencePiece model (" + what + " at byte " + std::to_string(pos_) + ")");
  }

 private:
  std::string_view b_;
  std::string where_;
  std::size_t pos_ = 0;
};

SentencePieceModel::Piece read_piece(std::string_view bytes, const std::string& where) {
  ProtoReader r(bytes, where);
  SentencePieceModel::Piece p;
  while (!r.done()) {
    const auto [field, wire] = r.tag();
    if (field == 1) {
      r.expect(wire, 2, "pieces.piece");
      p.piece = std::string(r.bytes());
    } else if (field == 2) {
      r.expect(wire, 5, "pieces.score");
      p.score = r.float32();
    } else if (field == 3) {
      r.expect(wire, 0, "pieces.type");
      const auto t = r.varint();
      if (t < 1 || t > 6) r.fail("unknown piece type " + std::to_string(t));
      p.type = static_cast<SentencePieceModel::PieceType>(t);
    } else {
      r.skip(wire);
    }
  }
  return p;
}

}  // namespace

SentencePieceModel SentencePieceModel::parse(std::string_view bytes, const std::string& source) {
  SentencePieceModel m;
  ProtoReader r(bytes, source);
  while (!r.done()) {
    const auto [field, wire] = r.tag();
    if (field == 1) {
      r.expect(wire, 2, "pieces");
      m.pieces.push_back(read_piece(r.bytes(), source + ": pieces[" + std::to_string(m.pieces.size()) + "]"));
    } else if (field == 2) {
      r.expect(wire, 2, "trainer_spec");
      ProtoReader t(r.bytes(), source + ": trainer_spec");
      while (!t.done()) {
        const auto [f, w] = t.tag();
        if (f == 3 && w == 0) {
          const auto type = t.varint();
          if (type < 1 || type > 4) t.fail("unknown model_type " + std::to_string(type));
          m.model_type = static_cast<ModelType>(type);
        } else if (f == 35 && w == 0) m.byte_fallback = t.varint() != 0;
        else if (f == 40 && w == 0) m.unk_id = t.int32();
        else if (f == 41 && w == 0) m.bos_id = t.int32();
        else if (f == 42 && w == 0) m.eos_id = t.int32();
        else if (f == 43 && w == 0) m.pad_id = t.int32();
        else t.skip(w);
      }
    } else if (field == 3) {
      r.expect(wire, 2, "normalizer_spec");
      ProtoReader n(r.bytes(), source + ": normalizer_spec");
      while (!n.done()) {
        const auto [f, w] = n.tag();
        if (f == 1 && w == 2) m.normalizer_name = std::string(n.bytes());
        else if (f == 2 && w == 2) m.has_charsmap = !n.bytes().empty();
        else if (f == 3 && w == 0) m.add_dummy_prefix = n.varint() != 0;
        else if (f == 4 && w == 0) m.remove_extra_whitespaces = n.varint() != 0;
        else if (f == 5 && w == 0) m.escape_whitespaces = n.varint() != 0;
        else n.skip(w);
      }
    } else {
      r.skip(wire);
    }
  }
  if (m.pieces.empty()) throw Error(source + ": not a SentencePiece model (no pieces)");
  return m;
}

SentencePieceModel SentencePieceModel::read(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file.string() + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), file.string());
}

std::shared_ptr<TokenizerEngine> read_sentencepiece_model(const std::filesystem::path& file) {
  using Type = SentencePieceModel::PieceType;
  const auto m = SentencePieceModel::read(file);
  const std::string f = file.string();
  if (m.model_type != SentencePieceModel::ModelType::Bpe)
    throw Error(f + ": trainer_spec.model_type: only BPE SentencePiece models are supported");
  if (m.has_charsmap && m.normalizer_name != "identity")
    throw Error(f + ": normalizer_spec.name: the normalization rule '" + m.normalizer_name +
                "' is not supported; load the model's tokenizer.json instead");

  const int n = static_cast<int>(m.pieces.size());
  auto valid_id = [&](int id) { return id >= 0 && id < n; };
  std::vector<std::string> tokens;
  tokens.reserve(m.pieces.size());
  for (const auto& p : m.pieces) {
    if (p.piece.empty()) throw Error(f + ": pieces[" + std::to_string(tokens.size()) + "]: empty piece");
    tokens.push_back(p.piece);
  }
  BpeModel::Options opt;
  opt.byte_fallback = m.byte_fallback;
  opt.fuse_unk = true;
  if (valid_id(m.unk_id)) opt.unk_id = m.unk_id;

  auto e = std::make_shared<TokenizerEngine>();
  e->source = file;
  try {
    e->model = BpeModel(std::move(tokens), opt);
  } catch (const Error& err) {
    throw Error(f + ": pieces: " + err.what());
  }

  // SentencePiece merges the adjacent pair whose concatenation is the piece with the highest score, the
  // leftmost among equals: every split of a piece into two pieces is a merge ranked by that score.
  auto mergeable = [&](int id) { return m.pieces[static_cast<std::size_t>(id)].type == Type::Normal ||
                                        m.pieces[static_cast<std::size_t>(id)].type == Type::UserDefined; };
  std::vector<float> scores;
  for (const auto& p : m.pieces) scores.push_back(p.score);
  std::sort(scores.begin(), scores.end(), std::greater<>());
  scores.erase(std::unique(scores.begin(), scores.end()), scores.end());
  for (int id = 0; id < n; ++id) {
    if (!mergeable(id)) continue;
    const auto& piece = m.pieces[static_cast<std::size_t>(id)];
    const auto rank = static_cast<std::uint32_t>(
        std::lower_bound(scores.begin(), scores.end(), piece.score, std::greater<>()) - scores.begin());
    const std::string_view s = piece.piece;
    for (std::size_t cut = unicode::decode_utf8(s, 0).length; cut < s.size(); cut += unicode::decode_utf8(s, cut).length) {
      const auto left = e->model.token_id(s.substr(0, cut)), right = e->model.token_id(s.substr(cut));
      if (left && right && mergeable(*left) && mergeable(*right)) e->model.add_merge(*left, *right, rank, id);
    }
  }

  std::vector<AddedToken> added;
  for (int id = 0; id < n; ++id) {
    const auto& p = m.pieces[static_cast<std::size_t>(id)];
    if (p.type == Type::Control || p.type == Type::Unknown || p.type == Type::UserDefined) {
      AddedToken a;
      a.id = id;
      a.content = p.piece;
      a.special = p.type != Type::UserDefined;
      added.push_back(std::move(a));
    }
  }
  e->set_added_tokens(added);

  if (m.remove_extra_whitespaces) e->normalizer.add_collapse_spaces();
  if (m.add_dummy_prefix) e->normalizer.add_prepend(" ");
  if (m.escape_whitespaces) e->normalizer.add_replace(" ", "\xE2\x96\x81");
  e->decoder = TokenDecoder::sentencepiece(m.add_dummy_prefix);
  if (valid_id(m.bos_id)) e->bos = m.bos_id;
  if (valid_id(m.eos_id)) e->eos = {m.eos_id};
  return e;
}

}  // namespace devicemap
