// Records' timestamps read through the TSC (detail::RecordClock): they stay
// with CLOCK_REALTIME across re-anchors, on the inline append and the
// library's, and without the TSC every record reads CLOCK_REALTIME.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "shmlog/log.h"
#include "test_hooks.h"
#include "test_util.h"

namespace shmlog {
namespace {

// How far a TSC timestamp may be from CLOCK_REALTIME read around its
// append. Measured here: within 0.5 µs. A rate 0.1% off drifts 13 µs in a
// span and fails.
constexpr std::uint64_t kTolerance = 5'000;

struct Stamped {
  std::uint64_t before, after;
};

// Appends for `duration` (several re-anchors), reading CLOCK_REALTIME
// around each append, then checks each record's timestamp against them.
void expect_stamps_within(Log& log, Producer& producer, std::chrono::milliseconds duration, std::uint64_t tolerance) {
  auto consumer = log.consumer().value();
  std::vector<Stamped> around;
  std::vector<std::uint64_t> stamps;
  const auto until = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < until) {
    const std::uint64_t before = detail::now_realtime_ns();
    ASSERT_TRUE(producer.append(as_bytes("tick")));
    around.push_back({before, detail::now_realtime_ns()});
    ASSERT_EQ(consumer.poll([&](const Record& r) { stamps.push_back(r.timestamp_ns); }).records, 1u);
  }
  ASSERT_EQ(stamps.size(), around.size());
  ASSERT_GT(stamps.size(), 100u);
  for (std::size_t i = 0; i < stamps.size(); ++i) {
    ASSERT_GE(stamps[i] + tolerance, around[i].before) << "record " << i << " of " << stamps.size();
    ASSERT_LE(stamps[i], around[i].after + tolerance) << "record " << i << " of " << stamps.size();
  }
}

TEST(RecordClock, TimestampsStayWithClockRealtimeAcrossReanchors) {
  for (const bool exclusive : {true, false}) {
    SCOPED_TRACE(exclusive ? "exclusive (inline append)" : "shared claims");
    auto log = Log::create_in_memory().value();
    auto producer = log.producer({.exclusive = exclusive}).value();
    expect_stamps_within(log, producer, std::chrono::milliseconds(100), kTolerance);
  }
}

TEST(RecordClock, ExtrapolatesFromTheTscBetweenAnchors) {
  if (!detail::tsc_timestamps()) GTEST_SKIP() << "no invariant TSC that the kernel keeps time with";
  detail::RecordClock clock;
  const std::uint64_t first = detail::reanchor_clock(clock);
  EXPECT_NE(first, 0u);
  // Calibrated at the latest once a rate span (~3 ms of ticks) has passed.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (clock.span_ticks == 0 && std::chrono::steady_clock::now() < until) (void)detail::record_time_ns(clock);
  ASSERT_NE(clock.span_ticks, 0u);
  ASSERT_NE(clock.ns_per_tick_q32, 0u);
  // Between anchors a read takes no new anchor.
  const std::uint64_t anchor = clock.anchor_ticks;
  const std::uint64_t t = detail::record_time_ns(clock);
  if (detail::read_ticks() - anchor < clock.span_ticks) {
    EXPECT_EQ(clock.anchor_ticks, anchor);
  }
  EXPECT_GE(t, first);
  // A new clock starts from the rate this process already measured.
  detail::RecordClock second;
  (void)detail::reanchor_clock(second);
  EXPECT_NE(second.span_ticks, 0u);
}

TEST(RecordClock, WithoutTheTscEveryRecordReadsClockRealtime) {
  testing::timestamps_from_system_clock(true);
  auto log = Log::create_in_memory().value();
  auto producer = log.producer({.exclusive = true}).value();
  expect_stamps_within(log, producer, std::chrono::milliseconds(30), 0);
  detail::RecordClock clock;
  (void)detail::reanchor_clock(clock);
  EXPECT_EQ(clock.span_ticks, 0u);
  testing::timestamps_from_system_clock(false);
}

}  // namespace
}  // namespace shmlog
