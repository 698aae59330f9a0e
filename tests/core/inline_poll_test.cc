// The inline poll (Consumer::poll with a handler called directly, in
// shmlog/log.h) against everything it must leave to the library's poll:
// control records, transactional, keyed and token records, aborted claims,
// segment ends, laps (also while a handler runs), and commits of a group.
// Each record must be seen once, whole, at the offset its append returned.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "log_access.h"
#include "test_util.h"

namespace shmlog {
namespace {

using test::bytes_to_string;

LogOptions mixed_options(Policy policy) {
  LogOptions o;
  o.segment_size = 64 * 1024;
  o.ring_segments = 4;
  o.max_record_size = 16 * 1024;
  o.claim_timeout = std::chrono::milliseconds(50);
  o.policy = policy;
  o.token_window = 64;
  return o;
}

struct Expected {
  std::string key;
  std::string value;
  bool transactional = false;
  bool aborted = false;
  std::uint64_t next_offset = 0;
};

// Appends a mix of record kinds, step by step, remembering each data
// record by the offset its append returned.
class MixedWriter {
 public:
  explicit MixedWriter(const Log& log)
      : plain_(log.producer({.backpressure_timeout = std::chrono::seconds(1)}).value()),
        txn_(log.producer({.producer_id = "mixed", .transactional = true}).value()) {}

  std::map<std::uint64_t, Expected> records;

  // One step: a keyed record, a token record, a transaction of one to
  // three records (committed or aborted: control records follow), an
  // aborted claim (padding), or a plain record; sizes up to ~3 KB so that
  // records often end segments.
  void step(int i) {
    const std::string value = "v" + std::to_string(i) + std::string(static_cast<std::size_t>(i * 7919 % 3000), 'a' + static_cast<char>(i % 26));
    switch (i % 7) {
      case 0: add(plain_.append(as_bytes("key" + std::to_string(i)), as_bytes(value)), "key" + std::to_string(i), value, 0); break;
      case 1: add(plain_.append_unique(as_bytes("token" + std::to_string(i)), {}, as_bytes(value)), "", value, 8); break;
      case 2: {
        ASSERT_TRUE(txn_.begin_transaction().ok());
        std::vector<std::uint64_t> in_txn;
        for (int k = 0; k <= i % 3; ++k) {
          const std::string v = value + "/" + std::to_string(k);
          auto r = txn_.append(as_bytes(v));
          ASSERT_TRUE(r) << i << ": " << errc_name(r.error);
          add(r, "", v, 0);
          records[r.offset].transactional = true;
          in_txn.push_back(r.offset);
        }
        const bool abort = (i / 7) % 2 == 1;
        ASSERT_TRUE((abort ? txn_.abort_transaction() : txn_.commit_transaction()).ok());
        for (std::uint64_t at : in_txn) records[at].aborted = abort;
        break;
      }
      case 3: {
        auto claim = plain_.claim(value.size());
        ASSERT_TRUE(claim) << i;
        plain_.abort(claim);
        add(plain_.append(as_bytes(value)), "", value, 0);
        break;
      }
      default: add(plain_.append(as_bytes(value)), "", value, 0); break;
    }
  }

  // Plain records past a ring's worth: laps a reader that does not poll.
  void lap() {
    const std::string filler(4000, 'f');
    for (int k = 0; k < 80; ++k) add(plain_.append(as_bytes(filler)), "", filler, 0);
  }

 private:
  void add(const AppendResult& r, const std::string& key, const std::string& value, std::uint64_t trailer) {
    ASSERT_TRUE(r) << errc_name(r.error);
    records[r.offset] = Expected{key, value, false, false,
                                 r.offset + format::align_record(format::kRecordHeaderSize + key.size() + value.size() + trailer)};
  }
  Producer plain_;
  Producer txn_;
};

// What a consumer saw: each record checked against what was appended at
// its offset, offsets strictly increasing (each seen once).
struct Seen {
  const std::map<std::uint64_t, Expected>* expected = nullptr;
  std::uint64_t last_offset = 0;
  std::size_t count = 0;
  std::size_t errors = 0;
  std::uint64_t lost_bytes = 0;
  std::set<std::uint64_t> offsets{};

