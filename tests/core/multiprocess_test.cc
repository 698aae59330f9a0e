// Producers and consumers in separate processes, killed with SIGKILL at
// chosen and random points. Waits are bounded; nothing here asserts speed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "log_access.h"
#include "owner.h"
#include "word_pair.h"
#include "shmlog/shm/process.h"
#include "test_util.h"
#include "test_hooks.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;

LogOptions options(std::uint32_t partitions = 1) {
  LogOptions o;
  o.partitions = partitions;
  o.segment_size = 64 * 1024;
  o.ring_segments = 8;
  o.max_record_size = 1024;
  return o;
}

std::vector<std::string> read_lines(const std::string& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::size_t count_lines(const std::string& file) { return read_lines(file).size(); }

// Appends "P:I" for I in [0, n) from a new process.
std::uint32_t spawn_producer(const std::string& path, int id, int n, std::uint32_t partition = 0) {
  return test::spawn([=] {
    auto log = Log::open(path);
    if (!log.ok()) return 10;
    auto producer = log->producer({.partition = partition});
    if (!producer.ok()) return 11;
    for (int i = 0; i < n; ++i) {
      std::string v = std::to_string(id) + ":" + std::to_string(i);
      if (!producer->append(as_bytes(v))) return 12;
    }
    return 0;
  });
}

// A group member that writes each record's value as a line to `out`
// (one write per record, so a SIGKILL loses nothing that was written).
std::uint32_t spawn_member(const std::string& path, const std::string& group, DeliveryMode mode,
                           const std::string& out, std::size_t stop_after_total, const std::string& counter_file = "") {
  return test::spawn([=] {
    auto log = Log::open(path);
    if (!log.ok()) return 20;
    auto consumer = log->consumer({.group = group, .mode = mode, .commit_every = 1});
    if (!consumer.ok()) return 21;
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0) return 22;
    std::size_t idle_rounds = 0;
    while (idle_rounds < 40) {  // 40 x 50 ms with nothing new: done
      auto r = consumer->poll_wait(
          [&](const Record& rec) {
            std::string line = test::bytes_to_string(rec.value) + "\n";
            if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::abort();
          },
          16, 50ms);
      idle_rounds = r.records == 0 ? idle_rounds + 1 : 0;
      if (!counter_file.empty() && count_lines(counter_file) >= stop_after_total) break;
    }
    ::close(fd);
    return 0;
  });
}

TEST(MultiProcess, FourProducersTwoMembersEveryRecordOnceInProducerOrder) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), options(2)).value();
  const std::string out_a = path.str() + ".a", out_b = path.str() + ".b";
  // Members join before producers start so the group holds every record.
  auto setup = log.consumer({.group = "g"}).value();
  setup.close();
  auto a = spawn_member(path.str(), "g", DeliveryMode::kAtLeastOnce, out_a, 0);
  auto b = spawn_member(path.str(), "g", DeliveryMode::kAtLeastOnce, out_b, 0);
  constexpr int kPer = 5000;
  std::vector<std::uint32_t> producers;
  for (int p = 0; p < 4; ++p) producers.push_back(spawn_producer(path.str(), p, kPer, p % 2));
  for (auto pid : producers) EXPECT_EQ(test::join(pid), 0);
  EXPECT_EQ(test::join(a), 0);
  EXPECT_EQ(test::join(b), 0);
  std::map<int, int> next;
  std::set<std::string> all;
  for (const auto& file : {out_a, out_b}) {
    std::map<int, int> order;
    for (const auto& line : read_lines(file)) {
      EXPECT_TRUE(all.insert(line).second) << "duplicate " << line;
      int p = std::stoi(line.substr(0, line.find(':')));
      int i = std::stoi(line.substr(line.find(':') + 1));
      // Within one member's file, each producer's lines are in order.
      if (order.count(p)) {
        EXPECT_GT(i, order[p]) << line;
      }
      order[p] = i;
    }
  }
  EXPECT_EQ(all.size(), 4u * kPer);
  ::unlink(out_a.c_str());
  ::unlink(out_b.c_str());
}

