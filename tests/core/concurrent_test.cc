// Threads sharing one log (run under ThreadSanitizer in CI). A start gate
// releases all threads at once; waits are blocking with bounded timeouts.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
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

// An overwrite ring lapping its reader while it reads: the reader's loads
// of a record's header race the producer's zeroing and rewriting of the
// slot, and are dropped when the slot's word says it moved on. Every byte
// of the partition is handed out as a whole record, in order, counted
// lost, or a segment's end padding. (The handler reads no value bytes: on an overwrite log a
// view may change under its handler, which that policy allows.)
TEST(ConcurrentLog, AReaderLappedWhileItReadsDropsWhatItReadAndCountsItLost) {
  LogOptions o;
  o.segment_size = 64 * 1024;
  o.ring_segments = 2;
  o.max_record_size = 256;
  o.policy = Policy::kOverwrite;
  auto log = Log::create_in_memory(o).value();
  auto consumer = log.consumer().value();
  constexpr int kRecords = 200000;
  std::atomic<bool> done{false};
  std::thread producer([&] {
    auto p = log.producer().value();
    const std::string value(100, 'v');
    for (int i = 0; i < kRecords; ++i) ASSERT_TRUE(p.append(as_bytes(value)));
    done.store(true, std::memory_order_release);
  });
  std::uint64_t next = 0, handed = 0, lost = 0, disorder = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {
    const bool finished = done.load(std::memory_order_acquire);
    auto r = consumer.poll_wait(
        [&](const Record& rec) {
          if (rec.offset < next) ++disorder;
          handed += rec.next_offset - rec.offset;
          next = rec.next_offset;
        },
        16, std::chrono::milliseconds(10));
    lost += r.lost_bytes;
    if ((finished && r.records == 0 && r.lost_bytes == 0) || std::chrono::steady_clock::now() > deadline) break;
  }
  producer.join();
  EXPECT_EQ(disorder, 0u);
  const std::uint64_t end = log.info().partitions[0].end_offset;
  EXPECT_EQ(consumer.position(0).value_or(0), end);
  // The rest is the padding at the ends of segments read whole: less than
  // a record (160 bytes aligned) per segment.
  ASSERT_LE(handed + lost, end);
  EXPECT_LT(end - handed - lost, (end / o.segment_size + 1) * 160) << handed << " handed out, " << lost << " lost";
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

// short_poll_backoff: a poll_wait that handed out fewer records than it
// asked for makes the next call wait first (at least the back-off, never
// past its own timeout); a full call does not; records all arrive, in
// order, with a producer streaming meanwhile.
TEST(ConcurrentLog, ShortPollBackoffWaitsBeforeTheNextPoll) {
  EXPECT_EQ(Log::create_in_memory().value().consumer({.short_poll_backoff = std::chrono::nanoseconds(-1)})
                .status()
                .message(),
            "short_poll_backoff must not be negative");
  auto log = Log::create_in_memory({.segment_size = 64 * 1024, .ring_segments = 4, .max_record_size = 64}).value();
  auto producer = log.producer().value();
  constexpr auto kBackoff = std::chrono::milliseconds(50);
  auto consumer = log.consumer({.wait = WaitStrategy::spin(), .short_poll_backoff = kBackoff}).value();
  auto none = [](const Record&) {};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(producer.append(as_bytes("early")));
  const auto before = std::chrono::steady_clock::now();  // the back-off runs from the short call's end
  ASSERT_EQ(consumer.poll_wait(none, 256, std::chrono::seconds(10)).records, 3u);  // short: 3 of 256
  ASSERT_TRUE(producer.append(as_bytes("next")));
  ASSERT_EQ(consumer.poll_wait(none, 256, std::chrono::seconds(10)).records, 1u);
  EXPECT_GE(std::chrono::steady_clock::now() - before, kBackoff);
  // The back-off never outlasts a call's timeout: a call with none polls.
  ASSERT_TRUE(producer.append(as_bytes("now")));
  ASSERT_EQ(consumer.poll_wait(none, 256, std::chrono::nanoseconds(0)).records, 1u);

  // A producer streaming while the consumer backs off: every record, in order.
  std::thread writer([&] {
    for (int i = 0; i < 20'000; ++i) {
      const std::string value = std::to_string(i);
      ASSERT_TRUE(producer.append(as_bytes(value)));
    }
  });
  auto quick = log.consumer({.group = "streaming", .wait = WaitStrategy::spin(), .short_poll_backoff = std::chrono::microseconds(20)})
                   .value();
  int next = 0;
  bool in_order = true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (next < 20'000 && std::chrono::steady_clock::now() < deadline) {
    (void)quick.poll_wait(
        [&](const Record& r) {
          const std::string v = test::bytes_to_string(r.value);
          if (v == "early" || v == "next" || v == "now") return;
          in_order = in_order && v == std::to_string(next);
          ++next;
        },
        256, std::chrono::milliseconds(100));
  }
  writer.join();
  EXPECT_EQ(next, 20'000);
  EXPECT_TRUE(in_order);
}

}  // namespace
}  // namespace shmlog
