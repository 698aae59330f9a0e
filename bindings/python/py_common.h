// What the Python module's files share: the exception classes and the
// mapping of C++ errors onto them, the memoryview exporter, the log and
// producer handles, and the functions that add each part to the module.
#pragma once

#include <pybind11/pybind11.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "shmlog/log.h"

namespace shmlog_py {

namespace py = pybind11;

// Exception classes, created in the module init.
extern py::object g_error, g_not_found, g_already_exists, g_corrupt, g_version_mismatch, g_no_space, g_busy,
    g_too_large, g_backpressure, g_revoked, g_closed, g_duplicate, g_fenced;

[[noreturn]] void raise(const py::object& type, const std::string& message);
[[noreturn]] void raise_status(const shmlog::Status& s);
// The exception class for a hot-path error, and its message.
std::pair<py::object, std::string> errc_exception(shmlog::Errc e);
[[noreturn]] void raise_errc(shmlog::Errc e);
// ValueError: "partition P is out of range (the log has N)".
[[noreturn]] void bad_partition(std::uint32_t partition, std::uint32_t partitions);

// Seconds as a duration; ValueError naming `what` if negative or past a year.
std::chrono::nanoseconds to_duration(double seconds, const char* what);
// "spin", "yield", "backoff" or "block"; ValueError otherwise.
shmlog::WaitStrategy parse_wait(const std::string& name);

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

py::memoryview make_view(std::shared_ptr<void> owner, const std::byte* data, std::size_t size, bool writable);

// A bytes-like object's contiguous bytes; `keep` holds the buffer while
// they are used.
shmlog::Bytes as_span(const py::buffer& b, py::buffer_info& keep);

struct PyLog {
  std::optional<shmlog::Log> log;
  shmlog::Log& get() {
    if (!log) raise(g_closed, "the log is closed");
    return *log;
  }
};

struct PyProducer {
  std::shared_ptr<shmlog::Producer> producer;
  std::uint32_t partitions = 0;  // the log's, for messages
  std::uint32_t default_partition = 0;
  shmlog::Producer& get() {
    if (!producer) raise(g_closed, "the producer is closed");
    return *producer;
  }
};

// Parts of the module, added in this order by PYBIND11_MODULE: the
// consumer's and producer's classes and the Log methods that make them.
void bind_consumer(py::module_& m, py::class_<PyLog>& log);
void bind_producer(py::module_& m, py::class_<PyLog>& log);
// The file sink.
void bind_file_sink(py::module_& m);

}  // namespace shmlog_py
