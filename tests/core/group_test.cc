#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "log_access.h"
#include "test_util.h"

namespace shmlog {
namespace {

using test::bytes_to_string;

LogOptions options(std::uint32_t partitions = 1) {
  LogOptions o;
  o.partitions = partitions;
  o.segment_size = 64 * 1024;
  o.ring_segments = 4;
  o.max_record_size = 4096;
  return o;
}

void append_n(Producer& p, int from, int to, std::uint32_t partition = 0) {
  for (int i = from; i < to; ++i) {
    ASSERT_TRUE(p.append_to(partition, {}, as_bytes(std::to_string(i))));
  }
}

std::vector<std::string> poll_all(Consumer& c, std::size_t max = 1000) {
  std::vector<std::string> out;
  while (c.poll([&](const Record& r) { out.push_back(bytes_to_string(r.value)); }, max).records > 0) {
  }
  return out;
}

TEST(Group, AtLeastOnceMemberResumesAfterTheLastProcessedRecord) {
  auto log = Log::create_in_memory(options()).value();
  auto producer = log.producer().value();
  append_n(producer, 0, 10);
  {
    auto c = log.consumer({.group = "g", .mode = DeliveryMode::kAtLeastOnce}).value();
    std::vector<std::string> got;
    c.poll([&](const Record& r) { got.push_back(bytes_to_string(r.value)); }, 4);
    EXPECT_EQ(got.size(), 4u);
  }
  auto c = log.consumer({.group = "g"}).value();
  auto rest = poll_all(c);
  ASSERT_EQ(rest.size(), 6u);
  EXPECT_EQ(rest.front(), "4");
}

TEST(Group, AtMostOnceCommitsBeforeTheHandlerRuns) {
  auto log = Log::create_in_memory(options()).value();
  auto producer = log.producer().value();
  append_n(producer, 0, 3);
  auto c = log.consumer({.group = "g", .mode = DeliveryMode::kAtMostOnce}).value();
  auto info_during = LogInfo{};
  c.poll([&](const Record&) { info_during = log.info(); }, 1);
  // Inside the handler of record 0, the group had already committed past it.
  EXPECT_EQ(info_during.groups.at(0).partitions.at(0).committed_offset, 64u);  // one 64-byte record
}

// At-most-once commits past a batch before its handler runs; a producer
// blocked by backpressure must still not reuse the segment the handler is
// reading: the view stays as it was until the handler returns.
TEST(Group, AtMostOnceViewsStayValidWhileTheHandlerRunsUnderBackpressure) {
  LogOptions o = options();
  o.ring_segments = 2;
  auto log = Log::create_in_memory(o).value();
  auto c = log.consumer({.group = "g", .mode = DeliveryMode::kAtMostOnce, .commit_every = 1000}).value();
  auto producer = log.producer({.backpressure_timeout = std::chrono::milliseconds(200)}).value();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(producer.append(as_bytes(std::string(1000, 'L'))));  // segments 0 and 1
  bool checked = false;
  c.poll(
      [&](const Record& r) {
        if (checked) return;
        checked = true;
        EXPECT_EQ(r.offset, 0u);
        const std::string before = bytes_to_string(r.value);
        // Fill the ring: without the handler's hold, the producer reuses
        // segment 0 (the commit is already past it) and overwrites this record.
        Errc last = Errc::kOk;
        for (int i = 0; i < 100 && last == Errc::kOk; ++i) last = producer.append(as_bytes(std::string(1000, 'J'))).error;
        EXPECT_EQ(last, Errc::kBackpressureTimeout);
        EXPECT_TRUE(bytes_to_string(r.value) == before) << "the view changed under its handler";
      },
      1000);
  EXPECT_TRUE(checked);
  // Once the handler returned, the ring moves on.
  EXPECT_TRUE(producer.append(as_bytes(std::string(1000, 'J'))));
}

TEST(Group, CommitEveryNRecordsBatchesCommits) {
  auto log = Log::create_in_memory(options()).value();
  auto producer = log.producer().value();
  append_n(producer, 0, 10);
  auto c = log.consumer({.group = "g", .mode = DeliveryMode::kAtLeastOnce, .commit_every = 4}).value();
  c.poll([](const Record&) {}, 6);
  EXPECT_EQ(log.info().groups[0].partitions[0].committed_offset, 4u * 64);
  c.commit();
  EXPECT_EQ(log.info().groups[0].partitions[0].committed_offset, 6u * 64);
}

TEST(Group, ManualModeCommitsOnlyWhenAsked) {
  auto log = Log::create_in_memory(options()).value();
  auto producer = log.producer().value();
  append_n(producer, 0, 5);
  auto c = log.consumer({.group = "g", .mode = DeliveryMode::kManual}).value();
  poll_all(c);
  EXPECT_EQ(log.info().groups[0].partitions[0].committed_offset, 0u);
  ASSERT_TRUE(c.commit(0, 64).ok());
  EXPECT_EQ(log.info().groups[0].partitions[0].committed_offset, 64u);
  EXPECT_FALSE(c.commit(0, 48).ok());        // not a boundary
  EXPECT_FALSE(c.commit(0, 1 << 20).ok());   // beyond the position
  EXPECT_FALSE(c.commit(7, 0).ok());         // not assigned
}

// A member the others released as dead (its process judged gone while it
// ran) kept committing with a plain store: its offset went back under the
// member that took the partition over, which had committed further, and
// the records between came again. Its member index was reused by that
// member, so the owner alone could not tell them apart.
TEST(Group, AMemberReleasedAsDeadCannotMoveTheOffsetBack) {
  auto log = Log::create_in_memory(options()).value();
  auto producer = log.producer().value();
  append_n(producer, 0, 10);
  ConsumerOptions co;
  co.group = "g";
  co.mode = DeliveryMode::kManual;
  auto released = log.consumer(co).value();
  EXPECT_EQ(released.poll([](const Record&) {}, 4).records, 4u);
  const std::uint64_t its_position = released.position(0).value();
  detail::release_member(test::state(log), 0, 0);  // as the liveness check does for a dead member
  auto successor = log.consumer(co).value();  // takes member slot 0 again
  EXPECT_EQ(poll_all(successor).size(), 10u);
  successor.commit();
  const std::uint64_t end = test::state(log).offset_slot(0, 0).committed_offset;
  ASSERT_GT(end, its_position);
  const Status refused = released.commit(0, its_position);
  EXPECT_EQ(refused.code(), Status::Code::kAborted) << refused.to_string();
  released.commit();
  EXPECT_EQ(test::state(log).offset_slot(0, 0).committed_offset, end);
  EXPECT_TRUE(poll_all(released).empty()) << "the released member still reads the partition";
  { Consumer closed = std::move(released); }
  EXPECT_EQ(log.info().groups.at(0).members, 1u) << "closing the released member freed its successor's slot";
}

TEST(Group, NewGroupStartsWhereFromSays) {
  auto log = Log::create_in_memory(options()).value();
  auto producer = log.producer().value();
  append_n(producer, 0, 3);
  auto latest = log.consumer({.group = "late", .from = StartFrom::latest()}).value();
  auto at = log.consumer({.group = "at", .from = StartFrom::at(64)}).value();
  append_n(producer, 3, 4);
  EXPECT_EQ(poll_all(latest), std::vector<std::string>{"3"});
  EXPECT_EQ(poll_all(at), (std::vector<std::string>{"1", "2", "3"}));
}

TEST(Group, MembersSplitPartitionsAndTakeOverWhenOneLeaves) {
  auto log = Log::create_in_memory(options(4)).value();
  auto producer = log.producer().value();
  for (std::uint32_t p = 0; p < 4; ++p) append_n(producer, 0, 5, p);
  auto a = log.consumer({.group = "g"}).value();
  auto b = log.consumer({.group = "g"}).value();
  // a sees b's arrival at its next poll and lets go of b's share.
  std::set<std::string> seen;
  auto handler = [&](const Record& r) { seen.insert(std::to_string(r.partition) + ":" + bytes_to_string(r.value)); };
  for (int i = 0; i < 10; ++i) {
    a.poll(handler, 1);
    b.poll(handler, 1);
  }
  auto sa = a.assignment(), sb = b.assignment();
  EXPECT_EQ(sa.size(), 2u);
  EXPECT_EQ(sb.size(), 2u);
  for (auto p : sa) EXPECT_EQ(std::count(sb.begin(), sb.end(), p), 0);
  b.close();
  for (int i = 0; i < 100; ++i) a.poll(handler, 100);
  EXPECT_EQ(a.assignment().size(), 4u);
  EXPECT_EQ(seen.size(), 20u);  // every record once, none lost in the hand-over
}

TEST(Group, GroupNameIsValidated) {
  auto log = Log::create_in_memory(options()).value();
  EXPECT_FALSE(log.consumer({.group = std::string(64, 'g')}).ok());
  auto with_partitions = log.consumer({.group = "g", .partitions = {0}});
  ASSERT_FALSE(with_partitions.ok());
  EXPECT_NE(with_partitions.status().message().find("assigns them"), std::string::npos);
}

TEST(Group, TooManyMembersIsAClearError) {
  auto o = options();
  o.max_members = 2;
  auto log = Log::create_in_memory(o).value();
  auto a = log.consumer({.group = "g"}).value();
  auto b = log.consumer({.group = "g"}).value();
  auto c = log.consumer({.group = "g"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("already has 2 members"), std::string::npos);
}

TEST(Group, LagIsReportedPerPartition) {
  auto log = Log::create_in_memory(options()).value();
  auto producer = log.producer().value();
  auto c = log.consumer({.group = "g"}).value();
  append_n(producer, 0, 7);
  c.poll([](const Record&) {}, 2);
  auto gp = log.info().groups.at(0).partitions.at(0);
  EXPECT_EQ(gp.lag_records, 5u);
  EXPECT_EQ(gp.lag_bytes, 5u * 64);
  EXPECT_EQ(gp.owner, 0);
}

// delete_group: the ring stops waiting for a group nobody reads, and the
// group is gone from info; a live member makes it refuse, unless forced,
// and a forced-out member reads no more.
TEST(Group, ADeletedGroupNoLongerHoldsTheRing) {
  LogOptions o = options();
  o.policy = Policy::kBackpressure;
  auto log = Log::create_in_memory(o).value();
  {
    auto idle = log.consumer({.group = "abandoned"}).value();  // joins, reads nothing, leaves
  }
  auto producer = log.producer({.backpressure_timeout = std::chrono::milliseconds(50)}).value();
  const std::string value(1000, 'x');
  AppendResult r;
  for (int i = 0; i < 1000 && (r = producer.append(as_bytes(value))); ++i) {
  }
  ASSERT_EQ(r.error, Errc::kBackpressureTimeout);  // the group holds the ring
  ASSERT_TRUE(log.delete_group("abandoned").ok());
  EXPECT_TRUE(log.info().groups.empty());
  EXPECT_TRUE(producer.append(as_bytes(value)));  // the ring moves on
  auto again = log.delete_group("abandoned");
  EXPECT_EQ(again.code(), Status::Code::kNotFound);
  EXPECT_NE(again.message().find("no group 'abandoned'"), std::string::npos) << again.message();
}

// A shared claim that times out waiting for room takes no positions: a
// producer retrying against a full ring leaves no holes for readers to
// wait out (each one the claim timeout, counted as an abandoned claim),
// and once the group reads on, the retried record is the next one.
TEST(Group, RetriesAgainstAFullRingLeaveNoHoles) {
  LogOptions o = options();
  o.policy = Policy::kBackpressure;
  o.ring_segments = 2;
  o.claim_timeout = std::chrono::milliseconds(50);
  auto log = Log::create_in_memory(o).value();
  auto member = log.consumer({.group = "slow"}).value();
  auto producer = log.producer({.backpressure_timeout = std::chrono::milliseconds(2)}).value();  // shared claims
  const std::string value(1000, 'x');
  AppendResult r;
  int appended = 0;
  for (; appended < 1000 && (r = producer.append(as_bytes(value))); ++appended) {
  }
  ASSERT_EQ(r.error, Errc::kBackpressureTimeout);
  const std::uint64_t end = log.info().partitions[0].end_offset;
  for (int retry = 0; retry < 100; ++retry) ASSERT_EQ(producer.append(as_bytes(value)).error, Errc::kBackpressureTimeout);
  EXPECT_EQ(log.info().partitions[0].end_offset, end);  // each retry used to take a frame
  EXPECT_EQ(poll_all(member).size(), static_cast<std::size_t>(appended));
  const AppendResult next = producer.append(as_bytes("next"));
  ASSERT_TRUE(next) << errc_name(next.error);
  std::vector<std::string> rest;
  for (int polls = 0; polls < 1000 && rest.empty(); ++polls) rest = poll_all(member);
  EXPECT_EQ(rest, std::vector<std::string>{"next"});
  EXPECT_EQ(log.info().partitions[0].abandoned_claims, 0u);
}

TEST(Group, DeletingAGroupWithLiveMembersIsRefusedUnlessForced) {
  auto log = Log::create_in_memory(options()).value();
  auto producer = log.producer().value();
  append_n(producer, 0, 3);
  auto member = log.consumer({.group = "billing"}).value();
  ASSERT_EQ(poll_all(member).size(), 3u);
  auto refused = log.delete_group("billing");
  EXPECT_EQ(refused.code(), Status::Code::kBusy);
  EXPECT_NE(refused.message().find("1 live member(s)"), std::string::npos) << refused.message();
  ASSERT_EQ(log.info().groups.size(), 1u);

  ASSERT_TRUE(log.delete_group("billing", /*force=*/true).ok());
  EXPECT_TRUE(log.info().groups.empty());
  append_n(producer, 3, 6);
  EXPECT_TRUE(poll_all(member).empty());  // released: it reads no more
  EXPECT_FALSE(member.commit(0, 0).ok());  // nor commits
  // A new group of that name starts afresh, where `from` says.
  auto fresh = log.consumer({.group = "billing", .from = StartFrom::earliest()}).value();
  EXPECT_EQ(poll_all(fresh).size(), 6u);
}

// Kafka's offset reset: a group that read everything reads it again from
// the earliest record, from a time, from a record boundary, or nothing
// (latest), in every partition.
TEST(Group, AResetGroupReadsFromWhereItWasMoved) {
  auto log = Log::create_in_memory(options(2)).value();
  auto producer = log.producer().value();
  append_n(producer, 0, 3, 0);
  append_n(producer, 0, 2, 1);
  const auto between = detail::now_realtime_ns();
  append_n(producer, 3, 5, 0);
  {
    auto member = log.consumer({.group = "billing"}).value();
    ASSERT_EQ(poll_all(member).size(), 7u);
  }
  auto read_again = [&] {
    auto member = log.consumer({.group = "billing"}).value();
    return poll_all(member).size();
  };
  auto earliest = log.reset_group("billing", GroupReset::earliest());
  ASSERT_TRUE(earliest.ok()) << earliest.status().to_string();
  EXPECT_EQ(*earliest, (std::vector<std::uint64_t>{0, 0}));
  EXPECT_EQ(read_again(), 7u);

  ASSERT_TRUE(log.reset_group("billing", GroupReset::to_time(between)).ok());
  EXPECT_EQ(read_again(), 2u);  // the records appended after `between`, in partition 0

  auto latest = log.reset_group("billing", GroupReset::latest());
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(*latest, (std::vector<std::uint64_t>{log.info().partitions[0].end_offset,
                                                 log.info().partitions[1].end_offset}));
  EXPECT_EQ(read_again(), 0u);

  // The second record of each partition starts at 32 (header) + its value, aligned.
  const std::uint64_t second = log.info().partitions[1].end_offset / 2;
  auto at_offset = log.reset_group("billing", GroupReset::to_offset(second));
  ASSERT_TRUE(at_offset.ok()) << at_offset.status().to_string();
  EXPECT_EQ(read_again(), 4u + 1u);

  auto torn = log.reset_group("billing", GroupReset::to_offset(second + 32));
  EXPECT_EQ(torn.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(torn.status().message().find("is not a record boundary"), std::string::npos) << torn.status().message();
}

TEST(Group, ResettingAGroupWithLiveMembersOrNoneIsRefused) {
  auto log = Log::create_in_memory(options()).value();
  auto producer = log.producer().value();
  append_n(producer, 0, 3);
  auto member = log.consumer({.group = "billing"}).value();
  ASSERT_EQ(poll_all(member).size(), 3u);
  auto refused = log.reset_group("billing", GroupReset::earliest());
  EXPECT_EQ(refused.status().code(), Status::Code::kBusy);
  EXPECT_NE(refused.status().message().find("1 live member(s)"), std::string::npos) << refused.status().message();
  EXPECT_TRUE(poll_all(member).empty()) << "the live member's offsets stay";
  auto missing = log.reset_group("audit", GroupReset::earliest());
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace shmlog
