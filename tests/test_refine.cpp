// Refinement levels (container 2.8, spec/REFINE.md): pack --bits B --refine
// R gives one file whose every level decodes (file, pipe, prefix), whose
// error falls with every level of every tensor, whose level 0 is the --bits
// model, and whose held levels upgrade in place from the new levels' chunks
// alone; hostile payloads are refused.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <string>
#include <random>
#include <set>
#include <vector>

#include "format/bytes.h"
#include "format/reader.h"
#include "lib/api.h"
#include "lib/level_cache.h"
#include "lib/pack_lossy.h"
#include "lib/reader_checks.h"
#include "quant/exact_top.h"
#include "quant/float_load.h"
#include "quant/qrow_math.h"
#include "quant/refine_math.h"
#include "st_builder.h"
#include "test_util.h"
#include "level_weights.h"
#include "wcodec/wcodec.h"

using wc::DType;
using wgen::weights;

namespace {

wc::PackOptions refine_options(double bits, unsigned refine, bool exact) {
  wc::PackOptions o = wgen::exact_options(bits);
  o.exact = exact;
  o.refine = refine;
  return o;
}

// Sum of squared differences between two tensors' values (finite originals only).
double sq_error(DType t, const uint8_t* a, const uint8_t* b, uint64_t n) {
  std::vector<float> x(n), y(n);
  wc::load_floats(t, a, n, x.data());
  wc::load_floats(t, b, n, y.data());
  double e = 0;
  for (uint64_t i = 0; i < n; ++i)
    if (std::isfinite(x[i])) e += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
  return e;
}

std::vector<stb::StTensor> model(uint64_t seed) {
  std::vector<stb::StTensor> ts;
  for (DType t : {DType::BF16, DType::F16, DType::F32}) {
    ts.push_back(wgen::tensor_of(t, "w", 300, 160, seed++));
    // ±0, subnormals, the largest finite values, ±Inf, NaNs: restored by an exact top layer
    ts.push_back(wgen::tensor_of(t, "special", 64, 96, seed++, true));
    ts.push_back(wgen::tensor_of(t, "small", 48, 64, seed++));
  }
  ts.push_back({"norm", DType::F32, {160}, {}});
  return ts;
}

}  // namespace

