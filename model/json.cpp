#include "model/json.h"
#include "platform/text.h"

#include "format/hash.h"

#include <algorithm>
#include <cstdio>

namespace wc::json {

Value::Value() = default;
Value::~Value() = default;
Value::Value(const Value&) = default;
Value::Value(Value&&) noexcept = default;
Value& Value::operator=(const Value&) = default;
Value& Value::operator=(Value&&) noexcept = default;

const char* kind_name(Kind k) noexcept {
  switch (k) {
    case Kind::null: return "null";
    case Kind::boolean: return "boolean";
    case Kind::number: return "number";
    case Kind::string: return "string";
    case Kind::array: return "array";
    case Kind::object: return "object";
  }
  return "?";
}

const Value* Value::find(std::string_view key) const {
  if (kind != Kind::object) return nullptr;
  for (const auto& [k, v] : object)
    if (k == key) return &v;
  return nullptr;
}

namespace {


void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

class Parser {
 public:
  Parser(std::string_view s, const ParseOptions& o) : s_(s), opt_(o) {}

  // Pull access (Cursor): the members of the object at the cursor, one at a
  // time; fn(key, key_offset) must consume the member's value.
  template <class Fn>
  void members(unsigned depth, Fn&& fn) {
    skip_ws();
    if (eof() || peek() != '{') unexpected(pos_, "'{'");
    check_depth(depth + 1);
    ++pos_;
    skip_ws();
    if (!eof() && peek() == '}') { ++pos_; return; }
    for (;;) {
      skip_ws();
      if (eof() || peek() != '"') unexpected(pos_, "a string key");
      const uint64_t at = opt_.base_offset + pos_;
      std::string key = string();
      skip_ws();
      if (eof() || peek() != ':') unexpected(pos_, "':'");
      ++pos_;
      skip_ws();
      fn(std::move(key), at);
      skip_ws();
      if (eof()) unexpected(pos_, "',' or '}'");
      if (peek() == ',') { ++pos_; continue; }
      if (peek() == '}') { ++pos_; return; }
      unexpected(pos_, "',' or '}'");
    }
  }
  Value value_at(unsigned depth) {
    skip_ws();
    return value(depth);
  }
  bool null_next() {
    skip_ws();
    return !eof() && peek() == 'n';
  }
  bool object_next() {
    skip_ws();
    return !eof() && peek() == '{';
  }
  void finish() {
    skip_ws();
    if (pos_ != s_.size()) err(pos_, "trailing characters after the JSON value");
  }

  Value run() {
    skip_ws();
    Value v = value(0);
    skip_ws();
    if (pos_ != s_.size()) err(pos_, "trailing characters after the JSON value");
    return v;
  }

 private:
  std::string_view s_;
  const ParseOptions& opt_;
  size_t pos_ = 0;

  [[noreturn]] void err(size_t at, const std::string& msg) const {
    fail_at(opt_.code, opt_.base_offset + at, "JSON: " + msg);
  }
  [[noreturn]] void unexpected(size_t at, const char* expected) const {
    if (at >= s_.size()) err(at, std::string("unexpected end of input, expected ") + expected);
    unsigned char c = static_cast<unsigned char>(s_[at]);
    char buf[64];
    if (c >= 0x20 && c < 0x7F)
      std::snprintf(buf, sizeof buf, "unexpected character '%c'", c);
    else
      std::snprintf(buf, sizeof buf, "unexpected byte 0x%02X", c);
    err(at, std::string(buf) + ", expected " + expected);
  }

  bool eof() const { return pos_ >= s_.size(); }
  char peek() const { return s_[pos_]; }

  void skip_ws() {
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') ++pos_;
      else break;
    }
  }

  void expect_literal(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit) {
      // find the first differing byte for a precise offset
      size_t i = 0;
      while (pos_ + i < s_.size() && i < lit.size() && s_[pos_ + i] == lit[i]) ++i;
      unexpected(pos_ + i, "a JSON value");
    }
    pos_ += lit.size();
  }

