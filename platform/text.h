// Untrusted text: UTF-8 validation, and escaping for a terminal. Names read
// from a file reach error messages and inspect's table; escaping them keeps a
// hostile name from moving the cursor, recolouring or rewriting what the user
// sees (a name can otherwise print "OK, every checksum matches").
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace wc {

// Length of the valid UTF-8 sequence starting at s[i] (i < s.size()), or 0
// if it is invalid (bad lead byte, bad continuation, overlong, surrogate,
// above U+10FFFF, or truncated).
size_t utf8_seq_len(std::string_view s, size_t i);

// `s` with every C0 control (< 0x20), DEL, C1 control (U+0080..U+009F) and
// byte that is not valid UTF-8 written as \xNN, C1 controls, line separators
// and bidirectional overrides as \uNNNN, and '\\' doubled so an escape cannot
// be forged; other text is copied.
std::string escape_for_terminal(std::string_view s);

}  // namespace wc
