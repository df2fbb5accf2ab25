#include "fuzz/seeds.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "codec/codec.h"
#include "format/container.h"
#include "fuzz/fuzz_common.h"
#include "fuzz/struct_assembler.h"
#include "lib/api.h"
#include "quant/exact_top.h"
#include "quant/float_load.h"
#include "st_builder.h"
#include "weights_gen.h"

namespace wcfuzz {

namespace {

using wc::DType;
namespace sa = wcfuzz::sa;

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

using testdata::weights;

struct TempDir {
  std::string path;
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/wcodec-seeds.XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") ::unlink((path + "/" + n).c_str());
      }
      ::closedir(d);
    }
    ::rmdir(path.c_str());
  }
};

std::vector<stb::StTensor> small_model() {
  return {
      {"model.embed.weight", DType::BF16, {8, 16}, weights(DType::BF16, 128, 1)},
      {"model.layers.0.mlp.w", DType::F32, {5, 7}, weights(DType::F32, 35, 2)},
      {"model.layers.0.attn.q", DType::F16, {4, 8}, weights(DType::F16, 32, 3)},
      {"model.norm", DType::BF16, {16}, weights(DType::BF16, 16, 4)},
      {"fp8", DType::F8_E4M3, {40}, weights(DType::F8_E4M3, 40, 5)},
      {"ids", DType::I32, {3}, {}},
      {"mask", DType::BOOL, {5}, {1, 0, 1, 1, 0}},
      {"empty", DType::U8, {0, 3}, {}},
      {"scalar", DType::F64, {}, {}},
  };
}

std::vector<uint8_t> small_st(int variant) {
  stb::StOptions o;
  if (variant & 1) o.metadata = {{"format", "pt"}};
  if (variant & 2) o.reverse_keys = true;
  if (variant & 4) o.align8 = true;
  return stb::build(small_model(), o);
}

std::vector<Seed> containers() {
  TempDir d;
  std::vector<Seed> out;
  std::string st = d.path + "/m.safetensors";
  stb::write_file(st, small_st(1));
  struct Cfg { const char* codec; uint32_t chunk; };
  const Cfg cfgs[] = {{"raw", 64}, {"zstd", 128}, {"float-ans", 64}, {"float-ans", 256}, {"auto", 1u << 20}};
  for (const auto& c : cfgs) {
    wc::PackOptions po;
    po.threads = 1;
    po.force = true;
    po.codec = c.codec;
    po.chunk_size = c.chunk;
    std::string outp = d.path + "/m.wcz";
    wc::pack(st, outp, po);
    out.push_back({std::string("small_") + c.codec + "_" + std::to_string(c.chunk), read_all(outp)});
  }
  // float-ans chunks of every float dtype it codes (several chunks each).
  {
    std::vector<stb::StTensor> ts;
    uint64_t k = 20;
    for (DType t : kFansTypes) ts.push_back({std::string("fans.") + std::string(wc::dtype_name(t)), t, {3, 64}, weights(t, 192, k++)});
    std::string fst = d.path + "/f.safetensors";
    stb::write_file(fst, stb::build(ts));
    wc::PackOptions po;
    po.threads = 1;
    po.force = true;
    po.codec = "float-ans";
    po.chunk_size = 128;
    wc::pack(fst, d.path + "/f.wcz", po);
    out.push_back({"fans_every_dtype", read_all(d.path + "/f.wcz")});
  }
  // Lossy (2.x): one-tile tensors whose codes lie in their records (2.3),
  // plain and with sparse exact outliers (2.2), beside an exact tensor.
  {
    std::vector<stb::StTensor> ts = {{"q.weight", DType::BF16, {24, 64}, weights(DType::BF16, 24 * 64, 30)},
                                     {"o.weight", DType::F32, {16, 40}, weights(DType::F32, 16 * 40, 31)},
                                     {"norm", DType::F32, {40}, weights(DType::F32, 40, 32)}};
    std::string lst = d.path + "/l.safetensors";
    stb::write_file(lst, stb::build(ts));
    for (const char* scheme : {"quant", "outliers"}) {
      wc::PackOptions po;
      po.threads = 1;
      po.force = true;
      po.bits = 3;
      po.min_elements = 256;
      po.scheme = scheme;
      wc::pack(lst, d.path + "/l.wcz", po);
      out.push_back({std::string("lossy_") + scheme, read_all(d.path + "/l.wcz")});
    }
  }
  // An empty model and a sharded one (index.json becomes a blob file).
  std::string e = d.path + "/e.safetensors";
  stb::write_file(e, stb::build({}));
  wc::PackOptions po;
  po.threads = 1;
  po.force = true;
  wc::pack(e, d.path + "/e.wcz", po);
  out.push_back({"empty_model", read_all(d.path + "/e.wcz")});

  std::string shard1 = d.path + "/model-00001-of-00002.safetensors";
  std::string shard2 = d.path + "/model-00002-of-00002.safetensors";
  stb::write_file(shard1, stb::build({{"a", DType::BF16, {32}, weights(DType::BF16, 32, 9)}}));
  stb::write_file(shard2, stb::build({{"b", DType::F32, {8}, weights(DType::F32, 8, 10)}}));
  std::string idx = "{\"metadata\":{\"total_size\":96},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                    "\"b\":\"model-00002-of-00002.safetensors\"}}";
  stb::write_file(d.path + "/model.safetensors.index.json", std::vector<uint8_t>(idx.begin(), idx.end()));
  po.chunk_size = 64;
  wc::pack(d.path + "/model.safetensors.index.json", d.path + "/s.wcz", po);
  out.push_back({"sharded", read_all(d.path + "/s.wcz")});
  ::unlink(shard1.c_str());
  ::unlink(shard2.c_str());
  // A model folder with subfolders (container 1.1: file names are paths), a
  // config blob and a sharded part with its index in its own folder.
  {
    const std::string f = d.path + "/folder";
    const std::vector<std::string> dirs = {f, f + "/unet", f + "/text_encoder"};
    for (const auto& x : dirs) ::mkdir(x.c_str(), 0755);
    const std::string cfg = "{\"sample_size\": 64}\n";
    const std::string sidx = "{\"weight_map\":{\"w\":\"model-00001-of-00001.safetensors\"}}";
    const std::vector<std::pair<std::string, std::vector<uint8_t>>> files = {
        {"config.json", {cfg.begin(), cfg.end()}},
        {"unet/diffusion_pytorch_model.safetensors",
         stb::build({{"w", DType::BF16, {4, 16}, weights(DType::BF16, 64, 11)}})},
        {"text_encoder/model-00001-of-00001.safetensors", stb::build({{"w", DType::F16, {32}, weights(DType::F16, 32, 12)}})},
        {"text_encoder/model.safetensors.index.json", {sidx.begin(), sidx.end()}},
    };
    for (const auto& [name, bytes] : files) stb::write_file(f + "/" + name, bytes);
    po.chunk_size = 64;
    wc::pack(f, d.path + "/folder.wcz", po);
    out.push_back({"folder", read_all(d.path + "/folder.wcz")});
    for (const auto& [name, bytes] : files) ::unlink((f + "/" + name).c_str());
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) ::rmdir(it->c_str());
  }
  return out;
}

