#include "format/names.h"

#include <algorithm>

#include "format/container.h"
#include "platform/text.h"

namespace wc {

bool valid_record_text(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_seq_len(s, i);
    if (n == 0 || s[i] == '\0') return false;
    i += n;
  }
  return true;
}

bool valid_file_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxFilePathLen || !valid_record_text(s)) return false;
  if (s.find('\\') != std::string_view::npos) return false;
  size_t depth = 0;
  for (size_t b = 0;; ) {  // every component: 1..255 bytes, not "." or ".."
    const size_t e = std::min(s.find('/', b), s.size());
    const std::string_view c = s.substr(b, e - b);
    if (c.empty() || c == "." || c == ".." || c.size() > kMaxFileNameLen || ++depth > kMaxFilePathDepth) return false;
    if (e == s.size()) return true;
    b = e + 1;
  }
}

}  // namespace wc
