#include "model/file_check.h"

#include <algorithm>
#include <string>
#include <vector>

#include "format/bytes.h"
#include "platform/error.h"
#include "model/json.h"
#include "model/safetensors.h"

namespace wc {

bool is_shard_index_name(std::string_view name) {
  constexpr std::string_view suffix = ".safetensors.index.json";
  return name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
}

namespace {

[[noreturn]] void refuse(uint64_t base, const FileRecord& f, const std::string& msg, const std::string* tensor = nullptr,
                         Errc code = Errc::corrupt) {
  Error e(code, "file '" + f.name + "': " + msg);
  e.at_offset(base);
  if (tensor) e.at_tensor(*tensor);
  throw e;
}

// A stored header that breaks a limit keeps Errc::limit; anything else the
// safetensors parser refuses makes the container corrupt.
[[noreturn]] void header_error(uint64_t base, const FileRecord& f, const Error& e) {
  refuse(base, f, std::string("stored safetensors header is invalid: ") + e.what(), nullptr,
         e.code() == Errc::limit ? Errc::limit : Errc::corrupt);
}

std::string shape_text(const std::vector<uint64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? "," : "") + std::to_string(s[i]);
  return o + "]";
}

// The stored header (the file's first 8 + N bytes) must parse as safetensors
// and list exactly the file's tensor records, in the same order (the order of
// their data offsets, ties in document order), with the same dtypes and
// shapes; the data section it describes is then exactly the records' bytes,
// back to back. The header is walked entry by entry (no tree of its JSON) and
// each entry goes to the record at its data offset (a binary search over the
// records' offsets; empty tensors sharing an offset are taken in document
// order), so matching costs O(n log n) integer comparisons and one name
// comparison an entry; memory is 12 bytes a record.
void check_safetensors_file(const Manifest& m, const FileRecord& f, uint64_t base) {
  const TensorRecord* rec = m.tensors.data() + f.first_tensor;
  const uint32_t n = f.tensor_count;
  std::vector<uint64_t> start(n);  // data offset of each record
  uint64_t off = 0;
  for (uint32_t i = 0; i < n; ++i) start[i] = off, off += rec[i].byte_size;
  std::vector<uint32_t> taken(n, 0);  // per record: matched (non-empty); at a group's first empty record: empties matched
  try {
    st::scan_header(f.prefix.data(), f.prefix.size(), f.size, [&](st::TensorInfo&& s, const st::EntryPos&) {
      const uint32_t g = uint32_t(std::lower_bound(start.begin(), start.end(), s.begin) - start.begin());
      uint32_t k = g;
      if (g < n) {
        if (s.end == s.begin) k = g + taken[g]++;  // the next empty record at this offset
        else
          while (k < n && start[k] == s.begin && rec[k].byte_size == 0) ++k;  // empties at an offset come first
      }
      if (k >= n || start[k] != s.begin || (rec[k].byte_size == 0) != (s.end == s.begin))
        refuse(base, f, "stored header lists tensor '" + s.name + "' at data offset " + std::to_string(s.begin) +
                            ", where no record of that size begins");
      const TensorRecord& t = rec[k];
      // a non-empty record's slot is its own flag (only an empty record's slot counts a group)
      if (t.byte_size != 0 && taken[k]++) refuse(base, f, "stored header lists two tensors at one data offset", &t.name);
      if (s.name != t.name)
        refuse(base, f, "stored header names the tensor at data offset " + std::to_string(s.begin) + " '" + s.name + "'",
               &t.name);
      if (s.dtype != t.dtype || s.shape != t.shape)
        refuse(base, f, "stored header says " + std::string(dtype_name(s.dtype)) + " " + shape_text(s.shape) +
                            ", the record " + std::string(dtype_name(t.dtype)) + " " + shape_text(t.shape), &t.name);
      if (s.end - s.begin != t.byte_size) refuse(base, f, "stored header and record disagree on the byte size", &t.name);
    });
  } catch (const Error& e) {
    if (e.code() == Errc::corrupt) throw;
    header_error(base, f, e);
  }
  // Names repeat nowhere in a file (the safetensors header may not repeat a
  // key; the records now carry the header's names): hashed, then sorted.
  {
    std::vector<std::string_view> names(n);
    for (uint32_t i = 0; i < n; ++i) names[i] = rec[i].name;
    if (auto dup = json::find_duplicate(names)) refuse(base, f, "two tensors have the same name", &rec[*dup].name);
  }
  // check_header_count made the header's entry count equal n, and no record
  // is handed out twice (the flag, the group counter), so every record was
  // matched exactly once.
}

}  // namespace

void check_header_count(const FileRecord& f, uint64_t at) {
  if (f.kind != FileKind::safetensors) return;
  // The prefix is all the header there is: a length beyond it is a lie about
  // this file, whatever limit it also breaks.
  if (f.prefix.size() < 8 || load_u64(f.prefix.data()) > f.prefix.size() - 8)
    refuse(at, f, "stored prefix of " + std::to_string(f.prefix.size()) + " bytes does not hold its safetensors header");
  uint64_t count = 0, json_len = 0;
  try {
    json_len = st::scan_header(f.prefix.data(), f.prefix.size(), f.size,
                               [&](st::TensorInfo&&, const st::EntryPos&) { ++count; });
  } catch (const Error& e) {
    header_error(at, f, e);
  }
  if (8 + json_len != f.prefix.size())
    refuse(at, f, "stored prefix is " + std::to_string(f.prefix.size()) + " bytes but its header ends at byte " +
                      std::to_string(8 + json_len));
  if (count != f.tensor_count)
    refuse(at, f, "stored header lists " + std::to_string(count) + " tensors, the record claims " +
                      std::to_string(f.tensor_count));
}

void check_file_tensors(const Manifest& m, const FileRecord& f, uint64_t base) {
  if (f.kind == FileKind::safetensors) check_safetensors_file(m, f, base);
}

void check_shard_index(const Manifest& m, const FileRecord& f, const uint8_t* p, size_t n, uint64_t base) {
  std::vector<std::string> shards;
  try {
    shards = st::parse_shard_index(p, n);
  } catch (const Error& e) {
    refuse(base, f, std::string("shard index is invalid: ") + e.what());
  }
  // Shard names are plain names in the index's own folder (a model folder's
  // subfolder, e.g. unet/, has its own index).
  const size_t slash = f.name.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : f.name.substr(0, slash + 1);
  std::vector<const std::string*> present;
  for (const auto& g : m.files)
    if (g.kind == FileKind::safetensors) present.push_back(&g.name);
  std::sort(present.begin(), present.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
  for (const auto& s : shards) {
    const std::string full = dir + s;
    auto it = std::lower_bound(present.begin(), present.end(), full,
                               [](const std::string* a, const std::string& b) { return *a < b; });
    if (it == present.end() || **it != full)
      refuse(base, f, "shard index maps tensors to '" + s + "', which is not a safetensors file in this container");
  }
}

}  // namespace wc