// The *_struct targets: every container seed as a description, and a few
// with tweaks, one per kind of lie, so the fuzzer starts from each of them.
// (Only tweaks the readers handle as the spec says; the rest are findings.)
std::vector<Seed> struct_seeds() {
  std::vector<Seed> out;
  std::vector<uint8_t> base, empty;
  for (auto& c : containers()) {
    auto d = sa::describe(c.bytes);
    auto b = sa::serialize(d);
    if (c.name == "small_zstd_128") base = b;
    if (c.name == "empty_model") empty = b;
    out.push_back({c.name, std::move(b)});
  }
  struct T {
    const char* name;
    uint8_t op, sel;
    uint32_t val;
  };
  const T tweaks[] = {
      {"minor_1_1", sa::kVersionMinor, 0, 1},
      {"minor_header_only", sa::kHeaderMinor, 0, 1},
      {"major_2", sa::kVersionMajor, 0, 2},
      {"header_flags", sa::kHeaderFlags, 0, 1},
      {"header_reserved", sa::kHeaderReserved, 3, 0x80},
      {"footer_flags", sa::kFooterFlags, 0, 4},
      {"manifest_raw_minus_1", sa::kManifestRawDelta, 0, uint32_t(-1)},
      {"manifest_frame_content", sa::kManifestFrame, 3, 5},
      {"manifest_no_size", sa::kManifestNoSize, 0, 0},
      {"index_raw_plus_24", sa::kIndexRawDelta, 0, 24},
      {"index_frame_content", sa::kIndexFrame, 3, 9},
      {"index_no_size", sa::kIndexNoSize, 0, 0},
      {"index_count_plus_1", sa::kIndexCount, 0, 1},
      {"entry_offset_plus_64", sa::kEntryOffset, 1, 64},
      {"entry_stored", sa::kEntryStored, 2, 7},
      {"entry_raw", sa::kEntryRaw, 0, 64},
      {"entry_hash", sa::kEntryHash, 3, 1},
      {"chunk_seq", sa::kChunkSeq, 1, 0},
      {"chunk_stored", sa::kChunkStored, 2, 1u << 20},
      {"entry_stored_largest", sa::kEntryStored, 2, UINT32_MAX},
      {"chunk_hash", sa::kChunkHash, 0, 1},
      {"padding", sa::kPadding, 1, 1},
      {"gap", sa::kGap, 2, 0},
      {"gap_before_index", sa::kGap, 255, 0},
      {"padding_before_index", sa::kPadding, 255, 0x40},
      {"drop_chunk", sa::kDropChunk, 1, 0},
      {"extra_entry", sa::kExtraEntry, 0, 0},
      {"footer_file_size", sa::kFooterFileSize, 0, 64},
      {"footer_index_offset", sa::kFooterIndexOffset, 0, uint32_t(-64)},
      {"no_fixups", sa::kFixups, 0, 31},
      {"clone_tensor_x100", sa::kCloneTensor, 1, 100},
  };
  for (const auto& t : tweaks) {
    auto d = sa::parse(base.data(), base.size());
    sa::add_tweak(d, t.op, t.sel, t.val);
    out.push_back({std::string("small_zstd_128.") + t.name, sa::serialize(d)});
  }
  // One chunk of 2^28 raw bytes (no payload given: the assembler leaves it
  // empty) whose header claims the largest stored size §5 allows: a reader
  // must not allocate that before the bytes arrive.
  {
    wc::Manifest m;
    wc::FileRecord f;
    f.name = "huge.safetensors";
    f.tensor_count = 1;
    m.files.push_back(f);
    wc::TensorRecord t;
    t.name = "huge";
    t.shape = {1u << 28};
    t.byte_size = 1u << 28;
    t.chunk_size = 1u << 28;
    m.tensors.push_back(t);
    m.derive_chunks();
    sa::Description hd;
    hd.manifest = wc::encode_manifest(m);
    out.push_back({"huge_chunk", sa::serialize(hd)});
    sa::add_tweak(hd, sa::kChunkStored, 0, UINT32_MAX);
    out.push_back({"huge_chunk.chunk_stored_largest", sa::serialize(hd)});
  }
  // 1001 empty safetensors files (the empty model's one, cloned).
  auto d = sa::parse(empty.data(), empty.size());
  sa::add_tweak(d, sa::kCloneFile, 0, 1000);
  out.push_back({"empty_model.clone_file_x1000", sa::serialize(d)});
  return out;
}

