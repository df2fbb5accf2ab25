#include "quant/outliers.h"

#include <algorithm>
#include <cstring>

#include "format/bytes.h"
#include "quant/float_load.h"
#include "quant/outlier_math.h"

namespace wc::qrow {

namespace {

void put_varint(std::vector<uint8_t>& o, uint64_t v) {
  while (v >= 0x80) {
    o.push_back(uint8_t(v | 0x80));
    v >>= 7;
  }
  o.push_back(uint8_t(v));
}

}  // namespace

OutlierScores score_outliers(DType t, const uint8_t* data, uint64_t rows, uint64_t cols,
                             const std::vector<double>& rms, const float* imp, double min_score) {
  std::vector<double> w(cols, 1.0);
  if (imp) {
    double mean = 0;
    for (uint64_t c = 0; c < cols; ++c) mean += double(imp[c]);
    mean /= double(cols);
    if (mean > 0)
      for (uint64_t c = 0; c < cols; ++c) w[c] = double(imp[c]) / mean;
  }
  OutlierScores s;
  std::vector<float> x(cols);
  const size_t eb = dtype_bits(t) / 8;
  for (uint64_t r = 0; r < rows; ++r) {
    if (!(rms[r] > 0)) continue;
    load_floats(t, data + r * cols * eb, cols, x.data());
    const double inv = 1.0 / (rms[r] * rms[r]);
    for (uint64_t c = 0; c < cols; ++c) {
      const double sc = double(x[c]) * x[c] * w[c] * inv;
      if (sc > min_score) s.cand.push_back({float(sc), r * cols + c});
    }
  }
  return s;
}

std::vector<uint64_t> pick_outliers(const OutlierScores& s, uint64_t count) {
  auto cand = s.cand;
  auto better = [](const std::pair<float, uint64_t>& a, const std::pair<float, uint64_t>& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  count = std::min<uint64_t>(count, cand.size());
  std::nth_element(cand.begin(), cand.begin() + ptrdiff_t(count), cand.end(), better);
  std::vector<uint64_t> pos(count);
  for (uint64_t i = 0; i < count; ++i) pos[i] = cand[i].second;
  std::sort(pos.begin(), pos.end());
  return pos;
}

std::vector<uint8_t> outlier_block(DType t, const uint8_t* data, uint64_t rows, uint64_t cols, uint64_t tile_rows,
                                   const std::vector<uint64_t>& pos) {
  const uint64_t tiles = (rows + tile_rows - 1) / tile_rows;
  const size_t vb = dtype_bits(t) / 8;
  std::vector<uint8_t> body, sec;
  std::vector<uint32_t> ends(tiles);
  size_t k = 0;
  for (uint64_t i = 0; i < tiles; ++i) {
    const uint64_t r0 = i * tile_rows, rt = std::min(tile_rows, rows - r0);
    const uint64_t lo = r0 * cols, hi = (r0 + rt) * cols;
    const size_t k0 = k;
    while (k < pos.size() && pos[k] < hi) ++k;
    if (k > k0) {
      // form 1: per row a count, then column gaps
      std::vector<uint8_t> rowsf;
      size_t j = k0;
      for (uint64_t r = 0; r < rt; ++r) {
        const uint64_t rhi = lo + (r + 1) * cols;
        size_t j1 = j;
        while (j1 < k && pos[j1] < rhi) ++j1;
        put_varint(rowsf, j1 - j);
        uint64_t prev = 0;
        for (size_t q = j; q < j1; ++q) {
          const uint64_t c = pos[q] - (lo + r * cols);
          put_varint(rowsf, q == j ? c : c - prev - 1);
          prev = c;
        }
        j = j1;
      }
      const size_t mask_n = size_t((rt * cols + 7) / 8);
      sec.clear();
      if (rowsf.size() <= mask_n) {
        sec.push_back(uint8_t(kOutlierRows));
        sec.insert(sec.end(), rowsf.begin(), rowsf.end());
      } else {
        sec.push_back(uint8_t(kOutlierMask));
        const size_t at = sec.size();
        sec.resize(at + mask_n, 0);
        for (size_t q = k0; q < k; ++q) sec[at + (pos[q] - lo) / 8] |= uint8_t(1u << ((pos[q] - lo) % 8));
      }
      for (size_t q = k0; q < k; ++q) sec.insert(sec.end(), data + pos[q] * vb, data + (pos[q] + 1) * vb);
      body.insert(body.end(), sec.begin(), sec.end());
    }
    ends[i] = uint32_t(body.size());
  }
  std::vector<uint8_t> out(4 + 4 * tiles);
  store_u32(out.data(), uint32_t(tiles));
  for (uint64_t i = 0; i < tiles; ++i) store_u32(out.data() + 4 + 4 * i, ends[i]);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

std::vector<uint8_t> zero_outliers(DType t, const uint8_t* data, uint64_t n, const std::vector<uint64_t>& pos) {
  const size_t vb = dtype_bits(t) / 8;
  std::vector<uint8_t> out(data, data + n * vb);
  for (uint64_t p : pos) std::memset(out.data() + p * vb, 0, vb);
  return out;
}

void zero_outliers_rows(DType t, const uint8_t* data, uint64_t cols, const std::vector<uint64_t>& pos,
                        const std::vector<uint64_t>& rows, uint8_t* out) {
  const size_t vb = dtype_bits(t) / 8, row = size_t(cols) * vb;
  for (uint64_t r : rows) {
    std::memcpy(out + r * row, data + r * row, row);
    for (auto it = std::lower_bound(pos.begin(), pos.end(), r * cols); it != pos.end() && *it < (r + 1) * cols; ++it)
      std::memset(out + *it * vb, 0, vb);
  }
}

}  // namespace wc::qrow
