// The Python module: producers, zero-copy claims, and transactions across
// logs.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "py_common.h"
#include "shmlog/log.h"

namespace shmlog_py {
namespace {

struct PyClaim {
  std::shared_ptr<shmlog::Producer> producer;
  shmlog::Claim claim;
  py::object value;  // the writable memoryviews handed out
  py::object key;
  bool open = true;
  void finish() {
    open = false;
    if (!value.is_none()) value.attr("release")();
    if (!key.is_none()) key.attr("release")();
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

// The C++ producers of a Python sequence, for a transaction across logs.
std::vector<shmlog::Producer*> participants(const std::vector<PyProducer*>& producers) {
  std::vector<shmlog::Producer*> all;
  for (std::size_t i = 0; i < producers.size(); ++i) {
    if (producers[i] == nullptr) throw py::type_error("producers[" + std::to_string(i) + "] is None");
    for (std::size_t j = 0; j < i; ++j) {
      if (producers[j] == producers[i]) {
        throw py::value_error("producers[" + std::to_string(j) + "] and producers[" + std::to_string(i) +
                              "] are the same producer (one per log)");
      }
    }
    all.push_back(&producers[i]->get());
  }
  return all;
}

// Raises `type` with `message` and an `appended` attribute (append_batch).
[[noreturn]] void raise_with_count(const py::object& type, const std::string& message, std::size_t appended) {
  py::object e = type(message);
  e.attr("appended") = appended;
  PyErr_SetObject(type.ptr(), e.ptr());
  throw py::error_already_set();
}

}  // namespace

void bind_producer(py::module_& m, py::class_<PyLog>& log) {
  py::class_<PyClaim>(m, "Claim", "Space claimed in the log: write into .value, then commit() (or use `with`).")
      .def_readonly("value", &PyClaim::value)
      .def_readonly("key", &PyClaim::key)
      .def_property_readonly("partition", [](const PyClaim& c) { return c.claim.partition(); })
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
          [](PyProducer& self, py::buffer value, std::optional<py::buffer> key, std::optional<std::uint32_t> partition,
             std::optional<std::uint64_t> timestamp_ns) {
            auto& p = self.get();
            py::buffer_info vi, ki;
            shmlog::Bytes v = as_span(value, vi);
            shmlog::Bytes k = key ? as_span(*key, ki) : shmlog::Bytes();
            shmlog::AppendResult r;
            {
              py::gil_scoped_release unlocked;  // may wait for ring space
              if (timestamp_ns) {
                const std::uint32_t to = partition ? *partition : key ? p.partition_for(k) : self.default_partition;
                r = p.append_at(to, k, v, *timestamp_ns);
              } else if (partition) {
                r = p.append_to(*partition, k, v);
              } else if (key) {
                r = p.append(k, v);
              } else {
                r = p.append(v);
              }
            }
            if (r.error == shmlog::Errc::kBadPartition) bad_partition(r.partition, self.partitions);
            if (!r) raise_errc(r.error);
            return r.offset;
          },
          py::arg("value"), py::arg("key") = py::none(), py::arg("partition") = py::none(),
          py::arg("timestamp_ns") = py::none(),
          "Copies a bytes-like value (and key) into a new record; returns its offset. With timestamp_ns, the "
          "record carries that time (ns since the Unix epoch) rather than the clock's.")
      .def(
          "append_batch",
          [](PyProducer& self, const std::vector<py::buffer>& values) {
            auto& p = self.get();
            std::vector<py::buffer_info> keep(values.size());
            std::vector<shmlog::Bytes> batch;
            batch.reserve(values.size());
            for (std::size_t i = 0; i < values.size(); ++i) batch.push_back(as_span(values[i], keep[i]));
            shmlog::AppendResult last;
            std::size_t n = 0;
            {
              py::gil_scoped_release unlocked;  // may wait for ring space
              n = p.append_batch(batch, &last);
            }
            if (n < batch.size()) {
              const std::pair<py::object, std::string> e = errc_exception(last.error);
              raise_with_count(e.first, e.second + " (appended " + std::to_string(n) + " of " +
                                            std::to_string(batch.size()) + ")", n);
            }
            return n;
          },
          py::arg("values"),
          "Appends each value in order to the default partition (one timestamp for the batch); returns how many. "
          "Stops at the first error and raises it, with `appended` saying how many went in.")
      .def(
          "claim",
          [](PyProducer& self, std::size_t size, std::size_t key_size, std::optional<std::uint32_t> partition) {
            auto& p = self.get();
            shmlog::Claim c = partition ? p.claim_in(*partition, size, key_size) : p.claim(size, key_size);
            if (c.error() == shmlog::Errc::kBadPartition) bad_partition(partition.value_or(0), self.partitions);
            if (!c) raise_errc(c.error());
            PyClaim claim{self.producer, c, py::none(), py::none()};
            claim.value = make_view(self.producer, c.value().data(), c.value().size(), true);
            claim.key = make_view(self.producer, c.key().data(), c.key().size(), true);
            return claim;
          },
          py::arg("size"), py::arg("key_size") = 0, py::arg("partition") = py::none(),
          "Claims `size` bytes (and `key_size` for a key) in place: writable memoryviews to commit.")
      .def(
          "partition_for", [](PyProducer& self, py::buffer key) {
            py::buffer_info ki;
            return self.get().partition_for(as_span(key, ki));
          },
          py::arg("key"), "The partition a record with this key goes to.")
      .def(
          "wait_durable",
          [](PyProducer& self, std::uint32_t partition, std::uint64_t end, double timeout) {
            auto& p = self.get();
            const auto limit = to_duration(timeout, "timeout");
            if (partition >= self.partitions) bad_partition(partition, self.partitions);  // C++ says kNotDurable
            shmlog::Errc e;
            {
              py::gil_scoped_release unlocked;
              e = p.wait_durable(partition, end, limit);
            }
            if (e == shmlog::Errc::kNotDurable) return false;
            if (e != shmlog::Errc::kOk) raise_errc(e);
            return true;
          },
          py::arg("partition"), py::arg("end"), py::arg("timeout") = 10.0,
          "Waits until the partition's records below `end` (an append's offset + 1) are durable: True, or False "
          "after `timeout` seconds or on a log without durability.")
      .def(
          "append_unique",
          [](PyProducer& self, py::buffer token, py::buffer value, std::optional<py::buffer> key,
             std::optional<std::uint32_t> partition) {
            auto& p = self.get();
            py::buffer_info ti, vi, ki;
            shmlog::Bytes t = as_span(token, ti);
            shmlog::Bytes v = as_span(value, vi);
            shmlog::Bytes k = key ? as_span(*key, ki) : shmlog::Bytes();
            shmlog::AppendResult r;
            {
              py::gil_scoped_release unlocked;
              r = partition ? p.append_unique_to(*partition, t, k, v) : p.append_unique(t, k, v);
            }
            if (r.error == shmlog::Errc::kBadPartition) bad_partition(r.partition, self.partitions);
            if (!r) raise_errc(r.error);
            return r.offset;
          },
          py::arg("token"), py::arg("value"), py::arg("key") = py::none(), py::arg("partition") = py::none(),
          "Appends unless a record with `token` is in the log's token window (then raises Duplicate).")
      .def_property(
          "next_sequence", [](PyProducer& self) { return self.get().next_sequence(); },
          [](PyProducer& self, std::uint64_t s) { self.get().set_next_sequence(s); })
      .def_property_readonly("last_sequence", [](PyProducer& self) { return self.get().last_sequence(); })
      .def_property_readonly("id", [](PyProducer& self) { return self.get().id(); })
      .def_property_readonly("epoch", [](PyProducer& self) { return self.get().epoch(); })
      .def_property_readonly("in_transaction", [](PyProducer& self) { return self.get().in_transaction(); })
      .def(
          "add_offsets",
          [](PyProducer& self, const std::string& group, std::uint32_t partition, std::uint64_t offset) {
            auto& p = self.get();
            if (!p.in_transaction()) raise(g_error, "no transaction is open to add offsets to");
            p.add_offsets(group, partition, offset);
          },
          py::arg("group"), py::arg("partition"), py::arg("offset"),
          "Consume-process-produce: commits `group`'s offset for `partition` (of the log it reads) with the open "
          "transaction.")
      .def(
          "committed_offsets", [](PyProducer& self, const std::string& group) { return self.get().committed_offsets(group); },
          py::arg("group"), "The (partition, offset) pairs of `group` committed by the last committed transaction.")
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
             const std::string& producer_id, bool transactional, const std::string& acks, bool timestamps,
             const std::string& wait, std::optional<int> core, double transaction_timeout, double durable_timeout) {
            shmlog::ProducerOptions o;
            if (acks == "durable") {
              o.acks = shmlog::ProducerOptions::Acks::kDurable;
            } else if (acks != "memory") {
              throw py::value_error("acks must be 'memory' or 'durable', got '" + acks + "'");
            }
            o.partition = partition;
            o.exclusive = exclusive;
            o.backpressure_timeout = to_duration(timeout, "timeout");
            o.name = name;
            o.producer_id = producer_id;
            o.transactional = transactional;
            o.timestamps = timestamps;
            o.wait = parse_wait(wait);
            o.core = core.value_or(-1);
            o.transaction_timeout =
                std::chrono::duration_cast<std::chrono::milliseconds>(to_duration(transaction_timeout, "transaction_timeout"));
            o.durable_timeout = to_duration(durable_timeout, "durable_timeout");
            auto& l = self.get();
            return PyProducer{std::make_shared<shmlog::Producer>(unwrap(l.producer(o))), l.options().partitions,
                              o.partition};
          },
          py::arg("partition") = 0, py::arg("exclusive") = false, py::arg("timeout") = 10.0, py::arg("name") = "python",
          py::arg("producer_id") = "", py::arg("transactional") = false, py::arg("acks") = "memory",
          py::arg("timestamps") = true, py::arg("wait") = "backoff", py::arg("core") = py::none(),
          py::arg("transaction_timeout") = 60.0, py::arg("durable_timeout") = 10.0);

  m.def(
      "commit_transactions",
      [](const std::vector<PyProducer*>& producers) {
        const std::vector<shmlog::Producer*> all = participants(producers);
        shmlog::Status s;
        {
          py::gil_scoped_release unlocked;  // may wait for ring space in each log
          s = shmlog::Producer::commit_transactions(all);
        }
        if (!s.ok()) raise_status(s);
      },
      py::arg("producers"),
      "Commits a transaction spanning several logs: one transactional producer per log, the same producer_id in "
      "each, a transaction begun on each. read_committed readers of every log see all of it or none, also if this "
      "process dies half-way. A commit that fails aborts everywhere and raises Fenced with the reason.");
  m.def(
      "abort_transactions",
      [](const std::vector<PyProducer*>& producers) {
        const std::vector<shmlog::Producer*> all = participants(producers);
        shmlog::Status s;
        {
          py::gil_scoped_release unlocked;
          s = shmlog::Producer::abort_transactions(all);
        }
        if (!s.ok()) raise_status(s);
      },
      py::arg("producers"), "Aborts a transaction spanning several logs (see commit_transactions).");
}

}  // namespace shmlog_py
