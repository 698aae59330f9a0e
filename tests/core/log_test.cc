#include <gtest/gtest.h>

#include <sched.h>

#include <cstring>
#include <thread>
#include <string>
#include <vector>

#include "log_access.h"
#include "test_util.h"

namespace shmlog {
namespace {

using test::bytes_to_string;

LogOptions small_options() {
  LogOptions o;
  o.segment_size = 64 * 1024;
  o.ring_segments = 4;
  o.max_record_size = 16 * 1024;
  o.claim_timeout = std::chrono::milliseconds(50);
  return o;
}

std::vector<std::string> drain(Consumer& c, std::size_t max = 1'000'000) {
  std::vector<std::string> out;
  for (;;) {
    auto r = c.poll([&](const Record& rec) { out.push_back(bytes_to_string(rec.value)); }, 256);
    if (r.records == 0 || out.size() >= max) break;
  }
  return out;
}

TEST(Log, AppendedRecordsArePolledInOrderWithTheirFields) {
  auto log = Log::create_in_memory(small_options()).value();
  auto producer = log.producer().value();
  auto a = producer.append(as_bytes("first"));
  auto b = producer.append(as_bytes("k1"), as_bytes("second"));
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(a.offset, 0u);
  EXPECT_EQ(b.offset, 64u);  // 32 header + 5 bytes, aligned to 32
  auto consumer = log.consumer().value();
  std::vector<Record> seen;
  std::vector<std::string> keys, values;
  consumer.poll([&](const Record& r) {
    seen.push_back(r);
    keys.push_back(bytes_to_string(r.key));
    values.push_back(bytes_to_string(r.value));
  });
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(values[0], "first");
  EXPECT_EQ(keys[0], "");
  EXPECT_EQ(keys[1], "k1");
  EXPECT_EQ(values[1], "second");
  EXPECT_EQ(seen[0].next_offset, 64u);
  EXPECT_EQ(seen[1].producer_id, producer.id());
  EXPECT_EQ(seen[0].sequence, 0u);
  EXPECT_EQ(seen[1].sequence, 1u);
  EXPECT_GT(seen[0].timestamp_ns, 0u);
  EXPECT_EQ(consumer.position(0), 64u + 64u);
}

// append_at: the record keeps the time it is given, with shared claims and
// with an exclusive producer, also with the producer's own stamps off;
// append_to beside it still takes the clock's.
TEST(Log, AppendAtKeepsTheGivenTimestamp) {
  for (const bool exclusive : {false, true}) {
    for (const bool timestamps : {true, false}) {
      auto log = Log::create_in_memory(small_options()).value();
      auto producer = log.producer({.exclusive = exclusive, .timestamps = timestamps}).value();
      constexpr std::uint64_t kThen = 1'500'000'000'123'456'789;  // 2017
      ASSERT_TRUE(producer.append_at(0, as_bytes("k"), as_bytes("then"), kThen));
      ASSERT_TRUE(producer.append_at(0, {}, as_bytes("epoch"), 0));
      ASSERT_TRUE(producer.append_to(0, {}, as_bytes("now")));
      auto consumer = log.consumer().value();
      std::vector<std::uint64_t> times;
      consumer.poll([&](const Record& r) { times.push_back(r.timestamp_ns); });
      ASSERT_EQ(times.size(), 3u);
      EXPECT_EQ(times[0], kThen);
      EXPECT_EQ(times[1], 0u);
      if (timestamps) {
        EXPECT_GT(times[2], kThen);
      } else {
        EXPECT_EQ(times[2], 0u);
      }
    }
  }
}

TEST(Log, EmptyAndMaximumSizeRecordsRoundTrip) {
  auto o = small_options();
  auto log = Log::create_in_memory(o).value();
  auto producer = log.producer().value();
  std::string big(o.max_record_size, 'x');
  big[0] = 'a';
  big.back() = 'z';
  ASSERT_TRUE(producer.append(as_bytes("")));
  ASSERT_TRUE(producer.append(as_bytes(big)));
  auto consumer = log.consumer().value();
  auto got = drain(consumer);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], "");
  EXPECT_EQ(got[1], big);
}

