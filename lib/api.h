// The library's C++ API: whole-model operations used by the command-line tool
// and the benchmarks. Errors are thrown as wc::Error (platform/error.h) with the
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
#include "platform/error.h"
#include "platform/path.h"  // path helpers the tool shares

namespace wc {

// Called with (bytes done, bytes total) as work progresses.
using ProgressFn = std::function<void(uint64_t, uint64_t)>;

// 256 KiB: measured best for float-ans (per-chunk tables follow per-row scales:
// +0.016 bits over order-0 at 256 KiB, +0.033 at 1 MiB on 4096x4096 BF16)
// while giving 32 GPU sub-streams and plenty of parallel chunks.
inline constexpr uint32_t kDefaultChunkSize = 256u << 10;
inline constexpr const char* kContainerExt = ".wcz";
// --parallel gpu: float-ans sub-streams of 2^9 symbols.
inline constexpr int kGpuSubstreamBits = 9;

struct PackOptions {
  unsigned threads = 0;       // 0: all cores
  bool force = false;         // overwrite an existing output
  std::string codec = "auto";  // auto | raw | zstd | float-ans
  int level = 3;              // zstd level
  uint32_t chunk_size = kDefaultChunkSize;
  // "cpu" (default) or "gpu": float-ans sub-streams of 2^9 symbols instead of
  // 2^12, eight times the independent lanes (8 warps per 256 KiB BF16 chunk
  // instead of 1) for GPU decoders, about 0.4% larger (Whisper tiny.en BF16)
  std::string parallel = "cpu";
  // Small exact tensors (one chunk of at most 16 KiB) stored in their
  // records, in the manifest (container 1.4/2.5), instead of chunks: "auto"
  // when that saves at least 1/256 of the tensors' bytes (a chunk's header,
  // padding and index entry take about 64 bytes), "always", or "never" (a
  // file older readers read).
  std::string inline_small = "auto";
  // Inline tensors of one dtype coded together as one pool (container
  // 1.8/2.13, with --codec auto): "auto" (default: where the pool is at least
  // 64 bytes and 1% smaller than their own payloads) or "never" (a file 1.7
  // and 2.12 readers read whole).
  std::string pool = "auto";
  ProgressFn progress;
  // Lossy (container 2.0): bits > 0 asks for a smaller model. `bits` is the
  // mean over the lossy tensors of every byte they take in the file (codes,
  // steps, tables, chunk headers and padding, index entries, records), in
  // bits per weight; the encoder spends them where they lower the model's
  // error most. Tensors of BF16/F16/F32, rank >= 2, at least `min_elements`
  // elements and finite values become lossy, unless their name matches
  // `keep` (an ECMAScript regex, searched). `sensitivity`: a safetensors
  // file of F32 scalars named after tensors (measured sensitivities),
  // replacing the data-free estimates for the tensors it names.
  double bits = 0;
  std::string keep;
  std::string scheme = "auto";  // auto, quant (or qrow), outliers
  std::string sensitivity;
  // --calib: a calibration file (spec/CALIB.md): GPTQ error feedback where it
  // has a tensor's hessian (columns by descending diagonal when act_order),
  // importance-weighted rounding where only importances, its sensitivities
  // where `sensitivity` names none
  std::string calib;
  bool act_order = true;
  uint64_t min_elements = 1024;
  // --exact (container 2.7, spec/EXACT_TOP.md): each lossy tensor gets a
  // second level that restores its original bits, so the file unpacks to
  // the original model and its level 0 (the first bytes, up to where level
  // 1 begins) is the model of `bits` bits per weight. Plain qrow only.
  bool exact = false;
  // --refine R (container 2.8, spec/REFINE.md): R refinement levels above
  // the --bits model (each a step refine_factor times finer, about log2 of
  // it in bits per weight more), below --exact's top layer when given. Plain qrow only.
  unsigned refine = 0;
  // With refine: the kind of each level (spec/BITSTACK.md, 2.14): "refine"
  // (refinement levels only), "bitstack" (sign-magnitude blocks only) or
  // "auto" (per tensor and level, whichever the rate-distortion choice
  // prefers); block_rank: the blocks' rank r (1 to 16).
  std::string block = "refine";
  unsigned block_rank = 2;
  // With refine: the factor (2 to 6) by which a level makes a tensor's step
  // finer, and so what a level costs everywhere: about 1 bit per weight at
  // 2, 1.6 at 3, 2 at 4 (log2 of it); per tensor and level the writer may
  // take another factor of 2 to 6 that removes more error for those bits.
  unsigned refine_factor = 3;
};

struct PackResult {
  uint64_t input_bytes = 0, output_bytes = 0, weights = 0;
  uint64_t lossy_tensors = 0, lossy_weights = 0;
  double lossy_bits_per_weight = 0;  // all-in, as written (0 when none)
};

// `in`: a .safetensors file, a *.index.json of a sharded model, or a
// directory holding one. `out`: a path, or "-" for standard output.
PackResult pack(const std::string& in, const std::string& out, const PackOptions& opt);

// A level of a multi-level container (pack --exact): its first `bytes`
// bytes, to the end of the level's last chunk, hold the model at that
// level; bits per weight over every weight of the model; the relative RMS
// error of its lossy tensors (each one's rel. RMSE, the mean square weighted
// by its elements).
struct LevelPoint {
  unsigned level = 0;
  uint64_t bytes = 0;
  double bits_per_weight = 0, rel_rmse = 0;
};

// unpack --budget: the level of container `in` (a file) whose prefix fits
// `budget`: bytes with an optional unit ("512MB", "2GiB", "123456") or bits
// per weight of the model ("4.25bpw"). Errc::usage for a budget that does
// not parse or that no level fits (the least one named).
unsigned budget_level(const std::string& in, const std::string& budget);

struct UnpackOptions {
  unsigned threads = 0;
  bool force = false;
  ProgressFn progress;
  // The level to decode each lossy tensor at: min(level, its top level);
  // 255 (the default) is the top: the original bits where a tensor has an
  // exact top layer (EXACT_TOP.md), else its reconstruction. Level 0 of a
  // file packed with --exact is the lossy model of its --bits.
  unsigned level = 255;
  // --partial: `in` may be a prefix of a container (a partial download, cut
  // anywhere after level 0's chunks): the highest level it holds whole is
  // decoded (at most `level`). Standard input is read whole first (memory:
  // the bytes read). Without it, a cut container is an error (truncated).
  bool partial = false;
  // --budget: the highest level whose prefix (LevelPoint::bytes) is at most
  // this many bytes (overrides `level`; a container file only); 0: none.
  // Errc::usage when even level 0 is larger.
  uint64_t budget_bytes = 0;
  // When set: receives the level decoded when the container has several
  // (the highest of its lossy tensors, at most its top), else 255.
  unsigned* decoded_level = nullptr;
};

// `in`: a container path or "-" (standard input, read front to back).
// `out`: the file for a single-file model ("-" for standard output; an
// existing folder or a path ending in '/' for FOLDER/<stored name>, the
// folder made when missing and removed again on failure), or a directory for
// a sharded model; empty for default_unpack_output's name
// (a container file only). Nothing is left behind on failure. Refuses
// (Errc::usage) an output that is the container itself, even with force.
// Returns the path written (the file or the folder).
std::string unpack(const std::string& in, const std::string& out, const UnpackOptions& opt);

// Default output names: model.safetensors <-> model.safetensors.wcz.
std::string default_pack_output(const std::string& in);
// Where `unpack in` writes with no output named, beside the container (in
// its folder): for a container of one file (no '/' in its name), that file's
// stored name (e.g. "model.safetensors", whatever the container is called);
// otherwise a folder named after the container without ".wcz". Opens the
// container (its manifest) to read the stored name. An input whose name does
// not end in ".wcz" is refused (Errc::usage, "unknown suffix -- ignored"),
// as zstd refuses one without ".zst", rather than guessing a name.
std::string default_unpack_output(const std::string& in);

// Throws Errc::usage when the output `out` ("-": standard output) is the same
// file as one of `inputs` ("-": standard input) through any path, symbolic or
// hard link (same st_dev and st_ino; only regular files are compared). pack,
// unpack and the extract functions below call it, so -f never replaces an
// input of the same command.
void refuse_output_onto_input(const std::string& out, const std::vector<std::string>& inputs);

// Packs a safetensors stream read front to back from `fd` (e.g. 0, standard
// input) to `out` (a path or "-"), storing it under the file name `name` (so
// the container is byte for byte the one `pack(NAME, out)` makes). The
// stream's first 8 bytes are checked first (a container, or no safetensors
// header length, is refused before the rest is read); then the
// whole stream is copied into an anonymous memory file (memfd_create,
// pageable to swap) and packed from there. Memory: about the size of the
// model, on top of what pack() uses. Needs /proc (the memory file is opened
// through /proc/self/fd under `name`). Errors name the stream "<stdin>" when
// fd is 0, "<fd N>" otherwise.
PackResult pack_fd(int fd, const std::string& name, const std::string& out, const PackOptions& opt);
// The same for a safetensors file held in memory (`size` bytes at `data`),
// stored under `name`: the bytes are copied into a memory file and packed
// from there. Errors name the input "<memory>".
PackResult pack_memory(const uint8_t* data, size_t size, const std::string& name, const std::string& out,
                       const PackOptions& opt);

// What a container holds, from its manifest alone (no payload is read).
struct ContainerFile {
  std::string name;        // stored name (a relative path in a folder container)
  std::string kind;        // "safetensors" | "blob"
  uint64_t size = 0;       // bytes of the original file
  uint32_t tensors = 0;
};
std::vector<ContainerFile> container_files(const std::string& in);

// Restores the one file stored as `name` from the container file `in`
// (decoding only that file's chunks, in order, and checking the file's XXH3
// before the output is committed). `out`: a path; "-" for standard output;
// an existing folder or a path ending in '/' for FOLDER/<base name>; empty
// for <base name> beside the container. Returns the path written ("-" for
// standard output). Errc::usage when the container holds no such file.
std::string unpack_file(const std::string& in, const std::string& name, const std::string& out,
                        const UnpackOptions& opt);

// One tensor written as a NumPy .npy file (format version 1.0: "\x93NUMPY",
// a header dict with 'descr', 'fortran_order': False and 'shape', padded to
// 64 bytes; then the tensor's bytes as stored, little-endian, C order). The
// dtype strings: BOOL '|b1'; U8 '|u1', I8 '|i1'; U16/I16/U32/I32/U64/I64
// '<u2' '<i2' '<u4' '<i4' '<u8' '<i8'; F16 '<f2', F32 '<f4', F64 '<f8'; C64
// '<c8'. Types NumPy cannot name are written as their raw bits, with a note:
// BF16 as '<u2' (view it with ml_dtypes.bfloat16); F8_E4M3, F8_E5M2, F8_E8M0
// as '|u1' (ml_dtypes.float8_e4m3fn, float8_e5m2, float8_e8m0fnu); F4, F6_E2M3,
// F6_E3M2 as '|u1' packed bytes as stored, the last dimension scaled to bytes
// (F4: halved, F6: times 3/4) or, when it does not divide, one flat dimension.
struct NpyResult {
  std::string path;   // written ("-" for standard output)
  std::string descr;  // the .npy dtype string
  std::vector<uint64_t> shape;  // the .npy shape
  uint64_t bytes = 0;           // tensor bytes after the header
  std::string note;             // set when descr is raw bits standing for another type
};
// `file`: the stored file name holding the tensor, or empty when its name is
// unique among the container's safetensors files. `out` as for unpack_file
// (empty: "<tensor>.npy" beside the container). The tensor's chunks are
// decoded in order and each chunk's stored checksum is checked; the whole
// file's XXH3 covers bytes outside the tensor, so it is not (run verify).
NpyResult unpack_tensor_npy(const std::string& in, const std::string& file, const std::string& tensor,
                            const std::string& out, const UnpackOptions& opt);

struct VerifyResult {
  uint64_t chunks = 0, bytes = 0, files = 0;
  bool compared = false;  // --against given and matched
};

// Decodes every chunk and checks every checksum (and, with `against`, the
// original file or directory byte for byte). Throws on the first problem.
VerifyResult verify(const std::string& in, const std::string& against, unsigned threads, const ProgressFn& progress);

// `pack --rm`: verifies `container` against the model it was packed from
// (`in`, as given to pack) byte for byte, then removes exactly those input
// files and, for a folder input, the folders this leaves empty (the input
// folder included). Throws before removing anything if they differ.
struct RemovedInputs {
  VerifyResult verified;
  size_t files = 0;
};
RemovedInputs remove_packed_inputs(const std::string& in, const std::string& container, unsigned threads,
                                   const ProgressFn& progress);

struct TensorSummary {
  std::string file, name, dtype, codec;
  std::vector<uint64_t> shape;
  uint64_t elements = 0, raw_bytes = 0, stored_bytes = 0;
  uint32_t chunks = 0;
  double bits_per_weight = 0;
  // With entropy: order-0 entropy of the values, H(exponent)+rest (float types only; <0 when absent).
  double h_values = -1, h_exp_bound = -1;
  // Lossy tensors (container 2.0): the representation ("exact" otherwise),
  // its levels, every byte it takes in the file (payloads, chunk headers and
  // their alignment padding, index entries, its manifest record without the
  // name) and the error figures stored for its top level: relative RMSE
  // sqrt(sum (w-w')^2 / sum w^2), max |w - w'|, SNR = -20 log10(rel RMSE) dB.
  // bits_per_weight of a lossy tensor counts file_bytes.
  std::string repr = "exact";
  uint32_t levels = 1;
  // a lossy tensor's levels above 0 by kind: "refine" (REFINE.md), "block"
  // (BitStack's, BITSTACK.md), "exact" (EXACT_TOP.md); empty for one level
  std::vector<std::string> level_kinds;
  uint64_t file_bytes = 0;
  double rel_rmse = -1, max_abs = -1, snr_db = -1;
  uint64_t outliers = 0;  // qrow-outliers: the elements stored exactly
  uint32_t codebook_entries = 0, codebook_dim = 0;  // vq: K codes (vectors of d values)
  uint32_t codebook_books = 0;   // vq: books (one per group of rows, 2.11)
  uint32_t codebook_second = 0;  // vq: additive books (2.11): K2, K = K1 x K2 codes; 0: flat
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
  // raw_bytes: the original files; stored_payload: the tensors' payloads only
  // (chunks, and the bytes records hold in their place);
  // weights: elements of tensors in safetensors files (blobs are not weights).
  uint64_t file_size = 0, raw_bytes = 0, stored_payload = 0, weights = 0;
  std::vector<FileSummary> files;
  std::vector<GroupSummary> by_dtype, by_codec;  // in order of first appearance
  uint64_t tensor_count = 0;
  uint64_t lossy_tensors = 0, lossy_weights = 0, lossy_file_bytes = 0;  // over the lossy tensors
  // A multi-level file (pack --exact): per level, the file's first `bytes`
  // bytes (up to where the next level's chunks begin) hold the model at that
  // level; bits per weight over every weight, and the relative RMS error of
  // the lossy tensors (each tensor's rel. RMSE, mean square weighted by its
  // elements). Empty for a file of one level.
  std::vector<LevelPoint> levels;
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
// all_steps: every level of a file of many steps (chunk order 1); else the
// steps at each quarter bit per weight (kInspectStepsShown at most in full).
std::unique_ptr<InspectSink> inspect_text_writer(std::FILE* f, bool entropy, bool all_steps = false);
inline constexpr size_t kInspectStepsShown = 24;
std::unique_ptr<InspectSink> inspect_json_writer(std::FILE* f);
// Convenience for small containers (tests, tools): every summary collected.
InspectResult inspect(const std::string& in, bool entropy, std::vector<TensorSummary>* tensors);

const char* version_string();
// The container format versions this build writes: "1.1, 2.0 with lossy tensors".
std::string format_version_string();

// Removes the temporary outputs of operations in progress; async-signal-safe,
// for a SIGINT/SIGTERM handler (the process should then exit).
void remove_temporaries_on_signal() noexcept;

}  // namespace wc
