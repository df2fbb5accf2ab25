// safetensors header parser with (at least) the checks of the reference
// implementation (huggingface/safetensors, Rust), plus sharded-model index
// parsing.
//
// File layout: u64 little-endian N, then N bytes of UTF-8 JSON, then the data
// section. The JSON is an object: "__metadata__" (optional, string->string)
// and one entry per tensor {"dtype": NAME, "shape": [..], "data_offsets":
// [begin, end]} with offsets relative to the data section.
//
// Error codes: Errc::limit for the limits below (header length, tensor count,
// rank, JSON nesting); Errc::bad_safetensors for everything else. Errors carry
// the absolute file offset of the problem (JSON offsets are reported as
// 8 + position in the JSON) and, where it applies, the tensor name.
//
// Deliberately stricter than the reference (which accepts them): duplicate
// keys (tensor names or metadata keys) are rejected.
// Accepted like the reference: unknown keys in a tensor entry (ignored),
// "__metadata__": null (no metadata), whitespace before/after the JSON object inside
// the N header bytes (writers pad with trailing spaces to align the data),
// an empty object "{}", zero-size and rank-0 tensors, any tensor name
// (including empty or containing NUL via \u0000).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "format/dtype.h"

namespace wc::st {

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape;
  uint64_t begin, end;  // relative to the data section; end - begin == byte size
};

struct Header {
  uint64_t json_len;    // N from the first 8 bytes
  uint64_t data_start;  // 8 + N
  std::vector<TensorInfo> tensors;  // sorted by (begin, end), ties in document order
  std::vector<std::pair<std::string, std::string>> metadata;  // __metadata__, document order
  std::string json;     // the N header bytes, verbatim (padding included)
};

inline constexpr uint64_t kMaxHeaderLen = 100'000'000;  // reference limit (bytes of JSON)
inline constexpr uint64_t kMaxTensors = 10'000'000;     // tensors per file
inline constexpr size_t kMaxRank = 64;                  // dimensions per tensor
inline constexpr unsigned kMaxJsonDepth = 64;           // JSON nesting
// JSON arrays in a header are also limited to kMaxRank elements (Errc::limit).

// Validates the first 8 bytes (needs avail >= 8) against file_size and returns
// N. Throws bad_safetensors if the file is shorter than 8 bytes or 8 + N is
// beyond the file; Errc::limit if N > kMaxHeaderLen.
uint64_t header_json_len(const uint8_t* p, size_t avail, uint64_t file_size);

// p points at the file start; avail bytes are readable there (>= 8 + N
// needed, else bad_safetensors); file_size is the total file length (the data
// section must end exactly there).
Header parse_header(const uint8_t* p, size_t avail, uint64_t file_size);

// The header's entries one at a time, in document order, without building a
// tree of the JSON or a list of the tensors: every per-entry rule is checked
// (dtype, shape, offsets matching the byte size, metadata strings, limits);
// the rules across entries (no duplicate names, no holes or overlaps, the
// data section covered exactly) are the caller's. Returns N. Memory: one
// entry at a time. parse_header is this plus the cross-entry rules.
struct EntryPos {
  uint64_t value_at, offsets_at;  // file offsets of the entry and of its data_offsets
  size_t doc_index;               // position among the header's members
};
using EntryFn = std::function<void(TensorInfo&& t, const EntryPos& pos)>;
using MetaFn = std::function<void(std::string&& key, std::string&& value, uint64_t at)>;
uint64_t scan_header(const uint8_t* p, size_t avail, uint64_t file_size, const EntryFn& on_tensor,
                     const MetaFn& on_metadata = {});

// Reads and parses the header of a file on disk (two preads). Errc::io if the
// file cannot be opened/read; errors carry the path (Error::file()).
Header read_header_file(const std::string& path);

// Byte size of a tensor: product(shape) * bits / 8. Throws bad_safetensors on
// overflow or when a sub-byte dtype does not fill whole bytes.
uint64_t tensor_nbytes(DType dtype, const std::vector<uint64_t>& shape);

// Parses model.safetensors.index.json ({"metadata": {...}, "weight_map":
// {tensor: shard file}}) and returns the distinct shard file names in order
// of first appearance in weight_map. Validates: top level is an object;
// weight_map is present, non-empty, an object of string->string without
// duplicate keys; every file name is non-empty, contains no '/', '\\' or NUL,
// and is not "." or "..". "metadata" and other top-level keys are ignored.
// Errors are bad_safetensors with the offset in the index file.
std::vector<std::string> parse_shard_index(const uint8_t* p, size_t n);

}  // namespace wc::st
