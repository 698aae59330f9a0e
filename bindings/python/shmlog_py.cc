// The Python module `shmlog`: logs, producers and consumers, with records
// handed out as read-only memoryviews into shared memory (zero-copy). A
// view is released at the consumer's next poll or commit, so that using it
// afterwards raises ValueError instead of reading reused memory. In a group
// at-least-once, a poll's records are committed only then (or at close):
// a Python process that dies before has not committed what it was handed.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shmlog/log.h"

namespace py = pybind11;
using namespace std::chrono_literals;

namespace {

// Exception classes, created in the module init.
py::object g_error, g_not_found, g_already_exists, g_corrupt, g_version_mismatch, g_no_space, g_busy,
    g_too_large, g_backpressure, g_revoked, g_closed, g_duplicate, g_fenced;

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

template <class T>
T unwrap(shmlog::Result<T> r) {
  if (!r.ok()) raise_status(r.status());
  return std::move(r).value();
}

// A read-only byte span that keeps its owner (the consumer) alive: the
// exporter behind each memoryview handed out.
struct View {
  std::shared_ptr<void> owner;
  const std::byte* data;
  std::size_t size;
  bool writable;
};

py::memoryview make_view(std::shared_ptr<void> owner, const std::byte* data, std::size_t size, bool writable) {
  py::object view = py::cast(View{std::move(owner), data, size, writable});
  return py::memoryview(view);
}

struct PyLog {
  std::optional<shmlog::Log> log;
  shmlog::Log& get() {
    if (!log) raise(g_closed, "the log is closed");
    return *log;
  }
};

struct PyProducer {
  std::shared_ptr<shmlog::Producer> producer;
  shmlog::Producer& get() {
    if (!producer) raise(g_closed, "the producer is closed");
    return *producer;
  }
};

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

struct PyRecord {
  std::uint32_t partition;
  std::uint64_t offset;
  std::uint64_t timestamp_ns;
  std::uint16_t producer_id;
  std::uint64_t sequence;
  py::object key;
  py::object value;
};

struct PyConsumer {
  std::shared_ptr<shmlog::Consumer> consumer;
  std::vector<py::object> handed_out;  // memoryviews to release at the next poll
  std::optional<double> idle_timeout;  // iteration stops after this long without records
  // At-least-once in a group: the engine runs in manual mode and a poll's
  // records are committed at the next poll (every commit_every records),
  // commit or close, after their views are released: Python has seen them
  // by then. A process that dies first gets them again.
  bool deferred = false;
  std::uint32_t commit_every = 1;
  std::map<std::uint32_t, std::uint64_t> pending;  // partition -> offset after the last record handed out
  std::size_t pending_records = 0;

  shmlog::Consumer& get() {
    if (!consumer) raise(g_closed, "the consumer is closed");
    return *consumer;
  }
  void release_views() {
    for (auto& v : handed_out) {
      try {
        v.attr("release")();
      } catch (py::error_already_set&) {
        // Still exported (e.g. numpy.frombuffer): the memory stays mapped.
      }
    }
    handed_out.clear();
  }
  void commit_pending(bool all) {
    if (pending.empty() || (!all && pending_records < commit_every)) return;
    // A partition a rebalance took meanwhile refuses: its new owner reads
    // those records again (at least once).
    for (const auto& [partition, offset] : pending) (void)consumer->commit(partition, offset);
    pending.clear();
    pending_records = 0;
  }
  // Releases the views, commits what was handed out, closes.
  void close() {
    release_views();
    if (consumer) commit_pending(true);
    consumer.reset();
  }
  py::list poll(std::size_t max, std::optional<double> timeout) {
    auto& c = get();
    release_views();
    commit_pending(false);
    std::vector<shmlog::Record> got;
    got.reserve(std::min<std::size_t>(max, 4096));
    auto handler = [&](const shmlog::Record& r) { got.push_back(r); };
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(timeout.value_or(0)));
    for (;;) {
      {
        py::gil_scoped_release unlocked;  // other Python threads run while we wait
        const auto left = deadline - std::chrono::steady_clock::now();
        if (!timeout || left <= std::chrono::steady_clock::duration::zero()) {
          c.poll(handler, max);
        } else {
          c.poll_wait(handler, max, std::min<std::chrono::nanoseconds>(left, 100ms));
        }
      }
      if (!got.empty() || !timeout || std::chrono::steady_clock::now() >= deadline) break;
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // Ctrl-C
    }
    py::list out;
    for (const auto& r : got) {
      PyRecord rec{r.partition, r.offset, r.timestamp_ns, r.producer_id, r.sequence,
                   make_view(consumer, r.key.data(), r.key.size(), false),
                   make_view(consumer, r.value.data(), r.value.size(), false)};
      handed_out.push_back(rec.key);
      handed_out.push_back(rec.value);
      out.append(py::cast(std::move(rec)));
      if (deferred) pending[r.partition] = r.next_offset;
    }
    if (deferred) pending_records += got.size();
    return out;
  }
};

shmlog::Bytes as_span(const py::buffer& b, py::buffer_info& keep) {
  keep = b.request();
  if (keep.ndim > 1 && !(keep.strides.empty() || keep.strides.back() == keep.itemsize)) {
    throw py::value_error("the buffer must be contiguous");
  }
  return {static_cast<const std::byte*>(keep.ptr), static_cast<std::size_t>(keep.size * keep.itemsize)};
}

