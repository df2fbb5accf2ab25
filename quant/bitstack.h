// Sign-magnitude blocks of a qrow tensor (spec/BITSTACK.md): BitStack's
// level above 0, a sign per element and a tensor-wide rank-r approximation
// of the magnitude of what the level below left. The decoder applies a
// tile's block onto the level below in place; the encoder fits the factors
// and chooses the signs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "platform/error.h"

namespace wc::bitstack {

// The rank of a factors part for a tensor of rows x cols (§3): 1..16 when
// the header and size are valid, else 0. (Finiteness is checked per tile.)
unsigned parse_rank(const uint8_t* p, size_t n, uint64_t rows, uint64_t cols);

// Tile decode (§2): dst holds rows row0.. row0+rows-1 of the tensor at the
// level below, in dtype dt (qrow's ids: F16 8, BF16 9, F32 12); receives the
// level's bits. factors: the whole part (§3), signs: the tile's rows x cols
// bytes. Errc::codec when the factors or signs are not valid or a value is
// not finite.
Errc apply_tile(const uint8_t* factors, size_t nf, const uint8_t* signs, size_t ns, uint32_t dt, uint64_t total_rows,
                uint64_t row0, uint64_t rows, uint64_t cols, uint8_t* dst);

// Encoder. The factors as stored (binary16 bits) and as binary32.
struct Factors {
  unsigned r = 0;
  uint64_t rows = 0, cols = 0;
  std::vector<uint16_t> u, w;   // u[i*r + q], w[q*cols + j]
  std::vector<float> uf, wf;    // their values
  std::vector<uint8_t> bytes() const;  // the part's bytes (§3)
};

// The first r singular pairs of the rows x cols matrix A (non-negative
// magnitudes) by power iteration with deflation, each pair balanced and
// rounded to binary16 (deflating by the rounded pair). `par` runs fn(i)
// for i < n, in parallel where the caller has threads (the passes over A
// are split by rows).
using ParallelFor = std::function<void(size_t n, const std::function<void(size_t)>& fn)>;
Factors fit(const float* A, uint64_t rows, uint64_t cols, unsigned r, const ParallelFor& par);

// A tile's signs and its bits at the level: x the originals (binary32),
// below the level below (dtype dt). Each element takes the sign whose value
// is nearer x (0 on a tie); one whose value would not be finite in the dtype
// takes the other. False when neither is finite (the pack fails).
bool encode_tile(const Factors& f, uint32_t dt, const float* x, const uint8_t* below, uint64_t row0, uint64_t rows,
                 uint64_t cols, uint8_t* signs, uint8_t* above);

}  // namespace wc::bitstack
