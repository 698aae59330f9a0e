#include "shmlog/shm/shared_memory.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "shmlog/shm/process.h"

namespace shmlog::shm {
namespace {

std::string unique_name() {
  static int n = 0;
  return "/dev/shm/shmlog-unit-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

TEST(SharedMemory, CreateIsZeroedAndVisibleToOpen) {
  const std::string name = unique_name();
  auto a = SharedMemory::create(name, 1 << 20, 0600);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  for (std::size_t i = 0; i < a->size(); i += 4096) ASSERT_EQ(a->data()[i], std::byte{0});
  a->data()[100] = std::byte{42};
  auto b = SharedMemory::open(name, 4096);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->data()[100], std::byte{42});
  EXPECT_EQ(b->size(), 1u << 20);
  EXPECT_TRUE(SharedMemory::unlink(name).ok());
  EXPECT_FALSE(SharedMemory::exists(name));
}

TEST(SharedMemory, CreateIsExclusive) {
  const std::string name = unique_name();
  auto a = SharedMemory::create(name, 4096, 0600);
  ASSERT_TRUE(a.ok());
  auto b = SharedMemory::create(name, 4096, 0600);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Status::Code::kAlreadyExists);
  EXPECT_TRUE(SharedMemory::unlink(name).ok());
}

TEST(SharedMemory, OpeningMissingObjectNamesIt) {
  auto r = SharedMemory::open("/dev/shm/shmlog-does-not-exist", 4096);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_NE(r.status().message().find("/dev/shm/shmlog-does-not-exist"), std::string::npos);
}

TEST(SharedMemory, TooSmallObjectIsCorrupt) {
  const std::string name = unique_name();
  auto a = SharedMemory::create(name, 4096, 0600);
  ASSERT_TRUE(a.ok());
  auto b = SharedMemory::open(name, 8192);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Status::Code::kCorrupt);
  EXPECT_TRUE(SharedMemory::unlink(name).ok());
}

TEST(Process, SelfIsAliveAndAWrongStartTimeIsNot) {
  ProcessId me = self();
  EXPECT_TRUE(is_alive(me));
  EXPECT_FALSE(is_alive({me.pid, me.start_time + 1}));  // a reused pid
  EXPECT_FALSE(is_alive({0, 0}));
}

TEST(Process, DeadChildIsNotAlive) {
  auto pid = fork_process([](void*) { return 0; }, nullptr);
  ASSERT_TRUE(pid.ok());
  EXPECT_EQ(wait_process(*pid), 0);
  EXPECT_FALSE(is_alive({*pid, start_time_of(*pid)}));
  EXPECT_EQ(start_time_of(*pid), 0u);
}

TEST(Futex, WaitReturnsOnTimeoutAndOnChangedValue) {
  std::uint32_t word = 5;
  futex_wait(&word, 4, std::chrono::seconds(10));  // value differs: returns at once
  futex_wait(&word, 5, std::chrono::milliseconds(1));
  EXPECT_EQ(futex_wake_all(&word), 0);
}

}  // namespace
}  // namespace shmlog::shm
