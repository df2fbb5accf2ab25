// What the CPU the program runs on can do, for the kernels built with a
// target attribute (AVX2) beside a baseline build of the same loop.
#pragma once

namespace wc {

// Whether the CPU executes AVX2 (cached; __builtin_cpu_init first, so it is
// right even when called from a static initializer).
bool cpu_has_avx2() noexcept;
// Whether it executes AVX2 and F16C (binary16 conversions; cpuid, since
// clang's __builtin_cpu_supports does not know the name).
bool cpu_has_avx2_f16c() noexcept;

}  // namespace wc
