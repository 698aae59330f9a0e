// What the C API's files share: the handles behind the opaque types, and
// the turning of C++ errors into a status and a thread-local message.
// Private to bindings/c.
#pragma once

#include <cstring>
#include <deque>
#include <exception>
#include <new>
#include <optional>
#include <string>

#include "shmlog.h"
#include "shmlog/log.h"

struct shmlog_log {
  shmlog::Log log;
};
struct shmlog_producer {
  shmlog::Producer producer;
  std::uint32_t partition;  // the default one (claims and unique appends go there)
  std::uint32_t partitions;  // the log's, for messages
  std::optional<shmlog::Claim> claim;
};
struct shmlog_consumer {
  shmlog::Consumer consumer;
  std::deque<shmlog::Damage> damage;  // taken from the consumer, not yet handed out
};

namespace shmlog::c_api {

// Sets the thread's message; returns `code`.
shmlog_status fail(shmlog_status code, std::string message);
shmlog_status from_status(const shmlog::Status& s);
shmlog_status from_errc(shmlog::Errc e);
// "WHAT is NULL", SHMLOG_INVALID_ARGUMENT.
shmlog_status null_argument(const char* what);
// "partition P is out of range (the log has N)", SHMLOG_BAD_PARTITION.
shmlog_status bad_partition(uint32_t partition, std::size_t partitions);
// A shmlog_wait value (read as an int: see enum_value) as a strategy.
shmlog_status to_wait_strategy(int wait, shmlog::WaitStrategy* out);

// Runs `body`, turning any exception into SHMLOG_INTERNAL.
template <class F>
shmlog_status guarded(F&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(SHMLOG_NO_SPACE, "out of memory");
  } catch (const std::exception& e) {
    return fail(SHMLOG_INTERNAL, e.what());
  } catch (...) {
    return fail(SHMLOG_INTERNAL, "unknown exception");
  }
}

// A C caller may put any int into an enum field; reading an out-of-range
// value as a C++ enum is undefined, so read the bits as an int.
template <class E>
int enum_value(const E& field) noexcept {
  static_assert(sizeof(E) == sizeof(int));
  int v;
  std::memcpy(&v, &field, sizeof v);
  return v;
}

}  // namespace shmlog::c_api