  void check(const Record& r, bool read_committed) {
    ++count;
    auto it = expected->find(r.offset);
    if (it == expected->end()) {
      ADD_FAILURE() << "a record at " << r.offset << " that was never appended there";
      ++errors;
      return;
    }
    const Expected& e = it->second;
    if (count > 1 && r.offset <= last_offset) {
      ADD_FAILURE() << "offset " << r.offset << " after " << last_offset;
      ++errors;
    }
    last_offset = r.offset;
    offsets.insert(r.offset);
    if (bytes_to_string(r.value) != e.value || bytes_to_string(r.key) != e.key || r.transactional != e.transactional ||
        r.type != 1 || r.next_offset != e.next_offset || (read_committed && e.aborted)) {
      ADD_FAILURE() << "the record at " << r.offset << " is not the one appended there";
      ++errors;
    }
  }
};

TEST(InlinePoll, MixedRecordsAcrossSegmentEndsAndLapsAreEachSeenOnceAtTheirOffset) {
  auto log = Log::create_in_memory(mixed_options(Policy::kOverwrite)).value();
  auto consumer = log.consumer().value();
  MixedWriter writer(log);
  Seen seen{&writer.records};
  int lap_in_handler = 0;
  auto handler = [&](const Record& r) {
    seen.check(r, false);
    // Now and then the ring laps while the handler runs: the records
    // after this one are gone, and the next poll must say so.
    if (seen.count % 211 == 0) {
      writer.lap();
      ++lap_in_handler;
    }
  };
  const std::size_t maxes[] = {1, 2, 5, 64};
  for (int i = 0; i < 3000; ++i) {
    writer.step(i);
    if (i % 97 == 50) writer.lap();
    const PollResult r = consumer.poll(handler, maxes[i % 4]);
    seen.lost_bytes += r.lost_bytes;
  }
  for (;;) {
    const PollResult r = consumer.poll(handler, 64);
    seen.lost_bytes += r.lost_bytes;
    if (r.records == 0 && r.lost_bytes == 0) break;
  }
  EXPECT_EQ(seen.errors, 0u);
  EXPECT_GT(lap_in_handler, 0);
  EXPECT_GT(seen.lost_bytes, 0u);
  EXPECT_EQ(seen.lost_bytes, consumer.lost_bytes());
  // Whatever was not seen lay in what the laps took, and the end was reached.
  std::uint64_t missed = 0;
  for (const auto& [offset, e] : writer.records) {
    if (!seen.offsets.contains(offset)) missed += e.next_offset - offset;
  }
  EXPECT_LE(missed, seen.lost_bytes);
  EXPECT_EQ(seen.last_offset, writer.records.rbegin()->first);
}

TEST(InlinePoll, SlotReusedWhileTheHandlerRunsIsFoundBeforeTheNextRecord) {
  // Records of one size: a newer lap's records start at the same offsets
  // as the older ones, so only the slot's word tells them apart.
  auto log = Log::create_in_memory(mixed_options(Policy::kOverwrite)).value();
  auto reader = log.consumer().value();
  auto producer = log.producer({.exclusive = true}).value();
  constexpr std::uint64_t kSegment = 64 * 1024;
  constexpr std::uint64_t kRecord = 1056;  // 32 + 1000 bytes, aligned
  constexpr std::uint64_t kPerSegment = kSegment / kRecord;
  std::string value(1000, 'l');
  std::uint64_t next = 0;
  auto append = [&] {
    std::memcpy(value.data(), &next, sizeof next);
    ASSERT_TRUE(producer.append(as_bytes(value)));
    ++next;
  };
  for (int i = 0; i < 10; ++i) append();
  ASSERT_EQ(reader.poll([](const Record&) {}, 1).records, 1u);  // the library's first poll
  int wrong = 0, seen = 0;
  bool lapped = false;
  auto check = [&](const Record& r) {
    std::uint64_t index;
    std::memcpy(&index, r.value.data(), sizeof index);
    if (index != (r.offset / kSegment) * kPerSegment + (r.offset % kSegment) / kRecord) ++wrong;
    ++seen;
    if (!lapped) {  // the ring laps while the first handler runs
      lapped = true;
      for (std::uint64_t k = 0; k < 5 * kPerSegment; ++k) append();
    }
  };
  std::uint64_t lost = 0;
  for (;;) {
    const PollResult r = reader.poll(check, 64);
    lost += r.lost_bytes;
    if (r.records == 0 && r.lost_bytes == 0) break;
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_GT(lost, 0u);
  EXPECT_EQ(lost, reader.lost_bytes());
  EXPECT_LT(static_cast<std::uint64_t>(seen), next - 1);
}

TEST(InlinePoll, GroupReadCommittedSeesEachCommittedRecordOnceAndCommitsEveryThird) {
  auto log = Log::create_in_memory(mixed_options(Policy::kBackpressure)).value();
  auto consumer = log.consumer({.group = "g", .commit_every = 3, .isolation = Isolation::kReadCommitted}).value();
  MixedWriter writer(log);
  Seen seen{&writer.records};
  std::uint64_t committed_expected = 0;
  auto handler = [&](const Record& r) {
    seen.check(r, true);
    if (seen.count % 3 == 0) committed_expected = r.next_offset;
  };
  auto& slot = test::state(log).offset_slot(0, 0);
  const std::size_t maxes[] = {1, 2, 5, 64};
  for (int i = 0; i < 3000; ++i) {
    writer.step(i);
    // Drain: a group holds the ring, and the writer must not wait for it.
    while (consumer.poll(handler, maxes[i % 4]).records > 0) {
      ASSERT_EQ(format::atomic(slot.committed_offset).load(), committed_expected) << i;
    }
  }
  EXPECT_EQ(seen.errors, 0u);
  std::size_t wanted = 0;
  for (const auto& [offset, e] : writer.records) wanted += e.aborted ? 0 : 1;
  EXPECT_EQ(seen.count, wanted);
}

TEST(InlinePoll, UnregisteredClaimIsUnblockedThoughPollsFindingNothingStayInline) {
  auto log = Log::create_in_memory(mixed_options(Policy::kBackpressure)).value();
  auto& s = test::state(log);
  auto producer = log.producer().value();
  ASSERT_TRUE(producer.append(as_bytes("first")));
  auto consumer = log.consumer().value();
  std::vector<Record> got;
  auto handler = [&](const Record& r) { got.push_back(r); };
  ASSERT_EQ(consumer.poll(handler, 10).records, 1u);  // the library's poll: inline from now on
  // A producer that died right after its fetch-add: 96 bytes claimed, no word.
  format::atomic(s.partition(0).tail_position).fetch_add(96);
  ASSERT_TRUE(producer.append(as_bytes("next")));
  // Spinning polls, never poll_wait: the library's poll must still look
  // now and then, time the stall and unblock the claim.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (got.size() < 2 && std::chrono::steady_clock::now() < give_up) consumer.poll(handler, 10);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].offset, got[0].next_offset + 96);
  EXPECT_EQ(bytes_to_string(got[1].value), "next");
}

TEST(InlinePoll, MovedFromConsumerPollsNothing) {
  auto log = Log::create_in_memory(mixed_options(Policy::kBackpressure)).value();
  auto producer = log.producer({.exclusive = true}).value();
  auto consumer = log.consumer().value();
  ASSERT_TRUE(producer.append(as_bytes("one")));
  int seen = 0;
  EXPECT_EQ(consumer.poll([&](const Record&) { ++seen; }, 1).records, 1u);
  ASSERT_TRUE(producer.append(as_bytes("two")));
  Consumer moved = std::move(consumer);
  EXPECT_EQ(consumer.poll([&](const Record&) { ++seen; }, 1).records, 0u);  // NOLINT: use after move, on purpose
  EXPECT_EQ(moved.poll([&](const Record& r) { EXPECT_EQ(bytes_to_string(r.value), "two"); ++seen; }, 1).records, 1u);
  EXPECT_EQ(seen, 2);
}

}  // namespace
}  // namespace shmlog
