// wcodec._wcodec: the Python binding over the public C API (include/wcodec/
// wcodec.h) and nothing else. It moves no tensor bytes itself: the Python
// layer allocates each numpy array or torch tensor and hands its address
// here, and the library decodes straight into it with the GIL released.
// Errors become wcodec.Error subclasses (wcodec/_errors.py) carrying the C
// error code and the library's message (file, tensor, offset).
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#define WCODEC_EXPERIMENTAL
#include "wcodec/wcodec.h"

namespace nb = nanobind;

namespace {

// A failed C call: translated to wcodec._errors.from_code(code, message).
struct CallError {
  int code;
  std::string message;
};

constexpr size_t kErrLen = 1024;

void check(int rc, const char* err, const std::string& fallback = {}) {
  if (rc == WCODEC_OK) return;
  std::string msg = err && *err ? std::string(err) : fallback;
  if (msg.empty()) msg = wcodec_error_name(rc);
  throw CallError{rc, msg};
}

const char* opt_cstr(const std::optional<std::string>& s) { return s ? s->c_str() : nullptr; }

// An open container. Either a path (the library maps it) or a Python object
// exporting the buffer protocol (bytes, bytearray, mmap), held until close.
class Archive {
 public:
  explicit Archive(const std::string& path) {
    char err[kErrLen] = {0};
    int rc;
    {
      nb::gil_scoped_release nogil;
      rc = wcodec_open(path.c_str(), &a_, err, sizeof err);
    }
    check(rc, err);
  }
  Archive(nb::handle buffer, const std::string& name) {
    if (PyObject_GetBuffer(buffer.ptr(), &view_, PyBUF_SIMPLE) != 0) throw nb::python_error();
    has_view_ = true;
    char err[kErrLen] = {0};
    int rc;
    {
      nb::gil_scoped_release nogil;
      rc = wcodec_open_memory(view_.buf, size_t(view_.len), name.c_str(), &a_, err, sizeof err);
    }
    if (rc != WCODEC_OK) release_view();
    check(rc, err);
  }
  ~Archive() { close(); }
  Archive(const Archive&) = delete;
  Archive& operator=(const Archive&) = delete;

  void close() {
    if (a_) wcodec_close(a_);
    a_ = nullptr;
    release_view();
  }
  bool closed() const { return a_ == nullptr; }

  // [(name, kind, size, first_tensor, tensor_count, [(key, value), ...])]
  nb::list files() const {
    nb::list out;
    for (size_t i = 0; i < wcodec_file_count(live()); ++i) {
      wcodec_file_info f = WCODEC_FILE_INFO_INIT;
      check(wcodec_get_file_info(a_, i, &f), nullptr);
      nb::list meta;
      for (size_t k = 0; k < f.metadata_count; ++k) {
        const char *key, *value;
        check(wcodec_get_metadata(a_, i, k, &key, &value), nullptr);
        meta.append(nb::make_tuple(nb::str(key), nb::str(value)));
      }
      out.append(nb::make_tuple(nb::str(f.name), nb::str(f.kind), f.size, f.first_tensor, f.tensor_count, meta));
    }
    return out;
  }

  // [(name, dtype, shape, byte_size, file, rows, row_bytes, representation, codec, stored_size, chunk_count,
  //   levels)]
  nb::list tensors() const {
    nb::list out;
    for (size_t i = 0; i < wcodec_tensor_count(live()); ++i) {
      wcodec_tensor_info t = WCODEC_TENSOR_INFO_INIT;
      check(wcodec_get_tensor_info(a_, i, &t), nullptr);
      nb::list shape;
      for (uint32_t d = 0; d < t.rank; ++d) shape.append(t.shape[d]);
      out.append(nb::make_tuple(nb::str(t.name), nb::str(t.dtype), nb::tuple(shape), t.byte_size, t.file, t.rows,
                                t.row_bytes, nb::str(t.representation), nb::str(t.codec), t.stored_size,
                                t.chunk_count, t.levels));
    }
    return out;
  }

