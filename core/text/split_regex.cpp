#include "text/split_regex.hpp"

#include <limits>

#include "error.hpp"
#include "text/unicode.hpp"

namespace devicemap {
namespace {

constexpr std::size_t kUnbounded = std::numeric_limits<std::size_t>::max();
constexpr std::size_t kMaxGroupRepeat = 16;  // {n,m} on a group is unrolled; keep patterns small

std::uint32_t bit(unicode::GeneralCategory c) { return 1u << static_cast<unsigned>(c); }

std::uint32_t major_mask(char major) {
  std::uint32_t m = 0;
  for (unsigned c = 0; c <= static_cast<unsigned>(unicode::GeneralCategory::Co); ++c) {
    const auto gc = static_cast<unicode::GeneralCategory>(c);
    if (unicode::major_class(gc) == major) m |= bit(gc);
  }
  return m;
}

char32_t fold(char32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if (cp == 0x17F) return 's';  // LATIN SMALL LETTER LONG S
  if (cp == 0x212A) return 'k';  // KELVIN SIGN
  return cp;
}

}  // namespace

bool SplitRegex::CharSet::contains_slow(char32_t cp) const {
  bool hit = false;
  for (const auto& it : items) {
    bool m = false;
    switch (it.kind) {
      case Item::Kind::Range:
        m = (cp >= it.lo && cp <= it.hi) || (fold_case && fold(cp) >= it.lo && fold(cp) <= it.hi);
        break;
      case Item::Kind::Categories:
        m = (it.mask & bit(unicode::category(cp))) != 0;
        break;
      case Item::Kind::Space:
        m = unicode::is_whitespace(cp);
        break;
    }
    if (m != it.negated) {
      hit = true;
      break;
    }
  }
  return hit != negated;
}

bool SplitRegex::CharSet::contains(char32_t cp) const {
  if (cp < 128) return (ascii[cp >> 6] >> (cp & 63)) & 1;
  return contains_slow(cp);
}

void SplitRegex::CharSet::finish() {
  if (fold_case) {
    // Both cases of every ASCII letter in a literal range.
    const auto n = items.size();
    for (std::size_t i = 0; i < n; ++i) {
      if (items[i].kind != Item::Kind::Range || items[i].negated) continue;
      for (char32_t c = 'a'; c <= 'z'; ++c)
        if (c >= items[i].lo && c <= items[i].hi) items.push_back({Item::Kind::Range, false, c - 32, c - 32, 0});
    }
  }
  for (char32_t c = 0; c < 128; ++c)
    if (contains_slow(c)) ascii[c >> 6] |= std::uint64_t{1} << (c & 63);
}

class RegexParser {
 public:
  RegexParser(SplitRegex& re, std::string_view pattern) : re_(re), pattern_(pattern), p_(unicode::code_points(pattern)) {}

  void parse() {
    re_.root_ = {add_alternation(false)};
    if (i_ != p_.size()) fail("unbalanced ')'");
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("pre-tokenizer pattern '" + std::string(pattern_) + "': " + what + " at character " +
                std::to_string(i_));
  }
  bool at(char32_t c) const { return i_ < p_.size() && p_[i_] == c; }
  bool eat(char32_t c) {
    if (!at(c)) return false;
    ++i_;
    return true;
  }
  bool eat(std::u32string_view s) {
    if (p_.size() - i_ < s.size() || std::u32string_view(p_.data() + i_, s.size()) != s) return false;
    i_ += s.size();
    return true;
  }
  int add_node(SplitRegex::Node n) {
    re_.nodes_.push_back(std::move(n));
    return static_cast<int>(re_.nodes_.size()) - 1;
  }
  int add_set(SplitRegex::CharSet s) {
    s.fold_case = s.fold_case || icase_;
    s.finish();
    re_.sets_.push_back(std::move(s));
    return static_cast<int>(re_.sets_.size()) - 1;
  }
  int set_node(SplitRegex::CharSet s) {
    SplitRegex::Node n{SplitRegex::Node::Kind::Set};
    n.set = add_set(std::move(s));
    return add_node(std::move(n));
  }

  // alternatives up to ')' or the end; returns an Alt node
  int add_alternation(bool in_group) {
    const bool saved_icase = icase_;
    SplitRegex::Node alt{SplitRegex::Node::Kind::Alt};
    alt.alts.push_back(parse_sequence());
    while (eat('|')) alt.alts.push_back(parse_sequence());
    if (in_group && !eat(')')) fail("missing ')'");
    icase_ = saved_icase;
    return add_node(std::move(alt));
  }

