#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <numeric>
#include <string_view>
#include <unordered_set>

#include "format/bytes.h"
#include "platform/error.h"
#include "model/json.h"

namespace wc::st {
namespace {

[[noreturn]] void bad(uint64_t off, std::string msg, const std::string* tensor = nullptr) {
  Error e(Errc::bad_safetensors, std::move(msg));
  e.at_offset(off);
  if (tensor) e.at_tensor(*tensor);
  throw e;
}

[[noreturn]] void over_limit(uint64_t off, std::string msg, const std::string* tensor = nullptr) {
  Error e(Errc::limit, std::move(msg));
  e.at_offset(off);
  if (tensor) e.at_tensor(*tensor);
  throw e;
}

// A JSON number that must be a non-negative integer fitting in u64.
uint64_t get_uint(const json::Value& v, const char* what, const std::string& tensor) {
  if (!v.is_number()) bad(v.offset, std::string(what) + " must be a non-negative integer, got " + json::kind_name(v.kind), &tensor);
  if (v.u64_overflow) bad(v.offset, std::string(what) + " " + v.str + " does not fit in 64 bits", &tensor);
  if (!v.u64) bad(v.offset, std::string(what) + " must be a non-negative integer, got " + v.str, &tensor);
  return *v.u64;
}

struct Entry {
  TensorInfo info;
  uint64_t offsets_at;  // file offset of the data_offsets value (for errors)
  uint64_t value_at;    // file offset of the entry
};

Entry parse_tensor(const std::string& name, const json::Value& v) {
  if (!v.is_object())
    bad(v.offset, std::string("tensor entry must be an object, got ") + json::kind_name(v.kind), &name);
  const json::Value *dt = nullptr, *shape = nullptr, *offs = nullptr;
  for (const auto& [k, m] : v.object) {
    const json::Value** slot = nullptr;
    if (k == "dtype") slot = &dt;
    else if (k == "shape") slot = &shape;
    else if (k == "data_offsets") slot = &offs;
    else continue;  // the reference parser ignores unknown keys; the header bytes keep them anyway
    if (*slot) bad(m.offset, "duplicate key '" + k + "' in tensor entry", &name);
    *slot = &m;
  }
  if (!dt) bad(v.offset, "tensor entry has no dtype", &name);
  if (!shape) bad(v.offset, "tensor entry has no shape", &name);
  if (!offs) bad(v.offset, "tensor entry has no data_offsets", &name);

  Entry e;
  e.info.name = name;
  e.value_at = v.offset;
  e.offsets_at = offs->offset;

  if (!dt->is_string()) bad(dt->offset, std::string("dtype must be a string, got ") + json::kind_name(dt->kind), &name);
  auto d = dtype_from_name(dt->str);
  if (!d) bad(dt->offset, "unknown dtype '" + dt->str + "'", &name);
  e.info.dtype = *d;

  if (!shape->is_array()) bad(shape->offset, std::string("shape must be an array, got ") + json::kind_name(shape->kind), &name);
  if (shape->array.size() > kMaxRank)
    over_limit(shape->offset, "rank " + std::to_string(shape->array.size()) + " exceeds the limit of " +
                                  std::to_string(kMaxRank), &name);
  e.info.shape.reserve(shape->array.size());
  for (const auto& dim : shape->array) e.info.shape.push_back(get_uint(dim, "shape dimension", name));

  if (!offs->is_array() || offs->array.size() != 2)
    bad(offs->offset, "data_offsets must be an array [begin, end]", &name);
  e.info.begin = get_uint(offs->array[0], "data_offsets begin", name);
  e.info.end = get_uint(offs->array[1], "data_offsets end", name);
  if (e.info.begin > e.info.end)
    bad(offs->offset, "data_offsets begin " + std::to_string(e.info.begin) + " > end " + std::to_string(e.info.end), &name);

  uint64_t nbytes;
  try {
    nbytes = tensor_nbytes(e.info.dtype, e.info.shape);
  } catch (Error& err) {
    err.at_offset(shape->offset);
    err.at_tensor(name);
    throw;
  }
  if (e.info.end - e.info.begin != nbytes)
    bad(offs->offset, "data_offsets span " + std::to_string(e.info.end - e.info.begin) +
                          " bytes but dtype and shape need " + std::to_string(nbytes), &name);
  return e;
}

}  // namespace

uint64_t tensor_nbytes(DType dtype, const std::vector<uint64_t>& shape) {
  uint64_t n = 1;
  for (uint64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n))
      fail(Errc::bad_safetensors, "element count (product of shape) overflows 64 bits");
  uint64_t bits;
  if (__builtin_mul_overflow(n, uint64_t{dtype_bits(dtype)}, &bits))
    fail(Errc::bad_safetensors, "tensor size in bits overflows 64 bits");
  if (bits % 8 != 0)
    fail(Errc::bad_safetensors, "sub-byte dtype " + std::string(dtype_name(dtype)) + " with " +
                                    std::to_string(n) + " elements does not fill whole bytes");
  return bits / 8;
}

