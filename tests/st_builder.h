// Test helper: build safetensors files in memory (header-only).
//
//   using namespace stb;
//   std::vector<StTensor> ts = {
//     {"w", wc::DType::BF16, {2, 3}, pattern_bytes(12, 1)},  // bytes must match dtype x shape
//     {"b", wc::DType::F32, {3}, {}},                        // empty bytes -> filled with pattern_bytes(size, index)
//   };
//   std::vector<uint8_t> file = build(ts);                  // valid file
//   StOptions o; o.reverse_keys = true; o.padding = 5; o.metadata = {{"format", "pt"}};
//   file = build(ts, o);
//   file = raw("{\"x\": 1}", {});                           // arbitrary header JSON + data bytes
//   write_file("/tmp/x.safetensors", file);
//
// Layout: tensor data is laid out in the order of `ts` (contiguous, no gaps);
// JSON keys are written in that order, or reversed with reverse_keys, so key
// order and data order differ. __metadata__ (when `metadata` is non-empty or
// force_metadata is set) comes first, or last with metadata_last.
// Padding: `padding` trailing spaces inside the header length; with align8,
// further spaces so that 8 + N is a multiple of 8 (what the Python writer does).
// Sizes are computed from dtype and shape (sub-byte types round up; for invalid
// files, set explicit bytes or use raw()).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "format/dtype.h"

namespace stb {

struct StTensor {
  std::string name;
  wc::DType dtype;
  std::vector<uint64_t> shape;
  std::vector<uint8_t> bytes;  // empty => filled with pattern_bytes(nbytes, index + 1) when nbytes > 0
};

struct StOptions {
  bool reverse_keys = false;   // write JSON entries in reverse order (data order unchanged)
  size_t padding = 0;          // trailing spaces after the JSON object, inside N
  bool align8 = false;         // then pad with spaces until (8 + N) % 8 == 0
  std::vector<std::pair<std::string, std::string>> metadata = {};  // __metadata__ entries, in order
  bool force_metadata = false; // emit "__metadata__": {} even when metadata is empty
  bool metadata_last = false;  // put __metadata__ after the tensors
  bool spaced = false;         // pretty-ish JSON: spaces after ':' and ','
};

// Deterministic non-trivial bytes (xorshift); different seeds give different bytes.
inline std::vector<uint8_t> pattern_bytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    v[i] = static_cast<uint8_t>(x >> 24);
  }
  return v;
}

// Byte size from dtype and shape (sub-byte totals rounded up; no overflow checks).
inline uint64_t nbytes_of(wc::DType dt, const std::vector<uint64_t>& shape) {
  uint64_t n = 1;
  for (auto d : shape) n *= d;
  return (n * wc::dtype_bits(dt) + 7) / 8;
}

// JSON string literal with quotes; escapes '"', '\\' and control characters.
inline std::string quote(std::string_view s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"') o += "\\\"";
    else if (c == '\\') o += "\\\\";
    else if (c < 0x20) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", c); o += b; }
    else o += static_cast<char>(c);
  }
  return o + "\"";
}

// u64 little-endian length + json + data.
inline std::vector<uint8_t> raw(std::string_view json, const std::vector<uint8_t>& data = {}) {
  std::vector<uint8_t> f(8);
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) f[i] = static_cast<uint8_t>(n >> (8 * i));
  f.insert(f.end(), json.begin(), json.end());
  f.insert(f.end(), data.begin(), data.end());
  return f;
}

// Like raw() but with an explicit (possibly lying) length field.
inline std::vector<uint8_t> raw_with_len(uint64_t n, std::string_view json, const std::vector<uint8_t>& data = {}) {
  auto f = raw(json, data);
  for (int i = 0; i < 8; ++i) f[i] = static_cast<uint8_t>(n >> (8 * i));
  return f;
}

// The tensor entry JSON: {"dtype":"F32","shape":[2,3],"data_offsets":[b,e]}
inline std::string entry_json(wc::DType dt, const std::vector<uint64_t>& shape, uint64_t b, uint64_t e,
                              bool spaced = false) {
  const char* sep = spaced ? ", " : ",";
  const char* col = spaced ? ": " : ":";
  std::string s = "{\"dtype\"" + std::string(col) + quote(wc::dtype_name(dt)) + sep + "\"shape\"" + col + "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? sep : "") + std::to_string(shape[i]);
  s += std::string("]") + sep + "\"data_offsets\"" + col + "[" + std::to_string(b) + sep + std::to_string(e) + "]}";
  return s;
}

// Header JSON only (what build() puts inside N, before padding).
inline std::string header_json(std::vector<StTensor>& ts, const StOptions& o = {}) {
  const char* sep = o.spaced ? ", " : ",";
  const char* col = o.spaced ? ": " : ":";
  std::vector<std::string> parts;
  uint64_t off = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    auto& t = ts[i];
    uint64_t n = nbytes_of(t.dtype, t.shape);
    if (t.bytes.empty() && n > 0) t.bytes = pattern_bytes(n, i + 1);
    parts.push_back(quote(t.name) + col + entry_json(t.dtype, t.shape, off, off + t.bytes.size(), o.spaced));
    off += t.bytes.size();
  }
  if (o.reverse_keys) std::reverse(parts.begin(), parts.end());
  if (!o.metadata.empty() || o.force_metadata) {
    std::string m = "\"__metadata__\"" + std::string(col) + "{";
    for (size_t i = 0; i < o.metadata.size(); ++i)
      m += (i ? sep : "") + quote(o.metadata[i].first) + col + quote(o.metadata[i].second);
    m += "}";
    if (o.metadata_last) parts.push_back(m);
    else parts.insert(parts.begin(), m);
  }
  std::string j = "{";
  for (size_t i = 0; i < parts.size(); ++i) j += (i ? sep : "") + parts[i];
  j += "}";
  j.append(o.padding, ' ');
  if (o.align8)
    while ((8 + j.size()) % 8 != 0) j += ' ';
  return j;
}

// A complete safetensors file. Tensors with empty bytes get pattern data.
// The data of each tensor is taken as is (its length sets data_offsets).
inline std::vector<uint8_t> build(std::vector<StTensor> ts, const StOptions& o = {}) {
  std::string j = header_json(ts, o);
  std::vector<uint8_t> data;
  for (const auto& t : ts) data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  return raw(j, data);
}

inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("cannot create " + path);
  size_t w = bytes.empty() ? 0 : std::fwrite(bytes.data(), 1, bytes.size(), f);
  bool ok = w == bytes.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) throw std::runtime_error("cannot write " + path);
}

}  // namespace stb