  SplitRegex::Seq parse_sequence() {
    SplitRegex::Seq seq;
    while (i_ < p_.size() && !at('|') && !at(')')) {
      if (eat(U"(?i)")) {
        icase_ = true;
        continue;
      }
      const std::size_t atom_start = i_;
      int atom = parse_atom();
      quantify(seq, atom, atom_start);
    }
    return seq;
  }

  void quantify(SplitRegex::Seq& seq, int atom, std::size_t atom_start) {
    std::size_t min = 1, max = 1;
    if (eat('?')) {
      min = 0;
    } else if (eat('*')) {
      min = 0, max = kUnbounded;
    } else if (eat('+')) {
      max = kUnbounded;
    } else if (at('{') && i_ + 1 < p_.size() && p_[i_ + 1] >= '0' && p_[i_ + 1] <= '9') {
      ++i_;
      min = max = number();
      if (eat(',')) max = at('}') ? kUnbounded : number();
      if (!eat('}') || max < min) fail("malformed {n,m}");
    } else {
      seq.push_back(atom);
      return;
    }
    bool greedy = true;
    if (eat('?')) greedy = false;
    else if (at('+')) fail("possessive quantifiers are not supported");
    auto& node = re_.nodes_[static_cast<std::size_t>(atom)];
    if (node.kind == SplitRegex::Node::Kind::Set) {
      SplitRegex::Node rep{SplitRegex::Node::Kind::Repeat};
      rep.set = node.set, rep.min = min, rep.max = max, rep.greedy = greedy;
      seq.push_back(add_node(std::move(rep)));
      return;
    }
    if (node.kind == SplitRegex::Node::Kind::Begin || node.kind == SplitRegex::Node::Kind::End ||
        node.kind == SplitRegex::Node::Kind::Look) {
      i_ = atom_start;
      fail("quantifier on an assertion");
    }
    if (max == kUnbounded || max > kMaxGroupRepeat) {
      i_ = atom_start;
      fail("unbounded quantifier on a group");
    }
    // X{min,max} on a group: X repeated min times, then nested optionals (X(X)?)?.
    for (std::size_t k = 0; k < min; ++k) seq.push_back(atom);
    int tail = -1;
    for (std::size_t k = min; k < max; ++k) {
      SplitRegex::Node opt{SplitRegex::Node::Kind::Alt};
      SplitRegex::Seq take{atom};
      if (tail >= 0) take.push_back(tail);
      if (greedy) opt.alts = {take, {}};
      else opt.alts = {{}, take};
      tail = add_node(std::move(opt));
    }
    if (tail >= 0) seq.push_back(tail);
  }

  std::size_t number() {
    std::size_t n = 0, digits = 0;
    while (i_ < p_.size() && p_[i_] >= '0' && p_[i_] <= '9' && digits < 6) n = n * 10 + (p_[i_++] - '0'), ++digits;
    if (digits == 0) fail("expected a number");
    return n;
  }

  int parse_atom() {
    using Kind = SplitRegex::Node::Kind;
    const char32_t c = p_[i_++];
    switch (c) {
      case '(': {
        if (eat(U"?:")) return add_alternation(true);
        if (eat(U"?i:")) {
          const bool saved = icase_;
          icase_ = true;
          const int g = add_alternation(true);
          icase_ = saved;
          return g;
        }
        if (at('?') && i_ + 1 < p_.size() && (p_[i_ + 1] == '=' || p_[i_ + 1] == '!')) {
          const bool negative = p_[i_ + 1] == '!';
          i_ += 2;
          SplitRegex::Node look{Kind::Look};
          look.negative = negative;
          look.alts = {{add_alternation(true)}};
          return add_node(std::move(look));
        }
        if (at('?')) fail("unsupported group syntax");
        return add_alternation(true);
      }
      case '[':
        return set_node(parse_class());
      case '.': {
        SplitRegex::CharSet s;
        s.negated = true;
        s.items.push_back({SplitRegex::CharSet::Item::Kind::Range, false, '\n', '\n', 0});
        return set_node(std::move(s));
      }
      case '^':
        return add_node(SplitRegex::Node{Kind::Begin});
      case '$':
        return add_node(SplitRegex::Node{Kind::End});
      case '\\': {
        SplitRegex::CharSet s;
        parse_escape(s);
        return set_node(std::move(s));
      }
      case '*': case '+': case '?': case '{':
        --i_;
        fail("quantifier without anything to repeat");
      default: {
        SplitRegex::CharSet s;
        s.items.push_back({SplitRegex::CharSet::Item::Kind::Range, false, c, c, 0});
        return set_node(std::move(s));
      }
    }
  }