uint64_t header_json_len(const uint8_t* p, size_t avail, uint64_t file_size) {
  if (file_size < 8)
    bad(0, "file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  if (avail < 8) bad(0, "header length bytes not available to the parser");
  uint64_t n = load_u64(p);
  if (n > kMaxHeaderLen)
    over_limit(0, "header length " + std::to_string(n) + " exceeds the limit of " + std::to_string(kMaxHeaderLen));
  if (n > file_size - 8)
    bad(0, "header length " + std::to_string(n) + " runs past the end of the " + std::to_string(file_size) +
               "-byte file");
  return n;
}

uint64_t scan_header(const uint8_t* p, size_t avail, uint64_t file_size, const EntryFn& on_tensor,
                     const MetaFn& on_metadata) {
  const uint64_t json_len = header_json_len(p, avail, file_size);
  if (avail - 8 < json_len) bad(8, "header bytes not fully available to the parser");
  std::string_view text(reinterpret_cast<const char*>(p + 8), static_cast<size_t>(json_len));
  if (auto badpos = json::find_invalid_utf8(text)) bad(8 + *badpos, "header is not valid UTF-8");

  json::ParseOptions opt;
  opt.code = Errc::bad_safetensors;
  opt.base_offset = 8;
  opt.max_depth = kMaxJsonDepth;
  opt.max_array_len = kMaxRank;  // no valid header has a longer array (shape <= kMaxRank)
  json::Cursor cur(text, opt);
  uint64_t ntensors = 0;
  bool seen_metadata = false;
  cur.members([&](std::string&& key, uint64_t key_at) {
    if (key == "__metadata__") {
      if (seen_metadata) bad(key_at, "duplicate key '__metadata__' in header");
      seen_metadata = true;
      // "__metadata__": null reads as no metadata, as in the reference parser
      if (cur.null_next()) { cur.value(); return; }
      if (!cur.object_next()) {
        json::Value m = cur.value();
        bad(m.offset, std::string("__metadata__ must be an object of strings, got ") + json::kind_name(m.kind));
      }
      // its members one at a time: a large metadata object never becomes a tree
      cur.members([&](std::string&& k, uint64_t) {
        json::Value m = cur.value();
        if (!m.is_string())
          bad(m.offset, "__metadata__ value for '" + k + "' must be a string, got " + json::kind_name(m.kind));
        if (on_metadata) on_metadata(std::move(k), std::move(m.str), m.offset);
      });
      return;
    }
    if (++ntensors > kMaxTensors)
      over_limit(key_at, "more than " + std::to_string(kMaxTensors) + " tensors exceed the limit");
    json::Value v = cur.value();
    Entry e = parse_tensor(key, v);
    on_tensor(std::move(e.info), EntryPos{v.offset, e.offsets_at, size_t(ntensors - 1)});
  });
  cur.finish();
  return json_len;
}

Header parse_header(const uint8_t* p, size_t avail, uint64_t file_size) {
  Header h;
  std::vector<Entry> entries;
  h.json_len = scan_header(
      p, avail, file_size,
      [&](TensorInfo&& t, const EntryPos& pos) { entries.push_back({std::move(t), pos.offsets_at, pos.value_at}); },
      [&](std::string&& k, std::string&& v, uint64_t at) {
        h.metadata.emplace_back(std::move(k), std::move(v));
        (void)at;
      });
  h.data_start = 8 + h.json_len;
  // Duplicate keys (tensor names or metadata keys): the reference parser
  // keeps the last; refusing them keeps one meaning per name.
  {
    std::vector<std::string_view> names;
    names.reserve(entries.size());
    for (const auto& e : entries) names.push_back(e.info.name);
    if (auto dup = json::find_duplicate(names))
      bad(entries[*dup].value_at, "duplicate key '" + entries[*dup].info.name + "' in header", &entries[*dup].info.name);
    std::vector<std::string_view> keys;
    for (const auto& [k, v] : h.metadata) keys.push_back(k);
    if (auto dup = json::find_duplicate(keys)) bad(8, "duplicate __metadata__ key '" + h.metadata[*dup].first + "'");
  }

  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.info.begin != b.info.begin) return a.info.begin < b.info.begin;
    return a.info.end < b.info.end;
  });
  uint64_t expect = 0;
  for (const auto& e : entries) {
    if (e.info.begin > expect)
      bad(e.offsets_at, "hole in the data section: bytes " + std::to_string(expect) + ".." +
                            std::to_string(e.info.begin) + " belong to no tensor", &e.info.name);
    if (e.info.begin < expect)
      bad(e.offsets_at, "tensor data at " + std::to_string(e.info.begin) + " overlaps the previous tensor (ends at " +
                            std::to_string(expect) + ")", &e.info.name);
    expect = e.info.end;
  }
  uint64_t data_len = file_size - h.data_start;
  if (expect != data_len)
    bad(h.data_start + std::min(expect, data_len),
        "tensors cover " + std::to_string(expect) + " bytes of data but the data section is " +
            std::to_string(data_len) + " bytes");

  h.tensors.reserve(entries.size());
  for (auto& e : entries) h.tensors.push_back(std::move(e.info));
  h.json.assign(reinterpret_cast<const char*>(p + 8), size_t(h.json_len));
  return h;
}

