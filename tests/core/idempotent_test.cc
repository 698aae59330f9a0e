// Named (idempotent) producers: the last sequence survives restarts and
// crashes, re-sent records are refused as duplicates, and a newer instance
// fences an older one so that nothing the older appends afterwards is seen.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "log_access.h"
#include "shmlog/shm/process.h"
#include "test_util.h"
#include "test_hooks.h"

namespace shmlog {
namespace {

LogOptions small(std::chrono::milliseconds claim_timeout = std::chrono::milliseconds(1000)) {
  LogOptions o;
  o.partitions = 2;
  o.segment_size = 64 * 1024;
  o.ring_segments = 64;  // 4 MiB per partition: no test here wraps the ring
  o.max_record_size = 1024;
  o.claim_timeout = claim_timeout;
  return o;
}

ProducerOptions named(const std::string& id) {
  ProducerOptions po;
  po.producer_id = id;
  return po;
}

// Every record of the log, in partition 0's then partition 1's order.
std::vector<Record> read_all(const Log& log, std::vector<std::string>* values = nullptr) {
  auto c = log.consumer().value();
  std::vector<Record> out;
  while (c.poll([&](const Record& r) {
           out.push_back(r);
           if (values != nullptr) values->push_back(test::bytes_to_string(r.value));
         }).records != 0) {
  }
  return out;
}

TEST(Idempotent, LastSequenceSurvivesAReopenAndResentRecordsAreDuplicates) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small()).value();
  {
    auto p = log.producer(named("orders-feed")).value();
    EXPECT_FALSE(p.last_sequence().has_value());
    EXPECT_EQ(p.next_sequence(), 0u);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(p.append(as_bytes("r" + std::to_string(i))));
  }
  auto p = log.producer(named("orders-feed")).value();
  ASSERT_TRUE(p.last_sequence().has_value());
  EXPECT_EQ(*p.last_sequence(), 9u);
  EXPECT_EQ(p.next_sequence(), 10u);
  for (std::uint64_t i = 0; i < 10; ++i) {  // the restart re-sends everything
    p.set_next_sequence(i);
    EXPECT_EQ(p.append(as_bytes("r" + std::to_string(i))).error, Errc::kDuplicate) << i;
  }
  p.set_next_sequence(10);
  ASSERT_TRUE(p.append(as_bytes("r10")));
  // Sequences may skip (a position in the application's input), never go back.
  p.set_next_sequence(20);
  ASSERT_TRUE(p.append(as_bytes("r20")));
  p.set_next_sequence(15);
  EXPECT_EQ(p.append(as_bytes("r15")).error, Errc::kDuplicate);
  std::vector<std::string> values;
  auto records = read_all(log, &values);
  ASSERT_EQ(values.size(), 12u);
  EXPECT_EQ(values[10], "r10");
  EXPECT_EQ(values[11], "r20");
  EXPECT_EQ(records[11].sequence, 20u);
  for (const auto& r : records) EXPECT_EQ(r.producer_id, p.id());
  // Another name is another identity.
  auto other = log.producer(named("audit-feed")).value();
  EXPECT_FALSE(other.last_sequence().has_value());
  EXPECT_NE(other.id(), p.id());
}

TEST(Idempotent, BatchSkipsRecordsAlreadyInTheLog) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small()).value();
  std::vector<std::string> text = {"a", "b", "c", "d"};
  std::vector<Bytes> batch;
  for (const auto& t : text) batch.push_back(as_bytes(t));
  {
    auto p = log.producer(named("batcher")).value();
    ASSERT_EQ(p.append_batch(std::span(batch).first(2)), 2u);
  }
  auto p = log.producer(named("batcher")).value();
  p.set_next_sequence(0);
  ASSERT_EQ(p.append_batch(batch), 4u);  // two skipped, two written
  std::vector<std::string> values;
  read_all(log, &values);
  EXPECT_EQ(values, text);
}

