// Path text and the few stat() questions the tools ask of paths. Shared by
// the library and the command-line tool (lib/api.h exposes it), so neither
// keeps its own copy.
#pragma once
#include <string>

namespace wc {

bool path_exists(const std::string& path);   // lstat: a dangling link exists
bool is_directory(const std::string& path);  // stat: a link to a folder is one
std::string path_basename(const std::string& path);
std::string path_dirname(const std::string& path);
std::string path_join(const std::string& dir, const std::string& name);
bool path_ends_with(const std::string& s, const std::string& suffix);
// An output path that names a folder to write into: an existing folder, or a
// path ending in '/'. ("-", standard output, never does.)
bool names_folder(const std::string& out);

}  // namespace wc
