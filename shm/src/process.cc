#include "shmlog/shm/process.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

namespace shmlog::shm {
namespace {

// /proc/PID/stat field 22 (starttime), or why there is none.
struct StatRead {
  Liveness found = Liveness::kUnknown;  // kAlive: start_time is valid
  std::uint64_t start_time = 0;
  // No /proc entry (ENOENT, ESRCH): gone, or hidden from this process (a
  // /proc mounted with hidepid shows only the caller's user's processes).
  bool no_entry = false;
};

// Field 2 (comm) may contain spaces and parentheses, so parse after the last ')'.
// pid 0: the calling process (/proc/self, right also where /proc is another
// pid namespace's).
StatRead read_stat(std::uint32_t pid) noexcept {
  char path[64];
  if (pid == 0) {
    std::snprintf(path, sizeof path, "/proc/self/stat");
  } else {
    std::snprintf(path, sizeof path, "/proc/%u/stat", pid);
  }
  int fd;
  do {
    fd = ::open(path, O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const bool no_entry = errno == ENOENT || errno == ESRCH;
    return {no_entry ? Liveness::kDead : Liveness::kUnknown, 0, no_entry};
  }
  char buf[1024];
  ssize_t n;
  do {
    n = ::read(fd, buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  const int err = errno;
  ::close(fd);
  if (n < 0) return {err == ESRCH ? Liveness::kDead : Liveness::kUnknown, 0};  // it exited while we read
  if (n == 0) return {Liveness::kUnknown, 0};
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return {Liveness::kUnknown, 0};
  // After ')' come fields 3..: state is field 3, starttime field 22.
  p += 1;
  int field = 2;
  char state = '?';
  while (*p != '\0' && field < 22) {
    while (*p == ' ') ++p;
    ++field;
    if (field == 3) state = *p;
    if (field == 22) break;
    while (*p != ' ' && *p != '\0') ++p;
  }
  if (field != 22) return {Liveness::kUnknown, 0};
  if (state == 'Z' || state == 'X') return {Liveness::kDead, 0};
  return {Liveness::kAlive, std::strtoull(p, nullptr, 10)};
}

}  // namespace

std::uint64_t start_time_of(std::uint32_t pid) noexcept {
  if (pid == 0) return 0;
  const StatRead r = read_stat(pid);
  return r.found == Liveness::kAlive ? r.start_time : 0;
}

Liveness liveness_of(std::uint32_t pid, std::uint64_t start_time) noexcept {
  if (pid == 0) return Liveness::kDead;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return Liveness::kDead;
  const StatRead r = read_stat(pid);
  if (r.no_entry) {
    // kill() found the pid, /proc has no entry: hidden (hidepid), or it
    // exited in between.
    return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH ? Liveness::kDead : Liveness::kUnknown;
  }
  if (r.found != Liveness::kAlive) return r.found;
  // The pid runs another process now (pid reuse).
  return (r.start_time & 0xffffffffu) == (start_time & 0xffffffffu) ? Liveness::kAlive : Liveness::kDead;
}

namespace {

struct SelfCache {
  pid_t pid = 0;
  ProcessId id;
};
thread_local SelfCache self_cache;

}  // namespace

ProcessId self() noexcept {
  pid_t pid = ::getpid();
  if (self_cache.pid != pid) {
    self_cache.pid = pid;
    const StatRead r = read_stat(0);
    struct stat ns {};
    self_cache.id = ProcessId{static_cast<std::uint32_t>(pid), r.found == Liveness::kAlive ? r.start_time : 0,
                              ::stat("/proc/self/ns/pid", &ns) == 0 ? static_cast<std::uint64_t>(ns.st_ino) : 0};
  }
  return self_cache.id;
}

Liveness liveness(ProcessId process) noexcept {
  if (process.pid >= kPidLimit || !plausible_pid_namespace(process.pid_namespace)) return Liveness::kDead;
  const std::uint64_t here = self().pid_namespace & 0xffffffffu;
  const std::uint64_t theirs = process.pid_namespace & 0xffffffffu;
  if (process.pid != 0 && theirs != 0 && here != 0 && theirs != here) return Liveness::kUnknown;
  return liveness_of(process.pid, process.start_time);
}

bool is_alive(ProcessId process) noexcept { return liveness(process) != Liveness::kDead; }

void futex_wait(std::uint32_t* word, std::uint32_t expected,
               std::chrono::nanoseconds timeout) noexcept {
  if (timeout.count() <= 0) return;
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
  // EINTR, EAGAIN (value changed) and ETIMEDOUT all mean: re-check.
  ::syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
}

int futex_wake_all(std::uint32_t* word) noexcept {
  long woken = ::syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
  return woken < 0 ? 0 : static_cast<int>(woken);
}

void yield_now() noexcept { ::sched_yield(); }

bool lower_thread_priority(int nice) noexcept {
  // On Linux the nice value is per thread (PRIO_PROCESS with a thread id).
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  errno = 0;
  const int current = ::getpriority(PRIO_PROCESS, tid);
  if (current == -1 && errno != 0) return false;
  return ::setpriority(PRIO_PROCESS, tid, std::min(19, current + nice)) == 0;
}

void sleep_for(std::chrono::nanoseconds duration) noexcept {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(duration.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(duration.count() % 1'000'000'000);
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

Result<std::uint32_t> fork_process(int (*body)(void*), void* arg) {
  std::fflush(nullptr);  // no buffered output duplicated into the child
  pid_t pid = ::fork();
  if (pid < 0) return Status::from_errno("fork", errno);
  if (pid == 0) {
    int code = body(arg);
    std::fflush(nullptr);
    ::_exit(code);
  }
  return static_cast<std::uint32_t>(pid);
}

namespace {
int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}
}  // namespace

int wait_process(std::uint32_t pid) noexcept {
  int status = 0;
  while (::waitpid(static_cast<pid_t>(pid), &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return decode_status(status);
}

int wait_process_for(std::uint32_t pid, std::chrono::milliseconds timeout) noexcept {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(static_cast<pid_t>(pid), &status, WNOHANG);
    if (r == static_cast<pid_t>(pid)) return decode_status(status);
    if (r < 0 && errno != EINTR) return -1;
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    sleep_for(std::chrono::milliseconds(1));
  }
}

void kill_process(std::uint32_t pid) noexcept { ::kill(static_cast<pid_t>(pid), SIGKILL); }

void on_interrupt(void (*handler)(int)) noexcept {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR and re-check
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, nullptr);
}

Status pin_current_thread(unsigned core) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (core >= CPU_SETSIZE) {
    return Status(Status::Code::kInvalidArgument, "core " + std::to_string(core) + " does not exist");
  }
  CPU_SET(core, &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0) {
    return Status::from_errno("pinning to core " + std::to_string(core), errno);
  }
  return {};
}

unsigned online_cpus() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return static_cast<unsigned>(CPU_COUNT(&set));
}

void kill_self() noexcept {
  ::kill(::getpid(), SIGKILL);
  for (;;) ::pause();
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

namespace {

// Opens (creating) the lock file and flocks it with `operation`; retries
// a LOCK_NB refusal until `deadline`.
Result<int> lock_file(const std::string& path, std::uint32_t mode, int operation,
                      std::chrono::steady_clock::time_point deadline) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return Status::from_errno("opening lock file " + path, errno);
  // The log's mode, not the umask's: group members open it read-write too.
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_uid == ::geteuid() && (st.st_mode & 0777) != (mode & 0777)) {
    (void)::fchmod(fd, mode & 0777);
  }
  for (;;) {
    if (::flock(fd, operation) == 0) return fd;
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EWOULDBLOCK && std::chrono::steady_clock::now() < deadline) {
      sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    ::close(fd);
    if (err == EWOULDBLOCK) return Status(Status::Code::kBusy, path + " is locked by another process");
    return Status::from_errno("locking " + path, err);
  }
}

}  // namespace

Result<FileLock> FileLock::acquire(const std::string& path, std::uint32_t mode) {
  auto fd = lock_file(path, mode, LOCK_EX, {});
  if (!fd.ok()) return std::move(fd).status();
  return FileLock(*fd);
}

Result<FileLock> FileLock::acquire_shared(const std::string& path, std::uint32_t mode) {
  auto fd = lock_file(path, mode, LOCK_SH, {});
  if (!fd.ok()) return std::move(fd).status();
  return FileLock(*fd);
}

Result<FileLock> FileLock::try_acquire(const std::string& path, std::uint32_t mode,
                                       std::chrono::milliseconds patience) {
  auto fd = lock_file(path, mode, LOCK_EX | LOCK_NB, std::chrono::steady_clock::now() + patience);
  if (!fd.ok()) return std::move(fd).status();
  return FileLock(*fd);
}

Result<FileLock> FileLock::try_acquire_shared(const std::string& path, std::uint32_t mode,
                                              std::chrono::milliseconds patience) {
  auto fd = lock_file(path, mode, LOCK_SH | LOCK_NB, std::chrono::steady_clock::now() + patience);
  if (!fd.ok()) return std::move(fd).status();
  return FileLock(*fd);
}

}  // namespace shmlog::shm