  // Decodes jobs [(tensor, address, bytes, dtype or None)] on the library's
  // threads. The caller (wcodec/_core.py) made each destination exactly the
  // tensor's size and keeps it alive across the call.
  // level: none, every tensor at its top; else each at that level (the
  // caller passes one its tensor has), one tensor at a time on the threads
  void decode_many(const std::vector<std::tuple<size_t, uintptr_t, size_t, std::optional<std::string>>>& jobs,
                   unsigned threads, std::optional<std::vector<uint32_t>> levels) const {
    live();
    char err[kErrLen] = {0};
    int rc = WCODEC_OK;
    if (levels) {
      if (levels->size() != jobs.size()) throw CallError{WCODEC_E_USAGE, "usage: one level a job"};
      nb::gil_scoped_release nogil;
      for (size_t j = 0; j < jobs.size() && rc == WCODEC_OK; ++j) {
        const auto& [t, p, n, dt] = jobs[j];
        rc = wcodec_decode_tensor_ex(a_, t, (*levels)[j], opt_cstr(dt), reinterpret_cast<void*>(p), n, threads, err,
                                     sizeof err);
      }
    } else {
      std::vector<wcodec_decode_job> js;
      js.reserve(jobs.size());
      for (const auto& [t, p, n, dt] : jobs) js.push_back({t, reinterpret_cast<void*>(p), n, opt_cstr(dt)});
      nb::gil_scoped_release nogil;
      rc = wcodec_decode_tensors(a_, js.data(), js.size(), threads, err, sizeof err);
    }
    check(rc, err);
  }

  void decode_rows(size_t tensor, uint64_t r0, uint64_t r1, uintptr_t dst, size_t len,
                   const std::optional<std::string>& dtype, unsigned threads, std::optional<uint32_t> level) const {
    live();
    char err[kErrLen] = {0};
    int rc;
    {
      nb::gil_scoped_release nogil;
      rc = wcodec_decode_rows_ex(a_, tensor, level ? *level : WCODEC_LEVEL_TOP, r0, r1, opt_cstr(dtype),
                                 reinterpret_cast<void*>(dst), len, threads, err, sizeof err);
    }
    check(rc, err);
  }

  // Budgets (wcodec.h): the model's steps, the step a budget affords and
  // its prefix's bytes, a tensor's level at a step.
  uint32_t step_count() const { return wcodec_step_count(live()); }
  std::tuple<uint32_t, uint64_t> budget_step(const std::string& budget) const {
    char err[kErrLen] = {0};
    uint32_t step = 0;
    uint64_t bytes = 0;
    check(wcodec_budget_step(live(), budget.c_str(), &step, &bytes, err, sizeof err), err);
    return {step, bytes};
  }
  uint32_t tensor_level_at(size_t tensor, uint32_t step) const { return wcodec_tensor_level_at(live(), tensor, step); }

  uint64_t chunks_decoded() const { return wcodec_chunks_decoded(live()); }
  void set_verify_chunks(bool on) { check(wcodec_set_verify_chunks(live(), on), nullptr); }

 private:
  wcodec_archive* live() const {
    if (!a_) throw CallError{WCODEC_E_USAGE, "usage: the archive is closed"};
    return a_;
  }
  void release_view() {
    if (has_view_) PyBuffer_Release(&view_);
    has_view_ = false;
  }
  wcodec_archive* a_ = nullptr;
  Py_buffer view_{};
  bool has_view_ = false;
};

wcodec_pack_options pack_options(unsigned threads, bool force, const std::optional<std::string>& codec, int level,
                                 uint32_t chunk_size, double bits, const std::optional<std::string>& keep,
                                 const std::optional<std::string>& sensitivity, uint64_t min_elements,
                                 const std::optional<std::string>& parallel,
                                 const std::optional<std::string>& calib, bool act_order,
                                 const std::optional<std::string>& scheme,
                                 const std::optional<std::string>& inline_small, bool exact,
                                 unsigned refine, const std::optional<std::string>& block, unsigned block_rank,
                                 unsigned refine_factor) {
  wcodec_pack_options o = WCODEC_PACK_OPTIONS_INIT;
  o.exact = exact ? 1 : 0;
  o.refine = refine;
  o.block = opt_cstr(block);
  o.block_rank = block_rank;
  o.refine_factor = refine_factor;
  o.scheme = opt_cstr(scheme);
  o.inline_small = opt_cstr(inline_small);
  o.calib = opt_cstr(calib);
  o.no_act_order = act_order ? 0 : 1;
  o.parallel = opt_cstr(parallel);
  o.threads = threads;
  o.force = force;
  o.codec = opt_cstr(codec);
  o.zstd_level = level;
  o.chunk_size = chunk_size;
  o.bits = bits;
  o.keep = opt_cstr(keep);
  o.sensitivity = opt_cstr(sensitivity);
  o.min_elements = min_elements;
  return o;
}

nb::dict pack_result(const wcodec_pack_result& r) {
  nb::dict d;
  d["input_bytes"] = r.input_bytes;
  d["output_bytes"] = r.output_bytes;
  d["weights"] = r.weights;
  d["lossy_tensors"] = r.lossy_tensors;
  d["lossy_bits_per_weight"] = r.lossy_bits_per_weight;
  return d;
}

// A pack call (`call(result, err, err_len)`) with the GIL released; its
// figures as a dict, or the error raised.
template <class Call>
nb::dict run_pack(Call&& call) {
  wcodec_pack_result r = WCODEC_PACK_RESULT_INIT;
  char err[kErrLen] = {0};
  int rc;
  {
    nb::gil_scoped_release nogil;
    rc = call(&r, err, sizeof err);
  }
  check(rc, err);
  return pack_result(r);
}

}  // namespace