TEST(Log, OversizeRecordIsRefusedAndNothingIsWritten) {
  auto o = small_options();
  auto log = Log::create_in_memory(o).value();
  auto producer = log.producer().value();
  std::string big(o.max_record_size + 1, 'x');
  EXPECT_EQ(producer.append(as_bytes(big)).error, Errc::kTooLarge);
  EXPECT_EQ(producer.append(as_bytes("k"), as_bytes(std::string(o.max_record_size, 'v'))).error, Errc::kTooLarge);
  EXPECT_EQ(log.info().partitions[0].end_offset, 0u);
}

// Which partition a key goes to is part of the format (format::key_hash).
TEST(Log, AKeysPartitionIsItsPinnedHashModuloThePartitions) {
  auto log = Log::create_in_memory({.partitions = 8}).value();
  auto producer = log.producer().value();
  EXPECT_EQ(producer.partition_for(as_bytes("user-42")), 7u);
  auto r = producer.append(as_bytes("user-42"), as_bytes("v"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r.partition, 7u);
}

TEST(Log, BadPartitionIsRefused) {
  auto log = Log::create_in_memory(small_options()).value();
  auto producer = log.producer().value();
  EXPECT_EQ(producer.append_to(1, {}, as_bytes("x")).error, Errc::kBadPartition);
  ProducerOptions po;
  po.partition = 5;
  auto bad = log.producer(po);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("partition 5 out of range"), std::string::npos);
}

TEST(Log, ZeroCopyClaimCommitAndAbort) {
  auto log = Log::create_in_memory(small_options()).value();
  auto producer = log.producer().value();
  Claim c = producer.claim(5, 2);
  ASSERT_TRUE(c);
  std::memcpy(c.key().data(), "ky", 2);
  std::memcpy(c.value().data(), "hello", 5);
  ASSERT_TRUE(producer.commit(c));
  EXPECT_EQ(producer.commit(c).error, Errc::kBadState);  // already committed
  Claim aborted = producer.claim(3);
  ASSERT_TRUE(aborted);
  std::memcpy(aborted.value().data(), "bad", 3);
  producer.abort(aborted);
  ASSERT_TRUE(producer.append(as_bytes("after")));
  auto consumer = log.consumer().value();
  EXPECT_EQ(drain(consumer), (std::vector<std::string>{"hello", "after"}));
}

TEST(Log, SecondClaimBeforeCommitIsRefused) {
  auto log = Log::create_in_memory(small_options()).value();
  auto producer = log.producer().value();
  Claim c = producer.claim(5);
  ASSERT_TRUE(c);
  Claim d = producer.claim(5);
  EXPECT_FALSE(d);
  EXPECT_EQ(d.error(), Errc::kBadState);
  producer.abort(c);
}

TEST(Log, BatchAppendKeepsOrder) {
  auto log = Log::create_in_memory(small_options()).value();
  auto producer = log.producer().value();
  std::vector<std::string> values = {"a", "bb", "ccc"};
  std::vector<Bytes> spans;
  for (auto& v : values) spans.push_back(as_bytes(v));
  AppendResult last;
  EXPECT_EQ(producer.append_batch(spans, &last), 3u);
  EXPECT_TRUE(last);
  auto consumer = log.consumer().value();
  EXPECT_EQ(drain(consumer), values);
}

TEST(Log, ClaimCrossingSegmentEndBecomesPaddingAndRecordMovesToNextSegment) {
  auto o = small_options();
  auto log = Log::create_in_memory(o).value();
  auto& s = test::state(log);
  const std::uint64_t start = o.segment_size - 64;  // 64 bytes left in segment 0
  format::atomic(s.partition(0).tail_position).store(start);
  auto consumer = log.consumer({.from = StartFrom::latest()}).value();
  auto producer = log.producer().value();
  auto r = producer.append(as_bytes(std::string(100, 'p')));  // 132 bytes: does not fit
  ASSERT_TRUE(r);
  EXPECT_GE(r.offset, o.segment_size);
  std::vector<Record> seen;
  consumer.poll([&](const Record& rec) { seen.push_back(rec); });
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].offset, r.offset);
  EXPECT_EQ(seen[0].value.size(), 100u);
}

