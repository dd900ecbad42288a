// The tokenizer against the ids Hugging Face transformers produced for 83 multilingual inputs (GPT-2,
// Qwen2.5, TinyLlama), the demo SentencePiece model, streaming decoding, the split-pattern engine, NFC,
// malformed files, and the `devicemap tokenize` command.
#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "error.hpp"
#include "testkit.hpp"
#include "text/split_regex.hpp"
#include "text/tokenizer.hpp"
#include "text/unicode.hpp"

using namespace devicemap;
using testkit::contains;
using testkit::error_of;
using testkit::write_text;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

fs::path tokenizers_dir() { return testkit::data_dir() / "tokenizers"; }

// The vendored gpt2/tokenizer.json is the CodeGen flavour of GPT-2's tokenizer: the same vocabulary and merges
// plus 38 added tokens for runs of spaces and tabs. The vectors come from openai-community/gpt2, whose file
// has <|endoftext|> as its only added token; dropping the others gives exactly that file.
const fs::path& original_gpt2() {
  static testkit::TempDir dir;
  static const fs::path file = [] {
    json j = testkit::read_json(tokenizers_dir() / "gpt2" / "tokenizer.json");
    json kept = json::array();
    for (const auto& t : j["added_tokens"])
      if (t["special"].get<bool>()) kept.push_back(t);
    j["added_tokens"] = kept;
    const fs::path p = dir / "tokenizer.json";
    write_text(p, j.dump());
    return p;
  }();
  return file;
}

const Tokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    const fs::path where = name == "gpt2" ? original_gpt2() : tokenizers_dir() / name;
    it = cache.emplace(name, Tokenizer::load(where)).first;
  }
  return it->second;
}

struct VectorSet {
  const char* tokenizer;
  const char* file;
};
constexpr VectorSet kVectorSets[] = {
    {"gpt2", "gpt2_multilingual.json"},
    {"qwen2", "qwen2_5_multilingual.json"},
    {"llama2", "tinyllama_multilingual.json"},
};

std::map<std::string, std::string> input_texts() {
  std::map<std::string, std::string> texts;
  for (const auto& e : testkit::read_json(tokenizers_dir() / "vectors" / "inputs.json"))
    texts[e["id"].get<std::string>()] = e["text"].get<std::string>();
  return texts;
}

std::string stream_decode(const Tokenizer& tok, const std::vector<int>& ids, bool skip, int* held_back = nullptr) {
  StreamDecoder stream(tok, skip);
  std::string out;
  for (int id : ids) {
    const std::string piece = stream.push(id);
    if (piece != unicode::to_valid_utf8(piece)) return "ill-formed UTF-8 from push()";
    if (piece.empty() && held_back) ++*held_back;
    out += piece;
  }
  return out + stream.flush();
}

// Matches of `pattern` in `text`, joined by '|'.
std::string split_with(std::string_view pattern, std::string_view text) {
  const auto cps = unicode::code_points(text);
  std::string out;
  for (const auto& [b, e] : SplitRegex::compile(pattern).find_all(cps)) {
    if (!out.empty()) out += '|';
    out += unicode::to_utf8(std::vector<char32_t>(cps.begin() + static_cast<long>(b), cps.begin() + static_cast<long>(e)));
  }
  return out;
}

// A small tokenizer.json shaped like Llama 3's: split pattern, ByteLevel, ignore_merges, a template in a
// Sequence post-processor.
json llama3_style_tokenizer() {
  json j = json::parse(R"json({
    "added_tokens": [{"id": 9, "content": "<|begin_of_text|>", "special": true, "normalized": false}],
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": ""}, "behavior": "Isolated"},
      {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]},
    "post_processor": {"type": "Sequence", "processors": [
      {"type": "ByteLevel"},
      {"type": "TemplateProcessing",
       "single": [{"SpecialToken": {"id": "<|begin_of_text|>"}}, {"Sequence": {"id": "A"}}],
       "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [9]}}}]},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "ignore_merges": true,
      "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "\u0120": 5, "\u0120a": 6, "1": 7, "2": 8,
                "<|begin_of_text|>": 9, "12": 10, "\u0120ab": 11},
      "merges": ["a b", "\u0120 a", "1 2", "\u0120a b"]}
  })json");
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = kLlama3Pattern;
  return j;
}

