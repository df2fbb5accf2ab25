// Model folders as a hub has them: every file packs (safetensors as tensors,
// configs, tokenizers, READMEs and shard indexes as blobs), subfolders as
// relative paths, and unpack restores the folder byte for byte.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "platform/file_io.h"
#include "format/reader.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"
#include "lib/api.h"
#include "st_builder.h"
#include "test_util.h"

namespace {

using tu::q;

void put(const std::string& path, const std::string& text) {
  tu::write_file(path, std::vector<uint8_t>(text.begin(), text.end()));
}

std::vector<uint8_t> model(uint64_t seed) {
  return stb::build({{"w", wc::DType::BF16, {16, 8}, stb::pattern_bytes(256, seed)},
                     {"b", wc::DType::F32, {8}, stb::pattern_bytes(32, seed + 1)}});
}

// A diffusers-style folder: configs, tokenizer files and a README at the top,
// unet/ and vae/ with their own safetensors and configs, a sharded
// text_encoder/ with its index.
const std::vector<std::string> kFiles = {
    "README.md", "config.json", "model_index.json", "tokenizer.json", "tokenizer_config.json",
    "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors", "text_encoder/config.json",
    "text_encoder/model.safetensors.index.json", "text_encoder/model-00001-of-00002.safetensors",
    "text_encoder/model-00002-of-00002.safetensors", "generation_config.json"};

void make_hub_folder(const std::string& d) {
  for (std::string sub : {"unet", "vae", "text_encoder"}) ::mkdir((d + "/" + sub).c_str(), 0755);
  put(d + "/README.md", "# a model\n\nweights and configs\n");
  put(d + "/config.json", "{\"architectures\": [\"X\"]}\n");
  put(d + "/model_index.json", "{\"_class_name\": \"Pipeline\"}\n");
  put(d + "/tokenizer.json", std::string(3000, 'x') + "\n");
  put(d + "/tokenizer_config.json", "{\"chat_template\": \"{{ messages }}\"}\n");
  put(d + "/generation_config.json", "{}\n");
  put(d + "/unet/config.json", "{\"sample_size\": 64}\n");
  put(d + "/vae/config.json", "{\"latent_channels\": 4}\n");
  put(d + "/text_encoder/config.json", "{\"hidden_size\": 8}\n");
  tu::write_file(d + "/unet/diffusion_pytorch_model.safetensors", model(1));
  tu::write_file(d + "/vae/diffusion_pytorch_model.safetensors", model(3));
  tu::write_file(d + "/text_encoder/model-00001-of-00002.safetensors",
                 stb::build({{"w", wc::DType::BF16, {16, 8}, stb::pattern_bytes(256, 5)}}));
  tu::write_file(d + "/text_encoder/model-00002-of-00002.safetensors",
                 stb::build({{"b", wc::DType::F32, {8}, stb::pattern_bytes(32, 6)}}));
  put(d + "/text_encoder/model.safetensors.index.json",
      "{\"metadata\": {}, \"weight_map\": {\"w\": \"model-00001-of-00002.safetensors\", \"b\": "
      "\"model-00002-of-00002.safetensors\"}}\n");
}

}  // namespace