  SplitRegex::CharSet parse_class() {
    SplitRegex::CharSet s;
    s.negated = eat('^');
    bool first = true;
    while (true) {
      if (i_ >= p_.size()) fail("missing ']'");
      if (at(']') && !first) {
        ++i_;
        break;
      }
      first = false;
      if (at('[')) fail("nested classes are not supported");
      char32_t lo;
      if (eat('\\')) {
        const auto before = s.items.size();
        if (!parse_escape(s)) continue;  // a class escape like \s or \p{L}
        lo = s.items.back().lo;
        s.items.resize(before);
      } else {
        lo = p_[i_++];
      }
      char32_t hi = lo;
      if (at('-') && i_ + 1 < p_.size() && p_[i_ + 1] != ']') {
        ++i_;
        if (eat('\\')) {
          SplitRegex::CharSet tmp;
          if (!parse_escape(tmp)) fail("class escape as a range end");
          hi = tmp.items.back().lo;
        } else {
          hi = p_[i_++];
        }
        if (hi < lo) fail("reversed range");
      }
      s.items.push_back({SplitRegex::CharSet::Item::Kind::Range, false, lo, hi, 0});
    }
    return s;
  }

  // After a backslash: adds one item to `s`. Returns true for a single character (a Range lo == hi).
  bool parse_escape(SplitRegex::CharSet& s) {
    using Item = SplitRegex::CharSet::Item;
    if (i_ >= p_.size()) fail("pattern ends with '\\'");
    const char32_t c = p_[i_++];
    auto single = [&](char32_t v) {
      s.items.push_back({Item::Kind::Range, false, v, v, 0});
      return true;
    };
    auto cats = [&](std::uint32_t mask, bool neg) {
      s.items.push_back({Item::Kind::Categories, neg, 0, 0, mask});
      return false;
    };
    switch (c) {
      case 't': return single('\t');
      case 'n': return single('\n');
      case 'r': return single('\r');
      case 'f': return single('\f');
      case 'v': return single('\v');
      case 'a': return single('\a');
      case 'e': return single(0x1B);
      case '0': return single(0);
      case 's': case 'S':
        s.items.push_back({Item::Kind::Space, c == 'S', 0, 0, 0});
        return false;
      case 'd': case 'D':
        return cats(bit(unicode::GeneralCategory::Nd), c == 'D');
      case 'w': case 'W':
        return cats(major_mask('L') | major_mask('M') | bit(unicode::GeneralCategory::Nd) |
                        bit(unicode::GeneralCategory::Pc),
                    c == 'W');
      case 'p': case 'P':
        return cats(property(), c == 'P');
      case 'x': case 'u':
        return single(hex(c == 'x' ? 2 : 4));
      default:
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
          --i_;
          fail("unsupported escape");
        }
        return single(c);
    }
  }

  char32_t hex(std::size_t digits) {
    const bool braced = eat('{');
    char32_t v = 0;
    std::size_t n = 0;
    while (i_ < p_.size() && (braced || n < digits)) {
      const char32_t h = p_[i_];
      int d = h >= '0' && h <= '9' ? int(h - '0') : h >= 'a' && h <= 'f' ? int(h - 'a' + 10)
            : h >= 'A' && h <= 'F' ? int(h - 'A' + 10) : -1;
      if (d < 0) break;
      v = v * 16 + static_cast<char32_t>(d), ++n, ++i_;
      if (n > 6) fail("hex escape too long");
    }
    if (n == 0 || (braced && !eat('}')) || (!braced && n != digits) || v > 0x10FFFF) fail("malformed hex escape");
    return v;
  }

