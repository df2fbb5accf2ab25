#include "format/dtype.h"

namespace wc {
namespace {
struct Info { std::string_view name; unsigned bits; };
constexpr Info kInfo[kDTypeCount] = {
    {"BOOL", 8},     {"U8", 8},       {"I8", 8},   {"F8_E5M2", 8}, {"F8_E4M3", 8},
    {"F8_E8M0", 8},  {"I16", 16},     {"U16", 16}, {"F16", 16},    {"BF16", 16},
    {"I32", 32},     {"U32", 32},     {"F32", 32}, {"F64", 64},    {"I64", 64},
    {"U64", 64},     {"F4", 4},       {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"C64", 64},
};
}  // namespace

unsigned dtype_bits(DType t) noexcept { return kInfo[static_cast<int>(t)].bits; }
std::string_view dtype_name(DType t) noexcept { return kInfo[static_cast<int>(t)].name; }

std::optional<DType> dtype_from_name(std::string_view s) noexcept {
  for (int i = 0; i < kDTypeCount; ++i)
    if (kInfo[i].name == s) return static_cast<DType>(i);
  return std::nullopt;
}

std::optional<DType> dtype_from_id(uint8_t id) noexcept {
  if (id >= kDTypeCount) return std::nullopt;
  return static_cast<DType>(id);
}

}  // namespace wc