// Runs `hold` as pid 1 of a new pid namespace that shares this process's
// memory (a container given the host's /dev/shm). hold() takes what the
// test needs and returns 0; the process then holds it until finish().
class Contained {
 public:
  explicit Contained(std::function<int()> hold) {
    EXPECT_EQ(::pipe(ready_), 0);
    EXPECT_EQ(::pipe(release_), 0);
    outer_ = test::spawn([&] {
      if (::unshare(CLONE_NEWPID) != 0) return 77;
      const pid_t inner = ::fork();
      if (inner < 0) return 78;
      if (inner == 0) {
        const int held = hold();
        if (held != 0) ::_exit(held);
        char c = 'r';
        if (::write(ready_[1], &c, 1) != 1) ::_exit(3);
        if (::read(release_[0], &c, 1) != 1) ::_exit(4);
        ::_exit(0);
      }
      int status = 0;
      if (::waitpid(inner, &status, 0) != inner) return 79;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 80;
    });
    ::close(ready_[1]);
  }
  ~Contained() {
    if (!finished_) (void)finish();
    ::close(ready_[0]);
    ::close(release_[0]);
  }
  // True once it holds; false if it ended first (code() tells why: 77,
  // no pid namespaces here).
  bool holds() {
    char c = 0;
    if (::read(ready_[0], &c, 1) == 1) return true;
    code_ = finish();
    return false;
  }
  int code() const { return code_; }
  int finish() {
    if (finished_) return code_;
    finished_ = true;
    char c = 'x';
    (void)!::write(release_[1], &c, 1);
    ::close(release_[1]);
    code_ = test::join(outer_);
    return code_;
  }

 private:
  int ready_[2] = {-1, -1}, release_[2] = {-1, -1};
  std::uint32_t outer_ = 0;
  bool finished_ = false;
  int code_ = -1;
};

// A producer in another pid namespace that shares the memory: its pid
// names another process here, or none. Liveness judged it by this
// namespace's /proc, found it dead, and the sweep reaped its live producer
// id. The slot now records the owner's pid namespace, and an owner in
// another one is never judged from here.
TEST(MultiProcess, AProducerInAnotherPidNamespaceIsNotJudgedDeadFromHere) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for a pid namespace";
  test::TempLogPath path;
  auto log = Log::create(path.str(), options()).value();
  Contained contained([&] {
    static std::optional<Producer> producer;  // held until the process ends
    auto l = Log::open(path.str());
    if (!l.ok()) return 1;
    auto made = l->producer({.name = "contained"});
    if (!made.ok()) return 2;
    producer.emplace(std::move(made).value());
    return 0;
  });
  if (!contained.holds()) {
    if (contained.code() == 77) GTEST_SKIP() << "pid namespaces are not available here";
    FAIL() << "the contained producer failed: " << contained.code();
  }
  detail::sweep(test::state(log));
  auto info = log.info();
  EXPECT_EQ(contained.finish(), 0);
  ASSERT_EQ(info.producers.size(), 1u) << "the sweep reaped the live producer";
  EXPECT_TRUE(info.producers[0].alive);
}

// The same for what the header and the segment descriptors hold: the
// admin lock, the keeper lease and a ring slot being prepared named their
// holder without its namespace (the locks by pid and 32 start-time bits,
// the slot by pid and start time). From the host, the contained process's
// pid 1 is init, started at another time: judged dead, its lock, lease and
// slot were taken while it ran.
TEST(MultiProcess, LocksAndASlotHeldInAnotherPidNamespaceAreNotTakenFromHere) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for a pid namespace";
  test::TempLogPath path;
  auto log = Log::create(path.str(), options()).value();
  const detail::LogState& s = test::state(log);
  // A segment of the ring's next lap, which the contained process marks as
  // its preparation (as a producer that zeroes it does).
  const std::uint64_t segment = s.ring_segments;
  Contained contained([&] {
    using detail::OwnerLock;
    if (OwnerLock::admin(s).try_take() != OwnerLock::Taken::kFree) return 1;
    if (OwnerLock::keeper_lease(s).try_take() != OwnerLock::Taken::kFree) return 2;
    auto& d = s.descriptor(0, segment);
    std::uint64_t w = format::atomic(d.state_word).load(std::memory_order_acquire);
    std::uint64_t stamp = format::atomic(d.preparer_stamp).load(std::memory_order_relaxed);
    const std::uint64_t mine = format::make_segment_word(segment, format::SegmentState::kPreparing, shm::self().pid);
    return detail::cas_pair(&d.state_word, w, stamp, mine, detail::own_stamp(s)) ? 0 : 3;
  });
  if (!contained.holds()) {
    if (contained.code() == 77) GTEST_SKIP() << "pid namespaces are not available here";
    FAIL() << "the contained process failed: " << contained.code();
  }
  EXPECT_EQ(detail::OwnerLock::admin(s).try_take(), detail::OwnerLock::Taken::kNo) << "the admin lock was taken";
  EXPECT_EQ(detail::OwnerLock::keeper_lease(s).try_take(), detail::OwnerLock::Taken::kNo) << "the lease was taken";
  EXPECT_FALSE(detail::prepare_unprepared(s, 0, segment)) << "the slot being prepared was taken";
  EXPECT_EQ(contained.finish(), 0);
}

