#include "lib/model_source.h"

#include <dirent.h>

#include "format/error.h"
#include "format/file_io.h"
#include "format/safetensors.h"

namespace wc {

static bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

static std::string find_index_in_dir(const std::string& dir) {
  std::vector<std::string> found;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (ends_with(n, ".safetensors.index.json")) found.push_back(n);
    }
    ::closedir(d);
  } else {
    Error e(Errc::io, "cannot read directory");
    e.at_file(dir);
    throw e;
  }
  if (found.size() != 1) {
    Error e(Errc::usage, found.empty() ? "directory holds no *.safetensors.index.json"
                                       : "directory holds more than one *.safetensors.index.json");
    e.at_file(dir);
    throw e;
  }
  return path_join(dir, found[0]);
}

std::vector<SourceFile> resolve_model_input(const std::string& in) {
  std::string index = is_directory(in) ? find_index_in_dir(in) : ends_with(in, ".index.json") ? in : "";
  if (index.empty()) return {{in, path_basename(in), FileKind::safetensors}};
  MappedFile mf(index);
  std::vector<std::string> shards;
  try {
    shards = st::parse_shard_index(mf.data(), mf.size());
  } catch (Error& e) {
    e.at_file(index);
    throw;
  }
  std::vector<SourceFile> out;
  std::string dir = path_dirname(index);
  out.push_back({index, path_basename(index), FileKind::blob});
  for (const auto& s : shards) out.push_back({path_join(dir, s), s, FileKind::safetensors});
  return out;
}

}  // namespace wc
