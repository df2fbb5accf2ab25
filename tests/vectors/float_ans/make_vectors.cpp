// Build: g++ -O2 -std=c++20 -I. tests/vectors/float_ans/make_vectors.cpp build/libwcodec_codec.a build/libwcodec_format.a -lzstd -lxxhash
// Run:   ./a.out tests/vectors/float_ans
// Writes float-ans decode vectors: payloads with several 32-lane groups
// sharing word streams, and their expected raw bytes.
#include "codec/float_ans.h"
#include <cstdio>
#include <cstring>
#include <cmath>
#include <string>
#include <vector>
using namespace wc;
static void put(const std::string& p, const std::vector<uint8_t>& b) { FILE* f = fopen(p.c_str(), "wb"); fwrite(b.data(), 1, b.size(), f); fclose(f); }
int main(int argc, char** argv) {
  std::string dir = argv[1];
  struct V { const char* name; DType t; size_t n; int sub_bits; int joint; };
  for (V v : {V{"bf16_3groups", DType::BF16, 5000, 6, 0}, V{"f16_2groups_joint", DType::F16, 2500, 6, 1}, V{"f32_partial_group", DType::F32, 1300, 6, -1}, V{"e4m3_2groups", DType::F8_E4M3, 4100, 6, -1}}) {
    size_t esz = v.t == DType::F32 ? 4 : v.t == DType::F8_E4M3 ? 1 : 2;
    std::vector<uint8_t> raw(v.n * esz);
    uint64_t x = 12345;
    for (size_t i = 0; i < v.n; ++i) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      double u1 = (double(x >> 11) + 0.5) / 9007199254740992.0;
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      double u2 = (double(x >> 11) + 0.5) / 9007199254740992.0;
      float f = float(std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2) * (i % 700 < 350 ? 0.02 : 0.2));
      uint32_t b; std::memcpy(&b, &f, 4);
      if (esz == 4) std::memcpy(&raw[4 * i], &b, 4);
      else if (v.t == DType::BF16) { uint16_t h = uint16_t((b + 0x7FFF + ((b >> 16) & 1)) >> 16); std::memcpy(&raw[2 * i], &h, 2); }
      else if (v.t == DType::F16) { _Float16 h = _Float16(f); std::memcpy(&raw[2 * i], &h, 2); }
      else { raw[i] = uint8_t((b >> 24 & 0x80) | std::min<uint32_t>(0x7e, (b >> 20) & 0x7f)); }
    }
    fans::Params p; p.sub_bits = v.sub_bits; p.joint = v.joint; p.allow_raw = false;
    std::vector<uint8_t> enc;
    fans::encode_with(v.t, raw.data(), raw.size(), enc, p);
    std::vector<uint8_t> dec(raw.size());
    if (fans::decode(v.t, enc.data(), enc.size(), dec.data(), dec.size()) != Errc::ok || dec != raw) { printf("roundtrip failed %s\n", v.name); return 1; }
    put(dir + "/" + v.name + "." + std::string(dtype_name(v.t)) + ".fans", enc);
    put(dir + "/" + v.name + "." + std::string(dtype_name(v.t)) + ".raw", raw);
    printf("%s: %zu elements, %zu -> %zu bytes\n", v.name, v.n, raw.size(), enc.size());
  }
}
