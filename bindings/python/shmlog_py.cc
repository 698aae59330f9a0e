// The Python module `shmlog`: logs, producers and consumers, with records
// handed out as read-only memoryviews into shared memory (zero-copy). A
// view is released at the consumer's next poll or commit, so that using it
// afterwards raises ValueError instead of reading reused memory. In a group
// at-least-once, a poll's records are committed only then (or at close):
// a Python process that dies before has not committed what it was handed.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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

std::pair<py::object, std::string> errc_exception(shmlog::Errc e) {
  switch (e) {
    case shmlog::Errc::kTooLarge: return {g_too_large, "record larger than the log's max record size"};
    case shmlog::Errc::kBackpressureTimeout: return {g_backpressure, "ring full: no consumer group made room in time"};
    case shmlog::Errc::kRevoked: return {g_revoked, "claim revoked after the claim timeout"};
    case shmlog::Errc::kBadPartition: return {py::reinterpret_borrow<py::object>(PyExc_ValueError), "partition out of range"};
    case shmlog::Errc::kDuplicate: return {g_duplicate, shmlog::errc_name(e)};
    case shmlog::Errc::kFenced: return {g_fenced, shmlog::errc_name(e)};
    default: return {g_error, shmlog::errc_name(e)};
  }
}

[[noreturn]] void raise_errc(shmlog::Errc e) {
  const auto [type, message] = errc_exception(e);
  raise(type, message);
}

[[noreturn]] void bad_partition(std::uint32_t partition, std::uint32_t partitions) {
  throw py::value_error("partition " + std::to_string(partition) + " is out of range (the log has " +
                        std::to_string(partitions) + ")");
}

std::chrono::nanoseconds to_duration(double seconds, const char* what) {
  if (!(seconds >= 0) || seconds > 365.0 * 24 * 3600) {
    throw py::value_error(std::string(what) + " must be between 0 and a year in seconds, got " +
                          py::str(py::float_(seconds)).cast<std::string>());
  }
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds));
}

