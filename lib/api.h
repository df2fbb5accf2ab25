// The library's C++ API: whole-model operations used by the command-line tool
// and the benchmarks. Errors are thrown as wc::Error (format/error.h) with the
// file, tensor and offset filled in where known.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "codec/codec.h"
#include "format/error.h"

namespace wc {

// Called with (bytes done, bytes total) as work progresses.
using ProgressFn = std::function<void(uint64_t, uint64_t)>;

// 256 KiB: measured best for float-ans (per-chunk tables follow per-row scales:
// +0.016 bits over order-0 at 256 KiB, +0.033 at 1 MiB on 4096x4096 BF16)
// while giving 32 GPU sub-streams and plenty of parallel chunks.
inline constexpr uint32_t kDefaultChunkSize = 256u << 10;
inline constexpr const char* kContainerExt = ".wcz";

struct PackOptions {
  unsigned threads = 0;       // 0: all cores
  bool force = false;         // overwrite an existing output
  std::string codec = "auto";  // auto | raw | zstd | float-ans
  int level = 3;              // zstd level
  uint32_t chunk_size = kDefaultChunkSize;
  ProgressFn progress;
};

struct PackResult {
  uint64_t input_bytes = 0, output_bytes = 0, weights = 0;
};

// `in`: a .safetensors file, a *.index.json of a sharded model, or a
// directory holding one. `out`: a path, or "-" for standard output.
PackResult pack(const std::string& in, const std::string& out, const PackOptions& opt);

struct UnpackOptions {
  unsigned threads = 0;
  bool force = false;
  ProgressFn progress;
};

// `in`: a container path or "-" (standard input, read front to back).
// `out`: the file for a single-file model ("-" for standard output), or a
// directory for a sharded model. Nothing is left behind on failure.
void unpack(const std::string& in, const std::string& out, const UnpackOptions& opt);

// Default output names: model.safetensors <-> model.safetensors.wcz.
std::string default_pack_output(const std::string& in);
std::string default_unpack_output(const std::string& in);

struct VerifyResult {
  uint64_t chunks = 0, bytes = 0, files = 0;
  bool compared = false;  // --against given and matched
};

// Decodes every chunk and checks every checksum (and, with `against`, the
// original file or directory byte for byte). Throws on the first problem.
VerifyResult verify(const std::string& in, const std::string& against, unsigned threads, const ProgressFn& progress);

struct TensorSummary {
  std::string file, name, dtype, codec;
  std::vector<uint64_t> shape;
  uint64_t elements = 0, raw_bytes = 0, stored_bytes = 0;
  uint32_t chunks = 0;
  double bits_per_weight = 0;
  // With entropy: order-0 entropy of the values, H(exponent)+rest (float types only; <0 when absent).
  double h_values = -1, h_exp_bound = -1;
};

struct FileSummary {
  std::string name, kind;  // kind: "safetensors" | "blob"
  uint64_t size = 0, stored_bytes = 0;
  uint32_t tensors = 0;
  std::vector<std::pair<std::string, std::string>> metadata;  // safetensors __metadata__, in order
};

// Totals over the tensors of one dtype or one codec.
struct GroupSummary {
  std::string name;
  uint64_t tensors = 0, elements = 0, raw_bytes = 0, stored_bytes = 0;
};

struct InspectResult {
  std::string path;
  unsigned version_major = 0, version_minor = 0;
  // raw_bytes: the original files; stored_payload: chunk payloads only;
  // weights: elements of tensors in safetensors files (blobs are not weights).
  uint64_t file_size = 0, raw_bytes = 0, stored_payload = 0, weights = 0;
  std::vector<FileSummary> files;
  std::vector<GroupSummary> by_dtype, by_codec;  // in order of first appearance
  uint64_t tensor_count = 0;
  size_t name_width = 0;  // widest tensor name as shown (escaped), for aligned columns
};

// Receives inspect's output as it is made: the totals (from the manifest and
// index alone), then one summary per tensor in file order, then end(). One
// summary is alive at a time, so a container of millions of tensors is
// listed in memory proportional to its manifest, not to the listing.
class InspectSink {
 public:
  virtual ~InspectSink() = default;
  virtual void begin(const InspectResult& r) = 0;
  virtual void tensor(const TensorSummary& t) = 0;
  virtual void end(const InspectResult& r) = 0;
};

void inspect(const std::string& in, bool entropy, InspectSink& out);
// The human table and the JSON document (shape: see inspect.cpp), streamed
// to `f`.
std::unique_ptr<InspectSink> inspect_text_writer(std::FILE* f, bool entropy);
std::unique_ptr<InspectSink> inspect_json_writer(std::FILE* f);
// Convenience for small containers (tests, tools): every summary collected.
InspectResult inspect(const std::string& in, bool entropy, std::vector<TensorSummary>* tensors);

const char* version_string();
// The container format version this build writes, e.g. "1.0".
std::string format_version_string();

// Removes the temporary outputs of operations in progress; async-signal-safe,
// for a SIGINT/SIGTERM handler (the process should then exit).
void remove_temporaries_on_signal() noexcept;

}  // namespace wc