std::string ids_text(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

}  // namespace

class TestTokenizer : public QObject {
  Q_OBJECT

 private Q_SLOTS:
  void vectors_data() {
    QTest::addColumn<QString>("tokenizer");
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("ids");
    QTest::addColumn<QString>("decoded_with_special");
    QTest::addColumn<QString>("decoded_skip_special");
    const auto texts = input_texts();
    QCOMPARE(texts.size(), std::size_t{83});
    for (const auto& set : kVectorSets) {
      const json v = testkit::read_json(tokenizers_dir() / "vectors" / set.file);
      QCOMPARE(v["entries"].size(), std::size_t{83});
      for (const auto& e : v["entries"]) {
        const std::string id = e["id"].get<std::string>();
        QVERIFY2(texts.count(id), id.c_str());
        QTest::newRow((std::string(set.tokenizer) + "/" + id).c_str())
            << set.tokenizer << QString::fromStdString(texts.at(id))
            << QString::fromStdString(ids_text(e["input_ids"].get<std::vector<int>>()))
            << QString::fromStdString(e["decoded_with_special"].get<std::string>())
            << QString::fromStdString(e["decoded_skip_special"].get<std::string>());
      }
    }
  }

  // Every input encodes to exactly the ids transformers gave (add_special_tokens=True) and decodes back.
  void vectors() {
    QFETCH(QString, tokenizer);
    QFETCH(QString, text);
    QFETCH(QString, ids);
    QFETCH(QString, decoded_with_special);
    QFETCH(QString, decoded_skip_special);
    const Tokenizer& tok = ::tokenizer(tokenizer.toStdString());
    const std::vector<int> got = tok.encode(text.toStdString());
    QCOMPARE(QString::fromStdString(ids_text(got)), ids);
    QCOMPARE(QString::fromStdString(tok.decode(got)), decoded_with_special);
    QCOMPARE(QString::fromStdString(tok.decode(got, true)), decoded_skip_special);
    // Streaming gives the same text, one whole character at a time.
    QCOMPARE(QString::fromStdString(stream_decode(tok, got, false)), decoded_with_special);
    QCOMPARE(QString::fromStdString(stream_decode(tok, got, true)), decoded_skip_special);
  }

  // TinyLlama's template adds BOS; without special tokens the same ids follow without it.
  void llama_without_special_tokens() {
    const Tokenizer& tok = tokenizer("llama2");
    QCOMPARE(tok.bos_id(), std::optional<int>(1));
    QCOMPARE(tok.eos_ids(), std::vector<int>{2});
    const std::string text = "Hügel über Brücke. Mañana voy a la peña con José.";
    const auto with = tok.encode(text), without = tok.encode(text, false);
    QCOMPARE(with.front(), 1);
    QCOMPARE(without, std::vector<int>(with.begin() + 1, with.end()));
    // GPT-2 and Qwen2 add nothing either way.
    QCOMPARE(tokenizer("qwen2").encode(text, false), tokenizer("qwen2").encode(text));
    QCOMPARE(tokenizer("qwen2").bos_id(), std::optional<int>());
    QCOMPARE(tokenizer("qwen2").eos_ids(), std::vector<int>{151645});  // <|im_end|>
  }

  // Special tokens written in the text are split out before BPE (ids as Hugging Face tokenizers gives them).
  void special_tokens_in_text() {
    QCOMPARE(tokenizer("qwen2").encode("<|im_start|>user\nHello<|im_end|>\n"),
             (std::vector<int>{151644, 872, 198, 9707, 151645, 198}));
    QCOMPARE(tokenizer("qwen2").encode("x<|endoftext|> y"), (std::vector<int>{87, 151643, 379}));
    QCOMPARE(tokenizer("llama2").encode("<s>Hello</s>"), (std::vector<int>{1, 1, 15043, 2}));
    QCOMPARE(tokenizer("llama2").encode("Hello <s> world"), (std::vector<int>{1, 15043, 29871, 1, 29871, 3186}));
    QCOMPARE(tokenizer("llama2").encode("  two  spaces "), (std::vector<int>{1, 259, 1023, 29871, 8162, 29871}));
    QCOMPARE(tokenizer("llama2").encode(""), std::vector<int>{1});
    QCOMPARE(tokenizer("gpt2").encode("<|endoftext|>hi"), (std::vector<int>{50256, 5303}));
    QVERIFY(tokenizer("qwen2").is_special(151644));
    QCOMPARE(tokenizer("qwen2").decode(std::vector<int>{151644, 872, 151645}, true), std::string("user"));
    QCOMPARE(tokenizer("qwen2").token_id("<|im_end|>"), std::optional<int>(151645));
    QCOMPARE(tokenizer("qwen2").vocab_size(), 151669);  // 151643 BPE tokens + 26 added tokens
  }

