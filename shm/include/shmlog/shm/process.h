// Process identity, liveness and the waiting primitives the engine needs from
// the OS: futex wait/wake on a word in shared memory, pause and yield.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "shmlog/status.h"

namespace shmlog::shm {

// A process, named so that pid reuse cannot fool a liveness check: the
// start time (clock ticks since boot, /proc/PID/stat field 22) differs.
// `pid_namespace` (the inode of /proc/self/ns/pid; 0: unknown) tells whose
// numbers pid and start time are: a process in another pid namespace
// sharing the memory cannot be judged from here. Liveness compares the low
// 32 bits of each (all that a stamp keeps; a pid reused by a process that
// started a multiple of 2^32 ticks, 497 days at 100 Hz, later is the only
// blind spot).
struct ProcessId {
  std::uint32_t pid = 0;
  std::uint64_t start_time = 0;
  std::uint64_t pid_namespace = 0;
  friend bool operator==(const ProcessId&, const ProcessId&) = default;
};

// The calling process (cached; refreshed after fork).
ProcessId self() noexcept;

// What a process is named by in one 64-bit word of shared memory beside
// its pid: the low 32 bits of its pid namespace << 32 | the low 32 bits of
// its start time. from_stamp gives back the ProcessId it names.
constexpr std::uint64_t stamp_of(ProcessId p) noexcept {
  return (p.pid_namespace & 0xffffffffu) << 32 | (p.start_time & 0xffffffffu);
}
constexpr ProcessId from_stamp(std::uint32_t pid, std::uint64_t stamp) noexcept {
  return {pid, stamp & 0xffffffffu, stamp >> 32};
}

// What can be proved about a process. "Dead" only on proof: the pid is
// gone (ESRCH, or no /proc entry for a pid that kill() finds gone too), a
// zombie, or taken by another process (its start time differs). A /proc
// that cannot be read (out of descriptors, EACCES) or hides the process
// (hidepid) proves nothing: kUnknown, which callers treat as alive.
enum class Liveness : std::uint8_t { kAlive, kDead, kUnknown };
Liveness liveness_of(std::uint32_t pid, std::uint64_t start_time) noexcept;
// No pid in any namespace reaches this (the kernel's PID_MAX_LIMIT).
inline constexpr std::uint64_t kPidLimit = std::uint64_t{1} << 22;
// A pid namespace's inode as procfs numbers them (0xEFFFFFFC for the
// first, then from 0xF0000000 up), or 0: unknown. Anything else names no
// namespace: damaged memory.
constexpr bool plausible_pid_namespace(std::uint64_t ns) noexcept {
  return ns == 0 || (ns >= 0xEFFFFFF0u && ns <= 0xFFFFFFFFu);
}

// What can be proved about `process` from here: as liveness_of, except
// that one in another pid namespace than the caller's is kUnknown whatever
// this namespace's /proc says of its pid. pid 0, a pid at or past
// kPidLimit and a namespace no procfs gives are kDead (nothing runs as
// that: the bytes are damage).
Liveness liveness(ProcessId process) noexcept;
// False only when the process is proved dead: liveness() != kDead.
bool is_alive(ProcessId process) noexcept;
// The start time of a running process, 0 when there is none (or a zombie)
// or /proc cannot tell.
std::uint64_t start_time_of(std::uint32_t pid) noexcept;

// FUTEX_WAIT on a word in shared memory (not FUTEX_PRIVATE: other processes
// wake it). Returns when woken, when *word != expected, on a signal, or after
// `timeout`. Spurious returns are allowed: callers re-check their condition.
void futex_wait(std::uint32_t* word, std::uint32_t expected,
               std::chrono::nanoseconds timeout) noexcept;
// Wakes every waiter on `word`; returns how many were woken.
int futex_wake_all(std::uint32_t* word) noexcept;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}
void yield_now() noexcept;
// Lowers the calling thread's scheduling priority by `nice` steps (for
// background threads: they then never delay an application thread that
// wakes on the same core). Best effort: false if the OS refused.
bool lower_thread_priority(int nice) noexcept;
void sleep_for(std::chrono::nanoseconds duration) noexcept;
// SIGKILL to the calling process: crash tests' "die right here".
[[noreturn]] void kill_self() noexcept;

// Runs `body` in a forked child process, which exits with its return value.
// Returns the child's pid. Tools and tests use it to run real processes.
Result<std::uint32_t> fork_process(int (*body)(void*), void* arg);
// Waits for a child; returns its exit code, or 128 + signal if killed.
int wait_process(std::uint32_t pid) noexcept;
// Waits at most `timeout`; returns -1 if it is still running.
int wait_process_for(std::uint32_t pid, std::chrono::milliseconds timeout) noexcept;
void kill_process(std::uint32_t pid) noexcept;  // SIGKILL
// Calls `handler` (async-signal-safe code only) on SIGINT and SIGTERM, and
// ignores SIGPIPE, so that a write to a closed pipe returns EPIPE.
void on_interrupt(void (*handler)(int)) noexcept;

// Pins the calling thread to one CPU; the error names the core.
Status pin_current_thread(unsigned core);
// CPUs this process may run on.
unsigned online_cpus() noexcept;

// An advisory lock on a file (flock), released by the kernel when the holder
// dies: serialises the cold paths that create, recreate or delete a log.
class FileLock {
 public:
  FileLock() = default;
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();
  // Creates `path` if needed (mode 0600 ... or `mode`) and locks it exclusively.
  static Result<FileLock> acquire(const std::string& path, std::uint32_t mode);
  // The same, shared: any number of holders, none while it is held exclusively.
  static Result<FileLock> acquire_shared(const std::string& path, std::uint32_t mode);
  // Exclusively, giving up after `patience` while others hold it (kBusy).
  static Result<FileLock> try_acquire(const std::string& path, std::uint32_t mode, std::chrono::milliseconds patience);
  // Shared, giving up after `patience` while it is held exclusively (kBusy).
  static Result<FileLock> try_acquire_shared(const std::string& path, std::uint32_t mode,
                                             std::chrono::milliseconds patience);

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace shmlog::shm
