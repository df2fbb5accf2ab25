// Shared helpers for the fuzz targets (libFuzzer and the replay driver).
// A target returns normally for any input that ends in wc::Error; it traps
// (a crash libFuzzer records) when a property it checks does not hold.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "format/dtype.h"
#include "platform/error.h"

#define WC_FUZZ_CHECK(cond)                                                                  \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

namespace wcfuzz {

// Raw-size caps that keep one execution fast; larger claims are still parsed
// and validated, only not decoded.
inline constexpr uint64_t kMaxDecodeChunk = 4u << 20;
// Decoded size cap for the decode_* targets (they allocate and fill it every run).
inline constexpr uint64_t kMaxFuzzDecodeOut = 256u << 10;
inline constexpr uint64_t kMaxDecodeTotal = 16u << 20;

// An error must say something and carry a valid code.
inline void check_error(const wc::Error& e) {
  WC_FUZZ_CHECK(e.code() != wc::Errc::ok);
  WC_FUZZ_CHECK(!e.describe().empty());
}

// Dtypes float_ans handles, in a fixed order (the first input byte picks one).
inline constexpr wc::DType kFansTypes[] = {wc::DType::BF16, wc::DType::F16, wc::DType::F32, wc::DType::F8_E4M3,
                                           wc::DType::F8_E5M2};

#ifdef WC_FUZZ_CODEC
// The dtype a codec target works on, from one input byte: the float types
// for float-ans, any dtype for the generic codecs.
inline wc::DType pick_dtype(uint8_t b) {
#if WC_FUZZ_CODEC == 2
  return kFansTypes[b % (sizeof kFansTypes / sizeof kFansTypes[0])];
#else
  return *wc::dtype_from_id(static_cast<uint8_t>(b % wc::kDTypeCount));
#endif
}
#endif

inline size_t elem_bytes(wc::DType t) {
  unsigned b = wc::dtype_bits(t);
  return b >= 8 ? b / 8 : 1;
}

}  // namespace wcfuzz