TEST_SUITE("folders") {

TEST_CASE("a hub-style folder packs and unpacks byte for byte, configs and subfolders included") {
  tu::TempDir t;
  const std::string src = t / "model";
  ::mkdir(src.c_str(), 0755);
  make_hub_folder(src);
  // `pack .` from inside the folder: the container goes beside it, named after it
  // (tensors and configs this small lie in the manifest, 1.4, unless told not to)
  auto r = tu::run("cd " + q(src) + " && " + tu::cli() + " pack . --inline never");
  REQUIRE(r.status == 0);
  const std::string wcz = t / "model.wcz";
  REQUIRE(wc::path_exists(wcz));
  CHECK_FALSE(wc::path_exists(src + "/..wcz"));
  CHECK(wc::ContainerReader(wcz, wc::kReaderChecks).header().minor == 1);  // names with '/'
  r = tu::run("cd " + q(src) + " && " + tu::cli() + " pack -f .");
  REQUIRE(r.status == 0);
  wc::ContainerReader c(wcz, wc::kReaderChecks);
  CHECK(c.header().minor == 4);  // names with '/' and inline tensors
  CHECK(c.manifest().files.size() == kFiles.size());
  r = tu::run(tu::cli() + " unpack " + q(wcz) + " -o " + q(t / "back"));
  REQUIRE(r.status == 0);
  for (const auto& f : kFiles) {
    CAPTURE(f);
    CHECK(tu::read_file(t / ("back/" + f)) == tu::read_file(src + "/" + f));
  }
  r = tu::run(tu::cli() + " verify " + q(wcz) + " --against " + q(src));
  CHECK(r.status == 0);
  CHECK(r.out.find("identical") != std::string::npos);
  // inspect lists every file, its kind and its folder
  r = tu::run(tu::cli() + " inspect " + q(wcz));
  CHECK(r.out.find("file unet/config.json: blob") != std::string::npos);
  CHECK(r.out.find("file text_encoder/model-00002-of-00002.safetensors: safetensors") != std::string::npos);
}

TEST_CASE("a flat folder (model.safetensors and config.json, no index) stays a 1.0 container") {
  tu::TempDir t;
  const std::string src = t / "m";
  ::mkdir(src.c_str(), 0755);
  tu::write_file(src + "/model.safetensors", model(9));
  put(src + "/config.json", "{\"a\": 1}\n");
  wc::PackOptions po;
  po.inline_small = "never";
  wc::pack(src, t / "m.wcz", po);
  wc::ContainerReader c(t / "m.wcz", wc::kReaderChecks);
  CHECK(c.header().minor == 0);
  CHECK(c.manifest().files.size() == 2);
  wc::unpack(t / "m.wcz", t / "out", {});
  CHECK(tu::read_file(t / "out/config.json") == tu::read_file(src + "/config.json"));
  CHECK(tu::read_file(t / "out/model.safetensors") == tu::read_file(src + "/model.safetensors"));
}

TEST_CASE("symbolic links: inside the folder stored as the file, outside refused") {
  tu::TempDir t;
  const std::string src = t / "m";
  ::mkdir(src.c_str(), 0755);
  tu::write_file(src + "/model.safetensors", model(2));
  put(src + "/config.json", "{\"a\": 1}\n");
  REQUIRE(::symlink("config.json", (src + "/config_link.json").c_str()) == 0);
  wc::pack(src, t / "m.wcz", {});
  wc::unpack(t / "m.wcz", t / "out", {});
  struct stat st;
  REQUIRE(::lstat((t / "out/config_link.json").c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK(tu::read_file(t / "out/config_link.json") == tu::read_file(src + "/config.json"));
  put(t / "secret.txt", "outside\n");
  REQUIRE(::symlink((t / "secret.txt").c_str(), (src + "/leak.txt").c_str()) == 0);
  auto r = tu::run(tu::cli() + " pack " + q(src) + " -o " + q(t / "m2.wcz"));
  CHECK(r.status != 0);
  CHECK(r.out.find("outside the folder") != std::string::npos);
  CHECK_FALSE(wc::path_exists(t / "m2.wcz"));
}

TEST_CASE("unpack never writes through a link in its output folder, and removes only what it made") {
  tu::TempDir t;
  const std::string src = t / "m";
  ::mkdir(src.c_str(), 0755);
  ::mkdir((src + "/unet").c_str(), 0755);
  tu::write_file(src + "/model.safetensors", model(4));
  put(src + "/unet/config.json", "{}\n");
  wc::PackOptions po;
  po.inline_small = "never";  // the test corrupts a chunk
  wc::pack(src, t / "m.wcz", po);
  // out/unet is a link to a folder elsewhere: refused, nothing written there
  ::mkdir((t / "out").c_str(), 0755);
  ::mkdir((t / "elsewhere").c_str(), 0755);
  REQUIRE(::symlink((t / "elsewhere").c_str(), (t / "out/unet").c_str()) == 0);
  auto r = tu::run(tu::cli() + " unpack " + q(t / "m.wcz") + " -o " + q(t / "out"));
  CHECK(r.status == 1);
  CHECK_FALSE(wc::path_exists(t / "elsewhere/config.json"));
  CHECK_FALSE(wc::path_exists(t / "out/model.safetensors"));
  // a failed unpack into a new folder removes the subfolders it made too
  auto c = tu::read_file(t / "m.wcz");
  {
    wc::ContainerReader rd(t / "m.wcz", wc::kReaderChecks);
    const auto& e = rd.index().back();
    c[e.offset] ^= 1;
  }
  tu::write_file(t / "bad.wcz", c);
  r = tu::run(tu::cli() + " unpack " + q(t / "bad.wcz") + " -o " + q(t / "fresh"));
  CHECK(r.status == 1);
  CHECK_FALSE(wc::path_exists(t / "fresh"));
}

}  // TEST_SUITE
