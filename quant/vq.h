// vq's encoder (spec/VQ.md §3): a codebook of k vectors of d values learned
// by k-means on a tensor's normalised row vectors, the codes of its rows,
// and a rate-distortion point. The decoders are in quant/vq_repr.h.
#pragma once
#include <cstdint>
#include <vector>

#include "format/dtype.h"
#include "quant/qrow.h"

namespace wc::vq {

// One codebook for the tensor (shift 0), or one per group of 2^shift rows
// (row r uses codebook r >> shift; spec/VQ.md, params byte 3): books() x k x
// d values, entry j of book b at c[(b * k + j) * d ..].
// Additive (k2 > 0, AQLM's two codebooks): a book holds k1 = k / k2 entries,
// then k2 more, and code u stands for the sum of entry u / k2 of the first
// and entry u mod k2 of the second (k = k1 x k2 codes).
inline constexpr uint32_t kBeam = 8;

struct Codebook {
  uint32_t d = 0, k = 0;
  uint32_t shift = 0;
  uint32_t k2 = 0;
  std::vector<float> c;
  uint32_t per_book() const { return k2 ? k / k2 + k2 : k; }  // entries stored per book
  uint64_t books() const { return per_book() && d ? c.size() / (size_t(per_book()) * d) : 0; }
  uint64_t book_of(uint64_t row) const { return shift ? row >> shift : 0; }
  // stored entry j (of per_book()) of row's book
  const float* entry(uint64_t row, uint32_t j) const { return &c[(book_of(row) * per_book() + j) * d]; }
  // value q of code u for a row (additive: a binary32 sum, as the decoders)
  float value(uint64_t row, uint32_t u, uint32_t q) const {
    if (!k2) return entry(row, u)[q];
    return entry(row, u / k2)[q] + entry(row, k / k2 + u % k2)[q];
  }
};

// The rows' steps: each row's root mean square on qrow's grid.
qrow::Steps row_steps(const std::vector<double>& rms, double rms_all);

// k-means on the vectors of the sampled rows (elements divided by their
// row's step): k-means++ start from a fixed seed, `iters` Lloyd iterations,
// distances weighted per column by imp (null: 1). One thread: the result
// depends on nothing but the data and the arguments.
Codebook train(DType t, const uint8_t* data, uint64_t cols, const qrow::Steps& s, const std::vector<uint64_t>& rows,
               uint32_t d, uint32_t k, const float* imp, int iters = 8);

// k-means on n = v.size() / d vectors (weights w, n x d): k-means++ start
// from a seed of (k, d), `iters` Lloyd iterations; k = min(k, n) entries.
Codebook kmeans(const std::vector<float>& v, const std::vector<float>& w, uint32_t d, uint32_t k, int iters = 8);

// Additive codebooks (k1 entries, then k2): residual k-means (the first
// codebook on the vectors, the second on what it leaves), then `rounds` of
// coding every vector (encode_rows' beam search) and refitting each
// codebook to what the other leaves. Deterministic, one thread.
Codebook train_additive(DType t, const uint8_t* data, uint64_t cols, const qrow::Steps& s,
                        const std::vector<uint64_t>& rows, uint32_t d, uint32_t k1, uint32_t k2, const float* imp,
                        int rounds = 3);

// One codebook per group of 2^shift rows (shift >= 1), each trained as
// `train` on up to `per_book` vectors of its own rows (evenly spaced rows).
// Every book has k entries: a book whose rows hold fewer distinct vectors
// repeats its last one.
Codebook train_books(DType t, const uint8_t* data, uint64_t rows, uint64_t cols, const qrow::Steps& s, uint32_t d,
                     uint32_t k, uint32_t shift, uint64_t per_book, const float* imp, int iters = 8);

// Rows spaced evenly over [0, rows) holding about `vectors` groups of d of
// cols columns (all rows when they hold fewer).
std::vector<uint64_t> spaced_rows(uint64_t r0, uint64_t rows, uint64_t cols, uint32_t d, uint64_t vectors);

// Codes (nearest entries) of rows [r0, r0 + n), one per group of d, row-major.
// Additive codebooks: a beam search (the kBeam entries of the first codebook
// nearest the vector, each with the second's entry nearest what it leaves;
// the pair of least distance), not the exhaustive k1 x k2 search.
void encode_rows(DType t, const uint8_t* data, uint64_t cols, uint64_t r0, uint64_t n, const qrow::Steps& s,
                 const Codebook& cb, const float* imp, uint16_t* u);

// The codes the writer stores: with gptq (--calib's hessian: a feedback in
// the identity order) GPTQ's (encode_rows_gptq, quant/vq_gptq.h), except for
// additive books, which keep their beam search; else encode_rows'.
void encode_rows_as_written(DType t, const uint8_t* data, uint64_t cols, uint64_t r0, uint64_t n,
                            const qrow::Steps& s, const Codebook& cb, const float* imp, const qrow::Feedback* gptq,
                            uint16_t* u);

// Bits of the codes (order-0 entropy, scaled to the tensor, and the coder's
// table), the steps and the codebook(s), and the relative squared error (the
// output error with H, as qrow::evaluate), on the sampled rows.
// The codes are encode_rows_as_written's (gptq: null or a feedback).
qrow::Point evaluate(DType t, const uint8_t* data, uint64_t rows, uint64_t cols, const qrow::Steps& s,
                     const Codebook& cb, const std::vector<uint64_t>& sample_rows, const float* imp, const float* H,
                     const qrow::Feedback* gptq = nullptr);

}  // namespace wc::vq