shmlog::WaitStrategy parse_wait(const std::string& name) {
  shmlog::WaitStrategy w;
  if (!shmlog::parse_wait_strategy(name.c_str(), &w)) {
    throw py::value_error("wait must be 'spin', 'yield', 'backoff' or 'block', got '" + name + "'");
  }
  return w;
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

namespace {

// A duration in seconds as `D`; ValueError naming `what` when negative or past a year.
template <class D>
D in(double seconds, const char* what) {
  return std::chrono::duration_cast<D>(to_duration(seconds, what));
}

// Log::keep in a thread of its own (Log.start_keeper).
struct PyKeeper {
  explicit PyKeeper(const shmlog::Log& l) : log(l), thread([this] { result = log.keep(stop_flag); }) {}
  ~PyKeeper() {
    if (thread.joinable()) {
      stop_flag.store(true, std::memory_order_release);
      thread.join();
    }
  }
  void stop() {
    if (!thread.joinable()) return;
    stop_flag.store(true, std::memory_order_release);  // keep() acquires it between rounds
    {
      py::gil_scoped_release unlocked;
      thread.join();
    }
    if (!result.ok()) raise_status(result);
  }
  shmlog::Log log;  // keeps the log mapped while the thread runs
  std::atomic<bool> stop_flag{false};
  shmlog::Status result;  // written by the thread, read after join
  std::thread thread;
};

py::dict info_dict(const shmlog::Log& log) {
  const shmlog::LogInfo info = log.info();
  const shmlog::LogOptions& o = info.options;
  py::list partitions;
  for (const auto& p : info.partitions) {
    py::dict d;
    d["earliest_offset"] = p.earliest_offset;
    d["end_offset"] = p.end_offset;
    d["writers"] = p.writers;
    d["written_offset"] = p.written_offset;
    d["durable_offset"] = p.durable_offset;
    d["disk_start"] = p.disk_start;
    d["disk_bytes"] = p.disk_bytes;
    d["counted"] = p.counted;
    d["appends"] = p.appends;
    d["bytes"] = p.bytes;
    partitions.append(d);
  }
  py::dict d;
  d["path"] = info.path;
  d["memory_path"] = info.memory_path;
  d["log_id"] = info.log_id;
  d["durability"] = shmlog::durability_name(o.durability);
  d["pages"] = shmlog::shm::page_kind_name(o.pages);
  d["numa_node"] = o.numa_node < 0 ? py::object(py::none()) : py::object(py::int_(o.numa_node));
  d["memory_dir"] = o.memory_dir;
  d["keeper_pid"] = info.keeper_pid;
  d["keeper_alive"] = info.keeper_alive;
  d["partitions"] = partitions;
  return d;
}

}  // namespace

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
  bind_file_sink(m);
  py::class_<PyKeeper>(m, "Keeper", "A keeper of a durable log in a thread of this process (Log.start_keeper).")
      .def("stop", &PyKeeper::stop,
           "Stops keeping (what is committed is written and synced first) and waits for the thread; raises how "
           "keeping failed, if it did.")
      .def("__enter__", [](PyKeeper& k) -> PyKeeper& { return k; }, py::return_value_policy::reference)
      .def("__exit__", [](PyKeeper& k, py::object, py::object, py::object) { k.stop(); });
  log
      .def_static(
          "create",
          [](const std::string& path, std::uint32_t partitions, std::uint64_t segment_size, std::uint32_t ring_segments,
             const std::string& policy, std::uint32_t max_record_size, bool checksums, std::optional<int> numa_node,
             const std::string& pages, const std::string& memory_dir, std::uint64_t token_window,
             const std::string& durability, double token_window_time, std::uint64_t fsync_interval_bytes,
             double fsync_interval, std::uint64_t retention_bytes, double retention_time, std::uint32_t max_producers,
             std::uint32_t max_groups, std::uint32_t max_members, double claim_timeout, std::uint32_t mode) {
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
            o.token_window_time = in<std::chrono::milliseconds>(token_window_time, "token_window_time");
            o.fsync_interval_bytes = fsync_interval_bytes;
            o.fsync_interval = in<std::chrono::microseconds>(fsync_interval, "fsync_interval");
            o.retention_bytes = retention_bytes;
            o.retention_time = in<std::chrono::milliseconds>(retention_time, "retention_time");
            o.max_producers = max_producers;
            o.max_groups = max_groups;
            o.max_members = max_members;
            o.claim_timeout = in<std::chrono::milliseconds>(claim_timeout, "claim_timeout");
            o.mode = mode;
            return PyLog{unwrap(shmlog::Log::create(path, o))};
          },
          py::arg("path"), py::arg("partitions") = 1, py::arg("segment_size") = 4u << 20, py::arg("ring_segments") = 16,
          py::arg("policy") = "backpressure", py::arg("max_record_size") = 1u << 20, py::arg("checksums") = false,
          py::arg("numa_node") = std::nullopt, py::arg("pages") = "normal", py::arg("memory_dir") = "",
          py::arg("token_window") = 0, py::arg("durability") = "none", py::arg("token_window_time") = 0.0,
          py::arg("fsync_interval_bytes") = 0, py::arg("fsync_interval") = 0.0, py::arg("retention_bytes") = 0,
          py::arg("retention_time") = 0.0, py::arg("max_producers") = 256, py::arg("max_groups") = 64,
          py::arg("max_members") = 32, py::arg("claim_timeout") = 1.0, py::arg("mode") = 0600)
      .def_static(
          "open",
          [](const std::string& path, bool keeper, double maker_patience) {
            shmlog::OpenOptions o;
            o.keeper = keeper;
            o.maker_patience = in<std::chrono::milliseconds>(maker_patience, "maker_patience");
            std::optional<shmlog::Result<shmlog::Log>> opened;
            {
              py::gil_scoped_release unlocked;  // may wait for another process making the log's memory
              opened.emplace(shmlog::Log::open(path, o));
            }
            return PyLog{unwrap(std::move(*opened))};
          },
          py::arg("path"), py::arg("keeper") = true, py::arg("maker_patience") = 300.0,
          "Opens a log. keeper: for a durable log, keep it from a thread of this process while no other process "
          "does. maker_patience: seconds to wait for a process that makes the log's memory anew.")
      .def_static(
          "attach", [](const std::string& path) { return PyLog{unwrap(shmlog::Log::attach(path))}; }, py::arg("path"),
          "Maps a log read-only, for watching it: producer() and consumer() refuse.")
      .def_static("delete", [](const std::string& path) {
        shmlog::Status s = shmlog::Log::remove(path);
        if (!s.ok()) raise_status(s);
      })
      .def_property_readonly("id", [](PyLog& self) { return self.get().id(); })
      .def("info", [](PyLog& self) { return info_dict(self.get()); },
           "A snapshot of the log: its options, each partition's offsets (and files, when durable), the keeper.")
      .def(
          "delete_group",
          [](PyLog& self, const std::string& name, bool force) {
            shmlog::Status s = self.get().delete_group(name, force);
            if (!s.ok()) raise_status(s);
          },
          py::arg("name"), py::arg("force") = false,
          "Deletes a consumer group; Busy while it has live members unless `force` (they read no more).")
      .def(
          "reset_group",
          [](PyLog& self, const std::string& name, py::object to, std::optional<std::uint64_t> time_ns) {
            shmlog::GroupReset where;
            if (time_ns) {
              if (!py::isinstance<py::str>(to) || to.cast<std::string>() != "earliest") {
                throw py::type_error("reset_group() takes `to` or `time_ns`, not both");
              }
              where = shmlog::GroupReset::to_time(*time_ns);
            } else if (py::isinstance<py::int_>(to)) {
              where = shmlog::GroupReset::to_offset(to.cast<std::uint64_t>());
            } else {
              const std::string s = py::str(to);
              if (s == "earliest") {
                where = shmlog::GroupReset::earliest();
              } else if (s == "latest") {
                where = shmlog::GroupReset::latest();
              } else {
                throw py::value_error("to must be 'earliest', 'latest' or an offset, got '" + s + "'");
              }
            }
            auto& l = self.get();
            std::optional<shmlog::Result<std::vector<std::uint64_t>>> moved;
            {
              py::gil_scoped_release unlocked;  // may read segment files
              moved.emplace(l.reset_group(name, where));
            }
            return unwrap(std::move(*moved));
          },
          py::arg("name"), py::arg("to") = "earliest", py::arg("time_ns") = py::none(),
          "Moves group `name`'s committed offset in every partition: to 'earliest', 'latest', an offset, or "
          "(time_ns=) the first record at or after a time. Busy while it has live members. Returns the new offsets, "
          "by partition.")
      .def("sweep", [](PyLog& self) { self.get().sweep(); }, "Reaps dead producers, members and stalled claims now.")
      .def(
          "start_keeper",
          [](PyLog& self) {
            auto& l = self.get();
            if (l.options().durability == shmlog::Durability::kNone) {
              throw py::value_error(l.path() + " is not durable: it has nothing to keep");
            }
            return std::make_unique<PyKeeper>(l);
          },
          "Keeps this durable log from a thread (for a process that opened it with keeper=False): waits for the "
          "lease, then flushes, syncs, applies retention until Keeper.stop(), which this process calls.")
      .def_property_readonly("path", [](PyLog& self) { return self.get().path(); })
      .def_property_readonly("partitions", [](PyLog& self) { return self.get().options().partitions; })
      .def("end_offset", [](PyLog& self, std::uint32_t p) {
        auto info = self.get().info();
        if (p >= info.partitions.size()) bad_partition(p, static_cast<std::uint32_t>(info.partitions.size()));
        return info.partitions[p].end_offset;
      })
      .def("close", [](PyLog& self) { self.log.reset(); })
      .def("__enter__", [](PyLog& l) -> PyLog& { return l; }, py::return_value_policy::reference)
      .def("__exit__", [](PyLog& l, py::object, py::object, py::object) { l.log.reset(); });
}

}  // namespace shmlog_py

PYBIND11_MODULE(shmlog, m) { shmlog_py::bind_module(m); }
