#include "codec/byte_groups.h"

namespace wc::groups {

bool supports(DType t) noexcept { return t == DType::BF16 || t == DType::F16 || t == DType::F32; }

void plane(const uint8_t* src, size_t m, unsigned eb, unsigned k, uint8_t* out) noexcept {
  for (size_t i = 0; i < m; ++i) out[i] = src[i * eb + k];
}

namespace {
template <unsigned EB>
void interleave_n(const uint8_t* planes, size_t m, uint8_t* dst) noexcept {
  for (size_t i = 0; i < m; ++i)
    for (unsigned k = 0; k < EB; ++k) dst[i * EB + k] = planes[k * m + i];
}
}  // namespace

void interleave(const uint8_t* planes, size_t m, unsigned eb, uint8_t* dst) noexcept {
  if (eb == 2) interleave_n<2>(planes, m, dst);
  else interleave_n<4>(planes, m, dst);
}

}  // namespace wc::groups
