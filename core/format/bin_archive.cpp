#include "format/bin_archive.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_map>

#include "error.hpp"
#include "format/mapped_file.hpp"

namespace devicemap {
namespace {

// ---- the zip directory ------------------------------------------------------------------------------

struct Record {
  std::uint64_t offset = 0;  // of the data in the file
  std::uint64_t size = 0;
};

class Bytes {
 public:
  Bytes(std::span<const std::byte> b, const std::string& file) : b_(b), file_(file) {}
  std::uint64_t le(std::uint64_t at, int n) const {
    need(at, static_cast<std::uint64_t>(n));
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = v << 8 | std::to_integer<std::uint64_t>(b_[at + static_cast<std::uint64_t>(i)]);
    return v;
  }
  std::string text(std::uint64_t at, std::uint64_t n) const {
    need(at, n);
    return std::string(reinterpret_cast<const char*>(b_.data() + at), n);
  }
  void need(std::uint64_t at, std::uint64_t n) const {
    if (at > b_.size() || n > b_.size() - at) fail("the zip structure points past the end of the file");
  }
  std::uint64_t size() const { return b_.size(); }
  [[noreturn]] void fail(const std::string& what) const { throw Error(file_ + ": " + what); }

 private:
  std::span<const std::byte> b_;
  const std::string& file_;
};

std::map<std::string, Record> read_zip(const Bytes& z) {
  constexpr std::uint32_t kEnd = 0x06054b50, kEnd64 = 0x06064b50, kLocator64 = 0x07064b50;
  constexpr std::uint32_t kCentral = 0x02014b50, kLocal = 0x04034b50;
  if (z.size() < 22) z.fail("too short to be a zip archive (torch.save's format since PyTorch 1.6)");
  std::uint64_t end = z.size() - 22;
  const std::uint64_t lowest = z.size() > 22 + 65535 ? z.size() - 22 - 65535 : 0;
  while (z.le(end, 4) != kEnd) {
    if (end == lowest)
      z.fail("not a zip archive; files from torch.save before PyTorch 1.6 are not supported (re-save them)");
    --end;
  }
  std::uint64_t entries = z.le(end + 10, 2), dir_size = z.le(end + 12, 4), dir_offset = z.le(end + 16, 4);
  if (end >= 20 && z.le(end - 20, 4) == kLocator64) {
    const std::uint64_t at = z.le(end - 20 + 8, 8);
    if (z.le(at, 4) != kEnd64) z.fail("broken zip64 end record");
    entries = z.le(at + 32, 8);
    dir_size = z.le(at + 40, 8);
    dir_offset = z.le(at + 48, 8);
  }
  z.need(dir_offset, dir_size);
  std::map<std::string, Record> records;
  std::uint64_t at = dir_offset;
  for (std::uint64_t i = 0; i < entries; ++i) {
    if (z.le(at, 4) != kCentral) z.fail("broken zip central directory");
    const auto method = z.le(at + 10, 2);
    std::uint64_t csize = z.le(at + 20, 4), usize = z.le(at + 24, 4), local = z.le(at + 42, 4);
    const auto name_len = z.le(at + 28, 2), extra_len = z.le(at + 30, 2), comment_len = z.le(at + 32, 2);
    const std::string name = z.text(at + 46, name_len);
    // Zip64: the fields that overflow 32 bits follow in extra field 1, in this order.
    for (std::uint64_t e = at + 46 + name_len; e + 4 <= at + 46 + name_len + extra_len;) {
      const auto id = z.le(e, 2), len = z.le(e + 2, 2);
      if (id == 1) {
        std::uint64_t f = e + 4;
        if (usize == 0xffffffff) usize = z.le(f, 8), f += 8;
        if (csize == 0xffffffff) csize = z.le(f, 8), f += 8;
        if (local == 0xffffffff) local = z.le(f, 8);
      }
      e += 4 + len;
    }
    if (z.le(local, 4) != kLocal) z.fail("record '" + name + "' has no local header");
    const std::uint64_t data = local + 30 + z.le(local + 26, 2) + z.le(local + 28, 2);
    if (method != 0 || csize != usize)
      z.fail("record '" + name + "' is compressed; torch.save stores records uncompressed");
    z.need(data, usize);
    records[name] = {data, usize};
    at += 46 + name_len + extra_len + comment_len;
  }
  return records;
}

// ---- the pickle ---------------------------------------------------------------------------------------

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  enum class Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor };
  Kind kind = Kind::None;
  std::int64_t i = 0;
  std::string s;            // Str; Global: "module.name"; Storage: key
  DType dtype = DType::F32; // Storage, Tensor
  std::vector<ValuePtr> items;                        // Tuple, List
  std::vector<std::pair<ValuePtr, ValuePtr>> dict;    // Dict
  ValuePtr storage;                                   // Tensor
  std::vector<std::int64_t> shape, strides;           // Tensor
  int depth = 0;                                      // nesting, bounded so nothing recurses deeply
};

