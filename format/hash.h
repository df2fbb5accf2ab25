// XXH3-64, the checksum of the format. On x86-64 the Debian library's
// runtime-dispatched entry points pick the AVX2 kernel where the CPU has it
// (several times faster than the default SSE2 one; same results).
#pragma once
#include <xxhash.h>
#if defined(__x86_64__) && __has_include(<xxh_x86dispatch.h>)
#include <xxh_x86dispatch.h>
#endif
