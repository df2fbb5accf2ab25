// Names in a container's records: the text rules of spec §4.1 and §4.2. A
// name read from a file reaches error messages, terminals and file systems.
#pragma once
#include <string_view>

namespace wc {

// Names of tensors and files: no NUL, valid UTF-8 (spec §4.1, §4.2).
bool valid_record_text(std::string_view s);
// A file record's name: valid text, 1..255 bytes a component, no '\\', no
// empty, "." or ".." component, at most kMaxFilePathLen bytes and
// kMaxFilePathDepth components.
bool valid_file_name(std::string_view s);

}  // namespace wc