std::optional<DType> storage_dtype(const std::string& global) {
  static const std::map<std::string, DType> types{
      {"torch.FloatStorage", DType::F32}, {"torch.HalfStorage", DType::F16}, {"torch.BFloat16Storage", DType::BF16},
      {"torch.DoubleStorage", DType::F64}, {"torch.LongStorage", DType::I64}, {"torch.IntStorage", DType::I32},
      {"torch.ShortStorage", DType::I16}, {"torch.CharStorage", DType::I8},   {"torch.ByteStorage", DType::U8},
      {"torch.BoolStorage", DType::Bool}};
  const auto it = types.find(global);
  return it == types.end() ? std::nullopt : std::optional<DType>(it->second);
}

bool allowed_global(const std::string& g) {
  return g == "collections.OrderedDict" || g == "torch._utils._rebuild_tensor_v2" || g == "torch._utils._rebuild_tensor" ||
         g == "torch._utils._rebuild_parameter" || g == "torch._utils._rebuild_parameter_with_state" ||
         g == "torch.jit._pickle.restore_type_tag" || storage_dtype(g).has_value();
}

class Unpickler {
 public:
  Unpickler(std::span<const std::byte> data, const std::string& where) : d_(data), where_(where) {}

  ValuePtr run() {
    for (;;) {
      const auto op = static_cast<unsigned char>(byte());
      switch (op) {
        case 0x80: byte(); break;                                 // PROTO
        case 0x95: take(8); break;                                // FRAME
        case 'c': {                                               // GLOBAL
          std::string module = line(), name = line();
          push(global(module + "." + name));
          break;
        }
        case 0x93: {                                              // STACK_GLOBAL
          auto name = pop(), module = pop();
          if (name->kind != Value::Kind::Str || module->kind != Value::Kind::Str) fail("malformed STACK_GLOBAL");
          push(global(module->s + "." + name->s));
          break;
        }
        case 'q': memo_[uint(1)] = top(); break;                  // BINPUT
        case 'r': memo_[uint(4)] = top(); break;                  // LONG_BINPUT
        case 0x94: memo_[static_cast<std::uint64_t>(memo_.size())] = top(); break;  // MEMOIZE
        case 'h': push(get(uint(1))); break;                      // BINGET
        case 'j': push(get(uint(4))); break;                      // LONG_BINGET
        case '(': marks_.push_back(stack_.size()); break;         // MARK
        case ')': push(make(Value::Kind::Tuple)); break;          // EMPTY_TUPLE
        case 't': push(sequence(Value::Kind::Tuple, to_mark())); break;
        case 0x85: push(sequence(Value::Kind::Tuple, pop_n(1))); break;
        case 0x86: push(sequence(Value::Kind::Tuple, pop_n(2))); break;
        case 0x87: push(sequence(Value::Kind::Tuple, pop_n(3))); break;
        case ']': push(make(Value::Kind::List)); break;           // EMPTY_LIST
        case 'l': push(sequence(Value::Kind::List, to_mark())); break;
        case 'a': {                                               // APPEND
          auto item = pop_n(1);
          append(top(), std::move(item));
          break;
        }
        case 'e': {                                               // APPENDS
          auto items = to_mark();
          append(top(), std::move(items));
          break;
        }
        case '}': push(make(Value::Kind::Dict)); break;           // EMPTY_DICT
        case 'd': {                                               // DICT
          auto items = to_mark();
          push(make(Value::Kind::Dict));
          set_items(top(), items);
          break;
        }
        case 's': {                                               // SETITEM
          auto pair = pop_n(2);
          set_items(top(), pair);
          break;
        }
        case 'u': {                                               // SETITEMS
          auto items = to_mark();
          set_items(top(), items);
          break;
        }
        case 'N': push(make(Value::Kind::None)); break;
        case 0x88: push(integer(1, Value::Kind::Bool)); break;
        case 0x89: push(integer(0, Value::Kind::Bool)); break;
        case 'J': push(integer(static_cast<std::int32_t>(uint(4)))); break;
        case 'K': push(integer(static_cast<std::int64_t>(uint(1)))); break;
        case 'M': push(integer(static_cast<std::int64_t>(uint(2)))); break;
        case 0x8a: push(integer(long1())); break;                 // LONG1
        case 'G':                                                 // BINFLOAT (value unused)
          take(8);
          push(make(Value::Kind::Float));
          break;
        case 'X': push(string(uint(4))); break;                   // BINUNICODE
        case 0x8c: push(string(uint(1))); break;                  // SHORT_BINUNICODE
        case 0x8d: push(string(uint(8))); break;                  // BINUNICODE8
        case 'U': case 'C': push(string(uint(1))); break;         // SHORT_BINSTRING, SHORT_BINBYTES
        case 'T': case 'B': push(string(uint(4))); break;         // BINSTRING, BINBYTES
        case 'Q': push(persistent(pop())); break;                 // BINPERSID
        case 'R': {                                               // REDUCE
          auto args = pop(), callable = pop();
          push(reduce(callable, args));
          break;
        }
        case 'b': pop(); break;                                   // BUILD: state (e.g. _metadata) is not needed
        case '.': return pop();                                   // STOP
        default: fail("unsupported pickle opcode 0x" + hex(op) + " (not a plain state dict)");
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(where_ + ": " + what + " at byte " + std::to_string(pos_));
  }
  static std::string hex(unsigned v) {
    const char* digits = "0123456789abcdef";
    return {digits[(v >> 4) & 15], digits[v & 15]};
  }
  std::span<const std::byte> take(std::uint64_t n) {
    if (n > d_.size() - pos_) fail("the pickle ends early");
    auto s = d_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  std::byte byte() { return take(1)[0]; }
  std::uint64_t uint(int n) {
    const auto b = take(static_cast<std::uint64_t>(n));
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = v << 8 | std::to_integer<std::uint64_t>(b[static_cast<std::size_t>(i)]);
    return v;
  }
  std::int64_t long1() {
    const auto n = static_cast<int>(uint(1));
    if (n > 8) fail("integer too large");
    if (n == 0) return 0;
    std::uint64_t v = uint(n);
    if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~std::uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<std::int64_t>(v);
  }
  std::string line() {
    std::string s;
    for (;;) {
      const char c = static_cast<char>(byte());
      if (c == '\n') return s;
      if (s.size() > 256) fail("global name too long");
      s += c;
    }
  }

  ValuePtr make(Value::Kind k) {
    auto v = std::make_shared<Value>();
    v->kind = k;
    return v;
  }
  ValuePtr integer(std::int64_t i, Value::Kind k = Value::Kind::Int) {
    auto v = make(k);
    v->i = i;
    return v;
  }
  ValuePtr string(std::uint64_t n) {
    auto v = make(Value::Kind::Str);
    const auto b = take(n);
    v->s.assign(reinterpret_cast<const char*>(b.data()), b.size());
    return v;
  }
  ValuePtr global(const std::string& name) {
    if (!allowed_global(name))
      fail("the pickle names '" + name + "', which a state dict never needs; refusing to load it");
    auto v = make(Value::Kind::Global);
    v->s = name;
    return v;
  }
  void push(ValuePtr v) { stack_.push_back(std::move(v)); }
  ValuePtr pop() {
    if (stack_.empty()) fail("pickle stack underflow");
    auto v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  ValuePtr top() const {
    if (stack_.empty()) fail("pickle stack underflow");
    return stack_.back();
  }
  std::vector<ValuePtr> pop_n(std::size_t n) {
    if (stack_.size() < n) fail("pickle stack underflow");
    std::vector<ValuePtr> out(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    stack_.resize(stack_.size() - n);
    return out;
  }
  std::vector<ValuePtr> to_mark() {
    if (marks_.empty()) fail("no MARK before a collection");
    const std::size_t mark = marks_.back();
    marks_.pop_back();
    if (mark > stack_.size()) fail("broken MARK");
    return pop_n(stack_.size() - mark);
  }
  ValuePtr get(std::uint64_t key) const {
    const auto it = memo_.find(key);
    if (it == memo_.end()) fail("memo key " + std::to_string(key) + " is unset");
    return it->second;
  }
  void nest(Value& parent, const ValuePtr& child) {
    if (child.get() == &parent) fail("a value that contains itself");
    parent.depth = std::max(parent.depth, child->depth + 1);
    if (parent.depth > 32) fail("values nested too deeply for a state dict");
  }
  ValuePtr sequence(Value::Kind k, std::vector<ValuePtr> items) {
    auto v = make(k);
    for (const auto& i : items) nest(*v, i);
    v->items = std::move(items);
    return v;
  }
  void append(const ValuePtr& list, std::vector<ValuePtr> items) {
    if (list->kind != Value::Kind::List) fail("APPEND to something that is not a list");
    for (auto& i : items) nest(*list, i), list->items.push_back(std::move(i));
  }
  void set_items(const ValuePtr& dict, const std::vector<ValuePtr>& items) {
    if (dict->kind != Value::Kind::Dict || items.size() % 2) fail("SETITEMS on something that is not a dict");
    for (std::size_t i = 0; i < items.size(); i += 2) {
      nest(*dict, items[i]), nest(*dict, items[i + 1]);
      dict->dict.emplace_back(items[i], items[i + 1]);
    }
  }

  static bool is_int_tuple(const ValuePtr& v) {
    return v->kind == Value::Kind::Tuple &&
           std::all_of(v->items.begin(), v->items.end(), [](const ValuePtr& e) { return e->kind == Value::Kind::Int; });
  }

  // torch.save's persistent id of a storage: ("storage", torch.XStorage, key, location, numel).
  ValuePtr persistent(const ValuePtr& pid) {
    const auto& t = pid->items;
    if (pid->kind != Value::Kind::Tuple || t.size() != 5 || t[0]->kind != Value::Kind::Str || t[0]->s != "storage" ||
        t[1]->kind != Value::Kind::Global || !storage_dtype(t[1]->s) || t[2]->kind != Value::Kind::Str ||
        t[4]->kind != Value::Kind::Int || t[4]->i < 0)
      fail("persistent id is not a storage reference");
    auto v = make(Value::Kind::Storage);
    v->s = t[2]->s;
    v->dtype = *storage_dtype(t[1]->s);
    v->i = t[4]->i;
    return v;
  }

  ValuePtr reduce(const ValuePtr& callable, const ValuePtr& args) {
    if (callable->kind != Value::Kind::Global || args->kind != Value::Kind::Tuple) fail("malformed REDUCE");
    const auto& a = args->items;
    const std::string& f = callable->s;
    if (f == "collections.OrderedDict") return make(Value::Kind::Dict);
    // LibTorch's torch::pickle_save tags typed containers: restore_type_tag(value, "Dict[str, Tensor]").
    if (f == "torch.jit._pickle.restore_type_tag") {
      if (a.empty()) fail("restore_type_tag without a value");
      return a[0];
    }
    if (f == "torch._utils._rebuild_parameter" || f == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || a[0]->kind != Value::Kind::Tensor) fail("parameter without a tensor");
      return a[0];
    }
    if (f == "torch._utils._rebuild_tensor_v2" || f == "torch._utils._rebuild_tensor") {
      if (a.size() < 4 || a[0]->kind != Value::Kind::Storage || a[1]->kind != Value::Kind::Int || !is_int_tuple(a[2]) ||
          !is_int_tuple(a[3]) || a[2]->items.size() != a[3]->items.size())
        fail("malformed tensor");
      auto v = make(Value::Kind::Tensor);
      v->storage = a[0];
      v->dtype = a[0]->dtype;
      v->i = a[1]->i;  // storage offset, in elements
      for (const auto& e : a[2]->items) v->shape.push_back(e->i);
      for (const auto& e : a[3]->items) v->strides.push_back(e->i);
      return v;
    }
    fail("cannot call '" + f + "'");
  }

  std::span<const std::byte> d_;
  std::string where_;
  std::uint64_t pos_ = 0;
  std::vector<ValuePtr> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, ValuePtr> memo_;
};

std::uint64_t element_bytes(DType d) { return d == DType::Bool ? 1 : static_cast<std::uint64_t>(dtype_bits(d) / 8); }

// Places a tensor inside its storage record: offset and every stride within the record's bytes.
BinTensor place(const std::string& name, const Value& t, const Record& record, const std::string& file) {
  BinTensor b{name, t.dtype, t.shape, t.strides, t.storage->s, 0, 0};
  const std::string where = file + ": tensor '" + name + "'";
  const std::uint64_t elem = element_bytes(t.dtype);
  const std::uint64_t available = record.size / elem;  // elements the record holds
  if (static_cast<std::uint64_t>(t.storage->i) > available)
    throw Error(where + ": its storage claims " + std::to_string(t.storage->i) + " elements but holds " +
                std::to_string(available));
  if (t.i < 0) throw Error(where + ": negative storage offset");
  bool empty = false;
  std::uint64_t last = static_cast<std::uint64_t>(t.i);  // index of the last element
  for (std::size_t d = 0; d < t.shape.size(); ++d) {
    if (t.shape[d] < 0 || t.strides[d] < 0) throw Error(where + ": negative size or stride");
    if (t.shape[d] == 0) empty = true;
    std::uint64_t reach = 0;
    if (t.shape[d] > 0 && (__builtin_mul_overflow(static_cast<std::uint64_t>(t.shape[d] - 1),
                                                  static_cast<std::uint64_t>(t.strides[d]), &reach) ||
                           __builtin_add_overflow(last, reach, &last)))
      throw Error(where + ": shape and strides overflow");
  }
  b.data_offset = record.offset + static_cast<std::uint64_t>(t.i) * elem;
  if (empty) return b;
  if (last >= static_cast<std::uint64_t>(t.storage->i))
    throw Error(where + ": reaches element " + std::to_string(last) + " of a storage of " + std::to_string(t.storage->i));
  b.span_bytes = (last - static_cast<std::uint64_t>(t.i) + 1) * elem;
  return b;
}

}  // namespace

BinArchive BinArchive::open(const std::filesystem::path& path) {
  BinArchive a;
  a.path_ = path;
  a.file_ = std::make_shared<const MappedFile>(path);
  const std::string file = path.string();
  const Bytes z(a.file_->bytes(), file);
  const auto records = read_zip(z);

  const auto pickle = std::find_if(records.begin(), records.end(), [](const auto& r) {
    const auto& n = r.first;
    return n.size() > 9 && n.compare(n.size() - 9, 9, "/data.pkl") == 0 && n.find('/') == n.size() - 9;
  });
  if (pickle == records.end()) throw Error(file + ": no PREFIX/data.pkl record; not a torch.save archive");
  const std::string prefix = pickle->first.substr(0, pickle->first.size() - 8);  // "archive/"
  if (const auto order = records.find(prefix + "byteorder"); order != records.end() &&
      z.text(order->second.offset, order->second.size) != "little")
    throw Error(file + ": saved on a big-endian machine; only little-endian archives are supported");

  Unpickler unpickler(a.file_->bytes().subspan(pickle->second.offset, pickle->second.size), file);
  const ValuePtr root = unpickler.run();
  if (root->kind != Value::Kind::Dict) throw Error(file + ": the pickle holds no state dict");
  for (const auto& [key, value] : root->dict) {
    if (key->kind != Value::Kind::Str || value->kind != Value::Kind::Tensor) continue;  // not a tensor entry
    const auto record = records.find(prefix + "data/" + value->storage->s);
    if (record == records.end())
      throw Error(file + ": tensor '" + key->s + "' needs storage record '" + prefix + "data/" + value->storage->s +
                  "', which is missing");
    a.tensors_.push_back(place(key->s, *value, record->second, file));
  }
  return a;
}

const BinTensor* BinArchive::find(std::string_view name) const {
  const auto it = std::find_if(tensors_.begin(), tensors_.end(), [&](const BinTensor& t) { return t.name == name; });
  return it == tensors_.end() ? nullptr : &*it;
}

std::span<const std::byte> BinArchive::bytes(const BinTensor& t) const {
  return file_->bytes().subspan(t.data_offset, t.span_bytes);
}

}  // namespace devicemap