  Value value(unsigned depth) {
    if (eof()) unexpected(pos_, "a JSON value");
    Value v;
    v.offset = opt_.base_offset + pos_;
    char c = peek();
    switch (c) {
      case '{': object(v, depth + 1); break;
      case '[': array(v, depth + 1); break;
      case '"': v.kind = Kind::string; v.str = string(); break;
      case 't': expect_literal("true"); v.kind = Kind::boolean; v.boolean = true; break;
      case 'f': expect_literal("false"); v.kind = Kind::boolean; v.boolean = false; break;
      case 'n': expect_literal("null"); v.kind = Kind::null; break;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) number(v);
        else unexpected(pos_, "a JSON value");
    }
    return v;
  }

  void check_depth(unsigned depth) {
    if (depth > opt_.max_depth)
      fail_at(Errc::limit, opt_.base_offset + pos_,
              "JSON: nesting deeper than " + std::to_string(opt_.max_depth) + " levels");
  }

  void object(Value& v, unsigned depth) {
    check_depth(depth);
    v.kind = Kind::object;
    ++pos_;  // '{'
    skip_ws();
    if (!eof() && peek() == '}') { ++pos_; return; }
    for (;;) {
      skip_ws();
      if (eof() || peek() != '"') unexpected(pos_, "a string key");
      std::string key = string();
      skip_ws();
      if (eof() || peek() != ':') unexpected(pos_, "':'");
      ++pos_;
      skip_ws();
      Value member = value(depth);
      v.object.emplace_back(std::move(key), std::move(member));
      skip_ws();
      if (eof()) unexpected(pos_, "',' or '}'");
      if (peek() == ',') { ++pos_; continue; }
      if (peek() == '}') { ++pos_; return; }
      unexpected(pos_, "',' or '}'");
    }
  }

  void array(Value& v, unsigned depth) {
    check_depth(depth);
    v.kind = Kind::array;
    ++pos_;  // '['
    skip_ws();
    if (!eof() && peek() == ']') { ++pos_; return; }
    for (;;) {
      skip_ws();
      if (v.array.size() >= opt_.max_array_len)
        fail_at(Errc::limit, opt_.base_offset + pos_,
                "JSON: array longer than " + std::to_string(opt_.max_array_len) + " elements");
      v.array.push_back(value(depth));
      skip_ws();
      if (eof()) unexpected(pos_, "',' or ']'");
      if (peek() == ',') { ++pos_; continue; }
      if (peek() == ']') { ++pos_; return; }
      unexpected(pos_, "',' or ']'");
    }
  }

  static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  uint32_t hex4(size_t at) {
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      if (at + k >= s_.size()) err(at + k, "unexpected end of input in \\u escape");
      int h = hexval(s_[at + k]);
      if (h < 0) err(at + k, "invalid hex digit in \\u escape");
      v = (v << 4) | static_cast<uint32_t>(h);
    }
    return v;
  }

  std::string string() {
    size_t start = pos_;
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (eof()) err(start, "unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') { ++pos_; return out; }
      if (c < 0x20) err(pos_, "unescaped control character in string");
      if (c == '\\') {
        size_t esc = pos_;
        ++pos_;
        if (eof()) err(start, "unterminated string");
        char e = s_[pos_++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            uint32_t cp = hex4(pos_);
            pos_ += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) err(esc, "lone low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (pos_ + 1 >= s_.size() || s_[pos_] != '\\' || s_[pos_ + 1] != 'u')
                err(esc, "high surrogate not followed by a low surrogate escape");
              uint32_t lo = hex4(pos_ + 2);
              if (lo < 0xDC00 || lo > 0xDFFF) err(pos_, "high surrogate not followed by a low surrogate");
              pos_ += 6;
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            append_utf8(out, cp);
            break;
          }
          default: err(esc, "invalid escape sequence");
        }
        continue;
      }
      if (c < 0x80) { out += static_cast<char>(c); ++pos_; continue; }
      size_t n = utf8_seq_len(s_, pos_);
      if (n == 0) err(pos_, "invalid UTF-8 in string");
      out.append(s_.data() + pos_, n);
      pos_ += n;
    }
  }

  void number(Value& v) {
    v.kind = Kind::number;
    size_t start = pos_;
    auto digit = [&]() { return !eof() && peek() >= '0' && peek() <= '9'; };
    bool neg = false, integer = true;
    if (peek() == '-') { neg = true; ++pos_; }
    if (!digit()) unexpected(pos_, "a digit");
    if (peek() == '0') {
      ++pos_;
      if (digit()) err(pos_ - 1, "leading zeros are not allowed in numbers");
    } else {
      while (digit()) ++pos_;
    }
    if (!eof() && peek() == '.') {
      integer = false;
      ++pos_;
      if (!digit()) unexpected(pos_, "a digit after '.'");
      while (digit()) ++pos_;
    }
    if (!eof() && (peek() == 'e' || peek() == 'E')) {
      integer = false;
      ++pos_;
      if (!eof() && (peek() == '+' || peek() == '-')) ++pos_;
      if (!digit()) unexpected(pos_, "a digit in the exponent");
      while (digit()) ++pos_;
    }
    v.str.assign(s_.data() + start, pos_ - start);
    if (integer && !neg) {
      uint64_t acc = 0;
      bool over = false;
      for (char c : v.str) {
        uint64_t d = static_cast<uint64_t>(c - '0');
        if (__builtin_mul_overflow(acc, uint64_t{10}, &acc) || __builtin_add_overflow(acc, d, &acc)) {
          over = true;
          break;
        }
      }
      if (over) v.u64_overflow = true;
      else v.u64 = acc;
    }
  }
};