TEST(Log, ExclusiveProducerCrossesSegmentsAndKeepsOrder) {
  auto o = small_options();
  auto log = Log::create_in_memory(o).value();
  auto producer = log.producer({.exclusive = true}).value();
  auto consumer = log.consumer({.group = "g"}).value();
  // Ten times the ring, reading as we go so backpressure never bites.
  std::uint64_t next = 0, received = 0;
  std::string value(300, 'e');
  for (int i = 0; i < 10 * 4 * 64 * 1024 / 332; ++i) {
    std::memcpy(value.data(), &i, sizeof i);
    ASSERT_TRUE(producer.append(as_bytes(value))) << i;
    consumer.poll([&](const Record& r) {
      int got;
      std::memcpy(&got, r.value.data(), sizeof got);
      EXPECT_EQ(static_cast<std::uint64_t>(got), next);
      ++next;
      ++received;
    });
  }
  while (consumer.poll([&](const Record&) { ++received; }).records > 0) {
  }
  EXPECT_EQ(received, static_cast<std::uint64_t>(10 * 4 * 64 * 1024 / 332));
}

// An exclusive producer's inline append (shmlog/log.h) and the library's
// paths (append_to with a key, claim and commit) share its cursor: mixed,
// with sizes from 0 to ~9 KB across segment ends and zeroing chunks, every
// record reads back whole at the offset its append returned.
TEST(Log, InlineAndLibraryAppendsOfAnExclusiveProducerInterleave) {
  auto log = Log::create_in_memory(small_options()).value();
  auto producer = log.producer({.exclusive = true}).value();
  auto consumer = log.consumer({.group = "g"}).value();
  auto value_of = [](int i) { return std::string(static_cast<std::size_t>(i * 7919 % 9000), static_cast<char>('a' + i % 26)); };
  std::vector<std::uint64_t> offsets;
  std::size_t checked = 0;
  auto check = [&](const Record& r) {
    const int i = static_cast<int>(checked++);
    ASSERT_LT(static_cast<std::size_t>(i), offsets.size());
    EXPECT_EQ(r.offset, offsets[static_cast<std::size_t>(i)]) << i;
    EXPECT_EQ(bytes_to_string(r.value), value_of(i)) << i;
    EXPECT_EQ(bytes_to_string(r.key), i % 5 == 1 ? "k" : "") << i;
  };
  const int n = 3000;  // ~13 MB: fifty laps of the 256 KiB ring
  for (int i = 0; i < n; ++i) {
    const std::string v = value_of(i);
    AppendResult r;
    if (i % 5 == 1) {
      r = producer.append_to(0, as_bytes("k"), as_bytes(v));
    } else if (i % 11 == 3) {
      auto claim = producer.claim(v.size());
      ASSERT_TRUE(claim) << i;
      std::memcpy(claim.value().data(), v.data(), v.size());
      r = producer.commit(claim);
    } else {
      r = producer.append(as_bytes(v));
    }
    ASSERT_TRUE(r) << i << ": " << errc_name(r.error);
    offsets.push_back(r.offset);
    consumer.poll(check, 64);
  }
  while (consumer.poll(check, 64).records > 0) {
  }
  EXPECT_EQ(checked, static_cast<std::size_t>(n));
}

