// inspect: what a container holds, from the manifest and index alone (and,
// with --entropy, from decoding the float tensors).
#include <cstdio>
#include <sstream>

#include "format/json.h"
#include "format/text.h"
#include "format/reader.h"
#include "lib/api.h"
#include "lib/decode_driver.h"

#include "codec/float_ans.h"

namespace wc {

void inspect(const std::string& in, bool entropy, InspectSink& out) {
  ContainerReader r(in);
  const Manifest& m = r.manifest();
  InspectResult res;
  res.path = in;
  res.version_major = r.header().major;
  res.version_minor = r.header().minor;
  res.file_size = r.file_size();
  res.tensor_count = m.tensors.size();
  for (const auto& f : m.files) {
    res.files.push_back(f.name);
    res.raw_bytes += f.size;
    for (uint32_t i = 0; i < f.tensor_count; ++i)
      if (f.kind == FileKind::safetensors) res.weights += m.tensors[f.first_tensor + i].elements();
  }
  for (const auto& e : r.index()) res.stored_payload += e.stored_size;
  out.begin(res);
  std::vector<uint8_t> chunk;
  TensorSummary s;
  for (const auto& f : m.files) {
    for (uint32_t i = 0; i < f.tensor_count; ++i) {
      const TensorRecord& t = m.tensors[f.first_tensor + i];
      s.file = f.name;
      s.name = t.name;
      s.dtype = std::string(dtype_name(t.dtype));
      s.codec = codec_id_valid(t.codec) ? std::string(codec_name(static_cast<CodecId>(t.codec)))
                                        : "unknown(" + std::to_string(t.codec) + ")";
      s.shape = t.shape;
      s.elements = t.elements();
      s.raw_bytes = t.byte_size;
      s.chunks = t.chunk_count;
      s.stored_bytes = 0;
      for (uint32_t c = 0; c < t.chunk_count; ++c) s.stored_bytes += r.index()[t.first_chunk + c].stored_size;
      s.bits_per_weight = s.elements ? 8.0 * double(s.stored_bytes) / double(s.elements) : 0;
      s.h_values = s.h_exp_bound = -1;
      if (entropy && fans::supports(t.dtype) && t.byte_size > 0) {  // a chunk in memory at a time
        fans::EntropyCounter ec(t.dtype);
        for (uint32_t c = 0; c < t.chunk_count; ++c) {
          chunk.resize(t.chunk_raw_size(c));
          decode_one_chunk(t, c, r.chunk(t.first_chunk + c), chunk.data(), r.path());
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

// JSON: {"path", "version", "file_size", "raw_bytes", "payload_bytes",
// "weights", "ratio", "bits_per_weight", "files": [names], "tensors": [{"file",
// "name", "dtype", "shape", "codec", "elements", "raw_bytes", "stored_bytes",
// "chunks", "bits_per_weight", ["h_values", "h_exp_bound"]}]}
class JsonWriter : public InspectSink {
 public:
  explicit JsonWriter(std::FILE* f) : f_(f) {}
  void begin(const InspectResult& r) override {
    std::string o = "{\"path\":\"" + json_escape(r.path) + "\",\"version\":\"" + std::to_string(r.version_major) + "." +
                    std::to_string(r.version_minor) + "\",\"file_size\":" + std::to_string(r.file_size) +
                    ",\"raw_bytes\":" + std::to_string(r.raw_bytes) + ",\"payload_bytes\":" + std::to_string(r.stored_payload) +
                    ",\"weights\":" + std::to_string(r.weights) +
                    ",\"ratio\":" + fmt(r.raw_bytes ? double(r.file_size) / double(r.raw_bytes) : 0, 6) +
                    ",\"bits_per_weight\":" + fmt(r.weights ? 8.0 * double(r.file_size) / double(r.weights) : 0, 6) +
                    ",\"files\":[";
    for (size_t i = 0; i < r.files.size(); ++i) o += (i ? ",\"" : "\"") + json_escape(r.files[i]) + "\"";
    o += "],\"tensors\":[";
    std::fputs(o.c_str(), f_);
  }
  void tensor(const TensorSummary& t) override {
    std::string o = std::string(first_ ? "" : ",") + "{\"file\":\"" + json_escape(t.file) + "\",\"name\":\"" +
                    json_escape(t.name) + "\",\"dtype\":\"" + t.dtype + "\",\"shape\":" + shape_str(t.shape) +
                    ",\"codec\":\"" + json_escape(t.codec) + "\",\"elements\":" + std::to_string(t.elements) +
                    ",\"raw_bytes\":" + std::to_string(t.raw_bytes) + ",\"stored_bytes\":" + std::to_string(t.stored_bytes) +
                    ",\"chunks\":" + std::to_string(t.chunks) + ",\"bits_per_weight\":" + fmt(t.bits_per_weight, 6);
    if (t.h_values >= 0) o += ",\"h_values\":" + fmt(t.h_values, 6) + ",\"h_exp_bound\":" + fmt(t.h_exp_bound, 6);
    o += "}";
    std::fputs(o.c_str(), f_);
    first_ = false;
  }
  void end(const InspectResult&) override { std::fputs("]}\n", f_); }

 private:
  std::FILE* f_;
  bool first_ = true;
};

// Names in the table come from the file: escaped, so none can move the cursor
// or rewrite what the user sees.
class TextWriter : public InspectSink {
 public:
  TextWriter(std::FILE* f, bool entropy) : f_(f), ent_(entropy) {}
  void begin(const InspectResult& r) override {
    std::fprintf(f_, "%s: wcodec container v%u.%u, %zu file(s), %llu tensor(s)\n", escape_for_terminal(r.path).c_str(),
                 r.version_major, r.version_minor, r.files.size(), (unsigned long long)r.tensor_count);
    std::fprintf(f_, "%-48s %-8s %-18s %-9s %12s %12s %7s%s\n", "tensor", "dtype", "shape", "codec", "raw", "stored",
                 "bits/w", ent_ ? "  H(values) H(exp)+rest" : "");
  }
  void tensor(const TensorSummary& t) override {
    std::fprintf(f_, "%-48s %-8s %-18s %-9s %12llu %12llu %7.3f", escape_for_terminal(t.name).c_str(), t.dtype.c_str(),
                 shape_str(t.shape).c_str(), t.codec.c_str(), (unsigned long long)t.raw_bytes,
                 (unsigned long long)t.stored_bytes, t.bits_per_weight);
    if (t.h_values >= 0) std::fprintf(f_, "  %9.3f %9.3f", t.h_values, t.h_exp_bound);
    std::fputc('\n', f_);
  }
  void end(const InspectResult& r) override {
    std::fprintf(f_,
                 "total: %llu bytes -> %llu bytes (ratio %.4f, %.2f%%), payload %llu bytes, %.4f bits/weight over %llu "
                 "weights\n",
                 (unsigned long long)r.raw_bytes, (unsigned long long)r.file_size,
                 r.raw_bytes ? double(r.file_size) / double(r.raw_bytes) : 0.0,
                 r.raw_bytes ? 100.0 * double(r.file_size) / double(r.raw_bytes) : 0.0, (unsigned long long)r.stored_payload,
                 r.weights ? 8.0 * double(r.file_size) / double(r.weights) : 0.0, (unsigned long long)r.weights);
  }

 private:
  std::FILE* f_;
  bool ent_;
};

}  // namespace

std::unique_ptr<InspectSink> inspect_text_writer(std::FILE* f, bool entropy) { return std::make_unique<TextWriter>(f, entropy); }
std::unique_ptr<InspectSink> inspect_json_writer(std::FILE* f) { return std::make_unique<JsonWriter>(f); }

}  // namespace wc