TEST(MultiProcess, ProducerKilledBetweenClaimAndCommitDoesNotStallReaders) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), options()).value();
  auto consumer = log.consumer({.group = "g"}).value();
  auto pid = test::spawn([&] {
    auto child_log = Log::open(path.str()).value();
    auto producer = child_log.producer().value();
    for (int i = 0; i < 100; ++i) {
      if (!producer.append(as_bytes("ok"))) return 1;
    }
    testing::die_between_claim_and_commit(true);
    (void)producer.append(as_bytes("never committed"));
    return 2;
  });
  EXPECT_EQ(test::join(pid), 128 + SIGKILL);
  auto producer = log.producer().value();
  ASSERT_TRUE(producer.append(as_bytes("after the crash")));
  std::vector<std::string> got;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (got.size() < 101 && std::chrono::steady_clock::now() < deadline) {
    consumer.poll_wait([&](const Record& r) { got.push_back(test::bytes_to_string(r.value)); }, 64, 100ms);
  }
  ASSERT_EQ(got.size(), 101u);
  EXPECT_EQ(got.back(), "after the crash");
  EXPECT_EQ(std::count(got.begin(), got.end(), "never committed"), 0);
}

void kill_and_restart_member(DeliveryMode mode, bool expect_no_loss) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), options()).value();
  log.consumer({.group = "g"}).value().close();  // the group exists before producing
  constexpr int kRecords = 3000;
  auto producer = spawn_producer(path.str(), 0, kRecords);
  const std::string out = path.str() + ".out";
  std::mt19937 rng(static_cast<unsigned>(::getpid()));
  // Kill the member at a random point, three times, then let one finish.
  for (int round = 0; round < 3; ++round) {
    auto member = spawn_member(path.str(), "g", mode, out, 0);
    const std::size_t target = (round + 1) * kRecords / 4 + rng() % 200;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (count_lines(out) < target && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    shm::kill_process(member);
    EXPECT_EQ(test::join(member), 128 + SIGKILL);
  }
  EXPECT_EQ(test::join(producer), 0);
  auto last = spawn_member(path.str(), "g", mode, out, 0);
  EXPECT_EQ(test::join(last), 0);
  auto lines = read_lines(out);
  std::set<std::string> unique(lines.begin(), lines.end());
  if (expect_no_loss) {
    EXPECT_EQ(unique.size(), static_cast<std::size_t>(kRecords)) << "at-least-once lost records";
  } else {
    EXPECT_EQ(unique.size(), lines.size()) << "at-most-once delivered a record twice";
  }
  ::unlink(out.c_str());
}

TEST(MultiProcess, AtLeastOnceMemberKilledAndRestartedLosesNothing) {
  kill_and_restart_member(DeliveryMode::kAtLeastOnce, true);
}

TEST(MultiProcess, AtMostOnceMemberKilledAndRestartedDuplicatesNothing) {
  kill_and_restart_member(DeliveryMode::kAtMostOnce, false);
}

