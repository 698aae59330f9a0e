// The Python module: producers and zero-copy claims.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "py_common.h"
#include "shmlog/log.h"

namespace shmlog_py {
namespace {

struct PyClaim {
  std::shared_ptr<shmlog::Producer> producer;
  shmlog::Claim claim;
  py::object value;  // the writable memoryview handed out
  bool open = true;
  void finish() {
    open = false;
    if (!value.is_none()) value.attr("release")();
  }
  std::uint64_t commit() {
    if (!open) raise(g_error, "the claim is already committed or aborted");
    finish();
    auto r = producer->commit(claim);
    if (!r) raise_errc(r.error);
    return r.offset;
  }
  void abort() {
    if (!open) return;
    finish();
    producer->abort(claim);
  }
};

}  // namespace

void bind_producer(py::module_& m, py::class_<PyLog>& log) {
  py::class_<PyClaim>(m, "Claim", "Space claimed in the log: write into .value, then commit() (or use `with`).")
      .def_readonly("value", &PyClaim::value)
      .def_property_readonly("offset", [](const PyClaim& c) { return c.claim.offset(); })
      .def("commit", &PyClaim::commit, "Publishes the record; returns its offset.")
      .def("abort", &PyClaim::abort)
      .def("__enter__", [](PyClaim& c) -> PyClaim& { return c; }, py::return_value_policy::reference)
      .def("__exit__", [](PyClaim& c, py::object type, py::object, py::object) {
        if (!c.open) return false;
        if (type.is_none()) {
          c.commit();
        } else {
          c.abort();
        }
        return false;
      });

  py::class_<PyProducer>(m, "Producer", "Appends records. One thread at a time.")
      .def(
          "append",
          [](PyProducer& self, py::buffer value, std::optional<py::buffer> key, std::optional<std::uint32_t> partition) {
            auto& p = self.get();
            py::buffer_info vi, ki;
            shmlog::Bytes v = as_span(value, vi);
            shmlog::Bytes k = key ? as_span(*key, ki) : shmlog::Bytes();
            shmlog::AppendResult r;
            {
              py::gil_scoped_release unlocked;  // may wait for ring space
              if (partition) {
                r = p.append_to(*partition, k, v);
              } else if (key) {
                r = p.append(k, v);
              } else {
                r = p.append(v);
              }
            }
            if (!r) raise_errc(r.error);
            return r.offset;
          },
          py::arg("value"), py::arg("key") = py::none(), py::arg("partition") = py::none(),
          "Copies a bytes-like value (and key) into a new record; returns its offset.")
      .def(
          "claim",
          [](PyProducer& self, std::size_t size) {
            auto& p = self.get();
            shmlog::Claim c = p.claim(size);
            if (!c) raise_errc(c.error());
            PyClaim claim{self.producer, c, py::none()};
            claim.value = make_view(self.producer, c.value().data(), c.value().size(), true);
            return claim;
          },
          py::arg("size"), "Claims `size` bytes in place: a writable memoryview to commit.")
      .def(
          "append_unique",
          [](PyProducer& self, py::buffer token, py::buffer value, std::optional<py::buffer> key) {
            auto& p = self.get();
            py::buffer_info ti, vi, ki;
            shmlog::Bytes t = as_span(token, ti);
            shmlog::Bytes v = as_span(value, vi);
            shmlog::Bytes k = key ? as_span(*key, ki) : shmlog::Bytes();
            shmlog::AppendResult r;
            {
              py::gil_scoped_release unlocked;
              r = p.append_unique(t, k, v);
            }
            if (!r) raise_errc(r.error);
            return r.offset;
          },
          py::arg("token"), py::arg("value"), py::arg("key") = py::none(),
          "Appends unless a record with `token` is in the log's token window (then raises Duplicate).")
      .def_property(
          "next_sequence", [](PyProducer& self) { return self.get().next_sequence(); },
          [](PyProducer& self, std::uint64_t s) { self.get().set_next_sequence(s); })
      .def_property_readonly("last_sequence", [](PyProducer& self) { return self.get().last_sequence(); })
      .def("begin_transaction", [](PyProducer& self) {
        shmlog::Status s = self.get().begin_transaction();
        if (!s.ok()) raise_status(s);
      })
      .def("commit_transaction", [](PyProducer& self) {
        shmlog::Status s = self.get().commit_transaction();
        if (!s.ok()) raise_status(s);
      })
      .def("abort_transaction", [](PyProducer& self) {
        shmlog::Status s = self.get().abort_transaction();
        if (!s.ok()) raise_status(s);
      })
      .def("close", [](PyProducer& self) { self.producer.reset(); })
      .def("__enter__", [](PyProducer& p) -> PyProducer& { return p; }, py::return_value_policy::reference)
      .def("__exit__", [](PyProducer& p, py::object, py::object, py::object) { p.producer.reset(); });
  log.def(
          "producer",
          [](PyLog& self, std::uint32_t partition, bool exclusive, double timeout, const std::string& name,
             const std::string& producer_id, bool transactional, const std::string& acks) {
            shmlog::ProducerOptions o;
            if (acks == "durable") {
              o.acks = shmlog::ProducerOptions::Acks::kDurable;
            } else if (acks != "memory") {
              throw py::value_error("acks must be 'memory' or 'durable', got '" + acks + "'");
            }
            o.partition = partition;
            o.exclusive = exclusive;
            o.backpressure_timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(timeout));
            o.name = name;
            o.producer_id = producer_id;
            o.transactional = transactional;
            return PyProducer{std::make_shared<shmlog::Producer>(unwrap(self.get().producer(o)))};
          },
          py::arg("partition") = 0, py::arg("exclusive") = false, py::arg("timeout") = 10.0, py::arg("name") = "python",
          py::arg("producer_id") = "", py::arg("transactional") = false, py::arg("acks") = "memory");
}

}  // namespace shmlog_py
