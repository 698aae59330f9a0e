// The Python module: the exactly-once file sink (shmlog/file_sink.h).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "py_common.h"
#include "shmlog/file_sink.h"
#include "shmlog/log.h"

namespace shmlog_py {
namespace {

struct PyFileSink {
  std::optional<shmlog::FileSink> sink;
  std::uint32_t partitions = 0;  // the log's: FileSink ignores others, Python names them
  shmlog::FileSink& get() {
    if (!sink) raise(g_closed, "the file sink is closed");
    return *sink;
  }
  void check(std::uint32_t partition) const {
    if (partition >= partitions) bad_partition(partition, partitions);
  }
};

}  // namespace

void bind_file_sink(py::module_& m) {
  py::class_<PyFileSink>(m, "FileSink",
                         "Exactly-once output to a file: the output and the offsets it came from advance together "
                         "(FILE and FILE.offsets), so a consumer killed at any point and restarted writes every "
                         "record once. One thread at a time; one sink per file.")
      .def(py::init([](const std::string& path, PyLog& log, const std::string& survives) {
             shmlog::FileSink::Survives s;
             if (survives == "host-crash") {
               s = shmlog::FileSink::Survives::kHostCrash;
             } else if (survives == "process-crash") {
               s = shmlog::FileSink::Survives::kProcessCrash;
             } else {
               throw py::value_error("survives must be 'host-crash' or 'process-crash', got '" + survives + "'");
             }
             auto& l = log.get();
             PyFileSink sink;
             sink.sink.emplace(unwrap(shmlog::FileSink::open(path, l, s)));
             sink.partitions = l.options().partitions;
             return sink;
           }),
           py::arg("path"), py::arg("log"), py::arg("survives") = "host-crash",
           "Opens or creates FILE and FILE.offsets; cuts FILE back to its last checkpoint. survives: 'host-crash' "
           "(checkpoints are synced) or 'process-crash' (no syncs).")
      .def(
          "offset",
          [](PyFileSink& self, std::uint32_t partition) {
            self.check(partition);
            return self.get().offset(partition);
          },
          py::arg("partition"), "Where reading of `partition` resumes (from the last checkpoint), or None.")
      .def(
          "write",
          [](PyFileSink& self, py::buffer data) {
            py::buffer_info keep;
            const shmlog::Bytes bytes = as_span(data, keep);
            self.get().write(bytes);
          },
          py::arg("data"), "Buffers output (any bytes-like object); it reaches FILE at the next checkpoint.")
      .def(
          "advance",
          [](PyFileSink& self, std::uint32_t partition, std::uint64_t next_offset) {
            self.check(partition);
            self.get().advance(partition, next_offset);
          },
          py::arg("partition"), py::arg("next_offset"), "Records that `partition` has been consumed up to `next_offset`.")
      .def(
          "checkpoint",
          [](PyFileSink& self) {
            auto& sink = self.get();
            shmlog::Status s;
            {
              py::gil_scoped_release unlocked;  // writes and syncs
              s = sink.checkpoint();
            }
            if (!s.ok()) raise_status(s);
          },
          "Writes the buffered output, then a checkpoint naming the new file length and the offsets.")
      .def_property_readonly("file_length", [](PyFileSink& self) { return self.get().file_length(); },
                             "FILE's length up to the last checkpoint.")
      .def_property_readonly("truncated_at_open", [](PyFileSink& self) { return self.get().truncated_at_open(); },
                             "Bytes cut off FILE at open: output written after the last checkpoint.")
      .def("close", [](PyFileSink& self) { self.sink.reset(); }, "Closes; output since the last checkpoint is dropped.")
      .def("__enter__", [](PyFileSink& s) -> PyFileSink& { return s; }, py::return_value_policy::reference)
      .def("__exit__", [](PyFileSink& s, py::object, py::object, py::object) { s.sink.reset(); });
}

}  // namespace shmlog_py