namespace {
struct Fd {
  int fd = -1;
  ~Fd() { if (fd >= 0) ::close(fd); }
};

void pread_full(int fd, uint8_t* buf, size_t n, uint64_t off, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, buf + done, n - done, static_cast<off_t>(off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(Errc::io, "read failed: " + std::string(std::strerror(errno)));
    }
    if (r == 0) fail_at(Errc::truncated, off + done, "file shrank while reading " + path);
    done += static_cast<size_t>(r);
  }
}
}  // namespace

Header read_header_file(const std::string& path) {
  try {
    Fd f;
    f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f.fd < 0) fail(Errc::io, "cannot open: " + std::string(std::strerror(errno)));
    struct stat sb;
    if (::fstat(f.fd, &sb) != 0) fail(Errc::io, "cannot stat: " + std::string(std::strerror(errno)));
    if (S_ISDIR(sb.st_mode)) fail(Errc::io, "is a directory");
    uint64_t size = static_cast<uint64_t>(sb.st_size);
    uint8_t len8[8] = {};
    size_t first = size < 8 ? static_cast<size_t>(size) : 8;
    pread_full(f.fd, len8, first, 0, path);
    uint64_t n = header_json_len(len8, first, size);
    std::vector<uint8_t> buf(static_cast<size_t>(8 + n));
    std::memcpy(buf.data(), len8, 8);
    pread_full(f.fd, buf.data() + 8, static_cast<size_t>(n), 8, path);
    return parse_header(buf.data(), buf.size(), size);
  } catch (Error& e) {
    e.at_file(path);
    throw;
  }
}

std::vector<std::string> parse_shard_index(const uint8_t* p, size_t n) {
  std::string_view text(reinterpret_cast<const char*>(p), n);
  if (auto badpos = json::find_invalid_utf8(text)) bad(*badpos, "shard index is not valid UTF-8");
  json::ParseOptions opt;
  opt.code = Errc::bad_safetensors;
  opt.max_depth = kMaxJsonDepth;
  json::Value root = json::parse(text, opt);
  if (!root.is_object())
    bad(root.offset, std::string("shard index must be a JSON object, got ") + json::kind_name(root.kind));
  if (auto dup = json::find_duplicate_key(root))
    bad(root.object[*dup].second.offset, "duplicate key '" + root.object[*dup].first + "' in shard index");
  const json::Value* wm = root.find("weight_map");
  if (!wm) bad(root.offset, "shard index has no weight_map");
  if (!wm->is_object())
    bad(wm->offset, std::string("weight_map must be an object, got ") + json::kind_name(wm->kind));
  if (wm->object.empty()) bad(wm->offset, "weight_map is empty");
  if (wm->object.size() > kMaxTensors)
    over_limit(wm->offset, "weight_map has more than " + std::to_string(kMaxTensors) + " entries");
  if (auto dup = json::find_duplicate_key(*wm)) {
    const auto& m = wm->object[*dup];
    bad(m.second.offset, "duplicate tensor '" + m.first + "' in weight_map", &m.first);
  }
  std::vector<std::string> shards;
  std::unordered_set<std::string> seen;
  for (const auto& [tensor, file] : wm->object) {
    if (!file.is_string())
      bad(file.offset, std::string("weight_map value must be a file name string, got ") + json::kind_name(file.kind), &tensor);
    const std::string& f = file.str;
    if (f.empty()) bad(file.offset, "empty shard file name", &tensor);
    if (f == "." || f == "..") bad(file.offset, "shard file name '" + f + "' is not a file", &tensor);
    if (f.find_first_of(std::string_view("/\\\0", 3)) != std::string::npos)
      bad(file.offset, "shard file name '" + f + "' must be a plain name in the index's directory", &tensor);
    if (seen.insert(f).second) shards.push_back(f);
  }
  return shards;
}

}  // namespace wc::st
