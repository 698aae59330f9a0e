// Test-only access to a log's shared state, for setting up edge cases
// directly (write the tail position, then act).
#pragma once

#include "log_state.h"
#include "shmlog/log.h"

namespace shmlog::detail {
struct LogAccess {
  static LogState& state(const Log& log) { return *log.state_; }
};
}  // namespace shmlog::detail

namespace shmlog::test {
inline detail::LogState& state(const Log& log) { return detail::LogAccess::state(log); }
}  // namespace shmlog::test
