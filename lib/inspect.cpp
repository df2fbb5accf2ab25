#include <cmath>
#include <map>
// inspect: what a container holds, from the manifest and index alone (and,
// with --entropy, from decoding the float tensors).
#include <algorithm>
#include <cstdio>

#include "lib/levels.h"
#include "model/json.h"
#include "platform/text.h"
#include "format/reader.h"
#include "model/file_check.h"
#include "lib/reader_checks.h"
#include "model/safetensors.h"
#include "lib/api.h"
#include "lib/unit_decode.h"
#include "quant/outliers_repr.h"
#include "quant/vq_repr.h"
#include "quant/repr.h"
#include "lib/decode_driver.h"

#include "codec/float_ans.h"

namespace wc {

namespace {

std::string codec_label(uint8_t c) {
  return codec_id_valid(c) ? std::string(codec_name(static_cast<CodecId>(c))) : "unknown(" + std::to_string(c) + ")";
}

GroupSummary& group(std::vector<GroupSummary>& v, const std::string& name) {
  for (auto& g : v)
    if (g.name == name) return g;
  v.push_back({name});
  return v.back();
}

// Display width of a name after escaping (code points, not bytes).
size_t shown_width(const std::string& name) {
  const std::string e = escape_for_terminal(name);
  size_t w = 0;
  for (unsigned char c : e) w += (c & 0xC0) != 0x80;
  return w;
}

}  // namespace

namespace {

// A lossy tensor is listed by its representation; an exact one by its codec.
// A pool member (1.8, 2.13) reads as its pool's codec: "pooled:float-ans".
std::string label(const Manifest& m, const TensorRecord& t) {
  if (t.lossy()) return std::string(repr_name(t.repr));
  if (t.pool < m.pools.size()) return "pooled:" + codec_label(m.pools[t.pool].codec);
  return codec_label(t.codec);
}

uint64_t file_bytes(const ContainerReader& r, const TensorRecord& t, const ManifestShares& shares) {
  return uint64_t(std::llround(tensor_file_bytes(t, r.index(), r.manifest_end(), shares)));
}

}  // namespace

void inspect(const std::string& in, bool entropy, InspectSink& out) {
  ContainerReader r(in, kReaderChecks);
  const Manifest& m = r.manifest();
  const ManifestShares shares = manifest_shares(m, r.header().manifest_raw, r.header().manifest_stored);
  InspectResult res;
  res.path = in;
  res.version_major = r.header().major;
  res.version_minor = r.header().minor;
  res.file_size = r.file_size();
  res.tensor_count = m.tensors.size();
  for (const auto& f : m.files) {
    FileSummary fs;
    fs.name = f.name;
    fs.kind = f.kind == FileKind::safetensors ? "safetensors" : "blob";
    fs.size = f.size;
    fs.tensors = f.tensor_count;
    if (f.kind == FileKind::safetensors)  // checked when the container was opened
      st::scan_header(f.prefix.data(), f.prefix.size(), f.size, [](st::TensorInfo&&, const st::EntryPos&) {},
                      [&](std::string&& k, std::string&& v, uint64_t) { fs.metadata.emplace_back(std::move(k), std::move(v)); });
    res.raw_bytes += f.size;
    for (uint32_t i = 0; i < f.tensor_count; ++i) {
      const TensorRecord& t = m.tensors[f.first_tensor + i];
      const uint64_t stored = tensor_stored_bytes(t, r.index());
      fs.stored_bytes += stored;
      if (t.lossy()) ++res.lossy_tensors, res.lossy_weights += t.elements(), res.lossy_file_bytes += file_bytes(r, t, shares);
      const uint64_t el = t.elements();
      if (f.kind == FileKind::safetensors) res.weights += el;
      for (GroupSummary* g : {&group(res.by_dtype, std::string(dtype_name(t.dtype))), &group(res.by_codec, label(m, t))}) {
        ++g->tensors;
        g->elements += el;
        g->raw_bytes += t.byte_size;
        g->stored_bytes += stored;
      }
      res.name_width = std::max(res.name_width, shown_width(t.name));
    }
    res.stored_payload += fs.stored_bytes;
    res.files.push_back(std::move(fs));
  }
  res.levels = level_points(r);
  out.begin(res);
  std::vector<uint8_t> chunk;
  TensorSummary s;
  for (const auto& f : m.files) {
    for (uint32_t i = 0; i < f.tensor_count; ++i) {
      const TensorRecord& t = m.tensors[f.first_tensor + i];
      s.file = f.name;
      s.name = t.name;
      s.dtype = std::string(dtype_name(t.dtype));
      s.codec = label(m, t);
      s.shape = t.shape;
      s.elements = t.elements();
      s.raw_bytes = t.byte_size;
      s.chunks = t.chunk_count;
      s.stored_bytes = tensor_stored_bytes(t, r.index());
      s.bits_per_weight = s.elements ? 8.0 * double(s.stored_bytes) / double(s.elements) : 0;
      s.repr = std::string(repr_name(t.repr));
      s.levels = t.lossy() ? uint32_t(t.levels.size()) : 1;
      s.level_kinds.clear();
      for (size_t k = 1; t.lossy() && k < t.levels.size() && 2 * k < t.parts.size(); ++k) {
        const PartRole role = t.parts[2 * k].role;
        s.level_kinds.push_back(role == PartRole::block       ? "block"
                                : role == PartRole::exact_top ? "exact"
                                : role == PartRole::residual  ? "refine"
                                                              : "unknown");
      }
      s.file_bytes = file_bytes(r, t, shares);
      s.rel_rmse = s.max_abs = s.snr_db = -1;
      if (t.lossy()) {
        const LevelRecord& top = t.levels.back();
        s.bits_per_weight = s.elements ? 8.0 * double(s.file_bytes) / double(s.elements) : 0;
        s.rel_rmse = top.rel_rmse, s.max_abs = top.max_abs;
        s.snr_db = top.rel_rmse > 0 ? -20.0 * std::log10(double(top.rel_rmse)) : INFINITY;
      }
      s.outliers = qrow_outlier_count(t);
      s.codebook_entries = s.codebook_dim = s.codebook_books = s.codebook_second = 0;
      if (t.repr == kReprVq && vq_dim(t) && t.parts.size() == 3) {
        s.codebook_dim = vq_dim(t);
        s.codebook_entries = uint32_t(vq_codes(t));
        s.codebook_books = uint32_t(vq_books(t));
        s.codebook_second = vq_second(t);
      }
      s.h_values = s.h_exp_bound = -1;
      if (entropy && !t.lossy() && fans::supports_float(t.dtype) && t.byte_size > 0) {  // a chunk in memory at a time
        fans::EntropyCounter ec(t.dtype);
        for (uint32_t c = 0; c < unit_count(t); ++c) {
          chunk.resize(t.chunk_raw_size(c));
          decode_one_chunk(t, c, r.exact_chunk(t, c), chunk.data(), r.path());
          ec.add(chunk.data(), chunk.size());
        }
        s.h_values = ec.h_values();
        s.h_exp_bound = ec.h_exp_bound();
      }
      out.tensor(s);
    }
  }
  out.end(res);
}

InspectResult inspect(const std::string& in, bool entropy, std::vector<TensorSummary>* tensors) {
  struct Collect : InspectSink {
    InspectResult r;
    std::vector<TensorSummary>* v;
    void begin(const InspectResult& x) override { r = x; }
    void tensor(const TensorSummary& t) override {
      if (v) v->push_back(t);
    }
    void end(const InspectResult&) override {}
  } c;
  c.v = tensors;
  inspect(in, entropy, c);
  return c.r;
}

// A vq tensor's codebook column: K x d (additive: K1+K2 x d), and "/G" for
// G books (one per group of rows).
static std::string codebook_str(const TensorSummary& t) {
  std::string o = (t.codebook_second ? std::to_string(t.codebook_entries / t.codebook_second) + "+" +
                                           std::to_string(t.codebook_second)
                                     : std::to_string(t.codebook_entries)) +
                  "x" + std::to_string(t.codebook_dim);
  if (t.codebook_books > 1) o += "/" + std::to_string(t.codebook_books);
  return o;
}

static std::string shape_str(const std::vector<uint64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

static std::string fmt(double v, int prec = 3) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

namespace {

double bpw(uint64_t bytes, uint64_t elements) { return elements ? 8.0 * double(bytes) / double(elements) : 0.0; }

std::string json_groups(const std::vector<GroupSummary>& v) {
  std::string o = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    const auto& g = v[i];
    o += std::string(i ? "," : "") + "{\"name\":\"" + json_escape(g.name) + "\",\"tensors\":" + std::to_string(g.tensors) +
         ",\"elements\":" + std::to_string(g.elements) + ",\"raw_bytes\":" + std::to_string(g.raw_bytes) +
         ",\"stored_bytes\":" + std::to_string(g.stored_bytes) + ",\"bits_per_weight\":" + fmt(bpw(g.stored_bytes, g.elements), 6) +
         "}";
  }
  return o + "]";
}

// The JSON document (documented in README.md, "inspect --json"): totals, then
// "files", "by_dtype", "by_codec", then "tensors", one object per tensor in
// file order. Written as it goes, so any number of tensors streams.
class JsonWriter : public InspectSink {
 public:
  explicit JsonWriter(std::FILE* f) : f_(f) {}
  void begin(const InspectResult& r) override {
    std::string o = "{\"path\":\"" + json_escape(r.path) + "\",\"version\":\"" + std::to_string(r.version_major) + "." +
                    std::to_string(r.version_minor) + "\",\"file_size\":" + std::to_string(r.file_size) +
                    ",\"raw_bytes\":" + std::to_string(r.raw_bytes) + ",\"payload_bytes\":" + std::to_string(r.stored_payload) +
                    ",\"weights\":" + std::to_string(r.weights) +
                    ",\"ratio\":" + fmt(r.raw_bytes ? double(r.file_size) / double(r.raw_bytes) : 0, 6) +
                    ",\"bits_per_weight\":" + fmt(bpw(r.file_size, r.weights), 6) +
                    ",\"payload_bits_per_weight\":" + fmt(bpw(r.stored_payload, r.weights), 6) +
                    ",\"lossy_tensors\":" + std::to_string(r.lossy_tensors) +
                    ",\"lossy_bits_per_weight\":" + fmt(bpw(r.lossy_file_bytes, r.lossy_weights), 6) + ",\"levels\":[";
    for (size_t i = 0; i < r.levels.size(); ++i)
      o += std::string(i ? "," : "") + "{\"level\":" + std::to_string(r.levels[i].level) +
           ",\"bytes\":" + std::to_string(r.levels[i].bytes) + ",\"bits_per_weight\":" +
           fmt(r.levels[i].bits_per_weight, 6) + ",\"rel_rmse\":" + fmt(r.levels[i].rel_rmse, 8) + "}";
    o += "],\"files\":[";
    for (size_t i = 0; i < r.files.size(); ++i) {
      const auto& fs = r.files[i];
      o += std::string(i ? "," : "") + "{\"name\":\"" + json_escape(fs.name) + "\",\"kind\":\"" + fs.kind +
           "\",\"size\":" + std::to_string(fs.size) + ",\"stored_bytes\":" + std::to_string(fs.stored_bytes) +
           ",\"tensors\":" + std::to_string(fs.tensors) + ",\"metadata\":{";
      for (size_t k = 0; k < fs.metadata.size(); ++k)
        o += std::string(k ? "," : "") + "\"" + json_escape(fs.metadata[k].first) + "\":\"" + json_escape(fs.metadata[k].second) + "\"";
      o += "}}";
    }
    o += "],\"by_dtype\":" + json_groups(r.by_dtype) + ",\"by_codec\":" + json_groups(r.by_codec) + ",\"tensors\":[";
    std::fputs(o.c_str(), f_);
  }
  void tensor(const TensorSummary& t) override {
    std::string o = std::string(first_ ? "" : ",") + "{\"file\":\"" + json_escape(t.file) + "\",\"name\":\"" +
                    json_escape(t.name) + "\",\"dtype\":\"" + t.dtype + "\",\"shape\":" + shape_str(t.shape) +
                    ",\"codec\":\"" + json_escape(t.codec) + "\",\"elements\":" + std::to_string(t.elements) +
                    ",\"raw_bytes\":" + std::to_string(t.raw_bytes) + ",\"stored_bytes\":" + std::to_string(t.stored_bytes) +
                    ",\"chunks\":" + std::to_string(t.chunks) + ",\"bits_per_weight\":" + fmt(t.bits_per_weight, 6);
    if (t.h_values >= 0) o += ",\"h_values\":" + fmt(t.h_values, 6) + ",\"h_exp_bound\":" + fmt(t.h_exp_bound, 6);
    o += ",\"representation\":\"" + json_escape(t.repr) + "\",\"levels\":" + std::to_string(t.levels) +
         ",\"file_bytes\":" + std::to_string(t.file_bytes);
    if (!t.level_kinds.empty()) {
      o += ",\"level_kinds\":[";
      for (size_t k = 0; k < t.level_kinds.size(); ++k) o += std::string(k ? "," : "") + "\"" + t.level_kinds[k] + "\"";
      o += "]";
    }
    if (t.rel_rmse >= 0)
      o += ",\"rel_rmse\":" + fmt(t.rel_rmse, 8) + ",\"max_abs_error\":" + fmt(t.max_abs, 8) + ",\"snr_db\":" +
           (std::isfinite(t.snr_db) ? fmt(t.snr_db, 4) : std::string("null"));
    if (t.repr != "exact") o += ",\"outliers\":" + std::to_string(t.outliers);
    if (t.codebook_dim)
      o += ",\"codebook\":{\"entries\":" + std::to_string(t.codebook_entries) +
           ",\"dim\":" + std::to_string(t.codebook_dim) + ",\"books\":" + std::to_string(t.codebook_books) +
           (t.codebook_second ? ",\"additive\":[" + std::to_string(t.codebook_entries / t.codebook_second) + "," +
                                    std::to_string(t.codebook_second) + "]"
                              : std::string()) +
           "}";
    o += "}";
    std::fputs(o.c_str(), f_);
    first_ = false;
  }
  void end(const InspectResult&) override { std::fputs("]}\n", f_); }

 private:
  std::FILE* f_;
  bool first_ = true;
};

// Pads `s` (escaped) to `w` display columns.
std::string padded(const std::string& s, size_t w) {
  std::string e = escape_for_terminal(s);
  size_t n = 0;
  for (unsigned char c : e) n += (c & 0xC0) != 0x80;
  if (n < w) e.append(w - n, ' ');
  return e;
}

// The human table. Names come from the file: escaped, so none can move the
// cursor or rewrite what the user sees; columns sized to the widest name.
class TextWriter : public InspectSink {
 public:
  TextWriter(std::FILE* f, bool entropy, bool all_steps) : f_(f), ent_(entropy), all_(all_steps) {}
  void begin(const InspectResult& r) override {
    multi_ = r.files.size() > 1;
    name_w_ = std::max<size_t>(r.name_width, 6);
    for (const auto& g : r.by_codec) codec_w_ = std::max(codec_w_, g.name.size());  // float-ans-groups, pooled:...
    for (const auto& fs : r.files) file_w_ = std::max(file_w_, escape_for_terminal(fs.name).size());
    std::fprintf(f_, "%s: wcodec container v%u.%u, %zu file(s), %llu tensor(s)\n", escape_for_terminal(r.path).c_str(),
                 r.version_major, r.version_minor, r.files.size(), (unsigned long long)r.tensor_count);
    for (const auto& fs : r.files) {
      std::fprintf(f_, "  file %s: %s, %llu bytes, %u tensor(s), %llu bytes stored\n", escape_for_terminal(fs.name).c_str(),
                   fs.kind.c_str(), (unsigned long long)fs.size, fs.tensors, (unsigned long long)fs.stored_bytes);
      for (const auto& [k, v] : fs.metadata)
        std::fprintf(f_, "    metadata %s = %s\n", escape_for_terminal(k).c_str(), escape_for_terminal(v).c_str());
    }
    std::string head = (multi_ ? padded("file", file_w_) + " " : std::string()) + padded("tensor", name_w_);
    lossy_ = r.lossy_tensors > 0;
    std::fprintf(f_, "%s %-8s %-18s %-*s %12s %12s %7s%s%s\n", head.c_str(), "dtype", "shape", int(codec_w_), "codec", "raw", "stored",
                 "bits/w", ent_ ? "  H(values) H(exp)+rest" : "",
                 lossy_ ? "  levels  rel.RMSE  max|err|  SNR dB  outliers/codebook" : "");
  }
  void tensor(const TensorSummary& t) override {
    std::string head = (multi_ ? padded(t.file, file_w_) + " " : std::string()) + padded(t.name, name_w_);
    std::fprintf(f_, "%s %-8s %-18s %-*s %12llu %12llu %7.3f", head.c_str(), t.dtype.c_str(), shape_str(t.shape).c_str(),
                 int(codec_w_), t.codec.c_str(), (unsigned long long)t.raw_bytes, (unsigned long long)t.stored_bytes, t.bits_per_weight);
    if (t.h_values >= 0) std::fprintf(f_, "  %9.3f %9.3f", t.h_values, t.h_exp_bound);
    else if (ent_ && lossy_) std::fprintf(f_, "  %9s %9s", "-", "-");
    for (const auto& k : t.level_kinds) ++kinds_[k];
    if (lossy_ && t.rel_rmse >= 0)
      std::fprintf(f_, "  %6u %9.5f %9.3g %7.2f %9s", t.levels, t.rel_rmse, t.max_abs, t.snr_db,
                   t.codebook_dim ? codebook_str(t).c_str() : std::to_string(t.outliers).c_str());
    else if (lossy_)
      std::fprintf(f_, "  %6s %9s %9s %7s %9s", "exact", "0", "0", "-", "-");
    std::fputc('\n', f_);
  }
  void end(const InspectResult& r) override {
    if (!kinds_.empty()) {  // the kinds of the lossy tensors' levels above 0
      std::string line;
      for (const auto& [k, n] : kinds_)
        line += (line.empty() ? "" : ", ") + std::to_string(n) + " " +
                (k == "refine" ? "refinement level(s)" : k == "block" ? "sign-magnitude block(s)"
                 : k == "exact" ? "exact top layer(s)" : k);
      std::fprintf(f_, "levels above 0: %s\n", line.c_str());
    }
    for (const auto* gs : {&r.by_dtype, &r.by_codec}) {
      std::fprintf(f_, "%s\n", gs == &r.by_dtype ? "by dtype:" : "by codec:");
      for (const auto& g : *gs)
        std::fprintf(f_, "  %-12s %10llu tensor(s) %16llu -> %16llu bytes  %8.3f bits/w\n", g.name.c_str(),
                     (unsigned long long)g.tensors, (unsigned long long)g.raw_bytes, (unsigned long long)g.stored_bytes,
                     bpw(g.stored_bytes, g.elements));
    }
    std::fprintf(f_,
                 "total: %llu bytes -> %llu bytes (ratio %.4f, %.2f%%); over %llu weights: %.4f bits/weight for the whole "
                 "file, %.4f for the tensors' payloads alone (%llu bytes)\n",
                 (unsigned long long)r.raw_bytes, (unsigned long long)r.file_size,
                 r.raw_bytes ? double(r.file_size) / double(r.raw_bytes) : 0.0,
                 r.raw_bytes ? 100.0 * double(r.file_size) / double(r.raw_bytes) : 0.0, (unsigned long long)r.weights,
                 bpw(r.file_size, r.weights), bpw(r.stored_payload, r.weights), (unsigned long long)r.stored_payload);
    if (r.lossy_tensors)
      std::fprintf(f_, "lossy: %llu tensor(s), %llu weights, %.4f bits/weight, every byte they take in the file counted\n",
                   (unsigned long long)r.lossy_tensors, (unsigned long long)r.lossy_weights,
                   bpw(r.lossy_file_bytes, r.lossy_weights));
    if (r.levels.empty()) return;
    // A file of many steps (--refine: one a tensor level) shows the last
    // step at or below each quarter bit per weight, and its first and last.
    const bool some = !all_ && r.levels.size() > kInspectStepsShown;
    std::fprintf(f_, "levels (the file's first bytes, to where the next level begins, hold a model)%s:\n",
                 some ? (": " + std::to_string(r.levels.size()) +
                         " steps, those at each quarter bit per weight shown (inspect --steps lists every one)")
                            .c_str()
                      : "");
    for (size_t i = 0; i < r.levels.size(); ++i) {
      const auto& p = r.levels[i];
      if (some && i > 0 && i + 1 < r.levels.size() &&
          std::floor(4 * r.levels[i + 1].bits_per_weight) == std::floor(4 * p.bits_per_weight))
        continue;  // the next step is in the same quarter
      std::fprintf(f_, "  level %u: %llu bytes (%.2f%%), %.4f bits/weight, rel. RMSE %.5f\n", p.level,
                   (unsigned long long)p.bytes, r.raw_bytes ? 100.0 * double(p.bytes) / double(r.raw_bytes) : 0.0,
                   p.bits_per_weight, p.rel_rmse);
    }
  }

 private:
  std::FILE* f_;
  bool ent_, all_, multi_ = false, lossy_ = false;
  std::map<std::string, uint64_t> kinds_;  // levels above 0 by kind, over the tensors listed
  size_t name_w_ = 6, file_w_ = 4, codec_w_ = 9;
};

}  // namespace

std::unique_ptr<InspectSink> inspect_text_writer(std::FILE* f, bool entropy, bool all_steps) {
  return std::make_unique<TextWriter>(f, entropy, all_steps);
}
std::unique_ptr<InspectSink> inspect_json_writer(std::FILE* f) { return std::make_unique<JsonWriter>(f); }

}  // namespace wc
