// Owners (core/src/owner.h): the admin lock and the keeper lease name their
// holder by pid and stamp, are taken from a dead holder only, and memory an
// older binary made (without owner pairs) keeps its lock words, which this
// binary reads and takes over as that binary does.
#include "owner.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "log_access.h"
#include "shmlog/log.h"
#include "test_util.h"

namespace shmlog {
namespace {

using detail::OwnerLock;

// A child process that runs until killed, and its name.
struct Sleeper {
  std::uint32_t pid = test::spawn([] {
    for (;;) ::pause();
    return 0;
  });
  shm::ProcessId id() const {
    std::uint64_t start = 0;
    while (start == 0) start = shm::start_time_of(pid);
    return {pid, start, shm::self().pid_namespace};
  }
  void kill() const {
    shm::kill_process(pid);
    (void)test::join(pid);
  }
};

void check_lock(const OwnerLock& lock, std::uint64_t* holder_pair, std::uint64_t* holder_word) {
  const Sleeper other;
  const shm::ProcessId them = other.id();
  if (holder_pair != nullptr) {
    holder_pair[0] = them.pid;
    holder_pair[1] = shm::stamp_of(them);
  } else {
    *holder_word = std::uint64_t{them.pid} << 32 | (them.start_time & 0xffffffffu);
  }
  EXPECT_EQ(lock.holder().pid, them.pid);
  EXPECT_EQ(lock.try_take(), OwnerLock::Taken::kNo) << "taken from a live holder";
  other.kill();
  EXPECT_EQ(lock.try_take(), OwnerLock::Taken::kFromDead) << "a dead holder's lock stayed";
  EXPECT_EQ(lock.holder().pid, shm::self().pid);
  EXPECT_EQ(lock.try_take(), OwnerLock::Taken::kNo) << "taken twice";
  lock.release();
  EXPECT_EQ(lock.holder().pid, 0u);
  EXPECT_EQ(lock.try_take(), OwnerLock::Taken::kFree);
  lock.release();
}

TEST(Owner, ALockIsTakenFromADeadHolderOnly) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), {}).value();
  auto& h = *test::state(log).header;
  ASSERT_NE(h.features & format::kFeatureOwnerPairs, 0u);
  check_lock(OwnerLock::admin(test::state(log)), h.admin_owner, nullptr);
  check_lock(OwnerLock::keeper_lease(test::state(log)), h.keeper_owner, nullptr);
}

// A holder that cannot be judged from here (another pid namespace, or
// bytes in damaged memory that name no process: a scribbler's) kept the
// admin lock for good, and every registration waited forever. It now loses
// it after holding it, unchanged, for kUnjudgedPatience.
TEST(Owner, AnAdminLockHolderNoOneCanJudgeLosesItAfterAWhile) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), {}).value();
  auto& h = *test::state(log).header;
  shm::ProcessId elsewhere = shm::self();
  elsewhere.pid_namespace ^= 1;  // another pid namespace
  ASSERT_EQ(shm::liveness(elsewhere), shm::Liveness::kUnknown);
  h.admin_owner[0] = elsewhere.pid;
  h.admin_owner[1] = shm::stamp_of(elsewhere);
  EXPECT_EQ(OwnerLock::admin(test::state(log)).try_take(), OwnerLock::Taken::kNo);
  {
    detail::AdminLock lock(test::state(log));  // waits kUnjudgedPatience, then takes it
    EXPECT_EQ(OwnerLock::admin(test::state(log)).holder(), shm::from_stamp(shm::self().pid, shm::stamp_of(shm::self())));
  }
  EXPECT_EQ(OwnerLock::admin(test::state(log)).holder().pid, 0u);
}

TEST(Owner, MemoryOfAnOlderBinaryKeepsItsLockWords) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), {}).value();
  auto& h = *test::state(log).header;
  h.features &= ~format::kFeatureOwnerPairs;
  check_lock(OwnerLock::admin(test::state(log)), nullptr, &h.admin_lock);
  check_lock(OwnerLock::keeper_lease(test::state(log)), nullptr, &h.keeper_lease);
  EXPECT_EQ(detail::own_stamp(test::state(log)), shm::self().start_time) << "an older binary compares it whole";
  // The log works on: producers register under the admin lock.
  auto producer = log.producer();
  ASSERT_TRUE(producer.ok()) << producer.status().to_string();
  EXPECT_TRUE(producer->append(as_bytes("on older memory")));
}

}  // namespace
}  // namespace shmlog
