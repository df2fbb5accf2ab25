// What `pack` reads: one safetensors file, or a sharded model (the shards
// listed by a *.safetensors.index.json, plus that index file itself).
#pragma once
#include <string>
#include <vector>

#include "format/container.h"

namespace wc {

struct SourceFile {
  std::string path;  // where to read it
  std::string name;  // name stored in the container (base name)
  FileKind kind;
};

std::vector<SourceFile> resolve_model_input(const std::string& in);

}  // namespace wc