  std::uint32_t property() {
    std::string name;
    if (eat('{')) {
      while (i_ < p_.size() && !at('}')) name += static_cast<char>(p_[i_++] & 0x7F);
      if (!eat('}')) fail("missing '}' in \\p{...}");
    } else if (i_ < p_.size()) {
      name = static_cast<char>(p_[i_++] & 0x7F);
    }
    static constexpr std::pair<std::string_view, char> kLong[] = {
        {"Letter", 'L'}, {"Mark", 'M'}, {"Number", 'N'}, {"Punctuation", 'P'},
        {"Symbol", 'S'}, {"Separator", 'Z'}, {"Other", 'C'}};
    if (name.size() == 1) {
      if (std::uint32_t m = major_mask(name[0])) return m;
    }
    for (const auto& [n, major] : kLong)
      if (n == name) return major_mask(major);
    if (auto gc = unicode::category_from_name(name)) return bit(*gc);
    if (name == "L&" || name == "LC")
      return bit(unicode::GeneralCategory::Lu) | bit(unicode::GeneralCategory::Ll) | bit(unicode::GeneralCategory::Lt);
    fail("unsupported property \\p{" + name + "}");
  }

  SplitRegex& re_;
  std::string_view pattern_;
  std::vector<char32_t> p_;
  std::size_t i_ = 0;
  bool icase_ = false;
};

class RegexMatcher {
 public:
  RegexMatcher(const SplitRegex& re, const std::vector<char32_t>& text) : re_(re), t_(text) {}

  // End of the match starting at `pos`, or -1.
  long match_at(std::size_t pos) const {
    // Backtracking is exponential for some patterns (nested bounded repeats): a file's pattern gets a budget
    // far above what real split patterns need (a few steps per character), so that it cannot hang encoding.
    budget_ = 100000 + 64 * (t_.size() - pos);
    return match(re_.root_, 0, pos, nullptr);
  }

 private:
  struct Cont {
    const SplitRegex::Seq* seq;
    std::size_t idx;
    const Cont* next;
  };

  long match(const SplitRegex::Seq& seq, std::size_t i, std::size_t pos, const Cont* k) const {
    using Kind = SplitRegex::Node::Kind;
    if (budget_-- == 0) throw Error("pre-tokenizer pattern '" + re_.source_ + "' needs too much backtracking on this text");
    while (true) {
      if (i == seq.size()) {
        if (!k) return static_cast<long>(pos);
        return match(*k->seq, k->idx, pos, k->next);
      }
      const auto& node = re_.nodes_[static_cast<std::size_t>(seq[i])];
      switch (node.kind) {
        case Kind::Set:
          if (pos >= t_.size() || !re_.sets_[static_cast<std::size_t>(node.set)].contains(t_[pos])) return -1;
          ++pos, ++i;
          continue;
        case Kind::Begin:
          if (pos != 0) return -1;
          ++i;
          continue;
        case Kind::End:
          if (pos != t_.size()) return -1;
          ++i;
          continue;
        case Kind::Look: {
          const bool found = match(node.alts[0], 0, pos, nullptr) >= 0;
          if (found == node.negative) return -1;
          ++i;
          continue;
        }
        case Kind::Alt: {
          const Cont c{&seq, i + 1, k};
          for (const auto& alt : node.alts) {
            const long r = match(alt, 0, pos, &c);
            if (r >= 0) return r;
          }
          return -1;
        }
        case Kind::Repeat: {
          const auto& set = re_.sets_[static_cast<std::size_t>(node.set)];
          std::size_t n = 0;
          while (n < node.max && pos + n < t_.size() && set.contains(t_[pos + n])) ++n;
          if (n < node.min) return -1;
          if (node.greedy) {
            for (std::size_t c = n + 1; c-- > node.min;) {
              const long r = match(seq, i + 1, pos + c, k);
              if (r >= 0) return r;
            }
          } else {
            for (std::size_t c = node.min; c <= n; ++c) {
              const long r = match(seq, i + 1, pos + c, k);
              if (r >= 0) return r;
            }
          }
          return -1;
        }
      }
    }
  }

  const SplitRegex& re_;
  const std::vector<char32_t>& t_;
  mutable std::size_t budget_ = 0;
};

SplitRegex SplitRegex::compile(std::string_view pattern) {
  SplitRegex re;
  re.source_ = pattern;
  RegexParser(re, pattern).parse();
  return re;
}

std::vector<std::pair<std::size_t, std::size_t>> SplitRegex::find_all(const std::vector<char32_t>& text) const {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  const RegexMatcher m(*this, text);
  for (std::size_t pos = 0; pos < text.size();) {
    const long end = m.match_at(pos);
    if (end > static_cast<long>(pos)) {
      out.emplace_back(pos, static_cast<std::size_t>(end));
      pos = static_cast<std::size_t>(end);
    } else {
      ++pos;
    }
  }
  return out;
}

}  // namespace devicemap
