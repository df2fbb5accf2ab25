#include "platform/text.h"

#include <cstdint>

namespace wc {

// Length of the valid UTF-8 sequence starting at s[i] (i < s.size()), or 0
// if it is invalid (bad lead byte, bad continuation, overlong, surrogate,
// above U+10FFFF, or truncated).
size_t utf8_seq_len(std::string_view s, size_t i) {
  auto b = [&](size_t k) -> unsigned { return static_cast<unsigned char>(s[k]); };
  unsigned c = b(i);
  size_t n = s.size() - i;
  if (c < 0x80) return 1;
  auto cont = [&](size_t k) { return k < n && (b(i + k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    unsigned c1 = b(i + 1);
    if (c == 0xE0 && c1 < 0xA0) return 0;  // overlong
    if (c == 0xED && c1 > 0x9F) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    unsigned c1 = b(i + 1);
    if (c == 0xF0 && c1 < 0x90) return 0;  // overlong
    if (c == 0xF4 && c1 > 0x8F) return 0;  // > U+10FFFF
    return 4;
  }
  return 0;  // 0x80..0xC1 (continuation / overlong lead), 0xF5..0xFF
}

namespace {
// U+2028/2029 (line and paragraph separators), U+202A..202E and U+2066..2069
// (bidirectional overrides and isolates, which reorder what a terminal shows):
// E2 80 A8..AE and E2 81 A6..A9 in UTF-8.
bool is_bidi_or_separator(unsigned char b1, unsigned char b2) {
  return (b1 == 0x80 && b2 >= 0xA8 && b2 <= 0xAE) || (b1 == 0x81 && b2 >= 0xA6 && b2 <= 0xA9);
}
}  // namespace

std::string escape_for_terminal(std::string_view s) {
  static const char* hex = "0123456789abcdef";
  std::string o;
  o.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t n = utf8_seq_len(s, i);
    if (n == 0 || c < 0x20 || c == 0x7F) {
      o += "\\x";
      o += hex[c >> 4];
      o += hex[c & 15];
      i += 1;
    } else if (n == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0) {  // U+0080..U+009F
      const unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      o += "\\u00";
      o += hex[c1 >> 4];
      o += hex[c1 & 15];
      i += 2;
    } else if (n == 3 && c == 0xE2 && is_bidi_or_separator(static_cast<unsigned char>(s[i + 1]),
                                                         static_cast<unsigned char>(s[i + 2]))) {
      const uint32_t cp = 0x2000u | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 6) |
                          (static_cast<unsigned char>(s[i + 2]) & 0x3Fu);
      o += "\\u";
      for (int sh = 12; sh >= 0; sh -= 4) o += hex[(cp >> sh) & 15];
      i += 3;
    } else {
      if (c == '\\') o += '\\';
      o.append(s.data() + i, n);
      i += n;
    }
  }
  return o;
}

}  // namespace wc