  // The vendored file's own added whitespace tokens (non-special, normalized) win over BPE, as in
  // Hugging Face tokenizers.
  void codegen_whitespace_tokens() {
    const Tokenizer tok = Tokenizer::load(tokenizers_dir() / "gpt2");
    QCOMPARE(tok.encode("    if n < 2:"), (std::vector<int>{50284, 361, 299, 1279, 362, 25}));
    QCOMPARE(tok.encode("\t\tfmt x"), (std::vector<int>{50294, 69, 16762, 2124}));
    const std::string runs = "hello    world         .       end";
    QCOMPARE(tok.encode(runs), (std::vector<int>{31373, 50284, 6894, 50279, 13, 50281, 437}));
    QCOMPARE(tok.decode(tok.encode(runs)), runs);
    QVERIFY(!tok.is_special(50284));
    QCOMPARE(tok.bos_id(), std::optional<int>(50256));
  }

  // Mistral-style: a Metaspace pre-tokenizer (prepend_scheme "first") instead of Llama 2's normalizer, on the
  // Llama 2 vocabulary. Only the text's first stretch gets a ▁. Ids as Hugging Face tokenizers gives them.
  void metaspace_pre_tokenizer() {
    testkit::TempDir dir;
    json j = testkit::read_json(tokenizers_dir() / "llama2" / "tokenizer.json");
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", false}};
    write_text(dir / "tokenizer.json", j.dump());
    const Tokenizer tok = Tokenizer::load(dir / "tokenizer.json");
    QCOMPARE(tok.encode("Hello <s> world"), (std::vector<int>{1, 15043, 29871, 1, 3186}));
    QCOMPARE(tok.encode("<s>Hello</s>"), (std::vector<int>{1, 1, 10994, 2}));
    QCOMPARE(tok.encode("a 🚀 b"), (std::vector<int>{1, 263, 29871, 243, 162, 157, 131, 289}));
    QCOMPARE(tok.decode(tok.encode("a 🚀 b"), true), std::string("a 🚀 b"));
  }

  // Llama 3 style: ignore_merges takes a word that is in the vocabulary whole; a Sequence post-processor
  // with a template adds <|begin_of_text|>.
  void ignore_merges() {
    testkit::TempDir dir;
    const json j = llama3_style_tokenizer();
    write_text(dir / "tokenizer.json", j.dump());
    const Tokenizer tok = Tokenizer::load(dir / "tokenizer.json");
    const std::string text = "abc ab abcab 1212 abca";
    QCOMPARE(tok.encode(text), (std::vector<int>{9, 4, 11, 5, 3, 2, 3, 5, 10, 7, 8, 5, 3, 2, 0}));
    QCOMPARE(tok.decode(tok.encode(text), true), text);
    QCOMPARE(tok.bos_id(), std::optional<int>(9));
  }

  // lstrip / rstrip swallow the whitespace beside an added token; single_word matches only outside words.
  void added_token_flags() {
    testkit::TempDir dir;
    json j = llama3_style_tokenizer();
    j["model"]["vocab"].update(json{{"<mask>", 12}, {"<r>", 13}, {"<sw>", 14}});
    j["added_tokens"].push_back({{"id", 12}, {"content", "<mask>"}, {"lstrip", true}, {"special", true}, {"normalized", false}});
    j["added_tokens"].push_back({{"id", 13}, {"content", "<r>"}, {"rstrip", true}, {"special", false}, {"normalized", false}});
    j["added_tokens"].push_back({{"id", 14}, {"content", "<sw>"}, {"single_word", true}, {"special", false}, {"normalized", true}});
    write_text(dir / "tokenizer.json", j.dump());
    const Tokenizer tok = Tokenizer::load(dir / "tokenizer.json");
    QCOMPARE(tok.encode("ab  <mask> ab<r>  ab"), (std::vector<int>{9, 3, 12, 11, 13, 3}));
    QCOMPARE(tok.encode("a<sw>b <sw> c<sw>"), (std::vector<int>{9, 0, 1, 5, 14, 5, 2}));
    QCOMPARE(tok.encode(" <mask><mask>  <r> <r>"), (std::vector<int>{9, 12, 12, 5, 5, 13, 13}));
    QCOMPARE(tok.decode(std::vector<int>{9, 3, 12, 13, 3}, true), std::string("ab<r>ab"));
  }

