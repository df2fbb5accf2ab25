// Pools (container 1.8 / 2.13, spec/FORMAT.md §4.6): the tiny inline exact
// tensors of one dtype coded together as one chunk, so that they share one
// float-ans table and header instead of paying one each.
#pragma once
#include <cstdint>
#include <vector>

#include "codec/codec.h"
#include "format/container.h"

namespace wc {

// Writer: for each dtype float-ans codes, the inline exact tensors of that
// dtype (`data[i]`: tensor i's bytes; their payloads already coded) pooled
// where `--codec auto`'s choice for the pool as one chunk (`eo`) gives a
// payload at least 64 bytes and 1% smaller than their own payloads together,
// and no larger than §4.6's bounds allow: the members take codec 9 and give
// up their payloads, m.pools gets the pool. Returns the number of pools.
size_t make_pools(Manifest& m, const std::vector<const uint8_t*>& data, const EncodeOptions& eo);

// Reader (ManifestCheck::pools): decodes each pool and gives each member its
// bytes as an inline payload of codec 0 (its pool stays linked for inspect);
// a pool that does not decode to its raw size is an error (corrupt) that
// names its dtype and the offset of its record in the manifest.
void resolve_pools(Manifest& m);

}  // namespace wc
