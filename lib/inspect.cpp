// inspect: what a container holds, from the manifest and index alone (and,
// with --entropy, from decoding the float tensors).
#include <cstdio>
#include <sstream>

#include "format/json.h"
#include "format/reader.h"
#include "lib/api.h"
#include "lib/decode_driver.h"

#include "codec/float_ans.h"

namespace wc {

InspectResult inspect(const std::string& in, bool entropy) {
  ContainerReader r(in);
  const Manifest& m = r.manifest();
  InspectResult res;
  res.path = in;
  res.version_major = r.header().major;
  res.version_minor = r.header().minor;
  res.file_size = r.file_size();
  std::vector<uint8_t> chunk;
  for (const auto& f : m.files) {
    res.files.push_back(f.name);
    res.raw_bytes += f.size;
    for (uint32_t i = 0; i < f.tensor_count; ++i) {
      const TensorRecord& t = m.tensors[f.first_tensor + i];
      TensorSummary s;
      s.file = f.name;
      s.name = t.name;
      s.dtype = std::string(dtype_name(t.dtype));
      s.codec = codec_id_valid(t.codec) ? std::string(codec_name(static_cast<CodecId>(t.codec)))
                                        : "unknown(" + std::to_string(t.codec) + ")";
      s.shape = t.shape;
      s.elements = t.elements();
      s.raw_bytes = t.byte_size;
      s.chunks = t.chunk_count;
      for (uint32_t c = 0; c < t.chunk_count; ++c) s.stored_bytes += r.index()[t.first_chunk + c].stored_size;
      s.bits_per_weight = s.elements ? 8.0 * double(s.stored_bytes) / double(s.elements) : 0;
      res.stored_payload += s.stored_bytes;
      if (f.kind == FileKind::safetensors) res.weights += s.elements;
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
      res.tensors.push_back(std::move(s));
    }
  }
  return res;
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

std::string inspect_json(const InspectResult& r) {
  std::ostringstream o;
  o << "{\"path\":\"" << json_escape(r.path) << "\",\"version\":\"" << r.version_major << "." << r.version_minor
    << "\",\"file_size\":" << r.file_size << ",\"raw_bytes\":" << r.raw_bytes << ",\"payload_bytes\":" << r.stored_payload
    << ",\"weights\":" << r.weights << ",\"ratio\":" << fmt(r.raw_bytes ? double(r.file_size) / r.raw_bytes : 0, 6)
    << ",\"bits_per_weight\":" << fmt(r.weights ? 8.0 * r.file_size / r.weights : 0, 6) << ",\"files\":[";
  for (size_t i = 0; i < r.files.size(); ++i) o << (i ? "," : "") << "\"" << json_escape(r.files[i]) << "\"";
  o << "],\"tensors\":[";
  for (size_t i = 0; i < r.tensors.size(); ++i) {
    const auto& t = r.tensors[i];
    o << (i ? "," : "") << "{\"file\":\"" << json_escape(t.file) << "\",\"name\":\"" << json_escape(t.name)
      << "\",\"dtype\":\"" << t.dtype << "\",\"shape\":" << shape_str(t.shape) << ",\"codec\":\"" << t.codec
      << "\",\"elements\":" << t.elements << ",\"raw_bytes\":" << t.raw_bytes << ",\"stored_bytes\":" << t.stored_bytes
      << ",\"chunks\":" << t.chunks << ",\"bits_per_weight\":" << fmt(t.bits_per_weight, 6);
    if (t.h_values >= 0) o << ",\"h_values\":" << fmt(t.h_values, 6) << ",\"h_exp_bound\":" << fmt(t.h_exp_bound, 6);
    o << "}";
  }
  o << "]}\n";
  return o.str();
}

std::string inspect_text(const InspectResult& r) {
  std::ostringstream o;
  bool ent = false;
  for (const auto& t : r.tensors) ent |= t.h_values >= 0;
  o << r.path << ": wcodec container v" << r.version_major << "." << r.version_minor << ", " << r.files.size()
    << " file(s), " << r.tensors.size() << " tensor(s)\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-48s %-8s %-18s %-9s %12s %12s %7s%s\n", "tensor", "dtype", "shape", "codec", "raw",
                "stored", "bits/w", ent ? "  H(values) H(exp)+rest" : "");
  o << line;
  for (const auto& t : r.tensors) {
    std::string sh = shape_str(t.shape);
    std::snprintf(line, sizeof line, "%-48s %-8s %-18s %-9s %12llu %12llu %7.3f", t.name.c_str(), t.dtype.c_str(),
                  sh.c_str(), t.codec.c_str(), (unsigned long long)t.raw_bytes, (unsigned long long)t.stored_bytes,
                  t.bits_per_weight);
    o << line;
    if (t.h_values >= 0) {
      std::snprintf(line, sizeof line, "  %9.3f %9.3f", t.h_values, t.h_exp_bound);
      o << line;
    }
    o << "\n";
  }
  std::snprintf(line, sizeof line,
                "total: %llu bytes -> %llu bytes (ratio %.4f, %.2f%%), payload %llu bytes, %.4f bits/weight over %llu weights\n",
                (unsigned long long)r.raw_bytes, (unsigned long long)r.file_size,
                r.raw_bytes ? double(r.file_size) / r.raw_bytes : 0.0,
                r.raw_bytes ? 100.0 * r.file_size / r.raw_bytes : 0.0, (unsigned long long)r.stored_payload,
                r.weights ? 8.0 * r.file_size / r.weights : 0.0, (unsigned long long)r.weights);
  o << line;
  return o.str();
}

}  // namespace wc
