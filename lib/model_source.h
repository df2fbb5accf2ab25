// What `pack` reads: one safetensors file; a sharded model (the shards listed
// by a *.safetensors.index.json, plus that index file itself); or a model
// folder as it comes from a hub: every file under it, safetensors files as
// such and everything else (configs, tokenizers, indexes, READMEs) as blobs,
// with subfolders (diffusers: unet/, vae/, text_encoder/ ...) as relative
// paths.
#pragma once
#include <string>
#include <vector>

#include "format/container.h"

namespace wc {

struct SourceFile {
  std::string path;  // where to read it
  std::string name;  // name stored in the container: a base name, or a path relative to the folder
  FileKind kind;
};

// Folder rules: files are taken in byte order of their relative paths (so a
// container does not depend on the order a file system lists them); empty
// folders are not stored; a symbolic link is stored as the file it points to
// when that file lies inside the folder, and refused otherwise (a container
// must not carry files from outside what the user named); sockets, devices
// and FIFOs are refused. Errors name the offending path.
std::vector<SourceFile> resolve_model_input(const std::string& in);

// The default container name for `in`: "model.safetensors.wcz" beside a file;
// "NAME.wcz" beside a folder NAME (also for ".", "..", "dir/").
std::string default_container_name(const std::string& in);

}  // namespace wc