TEST(Idempotent, LearnsACommitThatWasNeverRecorded) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small()).value();
  const std::uint32_t child = test::spawn([&] {
    auto l = Log::open(path.str()).value();
    auto p = l.producer(named("crashy")).value();
    for (int i = 0; i < 5; ++i) {
      if (!p.append(as_bytes("x"))) return 1;
    }
    shm::kill_self();  // no close
    return 2;
  });
  ASSERT_EQ(test::join(child), 128 + SIGKILL);
  // The process died after its last commit; make it look as if it died
  // before recording that commit in its slot.
  auto& s = test::state(log);
  std::uint32_t id = 0;
  for (; id < s.options.max_producers; ++id) {
    if (std::string(s.producer_slot(id).name) == "crashy") break;
  }
  ASSERT_LT(id, s.options.max_producers);
  s.producer_slot(id).last_sequence_plus_one = 4;  // recorded up to sequence 3 only
  auto p = log.producer(named("crashy")).value();
  ASSERT_TRUE(p.last_sequence().has_value());
  EXPECT_EQ(*p.last_sequence(), 4u) << "counted from the record its slot names as pending";
  EXPECT_EQ(p.epoch(), s.producer_slot(id).epoch);
}

// A named producer counts a record in its slot just after publishing it.
// One killed between the two, whose record other producers then pushed out
// of the ring before it restarted (`lapped`), came back without it (the
// restart read the ring) and wrote it again: found by the kill torture as
// a record delivered twice. The slot names the claim in flight, and ring
// reuse counts it before the record goes.
//
// An overwrite log, ring of two, whose named producer "crashy" appended
// r0..r4 to partition 0 and died right after publishing r5.
Log ring_of_two_after_dying_between_publishing_and_counting(const test::TempLogPath& path) {
  LogOptions o = small(std::chrono::milliseconds(50));
  o.policy = Policy::kOverwrite;
  o.ring_segments = 2;
  auto log = Log::create(path.str(), o).value();
  const std::uint32_t child = test::spawn([&] {
    auto p = log.producer(named("crashy")).value();
    for (int i = 0; i < 5; ++i) {
      if (!p.append_to(0, {}, as_bytes("r" + std::to_string(i)))) return 1;
    }
    testing::die_between_commit_and_count(true);
    (void)p.append_to(0, {}, as_bytes("r5"));
    return 2;
  });
  EXPECT_EQ(test::join(child), 128 + SIGKILL);
  return log;
}

void restart_after_dying_between_publishing_and_counting(bool lapped) {
  test::TempLogPath path;
  auto log = ring_of_two_after_dying_between_publishing_and_counting(path);
  if (lapped) {
    auto other = log.producer().value();
    const std::string filler(900, 'x');
    for (int i = 0; i < 400; ++i) ASSERT_TRUE(other.append_to(0, {}, as_bytes(filler)));
  }
  auto restarted = log.producer(named("crashy")).value();
  ASSERT_TRUE(restarted.last_sequence().has_value());
  EXPECT_EQ(*restarted.last_sequence(), 5u) << "the published record r5 was forgotten";
  restarted.set_next_sequence(5);
  EXPECT_EQ(restarted.append_to(0, {}, as_bytes("r5")).error, Errc::kDuplicate);
  if (!lapped) {
    std::vector<std::string> values;
    read_all(log, &values);
    EXPECT_EQ(values, (std::vector<std::string>{"r0", "r1", "r2", "r3", "r4", "r5"}));
  }
}

TEST(Idempotent, ARecordPublishedJustBeforeADeathCountsAfterTheRingReusedIt) {
  restart_after_dying_between_publishing_and_counting(/*lapped=*/true);
}

TEST(Idempotent, ARecordPublishedJustBeforeADeathCountsWhileItIsInTheRing) {
  restart_after_dying_between_publishing_and_counting(/*lapped=*/false);
}

// The same when the process that took the record's ring slot for the next
// lap died before it counted the pending claim there: whoever takes the
// preparation over counts it.
TEST(Idempotent, ARecordPublishedJustBeforeADeathCountsWhenTheRingSlotsPreparerDiedToo) {
  test::TempLogPath path;
  auto log = ring_of_two_after_dying_between_publishing_and_counting(path);
  const std::string filler(900, 'x');
  // Dies right after taking ring slot 0 (segment 0, with r5) for segment 2.
  ASSERT_EQ(test::join(test::spawn([&] {
              testing::after_taking_slot([](std::uint32_t, std::uint64_t segment) {
                if (segment == 2) shm::kill_self();
              });
              auto other = log.producer().value();
              for (int i = 0; i < 400; ++i) {
                if (!other.append_to(0, {}, as_bytes(filler))) return 1;
              }
              return 2;
            })),
            128 + SIGKILL);
  {
    auto other = log.producer().value();  // takes the dead preparer's slot over, and laps the ring
    for (int i = 0; i < 400; ++i) ASSERT_TRUE(other.append_to(0, {}, as_bytes(filler)));
  }
  auto restarted = log.producer(named("crashy")).value();
  ASSERT_TRUE(restarted.last_sequence().has_value());
  EXPECT_EQ(*restarted.last_sequence(), 5u) << "the published record r5 was forgotten";
}