std::vector<Seed> safetensors_seeds() {
  std::vector<Seed> out;
  for (int v = 0; v < 8; ++v) out.push_back({"small_v" + std::to_string(v), small_st(v)});
  out.push_back({"empty", stb::build({})});
  out.push_back({"metadata_only", stb::build({}, {.force_metadata = true})});
  std::vector<stb::StTensor> all;
  for (int i = 0; i < wc::kDTypeCount; ++i) {
    DType t = *wc::dtype_from_id(uint8_t(i));
    all.push_back({"t." + std::string(wc::dtype_name(t)), t, {2, 4}, {}});
  }
  out.push_back({"every_dtype", stb::build(all, {.metadata = {{"k", "v"}}, .spaced = true})});
  // Near misses the parser must reject.
  out.push_back({"bad_overlap", stb::raw("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                                         "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}",
                                         {1, 2, 3})});
  out.push_back({"bad_escape", stb::raw("{\"\\ud800x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", {7})});
  return out;
}

std::vector<Seed> shard_index_seeds() {
  auto s = [](const char* name, const std::string& j) { return Seed{name, std::vector<uint8_t>(j.begin(), j.end())}; };
  return {
      s("two", "{\"metadata\":{\"total_size\":10},\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-2.safetensors\"}}"),
      s("one", "{\"weight_map\":{\"x.weight\":\"model.safetensors\"}}"),
      s("dup", "{\"weight_map\":{\"a\":\"f\",\"a\":\"g\"}}"),
      s("escaped", "{\"weight_map\":{\"\\u00e9\":\"f\\u0041.safetensors\"},\"extra\":[1,2,{\"z\":null}]}"),
  };
}

// [selector][u32 raw size][stored]
Seed codec_seed(wc::CodecId c, uint8_t sel, DType t, const std::vector<uint8_t>& raw, const std::string& name) {
  std::vector<uint8_t> stored;
  wc::encode_chunk(c, t, raw.data(), raw.size(), stored, {});
  Seed s{name, {sel}};
  uint32_t n = static_cast<uint32_t>(raw.size());
  for (int k = 0; k < 4; ++k) s.bytes.push_back(uint8_t(n >> (8 * k)));
  s.bytes.insert(s.bytes.end(), stored.begin(), stored.end());
  return s;
}

