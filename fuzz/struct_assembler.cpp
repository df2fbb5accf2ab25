#include "fuzz/struct_assembler.h"

#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <unordered_set>

#include "codec/codec.h"
#include "format/bytes.h"
#include "format/container.h"
#include "format/footer.h"
#include "format/hash.h"
#include "format/header.h"
#include "model/safetensors.h"
#include "format/zframe.h"
#include "fuzz/fuzz_common.h"

namespace wcfuzz::sa {

namespace {

constexpr size_t kMaxChunksAdapted = 4096;        // the payload-count fixup stops here
constexpr uint64_t kMaxSynthRaw = 1u << 20;       // raw bytes of zeros encoded for missing payloads
// Clone tweaks stop at this much manifest (a few thousand records), or with
// sel bit 7 at 4x as much for files (about 10,000 records: a quadratic check
// over their names takes seconds, a linear reader 0.15 s under ASan) and 2x
// for tensors (about 2,500 with their entries in the stored header, which
// the readers parse: 0.2 s). Such inputs are the exception.
constexpr size_t kMaxManifestBytes = 128u << 10;
size_t manifest_cap(uint8_t sel, size_t big) { return sel & 0x80 ? big * kMaxManifestBytes : kMaxManifestBytes; }
// Stored safetensors headers up to this size are checked with the parser.
constexpr uint64_t kMaxParsedHeader = 16u << 10;

struct Cursor {
  const uint8_t* p;
  size_t n, pos = 0;
  size_t left() const { return n - pos; }
  uint64_t le(size_t k) {  // short reads are zero-extended
    uint64_t v = 0;
    for (size_t i = 0; i < k && pos < n; ++i) v |= uint64_t(p[pos++]) << (8 * i);
    return v;
  }
  std::vector<uint8_t> take(uint64_t k) {
    size_t m = size_t(std::min<uint64_t>(k, left()));
    std::vector<uint8_t> v(p + pos, p + pos + m);
    pos += m;
    return v;
  }
};

struct Tweak {
  uint8_t op, sel;
  uint32_t val;
};

std::vector<Tweak> tweaks_of(const Description& d) {
  std::vector<Tweak> v;
  for (size_t i = 0; i + kTweakSize <= d.tweaks.size() && v.size() < kMaxTweaks; i += kTweakSize) {
    const uint8_t* b = d.tweaks.data() + i;
    v.push_back({uint8_t(b[0] % kOpCount), b[1], wc::load_u32(b + 2)});
  }
  return v;
}

bool need(const std::vector<uint8_t>& m, size_t at, uint64_t k) { return at <= m.size() && k <= m.size() - at; }

// Inserts `copies` copies of the record [at, end) right after it; unless
// `same`, each copy's str16 name at `name_at` gets a suffix "#k".
std::vector<uint8_t> copies_of(const std::vector<uint8_t>& m, size_t at, size_t end, size_t name_at, size_t copies,
                               bool same) {
  const size_t name_len = wc::load_u16(m.data() + name_at);
  std::vector<uint8_t> ins((end - at + 8) * copies);
  uint8_t* o = ins.data();
  for (size_t k = 0; k < copies; ++k) {
    char suffix[16];
    size_t sl = same ? 0 : size_t(std::snprintf(suffix, sizeof suffix, "#%zu", k + 1));
    if (name_len + sl > 0xFFFF) sl = 0;
    std::memcpy(o, m.data() + at, name_at - at), o += name_at - at;
    wc::store_u16(o, uint16_t(name_len + sl)), o += 2;
    std::memcpy(o, m.data() + name_at + 2, name_len), o += name_len;
    std::memcpy(o, suffix, sl), o += sl;
    std::memcpy(o, m.data() + name_at + 2 + name_len, end - (name_at + 2 + name_len)), o += end - (name_at + 2 + name_len);
  }
  ins.resize(size_t(o - ins.data()));
  return ins;
}

// Missing payloads are zeros encoded with the tensor's codec; the same few
// (codec, dtype, size) come up again and again, so keep them.
const std::vector<uint8_t>& zeros_encoded(uint8_t codec, wc::DType dt, uint32_t raw) {
  static std::vector<std::pair<uint64_t, std::vector<uint8_t>>> cache;
  const uint64_t key = uint64_t(codec) << 40 | uint64_t(dt) << 32 | raw;
  for (const auto& [k, v] : cache)
    if (k == key) return v;
  if (cache.size() >= 64) cache.erase(cache.begin());
  std::vector<uint8_t> out, zeros(raw);
  try {
    wc::encode_chunk(wc::CodecId(codec), dt, zeros.data(), zeros.size(), out, {});
  } catch (const wc::Error&) {
    out.clear();
  }
  cache.emplace_back(key, std::move(out));
  return cache.back().second;
}

void clone_tensor(std::vector<uint8_t>& m, uint8_t sel, uint32_t val) {
  MLayout L;
  if (!parse_layout(m, L) || L.tensors.empty()) return;
  const size_t ti = sel % L.tensors.size();
  const MTensor t = L.tensors[ti];
  // the record, its name suffix, and the entry the stored header will need for it
  const size_t rec = t.end - t.at + 8 + t.name_len + 8 + 64 + 21 * size_t(t.rank);
  const size_t cap = manifest_cap(sel, 2);
  size_t copies = std::min<size_t>(val & 0xFFFF, (cap - std::min(m.size(), cap)) / rec);
  if (copies == 0) return;
  auto ins = copies_of(m, t.at, t.end, t.at, copies, val >> 31);
  m.insert(m.begin() + long(t.end), ins.begin(), ins.end());
  wc::store_u32(m.data() + 4, uint32_t(L.ntensors + copies));
  for (const auto& f : L.files) {  // file records precede the tensors: their offsets still hold
    if (ti >= f.first && ti - f.first < f.count) wc::store_u32(m.data() + f.count_at(), uint32_t(f.count + copies));
    else if (f.first > ti) wc::store_u32(m.data() + f.first_at(), uint32_t(f.first + copies));
  }
}

void clone_file(std::vector<uint8_t>& m, uint8_t sel, uint32_t val) {
  MLayout L;
  if (!parse_layout(m, L) || L.files.empty()) return;
  const MFile f = L.files[sel % L.files.size()];
  uint64_t covered = 0;
  for (const auto& g : L.files) covered += g.count;
  // An empty safetensors file with f's name and prefix, after the last file.
  wc::ByteWriter w;
  w.u8(0);
  w.u8(0);
  w.u16(uint16_t(f.name_len));
  w.bytes(m.data() + f.at + 4, f.name_len);
  w.u64(f.prefix_len);
  w.u64(0);
  w.u32(uint32_t(covered));
  w.u32(0);
  w.u64(f.prefix_len);
  w.bytes(m.data() + f.prefix_at(), size_t(f.prefix_len));
  const size_t rec = w.buf.size() + 8;
  const size_t cap = manifest_cap(sel, 4);
  size_t copies = std::min<size_t>(val & 0xFFFF, (cap - std::min(m.size(), cap)) / rec);
  if (copies == 0) return;
  auto ins = copies_of(w.buf, 0, w.buf.size(), 2, copies, val >> 31);
  m.insert(m.begin() + long(L.files.back().end), ins.begin(), ins.end());
  wc::store_u32(m.data(), uint32_t(L.nfiles + copies));
}

std::vector<uint8_t> frame(const std::vector<uint8_t>& raw, bool no_size) {
  if (!no_size) return wc::zframe_compress(raw, 1);
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
  std::vector<uint8_t> out(ZSTD_compressBound(raw.size()));
  size_t r = ZSTD_compress2(c, out.data(), out.size(), raw.data(), raw.size());
  ZSTD_freeCCtx(c);
  WC_FUZZ_CHECK(!ZSTD_isError(r));
  out.resize(r);
  return out;
}

// Something after the one zstd frame a manifest or index must be.
void extra_frame(std::vector<uint8_t>& f, uint8_t sel, uint32_t val, const std::vector<uint8_t>& raw) {
  switch (sel % 4) {
    case 0: {  // skippable frame
      uint8_t h[8];
      wc::store_u32(h, 0x184D2A50u + (val & 15));
      uint32_t n = (val >> 4) % 64;
      wc::store_u32(h + 4, n);
      f.insert(f.end(), h, h + 8);
      f.insert(f.end(), n, uint8_t(0xA5));
      break;
    }
    case 1:
      f.insert(f.end(), 1 + val % 8, uint8_t(0));
      break;
    case 2: {
      auto e = wc::zframe_compress({}, 1);
      f.insert(f.end(), e.begin(), e.end());
      break;
    }
    default: {
      std::vector<uint8_t> part(raw.begin(), raw.begin() + long(std::min<size_t>(raw.size(), 1 + val % 64)));
      auto e = wc::zframe_compress(part, 1);
      f.insert(f.end(), e.begin(), e.end());
      break;
    }
  }
}

// The safetensors header (8-byte length, JSON, space padding to a multiple
// of 8) that describes file f's tensor records as they stand in m.
bool st_prefix_for(const std::vector<uint8_t>& m, const MLayout& L, const MFile& f, std::vector<uint8_t>& out) {
  std::string j = "{";
  uint64_t off = 0;
  for (uint32_t i = 0; i < f.count; ++i) {
    const MTensor& t = L.tensors[f.first + i];
    auto dt = wc::dtype_from_id(t.dtype);
    if (!dt) return false;
    j += i ? ",\"" : "\"";
    for (size_t k = 0; k < t.name_len; ++k) {
      const char c = char(m[t.at + 2 + k]);
      if (c == '"' || c == '\\') j += '\\', j += c;
      else if (uint8_t(c) < 0x20) {
        char e[8];
        std::snprintf(e, sizeof e, "\\u%04x", unsigned(uint8_t(c)));
        j += e;
      } else j += c;
    }
    j += "\":{\"dtype\":\"";
    j += wc::dtype_name(*dt);
    j += "\",\"shape\":[";
    for (unsigned r = 0; r < t.rank; ++r) j += (r ? "," : "") + std::to_string(wc::load_u64(m.data() + t.shape_at() + 8 * r));
    j += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + t.byte_size) + "]}";
    off += t.byte_size;
  }
  j += "}";
  while ((8 + j.size()) % 8) j += ' ';
  out.resize(8);
  wc::store_u64(out.data(), j.size());
  out.insert(out.end(), j.begin(), j.end());
  return true;
}

// Whether the stored prefix of file f already describes its records.
bool st_prefix_describes(const std::vector<uint8_t>& m, const MLayout& L, const MFile& f) {
  uint64_t data = 0;
  for (uint32_t i = 0; i < f.count; ++i) data += L.tensors[f.first + i].byte_size;
  try {
    auto h = wc::st::parse_header(m.data() + f.prefix_at(), size_t(f.prefix_len), f.prefix_len + data);
    if (h.data_start != f.prefix_len || h.tensors.size() != f.count) return false;
    uint64_t off = 0;
    for (uint32_t i = 0; i < f.count; ++i) {
      const MTensor& t = L.tensors[f.first + i];
      const auto& s = h.tensors[i];
      if (s.name.size() != t.name_len || std::memcmp(s.name.data(), m.data() + t.at + 2, t.name_len) != 0 ||
          uint8_t(s.dtype) != t.dtype || s.shape.size() != t.rank || s.begin != off || s.end != off + t.byte_size)
        return false;
      for (unsigned r = 0; r < t.rank; ++r)
        if (s.shape[r] != wc::load_u64(m.data() + t.shape_at() + 8 * r)) return false;
      off += t.byte_size;
    }
    return true;
  } catch (const wc::Error&) {
    return false;
  }
}

// Rewrites the prefix of every safetensors file whose stored header does not
// describe its records. Returns whether anything changed.
// Whether file f's stored header describes its records: 1 yes, 0 no, -1
// not known. The header parser builds a tree, which for a header of
// thousands of tensors costs more than the readers' whole run under ASan,
// so a large header is only compared with the one st_prefix_for writes.
int st_prefix_verdict(const std::vector<uint8_t>& m, const MLayout& L, const MFile& f) {
  std::vector<uint8_t> ours;
  if (st_prefix_for(m, L, f, ours) && ours.size() == f.prefix_len &&
      std::memcmp(ours.data(), m.data() + f.prefix_at(), ours.size()) == 0)
    return 1;  // as a writer writes it (its validity is the readers' business)
  if (f.prefix_len > kMaxParsedHeader) return -1;
  return st_prefix_describes(m, L, f) ? 1 : 0;
}

// Rewrites the prefix of every safetensors file whose stored header does not
// describe its records, or may not (too large to check). Returns whether
// anything changed; `verdict[i]`: st_prefix_verdict of file i as it stands
// afterwards (1 for a header written here).
bool regenerate_prefixes(std::vector<uint8_t>& m, const MLayout& L, std::vector<int>& verdict) {
  std::vector<std::vector<uint8_t>> fresh(L.files.size());
  std::vector<bool> redo(L.files.size(), false);
  verdict.assign(L.files.size(), -1);
  bool any = false;
  for (size_t i = 0; i < L.files.size(); ++i) {
    const MFile& f = L.files[i];
    if (f.kind != 0 || f.first > L.ntensors || f.count > L.ntensors - f.first) continue;
    verdict[i] = st_prefix_verdict(m, L, f);
    if (verdict[i] == 1) continue;
    redo[i] = st_prefix_for(m, L, f, fresh[i]);
    if (redo[i]) verdict[i] = 1;
    any |= redo[i];
  }
  if (!any) return false;
  std::vector<uint8_t> out(m.begin(), m.begin() + long(L.files.front().at));
  for (size_t i = 0; i < L.files.size(); ++i) {
    const MFile& f = L.files[i];
    if (!redo[i]) {
      out.insert(out.end(), m.begin() + long(f.at), m.begin() + long(f.end));
      continue;
    }
    out.insert(out.end(), m.begin() + long(f.at), m.begin() + long(f.plen_at()));
    uint8_t l[8];
    wc::store_u64(l, fresh[i].size());
    out.insert(out.end(), l, l + 8);
    out.insert(out.end(), fresh[i].begin(), fresh[i].end());
  }
  out.insert(out.end(), m.begin() + long(L.files.back().end), m.end());
  m = std::move(out);
  return true;
}

// Strict UTF-8 (no overlong forms, no surrogates, at most U+10FFFF), no NUL.
bool utf8_text(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = uint8_t(s[i]);
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || c == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k < n; ++k) {
      const auto b = uint8_t(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = cp << 6 | (b & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

// The largest stored size a reader must take seriously for a chunk of `raw`
// bytes (spec §5), as a u32.
uint32_t largest_claim(uint32_t raw) { return uint32_t(std::min<uint64_t>(wc::max_stored_size(raw), UINT32_MAX)); }

// Spec §4.1 (1.1): UTF-8 without NUL or '\\', at most 4095 bytes, 1 to 32
// components joined by '/', each 1 to 255 bytes and not "." or "..".
bool valid_file_name(std::string_view s) {
  if (s.empty() || s.size() > 4095 || !utf8_text(s) || s.find('\\') != std::string_view::npos) return false;
  size_t parts = 0;
  for (size_t b = 0;;) {
    const size_t e = std::min(s.find('/', b), s.size());
    const std::string_view c = s.substr(b, e - b);
    if (c.empty() || c.size() > 255 || c == "." || c == ".." || ++parts > 32) return false;
    if (e == s.size()) return true;
    b = e + 1;
  }
}

}  // namespace

Description parse(const uint8_t* p, size_t n) {
  Description d;
  Cursor c{p, n};
  d.manifest = c.take(c.le(4));
  size_t k = size_t(c.le(2));
  for (size_t i = 0; i < k && c.left() > 0; ++i) d.chunks.push_back(c.take(c.le(4)));
  d.tweaks = c.take(c.left());
  return d;
}

std::vector<uint8_t> serialize(const Description& d) {
  wc::ByteWriter w;
  w.u32(uint32_t(d.manifest.size()));
  w.bytes(d.manifest.data(), d.manifest.size());
  size_t k = std::min<size_t>(d.chunks.size(), 0xFFFF);
  w.u16(uint16_t(k));
  for (size_t i = 0; i < k; ++i) {
    w.u32(uint32_t(d.chunks[i].size()));
    w.bytes(d.chunks[i].data(), d.chunks[i].size());
  }
  w.bytes(d.tweaks.data(), d.tweaks.size());
  return std::move(w.buf);
}

void add_tweak(Description& d, uint8_t op, uint8_t sel, uint32_t val) {
  uint8_t b[kTweakSize] = {op, sel};
  wc::store_u32(b + 2, val);
  d.tweaks.insert(d.tweaks.end(), b, b + kTweakSize);
}

bool parse_layout(const std::vector<uint8_t>& m, MLayout& L) {
  L = MLayout{};
  if (m.size() < 16) return false;
  const uint8_t* p = m.data();
  L.nfiles = wc::load_u32(p);
  L.ntensors = wc::load_u32(p + 4);
  L.nchunks = wc::load_u32(p + 8);
  size_t pos = 16;
  // The reader's own bound (38 bytes per file, 20 per tensor), so nothing
  // large is reserved for counts the block cannot hold.
  if (uint64_t(L.nfiles) * 38 + uint64_t(L.ntensors) * 20 > m.size() - pos) return false;
  L.files.resize(L.nfiles);
  for (auto& f : L.files) {
    f.at = pos;
    if (!need(m, pos, 4)) return false;
    f.kind = p[pos];
    f.name_len = wc::load_u16(p + pos + 2);
    if (!need(m, pos, 4 + f.name_len + 32)) return false;
    f.first = wc::load_u32(p + f.first_at());
    f.count = wc::load_u32(p + f.count_at());
    f.prefix_len = wc::load_u64(p + f.plen_at());
    if (!need(m, f.prefix_at(), f.prefix_len)) return false;
    pos = f.end = f.prefix_at() + size_t(f.prefix_len);
  }
  L.tensors.resize(L.ntensors);
  for (auto& t : L.tensors) {
    t.at = pos;
    if (!need(m, pos, 2)) return false;
    t.name_len = wc::load_u16(p + pos);
    if (!need(m, pos, 2 + t.name_len + 4)) return false;
    t.dtype = p[t.dtype_at()];
    t.codec = p[t.dtype_at() + 1];
    t.rank = p[t.dtype_at() + 2];
    if (!need(m, t.shape_at(), 8 * size_t(t.rank) + 14)) return false;
    t.byte_size = wc::load_u64(p + t.byte_size_at());
    t.chunk_size = wc::load_u32(p + t.chunk_size_at());
    size_t plen = wc::load_u16(p + t.params_at());
    if (!need(m, t.params_at() + 2, plen)) return false;
    pos = t.end = t.params_at() + 2 + plen;
    t.inline_payload = t.byte_size > 0 && t.chunk_size == 0;
    if (t.inline_payload) {
      if (!need(m, pos, 4)) return false;
      t.payload_len = wc::load_u32(p + pos);
      t.payload_at = pos + 4;
      if (!need(m, t.payload_at, t.payload_len)) return false;
      pos = t.end = t.payload_at + t.payload_len;
    }
  }
  L.tensors_end = pos;
  return true;
}

Assembled assemble(const Description& d) {
  Assembled a;
  auto reject = [&](const char* why) {
    if (!a.must_reject) a.why = why;
    a.must_reject = true;
  };
  const std::vector<Tweak> tw = tweaks_of(d);

  // --- manifest ------------------------------------------------------------
  std::vector<uint8_t> m = d.manifest;
  unsigned fix_off = 0;
  for (const auto& t : tw) {
    if (t.op == kCloneTensor) clone_tensor(m, t.sel, t.val);
    if (t.op == kCloneFile) clone_file(m, t.sel, t.val);
    if (t.op == kFixups) fix_off |= t.val;
  }
  MLayout L;
  bool parsed = parse_layout(m, L);
  if (!parsed) reject("manifest records run past its end");
  // byte_size from shape and dtype (in place), then the stored safetensors
  // headers from the records (which moves everything after them).
  if (parsed && !(fix_off & 1)) {
    for (MTensor& t : L.tensors) {
      auto dt = wc::dtype_from_id(t.dtype);
      if (!dt) continue;
      uint64_t el = 1, bits = 0;
      bool ovf = false;
      for (unsigned r = 0; r < t.rank; ++r) ovf |= __builtin_mul_overflow(el, wc::load_u64(m.data() + t.shape_at() + 8 * r), &el);
      ovf |= __builtin_mul_overflow(el, uint64_t(wc::dtype_bits(*dt)), &bits);
      // (not where it would add or remove an inline payload: the record's length would change)
      if (!ovf && bits % 8 == 0 && (t.chunk_size != 0 || (t.byte_size == 0) == (bits == 0))) {
        t.byte_size = bits / 8;
        wc::store_u64(m.data() + t.byte_size_at(), t.byte_size);
      }
    }
  }
  bool path_names = false;  // some file name is a relative path: a 1.1 container (§3)
  std::vector<int> header_verdict;  // per file: st_prefix_verdict, or 2 when not checked yet
  if (parsed && !(fix_off & 32) && regenerate_prefixes(m, L, header_verdict)) parsed = parse_layout(m, L);
  header_verdict.resize(L.files.size(), 2);

  // Chunks the manifest implies, as (tensor, chunk-in-tensor), listed as far
  // as needed (the payload-count fixup or the payloads given, whichever is more).
  struct ChunkRef {
    uint32_t tensor, chunk;
    uint32_t raw;
  };
  std::vector<ChunkRef> refs;
  uint64_t derived_total = 0;
  const size_t list_max = std::max(kMaxChunksAdapted, d.chunks.size());
  if (parsed) {
    uint8_t* p = m.data();
    if (wc::load_u32(p + 12) != 0) reject("manifest reserved field");
    if (L.nfiles > wc::kMaxFiles || L.ntensors > wc::kMaxTensors) reject("manifest count limit");
    for (uint32_t ti = 0; ti < L.tensors.size(); ++ti) {
      MTensor& t = L.tensors[ti];
      if (p[t.dtype_at() + 3] != 0) reject("tensor reserved field");
      if (!utf8_text(std::string_view(reinterpret_cast<const char*>(p + t.at + 2), t.name_len))) reject("tensor name");
      if (t.codec <= 2 && wc::load_u16(p + t.params_at()) != 0) reject("params for a 1.0 codec");
      if (t.rank > wc::kMaxRank) reject("rank limit");
      auto dt = wc::dtype_from_id(t.dtype);
      if (!dt) {
        reject("unknown dtype");
      } else {
        uint64_t el = 1, bits = 0;
        bool ovf = false;
        for (unsigned r = 0; r < t.rank; ++r) ovf |= __builtin_mul_overflow(el, wc::load_u64(p + t.shape_at() + 8 * r), &el);
        ovf |= __builtin_mul_overflow(el, uint64_t(wc::dtype_bits(*dt)), &bits);
        if (ovf || bits % 8 != 0 || bits / 8 != t.byte_size) reject("byte size vs shape");
      }
      if (t.byte_size > 0 && (t.chunk_size > wc::kMaxChunkSize || t.chunk_size % wc::kAlign != 0))
        reject("invalid chunk size");
      if (t.inline_payload && (t.byte_size > wc::kMaxInlineTensor || t.payload_len > wc::max_stored_size(t.byte_size) ||
                               (t.codec == 0 && t.payload_len != t.byte_size)))
        reject("inline payload size");
      if (t.byte_size == 0 && t.chunk_size != 0) reject("empty tensor with a chunk size");
      uint64_t n = t.byte_size > 0 && t.chunk_size > 0 ? (t.byte_size - 1) / t.chunk_size + 1 : 0;
      for (uint64_t j = 0; j < n && refs.size() < list_max; ++j)
        refs.push_back({ti, uint32_t(j), uint32_t(std::min<uint64_t>(t.chunk_size, t.byte_size - j * t.chunk_size))});
      derived_total += n;  // n < 2^58 and derived_total <= 2^28 + 1 here: no overflow
      if (derived_total > wc::kMaxChunks) derived_total = uint64_t(wc::kMaxChunks) + 1;
    }
    if (derived_total > wc::kMaxChunks) reject("chunk count limit");
    if (!(fix_off & 4) && derived_total <= wc::kMaxChunks) wc::store_u32(p + 8, uint32_t(derived_total));
    if (wc::load_u32(p + 8) != derived_total) reject("manifest chunk count");
    // files: contiguous ranges, names, sizes
    uint64_t expect_first = 0;
    std::unordered_set<std::string_view> names;
    for (auto& f : L.files) {
      if (f.kind > 1) reject("file kind");
      if (p[f.at + 1] != 0) reject("file reserved field");
      std::string_view name(reinterpret_cast<const char*>(p + f.at + 4), f.name_len);
      if (!valid_file_name(name)) reject("file name");
      path_names |= name.find('/') != std::string_view::npos;
      if (!names.insert(name).second) reject("duplicate file name");
      if (f.first != expect_first || uint64_t(f.first) + f.count > L.ntensors) {
        reject("file tensor range");
        expect_first += f.count;
        continue;
      }
      expect_first += f.count;
      if (f.kind == 1 && (f.count != 1 || f.prefix_len != 0)) reject("blob file shape");
      if (f.kind == 1 && f.count == 1 && (L.tensors[f.first].dtype != uint8_t(wc::DType::U8) || L.tensors[f.first].rank != 1))
        reject("blob tensor not U8 of rank 1");
      int& verdict = header_verdict[size_t(&f - L.files.data())];
      if (f.kind == 0 && verdict == 2) verdict = st_prefix_verdict(m, L, f);
      if (f.kind == 0 && verdict == 0) reject("stored safetensors header does not describe the records");
      uint64_t size = f.prefix_len;
      bool ovf = false;
      for (uint32_t i = 0; i < f.count; ++i) ovf |= __builtin_add_overflow(size, L.tensors[f.first + i].byte_size, &size);
      if (!ovf && !(fix_off & 2)) wc::store_u64(p + f.size_at(), size);
      if (ovf || wc::load_u64(p + f.size_at()) != size) reject("file size");
    }
    if (expect_first != L.ntensors) reject("files do not cover the tensors");
  }

  // --- payloads ------------------------------------------------------------
  std::vector<const std::vector<uint8_t>*> chunks;
  for (const auto& c : d.chunks) chunks.push_back(&c);
  std::vector<std::vector<uint8_t>> synth;  // owns the payloads made here
  if (parsed && !(fix_off & 16) && derived_total <= kMaxChunksAdapted) {
    if (chunks.size() > derived_total) chunks.resize(size_t(derived_total));
    synth.reserve(size_t(derived_total) - chunks.size());
    uint64_t budget = kMaxSynthRaw;
    while (chunks.size() < derived_total) {
      const ChunkRef& r = refs[chunks.size()];
      const MTensor& t = L.tensors[r.tensor];
      synth.emplace_back();
      auto dt = wc::dtype_from_id(t.dtype);
      if (r.raw <= budget && dt && wc::codec_id_valid(t.codec) && wc::codec_supports(wc::CodecId(t.codec), *dt)) {
        budget -= r.raw;
        synth.back() = zeros_encoded(t.codec, *dt, r.raw);
      }
      chunks.push_back(&synth.back());
    }
  }
  const size_t count = chunks.size();
  auto nominal_raw = [&](size_t c) -> uint32_t {
    return parsed && c < refs.size() && c < derived_total ? refs[c].raw : uint32_t(chunks[c]->size());
  };

  // Each file's XXH3-64: prefix, then its chunks decoded (within the caps).
  if (parsed && !(fix_off & 8) && count == derived_total) {
    std::vector<uint8_t> buf;
    uint64_t decoded = 0;
    XXH3_state_t* hs = XXH3_createState();
    size_t c = 0;  // chunks are in tensor order, and so are the files' ranges
    for (const auto& f : L.files) {
      if (f.first > L.ntensors || f.count > L.ntensors - f.first) break;
      XXH3_64bits_reset(hs);
      XXH3_64bits_update(hs, m.data() + f.prefix_at(), size_t(f.prefix_len));
      bool ok = true;
      // one stored unit: a chunk, or an inline tensor's payload
      auto add = [&](const MTensor& t, const uint8_t* stored, size_t n, uint64_t raw) {
        auto dt = wc::dtype_from_id(t.dtype);
        if (!dt || !wc::codec_id_valid(t.codec) || raw > kMaxDecodeChunk || decoded + raw > kMaxDecodeTotal) return false;
        decoded += raw;
        buf.resize(size_t(raw));
        if (wc::decode_chunk(wc::CodecId(t.codec), *dt, stored, n, buf.data(), size_t(raw)) != wc::Errc::ok) return false;
        XXH3_64bits_update(hs, buf.data(), size_t(raw));
        return true;
      };
      while (c < count && refs[c].tensor < f.first) ++c;
      for (uint32_t ti = f.first; ok && ti < f.first + f.count; ++ti) {
        const MTensor& t = L.tensors[ti];
        if (t.inline_payload) ok = add(t, m.data() + t.payload_at, t.payload_len, t.byte_size);
        for (; ok && c < count && refs[c].tensor == ti; ++c) ok = add(t, chunks[c]->data(), chunks[c]->size(), refs[c].raw);
      }
      if (ok) wc::store_u64(m.data() + f.xxh_at(), XXH3_64bits_digest(hs));
    }
    XXH3_freeState(hs);
  }

  // --- container tweaks, gathered per place ----------------------------------
  bool m_nosize = false, i_nosize = false;
  int64_t m_raw_delta = 0, i_raw_delta = 0, i_count_delta = 0, f_size_delta = 0, f_ioff_delta = 0;
  std::vector<Tweak> m_frames, i_frames, entry_tw;
  struct ChunkTw {
    bool drop = false, gap = false, pad = false;
    uint8_t pad_val = 0;
    std::vector<Tweak> header;
  };
  std::vector<ChunkTw> ct(count + 1);  // [count]: before the index
  uint8_t header_b[64] = {}, footer_b[64] = {};
  struct Patch {
    bool footer;
    size_t at, width;
    uint32_t val;
  };
  std::vector<Patch> patches;  // to the header / footer bytes
  size_t extra_entries = 0;
  for (const auto& t : tw) {
    const size_t cs = count ? t.sel % count : 0;
    const size_t place = t.sel == 255 ? count : t.sel % (count + 1);  // count: before the index
    switch (t.op) {
      case kVersionMinor: patches.push_back({false, 10, 2, t.val}); patches.push_back({true, 42, 2, t.val}); break;
      case kHeaderMinor: patches.push_back({false, 10, 2, t.val}); break;
      case kFooterMinor: patches.push_back({true, 42, 2, t.val}); break;
      case kVersionMajor: patches.push_back({false, 8, 2, t.val}); patches.push_back({true, 40, 2, t.val}); break;
      case kHeaderFlags: patches.push_back({false, 12, 4, t.val}); break;
      case kHeaderReserved: patches.push_back({false, 40u + t.sel % 16u, 1, t.val}); break;
      case kFooterFlags: patches.push_back({true, 44, 4, t.val}); break;
      case kManifestRawDelta: m_raw_delta += int32_t(t.val); break;
      case kManifestFrame: m_frames.push_back(t); break;
      case kManifestNoSize: m_nosize = true; break;
      case kIndexRawDelta: i_raw_delta += int32_t(t.val); break;
      case kIndexFrame: i_frames.push_back(t); break;
      case kIndexNoSize: i_nosize = true; break;
      case kIndexCount: i_count_delta += int32_t(t.val); break;
      case kEntryOffset: case kEntryStored: case kEntryRaw: case kEntryHash: entry_tw.push_back(t); break;
      case kChunkSeq: case kChunkStored: case kChunkHash: if (count) ct[cs].header.push_back(t); break;
      case kPadding: ct[place].pad = true; ct[place].pad_val = uint8_t(t.val | 1); break;
      case kGap: ct[place].gap = true; break;
      case kDropChunk: if (count) ct[cs].drop = true; break;
      case kExtraEntry: ++extra_entries; break;
      case kFooterFileSize: f_size_delta += int32_t(t.val); break;
      case kFooterIndexOffset: f_ioff_delta += int32_t(t.val); break;
      default: break;  // manifest tweaks, applied above
    }
  }

  // --- header and manifest -----------------------------------------------------
  std::vector<uint8_t> mframe = frame(m, m_nosize);
  if (m_nosize) reject("manifest frame without content size");
  for (const auto& t : m_frames) extra_frame(mframe, t.sel, t.val, m);
  if (!m_frames.empty()) reject("data after the manifest frame");
  wc::FileHeader h;
  h.major = wc::kVersionMajor;
  bool inlined = false;
  for (const MTensor& t : L.tensors) inlined |= t.inline_payload;
  h.minor = inlined ? 4 : path_names ? 1 : 0;  // as a writer does (§3): 1.1 only when a name is a path, 1.4 with inline tensors
  h.manifest_stored = mframe.size();
  h.manifest_raw = uint64_t(int64_t(m.size()) + m_raw_delta);
  if (h.manifest_raw != m.size()) reject("manifest_raw");
  if (m.size() > wc::max_meta_raw_size(mframe.size())) reject("manifest ratio limit");
  h.manifest_xxh3 = XXH3_64bits(mframe.data(), mframe.size());
  std::vector<uint8_t> out(wc::kHeaderSize);
  out.insert(out.end(), mframe.begin(), mframe.end());

  // --- chunks ---------------------------------------------------------------
  std::vector<wc::ChunkEntry> idx;
  idx.reserve(count);
  uint32_t seq = 0;
  for (size_t c = 0; c <= count; ++c) {
    const ChunkTw& x = ct[c];
    if (c < count && x.drop) {
      reject("chunk left out");
      continue;
    }
    if (x.gap) {
      out.resize(out.size() + wc::kAlign);
      reject("gap before a chunk or the index");
    }
    const size_t prev_end = out.size();
    const uint64_t off = c < count ? wc::next_payload_offset(prev_end) : wc::align_up(prev_end, wc::kAlign);
    const size_t pad_end = size_t(c < count ? off - wc::kChunkHeaderSize : off);
    out.resize(pad_end);
    if (x.pad && pad_end > prev_end) {
      out[prev_end] = x.pad_val;
      reject("non-zero padding");
    }
    if (c == count) break;
    const std::vector<uint8_t>& pl = *chunks[c];
    wc::ChunkEntry e;
    e.offset = off;
    e.stored_size = uint32_t(pl.size());
    e.raw_size = nominal_raw(c);
    e.xxh3 = XXH3_64bits(pl.data(), pl.size());
    uint8_t ch[wc::kChunkHeaderSize];
    wc::store_u32(ch, e.stored_size);
    wc::store_u32(ch + 4, seq);
    wc::store_u64(ch + 8, e.xxh3);
    for (const auto& t : x.header) {
      if (t.op == kChunkSeq) wc::store_u32(ch + 4, t.val);
      if (t.op == kChunkStored) wc::store_u32(ch, t.val == UINT32_MAX ? largest_claim(e.raw_size) : t.val);
      if (t.op == kChunkHash) wc::store_u64(ch + 8, wc::load_u64(ch + 8) ^ t.val);
    }
    if (wc::load_u32(ch) != e.stored_size || wc::load_u32(ch + 4) != seq || wc::load_u64(ch + 8) != e.xxh3)
      reject("chunk header lies");
    out.insert(out.end(), ch, ch + sizeof ch);
    out.insert(out.end(), pl.begin(), pl.end());
    idx.push_back(e);
    ++seq;
  }
  if (parsed && seq != derived_total) reject("payload count differs from the manifest");
  const uint64_t index_off = out.size();

  // --- index and footer ---------------------------------------------------------
  const std::vector<wc::ChunkEntry> actual = idx;
  for (const auto& t : entry_tw) {
    if (idx.empty()) break;
    wc::ChunkEntry& e = idx[t.sel % idx.size()];
    if (t.op == kEntryOffset) e.offset += uint64_t(int64_t(int32_t(t.val)));
    if (t.op == kEntryStored) e.stored_size = t.val == UINT32_MAX ? largest_claim(e.raw_size) : t.val;
    if (t.op == kEntryRaw) e.raw_size = t.val;
    if (t.op == kEntryHash) e.xxh3 ^= t.val;
  }
  for (size_t i = 0; i < idx.size(); ++i) {
    const auto &e = idx[i], &x = actual[i];
    if (e.offset != x.offset || e.stored_size != x.stored_size || e.xxh3 != x.xxh3 || e.raw_size != x.raw_size)
      reject("index entry lies");
  }
  for (size_t k = 0; k < extra_entries; ++k) idx.push_back(idx.empty() ? wc::ChunkEntry{} : idx.back());
  if (extra_entries) reject("extra index entry");
  std::vector<uint8_t> iraw = wc::encode_index(idx);
  if (i_count_delta) {
    wc::store_u64(iraw.data(), wc::load_u64(iraw.data()) + uint64_t(i_count_delta));
    reject("index count");
  }
  std::vector<uint8_t> iframe = frame(iraw, i_nosize);
  if (i_nosize) reject("index frame without content size");
  for (const auto& t : i_frames) extra_frame(iframe, t.sel, t.val, iraw);
  if (!i_frames.empty()) reject("data after the index frame");
  out.insert(out.end(), iframe.begin(), iframe.end());
  wc::FileFooter f;
  f.index_offset = index_off + uint64_t(f_ioff_delta);
  f.index_stored = iframe.size();
  f.index_raw = uint64_t(int64_t(iraw.size()) + i_raw_delta);
  f.index_xxh3 = XXH3_64bits(iframe.data(), iframe.size());
  f.file_size = out.size() + wc::kFooterSize + uint64_t(f_size_delta);
  f.major = wc::kVersionMajor;
  f.minor = h.minor;
  if (f_ioff_delta || f_size_delta || i_raw_delta) reject("footer lies");
  if (iraw.size() > wc::max_meta_raw_size(iframe.size())) reject("index ratio limit");

  wc::write_file_header(h, header_b);
  wc::write_file_footer(f, footer_b);
  for (const auto& pt : patches) {
    uint8_t* b = (pt.footer ? footer_b : header_b) + pt.at;
    for (size_t k = 0; k < pt.width; ++k) b[k] = uint8_t(pt.val >> (8 * k));
  }
  wc::store_u64(header_b + 56, XXH3_64bits(header_b, 56));
  wc::store_u64(footer_b + 48, XXH3_64bits(footer_b, 48));
  if (wc::load_u16(header_b + 8) != wc::kVersionMajor || wc::load_u16(footer_b + 40) != wc::kVersionMajor)
    reject("major version");
  if (wc::load_u16(header_b + 10) != wc::load_u16(footer_b + 42)) reject("minor versions differ");
  if (path_names && wc::load_u16(header_b + 10) == 0) reject("path file name in a 1.0 container");
  if (wc::load_u32(header_b + 12) != 0 || wc::load_u32(footer_b + 44) != 0) reject("flags");
  for (int i = 40; i < 56; ++i)
    if (header_b[i] != 0) reject("header reserved bytes");
  std::memcpy(out.data(), header_b, 64);
  out.insert(out.end(), footer_b, footer_b + 64);
  a.bytes = std::move(out);
  return a;
}

Description describe(const std::vector<uint8_t>& wcz) {
  const uint8_t* p = wcz.data();
  const uint64_t n = wcz.size();
  if (n < wc::kHeaderSize + wc::kFooterSize) wc::fail(wc::Errc::truncated, "describe: not a container");
  wc::FileHeader h = wc::read_file_header(p, n);
  wc::FileFooter f = wc::read_file_footer(p + n - wc::kFooterSize, n - wc::kFooterSize);
  Description d;
  d.manifest = wc::zframe_decompress(p + wc::kHeaderSize, size_t(h.manifest_stored), h.manifest_raw, "manifest", wc::kHeaderSize);
  auto iraw = wc::zframe_decompress(p + f.index_offset, size_t(f.index_stored), f.index_raw, "index", f.index_offset);
  for (const auto& e : wc::decode_index(iraw.data(), iraw.size(), f.index_offset)) {
    if (e.offset > n || e.stored_size > n - e.offset) wc::fail(wc::Errc::corrupt, "describe: chunk outside the file");
    d.chunks.emplace_back(p + e.offset, p + e.offset + e.stored_size);
  }
  return d;
}

bool ignored(const char* tag, std::string_view detail) {
  static const std::vector<std::string> list = [] {
    std::vector<std::string> v;
    const char* e = std::getenv("WCODEC_FUZZ_IGNORE");
    std::string s = e ? e : "";
    for (size_t a = 0; a <= s.size();) {
      size_t b = std::min(s.find(',', a), s.size());
      if (b > a) v.push_back(s.substr(a, b - a));
      a = b + 1;
    }
    return v;
  }();
  const std::string_view t(tag);
  for (const auto& x : list) {
    if (x == t) return true;
    if (x.size() > t.size() && x.compare(0, t.size(), t) == 0 && x[t.size()] == '~' &&
        detail.find(std::string_view(x).substr(t.size() + 1)) != std::string_view::npos)
      return true;
  }
  return false;
}

}  // namespace wcfuzz::sa
