// Liveness: "dead" only on proof. A process gone, a zombie or a reused pid
// is dead; a /proc this process cannot read (out of descriptors, hidepid)
// proves nothing, and a log's sweep then reaps no live producer.
#include "shmlog/shm/process.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>

#include "shmlog/log.h"
#include "test_util.h"

namespace shmlog {
namespace {

// Uses up every descriptor the process may open (lowering the limit to
// 64 first), so that the next open() fails with EMFILE.
void run_out_of_descriptors() {
  struct rlimit limit {};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = std::min<rlim_t>(limit.rlim_cur, 64);
  ::setrlimit(RLIMIT_NOFILE, &limit);
  while (::dup(0) >= 0) {
  }
}

TEST(Liveness, GoneZombieAndReusedPidAreDead) {
  const shm::ProcessId me = shm::self();
  EXPECT_EQ(shm::liveness_of(me.pid, me.start_time), shm::Liveness::kAlive);
  EXPECT_EQ(shm::liveness_of(me.pid, me.start_time + 1), shm::Liveness::kDead) << "a reused pid";
  const auto child = test::spawn([] { return 0; });
  std::uint64_t start = 0;
  for (int i = 0; i < 1000 && start == 0; ++i) start = shm::start_time_of(child);
  ::usleep(50000);  // exited, not yet reaped: a zombie
  EXPECT_EQ(shm::liveness_of(child, start), shm::Liveness::kDead) << "a zombie";
  EXPECT_EQ(test::join(child), 0);
  EXPECT_EQ(shm::liveness_of(child, start), shm::Liveness::kDead) << "gone";
  EXPECT_FALSE(shm::is_alive({0, 0}));
}

TEST(Liveness, AProcThatCannotBeReadProvesNothing) {
  const shm::ProcessId parent = shm::self();
  const auto child = test::spawn([&] {
    run_out_of_descriptors();
    if (shm::liveness_of(parent.pid, parent.start_time) != shm::Liveness::kUnknown) return 1;
    return shm::is_alive(parent) ? 0 : 2;
  });
  EXPECT_EQ(test::join(child), 0) << "1: /proc unreadable was not kUnknown; 2: a live process was judged dead";
}

// Bytes in damaged shared memory (a scribbler's) that name no process: a
// pid past any namespace's, or a namespace number procfs never gives.
// Taken for a process of another namespace, they held the admin lock for
// good (HostileMemory.AScribbler... hung).
TEST(Liveness, BytesThatNameNoProcessAreDead) {
  shm::ProcessId me = shm::self();
  ASSERT_TRUE(shm::plausible_pid_namespace(me.pid_namespace));
  EXPECT_EQ(shm::liveness(me), shm::Liveness::kAlive);
  EXPECT_EQ(shm::liveness({static_cast<std::uint32_t>(shm::kPidLimit), me.start_time, me.pid_namespace}),
            shm::Liveness::kDead);
  EXPECT_EQ(shm::liveness({me.pid, me.start_time, 0x12345678}), shm::Liveness::kDead);
  me.pid_namespace ^= 1;  // a namespace that may exist: not judged from here
  EXPECT_EQ(shm::liveness(me), shm::Liveness::kUnknown);
}

// A /proc mounted with hidepid=2 has no entry for another user's process:
// open() says ENOENT, as for a pid that is gone. A judge that took ENOENT
// for death reaped live producers of other users sharing the log.
TEST(Liveness, AProcessHiddenByHidepidIsNotDead) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount /proc with hidepid";
  const shm::ProcessId parent = shm::self();
  const auto child = test::spawn([&] {
    // A /proc of its own (in a mount namespace of its own) that hides
    // other users' processes, then another user than the parent's.
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("proc", "/proc", "proc", 0, "hidepid=2") != 0) {
      return 77;
    }
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 77;
    if (::access(("/proc/" + std::to_string(parent.pid)).c_str(), F_OK) == 0) return 77;  // not hidden after all
    if (shm::liveness_of(parent.pid, parent.start_time) != shm::Liveness::kUnknown) return 1;
    return shm::is_alive(parent) ? 0 : 2;
  });
  const int code = test::join(child);
  if (code == 77) GTEST_SKIP() << "cannot mount a /proc with hidepid=2 here";
  EXPECT_EQ(code, 0) << "1: a hidden process was not kUnknown; 2: a live process was judged dead";
}

// A process out of descriptors sweeps a log: it used to take every
// producer it could not look at for dead and reap it, so that a new
// producer got the same id while the old one kept appending.
TEST(Liveness, ASweepThatCannotReadProcReapsNoLiveProducer) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), {}).value();
  ProducerOptions po;
  po.producer_id = "alive";
  auto p = log.producer(po).value();
  ASSERT_TRUE(p.append(as_bytes("before")));
  const auto child = test::spawn([&] {
    auto mine = Log::open(path.str()).value();
    run_out_of_descriptors();
    mine.sweep();
    return 0;
  });
  ASSERT_EQ(test::join(child), 0);
  bool listed_alive = false;
  for (const auto& info : log.info().producers) listed_alive |= info.name == "alive" && info.alive;
  EXPECT_TRUE(listed_alive) << "the live producer's slot was reaped";
  ProducerOptions other;
  other.producer_id = "other";
  auto q = log.producer(other).value();
  EXPECT_NE(q.id(), p.id()) << "a new producer got the live one's id";
}

}  // namespace
}  // namespace shmlog
