// A small strict JSON (RFC 8259) parser for untrusted input, plus a string
// escaper for JSON output.
//
// Strictness: exactly one value with optional surrounding whitespace (space,
// tab, LF, CR); no comments, no trailing commas, no leading zeros, no NaN or
// Infinity; strings must be valid UTF-8 (no overlong forms, no encoded
// surrogates, nothing above U+10FFFF), may not hold raw control characters
// (< 0x20), and \u escapes must pair surrogates correctly. Objects keep their
// members in document order and duplicate keys are kept, so the caller can
// detect them (find_duplicate_key).
//
// Errors throw wc::Error with the code the caller picks (ParseOptions::code)
// and the absolute byte offset of the problem (ParseOptions::base_offset is
// added, so a parser over a header that starts at file byte 8 reports file
// offsets). Exceeding the nesting or array-length limit throws Errc::limit.
//
// Memory: a parsed Value costs about 112 bytes (+ key/string storage), so the
// tree can be ~20-50x the input size for dense inputs like {"a":0,"b":0,...};
// callers bound the input length (and max_array_len) accordingly.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "platform/error.h"

namespace wc::json {

enum class Kind : uint8_t { null, boolean, number, string, array, object };

const char* kind_name(Kind k) noexcept;

struct Value {
  Kind kind = Kind::null;
  bool boolean = false;
  // string: the decoded UTF-8 text; number: the literal exactly as written.
  std::string str;
  // number only: set when the literal is a non-negative integer (no sign,
  // fraction or exponent) that fits in 64 bits.
  std::optional<uint64_t> u64;
  // number only: the literal is an unsigned integer (digits only) but > UINT64_MAX.
  bool u64_overflow = false;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;  // document order
  // Absolute byte offset of the first byte of this value (base_offset included).
  uint64_t offset = 0;

  bool is_null() const { return kind == Kind::null; }
  bool is_bool() const { return kind == Kind::boolean; }
  bool is_number() const { return kind == Kind::number; }
  bool is_string() const { return kind == Kind::string; }
  bool is_array() const { return kind == Kind::array; }
  bool is_object() const { return kind == Kind::object; }

  // First member named `key`, or nullptr (objects only; nullptr otherwise).
  const Value* find(std::string_view key) const;

  // Out of line: Value holds containers of itself, an incomplete type here,
  // which clang with libstdc++ 12 refuses to instantiate inline.
  Value();
  ~Value();
  Value(const Value&);
  Value(Value&&) noexcept;
  Value& operator=(const Value&);
  Value& operator=(Value&&) noexcept;
};

struct ParseOptions {
  Errc code = Errc::bad_safetensors;  // code for syntax / encoding errors
  uint64_t base_offset = 0;           // added to every reported offset
  unsigned max_depth = 64;            // arrays+objects nested deeper -> Errc::limit
  size_t max_array_len = SIZE_MAX;    // longer arrays -> Errc::limit (bounds memory use)
};

inline constexpr unsigned kDefaultMaxDepth = 64;

// Parses exactly one JSON value spanning the whole input (whitespace allowed
// around it). Throws wc::Error on any violation.
Value parse(std::string_view text, const ParseOptions& opt = {});

class Parser;

// Pull parsing for large documents (a safetensors header of millions of
// tensors): the caller walks an object's members and takes each value as a
// small tree, or walks it in turn, so memory follows what the caller keeps,
// not the document (a whole tree costs 20-50x the text). Same strictness,
// limits and error offsets as parse().
class Cursor {
 public:
  Cursor(std::string_view text, const ParseOptions& opt);
  ~Cursor();
  // The object at the cursor: fn(key, key_offset) is called for each member,
  // in document order, and must consume its value (value() or members()).
  void members(const std::function<void(std::string&& key, uint64_t key_offset)>& fn);
  // The value at the cursor as a tree.
  Value value();
  // True when the value at the cursor is `null` / an object (not consumed).
  bool null_next();
  bool object_next();
  // Only whitespace may remain.
  void finish();

 private:
  ParseOptions opt_;
  std::unique_ptr<Parser> p_;
  unsigned depth_ = 0;
};

// Index of the first object member whose key appeared earlier in the same
// object, or nullopt when all keys are distinct. O(n log n), hashing keys.
std::optional<size_t> find_duplicate_key(const Value& object);
// The same over a list of keys: index of the first that repeats an earlier one.
std::optional<size_t> find_duplicate(const std::vector<std::string_view>& keys);

// Validates UTF-8 (same rules as the parser). Returns the offset of the first
// bad byte, or nullopt if valid.
std::optional<size_t> find_invalid_utf8(std::string_view s);

// Escapes `s` for use inside a JSON string literal (without the quotes):
// '"' '\\' and control characters are escaped (\n \t \r \b \f or \u00XX), DEL
// becomes \u007f; all other bytes are copied. Bytes that are not valid UTF-8
// are replaced by \ufffd so the output is always valid JSON.
std::string json_escape(std::string_view s);

// "\"" + json_escape(s) + "\""
std::string json_quote(std::string_view s);

}  // namespace wc::json

namespace wc {
using json::json_escape;
using json::json_quote;
}  // namespace wc
