// The Python module: records and consumers. A record's key and value are
// read-only memoryviews into shared memory, released at the consumer's
// next poll or commit; in a group at-least-once, a poll's records are
// committed only then (or at close).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "py_common.h"
#include "shmlog/log.h"

namespace shmlog_py {
namespace {

using namespace std::chrono_literals;

struct PyRecord {
  std::uint32_t partition;
  std::uint64_t offset;
  std::uint64_t timestamp_ns;
  std::uint16_t producer_id;
  std::uint64_t sequence;
  py::object key;
  py::object value;
  std::uint64_t next_offset;
  std::uint16_t producer_epoch;
  bool transactional;
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
  // commit(partition, offset): a pending commit of that partition that
  // this one covers is dropped.
  void commit_offset(std::uint32_t partition, std::uint64_t offset) {
    shmlog::Status s = get().commit(partition, offset);
    if (!s.ok()) raise_status(s);
    auto it = pending.find(partition);
    if (it != pending.end() && it->second <= offset) pending.erase(it);
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
      PyRecord rec{r.partition,
                   r.offset,
                   r.timestamp_ns,
                   r.producer_id,
                   r.sequence,
                   make_view(consumer, r.key.data(), r.key.size(), false),
                   make_view(consumer, r.value.data(), r.value.size(), false),
                   r.next_offset,
                   r.producer_epoch,
                   r.transactional};
      handed_out.push_back(rec.key);
      handed_out.push_back(rec.value);
      out.append(py::cast(std::move(rec)));
      if (deferred) pending[r.partition] = r.next_offset;
    }
    if (deferred) pending_records += got.size();
    return out;
  }
};

shmlog::DeliveryMode parse_mode(const std::string& m) {
  if (m == "at-least-once") return shmlog::DeliveryMode::kAtLeastOnce;
  if (m == "at-most-once") return shmlog::DeliveryMode::kAtMostOnce;
  if (m == "manual") return shmlog::DeliveryMode::kManual;
  throw py::value_error("mode must be 'at-least-once', 'at-most-once' or 'manual', got '" + m + "'");
}

}  // namespace

void bind_consumer(py::module_& m, py::class_<PyLog>& log) {
  py::class_<PyRecord>(m, "Record", "A record; key and value are read-only views valid until the next poll.")
      .def_readonly("partition", &PyRecord::partition)
      .def_readonly("offset", &PyRecord::offset)
      .def_readonly("timestamp_ns", &PyRecord::timestamp_ns)
      .def_readonly("producer_id", &PyRecord::producer_id)
      .def_readonly("sequence", &PyRecord::sequence)
      .def_readonly("next_offset", &PyRecord::next_offset)
      .def_readonly("producer_epoch", &PyRecord::producer_epoch)
      .def_readonly("transactional", &PyRecord::transactional)
      .def_readonly("key", &PyRecord::key)
      .def_readonly("value", &PyRecord::value)
      .def("__repr__", [](const PyRecord& r) {
        return "<shmlog.Record partition=" + std::to_string(r.partition) + " offset=" + std::to_string(r.offset) + ">";
      });
  py::class_<PyConsumer>(m, "Consumer", "Reads records. One thread at a time. Iterate, or call poll().")
      .def("poll", &PyConsumer::poll, py::arg("max") = 64, py::arg("timeout") = py::none(),
           "Up to `max` records; waits up to `timeout` seconds (None: no wait) for the first.")
      .def(
          "commit",
          [](PyConsumer& self, std::optional<std::uint32_t> partition, std::optional<std::uint64_t> offset) {
            if (partition.has_value() != offset.has_value()) {
              throw py::type_error("commit() takes both a partition and an offset, or neither");
            }
            self.release_views();
            if (partition) {
              self.commit_offset(*partition, *offset);
            } else if (self.deferred) {
              self.get();  // a closed consumer raises
              self.commit_pending(true);
            } else {
              self.get().commit();
            }
          },
          py::arg("partition") = py::none(), py::arg("offset") = py::none(),
          "Commits what was handed out; or, given both, `offset` for an owned `partition` (at most its position).")
      .def("seek",
           [](PyConsumer& self, std::uint32_t partition, std::uint64_t offset) {
             shmlog::Status s = self.get().seek(partition, offset);
             if (!s.ok()) raise_status(s);
           })
      .def(
          "seek_time",
          [](PyConsumer& self, std::uint32_t partition, std::uint64_t time_ns) {
            auto& c = self.get();
            std::optional<shmlog::Result<std::uint64_t>> at;
            {
              py::gil_scoped_release unlocked;  // may read segment files
              at.emplace(c.seek_time(partition, time_ns));
            }
            return unwrap(std::move(*at));
          },
          py::arg("partition"), py::arg("time_ns"),
          "Moves to the first record whose timestamp is at or after `time_ns` (CLOCK_REALTIME), in the segment "
          "files and the ring; past the last record: the end. Returns the new position.")
      .def("position", [](PyConsumer& self, std::uint32_t partition) { return self.get().position(partition); })
      .def_property_readonly("assignment", [](PyConsumer& self) { return self.get().assignment(); },
                             "The partitions this consumer reads now (they change as group members come and go).")
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
  log.def(
          "consumer",
          [](PyLog& self, const std::string& group, const std::string& mode, std::uint32_t commit_every, py::object start,
             std::optional<double> idle_timeout, const std::string& isolation, bool read_durable, bool drop_duplicates,
             const std::vector<std::uint32_t>& partitions, const std::string& wait, std::optional<int> core,
             double short_poll_backoff) {
            shmlog::ConsumerOptions o;
            o.short_poll_backoff = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::duration<double>(short_poll_backoff));
            o.group = group;
            o.read_durable = read_durable;
            o.drop_duplicates = drop_duplicates;
            o.partitions = partitions;
            o.wait = parse_wait(wait);
            o.core = core.value_or(-1);
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
          py::arg("start") = "earliest", py::arg("idle_timeout") = py::none(), py::arg("isolation") = "read_uncommitted",
          py::arg("read_durable") = false, py::arg("drop_duplicates") = false,
          py::arg("partitions") = std::vector<std::uint32_t>{}, py::arg("wait") = "backoff", py::arg("core") = py::none(),
          py::arg("short_poll_backoff") = 0.0);
}

}  // namespace shmlog_py
