#include "format/file_check.h"

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "format/error.h"
#include "format/safetensors.h"
#include "format/text.h"

namespace wc {

bool valid_record_text(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_seq_len(s, i);
    if (n == 0 || s[i] == '\0') return false;
    i += n;
  }
  return true;
}

bool valid_file_name(std::string_view s) {
  if (s.empty() || s == "." || s == ".." || s.size() > kMaxFileNameLen || !valid_record_text(s)) return false;
  return s.find_first_of("/\\") == std::string_view::npos;
}

bool is_shard_index_name(std::string_view name) {
  constexpr std::string_view suffix = ".safetensors.index.json";
  return name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
}

namespace {

[[noreturn]] void refuse(uint64_t base, const FileRecord& f, const std::string& msg, const std::string* tensor = nullptr) {
  Error e(Errc::corrupt, "file '" + f.name + "': " + msg);
  e.at_offset(base);
  if (tensor) e.at_tensor(*tensor);
  throw e;
}

std::string shape_text(const std::vector<uint64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? "," : "") + std::to_string(s[i]);
  return o + "]";
}

// The stored header (the file's first 8 + N bytes) must parse as safetensors
// and list exactly the file's tensor records, in the same order (the order of
// their data offsets), with the same dtypes and shapes; the data section it
// describes is then exactly the records' bytes, back to back.
void check_safetensors_file(const Manifest& m, const FileRecord& f, uint64_t base) {
  st::Header h;
  try {
    h = st::parse_header(f.prefix.data(), f.prefix.size(), f.size);
  } catch (const Error& e) {
    refuse(base, f, std::string("stored safetensors header is invalid: ") + e.what());
  }
  if (h.data_start != f.prefix.size())
    refuse(base, f, "stored prefix is " + std::to_string(f.prefix.size()) + " bytes but its header ends at byte " +
                        std::to_string(h.data_start));
  if (h.tensors.size() != f.tensor_count)
    refuse(base, f, "stored header lists " + std::to_string(h.tensors.size()) + " tensors, the container holds " +
                        std::to_string(f.tensor_count));
  for (uint32_t i = 0; i < f.tensor_count; ++i) {
    const TensorRecord& t = m.tensors[f.first_tensor + i];
    const st::TensorInfo& s = h.tensors[i];
    if (s.name != t.name)
      refuse(base, f, "stored header names tensor " + std::to_string(i) + " (in data order) '" + s.name + "'", &t.name);
    if (s.dtype != t.dtype || s.shape != t.shape)
      refuse(base, f, "stored header says " + std::string(dtype_name(s.dtype)) + " " + shape_text(s.shape) +
                          ", the record " + std::string(dtype_name(t.dtype)) + " " + shape_text(t.shape), &t.name);
    if (s.end - s.begin != t.byte_size)  // follows from dtype and shape; kept as a guard
      refuse(base, f, "stored header and record disagree on the byte size", &t.name);
  }
}

}  // namespace

void check_file_records(const Manifest& m, uint64_t base) {
  // Distinct file names: sort, then compare neighbours (65,536 names sort in
  // milliseconds where comparing every pair took minutes).
  std::vector<uint32_t> order(m.files.size());
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return m.files[a].name < m.files[b].name; });
  for (size_t i = 1; i < order.size(); ++i)
    if (m.files[order[i]].name == m.files[order[i - 1]].name)
      refuse(base, m.files[order[i]], "the name is used by two file records");
  for (const auto& t : m.tensors)
    if (!valid_record_text(t.name)) {
      Error e(Errc::corrupt, "tensor name contains NUL or is not valid UTF-8");
      e.at_offset(base).at_tensor(t.name);
      throw e;
    }
  for (const auto& f : m.files) {
    if (f.kind == FileKind::safetensors) {
      check_safetensors_file(m, f, base);
    } else {
      const TensorRecord& t = m.tensors[f.first_tensor];
      if (t.dtype != DType::U8 || t.shape.size() != 1) refuse(base, f, "a blob's tensor must be U8 of rank 1", &t.name);
    }
  }
}

void check_shard_index(const Manifest& m, const FileRecord& f, const uint8_t* p, size_t n, uint64_t base) {
  std::vector<std::string> shards;
  try {
    shards = st::parse_shard_index(p, n);
  } catch (const Error& e) {
    refuse(base, f, std::string("shard index is invalid: ") + e.what());
  }
  std::vector<const std::string*> present;
  for (const auto& g : m.files)
    if (g.kind == FileKind::safetensors) present.push_back(&g.name);
  std::sort(present.begin(), present.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
  for (const auto& s : shards) {
    auto it = std::lower_bound(present.begin(), present.end(), s, [](const std::string* a, const std::string& b) { return *a < b; });
    if (it == present.end() || **it != s)
      refuse(base, f, "shard index maps tensors to '" + s + "', which is not a safetensors file in this container");
  }
}

}  // namespace wc
