// The spec's test vectors (tests/vectors, written by an independent Python
// writer of spec/FORMAT.md) decode to their expected bytes, and the files
// that must be rejected are rejected with the expected error by every reader:
// inspect, verify, unpack (from a path, and by the CLI from a pipe) and the
// C API. Most bad vectors are checksum-valid everywhere (an attacker
// recomputes XXH3), so only the format's rules can catch them.
#include <doctest/doctest.h>
#include <dirent.h>

#include <algorithm>
#include <functional>

#include "format/reader.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"
#include "lib/api.h"
#include "test_util.h"
#include "wcodec/wcodec.h"


namespace {
const std::string kDir = std::string(WCODEC_TEST_DIR) + "/vectors";

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

std::vector<std::string> list(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> v;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) v.push_back(n);
    }
    ::closedir(d);
  }
  std::sort(v.begin(), v.end());
  return v;
}

// What is in `dir` (files, directories, temporaries), space-separated; "" when empty.
std::string leftovers(const std::string& dir) {
  std::string s;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::string n = e->d_name; n != "." && n != "..") s += (s.empty() ? "" : " ") + n;
    ::closedir(d);
  }
  return s;
}

std::string q(const std::string& s) { return "'" + s + "'"; }

// When a reader has what it needs to see what is wrong.
enum class Stage {
  open,   // header, footer, manifest or index: inspect and wcodec_open must fail
  chunk,  // a chunk (its padding, checksum or codec stream): decoding any tensor fails
  file,   // a whole decoded file (the shard index JSON): only verify and unpack must fail
};

struct BadVector {
  std::string file;  // NAME.CODE.wcz
  std::string path;
  std::string want;  // errc_name of the expected code
  Stage stage;
};

Stage stage_of(const std::string& file) {
  if (starts_with(file, "shard_index_") || starts_with(file, "file_xxh3_")) return Stage::file;
  if (file.find(".codec.") != std::string::npos)  // a payload its codec rejects (zstd framing, float-ans modes)
    return Stage::chunk;
  if (starts_with(file, "zstd_chunk_") || starts_with(file, "payload_bitflip.") || starts_with(file, "padding_nonzero.") ||
      starts_with(file, "level_xxh3_"))  // 2.0: a lossy tensor's reconstruction against its level's XXH3-64
    return Stage::chunk;
  return Stage::open;
}

std::vector<BadVector> bad_vectors() {
  std::vector<BadVector> v;
  for (const auto& file : list(kDir + "/bad", ".wcz")) {
    std::string code = file.substr(file.find('.') + 1);
    code = code.substr(0, code.size() - 4);
    const std::string want = code == "checksum"              ? "checksum mismatch"
                             : code == "unsupported_version" ? "unsupported version"
                             : code == "bad_magic"           ? "bad magic"
                             : code == "codec"               ? "codec error"
                                                             : code;
    v.push_back({file, kDir + "/bad/" + file, want, stage_of(file)});
  }
  return v;
}

// How a call ended: "accepted", or the errc_name of the wc::Error it threw
// (with its describe() in `message`).
struct Outcome {
  std::string code = "accepted";
  std::string message;
  bool threw() const { return code != "accepted"; }
};

template <class F>
Outcome outcome(F&& f) {
  Outcome o;
  try {
    f();
  } catch (const wc::Error& e) {
    o.code = wc::errc_name(e.code());
    o.message = e.describe();
  } catch (const std::exception& e) {
    o.code = std::string("non-wcodec exception: ") + e.what();
  }
  return o;
}
// Each tile of tensor i (info.chunk_size rows), decoded alone with
// wcodec_decode_rows in dtype dt (null: its own; row_bytes a row in it),
// equals its rows of `whole`.
void check_tiles(wcodec_archive* a, size_t i, const wcodec_tensor_info& info, const char* dt, uint64_t row_bytes,
                 const std::vector<uint8_t>& whole) {
  char err[1024] = "";
  for (uint64_t r0 = 0; r0 < info.rows; r0 += info.chunk_size) {
    CAPTURE(r0);
    const uint64_t r1 = std::min<uint64_t>(info.rows, r0 + info.chunk_size);
    std::vector<uint8_t> part((r1 - r0) * row_bytes);
    REQUIRE(wcodec_decode_rows(a, i, r0, r1, dt, part.data(), part.size(), 1, err, sizeof err) == WCODEC_OK);
    CHECK(std::equal(part.begin(), part.end(), whole.begin() + ptrdiff_t(r0 * row_bytes)));
  }
}

