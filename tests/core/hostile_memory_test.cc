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
  const std::uint64_t seed = std::random_device{}();
  RecordProperty("seed", std::to_string(seed));
  const std::uint32_t scribbler = test::spawn_scribbler(log, seed);

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