TEST(MultiProcess, DeadMembersPartitionsGoToTheSurvivor) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), options(2)).value();
  auto producer = log.producer().value();
  for (std::uint32_t p = 0; p < 2; ++p) {
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(producer.append_to(p, {}, as_bytes("r")));
  }
  int ready_pipe[2];
  ASSERT_EQ(::pipe(ready_pipe), 0);
  auto member = test::spawn([&] {
    auto l = Log::open(path.str()).value();
    auto c = l.consumer({.group = "g", .mode = DeliveryMode::kManual}).value();
    c.poll([](const Record&) {}, 1);  // owns both partitions, commits nothing
    char x = 1;
    if (::write(ready_pipe[1], &x, 1) != 1) return 1;
    for (;;) std::this_thread::sleep_for(1s);
  });
  char x;
  ASSERT_EQ(::read(ready_pipe[0], &x, 1), 1);
  auto survivor = log.consumer({.group = "g"}).value();
  EXPECT_LE(survivor.assignment().size(), 1u);  // the other member still holds one or both
  shm::kill_process(member);
  EXPECT_EQ(test::join(member), 128 + SIGKILL);
  int got = 0;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (got < 20 && std::chrono::steady_clock::now() < deadline) {
    got += static_cast<int>(survivor.poll_wait([](const Record&) {}, 64, 100ms).records);
  }
  EXPECT_EQ(got, 20);
  EXPECT_EQ(survivor.assignment().size(), 2u);
  ::close(ready_pipe[0]);
  ::close(ready_pipe[1]);
}

// An exclusive producer in a child that starts in the last segment of the
// first lap, zeroes the next one (slot 0) ahead, and dies: slot 0 is left
// "being prepared" by a dead process. Returns the child's exit status.
int die_preparing_slot_zero(const std::string& path, const LogOptions& o) {
  const std::uint64_t last = o.ring_segments - 1;
  return test::join(test::spawn([&] {
    auto log = Log::open(path).value();
    format::atomic(test::state(log).partition(0).tail_position).store(last * o.segment_size);
    auto producer = log.producer({.exclusive = true}).value();
    for (int i = 0; i < 10; ++i) {
      if (!producer.append(as_bytes("x"))) return 1;
    }
    shm::kill_self();
  }));
}

TEST(MultiProcess, SlotLeftHalfZeroedByADeadExclusiveProducerIsTakenOver) {
  test::TempLogPath path;
  auto o = options();
  { auto log = Log::create(path.str(), o).value(); }
  const std::uint64_t last = o.ring_segments - 1;
  EXPECT_EQ(die_preparing_slot_zero(path.str(), o), 128 + SIGKILL);
  auto log = Log::open(path.str()).value();
  auto& s = test::state(log);
  EXPECT_EQ(format::segment_state(format::atomic(s.descriptor(0, last + 1).state_word).load()),
            format::SegmentState::kPreparing);
  auto producer = log.producer({.backpressure_timeout = 10s}).value();
  std::string value(1000, 'y');
  for (int i = 0; i < 2 * 64; ++i) ASSERT_TRUE(producer.append(as_bytes(value))) << i;
  EXPECT_EQ(format::segment_state(format::atomic(s.descriptor(0, last + 1).state_word).load()),
            format::SegmentState::kReady);
  EXPECT_EQ(format::segment_index(format::atomic(s.descriptor(0, last + 1).state_word).load()), last + 1);
}

// Two producers of this process cross into the same segment. The first
// takes the segment's ring slot and is held there, before it zeroes it; the
// slot's previous preparer was another process, now gone. The second must
// wait for the first, not take the previous preparer's start time for the
// first's and judge it dead: it would zero and publish the slot, append, and
// the first would then zero it again under the committed record.
std::atomic<bool> g_hold_preparer{false};
std::atomic<bool> g_preparer_held{false};
std::atomic<std::uint64_t> g_held_segment{0};
thread_local bool t_is_held_preparer = false;