std::vector<Seed> decode_seeds(int codec) {
  std::vector<Seed> out;
  const auto c = static_cast<wc::CodecId>(codec);
  if (codec == 2) {
    if (!wc::codec_supports(c, DType::BF16)) return out;
    const size_t counts[] = {1, 7, 300, 5000};
    for (uint8_t sel = 0; sel < 5; ++sel)
      for (size_t n : counts) {
        DType t = kFansTypes[sel];
        out.push_back(codec_seed(c, sel, t, weights(t, n, n + sel), std::string(wc::dtype_name(t)) + "_" + std::to_string(n)));
      }
    // a constant chunk and a random one (likely the raw fallback)
    out.push_back(codec_seed(c, 0, DType::BF16, std::vector<uint8_t>(512, 0x3C), "bf16_const"));
    out.push_back(codec_seed(c, 2, DType::F32, stb::pattern_bytes(1024, 3), "f32_random"));
    // codec 8's mode 6 (FP8 pairs) payloads, which fuzz_decode also feeds codec 8
    for (uint8_t sel = 0; sel < 5; ++sel)
      if (kFansTypes[sel] == DType::F8_E4M3 || kFansTypes[sel] == DType::F8_E5M2)
        for (size_t n : {size_t(301), size_t(5000)}) {
          const DType t = kFansTypes[sel];
          out.push_back(codec_seed(wc::CodecId::float_ans_pairs, sel, t, weights(t, n, n + sel),
                                   std::string(wc::dtype_name(t)) + "_pairs_" + std::to_string(n)));
        }
    return out;
  }
  const DType types[] = {DType::U8, DType::BF16, DType::F32, DType::I64, DType::F4};
  for (DType t : types)
    for (size_t n : {size_t(0), size_t(16), size_t(1000)}) {
      auto raw = weights(t == DType::F32 ? DType::F32 : DType::BF16, n, n + 1);
      raw.resize(n);
      out.push_back(codec_seed(c, static_cast<uint8_t>(t), t, raw, std::string(wc::dtype_name(t)) + "_" + std::to_string(n)));
    }
  return out;
}

std::vector<Seed> roundtrip_seeds(int codec) {
  std::vector<Seed> out;
  auto add = [&](uint8_t sel, uint8_t opt, const std::vector<uint8_t>& d, const std::string& name) {
    Seed s{name, {sel, opt}};
    s.bytes.insert(s.bytes.end(), d.begin(), d.end());
    out.push_back(std::move(s));
  };
  if (codec == 2) {
    for (uint8_t sel = 0; sel < 5; ++sel) {
      DType t = kFansTypes[sel];
      add(sel, 0, weights(t, 700, sel + 20), std::string(wc::dtype_name(t)) + "_default");
      add(sel, 0x5B, weights(t, 300, sel + 30), std::string(wc::dtype_name(t)) + "_params");
    }
    add(0, 0, std::vector<uint8_t>(256, 0), "bf16_zeros");
    return out;
  }
  add(static_cast<uint8_t>(DType::BF16), 3, weights(DType::BF16, 500, 1), "bf16");
  add(static_cast<uint8_t>(DType::U8), 22, stb::pattern_bytes(300, 2), "u8_random_l19");
  add(static_cast<uint8_t>(DType::F32), 1, std::vector<uint8_t>(400, 0), "f32_zeros");
  return out;
}