// The inline append copies a value of up to detail::kShortValue bytes
// with two overlapping moves of a fixed width, and a longer one with
// memcpy out of line (Producer::append_long): every size from 0 to past
// that limit reads back byte for byte, each byte distinct from its
// neighbours so that a move off by one shows.
TEST(Log, InlineAppendCopiesValuesOfEverySizeWhole) {
  auto log = Log::create_in_memory(small_options()).value();
  auto producer = log.producer({.exclusive = true}).value();
  auto consumer = log.consumer({.group = "g"}).value();
  const auto value_of = [](std::size_t size) {
    std::string v(size, '\0');
    for (std::size_t j = 0; j < size; ++j) v[j] = static_cast<char>(size * 31 + j * 7 + 1);
    return v;
  };
  constexpr std::size_t kLongest = 2 * detail::kShortValue + 3;
  for (int round = 0; round < 3; ++round) {  // at different offsets in the segments
    for (std::size_t size = 0; size <= kLongest; ++size) {
      ASSERT_TRUE(producer.append(as_bytes(value_of(size)))) << size;
    }
  }
  std::size_t next = 0;
  while (consumer.poll([&](const Record& r) {
                   ASSERT_EQ(bytes_to_string(r.value), value_of(next % (kLongest + 1))) << next;
                   ++next;
                 },
                 64)
             .records > 0) {
  }
  EXPECT_EQ(next, 3 * (kLongest + 1));
}

TEST(Log, ExclusiveProducerClosingMidSegmentLeavesTheNextSlotReady) {
  auto o = small_options();
  auto log = Log::create_in_memory(o).value();
  auto& s = test::state(log);
  // Start in the last segment of the first lap: the next one (4) reuses slot 0.
  const std::uint64_t last = o.ring_segments - 1;
  format::atomic(s.partition(0).tail_position).store(last * o.segment_size);
  {
    auto exclusive = log.producer({.exclusive = true}).value();
    ASSERT_TRUE(exclusive.append(as_bytes("first")));
    ASSERT_TRUE(exclusive.append(as_bytes("second")));
    // It has taken slot 0 for segment 4, to zero it ahead.
    const auto w = format::atomic(s.descriptor(0, last + 1).state_word).load();
    EXPECT_EQ(format::segment_index(w), last + 1);
    EXPECT_EQ(format::segment_state(w), format::SegmentState::kPreparing);
  }
  const auto w = format::atomic(s.descriptor(0, last + 1).state_word).load();
  EXPECT_EQ(format::segment_state(w), format::SegmentState::kReady);
  // A shared producer crosses into segment 1 without waiting.
  auto shared = log.producer({.backpressure_timeout = std::chrono::milliseconds(100)}).value();
  std::string value(1000, 's');
  for (int i = 0; i < 2 * 64; ++i) ASSERT_TRUE(shared.append(as_bytes(value))) << i;
}

TEST(Log, ExclusiveProducerIsAloneOnItsLog) {
  auto log = Log::create_in_memory(small_options()).value();
  {
    auto exclusive = log.producer({.exclusive = true}).value();
    auto shared = log.producer();
    ASSERT_FALSE(shared.ok());
    EXPECT_EQ(shared.status().code(), Status::Code::kBusy);
    EXPECT_NE(shared.status().message().find("exclusive producer"), std::string::npos);
  }
  auto shared = log.producer().value();
  auto exclusive = log.producer({.exclusive = true});
  ASSERT_FALSE(exclusive.ok());
  EXPECT_NE(exclusive.status().message().find("must be alone"), std::string::npos);
}

TEST(Log, OverwriteNeverBlocksProducersAndLappedConsumerLearnsItsLoss) {
  auto o = small_options();
  o.policy = Policy::kOverwrite;
  auto log = Log::create_in_memory(o).value();
  auto consumer = log.consumer().value();  // reads nothing while the ring laps
  auto producer = log.producer().value();
  std::string value(1000, 'o');
  const int n = 3 * 4 * 64 * 1024 / 1056;  // three rings' worth
  for (int i = 0; i < n; ++i) ASSERT_TRUE(producer.append(as_bytes(value))) << i;
  std::uint64_t got = 0;
  auto r = consumer.poll([&](const Record&) { ++got; }, 1'000'000);
  EXPECT_GT(r.lost_bytes, 0u);
  EXPECT_EQ(consumer.lost_bytes(), r.lost_bytes);
  // What was lost plus what was read covers everything appended.
  while (consumer.poll([&](const Record&) { ++got; }, 1'000'000).records > 0) {
  }
  EXPECT_LT(got, static_cast<std::uint64_t>(n));
  // Lost bytes are the missed records plus the padding at the end of the
  // segments they were in.
  const std::uint64_t missed = static_cast<std::uint64_t>(n) - got;
  const std::uint64_t segments = missed * 1056 / (64 * 1024) + 2;
  EXPECT_GE(consumer.lost_bytes(), missed * 1056);
  EXPECT_LE(consumer.lost_bytes(), missed * 1056 + segments * 1056);
}