// A claim registered but never committed (its producer died) counts for
// nothing: the restart waits for it to be abandoned and re-sends it.
TEST(Idempotent, AClaimItsProducerDiedInDoesNotCount) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small(std::chrono::milliseconds(50))).value();
  const std::uint32_t child = test::spawn([&] {
    auto p = log.producer(named("crashy")).value();
    if (!p.append_to(0, {}, as_bytes("r0"))) return 1;
    testing::die_between_claim_and_commit(true);
    (void)p.append_to(0, {}, as_bytes("r1"));
    return 2;
  });
  ASSERT_EQ(test::join(child), 128 + SIGKILL);
  auto restarted = log.producer(named("crashy")).value();
  ASSERT_TRUE(restarted.last_sequence().has_value());
  EXPECT_EQ(*restarted.last_sequence(), 0u);
  ASSERT_TRUE(restarted.append_to(0, {}, as_bytes("r1")));
  std::vector<std::string> values;
  read_all(log, &values);
  EXPECT_EQ(values, (std::vector<std::string>{"r0", "r1"}));
}

TEST(Idempotent, ANewerInstanceFencesTheOlderOne) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small()).value();
  auto old_instance = log.producer(named("feed")).value();
  ASSERT_TRUE(old_instance.append(as_bytes("old 0")));
  auto new_instance = log.producer(named("feed")).value();
  EXPECT_EQ(*new_instance.last_sequence(), 0u);
  EXPECT_NE(new_instance.epoch(), old_instance.epoch());
  EXPECT_EQ(old_instance.append(as_bytes("old 1")).error, Errc::kFenced);
  EXPECT_STREQ(errc_name(Errc::kFenced), "fenced: a newer instance of this producer id took over");
  ASSERT_TRUE(new_instance.append(as_bytes("new 1")));
  EXPECT_EQ(old_instance.append(as_bytes("old 2")).error, Errc::kFenced);
  std::vector<std::string> values;
  read_all(log, &values);
  EXPECT_EQ(values, (std::vector<std::string>{"old 0", "new 1"}));
  // The fenced instance's close leaves the newer one's slot and writer counts alone.
  { auto gone = std::move(old_instance); }
  ASSERT_TRUE(new_instance.append(as_bytes("new 2")));
  EXPECT_TRUE(log.info().producers.at(0).alive);
  { auto gone = std::move(new_instance); }
  ProducerOptions exclusive;
  exclusive.exclusive = true;
  EXPECT_TRUE(log.producer(exclusive).ok()) << "every writer count was given back";
}

TEST(Idempotent, AClaimInFlightWhenFencedIsRevokedNotPublished) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small(std::chrono::milliseconds(50))).value();
  auto old_instance = log.producer(named("feed")).value();
  ASSERT_TRUE(old_instance.append(as_bytes("before")));
  Claim c = old_instance.claim(5);
  ASSERT_TRUE(c);
  std::memcpy(c.value().data(), "stale", 5);
  // The newer instance reads up to the tail: it waits out the stalled claim
  // (the claim timeout) and revokes it.
  auto new_instance = log.producer(named("feed")).value();
  EXPECT_EQ(*new_instance.last_sequence(), 0u);
  EXPECT_EQ(old_instance.commit(c).error, Errc::kFenced);
  ASSERT_TRUE(new_instance.append(as_bytes("after")));
  std::vector<std::string> values;
  read_all(log, &values);
  EXPECT_EQ(values, (std::vector<std::string>{"before", "after"}));
}

