#include "lib/model_source.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <memory>

#include "platform/error.h"
#include "format/names.h"
#include "platform/file_io.h"
#include "model/safetensors.h"

namespace wc {

namespace {

std::string real_path(const std::string& p) {
  std::unique_ptr<char, decltype(&std::free)> r(::realpath(p.c_str(), nullptr), &std::free);
  if (!r) fail_file(Errc::io, p, "cannot resolve the path");
  return r.get();
}

bool inside(const std::string& root, const std::string& p) {
  return p.size() > root.size() && p.compare(0, root.size(), root) == 0 && (root == "/" || p[root.size()] == '/');
}

// Every file under `dir` (relative paths, '/'-joined), recursively.
void walk(const std::string& root_real, const std::string& dir, const std::string& rel, std::vector<SourceFile>& out) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) fail_file(Errc::io, dir, "cannot read directory");
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    const std::string path = path_join(dir, n), name = rel.empty() ? n : rel + "/" + n;
    struct stat ls, st;
    if (::lstat(path.c_str(), &ls) != 0) fail_file(Errc::io, path, "cannot stat");
    if (S_ISLNK(ls.st_mode)) {
      if (::stat(path.c_str(), &st) != 0) fail_file(Errc::usage, path, "symbolic link to nothing; not packed");
      if (!inside(root_real, real_path(path)))
        fail_file(Errc::usage, path, "symbolic link to a file outside the folder; refusing to pack it");
    } else {
      st = ls;
    }
    if (S_ISDIR(st.st_mode)) {
      if (S_ISLNK(ls.st_mode)) fail_file(Errc::usage, path, "symbolic link to a folder; not packed (would repeat files)");
      walk(root_real, path, name, out);
    } else if (S_ISREG(st.st_mode)) {
      if (!valid_file_name(name)) fail_file(Errc::usage, path, "path cannot be stored (UTF-8, at most 255 bytes a component, 32 levels)");
      out.push_back({path, name, path_ends_with(n, ".safetensors") ? FileKind::safetensors : FileKind::blob});
    } else {
      fail_file(Errc::usage, path, "not a regular file (socket, device or FIFO); not packed");
    }
  }
}

}  // namespace

std::vector<SourceFile> resolve_model_input(const std::string& in) {
  if (is_directory(in)) {
    std::vector<SourceFile> out;
    walk(real_path(in), in, "", out);
    if (out.empty()) fail_file(Errc::usage, in, "folder holds no files");
    bool any_st = false;
    for (const auto& f : out) any_st |= f.kind == FileKind::safetensors;
    if (!any_st) fail_file(Errc::usage, in, "folder holds no *.safetensors file");
    return out;
  }
  if (!path_ends_with(in, ".index.json")) return {{in, path_basename(in), FileKind::safetensors}};
  MappedFile mf(in);
  std::vector<std::string> shards;
  try {
    shards = st::parse_shard_index(mf.data(), mf.size());
  } catch (Error& e) {
    e.at_file(in);
    throw;
  }
  std::vector<SourceFile> out;
  std::string dir = path_dirname(in);
  out.push_back({in, path_basename(in), FileKind::blob});
  for (const auto& s : shards) out.push_back({path_join(dir, s), s, FileKind::safetensors});
  return out;
}

std::string default_container_name(const std::string& in) {
  if (!is_directory(in)) return in + ".wcz";
  // A folder's container goes beside it, named after it, whatever the
  // spelling ("." or "model/" included).
  const std::string r = real_path(in);
  if (r == "/") fail_file(Errc::usage, in, "cannot name a container for the root folder; use -o");
  return path_join(path_dirname(r), path_basename(r) + ".wcz");
}

}  // namespace wc
