// Helpers shared by the tests: temporary log directories and child processes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "shmlog/log.h"

namespace shmlog::test {

// A unique directory path under /tmp (not created); the log there is
// deleted on destruction.
class TempLogPath {
 public:
  TempLogPath();
  ~TempLogPath();
  const std::string& str() const { return path_; }

 private:
  std::string path_;
};

std::string bytes_to_string(Bytes b);

// Runs `body` in a forked child; returns its pid. The child exits with
// body's return value (an uncaught failure exits 99).
std::uint32_t spawn(std::function<int()> body);
// Exit code of the child, or 128 + signal. Fails the test after `timeout`.
int join(std::uint32_t pid, std::chrono::seconds timeout = std::chrono::seconds(120));

// Forks a process that writes random bytes (from `seed`) at random places
// of `log`'s shared memory until killed, 2 of 3 of them in the control
// region (header, slots, partition headers) where they hurt most; 1 to 16
// bytes at a time, then it pauses for `pause` (0: none).
std::uint32_t spawn_scribbler(const Log& log, std::uint64_t seed,
                              std::chrono::microseconds pause = std::chrono::microseconds(0));

}  // namespace shmlog::test
