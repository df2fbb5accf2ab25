// Element types, with the numeric ids the container stores (stable forever)
// and the names safetensors uses.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>

namespace wc {

enum class DType : uint8_t {
  BOOL = 0, U8 = 1, I8 = 2, F8_E5M2 = 3, F8_E4M3 = 4, F8_E8M0 = 5,
  I16 = 6, U16 = 7, F16 = 8, BF16 = 9, I32 = 10, U32 = 11, F32 = 12,
  F64 = 13, I64 = 14, U64 = 15, F4 = 16, F6_E2M3 = 17, F6_E3M2 = 18, C64 = 19,
};
inline constexpr int kDTypeCount = 20;

// Bits per element (4 and 6 for the sub-byte float types).
unsigned dtype_bits(DType t) noexcept;
std::string_view dtype_name(DType t) noexcept;  // safetensors spelling, e.g. "BF16"
std::optional<DType> dtype_from_name(std::string_view s) noexcept;
std::optional<DType> dtype_from_id(uint8_t id) noexcept;

}  // namespace wc
