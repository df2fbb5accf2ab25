// Semantic checks on a decoded manifest: its parts must tell one story. Each
// safetensors file record's stored header must describe exactly that file's
// tensor records; names must be text a terminal and a file system can take;
// no name may repeat where a reader looks names up. A checksum-valid file can
// lie in any of these ways (XXH3 is not a cryptographic hash), so readers run
// these checks before anything is written or reported.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "format/container.h"

namespace wc {

// Names of tensors and files: no NUL, valid UTF-8 (spec §4.1, §4.2).
bool valid_record_text(std::string_view s);
// A file record's name: valid text, 1..255 bytes, no '/' or '\\', not "." or "..".
bool valid_file_name(std::string_view s);

// Before any tensor record is read: a safetensors file record's stored
// header must parse, end where the prefix ends, and list as many tensors as
// the record claims. The header's own bytes bound the work, so a record that
// claims millions of tensors its header does not list costs nothing.
void check_header_count(const FileRecord& f, uint64_t at);

// Throws Errc::corrupt (offset `base`, the manifest's, file and tensor named)
// on the first violation of spec §4.1's consistency rules. O(n log n) in the
// number of records; memory linear in them.
void check_file_records(const Manifest& m, uint64_t base);

// A blob with this name suffix is a sharded model's index.
bool is_shard_index_name(std::string_view name);

// The decoded bytes of shard index `f` must parse as a safetensors index whose
// weight_map names only safetensors files of this container, by plain file
// names. Throws Errc::corrupt (offset `base`) otherwise.
void check_shard_index(const Manifest& m, const FileRecord& f, const uint8_t* p, size_t n, uint64_t base);

}  // namespace wc