TEST(MultiProcess, ALivePreparerIsNotJudgedByThePreviousPreparersStartTime) {
  test::TempLogPath path;
  auto o = options();
  o.policy = Policy::kOverwrite;
  { auto log = Log::create(path.str(), o).value(); }
  const std::uint64_t ring = o.ring_segments;
  // A process that exits prepares slot 0 for segment `ring`.
  auto pid = test::spawn([&] {
    auto log = Log::open(path.str()).value();
    format::atomic(test::state(log).partition(0).tail_position).store((ring - 1) * o.segment_size + o.segment_size - 512);
    auto producer = log.producer().value();
    return producer.append(as_bytes(std::string(1000, 'c'))) ? 0 : 1;
  });
  ASSERT_EQ(test::join(pid), 0);

  auto log = Log::open(path.str()).value();
  auto& s = test::state(log);
  const std::uint64_t segment = 2 * ring;  // slot 0 again
  g_held_segment = segment;
  format::atomic(s.partition(0).tail_position).store(segment * o.segment_size - 512);
  testing::after_taking_slot([](std::uint32_t, std::uint64_t taken) {
    if (!t_is_held_preparer || taken != g_held_segment) return;
    g_preparer_held = true;
    while (g_hold_preparer) std::this_thread::sleep_for(1ms);
  });
  g_hold_preparer = true;
  std::thread first([&] {
    t_is_held_preparer = true;
    auto producer = log.producer().value();
    EXPECT_TRUE(producer.append(as_bytes(std::string(1000, 'a'))));
  });
  for (int i = 0; i < 10000 && !g_preparer_held; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(g_preparer_held);
  std::atomic<bool> second_done{false};
  std::thread second([&] {
    auto producer = log.producer({.backpressure_timeout = 30s}).value();
    EXPECT_TRUE(producer.append(as_bytes("b")));
    second_done = true;
  });
  // Give the second producer time to (wrongly) finish; it must wait instead.
  for (int i = 0; i < 2000 && !second_done; ++i) std::this_thread::sleep_for(1ms);
  g_hold_preparer = false;
  first.join();
  second.join();
  testing::after_taking_slot(nullptr);

  auto consumer = log.consumer({.from = StartFrom::at(segment * o.segment_size)}).value();
  std::string values;
  for (int i = 0; i < 100 && values.size() < 2; ++i) {
    consumer.poll_wait([&](const Record& r) { values += static_cast<char>(r.value[0]); }, 16, 100ms);
  }
  EXPECT_EQ(values, "ba");  // the second claimed first, after the first's padding
}

// A producer claimed into the next segment (the tail moved) and died before
// it prepared the segment's ring slot, and no other claim falls there: the
// slot still holds the previous lap. Readers then stood before it for good,
// and a restarting named producer failed: "the log stayed unreadable below
// its tail" (found by the kill torture). A reader stuck there past the claim
// timeout prepares it.
TEST(MultiProcess, ASegmentClaimedIntoButNeverPreparedIsPreparedByAReader) {
  test::TempLogPath path;
  auto o = options();
  o.ring_segments = 2;
  o.claim_timeout = 20ms;
  auto log = Log::create(path.str(), o).value();
  // The group holds the ring, so no producer prepares segment 2 ahead.
  auto group = log.consumer({.group = "g"}).value();
  const std::string value(1000, 'n');
  int appended = 0;
  {
    auto producer = log.producer({.producer_id = "n"}).value();
    while (log.info().partitions[0].end_offset < o.segment_size + o.segment_size / 2) {
      ASSERT_TRUE(producer.append(as_bytes(value)));
      ++appended;
    }
  }
  // As left by a producer that claimed 64 bytes into segment 2 and died.
  format::atomic(test::state(log).partition(0).tail_position).store(2 * o.segment_size + 64);
  int read = 0;
  for (int i = 0; i < 100; ++i) read += static_cast<int>(group.poll_wait([](const Record&) {}, 256, 5ms).records);
  EXPECT_EQ(read, appended);
  auto restarted = log.producer({.producer_id = "n"});
  ASSERT_TRUE(restarted.ok()) << restarted.status().to_string();
  ASSERT_TRUE(restarted->last_sequence().has_value());
  EXPECT_EQ(*restarted->last_sequence(), static_cast<std::uint64_t>(appended - 1));
  ASSERT_TRUE(restarted->append(as_bytes("after")));
  bool after = false;
  for (int i = 0; i < 200 && !after; ++i) {
    group.poll_wait([&](const Record& r) { after = test::bytes_to_string(r.value) == "after"; }, 256, 20ms);
  }
  EXPECT_TRUE(after);
}

// The same when the producer died while preparing the segment (zeroing it
// ahead): the slot stays "being prepared" by a dead process, and until a
// producer crossed into it nobody took it over; a restarting named
// producer's recovery waited there and failed (found by the kill torture).
TEST(MultiProcess, ASegmentClaimedIntoWhosePreparerDiedIsPreparedByAReader) {
  test::TempLogPath path;
  auto o = options();
  o.claim_timeout = 20ms;
  { auto log = Log::create(path.str(), o).value(); }
  const std::uint64_t last = o.ring_segments - 1;
  {
    auto log = Log::open(path.str()).value();
    auto named = log.producer({.producer_id = "n"}).value();
    ASSERT_TRUE(named.append(as_bytes("n0")));
  }
  ASSERT_EQ(die_preparing_slot_zero(path.str(), o), 128 + SIGKILL);
  auto log = Log::open(path.str()).value();
  // As if it had also claimed 64 bytes into that segment.
  format::atomic(test::state(log).partition(0).tail_position).store((last + 1) * o.segment_size + 64);
  auto restarted = log.producer({.producer_id = "n"});
  ASSERT_TRUE(restarted.ok()) << restarted.status().to_string();
  ASSERT_TRUE(restarted->last_sequence().has_value());
  EXPECT_EQ(*restarted->last_sequence(), 0u);
}

TEST(MultiProcess, StaleStateOfDeadProcessesIsReapedOnOpen) {
  test::TempLogPath path;
  { auto log = Log::create(path.str(), options()).value(); }
  auto pid = test::spawn([&] {
    auto log = Log::open(path.str()).value();
    auto producer = log.producer({.exclusive = true}).value();
    auto member = log.consumer({.group = "g"}).value();
    for (int i = 0; i < 50; ++i) {
      if (!producer.append(as_bytes("before"))) return 1;
    }
    // The hook is in the library's commit, which the inline append skips.
    testing::die_between_claim_and_commit(true);
    auto claim = producer.claim(500);
    std::memset(claim.value().data(), 'x', 500);  // half-written bytes past the tail
    (void)producer.commit(claim);
    return 2;
  });
  EXPECT_EQ(test::join(pid), 128 + SIGKILL);
  auto log = Log::open(path.str());
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  auto info = log->info();
  EXPECT_TRUE(info.producers.empty());
  EXPECT_EQ(info.partitions[0].writers, 0u);
  EXPECT_EQ(info.groups.at(0).members, 0u);
  // The exclusive writer's place is free again, and a shorter record after
  // its half-written one reads back cleanly.
  auto producer = log->producer({.exclusive = true});
  ASSERT_TRUE(producer.ok()) << producer.status().to_string();
  ASSERT_TRUE(producer->append(as_bytes("a")));
  ASSERT_TRUE(producer->append(as_bytes("b")));
  auto consumer = log->consumer().value();
  std::vector<std::string> got;
  while (consumer.poll([&](const Record& r) { got.push_back(test::bytes_to_string(r.value)); }).records > 0) {
  }
  ASSERT_EQ(got.size(), 52u);
  EXPECT_EQ(got[50], "a");
  EXPECT_EQ(got[51], "b");
}

// The partitions' append counts outlive the producers that made them:
// producers that exit, one killed with SIGKILL (and reaped), an exclusive
// one and a named one opened twice, in several processes, over two
// partitions; the counts never go back and end at what was appended.
TEST(MultiProcess, AppendCountsStayExactWhenProducersExitOrDie) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), options(2)).value();
  std::uint64_t bytes[2] = {0, 0};
  auto appended = [&](int id, int n, std::uint32_t p) {
    for (int i = 0; i < n; ++i) bytes[p] += (std::to_string(id) + ":" + std::to_string(i)).size();
  };
  std::uint64_t last[2] = {0, 0};
  auto counts_never_go_back = [&] {
    for (std::uint32_t p = 0; p < 2; ++p) {
      const auto part = log.info().partitions[p];
      EXPECT_TRUE(part.counted);
      EXPECT_GE(part.appends, last[p]) << "partition " << p;
      last[p] = part.appends;
    }
  };
  for (int round = 0; round < 3; ++round) {
    std::vector<std::uint32_t> pids;
    for (int k = 0; k < 3; ++k) {
      const int id = round * 10 + k;
      pids.push_back(spawn_producer(path.str(), id, 100 + k, k % 2));
      appended(id, 100 + k, k % 2);
    }
    for (auto pid : pids) ASSERT_EQ(test::join(pid), 0);
    counts_never_go_back();
  }
  // Killed after its appends, before it could release its slot.
  auto killed = test::spawn([&] {
    auto l = Log::open(path.str()).value();
    auto producer = l.producer({.partition = 1}).value();
    for (int i = 0; i < 40; ++i) {
      if (!producer.append(as_bytes("99:" + std::to_string(i)))) return 1;
    }
    shm::kill_self();
    return 2;
  });
  appended(99, 40, 1);
  EXPECT_EQ(test::join(killed), 128 + SIGKILL);
  counts_never_go_back();
  log.sweep();  // reaps the dead producer's slot
  counts_never_go_back();
  {
    auto exclusive = log.producer({.partition = 0, .exclusive = true}).value();
    for (int i = 0; i < 25; ++i) ASSERT_TRUE(exclusive.append(as_bytes("77:" + std::to_string(i))));
    appended(77, 25, 0);
  }
  for (int instance = 0; instance < 2; ++instance) {
    auto named = log.producer({.producer_id = "orders"}).value();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(named.append_to(1, {}, as_bytes("88:" + std::to_string(i))));
    appended(88, 10, 1);
    EXPECT_EQ(log.info().producers.at(0).appends, 10u) << "counted per instance";
  }
  counts_never_go_back();
  const auto info = log.info();
  EXPECT_EQ(info.partitions[0].appends, (100 + 102) * 3 + 25u);
  EXPECT_EQ(info.partitions[1].appends, 101 * 3 + 40 + 20u);
  EXPECT_EQ(info.partitions[0].bytes, bytes[0]);
  EXPECT_EQ(info.partitions[1].bytes, bytes[1]);
}

