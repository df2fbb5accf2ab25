// The exact top layer (container 2.7, spec/EXACT_TOP.md): pack --bits B
// --exact unpacks to the original bytes (special values included), its level
// 0 is the --bits model, a held level 0 is upgraded in place from level 1's
// chunks alone, and hostile payloads are refused.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "codec/codec.h"
#include "format/bytes.h"
#include "format/reader.h"
#include "lib/api.h"
#include "lib/levels.h"
#include "lib/reader_checks.h"
#include "quant/exact_top.h"
#include "quant/qrow_math.h"
#include "st_builder.h"
#include "test_util.h"
#include "level_weights.h"
#include "wcodec/wcodec.h"

using wc::DType;
using wgen::weights;
using wgen::exact_options;

TEST_SUITE("exact_top") {
  TEST_CASE("pack --exact: every dtype, special values included, unpacks (file and pipe) to the original bytes") {
    tu::TempDir d;
    std::vector<stb::StTensor> ts;
    uint64_t seed = 1;
    for (DType t : {DType::BF16, DType::F16, DType::F32}) {
      ts.push_back(wgen::tensor_of(t, "w", 96, 160, seed++, true));
      ts.push_back(wgen::tensor_of(t, "plain", 48, 64, seed++));
    }
    ts.push_back({"norm", DType::F32, {160}, {}});
    const std::string src = d / "m.safetensors", wcz = d / "m.wcz";
    tu::write_file(src, stb::build(ts));
    wc::pack(src, wcz, exact_options(4.25));
    wc::ContainerReader r(wcz, wc::kReaderChecks);
    CHECK(r.header().major == 2);
    // 2.7, or 2.8 where a tensor of one tile leaves its step bytes to its record (the payload's flags)
    bool flagged = false;
    for (const auto& t : r.manifest().tensors) flagged |= t.levels.size() > 1 && t.tile_count() == 1;
    CHECK(r.header().minor == (flagged ? 8 : 7));
    CHECK(r.manifest().level_count == 2);
    unsigned two_level = 0;
    for (const auto& t : r.manifest().tensors)
      if (t.lossy()) {
        two_level += t.levels.size() == 2;
        CHECK(t.levels[0].rel_rmse > 0);  // level 0 is lossy, level 1 exact
        CHECK(t.levels[1].rel_rmse == 0);
      }
    for (const char* n : {"BF16.w", "F16.w", "F32.w"}) {  // the tensors with Inf and NaN too
      const auto it = std::find_if(r.manifest().tensors.begin(), r.manifest().tensors.end(),
                                   [&](const wc::TensorRecord& t) { return t.name == n; });
      REQUIRE(it != r.manifest().tensors.end());
      CHECK(it->levels.size() == 2);
    }
    CHECK(two_level >= 3);
    wc::unpack(wcz, d / "out.safetensors", {});
    CHECK(tu::read_file(d / "out.safetensors") == tu::read_file(src));
    CHECK(wc::verify(wcz, src, 2, {}).compared);
    const auto pipe = tu::run("cat " + wcz + " | " + tu::cli() + " unpack - -o " + (d / "pipe.safetensors") + " -q");
    CHECK(pipe.status == 0);
    CHECK(tu::read_file(d / "pipe.safetensors") == tu::read_file(src));
  }

  TEST_CASE("bit_length: the position of the highest set bit, 0 for 0 (every power of two and its neighbours)") {
    auto ref = [](uint32_t v) {
      unsigned n = 0;
      while (v) ++n, v >>= 1;
      return n;
    };
    CHECK(wc::exact::bit_length(0) == 0);
    CHECK(wc::exact::bit_length(0xFFFFFFFFu) == 32);
    for (unsigned b = 0; b < 32; ++b)
      for (uint32_t v : {(1u << b) - 1u, 1u << b, (1u << b) + 1u, (1u << b) | (1u << b >> 1)})
        CHECK(wc::exact::bit_length(v) == ref(v));
  }

  TEST_CASE("rows whose width is not a multiple of 4: every level of --refine 2 --exact decodes, the top to the original") {
    // The coded tiles run four rANS states over the elements in row-major
    // order, so a row of such a width starts at every state phase and ends
    // in a partial group: each level's stored reconstruction hash and the
    // states' final check catch a state given to the wrong element.
    tu::TempDir d;
    std::vector<stb::StTensor> ts;
    uint64_t seed = 51;
    for (DType t : {DType::BF16, DType::F16, DType::F32}) {
      ts.push_back(wgen::tensor_of(t, "a", 70, 37, seed++, true));
      ts.push_back(wgen::tensor_of(t, "b", 41, 50, seed++));
      ts.push_back(wgen::tensor_of(t, "c", 33, 75, seed++));
    }
    const std::string src = d / "m.safetensors", wcz = d / "m.wcz";
    tu::write_file(src, stb::build(ts));
    wc::PackOptions o = exact_options(3.25);
    o.refine = 2;
    wc::pack(src, wcz, o);
    wc::ContainerReader r(wcz, wc::kReaderChecks);
    unsigned lossy = 0;
    for (const auto& t : r.manifest().tensors) lossy += t.lossy() && t.levels.size() == 4;  // 0, two refinements, exact
    CHECK(lossy == ts.size());
    for (unsigned k = 0; k < r.manifest().level_count; ++k) {
      wc::UnpackOptions u;
      u.level = int(k);
      u.force = true;
      CHECK_NOTHROW(wc::unpack(wcz, d / "l.safetensors", u));
    }
    wc::unpack(wcz, d / "out.safetensors", {});
    CHECK(tu::read_file(d / "out.safetensors") == tu::read_file(src));
  }

  TEST_CASE("level 0 of an --exact file is the --bits model: the same bytes as --scheme quant packs, from file and pipe") {
    tu::TempDir d;
    std::vector<stb::StTensor> ts = {{"a.weight", DType::BF16, {1024, 192}, weights(DType::BF16, 1024, 192, 7)},
                                     {"b.weight", DType::F16, {64, 96}, weights(DType::F16, 64, 96, 8)},
                                     {"c.weight", DType::F32, {40, 64}, weights(DType::F32, 40, 64, 9)}};
    const std::string src = d / "m.safetensors";
    tu::write_file(src, stb::build(ts));
    wc::pack(src, d / "x.wcz", exact_options(3.5));
    wc::PackOptions q = exact_options(3.5);
    q.exact = false;
    q.scheme = "quant";
    wc::pack(src, d / "q.wcz", q);
    wc::unpack(d / "q.wcz", d / "q.safetensors", {});
    wc::UnpackOptions l0;
    l0.level = 0;
    wc::unpack(d / "x.wcz", d / "x0.safetensors", l0);
    const auto lossy = tu::read_file(d / "q.safetensors");
    CHECK(lossy != tu::read_file(src));
    CHECK(tu::read_file(d / "x0.safetensors") == lossy);
    const auto pipe = tu::run("cat " + (d / "x.wcz") + " | " + tu::cli() + " unpack - --level 0 -o " +
                              (d / "p0.safetensors") + " -q");
    CHECK(pipe.status == 0);
    CHECK(tu::read_file(d / "p0.safetensors") == lossy);
    // the level-0 prefix is what a --bits file costs, plus the exact layer's tables in the manifest
    wc::ContainerReader x(d / "x.wcz", wc::kReaderChecks);
    // level 0's last chunk's end (the manifest's when all of level 0 lies in records)
    const uint32_t first1 = x.manifest().level_first_chunk[1];
    const uint64_t prefix = first1 ? x.index().at(first1 - 1).offset + x.index().at(first1 - 1).stored_size
                                   : 64 + x.header().manifest_stored;
    CHECK(prefix < tu::read_file(d / "q.wcz").size() * 13 / 10);
    CHECK(prefix < tu::read_file(d / "x.wcz").size() / 2);
    // inspect's budget curve, and unpack --budget picking the level that fits
    const wc::InspectResult ir = wc::inspect(d / "x.wcz", false, nullptr);
    REQUIRE(ir.levels.size() == 2);
    CHECK(ir.levels[0].bytes == prefix);
    CHECK(ir.levels[1].bytes == ir.file_size);
    CHECK(ir.levels[0].rel_rmse > 0.01);
    CHECK(ir.levels[1].rel_rmse == 0);
    CHECK(ir.levels[0].bits_per_weight == doctest::Approx(8.0 * double(prefix) / double(ir.weights)));
    wc::UnpackOptions b;
    b.budget_bytes = prefix;
    wc::unpack(d / "x.wcz", d / "b0.safetensors", b);
    CHECK(tu::read_file(d / "b0.safetensors") == lossy);
    b.budget_bytes = ir.file_size;
    wc::unpack(d / "x.wcz", d / "b1.safetensors", b);
    CHECK(tu::read_file(d / "b1.safetensors") == tu::read_file(src));
    b.budget_bytes = prefix - 1;
    CHECK_THROWS_AS(wc::unpack(d / "x.wcz", d / "none.safetensors", b), wc::Error);
    CHECK_FALSE(wc::path_exists(d / "none.safetensors"));
    const auto cli = tu::run(tu::cli() + " unpack " + (d / "x.wcz") + " --budget " +
                             std::to_string(ir.levels[0].bits_per_weight + 0.001) + "bpw -o " + (d / "c.safetensors") + " -q");
    CHECK(cli.status == 0);
    CHECK(tu::read_file(d / "c.safetensors") == lossy);
  }

  TEST_CASE("--partial: a prefix of an --exact file decodes to the highest level it holds whole, from file and pipe") {
    tu::TempDir d;
    std::vector<stb::StTensor> ts = {{"a.weight", DType::BF16, {1024, 192}, weights(DType::BF16, 1024, 192, 17)},
                                     {"b.weight", DType::F16, {512, 128}, weights(DType::F16, 512, 128, 18)},
                                     {"norm", DType::F32, {192}, {}}};
    const std::string src = d / "m.safetensors";
    tu::write_file(src, stb::build(ts));
    wc::pack(src, d / "x.wcz", exact_options(3.5));
    wc::UnpackOptions l0;
    l0.level = 0;
    wc::unpack(d / "x.wcz", d / "ref0.safetensors", l0);
    const auto level0 = tu::read_file(d / "ref0.safetensors");
    const auto whole = tu::read_file(d / "x.wcz");
    const wc::InspectResult ir = wc::inspect(d / "x.wcz", false, nullptr);
    REQUIRE(ir.levels.size() == 2);
    const uint64_t end0 = ir.levels[0].bytes;
    wc::UnpackOptions part;
    part.partial = true;
    part.force = true;
    // at level 0's end, inside level 1, and the whole file (its top)
    for (uint64_t cut : {end0, end0 + (whole.size() - end0) / 2, uint64_t(whole.size())}) {
      CAPTURE(cut);
      const std::string c = d / "cut.wcz";
      tu::write_file(c, std::vector<uint8_t>(whole.begin(), whole.begin() + ptrdiff_t(cut)));
      wc::unpack(c, d / "p.safetensors", part);
      const auto want = cut == whole.size() ? tu::read_file(src) : level0;
      CHECK(tu::read_file(d / "p.safetensors") == want);
      const auto pipe = tu::run("cat " + c + " | " + tu::cli() + " unpack - --partial -o " + (d / "q.safetensors") + " -q -f");
      CHECK(pipe.status == 0);
      CHECK(tu::read_file(d / "q.safetensors") == want);
      if (cut < whole.size()) {  // without --partial: refused, nothing written
        CHECK_THROWS_AS(wc::unpack(c, d / "r.safetensors", {}), wc::Error);
        CHECK_FALSE(wc::path_exists(d / "r.safetensors"));
        const auto np = tu::run("cat " + c + " | " + tu::cli() + " unpack - -o " + (d / "s.safetensors") + " -q");
        CHECK(np.status != 0);
        CHECK_FALSE(wc::path_exists(d / "s.safetensors"));
      }
    }
    // inside level 0: no model, an error either way
    tu::write_file(d / "short.wcz", std::vector<uint8_t>(whole.begin(), whole.begin() + ptrdiff_t(end0 - 100)));
    try {
      wc::unpack(d / "short.wcz", d / "t.safetensors", part);
      FAIL("a cut inside level 0 decoded");
    } catch (const wc::Error& e) {
      CHECK(e.code() == wc::Errc::truncated);
      CHECK(std::string(e.what()).find("level 0") != std::string::npos);
    }
    CHECK_FALSE(wc::path_exists(d / "t.safetensors"));
  }

  TEST_CASE("upgrade in place: level 0 held by a runtime becomes the original, reading level 1's chunks only") {
    tu::TempDir d;
    std::vector<stb::StTensor> ts = {{"w", DType::BF16, {300, 256}, weights(DType::BF16, 300, 256, 3)},
                                     {"v", DType::F32, {64, 128}, weights(DType::F32, 64, 128, 4)}};
    const std::string src = d / "m.safetensors";
    const auto file = stb::build(ts);
    tu::write_file(src, file);
    wc::pack(src, d / "x.wcz", exact_options(4));
    wcodec_archive* a = nullptr;
    char err[512];
    REQUIRE(wcodec_open((d / "x.wcz").c_str(), &a, err, sizeof err) == WCODEC_OK);
    wc::ContainerReader r(d / "x.wcz", wc::kReaderChecks);
    for (size_t i = 0; i < wcodec_tensor_count(a); ++i) {
      const auto& t = r.manifest().tensors[i];
      CAPTURE(t.name);
      REQUIRE(t.levels.size() == 2);
      std::vector<uint8_t> held(t.byte_size), fresh(t.byte_size);
      REQUIRE(wcodec_decode_tensor_ex(a, i, 0, nullptr, held.data(), held.size(), 1, err, sizeof err) == WCODEC_OK);
      const auto level0 = held;
      const uint64_t before = wcodec_chunks_decoded(a);
      REQUIRE(wcodec_upgrade_tensor(a, i, 0, WCODEC_LEVEL_TOP, held.data(), held.size(), 2, err, sizeof err) ==
              WCODEC_OK);
      // per tile its residuals and the tensor's tables (a tensor-wide chunk of level 1), nothing of level 0
      CHECK(wcodec_chunks_decoded(a) - before == 2 * t.tile_count());
      REQUIRE(wcodec_decode_tensor(a, i, fresh.data(), fresh.size(), 1, err, sizeof err) == WCODEC_OK);
      CHECK(held == fresh);
      CHECK(held != level0);
      // the original bytes (the safetensors data section holds w, then v)
      const uint64_t off = file.size() - (i == 0 ? ts[0].bytes.size() + ts[1].bytes.size() : ts[1].bytes.size());
      CHECK(std::equal(held.begin(), held.end(), file.begin() + ptrdiff_t(off)));
      // a buffer that did not hold level 0 is refused (its contexts do not fit the stream, or the level's hash
      // differs), and there is no level 2
      std::vector<uint8_t> wrong(t.byte_size, 0);
      const int rc = wcodec_upgrade_tensor(a, i, 0, 1, wrong.data(), wrong.size(), 1, err, sizeof err);
      CHECK((rc == WCODEC_E_CHECKSUM || rc == WCODEC_E_CODEC));
      CHECK(std::string(err).find("x.wcz") != std::string::npos);  // the file, tensor and offset named
      CHECK(std::string(err).find("'" + t.name + "'") != std::string::npos);
      CHECK(std::string(err).find("offset") != std::string::npos);
      CHECK(wcodec_upgrade_tensor(a, i, 0, 2, held.data(), held.size(), 1, err, sizeof err) == WCODEC_E_USAGE);
      CHECK(wcodec_upgrade_tensor(a, i, 1, 1, held.data(), held.size(), 1, err, sizeof err) == WCODEC_E_USAGE);
    }
    wcodec_close(a);
  }

  TEST_CASE("hostile tile payloads: every mutation decodes or is refused, never read or written out of bounds") {
    // one tile coded by the encoder, then bytes flipped, cut and appended
    const uint64_t rows = 8, cols = 64;
    const auto orig = weights(DType::BF16, rows, cols, 5);
    std::vector<uint8_t> recon(orig.size());
    std::vector<uint8_t> e(rows);
    for (uint64_t i = 0; i < rows * cols; ++i)  // a crude level 0: the top 5 bits of each value
      wc::store_u16(recon.data() + 2 * i, uint16_t(wc::load_u16(orig.data() + 2 * i) & 0xFFC0));
    for (uint64_t r = 0; r < rows; ++r) e[r] = uint8_t(16 * r + 3);
    const uint32_t dt = uint32_t(DType::BF16);
    const int32_t base = -12;
    wc::exact::Counts k;
    const unsigned z = wc::exact::trim_bits(dt, orig.data(), orig.size() / (wc::dtype_bits(wc::DType(dt)) / 8));
    wc::exact::count_tile(k, dt, z, 0, orig.data(), recon.data(), base, e.data(), rows, cols);
    wc::exact::Tables tb;
    const auto tables = wc::exact::build_tables(k, dt, z, 0, tb);
    std::vector<uint8_t> payload;
    wc::exact::encode_tile(tb, dt, orig.data(), recon.data(), base, e.data(), rows, cols, payload);
    REQUIRE(payload[0] == 1);
    auto dst = recon;
    REQUIRE(wc::exact::apply_tile(tb, payload.data(), payload.size(), dt, base, rows, cols, dst.data()) == wc::Errc::ok);
    CHECK(dst == orig);
    unsigned refused = 0;
    wgen::for_mutations(payload, 11, 3000, [&](const std::vector<uint8_t>& buf, int kind) {
      std::vector<uint8_t> out = recon;
      const wc::Errc rc = wc::exact::apply_tile(tb, buf.data(), buf.size(), dt, base, rows, cols, out.data());
      CHECK((rc == wc::Errc::ok || rc == wc::Errc::codec));
      if (kind != 0) CHECK(rc == wc::Errc::codec);  // a cut or an extra byte: the end-of-stream rules see it
      refused += rc != wc::Errc::ok;
    });
    CHECK(refused > 2000);  // a flipped raw bit decodes (to other values), most other flips do not
    // tables: cut or flipped, parsed or refused
    for (size_t cut = 0; cut < tables.size(); ++cut) {
      wc::exact::Tables t2;
      std::vector<uint8_t> b(tables.begin(), tables.begin() + ptrdiff_t(cut));
      CHECK_FALSE(wc::exact::parse_tables(b.data(), b.size(), dt, t2));
    }
  }

  TEST_CASE("an F32 model of F16 or BF16 values: the exact layer codes none of the zero low bits (the tables' trim)") {
    tu::TempDir d;
    for (DType narrow : {DType::F16, DType::BF16}) {
      CAPTURE(wc::dtype_name(narrow));
      const std::string sub = d / std::string(wc::dtype_name(narrow));
      ::mkdir(sub.c_str(), 0700);
      // F16 / BF16 values, stored as F32 (exact upcasts)
      const auto w = weights(narrow, 512, 256, 31);
      std::vector<uint8_t> f32(w.size() * 2);
      for (size_t i = 0; i < w.size() / 2; ++i) {
        const uint16_t h = wc::load_u16(w.data() + 2 * i);
        uint32_t b;
        if (narrow == DType::BF16) {
          b = uint32_t(h) << 16;
        } else {  // F16 to F32 (normals and zeros; these weights have no subnormals or specials)
          const uint32_t s = uint32_t(h & 0x8000) << 16, e = (h >> 10) & 31, m = h & 0x3FF;
          b = e == 0 ? s : s | ((e + 112) << 23) | (m << 13);
        }
        wc::store_u32(f32.data() + 4 * i, b);
      }
      const std::string src = sub + "/m.safetensors", ll = sub + "/ll.wcz", x = sub + "/x.wcz";
      tu::write_file(src, stb::build({{"w", DType::F32, {512, 256}, f32}}));
      wc::pack(src, ll, {});
      wc::pack(src, x, exact_options(4.25));
      wc::ContainerReader r(x, wc::kReaderChecks);
      const auto& t = r.manifest().tensors[0];
      REQUIRE(t.levels.size() == 2);
      // the tables' chunk (tensor-wide, zstd): its third byte is the trim
      std::vector<uint8_t> tables(t.parts[2].items);
      REQUIRE(wc::decode_chunk(wc::CodecId(t.parts[2].codec), DType::U8, r.chunk(t.global_chunk(t.chunk_of_part(2, 0))).data(),
                               r.chunk(t.global_chunk(t.chunk_of_part(2, 0))).size(), tables.data(), tables.size()) ==
              wc::Errc::ok);
      CHECK(tables[2] == (narrow == DType::F16 ? 13 : 16));
      // about what the lossless codec's trim gives (without it: 2x)
      CHECK(tu::read_file(x).size() < tu::read_file(ll).size() * 108 / 100);
      wc::unpack(x, sub + "/out.safetensors", {});
      CHECK(tu::read_file(sub + "/out.safetensors") == tu::read_file(src));
    }
  }

  TEST_CASE("pack --bits --exact --rm: the input goes once the container is verified against it") {
    tu::TempDir d;
    const std::string src = d / "m.safetensors";
    const auto file = stb::build({{"w", DType::BF16, {256, 128}, weights(DType::BF16, 256, 128, 41)}});
    tu::write_file(src, file);
    const auto r = tu::run(tu::cli() + " pack " + src + " --bits 4 --exact --rm -q");
    CHECK(r.status == 0);
    CHECK_FALSE(wc::path_exists(src));
    wc::unpack(src + ".wcz", d / "back.safetensors", {});
    CHECK(tu::read_file(d / "back.safetensors") == file);
    tu::write_file(src, file);  // without --exact, --rm with --bits is refused
    const auto no = tu::run(tu::cli() + " pack " + src + " -o " + (d / "l.wcz") + " --bits 4 --rm -q");
    CHECK(no.status == 2);
    CHECK(wc::path_exists(src));
  }

  TEST_CASE("--exact needs --bits and plain qrow") {
    tu::TempDir d;
    const std::string src = d / "m.safetensors";
    tu::write_file(src, stb::build({{"w", DType::BF16, {64, 64}, weights(DType::BF16, 64, 64, 1)}}));
    wc::PackOptions o;
    o.exact = true;
    CHECK_THROWS_AS(wc::pack(src, d / "a.wcz", o), wc::Error);
    o = exact_options(3);
    o.scheme = "codebook";
    CHECK_THROWS_AS(wc::pack(src, d / "b.wcz", o), wc::Error);
    CHECK_FALSE(wc::path_exists(d / "a.wcz"));
    CHECK_FALSE(wc::path_exists(d / "b.wcz"));
  }

  TEST_CASE("determinism: the same --exact container on one thread and on two") {
    tu::TempDir d;
    const std::string src = d / "m.safetensors";
    tu::write_file(src, stb::build({{"w", DType::F16, {200, 96}, weights(DType::F16, 200, 96, 2)}}));
    wc::PackOptions o = exact_options(4.25);
    o.threads = 1;
    wc::pack(src, d / "one.wcz", o);
    o.threads = 2;
    wc::pack(src, d / "two.wcz", o);
    CHECK(tu::read_file(d / "one.wcz") == tu::read_file(d / "two.wcz"));
  }
}
