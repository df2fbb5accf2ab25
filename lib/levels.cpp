#include "lib/levels.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "lib/reader_checks.h"
#include "lib/unit_decode.h"

namespace wc {

std::vector<LevelPoint> level_points(const ContainerReader& r) {
  const Manifest& m = r.manifest();
  std::vector<LevelPoint> out;
  const uint64_t weights = m.weights();
  for (unsigned L = 0; m.level_count > 1 && L < m.level_count; ++L) {
    if (L > r.complete_level()) break;  // a prefix of a file (--partial) holds the levels up to this one
    LevelPoint p;
    p.level = L;
    // to the end of the level's last chunk (of the manifest when no chunk
    // comes before the next level), or the whole file at the top
    if (L + 1 == m.level_count) {
      p.bytes = r.complete_level() < kMaxLevels ? r.index().back().offset + r.index().back().stored_size : r.file_size();
    } else {
      const uint32_t next = m.level_first_chunk[L + 1];
      p.bytes = next == 0 ? kHeaderSize + r.header().manifest_stored
                          : r.index()[next - 1].offset + r.index()[next - 1].stored_size;
    }
    p.bits_per_weight = weights ? 8.0 * double(p.bytes) / double(weights) : 0.0;
    double e2 = 0, n = 0;
    for (const auto& t : m.tensors)
      if (t.lossy()) {
        const double rel = t.levels[level_at(t, L)].rel_rmse;
        e2 += rel * rel * double(t.elements()), n += double(t.elements());
      }
    p.rel_rmse = n > 0 ? std::sqrt(e2 / n) : 0;
    out.push_back(p);
  }
  return out;
}

LevelPoint point_for_budget(const ContainerReader& r, uint64_t budget) {
  const auto pts = level_points(r);
  if (pts.empty()) {
    if (r.file_size() <= budget) {
      LevelPoint whole;
      whole.level = 255;
      whole.bytes = r.file_size();
      return whole;
    }
    fail_file(Errc::usage, r.path(), "has one level, " + std::to_string(r.file_size()) + " bytes: more than the budget of " +
                                         std::to_string(budget));
  }
  const LevelPoint* best = nullptr;
  for (const auto& p : pts)
    if (p.bytes <= budget) best = &p;
  if (!best)
    fail_file(Errc::usage, r.path(), "its smallest level needs " + std::to_string(pts[0].bytes) +
                                         " bytes, more than the budget of " + std::to_string(budget));
  return *best;
}

uint64_t parse_budget(const std::string& s, uint64_t weights) {
  auto bad = [&] {
    fail(Errc::usage, "--budget takes bytes (with an optional unit: KB, MB, GB, KiB, MiB, GiB) or bits per weight "
                      "(e.g. 4.25bpw), not '" + s + "'");
  };
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !(v > 0) || !std::isfinite(v)) bad();
  const std::string unit(end);
  struct U {
    const char* name;
    double scale;
  };
  static constexpr U kUnits[] = {{"", 1},         {"B", 1},          {"KB", 1e3},          {"MB", 1e6},
                                 {"GB", 1e9},     {"TB", 1e12},      {"KiB", 1024.0},      {"MiB", 1048576.0},
                                 {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};
  if (unit == "bpw") return uint64_t(std::floor(v * double(weights) / 8.0));
  for (const auto& u : kUnits)
    if (unit == u.name) {
      const double b = std::floor(v * u.scale);
      if (b >= 1.8e19) bad();
      return uint64_t(b);
    }
  bad();
  return 0;
}

unsigned budget_level(const std::string& in, const std::string& budget) {
  const ContainerReader r(in, kReaderChecks);
  return point_for_budget(r, parse_budget(budget, r.manifest().weights())).level;
}

}  // namespace wc
