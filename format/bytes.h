// Little-endian loads/stores and overflow-checked arithmetic. Every integer
// read from a file goes through these, so byte order and overflow are handled
// in one place.
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "platform/error.h"

static_assert(std::endian::native == std::endian::little,
              "wcodec assumes a little-endian host (the on-disk format is little-endian)");

namespace wc {

inline uint16_t load_u16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
inline uint32_t load_u32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
inline uint64_t load_u64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }
inline void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline void store_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void store_u64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
// Element i of an array of E (uint8_t, uint16_t, uint32_t): the width fixed
// at compile time, one load (hot loops templated on the element type).
template <class E>
inline E load_at(const uint8_t* p, uint64_t i) {
  E v;
  std::memcpy(&v, p + i * sizeof(E), sizeof v);
  return v;
}
// An element of `bytes` (1, 2 or 4) bytes: fixed-size loads, since a memcpy
// of a run-time size is a call per element in a hot loop.
inline uint32_t load_elem(const uint8_t* p, unsigned bytes) {
  return bytes == 1 ? p[0] : bytes == 2 ? load_u16(p) : load_u32(p);
}
// The OR of the elements of `bytes` (1, 2 or 4) bytes in p[0 .. n), n a
// whole number of elements: 8 bytes at a time (vectorised), then the word's
// lanes folded (lane j of a word is byte j % bytes of an element).
inline uint32_t or_elements(const uint8_t* p, uint64_t n, unsigned bytes) {
  uint64_t w8 = 0, i = 0;
  for (; i + 8 <= n; i += 8) w8 |= load_u64(p + i);
  const uint32_t mask = uint32_t((uint64_t(1) << (8 * bytes)) - 1);
  uint32_t any = 0;
  for (unsigned j = 0; j < 8; j += bytes) any |= uint32_t(w8 >> (8 * j)) & mask;
  for (; i + bytes <= n; i += bytes) any |= load_elem(p + i, bytes);  // the tail
  return any;
}

// Checked arithmetic: throws Errc::limit on overflow.
inline uint64_t add_checked(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) fail(Errc::limit, "integer overflow in size computation");
  return r;
}
inline uint64_t mul_checked(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) fail(Errc::limit, "integer overflow in size computation");
  return r;
}
inline uint64_t align_up(uint64_t v, uint64_t a) { return add_checked(v, a - 1) & ~(a - 1); }

// Append-only little-endian byte builder.
class ByteWriter {
 public:
  std::vector<uint8_t> buf;
  void u8(uint8_t v) { buf.push_back(v); }
  void u16(uint16_t v) { uint8_t b[2]; store_u16(b, v); buf.insert(buf.end(), b, b + 2); }
  void u32(uint32_t v) { uint8_t b[4]; store_u32(b, v); buf.insert(buf.end(), b, b + 4); }
  void u64(uint64_t v) { uint8_t b[8]; store_u64(b, v); buf.insert(buf.end(), b, b + 8); }
  void bytes(const void* p, size_t n) {
    auto* c = static_cast<const uint8_t*>(p);
    buf.insert(buf.end(), c, c + n);
  }
  void str16(std::string_view s);  // u16 length + bytes; throws if longer than 65535
};

// Bounds-checked little-endian reader over an untrusted buffer. Every read
// checks the remaining length first; `base` is the buffer's offset in its file,
// so errors report absolute offsets.
class ByteReader {
 public:
  ByteReader(const uint8_t* p, size_t n, uint64_t base = 0) : p_(p), n_(n), base_(base) {}
  uint8_t u8() { need(1); return p_[pos_++]; }
  uint16_t u16() { need(2); auto v = load_u16(p_ + pos_); pos_ += 2; return v; }
  uint32_t u32() { need(4); auto v = load_u32(p_ + pos_); pos_ += 4; return v; }
  uint64_t u64() { need(8); auto v = load_u64(p_ + pos_); pos_ += 8; return v; }
  const uint8_t* bytes(size_t n) { need(n); auto* r = p_ + pos_; pos_ += n; return r; }
  std::string str16() { size_t n = u16(); auto* b = bytes(n); return std::string(reinterpret_cast<const char*>(b), n); }
  size_t pos() const { return pos_; }
  size_t remaining() const { return n_ - pos_; }
  uint64_t abs_pos() const { return base_ + pos_; }
  void need(size_t n) const {
    if (n > n_ - pos_) fail_at(Errc::corrupt, base_ + pos_, "record runs past the end of its block");
  }

 private:
  const uint8_t* p_;
  size_t n_, pos_ = 0;
  uint64_t base_;
};

inline void ByteWriter::str16(std::string_view s) {
  if (s.size() > 0xFFFF) fail(Errc::limit, "name longer than 65535 bytes");
  u16(static_cast<uint16_t>(s.size()));
  bytes(s.data(), s.size());
}

}  // namespace wc