shmlog::DeliveryMode parse_mode(const std::string& m) {
  if (m == "at-least-once") return shmlog::DeliveryMode::kAtLeastOnce;
  if (m == "at-most-once") return shmlog::DeliveryMode::kAtMostOnce;
  if (m == "manual") return shmlog::DeliveryMode::kManual;
  throw py::value_error("mode must be 'at-least-once', 'at-most-once' or 'manual', got '" + m + "'");
}

}  // namespace

PYBIND11_MODULE(shmlog, m) {
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

  py::class_<PyRecord>(m, "Record", "A record; key and value are read-only views valid until the next poll.")
      .def_readonly("partition", &PyRecord::partition)
      .def_readonly("offset", &PyRecord::offset)
      .def_readonly("timestamp_ns", &PyRecord::timestamp_ns)
      .def_readonly("producer_id", &PyRecord::producer_id)
      .def_readonly("sequence", &PyRecord::sequence)
      .def_readonly("key", &PyRecord::key)
      .def_readonly("value", &PyRecord::value)
      .def("__repr__", [](const PyRecord& r) {
        return "<shmlog.Record partition=" + std::to_string(r.partition) + " offset=" + std::to_string(r.offset) + ">";
      });

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

  py::class_<PyConsumer>(m, "Consumer", "Reads records. One thread at a time. Iterate, or call poll().")
      .def("poll", &PyConsumer::poll, py::arg("max") = 64, py::arg("timeout") = py::none(),
           "Up to `max` records; waits up to `timeout` seconds (None: no wait) for the first.")
      .def("commit",
           [](PyConsumer& self) {
             self.release_views();
             if (self.deferred) {
               self.get();  // a closed consumer raises
               self.commit_pending(true);
             } else {
               self.get().commit();
             }
           })
      .def("seek",
           [](PyConsumer& self, std::uint32_t partition, std::uint64_t offset) {
             shmlog::Status s = self.get().seek(partition, offset);
             if (!s.ok()) raise_status(s);
           })
      .def("position", [](PyConsumer& self, std::uint32_t partition) { return self.get().position(partition); })
      .def_property_readonly("lost_bytes", [](PyConsumer& self) { return self.get().lost_bytes(); })
      .def(
          "take_damage",
          [](PyConsumer& self) {
            py::list out;
            for (const shmlog::Damage& d : self.get().take_damage()) out.append(py::make_tuple(d.partition, d.from, d.to, d.what));
            return out;
          },
          "Damage stepped over since the last call (a missing or damaged segment file, a record that failed its "
          "checksum): a list of (partition, from, to, what); offsets [from, to) were skipped, `what` says where and why.")
      .def("close", &PyConsumer::close, "Commits what was handed out (at-least-once) and leaves the group.")
      .def("__enter__", [](PyConsumer& c) -> PyConsumer& { return c; }, py::return_value_policy::reference)
      .def("__exit__", [](PyConsumer& self, py::object, py::object, py::object) { self.close(); })
      .def("__iter__", [](PyConsumer& self) -> PyConsumer& { return self; }, py::return_value_policy::reference)
      .def("__next__", [](PyConsumer& self) {
        // One record at a time; stops after idle_timeout seconds without one.
        const double wait = self.idle_timeout.value_or(3600.0);
        for (;;) {
          py::list got = self.poll(1, wait);
          if (py::len(got) > 0) return got[0].cast<py::object>();
          if (self.idle_timeout) throw py::stop_iteration();
        }
      });

  py::class_<PyLog>(m, "Log", "A log: a directory plus its shared memory.")
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
      .def(
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
          py::arg("producer_id") = "", py::arg("transactional") = false, py::arg("acks") = "memory")
      .def(
          "consumer",
          [](PyLog& self, const std::string& group, const std::string& mode, std::uint32_t commit_every, py::object start,
             std::optional<double> idle_timeout, const std::string& isolation) {
            shmlog::ConsumerOptions o;
            o.group = group;
            if (isolation == "read_committed") {
              o.isolation = shmlog::Isolation::kReadCommitted;
            } else if (isolation != "read_uncommitted") {
              throw py::value_error("isolation must be 'read_committed' or 'read_uncommitted', got '" + isolation + "'");
            }
            o.mode = parse_mode(mode);
            o.commit_every = commit_every;
            const bool deferred = o.mode == shmlog::DeliveryMode::kAtLeastOnce && !group.empty();
            if (deferred) o.mode = shmlog::DeliveryMode::kManual;  // committed by PyConsumer, after Python saw them
            if (py::isinstance<py::int_>(start)) {
              o.from = shmlog::StartFrom::at(start.cast<std::uint64_t>());
            } else {
              const std::string s = py::str(start);
              if (s == "earliest") {
                o.from = shmlog::StartFrom::earliest();
              } else if (s == "latest") {
                o.from = shmlog::StartFrom::latest();
              } else {
                throw py::value_error("start must be 'earliest', 'latest' or an offset, got '" + s + "'");
              }
            }
            PyConsumer c;
            c.consumer = std::make_shared<shmlog::Consumer>(unwrap(self.get().consumer(o)));
            c.idle_timeout = idle_timeout;
            c.deferred = deferred;
            c.commit_every = commit_every;
            return c;
          },
          py::arg("group") = "", py::arg("mode") = "at-least-once", py::arg("commit_every") = 1,
          py::arg("start") = "earliest", py::arg("idle_timeout") = py::none(), py::arg("isolation") = "read_uncommitted")
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
