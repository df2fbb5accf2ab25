// "One truth per file": a container's file records against the safetensors
// headers they store. Each safetensors file record's stored header must
// describe exactly that file's tensor records; no tensor name may repeat in a
// file. A checksum-valid container can lie in any of these ways (XXH3 is not
// a cryptographic hash), so every reader in lib/ runs these checks (the
// readers' ManifestCheck) before anything is listed, decoded or written. The
// container's own rules (names, counts, sizes) are format/'s decode_manifest.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "format/container.h"

namespace wc {

// Before any tensor record is read: a safetensors file record's stored
// header must parse, end where the prefix ends, and list as many tensors as
// the record claims (offset `at`, the record's). The header's own bytes bound
// the work, so a record that claims millions of tensors its header does not
// list costs nothing. Other kinds of file pass.
void check_header_count(const FileRecord& f, uint64_t at);

// Once the records are read: a safetensors file's stored header lists exactly
// its tensor records, in order, with their dtypes, shapes and sizes, and no
// tensor name repeats in the file (offset `base`, the manifest's; file and
// tensor named). O(n log n) in the file's records; memory linear in them.
// Other kinds of file pass.
void check_file_tensors(const Manifest& m, const FileRecord& f, uint64_t base);

// The ManifestCheck every reader in lib/ passes: both checks above. Throws
// Errc::corrupt (Errc::limit where a stored header breaks a limit) on the
// first violation of spec §4.1's consistency rules.
inline constexpr ManifestCheck check_manifest_files{check_header_count, check_file_tensors};

// A blob with this name suffix is a sharded model's index.
bool is_shard_index_name(std::string_view name);

// The decoded bytes of shard index `f` must parse as a safetensors index whose
// weight_map names only safetensors files of this container, by plain file
// names. Throws Errc::corrupt (offset `base`) otherwise.
void check_shard_index(const Manifest& m, const FileRecord& f, const uint8_t* p, size_t n, uint64_t base);

}  // namespace wc
