#include "test_util.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>

#include "log_access.h"
#include "shmlog/shm/process.h"
#include "shmlog/shm/shared_memory.h"

namespace shmlog::test {

// A name no other test run has: mkdtemp's random part, not the pid alone
// (a pid comes back, and a test that died earlier may have left its
// directory under it). The directory is made to reserve the name, then
// removed: tests create the log themselves.
TempLogPath::TempLogPath() {
  std::string name = "/tmp/shmlog-test-" + std::to_string(::getpid()) + "-XXXXXX";
  if (::mkdtemp(name.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  ::rmdir(name.c_str());
  path_ = std::move(name);
}

TempLogPath::~TempLogPath() {
  (void)Log::remove(path_);
  std::string cmd = "rm -rf '" + path_ + "'";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", path_.c_str());
}

std::string bytes_to_string(Bytes b) { return std::string(as_string(b)); }

namespace {
int run_body(void* arg) {
  auto* body = static_cast<std::function<int()>*>(arg);
  try {
    return (*body)();
  } catch (...) {
    return 99;
  }
}
}  // namespace

std::uint32_t spawn(std::function<int()> body) {
  auto pid = shm::fork_process(run_body, &body);
  EXPECT_TRUE(pid.ok()) << pid.status().to_string();
  return pid.ok() ? *pid : 0;
}

int join(std::uint32_t pid, std::chrono::seconds timeout) {
  int code = shm::wait_process_for(pid, std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
  if (code == -1) {
    ADD_FAILURE() << "child " << pid << " still running after " << timeout.count() << " s; killing it";
    shm::kill_process(pid);
    return shm::wait_process(pid);
  }
  return code;
}

std::uint32_t spawn_scribbler(const Log& log, std::uint64_t seed, std::chrono::microseconds pause) {
  const std::string memory = log.info().memory_path;
  const std::uint64_t size = state(log).geometry.total_size;
  const std::uint64_t control = state(log).geometry.data_offset;
  return spawn([=] {
    auto mem = shm::SharedMemory::open(memory, size);
    if (!mem.ok()) return 1;
    std::mt19937_64 rng(seed);
    for (;;) {
      const std::uint64_t at = rng() % 3 != 0 ? rng() % control : rng() % size;
      const std::size_t n = 1 + rng() % 16;
      for (std::size_t i = 0; i < n && at + i < size; ++i) mem->data()[at + i] = static_cast<std::byte>(rng());
      if (pause.count() > 0) shm::sleep_for(pause);
    }
  });
}

}  // namespace shmlog::test
