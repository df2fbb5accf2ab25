// The checks every reader in lib/ (and the tests and fuzz targets that read
// as lib/ does) runs while a manifest is decoded: each file record against
// its stored safetensors header (model/), each lossy record against its
// representation's rules (quant/), and the pools decoded into their
// members' records (lib/pools.h).
#pragma once
#include "format/container.h"
#include "model/file_check.h"
#include "lib/pools.h"
#include "quant/repr.h"

namespace wc {

inline constexpr ManifestCheck kReaderChecks{check_header_count, check_file_tensors, check_repr_record, resolve_pools};

}  // namespace wc