// The vq vectors' NAME.as_dtypes.expected: every vq tensor of the container
// decoded in BF16, F16 and F32 in turn (make_vectors.py's order), each whole
// and tile by tile (check_tiles: a tile's own chunks or inline parts give
// the same rows). reprs: each tensor's representation, checked. Returns the
// bytes and the number of vq tensors; `seen` gets each whole (tensor, dtype).
std::vector<uint8_t> vq_in_every_dtype(const std::string& wcz, const std::vector<std::string>& reprs,
                                       size_t* vq_tensors,
                                       const std::function<void(size_t, const std::string&,
                                                                const std::vector<uint8_t>&)>& seen = {}) {
  char err[1024] = "";
  wcodec_archive* a = nullptr;
  REQUIRE(wcodec_open(wcz.c_str(), &a, err, sizeof err) == WCODEC_OK);
  REQUIRE(wcodec_tensor_count(a) == reprs.size());
  std::vector<uint8_t> got;
  *vq_tensors = 0;
  for (size_t i = 0; i < wcodec_tensor_count(a); ++i) {
    wcodec_tensor_info info = WCODEC_TENSOR_INFO_INIT;
    REQUIRE(wcodec_get_tensor_info(a, i, &info) == WCODEC_OK);
    CAPTURE(info.name);
    CHECK(std::string(info.representation) == reprs[i]);
    if (std::string(info.representation) != "vq") continue;
    ++*vq_tensors;
    const uint64_t elems = info.byte_size / (std::string(info.dtype) == "F32" ? 4 : 2);
    const uint64_t row_elems = elems / info.rows;
    for (const std::string dt : {"BF16", "F16", "F32"}) {
      CAPTURE(dt);
      const uint64_t esize = dt == "F32" ? 4 : 2;
      std::vector<uint8_t> whole(elems * esize);
      REQUIRE(wcodec_decode_tensor_ex(a, i, WCODEC_LEVEL_TOP, dt.c_str(), whole.data(), whole.size(), 1, err,
                                      sizeof err) == WCODEC_OK);
      got.insert(got.end(), whole.begin(), whole.end());
      check_tiles(a, i, info, dt.c_str(), row_elems * esize, whole);
      if (seen) seen(i, dt, whole);
    }
  }
  wcodec_close(a);
  return got;
}

}  // namespace