Cursor::Cursor(std::string_view text, const ParseOptions& opt) : opt_(opt), p_(std::make_unique<Parser>(text, opt_)) {}
Cursor::~Cursor() = default;

void Cursor::members(const std::function<void(std::string&&, uint64_t)>& fn) {
  const unsigned d = depth_++;
  p_->members(d, fn);
  --depth_;
}

Value Cursor::value() { return p_->value_at(depth_); }
bool Cursor::null_next() { return p_->null_next(); }
bool Cursor::object_next() { return p_->object_next(); }
void Cursor::finish() { p_->finish(); }

Value parse(std::string_view text, const ParseOptions& opt) {
  Parser p(text, opt);
  return p.run();
}

std::optional<size_t> find_duplicate_key(const Value& object) {
  if (object.kind != Kind::object) return std::nullopt;
  std::vector<std::string_view> keys;
  keys.reserve(object.object.size());
  for (const auto& [k, v] : object.object) keys.push_back(k);
  return find_duplicate(keys);
}

std::optional<size_t> find_duplicate(const std::vector<std::string_view>& m) {
  if (m.size() < 2) return std::nullopt;
  // Sort (hash, index) pairs; only keys with equal hashes are compared.
  std::vector<std::pair<uint64_t, size_t>> h;
  h.reserve(m.size());
  for (size_t i = 0; i < m.size(); ++i) h.emplace_back(XXH3_64bits(m[i].data(), m[i].size()), i);
  std::sort(h.begin(), h.end());
  std::optional<size_t> best;
  for (size_t i = 0; i < h.size();) {
    size_t j = i + 1;
    while (j < h.size() && h[j].first == h[i].first) ++j;
    // h[i..j) share a hash, in document order; find real repeats among them
    // (sorting the group keeps crafted hash collisions from going quadratic).
    if (j - i > 1) {
      std::vector<std::pair<std::string_view, size_t>> g;
      for (size_t a = i; a < j; ++a) g.emplace_back(m[h[a].second], h[a].second);
      std::sort(g.begin(), g.end());
      for (size_t a = 1; a < g.size(); ++a)
        if (g[a].first == g[a - 1].first && (!best || g[a].second < *best)) best = g[a].second;
    }
    i = j;
  }
  return best;
}

std::optional<size_t> find_invalid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t n = utf8_seq_len(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t n = utf8_seq_len(s, i);
      if (n == 0) { out += "\\ufffd"; ++i; }
      else { out.append(s.data() + i, n); i += n; }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  return out;
}

std::string json_quote(std::string_view s) { return "\"" + json_escape(s) + "\""; }

}  // namespace wc::json