TEST(Idempotent, FencingAcrossProcesses) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small()).value();
  // The older instance appends until it is fenced, in its own process.
  const std::uint32_t child = test::spawn([&] {
    auto l = Log::open(path.str()).value();
    auto p = l.producer(named("twin")).value();
    for (std::uint64_t i = 0;; ++i) {
      auto r = p.append(as_bytes("old " + std::to_string(i)));
      if (r.error == Errc::kFenced) return 0;
      if (!r) return 1;
      if (i == 2000000) return 2;
      if (i % 64 == 0) ::usleep(100);
    }
  });
  // Let it write a while, then take over.
  while (log.info().partitions[0].end_offset < 4096) ::usleep(1000);
  auto p = log.producer(named("twin")).value();
  const std::uint64_t last = *p.last_sequence();
  ASSERT_EQ(test::join(child), 0);
  ASSERT_TRUE(p.append(as_bytes("new")));
  // The older instance's records are exactly sequences 0..last, in order, then ours.
  auto records = read_all(log);
  ASSERT_EQ(records.size(), last + 2);
  for (std::uint64_t i = 0; i <= last; ++i) ASSERT_EQ(records[i].sequence, i);
  EXPECT_EQ(records.back().sequence, last + 1);
  EXPECT_EQ(records.back().producer_epoch, p.epoch());
}

// A producer killed at random points and restarted with the whole input:
// every line in the log exactly once, in order.
TEST(Idempotent, KilledAtRandomAndRestartedWritesEveryLineOnce) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small()).value();
  constexpr std::uint64_t kLines = 20000;
  auto run = [&] {
    return test::spawn([&] {
      auto l = Log::open(path.str()).value();
      auto p = l.producer(named("lines")).value();
      for (std::uint64_t i = 0; i < kLines; ++i) {
        p.set_next_sequence(i);
        auto r = p.append(as_bytes("line " + std::to_string(i)));
        if (!r && r.error != Errc::kDuplicate) return 1;
        if (i % 512 == 511) ::usleep(200);  // spread the run so that kills land inside it
      }
      return 0;
    });
  };
  std::mt19937 rng(12345);
  int kills = 0;
  for (int attempt = 0; attempt < 40 && kills < 15; ++attempt) {
    const std::uint32_t pid = run();
    ::usleep(std::uniform_int_distribution<int>(500, 20000)(rng));
    shm::kill_process(pid);
    const int code = test::join(pid);
    if (code == 0) continue;  // it finished first
    ASSERT_EQ(code, 128 + SIGKILL);
    ++kills;
  }
  EXPECT_GE(kills, 5) << "the producer finished before most kills: the test needs more lines";
  ASSERT_EQ(test::join(run()), 0);  // the last run completes
  std::vector<std::string> values;
  auto records = read_all(log, &values);
  ASSERT_EQ(values.size(), kLines) << "after " << kills << " kills";
  for (std::uint64_t i = 0; i < kLines; ++i) {
    ASSERT_EQ(values[i], "line " + std::to_string(i));
    ASSERT_EQ(records[i].sequence, i);
  }
}

TEST(Idempotent, BadOptionsAreClearErrors) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small()).value();
  ProducerOptions po = named("x");
  po.exclusive = true;
  auto r = log.producer(po);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("cannot be exclusive"), std::string::npos);
  auto longer = log.producer(named(std::string(64, 'n')));
  ASSERT_FALSE(longer.ok());
  EXPECT_NE(longer.status().message().find("longer than 63"), std::string::npos);
}

TEST(Idempotent, InfoListsNamedProducersAlsoWhenNoneRuns) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small()).value();
  {
    auto p = log.producer(named("listed")).value();
    ASSERT_TRUE(p.append(as_bytes("1")));
    ASSERT_TRUE(p.append(as_bytes("2")));
  }
  auto info = log.info();
  ASSERT_EQ(info.producers.size(), 1u);
  const auto& pi = info.producers[0];
  EXPECT_EQ(pi.name, "listed");
  EXPECT_TRUE(pi.idempotent);
  EXPECT_FALSE(pi.alive);
  ASSERT_TRUE(pi.last_sequence.has_value());
  EXPECT_EQ(*pi.last_sequence, 1u);
  // An anonymous producer does not take the named one's slot while others are free.
  auto anon = log.producer().value();
  EXPECT_NE(anon.id(), pi.id);
}

}  // namespace
}  // namespace shmlog
