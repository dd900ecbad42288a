// devicemap tokenize MODEL_DIR|tokenizer.json|tokenizer.model [--no-special] [--decode] [--jsonl]
#include <algorithm>
#include <charconv>
#include <iostream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "error.hpp"
#include "text/tokenizer.hpp"

namespace devicemap::cli {
namespace {

constexpr const char* kUsage = R"(usage: devicemap tokenize MODEL_DIR|tokenizer.json|tokenizer.model [--no-special] [--decode] [--jsonl]

Text on standard input becomes token ids on standard output, space-separated on one line (one trailing
newline of the input is not part of the text).

  --no-special  encode: add no BOS/EOS (add_special_tokens=False); decode: leave special tokens out
  --decode      the reverse: ids (separated by spaces or newlines) to text
  --jsonl       one item per line: every input line is a JSON string and every output line a JSON array of
                ids (with --decode: arrays in, strings out)
  --help        this text
)";

std::string json_string(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string ids_line(const std::vector<int>& ids, bool as_json) {
  std::string out = as_json ? "[" : "";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) out += as_json ? "," : " ";
    out += std::to_string(ids[i]);
  }
  return as_json ? out + "]" : out;
}

int checked_id(long long v, const Tokenizer& tok, const std::string& where) {
  if (v < 0 || v >= tok.vocab_size())
    throw Error(where + ": token id " + std::to_string(v) + " is outside the vocabulary (0.." +
                std::to_string(tok.vocab_size() - 1) + ")");
  return static_cast<int>(v);
}

std::vector<int> parse_ids(const std::string& text, const Tokenizer& tok) {
  std::vector<int> ids;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    long long v = 0;
    const auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), v);
    if (ec != std::errc() || end != word.data() + word.size()) throw Error("standard input: '" + word + "' is not a token id");
    ids.push_back(checked_id(v, tok, "standard input"));
  }
  return ids;
}

}  // namespace

int tokenize_command(Invocation& inv) {
  if (std::find(inv.args.begin(), inv.args.end(), "--help") != inv.args.end() ||
      std::find(inv.args.begin(), inv.args.end(), "-h") != inv.args.end()) {
    inv.out << kUsage;
    return 0;
  }
  const Args args(inv.args, {}, {"no-special", "decode", "jsonl"});
  if (args.positionals().size() != 1) {
    inv.err << "devicemap tokenize: expected one MODEL_DIR, tokenizer.json or tokenizer.model (see --help)\n";
    return 2;
  }
  const Tokenizer tok = Tokenizer::load(args.positionals()[0]);
  const bool special = !args.flag("no-special"), decode = args.flag("decode"), jsonl = args.flag("jsonl");

  if (!jsonl) {
    std::string text(std::istreambuf_iterator<char>(std::cin), {});
    if (decode) {
      inv.out << tok.decode(parse_ids(text, tok), !special) << "\n";
    } else {
      if (text.ends_with("\r\n")) text.resize(text.size() - 2);
      else if (text.ends_with("\n")) text.pop_back();
      inv.out << ids_line(tok.encode(text, special), false) << "\n";
    }
    return 0;
  }

  std::string line;
  for (std::size_t number = 1; std::getline(std::cin, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = "standard input line " + std::to_string(number);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      throw Error(where + ": not valid JSON");
    }
    if (decode) {
      if (!j.is_array()) throw Error(where + ": expected a JSON array of token ids");
      std::vector<int> ids;
      for (const auto& v : j) {
        if (!v.is_number_integer()) throw Error(where + ": expected a JSON array of token ids");
        ids.push_back(checked_id(v.get<long long>(), tok, where));
      }
      inv.out << json_string(tok.decode(ids, !special)) << "\n";
    } else {
      if (!j.is_string()) throw Error(where + ": expected a JSON string");
      inv.out << ids_line(tok.encode(j.get<std::string>(), special), true) << "\n";
    }
  }
  return 0;
}

}  // namespace devicemap::cli
