// The levels of a container as a budget curve (pack --exact): where each
// level's prefix ends, its bits per weight and error, and the level a byte
// budget affords. inspect lists them; unpack --budget picks from them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "format/reader.h"
#include "lib/api.h"

namespace wc {

// One point per level of a multi-level container; empty for one level.
std::vector<LevelPoint> level_points(const ContainerReader& r);

// The highest level whose prefix fits `budget` bytes, its point (a one-level
// file: level 255, every level, and the whole file's bytes). Throws
// Errc::usage (naming the file and the least budget) when none does.
LevelPoint point_for_budget(const ContainerReader& r, uint64_t budget);

// "512MB", "2GiB", "123456" (bytes) or "4.25bpw" (bits per weight of the
// model's `weights`) as bytes. Throws Errc::usage for anything else.
uint64_t parse_budget(const std::string& s, uint64_t weights);

}  // namespace wc
