// The residual coder of the levels above 0 fed arbitrary bytes — the exact
// top layer (spec/EXACT_TOP.md) and refinement levels (spec/REFINE.md) —
// and its encoder round trip.
//
// Input: byte 0: bits 0-1 the dtype (BF16, F16, F32), bit 6 a refinement
// level (its tables and codes) rather than the exact top layer, bit 7 round
// trip;
// byte 1: the base exponent (-40 + byte % 64); bytes 2, 3: rows (1..16) and
// cols (1..64).
// Decode (bit 7 clear): bytes 4, 5: the tables' length (u16 LE, capped by
// what follows); then the tables, then the tile payload; the level-0 bits
// are a fixed pattern. Checks: parse_tables and apply_tile stay inside their
// buffers (ASan, and canaries) and return ok or Errc::codec, deterministically.
// Round trip (bit 7 set): the rest of the input gives the originals and the
// level-0 bits (as many as it holds, then a pattern), and the rows' step
// bytes; counted, coded, and applied back they must give the originals (a
// refinement level: the values its codes make of the level below, with the
// level's divisor 2 + the byte after the step bytes).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "format/bytes.h"
#include "fuzz/fuzz_common.h"
#include "quant/exact_top.h"
#include "quant/float_load.h"
#include "quant/refine_math.h"

