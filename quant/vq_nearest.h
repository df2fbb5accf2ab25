// The nearest-entry search every vq encoder uses (quant/vq.cpp: k-means and
// the codes; quant/vq_gptq.cpp: GPTQ's codes): a book stored column-major
// (d columns of k values: column j's at t + j * k), so that the distances of
// many entries are computed side by side in SIMD lanes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace wc::vq {

// The entry nearest to v under the weights w: per entry, sum over j of
// w[j] * (v[j] - t[j][entry])^2 in float, j ascending (the same operations
// whatever the vector width, so SSE2 and AVX2 builds pick the same codes);
// ties and NaN distances: the lowest index. dist: scratch of k floats.
using NearestFn = uint32_t (*)(const float* v, const float* w, const float* t, uint32_t d, uint32_t k, float* dist);

// The distances alone (dist[e] for every entry e, the same arithmetic).
using DistFn = void (*)(const float* v, const float* w, const float* t, uint32_t d, uint32_t k, float* dist);

// The widest variants this machine runs (quant/simd_tile.h's simd_level()).
NearestFn nearest_fn();
DistFn distances_fn();

// Distances of n points to one centre c (d values): vt and wt the points'
// values and weights column-major (d columns of n), dd[i] = sum over j of
// wt[j][i] * (vt[j][i] - c[j])^2 in float, j ascending (k-means++'s
// D^2 sampling; the same operations whatever the vector width).
void point_distances(const float* c, const float* vt, const float* wt, uint32_t d, size_t n, float* dd);

// books (k entries of d values each, entry-major, as Codebook::c) column-major
// per book: out[(b * d + j) * k + e] = books[(b * k + e) * d + j].
std::vector<float> column_major(const float* books, uint64_t nbooks, uint32_t k, uint32_t d);

}  // namespace wc::vq
