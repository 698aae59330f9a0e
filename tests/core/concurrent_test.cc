// Threads sharing one log (run under ThreadSanitizer in CI). A start gate
// releases all threads at once; waits are blocking with bounded timeouts.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "test_util.h"

namespace shmlog {
namespace {

struct Payload {
  std::uint32_t producer;
  std::uint32_t sequence;
};

class StartGate {
 public:
  void wait() {
    while (!open_.load(std::memory_order_acquire)) std::this_thread::yield();
  }
  void open() { open_.store(true, std::memory_order_release); }

 private:
  std::atomic<bool> open_{false};
};

void run_producers_and_consumers(Policy policy, bool exclusive, int producers, int consumers, int per_producer,
                                 std::uint32_t partitions) {
  LogOptions o;
  o.partitions = partitions;
  o.segment_size = 64 * 1024;
  o.ring_segments = 4;
  o.max_record_size = 1024;
  o.policy = policy;
  auto log = Log::create_in_memory(o).value();
  StartGate gate;
  std::vector<std::vector<std::uint32_t>> last_seen(consumers, std::vector<std::uint32_t>(producers, 0));
  std::atomic<long> received{0};
  const long total = static_cast<long>(producers) * per_producer;
  std::vector<Consumer> members;
  for (int c = 0; c < consumers; ++c) members.push_back(log.consumer({.group = "g"}).value());
  std::vector<std::thread> threads;
  std::atomic<int> order_errors{0};
  for (int c = 0; c < consumers; ++c) {
    threads.emplace_back([&, c] {
      gate.wait();
      std::vector<std::vector<std::uint32_t>> next(partitions, std::vector<std::uint32_t>(producers, 0));
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
      while (received.load() < total && std::chrono::steady_clock::now() < deadline) {
        auto r = members[c].poll_wait(
            [&](const Record& rec) {
              Payload p;
              std::memcpy(&p, rec.value.data(), sizeof p);
              // Each producer's records arrive in its own order.
              if (p.sequence < next[rec.partition][p.producer]) order_errors.fetch_add(1);
              next[rec.partition][p.producer] = p.sequence + 1;
            },
            64, std::chrono::milliseconds(50));
        received.fetch_add(static_cast<long>(r.records));
      }
    });
  }
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      auto producer = log.producer({.partition = static_cast<std::uint32_t>(p) % partitions, .exclusive = exclusive}).value();
      gate.wait();
      for (int i = 0; i < per_producer; ++i) {
        Payload payload{static_cast<std::uint32_t>(p), static_cast<std::uint32_t>(i)};
        std::byte buf[sizeof payload + 24];
        std::memcpy(buf, &payload, sizeof payload);
        auto r = producer.append(Bytes(buf, sizeof buf));
        ASSERT_TRUE(r) << errc_name(r.error);
      }
    });
  }
  gate.open();
  for (auto& t : threads) t.join();
  EXPECT_EQ(received.load(), total);
  EXPECT_EQ(order_errors.load(), 0);
}

TEST(ConcurrentLog, SharedProducersAndGroupMembersDeliverEveryRecordOnce) {
  run_producers_and_consumers(Policy::kBackpressure, false, 4, 2, 20000, 2);
}

TEST(ConcurrentLog, ExclusiveProducerAndOneConsumer) {
  run_producers_and_consumers(Policy::kBackpressure, true, 1, 1, 50000, 1);
}

TEST(ConcurrentLog, ProducersRacingAcrossSegmentEndsLoseNothing) {
  // Small ring, many crossings, backpressure holding the reader's segments.
  run_producers_and_consumers(Policy::kBackpressure, false, 3, 1, 30000, 1);
}

TEST(ConcurrentLog, BlockingConsumerIsWokenByCommits) {
  auto log = Log::create_in_memory({.segment_size = 64 * 1024, .ring_segments = 4, .max_record_size = 64}).value();
  auto consumer = log.consumer({.wait = WaitStrategy::block()}).value();
  std::atomic<int> got{0};
  std::thread reader([&] {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (got.load() < 1000 && std::chrono::steady_clock::now() < deadline) {
      auto r = consumer.poll_wait([](const Record&) {}, 16, std::chrono::seconds(1));
      got.fetch_add(static_cast<int>(r.records));
    }
  });
  auto producer = log.producer().value();
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(producer.append(as_bytes("wake")));
    if (i % 100 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  reader.join();
  EXPECT_EQ(got.load(), 1000);
}

}  // namespace
}  // namespace shmlog
