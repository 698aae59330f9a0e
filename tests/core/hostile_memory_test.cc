// A process that scribbles random bytes over a live log's shared memory
// (another user with access, or a bug in a linked program) while this one
// reads, appends and inspects it: nothing crashes or hangs; errors are
// values, damaged records are counted and skipped.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <random>
#include <string>

#include "log_access.h"
#include "shmlog/shm/shared_memory.h"
#include "test_util.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;

TEST(HostileMemory, AScribblerInTheSharedMemoryNeverCrashesOrHangsItsUsers) {
  test::TempLogPath path;
  LogOptions o;
  o.partitions = 2;
  o.segment_size = 64 * 1024;
  o.ring_segments = 2;
  o.max_record_size = 1024;
  o.checksums = true;
  o.claim_timeout = 20ms;
  auto log = Log::create(path.str(), o).value();
  {
    auto producer = log.producer().value();
    for (int i = 0; i < 3000; ++i) (void)producer.append(as_bytes("record " + std::to_string(i)));
  }
  auto member = log.consumer({.group = "g"}).value();
  const std::string memory = log.info().memory_path;
  const std::uint64_t size = test::state(log).geometry.total_size;

  // The scribbler: random bytes at random places, 2 of 3 of them in the
  // control region (header, slots, partition headers) where they hurt most.
  const std::uint64_t control = test::state(log).geometry.data_offset;
  const std::uint64_t seed = std::random_device{}();
  RecordProperty("seed", std::to_string(seed));
  const std::uint32_t scribbler = test::spawn([&] {
    auto mem = shm::SharedMemory::open(memory, size);
    if (!mem.ok()) return 1;
    std::mt19937_64 rng(seed);
    for (;;) {
      const std::uint64_t at = rng() % 3 != 0 ? rng() % control : rng() % size;
      const std::size_t n = 1 + rng() % 16;
      for (std::size_t i = 0; i < n && at + i < size; ++i) mem->data()[at + i] = static_cast<std::byte>(rng());
    }
  });

  std::size_t polls = 0, infos = 0, appends = 0, errors = 0;
  std::uint64_t corrupt = 0;
  const auto until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < until) {
    auto reader = log.consumer({.isolation = Isolation::kReadCommitted});
    if (reader.ok()) {
      for (std::uint32_t p = 0; p < o.partitions; ++p) {
        auto at = reader->seek_time(p, 1);
        if (!at.ok()) ++errors;
      }
      corrupt += reader->poll_wait([](const Record&) {}, 256, 1ms).corrupt;
    } else {
      ++errors;
    }
    corrupt += member.poll_wait([](const Record&) {}, 256, 1ms).corrupt;
    member.commit();
    ++polls;
    (void)log.info();
    ++infos;
    auto producer = log.producer({.backpressure_timeout = 1ms});
    if (producer.ok()) {
      (void)producer->append(as_bytes("during"));
      ++appends;
    } else {
      ++errors;
    }
  }
  ::kill(static_cast<pid_t>(scribbler), SIGKILL);
  EXPECT_EQ(test::join(scribbler), 128 + SIGKILL);
  EXPECT_GT(polls, 0u);
  EXPECT_GT(infos, 0u);
  RecordProperty("polls", static_cast<int>(polls));
  RecordProperty("appends", static_cast<int>(appends));
  RecordProperty("errors", static_cast<int>(errors));
  RecordProperty("corrupt_bytes", std::to_string(corrupt));
  (void)Log::remove(path.str());
}

}  // namespace
}  // namespace shmlog