namespace {

uint8_t byte_at(const uint8_t* d, size_t n, size_t i) { return i < n ? d[i] : uint8_t(i * 131 + 7); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  static constexpr uint32_t kTypes[] = {9, 8, 12};  // BF16, F16, F32 (dtype ids)
  const uint32_t dt = kTypes[(data[0] & 3) % 3];
  const unsigned wb = dt == 12 ? 4 : 2;
  const int32_t base = -40 + int32_t(data[1] % 64);
  const uint64_t rows = 1 + data[2] % 16, cols = 1 + data[3] % 64, n = rows * cols;
  constexpr size_t kCanary = 64;
  const bool refine = data[0] & 0x40;
  if ((data[0] & 0x80) && refine) {  // a refinement level's round trip
    const uint8_t* p = data + 4;
    const size_t m = size - 4;
    std::vector<uint8_t> orig(n * wb), below(n * wb), above(n * wb), e(rows);
    for (size_t i = 0; i < n * wb; ++i) orig[i] = byte_at(p, m, i), below[i] = byte_at(p, m, n * wb + i);
    for (uint64_t r = 0; r < rows; ++r) e[r] = byte_at(p, m, 2 * n * wb + r);
    const uint32_t M = 2 + byte_at(p, m, 2 * n * wb + rows);
    std::vector<float> x(n);
    wc::load_floats(wc::DType(dt), orig.data(), n, x.data());
    for (uint64_t i = 0; i < n; ++i) {  // the level below holds finite values (a decoder refuses others)
      const uint32_t y = wb == 4 ? wc::load_u32(below.data() + 4 * i) : wc::load_u16(below.data() + 2 * i);
      if (!wc::refine::finite(wc::qrow::f32_from_bits(wc::refine::f32_bits_of(y, dt)))) {
        if (wb == 4) wc::store_u32(below.data() + 4 * i, 0);
        else wc::store_u16(below.data() + 2 * i, 0);
      }
    }
    std::vector<uint16_t> d(n);
    wc::exact::refine_codes(dt, x.data(), below.data(), base, e.data(), M, rows, cols, d.data(), above.data());
    wc::exact::Counts k;
    const unsigned shift = byte_at(p, m, 2 * n * wb + rows + 1) % 25;
    wc::exact::count_codes(k, dt, shift, below.data(), base, e.data(), rows, cols, d.data());
    wc::exact::Tables tb;
    const auto tables = wc::exact::build_refine_tables(k, shift, M, tb);
    wc::exact::Tables again;
    WC_FUZZ_CHECK(wc::exact::parse_refine_tables(tables.data(), tables.size(), again));
    std::vector<uint8_t> payload;
    wc::exact::encode_codes(tb, dt, below.data(), base, e.data(), rows, cols, d.data(), payload);
    WC_FUZZ_CHECK(payload.size() <= 1 + rows + 2 * n);  // never above mode 0
    std::vector<uint8_t> out(below);
    out.resize(n * wb + kCanary, 0xA5);
    WC_FUZZ_CHECK(wc::exact::apply_tile(again, payload.data(), payload.size(), dt, base, rows, cols, out.data()) ==
                  wc::Errc::ok);
    WC_FUZZ_CHECK(std::memcmp(out.data(), above.data(), n * wb) == 0);
    for (size_t i = 0; i < kCanary; ++i) WC_FUZZ_CHECK(out[n * wb + i] == 0xA5);
    return 0;
  }
  if (data[0] & 0x80) {  // round trip
    const uint8_t* p = data + 4;
    const size_t m = size - 4;
    std::vector<uint8_t> orig(n * wb), recon(n * wb), e(rows);
    for (size_t i = 0; i < n * wb; ++i) orig[i] = byte_at(p, m, i), recon[i] = byte_at(p, m, n * wb + i);
    for (uint64_t r = 0; r < rows; ++r) e[r] = byte_at(p, m, 2 * n * wb + r);
    wc::exact::Counts k;
    const unsigned z = wc::exact::trim_bits(dt, orig.data(), orig.size() / (wc::dtype_bits(wc::DType(dt)) / 8));
    wc::exact::count_tile(k, dt, z, 0, orig.data(), recon.data(), base, e.data(), rows, cols);
    wc::exact::Tables tb;
    const auto tables = wc::exact::build_tables(k, dt, z, 0, tb);
    wc::exact::Tables again;
    WC_FUZZ_CHECK(wc::exact::parse_tables(tables.data(), tables.size(), dt, again));
    std::vector<uint8_t> payload;
    wc::exact::encode_tile(tb, dt, orig.data(), recon.data(), base, e.data(), rows, cols, payload);
    WC_FUZZ_CHECK(payload.size() <= 1 + n * wb);  // never above mode 0
    std::vector<uint8_t> out(recon);
    out.resize(n * wb + kCanary, 0xA5);
    WC_FUZZ_CHECK(wc::exact::apply_tile(again, payload.data(), payload.size(), dt, base, rows, cols, out.data()) ==
                  wc::Errc::ok);
    WC_FUZZ_CHECK(std::memcmp(out.data(), orig.data(), n * wb) == 0);
    for (size_t i = 0; i < kCanary; ++i) WC_FUZZ_CHECK(out[n * wb + i] == 0xA5);
    return 0;
  }
  if (size < 6) return 0;
  const size_t tlen = std::min<size_t>(wc::load_u16(data + 4), size - 6);
  const std::vector<uint8_t> tables(data + 6, data + 6 + tlen), payload(data + 6 + tlen, data + size);
  wc::exact::Tables tb;
  if (!(refine ? wc::exact::parse_refine_tables(tables.data(), tables.size(), tb)
               : wc::exact::parse_tables(tables.data(), tables.size(), dt, tb)))
    return 0;
  std::vector<uint8_t> level0(n * wb);
  for (size_t i = 0; i < level0.size(); ++i) level0[i] = uint8_t(i * 37 + (i >> 3));
  std::vector<uint8_t> a(level0), b(level0);
  a.resize(n * wb + kCanary, 0xA5);
  b.resize(n * wb + kCanary, 0xA5);
  const wc::Errc ra = wc::exact::apply_tile(tb, payload.data(), payload.size(), dt, base, rows, cols, a.data());
  WC_FUZZ_CHECK(ra == wc::Errc::ok || ra == wc::Errc::codec);
  const wc::Errc rb = wc::exact::apply_tile(tb, payload.data(), payload.size(), dt, base, rows, cols, b.data());
  WC_FUZZ_CHECK(ra == rb);
  if (ra == wc::Errc::ok) WC_FUZZ_CHECK(a == b);
  for (size_t i = 0; i < kCanary; ++i) WC_FUZZ_CHECK(a[n * wb + i] == 0xA5);
  return 0;
}