TEST_SUITE("vectors") {
  TEST_CASE("single-file vectors decode to the expected bytes") {
    tu::TempDir t;
    for (std::string v : {"single_raw", "single_zstd", "no_tensors", "float_ans_mixed", "float_ans_shift",
                          "float_ans_patch",   // 1.5: codec 5, mode 4 over mode-1 and mode-3 payloads
                          "float_ans_groups",  // 1.6: codec 7, mode 5 (F16 of 2 blocks, F32, inline BF16) and modes 1, 2, 4
                          // 1.7: codec 8, mode 6 (E5M2 and E4M3 pairs, with and without a shift block, odd n and
                          // its tail, every byte value, inline) and modes 0, 1, 2, 3
                          "float_ans_pairs",
                          // 1.8: pools (FORMAT.md §4.6) of codecs 0, 1, 2, 3 and 8 beside non-members, and one at
                          // the raw-size bound (64 x stored + 2^16)
                          "pooled", "pooled_bound",
                          "inline_exact"}) {  // 1.4: inline tensors of codecs 0, 1, 2 and 4 between chunked ones
      CAPTURE(v);
      wc::unpack(kDir + "/" + v + ".wcz", t / v, {});
      CHECK(tu::read_file(t / v) == tu::read_file(kDir + "/" + v + ".expected"));
      auto r = wc::verify(kDir + "/" + v + ".wcz", kDir + "/" + v + ".expected", 1, {});
      CHECK(r.compared);
    }
  }

  TEST_CASE("float-ans-pairs vector (1.7): codec 8 in every FP8 tensor, one of them inline") {
    wc::ContainerReader r(kDir + "/float_ans_pairs.wcz", wc::kReaderChecks);
    CHECK(r.header().major == 1);
    CHECK(r.header().minor == 7);
    const auto& ts = r.manifest().tensors;
    REQUIRE(ts.size() == 5);
    for (const auto& t : ts) {
      CAPTURE(t.name);
      CHECK(t.codec == 8);
      CHECK((t.dtype == wc::DType::F8_E5M2 || t.dtype == wc::DType::F8_E4M3));
    }
    CHECK(ts[4].chunk_size == 0);  // norm.e5m2 is inline
    CHECK(r.index().size() == 7 + 3 + 1 + 1);  // w.e5m2, w.e4m3 (2109 elements, odd), bytes.e5m2, bytes.e4m3
  }

  TEST_CASE("pool vectors (1.8, 2.13): every member decodes from its dtype's pool, across files and beside lossy tensors") {
    {
      wc::ContainerReader r(kDir + "/pooled.wcz", wc::kReaderChecks);
      CHECK(r.header().major == 1);
      CHECK(r.header().minor == 8);
      const auto& m = r.manifest();
      REQUIRE(m.pools.size() == 5);
      uint64_t members = 0;
      for (const auto& t : m.tensors) {
        CAPTURE(t.name);
        CHECK(t.codec != wc::kCodecPooled);  // resolved as the manifest was read
        if (t.pool == UINT32_MAX) continue;
        ++members;
        CHECK(m.pools[t.pool].dtype == t.dtype);
        CHECK(t.payload.size() == t.byte_size);
      }
      CHECK(members == 11);
    }
    tu::TempDir t;
    wc::unpack(kDir + "/pooled_shards.wcz", t / "out", {});
    for (std::string f : {"model.safetensors.index.json", "a.safetensors", "b.safetensors"}) {
      CAPTURE(f);
      CHECK(tu::read_file(t / ("out/" + f)) == tu::read_file(kDir + "/pooled_shards." + f + ".expected"));
    }
    CHECK(wc::verify(kDir + "/pooled_shards.wcz", t / "out", 1, {}).compared);
    wc::ContainerReader lr(kDir + "/pooled_lossy.wcz", wc::kReaderChecks);
    CHECK(lr.header().major == 2);
    CHECK(lr.header().minor == 13);
    wc::unpack(kDir + "/pooled_lossy.wcz", t / "lossy", {});
    CHECK(tu::read_file(t / "lossy") == tu::read_file(kDir + "/pooled_lossy.expected"));
  }

  TEST_CASE("sharded vector restores every file") {
    tu::TempDir t;
    wc::unpack(kDir + "/sharded.wcz", t / "out", {});
    for (std::string f : {"model.safetensors.index.json", "a.safetensors", "b.safetensors"}) {
      CAPTURE(f);
      auto got = tu::read_file(t / ("out/" + f));
      CHECK(!got.empty());
      CHECK(got == tu::read_file(kDir + "/sharded." + f + ".expected"));
    }
  }

  TEST_CASE("folder vector (1.1) restores every file under its relative path") {
    tu::TempDir t;
    wc::ContainerReader r(kDir + "/folder.wcz", wc::kReaderChecks);
    CHECK(r.header().minor == 1);
    wc::unpack(kDir + "/folder.wcz", t / "out", {});
    for (std::string f : {"config.json", "model.safetensors", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"}) {
      CAPTURE(f);
      std::string flat = f;
      for (size_t k = flat.find('/'); k != std::string::npos; k = flat.find('/', k)) flat.replace(k, 1, "__");
      auto got = tu::read_file(t / ("out/" + f));
      CHECK(!got.empty());
      CHECK(got == tu::read_file(kDir + "/folder." + flat + ".expected"));
    }
    CHECK(wc::verify(kDir + "/folder.wcz", t / "out", 1, {}).compared);
  }

  TEST_CASE("vector layout follows the spec's rules") {
    wc::ContainerReader r(kDir + "/single_raw.wcz", wc::kReaderChecks);
    CHECK(r.manifest().files.size() == 1);
    CHECK(r.manifest().tensors.size() == 5);
    CHECK(r.index().size() == 6);  // 12 + 150 (3 chunks of 64) + 0 + 8 + 3 bytes
    for (const auto& e : r.index()) CHECK(e.offset % 64 == 0);
    CHECK(r.manifest().tensors[4].dtype == wc::DType::F4);
    CHECK(r.manifest().tensors[3].shape.empty());
  }

  TEST_CASE("lossy vectors (2.0) unpack to the expected reconstruction") {
    tu::TempDir t;
    struct Lossy {
      std::string name;
      size_t tensors, chunks;
      uint16_t minor;
      uint8_t chunk_order = 0;
    };
    for (const Lossy& l : {Lossy{"lossy_qrow", 4, 12, 0},        // exact, then 3 qrow tensors
                           Lossy{"lossy_mixed", 3, 9, 0},        // exact (zstd), qrow, exact (zstd)
                           Lossy{"lossy_outliers", 5, 21, 2},   // 2.2: exact, qrow-outliers x 3 and a qrow
                           // 2.3: exact, qrow x 3 and qrow-outliers with inline codes (float-ans, zstd, raw; one
                           // without any chunk), qrow of 3 tiles with float-ans code chunks and zstd inline scales
                           Lossy{"lossy_inline23", 6, 7, 3},
                           // 2.4: exact, vq (BF16, U8 codes per group, float-ans, 3 tiles), qrow, vq (F16, U16
                           // codes inline, float-ans), vq (F32, codes and scales inline, codec 0: no chunk)
                           Lossy{"lossy_vq", 5, 12, 4},
                           // 2.11: exact, vq BF16 d = 1 (palette, 2 books of 4 rows, 3 tiles of 3 rows), vq F16 d = 2
                           // (3 books of 2 rows, the last partial), vq F32 d = 8 K = 2100 (tensor-wide zstd
                           // codebook), vq BF16 d = 4 (3 books, tensor-wide float-ans codebook, codes inline), vq
                           // BF16 d = 1 K = 65536 (tensor-wide zstd codebook), qrow
                           Lossy{"lossy_vq211", 7, 25, 11},
                           // 2.11, additive books: exact, vq BF16 d = 8 K1 x K2 = 3 x 5 (2 tiles, inline codebook), vq
                           // F16 d = 2 2 x 3 (2 books, the last partial), vq F32 d = 4 256 x 256 (tensor-wide zstd
                           // codebook), vq BF16 d = 1 1 x 4 (2 books), vq F16 d = 4 4 x 1 (every part inline)
                           Lossy{"lossy_vq211_additive", 6, 18, 11},
                           // 2.5: an inline exact norm (raw), qrow (2 tiles), an inline zstd bias, exact (zstd)
                           Lossy{"lossy_inline_exact", 4, 7, 5},
                           // 2.7: an exact norm, qrow BF16 / F16 / F32 with exact top layers (3, 2 and 1
                           // tiles; a tile of mode 0; tables of codec 0 and zstd; C = 32 and 6), a plain qrow
                           Lossy{"lossy_exact_top", 5, 24, 7},
                           // the same with the tables as tensor-wide chunks of level 1 (the writer's layout)
                           Lossy{"lossy_exact_top_tw", 5, 27, 7},
                           // the same with residual symbols beyond 104 (16-bit) and 232 (F32) in contexts >= 1
                           Lossy{"lossy_exact_top_wide", 3, 10, 7},
                           Lossy{"lossy_exact_top_trim", 4, 22, 7},  // tables' trim Z: 13, 16, 5 (EXACT_TOP.md §2)
                           // 2.8: an exact norm, qrow BF16 with 2 refinement levels (REFINE.md; M = 3, 7; a tile of
                           // mode 0; codes +-32767, -32768), F16 with 1 (M = 2, S = 24, results stored as +-Inf),
                           // BF16 of tiny steps (M = 5, subnormal results), F32 (M = 7; no FMA, binary32(1/M)),
                           // a plain qrow
                           Lossy{"lossy_refine", 6, 33, 8},
                           // 2.8: refinement levels under an exact top layer (its tables' S = 1, 2): F32 (M = 2^24,
                           // 3), F16 (M = 2, 7; -0 below), F16 (M = 2, +-Inf below the exact top)
                           Lossy{"lossy_refine_exact", 4, 28, 8},
                           // 2.8: a mode-1 payload's flags (EXACT_TOP.md §5): BF16 with 2 refinement levels and an
                           // exact top layer, flags 3 (tables in the payload, steps from the inline part 0); F16
                           // flag 2 only, F16 flag 1 only, F32 an exact top layer of flag 1 (tensor-wide zstd
                           // tables) over a level of flags 0, BF16 of 2 tiles with flag 1 (part 0's slices)
                           Lossy{"lossy_refine_flags", 6, 18, 8},
                           // 2.9: chunk order 1 (steps): an exact norm, BF16 with 2 refinement levels (2 tiles), a
                           // plain qrow, F16 with 1 and an exact top (1 tile), F32 with 2 (2 tiles); steps 3 4 | 1 2 |
                           // 3 5: F16's top before the others' level 1, BF16's and F32's level 1 sharing step 3
                           Lossy{"lossy_order", 5, 27, 9, 1},
                           // 2.14: sign-magnitude blocks (BITSTACK.md): an exact norm, BF16 with a block of rank 2
                           // (tensor-wide zstd factors; m < 0 in a row) under a refinement level (M = 6, S = 1), F16
                           // with a block of rank 1 (inline factors, raw signs; -0, subnormals, results stored as
                           // +-Inf and +-65504), F32 with a block of rank 3 (no FMA, §2's order of the sums), BF16
                           // with a refinement level, a block of rank 1 (float-ans signs) and one of rank 16, a plain
                           // qrow
                           Lossy{"lossy_bitstack", 6, 44, 14},
                           // 2.14: blocks under an exact top layer: BF16 (rank 2, inline zstd factors), F16 (a
                           // refinement level, then a block of rank 3), F32 (a block of rank 16, then a refinement
                           // level); the originals with NaNs, +-Inf, -0, subnormals
                           Lossy{"lossy_bitstack_exact", 4, 28, 14}}) {
      const std::string& v = l.name;
      CAPTURE(v);
      const std::string wcz = kDir + "/" + v + ".wcz";
      wc::ContainerReader r(wcz, wc::kReaderChecks);
      CHECK(r.header().major == 2);
      CHECK(r.header().minor == l.minor);
      CHECK(r.manifest().chunk_order == l.chunk_order);
      CHECK(r.index().size() == l.chunks);
      std::vector<wc::TensorSummary> listed;
      const wc::InspectResult ir = wc::inspect(wcz, false, &listed);
      CHECK(ir.version_major == 2);
      CHECK(ir.version_minor == l.minor);
      CHECK(listed.size() == l.tensors);
      wc::unpack(wcz, t / v, {});
      const auto got = tu::read_file(t / v);
      CHECK(!got.empty());
      CHECK(got == tu::read_file(kDir + "/" + v + ".expected"));
      CHECK(wc::verify(wcz, "", 1, {}).chunks == l.chunks);  // every chunk, every level's and file's XXH3-64
      // every level below the top that the vector gives (NAME.levelK.expected): 2.7, the exact top layer's
      // level 0; 2.8, each refinement level (a tensor of fewer levels at its own top)
      size_t below = 0;
      for (const auto& f : list(kDir, ".expected")) {
        const std::string pre = v + ".level";
        if (!starts_with(f, pre)) continue;
        const std::string k = f.substr(pre.size(), f.size() - pre.size() - std::string(".expected").size());
        if (k.empty() || k.find_first_not_of("0123456789") != std::string::npos) continue;
        CAPTURE(f);
        wc::UnpackOptions lo;
        lo.level = unsigned(std::stoul(k));
        CHECK(lo.level + 1u < r.manifest().level_count);
        wc::unpack(wcz, t / (v + ".level" + k), lo);
        CHECK(tu::read_file(t / (v + ".level" + k)) == tu::read_file(kDir + "/" + f));
        ++below;
      }
      if (l.minor >= 7) CHECK(below + 1u == r.manifest().level_count);  // every level below the top
    }
  }

  TEST_CASE("sign-magnitude block vectors (2.14): every level of every tensor, whole, tile by tile and upgraded in place") {
    // lossy_bitstack and lossy_bitstack_exact (make_vectors.py's bitstack_vectors, BITSTACK.md): each lossy tensor
    // at each of its levels, decoded whole in its own dtype, is its bytes in NAME.levelK.expected (NAME.expected at
    // the model's top; a tensor of fewer levels is at its own top there); each tile decoded alone at that level
    // gives the same rows (a tile reads the rows of U of its own rows, §3); and the tensor held at level K - 1
    // reaches level K in place (wcodec_upgrade_tensor) by decoding level K's chunks only.
    struct V {
      std::string name;
      size_t blocks;  // role-6 levels in the file
    };
    for (const V& v : {V{"lossy_bitstack", 5}, V{"lossy_bitstack_exact", 3}}) {
      CAPTURE(v.name);
      const std::string wcz = kDir + "/" + v.name + ".wcz";
      wc::ContainerReader r(wcz, wc::kReaderChecks);
      CHECK(r.header().minor == 14);
      const unsigned top = r.manifest().level_count - 1u;
      std::vector<std::vector<uint8_t>> model;  // the unpacked file at each level
      for (unsigned K = 0; K <= top; ++K)
        model.push_back(tu::read_file(kDir + "/" + v.name + (K == top ? "" : ".level" + std::to_string(K)) + ".expected"));
      const auto& ts = r.manifest().tensors;
      uint64_t total = 0;
      for (const auto& t : ts) total += t.byte_size;
      for (const auto& m : model) REQUIRE(m.size() == model[0].size());
      REQUIRE(model[0].size() >= total);
      char err[1024] = "";
      wcodec_archive* a = nullptr;
      REQUIRE(wcodec_open(wcz.c_str(), &a, err, sizeof err) == WCODEC_OK);
      size_t blocks = 0;
      uint64_t at = model[0].size() - total;  // the tensors' bytes end the one file, in tensor order
      for (size_t i = 0; i < ts.size(); at += ts[i].byte_size, ++i) {
        const auto& t = ts[i];
        CAPTURE(t.name);
        if (!t.lossy()) continue;
        const unsigned L = unsigned(t.levels.size());
        REQUIRE(t.parts.size() == 2u * L);
        for (unsigned k = 1; k < L; ++k)
          if (t.parts[2 * k].role == wc::PartRole::block) {
            ++blocks;
            CHECK(t.parts[2 * k + 1].role == wc::PartRole::block);
          }
        const uint64_t rb = t.byte_size / t.rows();
        std::vector<uint8_t> held;
        for (unsigned k = 0; k < L; ++k) {
          CAPTURE(k);
          std::vector<uint8_t> whole(t.byte_size);
          REQUIRE(wcodec_decode_tensor_ex(a, i, k, nullptr, whole.data(), whole.size(), 1, err, sizeof err) ==
                  WCODEC_OK);
          for (unsigned K = k; K <= (k + 1 == L ? top : k); ++K) {
            CAPTURE(K);
            CHECK(std::equal(whole.begin(), whole.end(), model[K].begin() + ptrdiff_t(at)));
          }
          for (uint64_t r0 = 0; r0 < t.rows(); r0 += t.tile_rows()) {
            CAPTURE(r0);
            const uint64_t r1 = std::min<uint64_t>(t.rows(), r0 + t.tile_rows());
            std::vector<uint8_t> rows((r1 - r0) * rb);
            REQUIRE(wcodec_decode_rows_ex(a, i, k, r0, r1, nullptr, rows.data(), rows.size(), 1, err, sizeof err) ==
                    WCODEC_OK);
            CHECK(std::equal(rows.begin(), rows.end(), whole.begin() + ptrdiff_t(r0 * rb)));
          }
          if (k) {
            // level k's chunks: each tile's, and its tensor-wide ones (the factors, tables) at most once a tile
            uint64_t tw = 0;
            for (const auto& p : t.parts)
              if (p.level == k && p.layout == wc::PartLayout::tensor_wide && p.items > 0) ++tw;
            const uint64_t tiled = t.level_chunks[k] - tw, before = wcodec_chunks_decoded(a);
            REQUIRE(wcodec_upgrade_tensor(a, i, k - 1, k, held.data(), held.size(), 1, err, sizeof err) == WCODEC_OK);
            const uint64_t decoded = wcodec_chunks_decoded(a) - before;
            CHECK(decoded >= tiled + tw);
            CHECK(decoded <= tiled + tw * t.tile_count());
            CHECK(held == whole);
          }
          held = whole;
        }
      }
      CHECK(blocks == v.blocks);
      wcodec_close(a);
    }
  }

  TEST_CASE("qrow-outliers vector (2.2): outlier counts, every output dtype, every tile alone") {
    // lossy_outliers.as_dtypes.expected: each lossy tensor decoded in BF16, F16 and F32 in turn, as
    // make_vectors.py computes them from QROW.md §3 and OUTLIERS.md §3 (outliers widened exactly to
    // binary32, then stored in the output dtype).
    const std::string wcz = kDir + "/lossy_outliers.wcz";
    std::vector<wc::TensorSummary> listed;
    CHECK(wc::inspect(wcz, false, &listed).version_major == 2);
    REQUIRE(listed.size() == 5);
    const std::vector<std::string> reprs = {"exact", "qrow-outliers", "qrow", "qrow-outliers", "qrow-outliers"};
    const std::vector<uint64_t> counts = {0, 8, 0, 4, 8};
    for (size_t i = 0; i < listed.size(); ++i) {
      CAPTURE(listed[i].name);
      CHECK(listed[i].repr == reprs[i]);
      CHECK(listed[i].outliers == counts[i]);
    }
    char err[1024] = "";
    wcodec_archive* a = nullptr;
    REQUIRE(wcodec_open(wcz.c_str(), &a, err, sizeof err) == WCODEC_OK);
    const auto want = tu::read_file(kDir + "/lossy_outliers.as_dtypes.expected");
    std::vector<uint8_t> got;
    for (size_t i = 1; i < wcodec_tensor_count(a); ++i) {
      wcodec_tensor_info info = WCODEC_TENSOR_INFO_INIT;
      REQUIRE(wcodec_get_tensor_info(a, i, &info) == WCODEC_OK);
      CAPTURE(info.name);
      CHECK(std::string(info.representation) == reprs[i]);
      const uint64_t elems = info.byte_size / 2 / (std::string(info.dtype) == "F32" ? 2 : 1);
      for (const char* dt : {"BF16", "F16", "F32"}) {
        CAPTURE(dt);
        std::vector<uint8_t> buf(elems * (std::string(dt) == "F32" ? 4 : 2));
        REQUIRE(wcodec_decode_tensor_ex(a, i, WCODEC_LEVEL_TOP, dt, buf.data(), buf.size(), 1, err, sizeof err) ==
                WCODEC_OK);
        got.insert(got.end(), buf.begin(), buf.end());
      }
      // Each tile alone (a section is found through the end table) gives the whole tensor's rows.
      std::vector<uint8_t> whole(info.byte_size);
      REQUIRE(wcodec_decode_tensor(a, i, whole.data(), whole.size(), 1, err, sizeof err) == WCODEC_OK);
      check_tiles(a, i, info, nullptr, info.row_bytes, whole);
    }
    CHECK(got.size() == want.size());
    CHECK(got == want);
    wcodec_close(a);
  }

  TEST_CASE("inline-coded parts vector (2.3): each lossy tensor decodes whole and tile by tile") {
    // lossy_inline23: codes inline (float-ans, zstd, raw) in one-tile tensors, scales inline with a codec
    // (float-ans in a tensor with no chunk at all, zstd in a tensor of 3 tiles): every tile decodes alone.
    const std::string wcz = kDir + "/lossy_inline23.wcz";
    char err[1024] = "";
    wcodec_archive* a = nullptr;
    REQUIRE(wcodec_open(wcz.c_str(), &a, err, sizeof err) == WCODEC_OK);
    REQUIRE(wcodec_tensor_count(a) == 6);
    const std::vector<std::string> reprs = {"exact", "qrow", "qrow", "qrow", "qrow-outliers", "qrow"};
    for (size_t i = 1; i < wcodec_tensor_count(a); ++i) {
      wcodec_tensor_info info = WCODEC_TENSOR_INFO_INIT;
      REQUIRE(wcodec_get_tensor_info(a, i, &info) == WCODEC_OK);
      CAPTURE(info.name);
      CHECK(std::string(info.representation) == reprs[i]);
      std::vector<uint8_t> whole(info.byte_size);
      REQUIRE(wcodec_decode_tensor(a, i, whole.data(), whole.size(), 1, err, sizeof err) == WCODEC_OK);
      check_tiles(a, i, info, nullptr, info.row_bytes, whole);
    }
    wcodec_close(a);
  }

  TEST_CASE("vq vector (2.4): each vq tensor in every output dtype, whole and tile by tile") {
    // lossy_vq.as_dtypes.expected: each vq tensor decoded in BF16, F16 and F32 in turn, as make_vectors.py
    // computes them from VQ.md §2 (one binary32 product) and QROW.md §3 (the output dtype from its bits).
    const std::string wcz = kDir + "/lossy_vq.wcz";
    std::vector<wc::TensorSummary> listed;
    CHECK(wc::inspect(wcz, false, &listed).version_minor == 4);
    REQUIRE(listed.size() == 5);
    const std::vector<std::string> reprs = {"exact", "vq", "qrow", "vq", "vq"};
    for (size_t i = 0; i < listed.size(); ++i) CHECK(listed[i].repr == reprs[i]);
    size_t vq_tensors = 0;
    const auto got = vq_in_every_dtype(wcz, reprs, &vq_tensors);
    const auto want = tu::read_file(kDir + "/lossy_vq.as_dtypes.expected");
    CHECK(vq_tensors == 3);
    CHECK(got.size() == want.size());
    CHECK(got == want);
  }

  TEST_CASE("vq vector (2.11): palettes, books per group of rows, tensor-wide codebooks; every dtype, every tile") {
    // lossy_vq211.as_dtypes.expected: each vq tensor decoded in BF16, F16 and F32 in turn (make_vectors.py, from
    // VQ.md §2: row r's book r >> s, one binary32 product; QROW.md §3). Tiles that start inside a book group (a's
    // rows 3 and 6, b's row 3) decode alone only when the book is taken from the row in the tensor.
    const std::string wcz = kDir + "/lossy_vq211.wcz";
    std::vector<wc::TensorSummary> listed;
    CHECK(wc::inspect(wcz, false, &listed).version_minor == 11);
    REQUIRE(listed.size() == 7);
    const std::vector<std::string> reprs = {"exact", "vq", "vq", "vq", "vq", "vq", "qrow"};
    const std::vector<uint32_t> ks = {0, 5, 6, 2100, 3, 65536, 0}, ds = {0, 1, 2, 8, 4, 1, 0}, books = {0, 2, 3, 1, 3, 1, 0};
    for (size_t i = 0; i < listed.size(); ++i) {
      CAPTURE(listed[i].name);
      CHECK(listed[i].repr == reprs[i]);
      if (reprs[i] != "vq") continue;
      CHECK(listed[i].codebook_entries == ks[i]);
      CHECK(listed[i].codebook_dim == ds[i]);
      CHECK(listed[i].codebook_books == books[i]);
    }
    size_t vq_tensors = 0;
    const auto got = vq_in_every_dtype(wcz, reprs, &vq_tensors);
    const auto want = tu::read_file(kDir + "/lossy_vq211.as_dtypes.expected");
    CHECK(vq_tensors == 5);
    CHECK(got.size() == want.size());
    CHECK(got == want);
  }

  TEST_CASE("vq vector (2.11): additive books; every dtype, every tile") {
    // lossy_vq211_additive.as_dtypes.expected: each vq tensor decoded in BF16, F16 and F32 in turn (make_vectors.py,
    // from VQ.md §2: the binary32 sum of entry u div K2 of the first codebook and entry K1 + u mod K2 of the row's
    // book, then one binary32 product; QROW.md §3). b's element (0, 0) is an F16 tie only when the sum is rounded
    // before the product: a fused multiply-add (or a wider sum) gives 0x3E05 instead of 0x3E04.
    const std::string wcz = kDir + "/lossy_vq211_additive.wcz";
    std::vector<wc::TensorSummary> listed;
    CHECK(wc::inspect(wcz, false, &listed).version_minor == 11);
    REQUIRE(listed.size() == 6);
    const std::vector<std::string> reprs = {"exact", "vq", "vq", "vq", "vq", "vq"};
    // codebook_entries: the codes (K1 x K2); codebook_second: K2
    const std::vector<uint32_t> ks = {0, 15, 6, 65536, 4, 4}, ds = {0, 8, 2, 4, 1, 4}, books = {0, 1, 2, 1, 2, 1},
                                k2s = {0, 5, 3, 256, 4, 1};
    for (size_t i = 0; i < listed.size(); ++i) {
      CAPTURE(listed[i].name);
      CHECK(listed[i].repr == reprs[i]);
      if (reprs[i] != "vq") continue;
      CHECK(listed[i].codebook_entries == ks[i]);
      CHECK(listed[i].codebook_dim == ds[i]);
      CHECK(listed[i].codebook_books == books[i]);
      CHECK(listed[i].codebook_second == k2s[i]);
    }
    size_t vq_tensors = 0, fma_checked = 0;
    const auto got =
        vq_in_every_dtype(wcz, reprs, &vq_tensors, [&](size_t i, const std::string& dt, const std::vector<uint8_t>& whole) {
          if (i != 2 || dt != "F16") return;
          CHECK(whole[0] == 0x04);  // b, element (0, 0): the FMA case, to even 0x3E04
          CHECK(whole[1] == 0x3E);
          ++fma_checked;
        });
    const auto want = tu::read_file(kDir + "/lossy_vq211_additive.as_dtypes.expected");
    CHECK(fma_checked == 1);
    CHECK(vq_tensors == 5);
    CHECK(got.size() == want.size());
    CHECK(got == want);
  }

  TEST_CASE("lossy vector with an unknown representation: inspect lists it, decoding it is refused") {
    // Representation 9 (a tensor-wide part and a part at level 1) between an exact and a qrow tensor; its
    // structure is valid, so it is not a bad vector: only readers that must decode it refuse it.
    const std::string wcz = kDir + "/lossy_unknown_repr.wcz";
    std::vector<wc::TensorSummary> listed;
    CHECK(wc::inspect(wcz, false, &listed).version_major == 2);
    REQUIRE(listed.size() == 3);
    CHECK(listed[0].name == "first.weight");
    CHECK(listed[1].name == "odd.weight");
    CHECK((listed[1].shape == std::vector<uint64_t>{4, 8}));
    CHECK(listed[2].name == "last.weight");
    tu::TempDir t;
    const Outcome u = outcome([&] { wc::unpack(wcz, t / "out", {}); });
    CHECK(u.code == wc::errc_name(wc::Errc::unsupported_version));
    // the error names the file, the tensor and its record's offset
    CHECK(u.message.find("lossy_unknown_repr.wcz") != std::string::npos);
    CHECK(u.message.find("'odd.weight'") != std::string::npos);
    CHECK(u.message.find("offset ") != std::string::npos);
    CHECK(leftovers(t.path) == "");
    const Outcome v = outcome([&] { wc::verify(wcz, "", 1, {}); });
    CHECK(v.code == wc::errc_name(wc::Errc::unsupported_version));
    CHECK(v.message == u.message);
  }

  TEST_CASE("a wrong reconstruction hash: both readers name the file, tensor and record offset, and write nothing") {
    const std::string wcz = kDir + "/bad/level_xxh3_wrong.checksum.wcz";
    tu::TempDir t;
    const Outcome u = outcome([&] { wc::unpack(wcz, t / "out.safetensors", {}); });
    CHECK(u.code == wc::errc_name(wc::Errc::checksum));
    CHECK(u.message.find("level_xxh3_wrong.checksum.wcz") != std::string::npos);
    CHECK(u.message.find("'w.weight'") != std::string::npos);
    CHECK(u.message.find("offset ") != std::string::npos);
    CHECK(leftovers(t.path) == "");
  }

  TEST_CASE("bad vectors: verify rejects each with the expected error") {
    const auto bad = bad_vectors();
    REQUIRE(bad.size() >= 438);  // run make_vectors.py if this fails
    for (const auto& v : bad) {
      CAPTURE(v.file);
      const Outcome o = outcome([&] { wc::verify(v.path, "", 1, {}); });
      CHECK(o.code == v.want);
      if (o.threw()) CHECK(o.message.find(v.file) != std::string::npos);  // the error names the file
    }
  }

  TEST_CASE("bad vectors: inspect rejects those its manifest and index reveal") {
    for (const auto& v : bad_vectors()) {
      CAPTURE(v.file);
      const Outcome o = outcome([&] {
        std::vector<wc::TensorSummary> tensors;
        wc::inspect(v.path, false, &tensors);
      });
      if (v.stage == Stage::open) {
        CHECK(o.code == v.want);
      } else {
        CHECK((!o.threw() || o.code == v.want));  // it reads no payload, so it may not notice
      }
      if (o.threw()) CHECK(o.message.find(v.file) != std::string::npos);
    }
  }

  TEST_CASE("bad vectors: unpack from a path fails and leaves nothing behind") {
    for (const auto& v : bad_vectors()) {
      CAPTURE(v.file);
      tu::TempDir t;
      const Outcome o = outcome([&] { wc::unpack(v.path, t / "out", {}); });
      CHECK(o.code == v.want);
      if (o.threw()) CHECK(o.message.find(v.file) != std::string::npos);
      CHECK(leftovers(t.path) == "");  // no output, no temporary, no directory
    }
  }

  TEST_CASE("bad vectors: the CLI unpacking from a pipe fails and leaves nothing behind") {
    for (const auto& v : bad_vectors()) {
      CAPTURE(v.file);
      tu::TempDir t;
      const auto r = tu::run("cat " + q(v.path) + " | " + tu::cli() + " unpack - -o " + q(t / "out"));
      CAPTURE(r.out);
      CHECK(r.status == 1);
      CHECK(r.out.find("error: <stdin>: ") != std::string::npos);
      CHECK(r.out.find(": " + v.want + ": ") != std::string::npos);  // describe(): "FILE: ...: CODE: message"
      CHECK(leftovers(t.path) == "");
    }
  }

  TEST_CASE("bad vectors: the C API refuses to open them, or to decode their tensors") {
    for (const auto& v : bad_vectors()) {
      CAPTURE(v.file);
      char err[1024] = "";
      wcodec_archive* a = nullptr;
      const int rc = wcodec_open(v.path.c_str(), &a, err, sizeof err);
      const std::string opened = rc == WCODEC_OK ? "accepted" : wcodec_error_name(rc);
      CAPTURE(err);
      if (v.stage == Stage::open) {
        CHECK(opened == v.want);
      } else {
        CHECK((opened == "accepted" || opened == v.want));
      }
      if (rc != WCODEC_OK) {
        CHECK(a == nullptr);
        CHECK(std::string(err).find(v.file) != std::string::npos);
        continue;
      }
      REQUIRE(a != nullptr);
      if (v.stage == Stage::open) {  // opened when it must not: reported above
        wcodec_close(a);
        continue;
      }
      // Tensor after tensor until one fails: the fault may be in any of them.
      std::string decoded = "accepted";
      for (size_t i = 0; i < wcodec_tensor_count(a) && decoded == "accepted"; ++i) {
        wcodec_tensor_info info = WCODEC_TENSOR_INFO_INIT;
        REQUIRE(wcodec_get_tensor_info(a, i, &info) == WCODEC_OK);
        std::vector<uint8_t> buf(std::max<uint64_t>(info.byte_size, 1));
        const int d = wcodec_decode_tensor(a, i, buf.data(), buf.size(), 1, err, sizeof err);
        if (d != WCODEC_OK) decoded = wcodec_error_name(d);
      }
      if (v.stage == Stage::chunk) {
        CHECK(decoded == v.want);
      } else {
        CHECK((decoded == "accepted" || decoded == v.want));  // decodes tensors, not whole files
      }
      wcodec_close(a);
    }
  }
}
