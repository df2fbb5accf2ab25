// --refine, --exact: a tile's bits at a level above 0, kept from the
// writer's pass over every level (add_upper_levels) for the one later step
// that builds on them: the chunk of the level above (the file orders every
// tensor's levels model-wide, so a tile's levels are encoded far apart, and
// each would otherwise rebuild every level below it from level 0) or, for
// the top level, the files' hash. Within a byte budget: what does not fit
// is rebuilt as before. Each entry is taken once, which frees its bytes.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

namespace wc {

class LevelCache {
 public:
  explicit LevelCache(uint64_t budget) : left_(budget) {}
  // Keeps a copy of `bits` (tensor `owner`'s tile `tile` at `level`) if the
  // budget allows; false if not.
  bool put(const void* owner, uint64_t tile, unsigned level, const std::vector<uint8_t>& bits) {
    std::lock_guard<std::mutex> lock(mu_);
    if (bits.size() > left_) return false;
    auto [it, fresh] = m_.try_emplace(key(owner, tile, level), bits);
    if (!fresh) return false;
    left_ -= bits.size();
    return true;
  }
  // Moves the entry into `out` and forgets it; false (out untouched) if absent.
  bool take(const void* owner, uint64_t tile, unsigned level, std::vector<uint8_t>& out) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = m_.find(key(owner, tile, level));
    if (it == m_.end()) return false;
    out.swap(it->second);
    left_ += out.size();
    m_.erase(it);
    return true;
  }
  // Forgets every entry of `owner` (a tensor that will not be written with levels).
  void drop(const void* owner) {
    std::lock_guard<std::mutex> lock(mu_);
    const uintptr_t o = reinterpret_cast<uintptr_t>(owner);
    for (auto it = m_.lower_bound(key(owner, 0, 0)); it != m_.end() && std::get<0>(it->first) == o;)
      left_ += it->second.size(), it = m_.erase(it);
  }

 private:
  // (the owner as an integer: std::less orders unrelated pointers, but a
  // tuple's < compares them with the built-in <)
  using Key = std::tuple<uintptr_t, uint64_t, unsigned>;
  static Key key(const void* owner, uint64_t tile, unsigned level) {
    return Key{reinterpret_cast<uintptr_t>(owner), tile, level};
  }
  std::mutex mu_;
  uint64_t left_;
  std::map<Key, std::vector<uint8_t>> m_;
};

}  // namespace wc