// An exclusive writer publishes a record's commit word, then the tail; one
// killed between the two leaves a record past the tail that a group reads
// and commits. Opening the log then took the group's offset past the tail
// for damage and refused the log (found by the kill torture).
TEST(MultiProcess, AGroupThatReadPastTheTailOfADeadExclusiveWriterDoesNotMakeTheLogUnopenable) {
  test::TempLogPath path;
  { auto log = Log::create(path.str(), options()).value(); }
  auto pid = test::spawn([&] {
    auto log = Log::open(path.str()).value();
    auto producer = log.producer({.exclusive = true}).value();
    if (!producer.append(as_bytes("first"))) return 1;
    auto last = producer.append(as_bytes("second"));
    if (!last) return 1;
    // As if it died between the record's commit word and the tail.
    format::atomic(test::state(log).partition(0).tail_position).store(last.offset, std::memory_order_release);
    auto member = log.consumer({.group = "g", .mode = DeliveryMode::kAtLeastOnce}).value();
    int read = 0;
    for (int i = 0; i < 100 && read < 2; ++i) read += static_cast<int>(member.poll_wait([](const Record&) {}, 8, 10ms).records);
    if (read != 2) return 3;
    member.commit();
    shm::kill_self();
    return 2;
  });
  ASSERT_EQ(test::join(pid), 128 + SIGKILL);
  auto log = Log::open(path.str());
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  auto producer = log->producer({.exclusive = true});
  ASSERT_TRUE(producer.ok()) << producer.status().to_string();
  ASSERT_TRUE(producer->append(as_bytes("third")));
  auto member = log->consumer({.group = "g"}).value();
  std::vector<std::string> got;
  member.poll_wait([&](const Record& r) { got.push_back(test::bytes_to_string(r.value)); }, 8, 100ms);
  EXPECT_EQ(got, std::vector<std::string>{"third"});
}

}  // namespace
}  // namespace shmlog