// exact_top: a valid tile of each dtype (tables, then a mode-1 payload made by
// the encoder over weights and their level 0 with low bits cut), and the
// same weights as round-trip inputs (see fuzz_exact_top.cpp).
std::vector<Seed> exact_top_seeds() {
  std::vector<Seed> out;
  const uint8_t rows = 6, cols = 40, base_byte = 32;  // base exponent -8
  const uint32_t ids[] = {9, 8, 12};
  for (uint8_t sel = 0; sel < 3; ++sel) {
    const DType t = sel == 0 ? DType::BF16 : sel == 1 ? DType::F16 : DType::F32;
    const size_t wb = wc::dtype_bits(t) / 8, n = size_t(rows) * cols;
    auto orig = weights(t, n, 40 + sel);
    if (t == DType::F32)  // F16 values in F32 (the low 13 bits zero): a trim (§4) of 13
      for (size_t i = 0; i < n; ++i) orig[4 * i] = 0, orig[4 * i + 1] &= 0xE0;
    std::vector<uint8_t> recon(orig);
    for (size_t i = 0; i < n; ++i) recon[i * wb] = 0, recon[i * wb + 1] &= uint8_t(wb == 4 ? 0xFF : 0xF0);
    std::vector<uint8_t> e(rows);
    for (uint8_t r = 0; r < rows; ++r) e[r] = uint8_t(0x20 + 5 * r);
    wc::exact::Counts k;
    const unsigned z = wc::exact::trim_bits(ids[sel], orig.data(), orig.size() / (wc::dtype_bits(wc::DType(ids[sel])) / 8));
    wc::exact::count_tile(k, ids[sel], z, 0, orig.data(), recon.data(), -8, e.data(), rows, cols);
    wc::exact::Tables tb;
    const auto tables = wc::exact::build_tables(k, ids[sel], z, 0, tb);
    std::vector<uint8_t> payload;
    wc::exact::encode_tile(tb, ids[sel], orig.data(), recon.data(), -8, e.data(), rows, cols, payload);
    Seed d{std::string(wc::dtype_name(t)) + "_tile", {sel, base_byte, uint8_t(rows - 1), uint8_t(cols - 1),
                                                      uint8_t(tables.size()), uint8_t(tables.size() >> 8)}};
    d.bytes.insert(d.bytes.end(), tables.begin(), tables.end());
    d.bytes.insert(d.bytes.end(), payload.begin(), payload.end());
    out.push_back(std::move(d));
    Seed r{std::string(wc::dtype_name(t)) + "_roundtrip", {uint8_t(0x80 | sel), base_byte, uint8_t(rows - 1),
                                                           uint8_t(cols - 1)}};
    r.bytes.insert(r.bytes.end(), orig.begin(), orig.end());
    r.bytes.insert(r.bytes.end(), recon.begin(), recon.end());
    r.bytes.insert(r.bytes.end(), e.begin(), e.end());
    out.push_back(r);
    // a refinement level (REFINE.md): the round trip with divisor 2 + 7, shift 3, and a coded tile of it
    r.name = std::string(wc::dtype_name(t)) + "_refine_roundtrip";
    r.bytes[0] = uint8_t(0xC0 | sel);
    r.bytes.push_back(7), r.bytes.push_back(3);
    out.push_back(std::move(r));
    std::vector<float> x(n);
    wc::load_floats(t, orig.data(), n, x.data());
    std::vector<uint8_t> below(n * wb, 0), above(n * wb);
    std::vector<uint16_t> codes(n);
    wc::exact::refine_codes(ids[sel], x.data(), below.data(), -8, e.data(), 9, rows, cols, codes.data(), above.data());
    wc::exact::Counts kr;
    wc::exact::count_codes(kr, ids[sel], 3, below.data(), -8, e.data(), rows, cols, codes.data());
    wc::exact::Tables tr;
    const auto rt = wc::exact::build_refine_tables(kr, 3, 9, tr);
    std::vector<uint8_t> rp;
    wc::exact::encode_codes(tr, ids[sel], below.data(), -8, e.data(), rows, cols, codes.data(), rp);
    Seed rs{std::string(wc::dtype_name(t)) + "_refine_tile", {uint8_t(0x40 | sel), base_byte, uint8_t(rows - 1),
                                                              uint8_t(cols - 1), uint8_t(rt.size()),
                                                              uint8_t(rt.size() >> 8)}};
    rs.bytes.insert(rs.bytes.end(), rt.begin(), rt.end());
    rs.bytes.insert(rs.bytes.end(), rp.begin(), rp.end());
    out.push_back(std::move(rs));
  }
  return out;
}

}  // namespace

const std::vector<std::string>& target_names() {
  static const std::vector<std::string> names = {
      "container",     "stream",         "container_struct", "stream_struct",
      "safetensors",   "shard_index",    "decode_raw",       "decode_zstd",
      "decode_fans",   "roundtrip_raw",  "roundtrip_zstd",   "roundtrip_fans", "exact_top"};
  return names;
}

std::vector<Seed> make_seeds(const std::string& t) {
  if (t == "container" || t == "stream") return containers();
  if (t == "container_struct" || t == "stream_struct") return struct_seeds();
  if (t == "safetensors") return safetensors_seeds();
  if (t == "shard_index") return shard_index_seeds();
  if (t == "decode_raw") return decode_seeds(0);
  if (t == "decode_zstd") return decode_seeds(1);
  if (t == "decode_fans") return decode_seeds(2);
  if (t == "roundtrip_raw") return roundtrip_seeds(0);
  if (t == "roundtrip_zstd") return roundtrip_seeds(1);
  if (t == "roundtrip_fans") return roundtrip_seeds(2);
  if (t == "exact_top") return exact_top_seeds();
  return {};
}

}  // namespace wcfuzz