NB_MODULE(_wcodec, m) {
  m.doc() = "wcodec's C API for Python (use the wcodec package, not this module)";

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const CallError& e) {
      nb::object exc = nb::module_::import_("wcodec._errors").attr("from_code")(e.code, e.message);
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
    }
  });

  m.def("version", [] { return std::string(wcodec_version_string()); });
  m.def("error_name", [](int code) { return std::string(wcodec_error_name(code)); });

  nb::class_<Archive>(m, "Archive")
      .def(nb::init<const std::string&>(), nb::arg("path"))
      .def(nb::init<nb::handle, const std::string&>(), nb::arg("buffer"), nb::arg("name"))
      .def("close", &Archive::close)
      .def_prop_ro("closed", &Archive::closed)
      .def("files", &Archive::files)
      .def("tensors", &Archive::tensors)
      .def("decode_many", &Archive::decode_many, nb::arg("jobs"), nb::arg("threads") = 0,
           nb::arg("levels").none() = nb::none())
      .def("decode_rows", &Archive::decode_rows, nb::arg("tensor"), nb::arg("row_begin"), nb::arg("row_end"),
           nb::arg("dst"), nb::arg("nbytes"), nb::arg("dtype").none() = nb::none(), nb::arg("threads") = 0,
           nb::arg("level").none() = nb::none())
      .def("step_count", &Archive::step_count)
      .def("budget_step", &Archive::budget_step, nb::arg("budget"))
      .def("tensor_level_at", &Archive::tensor_level_at, nb::arg("tensor"), nb::arg("step"))
      .def("chunks_decoded", &Archive::chunks_decoded)
      .def("set_verify_chunks", &Archive::set_verify_chunks, nb::arg("on"));

  m.def(
      "pack",
      [](const std::string& src, const std::optional<std::string>& dst, unsigned threads, bool force,
         const std::optional<std::string>& codec, int level, uint32_t chunk_size, double bits,
         const std::optional<std::string>& keep, const std::optional<std::string>& sensitivity,
         uint64_t min_elements, const std::optional<std::string>& parallel, const std::optional<std::string>& calib,
         bool act_order, const std::optional<std::string>& scheme, const std::optional<std::string>& inline_small,
         bool exact, unsigned refine, const std::optional<std::string>& block, unsigned block_rank,
         unsigned refine_factor) {
        const wcodec_pack_options o =
            pack_options(threads, force, codec, level, chunk_size, bits, keep, sensitivity, min_elements, parallel,
                         calib, act_order, scheme, inline_small, exact, refine, block, block_rank, refine_factor);
        return run_pack([&](wcodec_pack_result* r, char* err, size_t n) {
          return wcodec_pack(src.c_str(), opt_cstr(dst), &o, r, err, n);
        });
      },
      nb::arg("src"), nb::arg("dst").none(), nb::arg("threads"), nb::arg("force"), nb::arg("codec").none(),
      nb::arg("level"), nb::arg("chunk_size"), nb::arg("bits"), nb::arg("keep").none(),
      nb::arg("sensitivity").none(), nb::arg("min_elements"), nb::arg("parallel").none(), nb::arg("calib").none(),
      nb::arg("act_order"), nb::arg("scheme").none(), nb::arg("inline_small").none(), nb::arg("exact"),
      nb::arg("refine"), nb::arg("block").none(), nb::arg("block_rank"), nb::arg("refine_factor"));

  m.def(
      "pack_memory",
      [](nb::handle data, const std::string& name, const std::string& dst, unsigned threads, bool force,
         const std::optional<std::string>& codec, int level, uint32_t chunk_size, double bits,
         const std::optional<std::string>& keep, const std::optional<std::string>& sensitivity,
         uint64_t min_elements, const std::optional<std::string>& parallel, const std::optional<std::string>& calib,
         bool act_order, const std::optional<std::string>& scheme, const std::optional<std::string>& inline_small,
         bool exact, unsigned refine, const std::optional<std::string>& block, unsigned block_rank,
         unsigned refine_factor) {
        Py_buffer view;
        if (PyObject_GetBuffer(data.ptr(), &view, PyBUF_SIMPLE) != 0) throw nb::python_error();
        const wcodec_pack_options o =
            pack_options(threads, force, codec, level, chunk_size, bits, keep, sensitivity, min_elements, parallel,
                         calib, act_order, scheme, inline_small, exact, refine, block, block_rank, refine_factor);
        struct Release {  // the buffer goes back on every way out
          Py_buffer* v;
          ~Release() { PyBuffer_Release(v); }
        } release{&view};
        return run_pack([&](wcodec_pack_result* r, char* err, size_t n) {
          return wcodec_pack_memory(view.buf, size_t(view.len), name.c_str(), dst.c_str(), &o, r, err, n);
        });
      },
      nb::arg("data"), nb::arg("name"), nb::arg("dst"), nb::arg("threads"), nb::arg("force"),
      nb::arg("codec").none(), nb::arg("level"), nb::arg("chunk_size"), nb::arg("bits"), nb::arg("keep").none(),
      nb::arg("sensitivity").none(), nb::arg("min_elements"), nb::arg("parallel").none(), nb::arg("calib").none(),
      nb::arg("act_order"), nb::arg("scheme").none(), nb::arg("inline_small").none(), nb::arg("exact"),
      nb::arg("refine"), nb::arg("block").none(), nb::arg("block_rank"), nb::arg("refine_factor"));

  m.def(
      "unpack",
      [](const std::string& src, const std::optional<std::string>& dst, unsigned threads, bool force) {
        char err[kErrLen] = {0}, written[4096] = {0};
        int rc;
        {
          nb::gil_scoped_release nogil;
          rc = wcodec_unpack(src.c_str(), opt_cstr(dst), threads, force, written, sizeof written, err, sizeof err);
        }
        check(rc, err);
        return std::string(written);
      },
      nb::arg("src"), nb::arg("dst").none(), nb::arg("threads"), nb::arg("force"));

  m.def(
      "unpack_file",
      [](const std::string& src, const std::string& name, const std::optional<std::string>& dst, unsigned threads,
         bool force) {
        char err[kErrLen] = {0}, written[4096] = {0};
        int rc;
        {
          nb::gil_scoped_release nogil;
          rc = wcodec_unpack_file(src.c_str(), name.c_str(), opt_cstr(dst), threads, force, written, sizeof written,
                                  err, sizeof err);
        }
        check(rc, err);
        return std::string(written);
      },
      nb::arg("src"), nb::arg("name"), nb::arg("dst").none(), nb::arg("threads"), nb::arg("force"));

  m.def(
      "verify",
      [](const std::string& src, unsigned threads) {
        uint64_t chunks = 0, bytes = 0;
        char err[kErrLen] = {0};
        int rc;
        {
          nb::gil_scoped_release nogil;
          rc = wcodec_verify(src.c_str(), threads, &chunks, &bytes, err, sizeof err);
        }
        check(rc, err);
        return std::make_tuple(chunks, bytes);
      },
      nb::arg("src"), nb::arg("threads"));
}
