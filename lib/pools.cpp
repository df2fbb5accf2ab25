#include "lib/pools.h"

#include <string>

#include "codec/auto_select.h"

namespace wc {

size_t make_pools(Manifest& m, const std::vector<const uint8_t*>& data, const EncodeOptions& eo) {
  for (DType dt : kPoolDTypes) {
    std::vector<uint32_t> members;
    std::vector<uint8_t> raw;
    uint64_t own = 0;  // the members' own payloads
    for (uint32_t i = 0; i < m.tensors.size(); ++i) {
      const TensorRecord& t = m.tensors[i];
      if (t.dtype != dt || !t.inline_exact() || t.codec == kCodecPooled || raw.size() + t.byte_size > kMaxPoolRaw)
        continue;
      members.push_back(i);
      raw.insert(raw.end(), data[i], data[i] + t.byte_size);
      own += t.payload.size();
    }
    if (members.size() < 2) continue;
    // the pool as a one-chunk tensor: chunk sizes are multiples of 64
    const uint32_t chunk = uint32_t((raw.size() + kAlign - 1) / kAlign * kAlign);
    CodecPlan plan = plan_codec(dt, raw.data(), raw.size(), chunk, eo, 0);
    std::vector<uint8_t> payload;
    if (!take_sample(plan, 0, payload))
      encode_chunk(plan.codec, dt, raw.data(), raw.size(), payload, chunk_options(eo, plan, dt, chunk, 0, raw.data(), raw.size()));
    if (payload.size() + 64 > own || double(payload.size()) > 0.99 * double(own)) continue;
    if (raw.size() > kPoolRawPerStored * payload.size() + (uint64_t(1) << 16)) continue;  // §4.6's bound
    PoolRecord q;
    q.dtype = dt;
    q.codec = static_cast<uint8_t>(plan.codec);
    q.payload = std::move(payload);
    m.pools.push_back(std::move(q));
    for (uint32_t i : members) {
      m.tensors[i].codec = kCodecPooled;
      m.tensors[i].payload.clear();
    }
  }
  if (!m.pools.empty()) link_pools(m);
  return m.pools.size();
}

void resolve_pools(Manifest& m) {
  // every pool decoded (at most 5 dtypes x 2^24 bytes, link_pools checked),
  // then one pass hands each member its bytes
  std::vector<std::vector<uint8_t>> raw(m.pools.size());
  for (size_t k = 0; k < m.pools.size(); ++k) {
    const PoolRecord& q = m.pools[k];
    raw[k].resize(q.raw_size);
    const Errc e = decode_chunk(static_cast<CodecId>(q.codec), q.dtype, q.payload.data(), q.payload.size(),
                                raw[k].data(), raw[k].size());
    if (e != Errc::ok) {
      Error err(Errc::corrupt, "the pool of " + std::string(dtype_name(q.dtype)) + " tensors does not decode (codec " +
                                   std::to_string(q.codec) + ") to its members' " + std::to_string(q.raw_size) + " bytes");
      err.at_offset(q.offset);
      throw err;
    }
  }
  std::vector<uint64_t> at(m.pools.size(), 0);
  for (auto& t : m.tensors) {
    if (t.pool == UINT32_MAX) continue;
    const uint8_t* b = raw[t.pool].data() + at[t.pool];
    t.payload.assign(b, b + t.byte_size);
    t.codec = 0;
    at[t.pool] += t.byte_size;
  }
}

}  // namespace wc