TEST(Log, ReaderWithoutGroupLappedMidSegmentNeverTakesANewerRecordForItsOwn) {
  // Backpressure holds the ring for groups only. A private reader sits in the
  // middle of segment 0 when the ring laps: the same slot then holds a newer
  // segment with records at the same offsets, which must not be delivered as
  // if they were segment 0's.
  auto o = small_options();
  auto log = Log::create_in_memory(o).value();
  auto reader = log.consumer().value();
  // Exclusive: segment k holds records k*62 .. k*62+61 at offsets j*1056.
  auto producer = log.producer({.exclusive = true}).value();
  constexpr std::uint64_t kRecord = 1056;  // 32 + 1000 bytes, aligned
  constexpr std::uint64_t kPerSegment = 64 * 1024 / kRecord;
  std::string value(1000, 'l');
  auto append = [&](std::uint64_t index) {
    std::memcpy(value.data(), &index, sizeof index);
    ASSERT_TRUE(producer.append(as_bytes(value)));
  };
  for (std::uint64_t i = 0; i < 3; ++i) append(i);
  int seen = 0;
  reader.poll([&](const Record&) { ++seen; }, 3);
  ASSERT_EQ(seen, 3);
  for (std::uint64_t i = 3; i < 5 * kPerSegment; ++i) append(i);  // the ring laps
  int wrong = 0;
  while (reader.poll([&](const Record& r) {
                   std::uint64_t index;
                   std::memcpy(&index, r.value.data(), sizeof index);
                   const std::uint64_t expected =
                       (r.offset / (64 * 1024)) * kPerSegment + (r.offset % (64 * 1024)) / kRecord;
                   if (index != expected) ++wrong;
                 },
                 1000)
             .records > 0) {
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_GT(reader.lost_bytes(), 0u);
}

TEST(Log, LappedGroupCountsExactlyTheBytesItLost) {
  auto o = small_options();
  o.policy = Policy::kOverwrite;
  auto log = Log::create_in_memory(o).value();
  auto consumer = log.consumer({.group = "late"}).value();
  auto producer = log.producer().value();
  std::string value(1000, 'x');
  for (int i = 0; i < 3 * 4 * 64 * 1024 / 1056; ++i) ASSERT_TRUE(producer.append(as_bytes(value)));
  while (consumer.poll([](const Record&) {}, 1000).records > 0) {
  }
  ASSERT_GT(consumer.lost_bytes(), 0u);
  EXPECT_EQ(log.info().groups.at(0).partitions.at(0).lost_bytes, consumer.lost_bytes());
}

TEST(Log, LagInTimeIsTheAgeOfTheOldestUnconsumedRecord) {
  auto log = Log::create_in_memory(small_options()).value();
  auto consumer = log.consumer({.group = "g"}).value();
  auto producer = log.producer().value();
  ASSERT_TRUE(producer.append(as_bytes("old")));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  ASSERT_TRUE(producer.append(as_bytes("new")));
  const auto lag = log.info().groups.at(0).partitions.at(0);
  EXPECT_EQ(lag.lag_records, 2u);
  EXPECT_GE(lag.lag_ns, 30'000'000u);
  consumer.poll([](const Record&) {}, 10);
  EXPECT_EQ(log.info().groups.at(0).partitions.at(0).lag_ns, 0u);
}

TEST(Log, FullRingUnderBackpressureTimesOutThenResumesAfterCommit) {
  auto o = small_options();
  auto log = Log::create_in_memory(o).value();
  auto consumer = log.consumer({.group = "slow", .mode = DeliveryMode::kManual}).value();
  auto producer = log.producer({.backpressure_timeout = std::chrono::milliseconds(20)}).value();
  std::string value(1000, 'b');
  int appended = 0;
  AppendResult r;
  while ((r = producer.append(as_bytes(value)))) ++appended;
  EXPECT_EQ(r.error, Errc::kBackpressureTimeout);
  EXPECT_GT(appended, 4 * 64 * 1024 / 1056 - 4);  // roughly the ring's capacity
  const auto stalled = log.info().producers.at(0);
  EXPECT_EQ(stalled.appends, static_cast<std::uint64_t>(appended));
  EXPECT_GE(stalled.backpressure_waits, 1u);
  EXPECT_GE(stalled.backpressure_wait_ns, 20'000'000u);  // the 20 ms timeout was spent waiting
  int read = 0;
  while (consumer.poll([&](const Record&) { ++read; }, 1000).records > 0) {
  }
  consumer.commit();
  EXPECT_TRUE(producer.append(as_bytes(value)));
  // The timed-out claim left a hole; the reader abandons it after the claim
  // timeout, then sees the record appended after the commit.
  int more = 0;
  auto res = consumer.poll_wait([&](const Record&) { ++more; }, 10, std::chrono::seconds(10));
  EXPECT_EQ(res.records, 1u);
  EXPECT_EQ(read, appended);
}

TEST(Log, AbandonedClaimIsSkippedAfterTimeoutAndLateCommitIsRevoked) {
  auto log = Log::create_in_memory(small_options()).value();
  auto stuck = log.producer().value();
  auto other = log.producer().value();
  Claim c = stuck.claim(8);
  ASSERT_TRUE(c);
  ASSERT_TRUE(other.append(as_bytes("after")));
  auto consumer = log.consumer().value();
  std::vector<std::string> got;
  auto r = consumer.poll_wait([&](const Record& rec) { got.push_back(bytes_to_string(rec.value)); }, 10,
                              std::chrono::seconds(10));
  EXPECT_EQ(r.records, 1u);
  EXPECT_EQ(got, std::vector<std::string>{"after"});
  EXPECT_EQ(stuck.commit(c).error, Errc::kRevoked);
  const auto info = log.info();
  EXPECT_EQ(info.producers[0].appends, 0u);
  EXPECT_EQ(info.producers[0].revoked, 1u);
  EXPECT_EQ(info.partitions[0].abandoned_claims, 1u);
}

TEST(Log, UnregisteredClaimBelowTheTailIsPoisonedAndSkipped) {
  auto log = Log::create_in_memory(small_options()).value();
  auto& s = test::state(log);
  // A producer that died right after its fetch-add: 96 bytes claimed, no word.
  format::atomic(s.partition(0).tail_position).fetch_add(96);
  auto producer = log.producer().value();
  ASSERT_TRUE(producer.append(as_bytes("next")));
  auto consumer = log.consumer().value();
  std::vector<Record> got;
  auto r = consumer.poll_wait([&](const Record& rec) { got.push_back(rec); }, 10, std::chrono::seconds(10));
  ASSERT_EQ(r.records, 1u);
  EXPECT_EQ(got[0].offset, 96u);
}

TEST(Log, ChecksumMismatchIsReportedAndTheRecordSkipped) {
  auto o = small_options();
  o.checksums = true;
  auto log = Log::create_in_memory(o).value();
  auto producer = log.producer().value();
  auto bad = producer.append(as_bytes("will be damaged"));
  ASSERT_TRUE(producer.append(as_bytes("intact")));
  auto& s = test::state(log);
  s.segment_base(0, 0)[bad.offset + format::kRecordHeaderSize + 3] ^= std::byte{1};
  auto consumer = log.consumer().value();
  std::vector<std::string> got;
  auto r = consumer.poll([&](const Record& rec) { got.push_back(bytes_to_string(rec.value)); });
  EXPECT_EQ(got, std::vector<std::string>{"intact"});
  EXPECT_EQ(r.corrupt, 64u);
  const auto damage = consumer.take_damage();
  ASSERT_EQ(damage.size(), 1u);
  EXPECT_EQ(damage[0].from, bad.offset);
  EXPECT_EQ(damage[0].to, bad.offset + 64);
  EXPECT_EQ(damage[0].what, "the log's memory: a record whose checksum does not match");
  EXPECT_TRUE(consumer.take_damage().empty()) << "taken twice";
}

TEST(Log, CorruptLengthInSharedMemoryIsSkippedToTheSegmentEnd) {
  auto log = Log::create_in_memory(small_options()).value();
  auto producer = log.producer().value();
  ASSERT_TRUE(producer.append(as_bytes("x")));
  auto& s = test::state(log);
  // Another process scribbled a length that runs past the segment.
  format::atomic(*reinterpret_cast<std::uint64_t*>(s.segment_base(0, 0)))
      .store(format::make_commit_word(1 << 30, format::RecordType::kData, 0, 0));
  auto consumer = log.consumer().value();
  auto r = consumer.poll([](const Record&) {});
  EXPECT_EQ(r.records, 0u);
  EXPECT_EQ(r.corrupt, 64u * 1024);
  EXPECT_EQ(consumer.position(0), 64u * 1024);
  const auto damage = consumer.take_damage();
  ASSERT_EQ(damage.size(), 1u);
  EXPECT_EQ(damage[0].to, 64u * 1024);
  EXPECT_EQ(damage[0].what, "the log's memory: a record with an impossible length");
}

TEST(Log, SeekToARecordBoundaryAndRefuseAnythingElse) {
  auto log = Log::create_in_memory(small_options()).value();
  auto producer = log.producer().value();
  for (const char* v : {"a", "b", "c"}) ASSERT_TRUE(producer.append(as_bytes(v)));
  auto consumer = log.consumer().value();
  ASSERT_TRUE(consumer.seek(0, 64).ok());
  EXPECT_EQ(drain(consumer), (std::vector<std::string>{"b", "c"}));
  Status mid = consumer.seek(0, 32);
  EXPECT_FALSE(mid.ok());
  EXPECT_NE(mid.message().find("not a record boundary"), std::string::npos);
  EXPECT_FALSE(consumer.seek(0, 1 << 20).ok());
  EXPECT_FALSE(consumer.seek(3, 0).ok());
  auto from = log.consumer({.from = StartFrom::at(32)});
  EXPECT_FALSE(from.ok());
}

TEST(Log, OptionsAreValidatedWithTheOptionNamed) {
  auto expect_bad = [](LogOptions o, const char* words) {
    Status s = validate(o);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find(words), std::string::npos) << s.message();
  };
  LogOptions o;
  o.segment_size = 100000;
  expect_bad(o, "segment size");
  o = {};
  o.ring_segments = 1;
  expect_bad(o, "ring segments");
  o = {};
  o.max_record_size = 8u << 20;
  expect_bad(o, "max record size");
  o = {};
  o.partitions = 0;
  expect_bad(o, "partitions");
  o = {};
  o.mode = 0400;
  expect_bad(o, "mode");
  EXPECT_TRUE(validate(LogOptions{}).ok());
}

TEST(Placement, ProducerAndConsumerOptionsPinTheCallingThread) {
  auto log = Log::create_in_memory(small_options()).value();
  std::thread t([&] {
    auto producer = log.producer({.core = 0});
    ASSERT_TRUE(producer.ok()) << producer.status().to_string();
    cpu_set_t set;
    ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    EXPECT_EQ(CPU_COUNT(&set), 1);
    EXPECT_TRUE(CPU_ISSET(0, &set));
    auto bad = log.consumer({.core = 4096});
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("core 4096 does not exist"), std::string::npos);
  });
  t.join();
  EXPECT_FALSE(pin_current_thread(100000).ok());
}

TEST(ParseSize, AcceptsSuffixesAndRejectsGarbage) {
  EXPECT_EQ(parse_size("123").value(), 123u);
  EXPECT_EQ(parse_size("64K").value(), 65536u);
  EXPECT_EQ(parse_size("4m").value(), 4u << 20);
  EXPECT_EQ(parse_size("1G").value(), 1u << 30);
  for (const char* bad : {"", "K", "12X", "-1", "1.5M", "99999999999999999999"}) {
    EXPECT_FALSE(parse_size(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace shmlog