  void nfc_normalizer() {
    QCOMPARE(unicode::nfc("cafe\xCC\x81"), std::string("caf\xC3\xA9"));                 // e + acute → é
    QCOMPARE(unicode::nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), std::string("\xEA\xB0\x81"));  // ᄀ ᅡ ᆨ → 각
    QCOMPARE(unicode::nfc("a\xCC\x82\xCC\xA3"), std::string("\xE1\xBA\xAD"));           // a + ^ + dot below → ậ
    QCOMPARE(unicode::nfc("\xE2\x84\xAB"), std::string("\xC3\x85"));                    // Ångström sign → Å
    QCOMPARE(unicode::nfc("plain ascii"), std::string("plain ascii"));
    // Qwen2 normalizes before splitting: decomposed and composed text give the same ids.
    QCOMPARE(tokenizer("qwen2").encode("cafe\xCC\x81 na\xC3\xAFve"), tokenizer("qwen2").encode("caf\xC3\xA9 na\xC3\xAFve"));
  }

  void split_patterns() {
    DM_COMPARE_STR(split_with(kGpt2Pattern, "Hello world's  12ab\n"), std::string("Hello| world|'s| | 12|ab|\n"));
    DM_COMPARE_STR(split_with(kLlama3Pattern, "I'M 12345 ok\n\n  x"), std::string("I|'M| |123|45| ok|\n\n| | x"));
    DM_COMPARE_STR(split_with(kLlama3Pattern, "Привет,мир"), std::string("Привет|,мир"));
    DM_COMPARE_STR(split_with(R"(\d+|[a-c]+?x|.)", "12abx!"), std::string("12|abx|!"));
    DM_COMPARE_STR(split_with(R"((?:ab){1,2}c|\x{1F680})", "ababcabc🚀"), std::string("ababc|abc|🚀"));
    DM_COMPARE_STR(split_with(R"([^\S\n]+|\P{L}+)", " \t\n9 x"), std::string(" \t|\n9 "));
    // Exponential backtracking is cut off with an error instead of hanging.
    const std::string slow = error_of([] { split_with("(?:(?:a?){16}){16}b", std::string(40, 'a')); });
    QVERIFY2(contains(slow, "backtracking"), slow.c_str());
    for (const char* bad : {"(?<=a)b", "a{1,", "\\p{Greek}", "(ab)+", "[a-", "(a", "a)", "\\1"})
      QVERIFY2(contains(error_of([&] { SplitRegex::compile(bad); }), "pattern"), bad);
  }

  // resources/demo/tokenizer.model: SentencePiece BPE with byte fallback, add_bos_token in tokenizer_config.json.
  void sentencepiece_model() {
    const Tokenizer tok = Tokenizer::load(testkit::demo_dir());
    QCOMPARE(tok.source().filename().string(), std::string("tokenizer.model"));
    QCOMPARE(tok.encode("Once upon a time"), (std::vector<int>{1, 403, 407, 261, 378}));
    QCOMPARE(tok.encode("Once upon a time", false), (std::vector<int>{403, 407, 261, 378}));
    QCOMPARE(tok.decode(std::vector<int>{1, 403, 407, 261, 378}), std::string("<s> Once upon a time"));
    QCOMPARE(tok.decode(std::vector<int>{1, 403, 407, 261, 378}, true), std::string("Once upon a time"));
    QCOMPARE(tok.vocab_size(), 512);
    QCOMPARE(tok.bos_id(), std::optional<int>(1));
    QCOMPARE(tok.eos_ids(), std::vector<int>{2});
    QCOMPARE(Tokenizer::load(testkit::demo_dir() / "tokenizer.model").encode("Once upon a time"), tok.encode("Once upon a time"));
    // Characters outside the 512 pieces come back through byte fallback.
    const std::string text = "Timmy saw a 🚀 and said 你好.";
    QCOMPARE(tok.decode(tok.encode(text), true), text);
  }

  // add_bos_token / add_eos_token in tokenizer_config.json decide for SentencePiece models and, as in
  // transformers' Llama tokenizers, for a Llama tokenizer.json too.
  void config_add_bos_eos() {
    testkit::TempDir dir;
    fs::copy_file(testkit::demo_dir() / "tokenizer.model", dir / "tokenizer.model");
    write_text(dir / "tokenizer_config.json", R"({"add_bos_token": false, "add_eos_token": true})");
    QCOMPARE(Tokenizer::load(dir.path()).encode("Once upon a time"), (std::vector<int>{403, 407, 261, 378, 2}));
    fs::remove(dir / "tokenizer_config.json");  // SentencePiece without a config: BOS, as LlamaTokenizer
    QCOMPARE(Tokenizer::load(dir.path()).encode("Once upon a time"), (std::vector<int>{1, 403, 407, 261, 378}));

    testkit::TempDir llama;
    fs::copy_file(tokenizers_dir() / "llama2" / "tokenizer.json", llama / "tokenizer.json");
    json config = testkit::read_json(tokenizers_dir() / "llama2" / "tokenizer_config.json");
    config["add_eos_token"] = true;
    write_text(llama / "tokenizer_config.json", config.dump());
    QCOMPARE(Tokenizer::load(llama.path()).encode("Hello"), (std::vector<int>{1, 15043, 2}));
    QCOMPARE(Tokenizer::load(llama.path()).encode("Hello", false), (std::vector<int>{15043}));
  }

  // A character spread over byte-fallback tokens comes out of the stream only when it is whole.
  void stream_waits_for_whole_characters() {
    const Tokenizer tok = Tokenizer::load(testkit::demo_dir());
    const std::vector<int> ids = tok.encode("a 🚀 b", false);
    int byte_tokens = 0;
    for (int id : ids) byte_tokens += tok.token(id)->starts_with("<0x");
    QCOMPARE(byte_tokens, 4);
    StreamDecoder stream(tok);
    std::vector<std::string> pieces;
    for (int id : ids) pieces.push_back(stream.push(id));
    pieces.push_back(stream.flush());
    std::string joined;
    int empty = 0;
    for (const auto& p : pieces) joined += p, empty += p.empty();
    QCOMPARE(joined, std::string("a 🚀 b"));
    QCOMPARE(empty, 3 + 1);  // three bytes wait for the fourth; flush has nothing left
    QVERIFY(std::find(pieces.begin(), pieces.end(), std::string("🚀")) != pieces.end());

    // Byte-level BPE (GPT-2) splits a CJK character over two tokens: the same holds there.
    const Tokenizer& gpt2 = tokenizer("gpt2");
    const auto cjk = gpt2.encode("你好");
    QVERIFY(cjk.size() > 2);
    int held = 0;
    QCOMPARE(stream_decode(gpt2, cjk, false, &held), std::string("你好"));
    QVERIFY(held > 0);

    // A cut-off character becomes U+FFFD, in decode() as in flush().
    QCOMPARE(tok.decode(std::vector<int>(ids.begin(), ids.begin() + 3)), std::string("a \xEF\xBF\xBD"));
    QCOMPARE(stream_decode(tok, std::vector<int>(ids.begin(), ids.begin() + 3), false), std::string("a \xEF\xBF\xBD"));
  }

  void malformed_files() {
    testkit::TempDir dir;
    const json base = {
        {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}},
        {"added_tokens", json::array()}};
    const fs::path file = dir / "tokenizer.json";
    write_text(file, base.dump());
    QCOMPARE(Tokenizer::load(file).encode("abba"), (std::vector<int>{2, 1, 0}));

    auto error_for = [&](const json& j) {
      write_text(file, j.dump());
      return error_of([&] { Tokenizer::load(file); });
    };
    auto broken = [&](const char* pointer, const json& value) {
      json j = base;
      j[json::json_pointer(pointer)] = value;
      return error_for(j);
    };
    std::string e = broken("/model/merges/0", "a c");
    QVERIFY2(contains(e, file.string()) && contains(e, "model.merges[0]") && contains(e, "'c'"), e.c_str());
    e = broken("/model/vocab/b", "one");
    QVERIFY2(contains(e, "model.vocab[\"b\"]") && contains(e, "token id"), e.c_str());
    e = broken("/model/vocab/b", 0);
    QVERIFY2(contains(e, "used twice"), e.c_str());
    e = broken("/model/merges", json::object());
    QVERIFY2(contains(e, "model.merges"), e.c_str());
    e = broken("/model/type", "WordPiece");
    QVERIFY2(contains(e, "model.type") && contains(e, "WordPiece"), e.c_str());
    e = broken("/pre_tokenizer", json{{"type", "Split"}, {"pattern", {{"Regex", "(?<=x)y"}}}, {"behavior", "Isolated"}});
    QVERIFY2(contains(e, "pre_tokenizer.pattern.Regex") && contains(e, "(?<=x)y"), e.c_str());
    e = broken("/pre_tokenizer", json{{"type", "BertPreTokenizer"}});
    QVERIFY2(contains(e, "pre_tokenizer") && contains(e, "BertPreTokenizer"), e.c_str());
    e = broken("/normalizer", json{{"type", "Sequence"}, {"normalizers", {{{"type", "Lowercase"}}}}});
    QVERIFY2(contains(e, "normalizer.normalizers[0]") && contains(e, "Lowercase"), e.c_str());
    e = broken("/added_tokens", json{{{"id", 99999999}, {"content", "<x>"}}});
    QVERIFY2(contains(e, "added_tokens[0].id") && contains(e, "out of range"), e.c_str());
    e = broken("/post_processor", json{{"type", "TemplateProcessing"}, {"single", {{{"SpecialToken", {{"id", "<s>"}}}}}},
                                       {"special_tokens", json::object()}});
    QVERIFY2(contains(e, "post_processor.special_tokens") && contains(e, "<s>"), e.c_str());
    json no_vocab = base;
    no_vocab["model"].erase("vocab");
    e = error_for(no_vocab);
    QVERIFY2(contains(e, "model") && contains(e, "'vocab'"), e.c_str());

    write_text(file, "{\"model\": {\"vocab\": {\"a\": 0");
    e = error_of([&] { Tokenizer::load(file); });
    QVERIFY2(contains(e, file.string()) && contains(e, "not valid JSON"), e.c_str());

    // A broken tokenizer_config.json beside a good tokenizer.json is named too.
    write_text(file, base.dump());
    write_text(dir / "tokenizer_config.json", "{\"add_bos_token\": \"yes\"}");
    e = error_of([&] { Tokenizer::load(dir.path()); });
    QVERIFY2(contains(e, "tokenizer_config.json") && contains(e, "add_bos_token"), e.c_str());
    fs::remove(dir / "tokenizer_config.json");

    // SentencePiece models: truncated, not protobuf, wrong model type.
    std::ifstream in(testkit::demo_dir() / "tokenizer.model", std::ios::binary);
    const std::string model((std::istreambuf_iterator<char>(in)), {});
    const fs::path sp = dir / "tokenizer.model";
    for (const std::string& bytes : {model.substr(0, model.size() / 2), std::string("\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF"),
                                     std::string("\x0A\x05\x0A\x01", 4), std::string()}) {
      write_text(sp, bytes);
      e = error_of([&] { Tokenizer::load(sp); });
      QVERIFY2(contains(e, sp.string()), e.c_str());
    }
    write_text(sp, model + std::string("\x12\x02\x18\x01", 4));  // trainer_spec.model_type = UNIGRAM, appended
    e = error_of([&] { Tokenizer::load(sp); });
    QVERIFY2(contains(e, "model_type") && contains(e, "BPE"), e.c_str());

    fs::remove(file), fs::remove(sp);
    e = error_of([&] { Tokenizer::load(dir.path()); });
    QVERIFY2(contains(e, "no tokenizer.json or tokenizer.model"), e.c_str());
    e = error_of([&] { Tokenizer::load(dir / "missing.json"); });
    QVERIFY2(contains(e, "missing.json"), e.c_str());
  }

  // Long inputs go through in one piece (SentencePiece-style: the whole text is one word).
  void long_text() {
    std::string text;
    for (int i = 0; i < 2000; ++i) text += "Kühlschrankinnenbeleuchtung 你好 🚀 ";
    for (const char* name : {"gpt2", "qwen2", "llama2"}) {
      const Tokenizer& tok = tokenizer(name);
      const auto ids = tok.encode(text, false);
      QVERIFY(ids.size() > 20000);
      QCOMPARE(tok.decode(ids), text);
    }
  }

  // Text that is not UTF-8 is encoded all the same; its stray bytes decode to U+FFFD.
  void ill_formed_input() {
    const std::string bad = "ok \xFF\xC3 fin \xE4\xBD";
    for (const char* name : {"gpt2", "qwen2"}) {
      const Tokenizer& tok = tokenizer(name);
      QCOMPARE(tok.decode(tok.encode(bad)), unicode::to_valid_utf8(bad));
    }
    const std::string llama = tokenizer("llama2").decode(tokenizer("llama2").encode(bad), true);
    QCOMPARE(llama, std::string("ok \xEF\xBF\xBD\xEF\xBF\xBD fin \xEF\xBF\xBD\xEF\xBF\xBD"));  // one U+FFFD per byte token
  }

  void cli_round_trip() {
    const std::string demo = testkit::demo_dir().string();
    auto r = testkit::run_cli({"tokenize", demo}, "Once upon a time\n");
    QCOMPARE(r.code, 0);
    DM_COMPARE_STR(r.out, std::string("1 403 407 261 378\n"));
    r = testkit::run_cli({"tokenize", demo, "--no-special"}, "Once upon a time");
    DM_COMPARE_STR(r.out, std::string("403 407 261 378\n"));
    r = testkit::run_cli({"tokenize", demo, "--decode"}, "1 403 407 261 378\n");
    QCOMPARE(r.code, 0);
    DM_COMPARE_STR(r.out, std::string("<s> Once upon a time\n"));
    r = testkit::run_cli({"tokenize", demo, "--decode", "--no-special"}, "1 403\n407 261 378");
    DM_COMPARE_STR(r.out, std::string("Once upon a time\n"));

    // JSON lines through Qwen2, and back.
    const std::string qwen = (tokenizers_dir() / "qwen2" / "tokenizer.json").string();
    const std::vector<std::string> lines = {"héllo wörld", "你好,世界!", "tab\there\nnewline"};
    std::string in;
    for (const auto& l : lines) in += json(l).dump() + "\n";
    r = testkit::run_cli({"tokenize", qwen, "--jsonl"}, in);
    QCOMPARE(r.code, 0);
    std::string expected;
    for (const auto& l : lines) expected += json(tokenizer("qwen2").encode(l)).dump() + "\n";
    DM_COMPARE_STR(r.out, expected);
    r = testkit::run_cli({"tokenize", qwen, "--jsonl", "--decode"}, r.out);
    QCOMPARE(r.code, 0);
    DM_COMPARE_STR(r.out, in);

    r = testkit::run_cli({"tokenize", "--help"});
    QCOMPARE(r.code, 0);
    QVERIFY(contains(r.out, "usage: devicemap tokenize"));

    // Errors: one line on stderr, non-zero exit.
    r = testkit::run_cli({"tokenize", "/nonexistent/tokenizer.json"}, "x");
    QVERIFY(r.code != 0);
    QVERIFY2(contains(r.err, "/nonexistent/tokenizer.json") && std::count(r.err.begin(), r.err.end(), '\n') == 1, r.err.c_str());
    r = testkit::run_cli({"tokenize", qwen, "--jsonl"}, "\"ok\"\n[1, 2]\n");
    QVERIFY(r.code != 0);
    QVERIFY2(contains(r.err, "line 2") && std::count(r.err.begin(), r.err.end(), '\n') == 1, r.err.c_str());
    r = testkit::run_cli({"tokenize", demo, "--decode"}, "1 99999\n");
    QVERIFY(r.code != 0);
    QVERIFY2(contains(r.err, "99999"), r.err.c_str());
    r = testkit::run_cli({"tokenize", demo, "--bogus"}, "x");
    QVERIFY(r.code != 0);
    QVERIFY2(contains(r.err, "bogus"), r.err.c_str());
  }
};

QTEST_MAIN(TestTokenizer)
#include "test_tokenizer.moc"