TEST_SUITE("refine") {
  TEST_CASE("refine_codes: each code is the nearest (half away from zero), clamped, 0 where not finite; any width") {
    // the writer's vector loop against REFINE.md's arithmetic written out
    // here element by element: ties, clamps, Inf and NaN originals, widths
    // that leave 1 to 3 elements to the scalar tail; and with `odd` (an
    // even factor's level), the nearest odd code
    const int32_t base_exp = -12;
    const uint32_t M = 3;
    std::mt19937 rng(5);
    for (const bool odd : {false, true})
    for (uint64_t cols : {1u, 3u, 4u, 7u, 37u, 64u}) {
      CAPTURE(odd);
      const uint64_t rows = 3;
      std::vector<uint8_t> e(rows);
      for (uint64_t r = 0; r < rows; ++r) e[r] = uint8_t(r * 16 + 5 * r);
      std::vector<float> below(rows * cols), x(rows * cols);
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      for (uint64_t i = 0; i < rows * cols; ++i) {
        const uint64_t r = i / cols;
        const float s = wc::refine::code_step(base_exp, e[r], M);
        below[i] = std::ldexp(std::round(u(rng) * 64.0f), -9);
        switch (i % 7) {
          case 0: x[i] = below[i] + (float(int(i % 11) - 5) + 0.5f) * s; break;  // a tie
          case 1: x[i] = below[i] + 40000.0f * s * (i % 2 ? 1.0f : -1.0f); break;  // past the clamp
          case 2: x[i] = i % 3 ? INFINITY : NAN; break;
          default: x[i] = below[i] + u(rng) * 20.0f * s;
        }
      }
      std::vector<uint8_t> bl(rows * cols * 4), above(rows * cols * 4);
      std::memcpy(bl.data(), below.data(), bl.size());
      std::vector<uint16_t> d(rows * cols);
      wc::exact::refine_codes(wc::qrow::kF32, x.data(), bl.data(), base_exp, e.data(), M, rows, cols, d.data(),
                              above.data(), odd);
      for (uint64_t i = 0; i < rows * cols; ++i) {
        const float s = wc::refine::code_step(base_exp, e[i / cols], M);
        const double q = (double(x[i]) - double(below[i])) / double(s);
        const int32_t c = !std::isfinite(q) ? 0
                          : odd ? 2 * int32_t(std::llround(std::clamp((q - 1) / 2, -16384.0, 16383.0))) + 1
                                : int32_t(std::llround(std::clamp(q, -32767.0, 32767.0)));
        if (odd && std::isfinite(q)) CHECK(c % 2 != 0);
        CHECK(int16_t(d[i]) == (std::signbit(below[i]) ? -c : c));
        const float v = wc::refine::apply(below[i], c, s);
        float got;
        std::memcpy(&got, above.data() + 4 * i, 4);
        CHECK(wc::qrow::f32_bits(got) == wc::qrow::f32_bits(v));
      }
    }
  }

  TEST_CASE("--refine 3 --exact: every tensor's levels in one model-wide order; each step lowers one tensor's error") {
    tu::TempDir d;
    const auto ts = model(1);
    const std::string src = d / "m.safetensors", wcz = d / "m.wcz";
    tu::write_file(src, stb::build(ts));
    wc::pack(src, wcz, refine_options(2.5, 3, true));
    wc::ContainerReader r(wcz, wc::kReaderChecks);
    const wc::Manifest& m = r.manifest();
    // chunk order 1 (2.9): a model level (step) per tensor level above 0
    CHECK(r.header().minor == 9);
    CHECK(m.chunk_order == 1);
    unsigned blocks = 0;
    for (const auto& t : m.tensors) blocks += t.lossy() ? unsigned(t.levels.size() - 1) : 0;
    CHECK(blocks == 9 * 4);
    REQUIRE(m.level_count == 1 + blocks);
    std::vector<std::vector<uint8_t>> step(m.level_count);
    for (unsigned k = 0; k < m.level_count; ++k) {
      wc::UnpackOptions o;
      o.level = int(k);
      wc::unpack(wcz, d / "l.safetensors", o);
      step[k] = tu::read_file(d / "l.safetensors");
      std::remove((d / "l.safetensors").c_str());
      if (k % 7 == 0 || k + 1 == m.level_count) {  // the same bytes from a pipe
        const auto pipe = tu::run("cat " + wcz + " | " + tu::cli() + " unpack - --level " + std::to_string(k) + " -o " +
                                  (d / "p.safetensors") + " -q -f");
        CHECK(pipe.status == 0);
        CHECK(tu::read_file(d / "p.safetensors") == step[k]);
      }
    }
    const auto orig = tu::read_file(src);
    CHECK(step.back() == orig);
    unsigned refined = 0;
    std::vector<unsigned> arrivals(m.level_count, 0);
    for (const auto& t : m.tensors) {
      if (!t.lossy()) continue;
      CAPTURE(t.name);
      REQUIRE(t.levels.size() == 5);
      REQUIRE(t.level_step.size() == 5);
      ++refined;
      const uint64_t off = orig.size() - t.byte_size - [&] {  // where the tensor lies in the file (the data section's tail)
        uint64_t after = 0;
        bool seen = false;
        for (const auto& u : m.tensors) {
          if (seen) after += u.byte_size;
          seen |= &u == &t;
        }
        return after;
      }();
      // Its error falls at each step where one of its levels arrives and
      // stays put at the others; the top removes all of it. A tensor holding
      // the dtype's largest values has its error in them, out of the codes'
      // reach below the top: there it does not grow.
      const bool special = t.name.find("special") != std::string::npos;
      double prev = INFINITY;
      unsigned level = 0;
      for (unsigned k = 0; k < m.level_count; ++k) {
        const double e = sq_error(t.dtype, orig.data() + off, step[k].data() + off, t.elements());
        CAPTURE(k);
        const bool arrives = level + 1 < t.levels.size() && t.level_step[level + 1] == k;
        if (k == 0) {
          CHECK(e > 0);
        } else if (arrives) {
          ++level, ++arrivals[k];
          if (special) CHECK(e <= prev);
          else CHECK(e < prev);
        } else {
          CHECK(e == prev);
        }
        prev = e;
      }
      CHECK(level == 4);
      CHECK(prev == 0);
      for (unsigned k = 0; k + 1 < 5 && !special; ++k) CHECK(t.levels[k].rel_rmse > t.levels[k + 1].rel_rmse);
      if (!special) CHECK(t.levels[1].rel_rmse < t.levels[0].rel_rmse / 2);  // a step about three times finer
    }
    CHECK(refined == 9);
    for (unsigned k = 1; k < m.level_count; ++k) CHECK(arrivals[k] == 1);  // one tensor's level a step
    // the budget curve: each step's prefix longer, the model's error lower
    const wc::InspectResult ir = wc::inspect(wcz, false, nullptr);
    REQUIRE(ir.levels.size() == m.level_count);
    for (unsigned k = 1; k < ir.levels.size(); ++k) {
      CHECK(ir.levels[k].bytes > ir.levels[k - 1].bytes);
      CHECK(ir.levels[k].rel_rmse <= ir.levels[k - 1].rel_rmse);
    }
    CHECK(wc::verify(wcz, src, 2, {}).compared);
  }

  TEST_CASE("level 0 of a --refine file is a --bits model; its levels are budgets, and --partial cuts decode") {
    tu::TempDir d;
    const auto ts = model(11);
    const std::string src = d / "m.safetensors", wcz = d / "r.wcz";
    tu::write_file(src, stb::build(ts));
    wc::pack(src, wcz, refine_options(3, 2, false));
    wc::PackOptions q = refine_options(3, 0, false);
    q.scheme = "quant";
    wc::pack(src, d / "q.wcz", q);
    wc::unpack(d / "q.wcz", d / "q.safetensors", {});
    wc::UnpackOptions l0;
    l0.level = 0;
    wc::unpack(wcz, d / "r0.safetensors", l0);
    // level 0 rounds to nearest (REFINE.md §5), the --bits file by rate and distortion: as large, a little
    // less precise
    const auto orig = tu::read_file(src), r0 = tu::read_file(d / "r0.safetensors"), q0 = tu::read_file(d / "q.safetensors");
    const wc::InspectResult qi = wc::inspect(d / "q.wcz", false, nullptr), ri = wc::inspect(wcz, false, nullptr);
    unsigned blocks = 0;  // a step per tensor level above 0 (chunk order 1); without --exact, Inf and NaN stay exact
    const wc::ContainerReader rr(wcz, wc::kReaderChecks);
    for (const auto& t : rr.manifest().tensors) blocks += t.lossy() ? unsigned(t.levels.size() - 1) : 0;
    CHECK(blocks == 6 * 2);
    REQUIRE(ri.levels.size() == 1 + blocks);
    CHECK(double(ri.levels[0].bytes) < 1.05 * double(qi.file_size));
    double er = 0, eq = 0;
    uint64_t end = orig.size();  // the data section holds the tensors in order: walk it from its end
    for (size_t i = ts.size(); i-- > 0;) {
      const auto& t = ts[i];
      uint64_t n = 1;
      for (uint64_t x : t.shape) n *= x;
      end -= n * (wc::dtype_bits(t.dtype) / 8);
      if (t.shape.size() < 2) continue;
      er += sq_error(t.dtype, orig.data() + end, r0.data() + end, n);
      eq += sq_error(t.dtype, orig.data() + end, q0.data() + end, n);
    }
    CHECK(er > 0);
    CHECK(er < 1.3 * eq);
    // without --exact the top is each tensor's last refinement: unpack writes it, verify checks every level
    const wc::InspectResult ir = wc::inspect(wcz, false, nullptr);
    const unsigned steps = unsigned(ir.levels.size());
    REQUIRE(steps == 1 + blocks);
    wc::unpack(wcz, d / "top.safetensors", {});
    wc::UnpackOptions last;
    last.level = int(steps - 1);
    wc::unpack(wcz, d / "rl.safetensors", last);
    CHECK(tu::read_file(d / "top.safetensors") == tu::read_file(d / "rl.safetensors"));
    CHECK(tu::read_file(d / "top.safetensors") != tu::read_file(src));
    CHECK(wc::verify(wcz, "", 2, {}).chunks > 0);
    const auto whole = tu::read_file(wcz);
    std::vector<std::vector<uint8_t>> want(steps);
    for (unsigned k = 0; k < steps; ++k) {
      CAPTURE(k);
      CHECK(ir.levels[k].rel_rmse > 0);
      if (k) CHECK(ir.levels[k].bytes > ir.levels[k - 1].bytes);
      if (k) CHECK(ir.levels[k].rel_rmse < ir.levels[k - 1].rel_rmse);
      wc::UnpackOptions o;
      o.level = int(k);
      wc::unpack(wcz, d / "w.safetensors", wc::UnpackOptions(o));
      want[k] = tu::read_file(d / "w.safetensors");
      std::remove((d / "w.safetensors").c_str());
      if (k) CHECK(want[k] != want[k - 1]);
      // --budget of exactly the step's prefix gives that step; a byte less, the one before
      wc::UnpackOptions b;
      b.budget_bytes = ir.levels[k].bytes;
      wc::unpack(wcz, d / "b.safetensors", b);
      CHECK(tu::read_file(d / "b.safetensors") == want[k]);
      std::remove((d / "b.safetensors").c_str());
      if (k) {
        b.budget_bytes = ir.levels[k].bytes - 1;
        wc::unpack(wcz, d / "b.safetensors", b);
        CHECK(tu::read_file(d / "b.safetensors") == want[k - 1]);
        std::remove((d / "b.safetensors").c_str());
      }
    }
    // a cut at each boundary and inside each step above 0 (from a file every step, from a pipe some)
    wc::UnpackOptions part;
    part.partial = true;
    part.force = true;
    for (unsigned k = 0; k < steps; ++k)
      for (uint64_t cut : {ir.levels[k].bytes, k + 1 < steps ? ir.levels[k].bytes + (ir.levels[k + 1].bytes - ir.levels[k].bytes) / 2
                                                             : ir.levels[k].bytes}) {
        CAPTURE(k);
        CAPTURE(cut);
        const std::string c = d / "cut.wcz";
        tu::write_file(c, std::vector<uint8_t>(whole.begin(), whole.begin() + ptrdiff_t(cut)));
        wc::unpack(c, d / "p.safetensors", part);
        CHECK(tu::read_file(d / "p.safetensors") == want[k]);
        if (k % 5 == 0 || k + 1 == steps) {
          const auto pipe =
              tu::run("cat " + c + " | " + tu::cli() + " unpack - --partial -o " + (d / "s.safetensors") + " -q -f");
          CHECK(pipe.status == 0);
          CHECK(tu::read_file(d / "s.safetensors") == want[k]);
        }
        if (cut < whole.size()) {
          CHECK_THROWS_AS(wc::unpack(c, d / "n.safetensors", {}), wc::Error);
          CHECK_FALSE(wc::path_exists(d / "n.safetensors"));
        }
      }
  }

  TEST_CASE("C API budgets: the step a budget affords, each tensor's level there, the model unpack --budget writes; "
            "a later step by upgrades") {
    tu::TempDir d;
    const auto ts = model(21);
    const std::string src = d / "m.safetensors", wcz = d / "r.wcz";
    tu::write_file(src, stb::build(ts));
    wc::pack(src, wcz, refine_options(3, 2, false));
    const wc::InspectResult ir = wc::inspect(wcz, false, nullptr);
    const uint32_t steps = uint32_t(ir.levels.size());
    REQUIRE(steps > 2);
    wcodec_archive* a = nullptr;
    char err[512];
    REQUIRE(wcodec_open(wcz.c_str(), &a, err, sizeof err) == WCODEC_OK);
    CHECK(wcodec_step_count(a) == steps);
    const size_t n = wcodec_tensor_count(a);
    // the model at step k: every tensor at its level there, in file order
    auto model_at = [&](uint32_t k, std::vector<std::vector<uint8_t>>& held) {
      held.assign(n, {});
      std::vector<uint8_t> all;
      for (size_t i = 0; i < n; ++i) {
        wcodec_tensor_info ti = WCODEC_TENSOR_INFO_INIT;
        REQUIRE(wcodec_get_tensor_info(a, i, &ti) == WCODEC_OK);
        held[i].resize(ti.byte_size);
        REQUIRE(wcodec_decode_tensor_ex(a, i, wcodec_tensor_level_at(a, i, k), nullptr, held[i].data(), held[i].size(), 1,
                                        err, sizeof err) == WCODEC_OK);
        all.insert(all.end(), held[i].begin(), held[i].end());
      }
      return all;
    };
    std::vector<std::vector<uint8_t>> held, fresh;
    for (uint32_t k = 0; k < steps; ++k) {
      CAPTURE(k);
      uint32_t step = 99;
      uint64_t bytes = 0;
      REQUIRE(wcodec_budget_step(a, std::to_string(ir.levels[k].bytes).c_str(), &step, &bytes, err, sizeof err) ==
              WCODEC_OK);
      CHECK(step == k);
      CHECK(bytes == ir.levels[k].bytes);
      if (k) {  // a byte less: the step before
        REQUIRE(wcodec_budget_step(a, std::to_string(ir.levels[k].bytes - 1).c_str(), &step, nullptr, err,
                                   sizeof err) == WCODEC_OK);
        CHECK(step == k - 1);
      }
      // the same model as unpack --budget of that many bytes
      wc::UnpackOptions b;
      b.budget_bytes = ir.levels[k].bytes;
      wc::unpack(wcz, d / "b.safetensors", b);
      const auto want = tu::read_file(d / "b.safetensors");
      std::remove((d / "b.safetensors").c_str());
      const auto got = model_at(k, fresh);
      REQUIRE(want.size() >= got.size());
      CHECK(std::equal(got.begin(), got.end(), want.end() - ptrdiff_t(got.size())));
      // from the step before, by upgrading only the tensors whose level rose
      if (k) {
        for (size_t i = 0; i < n; ++i) {
          const uint32_t from = wcodec_tensor_level_at(a, i, k - 1), to = wcodec_tensor_level_at(a, i, k);
          CHECK(from <= to);
          if (to > from)
            REQUIRE(wcodec_upgrade_tensor(a, i, from, to, held[i].data(), held[i].size(), 2, err, sizeof err) ==
                    WCODEC_OK);
        }
        CHECK(held == fresh);
      }
      held = fresh;
    }
    // past the last step: the last step's levels; an exact tensor is always at 0
    for (size_t i = 0; i < n; ++i) CHECK(wcodec_tensor_level_at(a, i, 1000) == wcodec_tensor_level_at(a, i, steps - 1));
    CHECK(wcodec_tensor_level_at(a, n, 0) == 0);
    // bits per weight; budgets that do not parse or fit nothing: usage errors that say why
    uint32_t step = 0;
    REQUIRE(wcodec_budget_step(a, "64bpw", &step, nullptr, err, sizeof err) == WCODEC_OK);
    CHECK(step == steps - 1);
    CHECK(wcodec_budget_step(a, "1", &step, nullptr, err, sizeof err) == WCODEC_E_USAGE);
    CHECK(std::string(err).find("needs") != std::string::npos);
    CHECK(wcodec_budget_step(a, "lots", &step, nullptr, err, sizeof err) == WCODEC_E_USAGE);
    CHECK(wcodec_budget_step(a, nullptr, &step, nullptr, err, sizeof err) == WCODEC_E_USAGE);
    wcodec_close(a);
    // a file without levels: one step, 0, which its whole size affords
    wc::PackOptions lossless;
    wc::pack(src, d / "e.wcz", lossless);
    REQUIRE(wcodec_open((d / "e.wcz").c_str(), &a, err, sizeof err) == WCODEC_OK);
    CHECK(wcodec_step_count(a) == 1);
    uint64_t bytes = 0;
    const uint64_t size = tu::read_file(d / "e.wcz").size();
    REQUIRE(wcodec_budget_step(a, "1GiB", &step, &bytes, err, sizeof err) == WCODEC_OK);
    CHECK(step == 0);
    CHECK(bytes == size);
    CHECK(wcodec_budget_step(a, std::to_string(size - 1).c_str(), &step, &bytes, err, sizeof err) == WCODEC_E_USAGE);
    CHECK(wcodec_tensor_level_at(a, 0, 5) == 0);
    wcodec_close(a);
  }

  TEST_CASE("inspect shows a file of many steps at each quarter bit per weight, and every step with --steps") {
    tu::TempDir d;
    const std::string src = d / "m.safetensors", wcz = d / "r.wcz";
    tu::write_file(src, stb::build(model(31)));
    wc::pack(src, wcz, refine_options(2, 5, false));
    const wc::InspectResult ir = wc::inspect(wcz, false, nullptr);
    REQUIRE(ir.levels.size() > wc::kInspectStepsShown);
    auto shown = [&](bool all) {
      char* buf = nullptr;
      size_t len = 0;
      std::FILE* f = open_memstream(&buf, &len);
      wc::inspect(wcz, false, *wc::inspect_text_writer(f, false, all));
      std::fclose(f);
      std::string text(buf, len);
      std::free(buf);
      std::vector<unsigned> levels;
      for (size_t at = text.find("\n  level "); at != std::string::npos; at = text.find("\n  level ", at + 1))
        levels.push_back(unsigned(std::stoul(text.substr(at + 9))));
      return levels;
    };
    const auto all = shown(true), some = shown(false);
    CHECK(all.size() == ir.levels.size());
    REQUIRE(some.size() >= 2);
    CHECK(some.size() < all.size());
    CHECK(some.front() == 0);
    CHECK(some.back() == ir.levels.size() - 1);
    // each shown step is the last of its quarter bit per weight (the first and last steps aside)
    for (size_t i = 1; i + 1 < some.size(); ++i) {
      const unsigned k = some[i];
      CHECK(std::floor(4 * ir.levels[k + 1].bits_per_weight) != std::floor(4 * ir.levels[k].bits_per_weight));
    }
    // and every quarter the curve passes through has its step
    std::set<double> quarters, seen;
    for (const auto& p : ir.levels) quarters.insert(std::floor(4 * p.bits_per_weight));
    for (unsigned k : some) seen.insert(std::floor(4 * ir.levels[k].bits_per_weight));
    CHECK(seen == quarters);
  }

  TEST_CASE("upgrade in place: a runtime holding level k reaches level k + j from the new levels' chunks only") {
    tu::TempDir d;
    std::vector<stb::StTensor> ts = {{"w", DType::BF16, {600, 256}, weights(DType::BF16, 600, 256, 3)},
                                     {"v", DType::F16, {64, 128}, weights(DType::F16, 64, 128, 4)},
                                     {"u", DType::F32, {96, 96}, weights(DType::F32, 96, 96, 5)}};
    const std::string src = d / "m.safetensors";
    tu::write_file(src, stb::build(ts));
    wc::pack(src, d / "x.wcz", refine_options(2.5, 2, true));
    wcodec_archive* a = nullptr;
    char err[512];
    REQUIRE(wcodec_open((d / "x.wcz").c_str(), &a, err, sizeof err) == WCODEC_OK);
    wc::ContainerReader r(d / "x.wcz", wc::kReaderChecks);
    for (size_t i = 0; i < wcodec_tensor_count(a); ++i) {
      const auto& t = r.manifest().tensors[i];
      CAPTURE(t.name);
      REQUIRE(t.levels.size() == 4);
      for (unsigned from = 0; from < 3; ++from)
        for (unsigned to = from + 1; to < 4; ++to) {
          CAPTURE(from);
          CAPTURE(to);
          std::vector<uint8_t> held(t.byte_size), fresh(t.byte_size);
          REQUIRE(wcodec_decode_tensor_ex(a, i, from, nullptr, held.data(), held.size(), 1, err, sizeof err) ==
                  WCODEC_OK);
          const auto before_bytes = held;
          const uint64_t before = wcodec_chunks_decoded(a);
          REQUIRE(wcodec_upgrade_tensor(a, i, from, to, held.data(), held.size(), 2, err, sizeof err) == WCODEC_OK);
          // per new level: each tile's codes and the level's tables (a tensor-wide chunk, or in the payload of a
          // tensor of one tile); nothing below
          uint64_t want = 0;
          for (unsigned k = from + 1; k <= to; ++k) want += t.tile_count() + (t.parts[2 * k].items > 0 ? 1 : 0);
          CHECK(wcodec_chunks_decoded(a) - before == want);
          REQUIRE(wcodec_decode_tensor_ex(a, i, to, nullptr, fresh.data(), fresh.size(), 1, err, sizeof err) ==
                  WCODEC_OK);
          CHECK(held == fresh);
          CHECK(held != before_bytes);
        }
      // rows at a level: what the whole tensor holds there, from the tiles that hold them
      const uint64_t rb = t.byte_size / t.rows(), r0 = t.rows() / 3, r1 = t.rows() - 2;
      for (uint32_t level : {0u, 1u, 3u, uint32_t(WCODEC_LEVEL_TOP)}) {
        CAPTURE(level);
        std::vector<uint8_t> whole(t.byte_size), rows((r1 - r0) * rb);
        REQUIRE(wcodec_decode_tensor_ex(a, i, level, nullptr, whole.data(), whole.size(), 1, err, sizeof err) ==
                WCODEC_OK);
        REQUIRE(wcodec_decode_rows_ex(a, i, level, r0, r1, nullptr, rows.data(), rows.size(), 2, err, sizeof err) ==
                WCODEC_OK);
        CHECK(std::equal(rows.begin(), rows.end(), whole.begin() + ptrdiff_t(r0 * rb)));
      }
      std::vector<uint8_t> one(t.byte_size / t.rows());
      CHECK(wcodec_decode_rows_ex(a, i, 4, 0, 1, nullptr, one.data(), one.size(), 1, err, sizeof err) ==
            WCODEC_E_USAGE);
      if (t.dtype != DType::F32)  // above level 0, the tensor's own dtype only
        CHECK(wcodec_decode_rows_ex(a, i, 1, 0, 1, "F32", std::vector<uint8_t>(4 * t.cols()).data(), 4 * t.cols(), 1,
                                    err, sizeof err) == WCODEC_E_USAGE);
    }
    wcodec_close(a);
  }

  TEST_CASE("refine_codes: each element's code and value as REFINE.md §5's writer defines them, halved near the top") {
    // The element-by-element definition (the nearest code of (x - f) / s in
    // binary64, rounded half away from zero and clamped to +-32767; halved
    // toward 0 while the value is not finite in the dtype), against the
    // row-at-a-time encoder, in place and not, with values near each dtype's
    // top so that the halving runs.
    const uint64_t rows = 6, cols = 45;  // a row not a multiple of 8: the conversions' tails
    for (DType t : {DType::BF16, DType::F16, DType::F32}) {
      CAPTURE(wc::dtype_name(t));
      const uint32_t dt = uint32_t(t);
      const size_t eb = wc::dtype_bits(t) / 8;
      // the top: F16's largest value; for BF16 and F32 binary32's, with the
      // largest steps there are, so that the nearest code can overshoot it
      const float top = t == DType::F16 ? 65504.0f : 3.4028235e38f;
      const auto w = weights(t, rows, cols, 5);
      std::vector<float> x(rows * cols);
      wc::load_floats(t, w.data(), rows * cols, x.data());
      std::vector<uint8_t> below(w.size());
      for (uint64_t i = 0; i < rows * cols; ++i) {
        if (i % 7 == 3) x[i] = top * (i % 2 ? 1.0f : -1.0f);  // past the reach of the level's step
        if (i % 11 == 5) x[i] = NAN;                          // (an --exact tensor's value: code 0)
      }
      // the level below: the targets on a coarse grid, the near-top ones at the top
      std::vector<uint8_t> e(rows);
      for (uint64_t r = 0; r < rows; ++r) e[r] = uint8_t(t == DType::F16 ? 16 * (r % 3 + 1) + r : 0xF0 + r);
      const int32_t base = t == DType::F16 ? 8 : 96;
      std::vector<uint16_t> dref(rows * cols), d(rows * cols), d2(rows * cols);
      std::vector<uint8_t> ref(w.size()), above(w.size());
      for (uint64_t i = 0; i < rows * cols; ++i) {
        const float f = std::isfinite(x[i]) ? std::nearbyint(x[i] / 4.0f) * 4.0f * 0.97f : 1.0f;
        wc::qrow::store(dt, f, below.data(), i);
      }
      const uint32_t inf = t == DType::F32 ? 0x7F800000u : t == DType::F16 ? 0x7C00u : 0x7F80u;
      size_t halved = 0;
      for (uint64_t r = 0, i = 0; r < rows; ++r) {
        const float s = wc::refine::code_step(base, e[r], 3);
        for (uint64_t j = 0; j < cols; ++j, ++i) {
          const uint32_t y = eb == 4 ? wc::load_u32(below.data() + 4 * i) : wc::load_u16(below.data() + 2 * i);
          const float f = wc::qrow::f32_from_bits(wc::refine::f32_bits_of(y, dt));
          const double q = (double(x[i]) - double(f)) / double(s);
          int32_t c = std::isfinite(q) ? int32_t(std::llround(std::clamp(q, -32767.0, 32767.0))) : 0;
          uint8_t o[4];
          for (;; c /= 2, ++halved) {
            const float v = wc::refine::apply(f, c, s);
            wc::qrow::store(dt, v, o, 0);
            const uint32_t b = eb == 4 ? wc::load_u32(o) : wc::load_u16(o);
            if (c == 0 || (wc::refine::finite(v) && (b & inf) != inf)) break;
          }
          std::memcpy(ref.data() + eb * i, o, eb);
          dref[i] = uint16_t((y >> (8 * eb - 1)) ? -c : c);
        }
      }
      CHECK(halved > 0);
      wc::exact::refine_codes(dt, x.data(), below.data(), base, e.data(), 3, rows, cols, d.data(), above.data());
      CHECK(d == dref);
      CHECK(above == ref);
      auto inplace = below;  // above may be below
      wc::exact::refine_codes(dt, x.data(), inplace.data(), base, e.data(), 3, rows, cols, d2.data(), inplace.data());
      CHECK(d2 == dref);
      CHECK(inplace == ref);
    }
  }

  TEST_CASE("refinement tiles: the coder's round trip, hostile payloads refused, values kept finite") {
    const uint64_t rows = 8, cols = 64;
    for (DType t : {DType::BF16, DType::F16, DType::F32}) {
      CAPTURE(wc::dtype_name(t));
      const uint32_t dt = uint32_t(t);
      const auto orig = weights(t, rows, cols, 21);
      const size_t eb = wc::dtype_bits(t) / 8;
      std::vector<float> x(rows * cols);
      wc::load_floats(t, orig.data(), rows * cols, x.data());
      std::vector<uint8_t> e(rows), below(orig.size(), 0), above(orig.size());
      for (uint64_t r = 0; r < rows; ++r) e[r] = uint8_t(16 * 2 + r);  // steps about 2^(base + 2)
      const int32_t base = -10;
      // level 0: the values rounded to a coarse grid (what refine_codes starts from need not be qrow's)
      std::vector<uint16_t> d0(rows * cols), d(rows * cols);
      wc::exact::refine_codes(dt, x.data(), below.data(), base, e.data(), 3, rows, cols, d0.data(),
                              below.data());
      wc::exact::refine_codes(dt, x.data(), below.data(), base, e.data(), 9, rows, cols, d.data(), above.data());
      CHECK(sq_error(t, orig.data(), above.data(), rows * cols) < sq_error(t, orig.data(), below.data(), rows * cols));
      wc::exact::Counts k;
      wc::exact::count_codes(k, dt, 1, below.data(), base, e.data(), rows, cols, d.data());
      wc::exact::Tables tb;
      const auto tables = wc::exact::build_refine_tables(k, 1, 9, tb);
      CHECK(tb.M == 9);
      CHECK(tb.S == 1);
      std::vector<uint8_t> payload;
      wc::exact::encode_codes(tb, dt, below.data(), base, e.data(), rows, cols, d.data(), payload);
      REQUIRE(payload[0] == 1);
      auto out = below;
      REQUIRE(wc::exact::apply_tile(tb, payload.data(), payload.size(), dt, base, rows, cols, out.data()) ==
              wc::Errc::ok);
      CHECK(out == above);
      // mode 0: the step bytes and the codes as they are
      std::vector<uint8_t> m0(1, 0);
      m0.insert(m0.end(), e.begin(), e.end());
      for (uint16_t c : d) m0.push_back(uint8_t(c)), m0.push_back(uint8_t(c >> 8));
      out = below;
      REQUIRE(wc::exact::apply_tile(tb, m0.data(), m0.size(), dt, base, rows, cols, out.data()) == wc::Errc::ok);
      CHECK(out == above);
      m0.pop_back();
      CHECK(wc::exact::apply_tile(tb, m0.data(), m0.size(), dt, base, rows, cols, out.data()) == wc::Errc::codec);
      unsigned refused = 0;
      wgen::for_mutations(payload, 7, 1500, [&](const std::vector<uint8_t>& buf, int kind) {
        out = below;
        const wc::Errc rc = wc::exact::apply_tile(tb, buf.data(), buf.size(), dt, base, rows, cols, out.data());
        CHECK((rc == wc::Errc::ok || rc == wc::Errc::codec));
        if (kind != 0) CHECK(rc == wc::Errc::codec);  // a cut or an extra byte: the end-of-stream rules see it
        refused += rc != wc::Errc::ok;
      });
      CHECK(refused > 900);
      for (size_t cut = 0; cut < tables.size(); ++cut) {
        wc::exact::Tables t2;
        std::vector<uint8_t> b(tables.begin(), tables.begin() + ptrdiff_t(cut));
        CHECK_FALSE(wc::exact::parse_refine_tables(b.data(), b.size(), t2));
      }
      // header rules: M of 1 or above 2^24, a shift above 24, the reserved byte
      for (int which = 0; which < 4; ++which) {
        auto b = tables;
        if (which == 0) wc::store_u32(b.data() + 4, 1);
        if (which == 1) wc::store_u32(b.data() + 4, (1u << 24) + 1);
        if (which == 2) b[3] = 25;
        if (which == 3) b[2] = 1;
        wc::exact::Tables t2;
        CHECK_FALSE(wc::exact::parse_refine_tables(b.data(), b.size(), t2));
      }
      // a value driven past the dtype's binary32 range: refused, not written as Inf
      std::vector<uint8_t> big(eb * rows * cols, 0);
      const uint32_t huge = t == DType::F32 ? 0x7F7FFFFFu : t == DType::BF16 ? 0x7F7Fu : 0x7BFFu;
      for (uint64_t i = 0; i < rows * cols; ++i) {
        if (eb == 4) wc::store_u32(big.data() + 4 * i, huge);
        else wc::store_u16(big.data() + 2 * i, uint16_t(huge));
      }
      std::vector<uint8_t> ev(rows, 0xFF), m1(1, 0);  // the largest step there is
      m1.insert(m1.end(), ev.begin(), ev.end());
      for (uint64_t i = 0; i < rows * cols; ++i) m1.push_back(0xFF), m1.push_back(0x7F);  // code 32767
      const wc::Errc rc = wc::exact::apply_tile(tb, m1.data(), m1.size(), dt, 96, rows, cols, big.data());
      if (t == DType::F16) CHECK(rc == wc::Errc::ok);  // binary32 holds it; F16 stores it as Inf, as QROW.md §3
      else CHECK(rc == wc::Errc::codec);
    }
  }

  TEST_CASE("--refine-factor 2: each level halves the bins below it (odd codes), so it costs about a bit a weight") {
    // With round-to-nearest below, the values below are the centres of
    // their bins, and an even factor's nearest codes (0 among them) would
    // put a value on each bin's edge: its codes would cost about 1.5 bits
    // for a factor of 2. Odd codes of a step half as large nest: the codes
    // cost a bit (less where the values are not uniform in a bin) and the
    // error halves.
    tu::TempDir d;
    std::vector<stb::StTensor> ts;
    ts.push_back(wgen::tensor_of(DType::F32, "w", 512, 256, 41));
    const std::string src = d / "m.safetensors", wcz = d / "m.wcz";
    tu::write_file(src, stb::build(ts));
    wc::PackOptions o = refine_options(3, 4, true);
    o.refine_factor = 2;
    wc::pack(src, wcz, o);
    wc::ContainerReader r(wcz, wc::kReaderChecks);
    const wc::TensorRecord& t = r.manifest().tensors[0];
    REQUIRE(t.levels.size() == 6);  // level 0, four refinement levels, the exact top
    const wc::InspectResult ir = wc::inspect(wcz, false, nullptr);
    REQUIRE(ir.levels.size() == 6);
    unsigned halved = 0;
    for (unsigned k = 1; k < 5; ++k) {
      CAPTURE(k);
      const double bits = 8.0 * double(ir.levels[k].bytes - ir.levels[k - 1].bytes) / double(t.elements());
      const double ratio = double(t.levels[k - 1].rel_rmse) / double(t.levels[k].rel_rmse);
      CHECK(bits < 1.12);  // a bit a weight, its chunk and tables
      CHECK(ratio > 1.8);  // the error halves (with the factor's choice free, at least as much per bit)
      halved += ratio > 1.8 && ratio < 2.3;
    }
    CHECK(halved >= 3);  // most levels at a factor of 2: the budget of --refine-factor 2 everywhere
    // every level decodes to the values its hash records, and the exact top
    // layer above odd codes restores the original
    CHECK(wc::verify(wcz, src, 1, {}).compared);
  }

  TEST_CASE("LevelCache: entries within the budget, each taken once, a tensor's dropped") {
    wc::LevelCache c(100);
    const int a = 0, b = 0;  // two owners
    const std::vector<uint8_t> x(60, 1), y(30, 2), z(20, 3);
    CHECK(c.put(&a, 0, 1, x));
    CHECK_FALSE(c.put(&a, 0, 1, y));  // one entry a key
    CHECK(c.put(&a, 1, 1, y));
    CHECK_FALSE(c.put(&b, 0, 1, z));  // 60 + 30 + 20 > 100
    std::vector<uint8_t> out;
    CHECK_FALSE(c.take(&a, 0, 2, out));
    CHECK(out.empty());
    CHECK(c.take(&a, 0, 1, out));
    CHECK(out == x);
    CHECK_FALSE(c.take(&a, 0, 1, out));  // taken once
    CHECK(c.put(&b, 0, 1, z));           // its bytes freed
    c.drop(&a);
    CHECK_FALSE(c.take(&a, 1, 1, out));
    CHECK(c.put(&b, 5, 2, x));  // 20 + 60: a's 30 freed too
    CHECK(c.take(&b, 0, 1, out));
    CHECK(out == z);
  }

  TEST_CASE("levels kept from planning or rebuilt from level 0: the same file at any budget") {
    // the chunk of level k takes the tile's level k - 1 from planning where
    // it was kept (LevelCache), else rebuilds it; the top level's hash too
    tu::TempDir d;
    const std::string src = d / "m.safetensors";
    tu::write_file(src, stb::build(model(7)));
    for (unsigned factor : {3u, 2u}) {
      CAPTURE(factor);
      wc::PackOptions o = refine_options(2.5, 3, factor == 3);
      o.refine_factor = factor;
      std::vector<std::vector<uint8_t>> files;
      for (uint64_t budget : {uint64_t(1) << 30, uint64_t(0), uint64_t(200000)}) {
        wc::level_cache_budget(budget);
        wc::pack(src, d / "k.wcz", o);
        files.push_back(tu::read_file(d / "k.wcz"));
        std::remove((d / "k.wcz").c_str());
      }
      wc::level_cache_budget(uint64_t(1) << 30);
      CHECK(files[0] == files[1]);
      CHECK(files[0] == files[2]);
      tu::write_file(d / "k.wcz", files[0]);
      if (factor == 3) CHECK(wc::verify(d / "k.wcz", src, 1, {}).compared);
      else CHECK_NOTHROW(wc::verify(d / "k.wcz", "", 1, {}));
      std::remove((d / "k.wcz").c_str());
    }
  }

  TEST_CASE("--refine needs --bits and plain qrow, and takes 0 to 6 levels (--refine-factor 2 to 6); one thread and two "
            "write the same file") {
    tu::TempDir d;
    std::vector<stb::StTensor> ts = {{"w", DType::BF16, {256, 128}, weights(DType::BF16, 256, 128, 9)}};
    const std::string src = d / "m.safetensors";
    tu::write_file(src, stb::build(ts));
    wc::PackOptions o = refine_options(0, 2, false);
    CHECK_THROWS_AS(wc::pack(src, d / "a.wcz", o), wc::Error);
    o = refine_options(3, 7, false);
    CHECK_THROWS_AS(wc::pack(src, d / "a.wcz", o), wc::Error);
    o = refine_options(3, 2, false);
    o.scheme = "outliers";
    CHECK_THROWS_AS(wc::pack(src, d / "a.wcz", o), wc::Error);
    for (unsigned f : {1u, 7u}) {  // --refine-factor: 2 to 6, and only with --refine
      o = refine_options(3, 2, false);
      o.refine_factor = f;
      CHECK_THROWS_AS(wc::pack(src, d / "a.wcz", o), wc::Error);
    }
    o = refine_options(3, 0, false);
    o.refine_factor = 2;
    CHECK_THROWS_AS(wc::pack(src, d / "a.wcz", o), wc::Error);
    CHECK_FALSE(wc::path_exists(d / "a.wcz"));
    o = refine_options(3, 2, true);
    o.threads = 1;
    wc::pack(src, d / "one.wcz", o);
    o.threads = 2;
    wc::pack(src, d / "two.wcz", o);
    CHECK(tu::read_file(d / "one.wcz") == tu::read_file(d / "two.wcz"));
    const auto cli = tu::run(tu::cli() + " pack " + src + " -o " + (d / "c.wcz") + " --bits 3 --refine 2 --exact -q");
    CHECK(cli.status == 0);
    CHECK(tu::read_file(d / "c.wcz") == tu::read_file(d / "two.wcz"));
  }
}
