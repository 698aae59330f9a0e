#include "test_util.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "shmlog/shm/process.h"

namespace shmlog::test {

TempLogPath::TempLogPath() {
  static std::atomic<int> counter{0};
  path_ = "/tmp/shmlog-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
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

}  // namespace shmlog::test
