// The Python module `shmlog`: logs, producers and consumers, with records
// handed out as read-only memoryviews into shared memory (zero-copy). A
// view is released at the consumer's next poll or commit, so that using it
// afterwards raises ValueError instead of reading reused memory. In a group
// at-least-once, a poll's records are committed only then (or at close):
// a Python process that dies before has not committed what it was handed.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "py_common.h"
#include "shmlog/log.h"

namespace shmlog_py {

py::object g_error, g_not_found, g_already_exists, g_corrupt, g_version_mismatch, g_no_space, g_busy, g_too_large,
    g_backpressure, g_revoked, g_closed, g_duplicate, g_fenced;


[[noreturn]] void raise(const py::object& type, const std::string& message) {
  PyErr_SetString(type.ptr(), message.c_str());
  throw py::error_already_set();
}

[[noreturn]] void raise_status(const shmlog::Status& s) {
  using C = shmlog::Status::Code;
  switch (s.code()) {
    case C::kNotFound: raise(g_not_found, s.message());
    case C::kAlreadyExists: raise(g_already_exists, s.message());
    case C::kCorrupt: raise(g_corrupt, s.message());
    case C::kVersionMismatch: raise(g_version_mismatch, s.message());
    case C::kNoSpace: raise(g_no_space, s.message());
    case C::kBusy: raise(g_busy, s.message());
    case C::kAborted: raise(g_fenced, s.message());
    case C::kInvalidArgument: throw py::value_error(s.message());
    default: raise(g_error, s.message());
  }
}

[[noreturn]] void raise_errc(shmlog::Errc e) {
  switch (e) {
    case shmlog::Errc::kTooLarge: raise(g_too_large, "record larger than the log's max record size");
    case shmlog::Errc::kBackpressureTimeout: raise(g_backpressure, "ring full: no consumer group made room in time");
    case shmlog::Errc::kRevoked: raise(g_revoked, "claim revoked after the claim timeout");
    case shmlog::Errc::kBadPartition: throw py::value_error("partition out of range");
    case shmlog::Errc::kDuplicate: raise(g_duplicate, shmlog::errc_name(e));
    case shmlog::Errc::kFenced: raise(g_fenced, shmlog::errc_name(e));
    default: raise(g_error, shmlog::errc_name(e));
  }
}

py::memoryview make_view(std::shared_ptr<void> owner, const std::byte* data, std::size_t size, bool writable) {
  py::object view = py::cast(View{std::move(owner), data, size, writable});
  return py::memoryview(view);
}

shmlog::Bytes as_span(const py::buffer& b, py::buffer_info& keep) {
  keep = b.request();
  if (keep.ndim > 1 && !(keep.strides.empty() || keep.strides.back() == keep.itemsize)) {
    throw py::value_error("the buffer must be contiguous");
  }
  return {static_cast<const std::byte*>(keep.ptr), static_cast<std::size_t>(keep.size * keep.itemsize)};
}

// The module: exceptions, then each class.
void bind_module(py::module_& m) {
  m.doc() = "shmlog: a shared-memory log for low-latency IPC between processes on one host";
  m.attr("__version__") = "0.1.0";
  g_error = py::reinterpret_borrow<py::object>(PyErr_NewException("shmlog.Error", PyExc_RuntimeError, nullptr));
  auto sub = [&](const char* name, const char* doc) {
    py::object e = py::reinterpret_steal<py::object>(
        PyErr_NewExceptionWithDoc((std::string("shmlog.") + name).c_str(), doc, g_error.ptr(), nullptr));
    m.attr(name) = e;
    return e;
  };
  m.attr("Error") = g_error;
  g_not_found = sub("NotFound", "No such log, or not a shmlog log.");
  g_already_exists = sub("AlreadyExists", "A log already exists there.");
  g_corrupt = sub("Corrupt", "Shared memory or metadata that cannot be right.");
  g_version_mismatch = sub("VersionMismatch", "A format version this shmlog does not read.");
  g_no_space = sub("NoSpace", "Not enough memory for the log.");
  g_busy = sub("Busy", "Producer ids, groups or members exhausted, or an exclusive writer present.");
  g_too_large = sub("TooLarge", "Record larger than the log's max record size.");
  g_backpressure = sub("BackpressureTimeout", "The ring stayed full past the producer's timeout.");
  g_revoked = sub("Revoked", "The claim stalled past the claim timeout and was abandoned.");
  g_duplicate = sub("Duplicate", "The record's sequence or token already reached the log; nothing was written.");
  g_fenced = sub("Fenced", "A newer instance of this producer id took over.");
  g_closed = sub("Closed", "The log, producer or consumer was closed.");
  py::class_<View>(m, "_View", py::buffer_protocol())
      .def_buffer([](View& v) {
        return py::buffer_info(const_cast<std::byte*>(v.data), 1, py::format_descriptor<std::uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(v.size)}, {1}, !v.writable);
      });
  py::class_<PyLog> log(m, "Log", "A log: a directory plus its shared memory.");
  bind_consumer(m, log);
  bind_producer(m, log);
  log
      .def_static(
          "create",
          [](const std::string& path, std::uint32_t partitions, std::uint64_t segment_size, std::uint32_t ring_segments,
             const std::string& policy, std::uint32_t max_record_size, bool checksums, std::optional<int> numa_node,
             const std::string& pages, const std::string& memory_dir, std::uint64_t token_window,
             const std::string& durability) {
            shmlog::LogOptions o;
            o.partitions = partitions;
            o.segment_size = segment_size;
            o.ring_segments = ring_segments;
            if (policy == "backpressure") {
              o.policy = shmlog::Policy::kBackpressure;
            } else if (policy == "overwrite") {
              o.policy = shmlog::Policy::kOverwrite;
            } else {
              throw py::value_error("policy must be 'backpressure' or 'overwrite', got '" + policy + "'");
            }
            o.max_record_size = max_record_size;
            o.checksums = checksums;
            o.numa_node = numa_node.value_or(-1);
            auto kind = shmlog::parse_pages(pages);
            if (!kind.ok()) throw py::value_error(kind.status().message());
            o.pages = *kind;
            o.memory_dir = memory_dir;
            o.token_window = token_window;
            auto d = shmlog::parse_durability(durability);
            if (!d.ok()) throw py::value_error(d.status().message());
            o.durability = *d;
            return PyLog{unwrap(shmlog::Log::create(path, o))};
          },
          py::arg("path"), py::arg("partitions") = 1, py::arg("segment_size") = 4u << 20, py::arg("ring_segments") = 16,
          py::arg("policy") = "backpressure", py::arg("max_record_size") = 1u << 20, py::arg("checksums") = false,
          py::arg("numa_node") = std::nullopt, py::arg("pages") = "normal", py::arg("memory_dir") = "",
          py::arg("token_window") = 0, py::arg("durability") = "none")
      .def_static("open", [](const std::string& path) { return PyLog{unwrap(shmlog::Log::open(path))}; })
      .def_static("delete", [](const std::string& path) {
        shmlog::Status s = shmlog::Log::remove(path);
        if (!s.ok()) raise_status(s);
      })
      .def_property_readonly("path", [](PyLog& self) { return self.get().path(); })
      .def_property_readonly("partitions", [](PyLog& self) { return self.get().options().partitions; })
      .def("end_offset", [](PyLog& self, std::uint32_t p) {
        auto info = self.get().info();
        if (p >= info.partitions.size()) throw py::value_error("partition out of range");
        return info.partitions[p].end_offset;
      })
      .def("close", [](PyLog& self) { self.log.reset(); })
      .def("__enter__", [](PyLog& l) -> PyLog& { return l; }, py::return_value_policy::reference)
      .def("__exit__", [](PyLog& l, py::object, py::object, py::object) { l.log.reset(); });
}

}  // namespace shmlog_py

PYBIND11_MODULE(shmlog, m) { shmlog_py::bind_module(m); }
