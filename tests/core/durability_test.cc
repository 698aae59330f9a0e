// Durable logs: segment files written by the keeper, durable acks, slow
// groups reading from disk, recovery after a (simulated) host crash with
// torn and corrupt tails, keeper takeover after kill -9, retention, seek by
// time, disk full as back-pressure. Host crashes are simulated by removing
// the shared memory of a log whose processes are gone (killed with -9), so
// that opening it must rebuild the ring from the files alone.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "crash_util.h"
#include "format.h"
#include "record.h"
#include "shmlog/io/crc32c.h"
#include "shmlog/io/segment_file.h"
#include "shmlog/segments.h"
#include "test_util.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;

LogOptions durable(Durability d = Durability::kFsync) {
  LogOptions o;
  o.partitions = 1;
  o.segment_size = 64 * 1024;
  o.ring_segments = 2;
  o.max_record_size = 4096;
  o.durability = d;
  return o;
}

// Nothing becomes durable until a producer asks (or ten minutes pass).
LogOptions synced_on_request() {
  LogOptions o = durable();
  o.fsync_interval = std::chrono::minutes(10);
  return o;
}

// A producer whose appends return once durable (or fail after 10 s).
ProducerOptions acks_durable() {
  ProducerOptions po;
  po.acks = ProducerOptions::Acks::kDurable;
  po.durable_timeout = 10s;
  return po;
}

std::string value_of(int i) {
  return "record-" + std::to_string(i) + std::string(static_cast<std::size_t>(i % 97), 'x');
}

// Reads every record of partition 0 from `from` (a private reader) until
// `count` arrived or nothing came for a while.
// `settled`: nothing is being written, so the first empty poll is the end.
std::vector<std::string> read_all(const Log& log, std::size_t count, PollResult* total = nullptr,
                                  bool settled = false) {
  ConsumerOptions co;
  co.partitions = {0};
  auto c = log.consumer(co).value();
  std::vector<std::string> out;
  int idle = 0;
  while (out.size() < count && idle < (settled ? 1 : 20)) {
    auto r = c.poll_wait([&](const Record& rec) { out.push_back(test::bytes_to_string(rec.value)); }, 256,
                         settled ? 0ms : 50ms);
    if (total != nullptr) {
      total->lost_bytes += r.lost_bytes;
      total->corrupt += r.corrupt;
    }
    idle = r.records == 0 ? idle + 1 : 0;
  }
  return out;
}

// The shared memory of a log, as a host crash leaves it: gone.
void lose_shared_memory(const std::string& path) {
  auto attached = Log::attach(path);
  ASSERT_TRUE(attached.ok()) << attached.status().to_string();
  const std::string memory = attached->info().memory_path;
  attached = Status(Status::Code::kNotFound, "");
  ASSERT_EQ(::unlink(memory.c_str()), 0) << memory;
}

std::string last_segment_file(const std::string& path) {
  const std::string dir = io::partition_directory(path, 0);
  auto bases = io::list_segment_files(dir).value();
  // The last one with records: the keeper preallocates the next.
  for (auto it = bases.rbegin(); it != bases.rend(); ++it) {
    const std::string file = dir + "/" + io::segment_file_name(*it);
    if (scan_segment_file(file)->scan.records > 0) return file;
  }
  return {};
}

// Runs `child(ready)` in a process of its own and kills it with -9 once it
// called ready(): a process dying right at that point.
template <class Child>
void kill_when_ready(Child child) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const auto pid = test::spawn([&] {
    ::close(fds[0]);
    return child([&] {
      char c = 'r';
      return ::write(fds[1], &c, 1) == 1;
    });
  });
  ::close(fds[1]);  // a child that exits first gives end-of-file, not a hang
  char c = 0;
  const bool ready = ::read(fds[0], &c, 1) == 1;
  ::close(fds[0]);
  ::kill(static_cast<pid_t>(pid), SIGKILL);
  EXPECT_EQ(test::join(pid), 128 + SIGKILL);
  ASSERT_TRUE(ready) << "the child ended before it was ready";
}

TEST(Durability, RecordsReachSegmentFilesAndScanClean) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), durable()).value();
  EXPECT_TRUE(log.options().checksums);  // forced on: torn records must show
  ProducerOptions po;
  po.acks = ProducerOptions::Acks::kDurable;
  auto p = log.producer(po).value();
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(p.append(as_bytes(value_of(i)))) << i;
  const auto info = log.info();
  EXPECT_EQ(info.partitions[0].durable_offset, info.partitions[0].end_offset);
  EXPECT_GE(info.partitions[0].fsyncs, 1u);
  EXPECT_TRUE(info.keeper_alive);
  auto scan = scan_log_files(path.str()).value();
  EXPECT_TRUE(scan.bad_files.empty());
  std::uint64_t data = 0;
  for (const auto& f : scan.files) {
    EXPECT_TRUE(f.scan.problems.empty()) << f.path;
    EXPECT_TRUE(f.scan.torn.empty()) << f.path;
    auto again = scan_segment_file(f.path, 0, [&](const SegmentRecord& r) {
      if (r.type == 1) {
        EXPECT_EQ(r.check, SegmentRecord::Check::kGood);
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(r.value.data()), r.value.size()),
                  value_of(static_cast<int>(data)));
        ++data;
      }
    });
    ASSERT_TRUE(again.ok());
  }
  EXPECT_EQ(data, 3000u);
}

TEST(Durability, NotDurableAndBadOptionsAreClearErrors) {
  test::TempLogPath path;
  auto log = Log::create(path.str(),
                         [] {
                           LogOptions o = durable();
                           o.durability = Durability::kNone;
                           return o;
                         }())
                 .value();
  auto p = log.producer().value();
  auto r = p.append(as_bytes("x"));
  ASSERT_TRUE(r);
  EXPECT_EQ(p.wait_durable(0, r.offset + 1, 10ms), Errc::kNotDurable);
  ConsumerOptions co;
  co.read_durable = true;
  auto c = log.consumer(co);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("durability none"), std::string::npos) << c.status().message();
  auto memory = Log::create_in_memory(durable());
  ASSERT_FALSE(memory.ok());
  EXPECT_NE(memory.status().message().find("cannot be durable"), std::string::npos);
  EXPECT_FALSE(parse_durability("sometimes").ok());
}

// The acceptance test: a group stopped while ten rings' worth of
// records are produced resumes and reads every record once, in order,
// crossing from the segment files back into the ring.
void stopped_group_reads_ten_rings_then_rejoins(DeliveryMode mode) {
  test::TempLogPath path;
  LogOptions o = durable(Durability::kFlush);
  auto log = Log::create(path.str(), o).value();
  ConsumerOptions co;
  co.group = "slow";
  co.mode = mode;
  co.commit_every = 200;                       // at-most-once: batches of up to 200 records
  { auto joined = log.consumer(co).value(); }  // the group exists, committed at 0
  auto p = log.producer().value();
  const std::uint64_t ring = o.segment_size * o.ring_segments;
  int n = 0;
  // Producers are not held back by the stopped group: the ring moves on
  // once the keeper wrote each segment.
  while (log.info().partitions[0].end_offset < 10 * ring) {
    ASSERT_TRUE(p.append(as_bytes(value_of(n)))) << n;
    ++n;
  }
  EXPECT_GT(log.info().partitions[0].earliest_offset, 0u);  // the ring lapped the group
  auto c = log.consumer(co).value();
  std::vector<std::string> got;
  PollResult total;
  int idle = 0;
  while (got.size() < static_cast<std::size_t>(n) && idle < 40) {
    auto r = c.poll_wait([&](const Record& rec) { got.push_back(test::bytes_to_string(rec.value)); }, 512, 50ms);
    total.lost_bytes += r.lost_bytes;
    total.corrupt += r.corrupt;
    idle = r.records == 0 ? idle + 1 : 0;
  }
  ASSERT_EQ(got.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) ASSERT_EQ(got[static_cast<std::size_t>(i)], value_of(i)) << i;
  EXPECT_EQ(total.lost_bytes, 0u);
  EXPECT_EQ(total.corrupt, 0u);
  // Back in the ring: new records arrive without a gap or a duplicate.
  ASSERT_TRUE(p.append(as_bytes(value_of(n))));
  std::vector<std::string> more;
  c.poll_wait([&](const Record& rec) { more.push_back(test::bytes_to_string(rec.value)); }, 16, 2s);
  ASSERT_EQ(more, std::vector<std::string>{value_of(n)});
}

TEST(Durability, StoppedGroupReadsTenRingsFromDiskThenRejoinsTheRing) {
  stopped_group_reads_ten_rings_then_rejoins(DeliveryMode::kAtLeastOnce);
}

// At-most-once hands records out in batches: a batch from a segment file
// ends with the file, so the next file's copy never overwrites it.
TEST(Durability, StoppedGroupAtMostOnceReadsTenRingsFromDiskThenRejoinsTheRing) {
  stopped_group_reads_ten_rings_then_rejoins(DeliveryMode::kAtMostOnce);
}

// Acknowledged-durable records survive a host crash: a child appends with
// acks=durable and reports each acknowledged record, then is killed with
// -9; the shared memory is removed; opening rebuilds the ring.
// A durable log reuses the ring once the keeper wrote a segment, whatever
// the groups committed. A group member's views stay valid while its
// handler runs, in every mode: its hold keeps the slot (issue 14, defect 3;
// the view was overwritten while the handler ran).
TEST(Durability, AGroupMembersViewsStayValidWhileItsHandlerRuns) {
  for (DeliveryMode mode : {DeliveryMode::kAtLeastOnce, DeliveryMode::kAtMostOnce, DeliveryMode::kManual}) {
    SCOPED_TRACE(static_cast<int>(mode));
    test::TempLogPath path;
    auto log = Log::create(path.str(), durable(Durability::kFlush)).value();
    auto c = log.consumer({.group = "g", .mode = mode, .commit_every = 1000}).value();
    auto producer =
        log.producer({.backpressure_timeout = 300ms, .acks = ProducerOptions::Acks::kDurable}).value();
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(producer.append(as_bytes(std::string(1000, 'L'))));  // segments 0, 1
    bool checked = false;
    c.poll(
        [&](const Record& r) {
          if (checked) return;
          checked = true;
          const std::string before = test::bytes_to_string(r.value);
          // The keeper has written segment 0: without the hold the
          // producer reuses its slot and overwrites this record.
          Errc last = Errc::kOk;
          for (int i = 0; i < 100 && last == Errc::kOk; ++i) {
            last = producer.append(as_bytes(std::string(1000, 'J'))).error;
          }
          EXPECT_EQ(last, Errc::kBackpressureTimeout);
          EXPECT_TRUE(test::bytes_to_string(r.value) == before) << "the view changed under its handler";
        },
        1000);
    EXPECT_TRUE(checked);
    EXPECT_TRUE(producer.append(as_bytes(std::string(1000, 'J'))));  // the handler returned: the ring moves on
  }
}

TEST(Durability, HostCrashKeepsEveryAcknowledgedRecord) {
  test::TempLogPath path;
  { auto created = Log::create(path.str(), durable()).value(); }
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const auto child = test::spawn([&] {
    ::close(fds[0]);
    auto log = Log::open(path.str()).value();
    ProducerOptions po;
    po.acks = ProducerOptions::Acks::kDurable;
    po.producer_id = "writer";
    auto p = log.producer(po).value();
    for (int i = 0;; ++i) {
      if (!p.append(as_bytes(value_of(i)))) return 1;
      if (::write(fds[1], &i, sizeof i) != sizeof i) return 2;
    }
  });
  ::close(fds[1]);
  int acked = -1, v = 0;
  while (acked < 500 && ::read(fds[0], &v, sizeof v) == sizeof v) acked = v;
  ::kill(static_cast<pid_t>(child), SIGKILL);
  EXPECT_EQ(test::join(child), 128 + SIGKILL);
  while (::read(fds[0], &v, sizeof v) == sizeof v) acked = v;
  ::close(fds[0]);
  lose_shared_memory(path.str());
  auto log = Log::open(path.str(), {.keeper = false}).value();
  auto got = read_all(log, static_cast<std::size_t>(acked) + 1000);
  ASSERT_GE(got.size(), static_cast<std::size_t>(acked) + 1);
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], value_of(static_cast<int>(i))) << i;
  // The producer id continues after what reached the disk.
  ProducerOptions po;
  po.producer_id = "writer";
  auto again = log.producer(po).value();
  ASSERT_TRUE(again.last_sequence().has_value());
  EXPECT_EQ(*again.last_sequence() + 1, got.size());
}

// The checkpoint holds a named producer's sequence only once its records
// are durable: records a host crash took leave the sequence where the disk
// does, so a restarted producer resends them instead of being told they
// are duplicates.
TEST(Durability, CheckpointedSequenceNeverRunsAheadOfTheDisk) {
  test::TempLogPath path;
  const LogOptions o = synced_on_request();
  { auto created = Log::create(path.str(), o).value(); }
  kill_when_ready([&](auto ready) {
    auto log = Log::open(path.str()).value();
    ProducerOptions po;
    po.producer_id = "sensor";
    auto p = log.producer(po).value();
    p.set_next_sequence(1);
    for (int i = 1; i <= 10; ++i) (void)p.append(as_bytes(value_of(i)));
    if (p.wait_durable(0, log.info().partitions[0].end_offset, 10s) != Errc::kOk) return 1;
    for (int i = 11; i <= 20; ++i) (void)p.append(as_bytes(value_of(i)));  // in memory only
    std::this_thread::sleep_for(400ms);                                    // checkpoints are taken meanwhile
    if (!ready()) return 1;
    for (;;) std::this_thread::sleep_for(1s);
  });
  std::uint64_t durable_end = 0;
  {
    auto attached = Log::attach(path.str()).value();
    durable_end = attached.info().partitions[0].durable_offset;
  }
  ASSERT_GT(durable_end, 0u);
  {  // The crash: what was not synced never reached the disk.
    auto file = io::SegmentFile::open(io::partition_directory(path.str(), 0) + "/" + io::segment_file_name(0),
                                      /*writable=*/true, o.segment_size)
                    .value();
    ASSERT_TRUE(file.zero_from(durable_end).ok());
  }
  lose_shared_memory(path.str());
  auto log = Log::open(path.str(), {.keeper = false}).value();
  EXPECT_EQ(read_all(log, 20, nullptr, true).size(), 10u);
  ProducerOptions po;
  po.producer_id = "sensor";
  auto again = log.producer(po).value();
  ASSERT_TRUE(again.last_sequence().has_value());
  EXPECT_EQ(*again.last_sequence(), 10u);
}

// Group offsets come back after a host crash (from the keeper's
// checkpoint) and the group resumes there, not at the start.
TEST(Durability, GroupsResumeFromTheirCheckpointedOffsetAfterHostCrash) {
  test::TempLogPath path;
  {
    auto log = Log::create(path.str(), durable()).value();
    auto p = log.producer().value();
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(p.append(as_bytes(value_of(i))));
    ConsumerOptions co;
    co.group = "billing";
    auto c = log.consumer(co).value();
    int seen = 0;
    while (seen < 120) seen += static_cast<int>(c.poll_wait([](const Record&) {}, 120 - seen, 1s).records);
    c.close();
    // The handles go: the keeper checkpoints and syncs on the way out.
  }
  {
    std::ifstream in(path.str() + "/shmlog.state");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(text.find("group.0=62696c6c696e67"), std::string::npos) << text;  // "billing"
  }
  lose_shared_memory(path.str());
  auto log = Log::open(path.str()).value();
  ConsumerOptions co;
  co.group = "billing";
  auto c = log.consumer(co).value();
  std::vector<std::string> got;
  while (c.poll_wait([&](const Record& r) { got.push_back(test::bytes_to_string(r.value)); }, 256, 200ms).records > 0) {
  }
  ASSERT_EQ(got.size(), 80u);
  EXPECT_EQ(got.front(), value_of(120));
}

// A deleted group is gone from the checkpoint too: the memory a host crash
// lost is rebuilt without it (it would hold the ring again).
TEST(Durability, ADeletedGroupDoesNotComeBackAfterHostCrash) {
  test::TempLogPath path;
  {
    auto log = Log::create(path.str(), durable()).value();
    auto p = log.producer().value();
    ASSERT_TRUE(p.append(as_bytes(value_of(0))));
    for (const char* name : {"billing", "audit"}) {
      ConsumerOptions co;
      co.group = name;
      auto c = log.consumer(co).value();
      c.poll_wait([](const Record&) {}, 1, 1s);
    }
    ASSERT_TRUE(log.delete_group("billing").ok());
    // The handles go: the keeper checkpoints and syncs on the way out.
  }
  {
    std::ifstream in(path.str() + "/shmlog.state");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(text.find("62696c6c696e67"), std::string::npos) << text;  // "billing"
    EXPECT_NE(text.find("6175646974"), std::string::npos) << text;      // "audit"
  }
  lose_shared_memory(path.str());
  auto log = Log::open(path.str()).value();
  const auto groups = log.info().groups;
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].name, "audit");
}

// A durable log's memory made anew after a host crash counts on from the
// checkpoint's append totals.
TEST(Durability, AppendCountsComeBackFromTheCheckpointAfterHostCrash) {
  test::TempLogPath path;
  {
    auto log = Log::create(path.str(), durable()).value();
    auto p = log.producer().value();
    for (int i = 0; i < 30; ++i) ASSERT_TRUE(p.append(as_bytes(value_of(i))));
  }
  lose_shared_memory(path.str());
  auto log = Log::open(path.str()).value();
  EXPECT_EQ(log.info().partitions[0].appends, 30u);
  auto p = log.producer().value();
  ASSERT_TRUE(p.append(as_bytes(value_of(30))));
  EXPECT_EQ(log.info().partitions[0].appends, 31u);
}

// Files made ahead of need whose headers never reached the disk, before one
// whose header did: recovery drops them and opens the log.
TEST(Durability, PreallocatedFilesWithoutHeadersAfterTheTailAreDropped) {
  test::TempLogPath path;
  {
    auto log = Log::create(path.str(), durable()).value();
    ProducerOptions po;
    po.acks = ProducerOptions::Acks::kDurable;
    auto p = log.producer(po).value();
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(p.append(as_bytes(value_of(i))));
  }
  const std::string dir = io::partition_directory(path.str(), 0);
  auto bases = io::list_segment_files(dir).value();
  ASSERT_GE(bases.size(), 3u);  // the tail's file and at least two made ahead
  ASSERT_EQ(bases[0], 0u);
  {  // The first file made ahead lost its header; the second kept its own.
    std::fstream f(dir + "/" + io::segment_file_name(bases[1]), std::ios::in | std::ios::out | std::ios::binary);
    const std::string zeros(io::kSegmentHeaderSize, '\0');
    f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
  lose_shared_memory(path.str());
  auto log = Log::open(path.str());
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  std::vector<std::string> expected;
  for (int i = 0; i < 20; ++i) expected.push_back(value_of(i));
  EXPECT_EQ(read_all(*log, 20, nullptr, true), expected);
  const std::uint64_t end = log->info().partitions[0].end_offset;
  auto p = log->producer().value();  // and appends go on after them
  EXPECT_EQ(p.append(as_bytes("next")).offset, end);
}

// Every byte position of the last records, zeroed from there on (a torn
// write) or flipped (a corrupt sector), and the file cut short: opening
// never crashes, delivers no damaged record, and keeps every record before
// the damage.
TEST(Durability, TornOrCorruptTailAtEveryBytePositionIsCut) {
  test::TempLogPath path;
  constexpr int kRecords = 40;
  std::vector<std::uint64_t> offsets;
  {
    auto log = Log::create(path.str(), durable()).value();
    ProducerOptions po;
    po.acks = ProducerOptions::Acks::kDurable;
    auto p = log.producer(po).value();
    for (int i = 0; i < kRecords; ++i) offsets.push_back(p.append(as_bytes(value_of(i))).offset);
  }
  const std::string file = last_segment_file(path.str());
  ASSERT_FALSE(file.empty());
  std::string original;
  {
    std::ifstream in(file, std::ios::binary);
    original.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::uint64_t from = io::kSegmentHeaderSize + offsets[kRecords - 3];
  const std::uint64_t to = io::kSegmentHeaderSize + offsets[kRecords - 1] + 32 + value_of(kRecords - 1).size();
  auto check = [&](const std::string& damage, std::uint64_t at) {
    lose_shared_memory(path.str());
    auto log = Log::open(path.str(), {.keeper = false});
    ASSERT_TRUE(log.ok()) << damage << " at " << at << ": " << log.status().to_string();
    PollResult total;
    auto got = read_all(*log, kRecords, &total, /*settled=*/true);
    const std::uint64_t damaged = at - io::kSegmentHeaderSize;
    std::size_t intact = 0;
    while (intact < offsets.size() && offsets[intact] + 32 + value_of(static_cast<int>(intact)).size() <= damaged) {
      ++intact;
    }
    // Every record before the damage, then at most the originals after it
    // (a flipped byte in the middle of a record loses only that record).
    ASSERT_GE(got.size(), intact) << damage << " at " << at;
    std::size_t next = 0;
    for (const auto& v : got) {
      while (next < offsets.size() && value_of(static_cast<int>(next)) != v) ++next;
      ASSERT_LT(next, offsets.size()) << damage << " at " << at << ": delivered a damaged record " << v.substr(0, 12) << " of " << got.size();
      if (next < intact) {
        ASSERT_EQ(v, value_of(static_cast<int>(&v - got.data()))) << damage << " at " << at;
      }
      ++next;
    }
    EXPECT_EQ(total.lost_bytes, 0u);
  };
  auto restore = [&] {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(original.data(), static_cast<std::streamsize>(original.size()));
  };
  for (std::uint64_t at = from; at < to; ++at) {
    std::string zeroed = original;
    std::fill(zeroed.begin() + static_cast<std::ptrdiff_t>(at), zeroed.end(), '\0');
    {
      std::ofstream out(file, std::ios::binary | std::ios::trunc);
      out.write(zeroed.data(), static_cast<std::streamsize>(zeroed.size()));
    }
    check("zeroed", at);
    restore();
    std::string flipped = original;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x5a);
    {
      std::ofstream out(file, std::ios::binary | std::ios::trunc);
      out.write(flipped.data(), static_cast<std::streamsize>(flipped.size()));
    }
    check("flipped", at);
    restore();
    ASSERT_EQ(::truncate(file.c_str(), static_cast<off_t>(at)), 0);
    check("truncated", at);
    restore();
  }
}

// The keeper's process is killed with -9 under load: a standby keeper in
// another process takes the lease, and durable appends go on.
TEST(Durability, KeeperKilledAnotherProcessTakesOver) {
  test::TempLogPath path;
  { auto created = Log::create(path.str(), durable()).value(); }
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const auto keeper = test::spawn([&] {
    auto log = Log::open(path.str()).value();
    while (!log.info().keeper_alive || log.info().keeper_pid != static_cast<std::uint32_t>(::getpid())) {
      std::this_thread::sleep_for(1ms);
    }
    char c = 'k';
    if (::write(ready[1], &c, 1) != 1) return 1;
    auto p = log.producer().value();
    for (int i = 0;; ++i) (void)p.append(as_bytes(value_of(i)));
  });
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ::close(ready[1]);
  auto log = Log::open(path.str()).value();  // stands by: the child holds the lease
  ::kill(static_cast<pid_t>(keeper), SIGKILL);
  EXPECT_EQ(test::join(keeper), 128 + SIGKILL);
  auto p = log.producer(acks_durable()).value();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(p.append(as_bytes("after"))) << i;
  const auto info = log.info();
  EXPECT_EQ(info.keeper_pid, static_cast<std::uint32_t>(::getpid()));
  EXPECT_GE(info.keeper_takeovers, 1u);
  EXPECT_EQ(info.partitions[0].durable_offset, info.partitions[0].end_offset);
}

// A keeper killed after it wrote records but before it synced them: the
// next keeper syncs those files before it calls the records durable, even
// when nothing new arrives.
TEST(Durability, KeeperTakingOverSyncsWhatTheLastOneWroteUnsynced) {
  test::TempLogPath path;
  const LogOptions o = synced_on_request();
  { auto created = Log::create(path.str(), o).value(); }
  kill_when_ready([&](auto ready) {
    auto log = Log::open(path.str()).value();
    auto p = log.producer().value();
    AppendResult last;
    for (int i = 0; i < 300; ++i) last = p.append(as_bytes(value_of(i)));
    // Written (the keeper polls), not synced (the interval is long).
    while (log.info().partitions[0].written_offset <= last.offset) std::this_thread::sleep_for(1ms);
    if (log.info().partitions[0].durable_offset > 0 || !ready()) return 1;
    for (;;) std::this_thread::sleep_for(1s);
  });
  auto log = Log::open(path.str()).value();
  const std::uint64_t end = log.info().partitions[0].end_offset;
  ASSERT_GT(end, 0u);
  auto p = log.producer().value();
  EXPECT_EQ(p.wait_durable(0, end, 10s), Errc::kOk);
  EXPECT_EQ(log.info().partitions[0].durable_offset, end);
}

// Two handles of one log in one process: closing the one whose keeper holds
// the lease hands the keeping to the other's.
TEST(Durability, ClosingOneOfTwoHandlesLeavesTheLogKept) {
  test::TempLogPath path;
  auto first = Log::create(path.str(), durable()).value();
  auto second = Log::open(path.str()).value();
  while (!first.info().keeper_alive) std::this_thread::sleep_for(1ms);
  first = Log::create_in_memory({}).value();  // closes the first handle
  auto p = second.producer(acks_durable()).value();
  // Four rings' worth: the ring is reused only after the keeper wrote it.
  const std::string value(1000, 'v');
  for (int i = 0; i < 4 * 2 * 64; ++i) ASSERT_TRUE(p.append(as_bytes(value))) << i;
  const auto info = second.info();
  EXPECT_TRUE(info.keeper_alive);
  EXPECT_EQ(info.partitions[0].durable_offset, info.partitions[0].end_offset);
}

// With a long fsync interval nothing is durable until a producer asks; a
// read_durable consumer sees only what is.
TEST(Durability, ReadDurableSeesOnlyDurableRecords) {
  test::TempLogPath path;
  const LogOptions o = synced_on_request();
  auto log = Log::create(path.str(), o).value();
  auto p = log.producer().value();
  ASSERT_TRUE(p.append(as_bytes("first")));
  ConsumerOptions co;
  co.read_durable = true;
  auto c = log.consumer(co).value();
  std::vector<std::string> got;
  auto take = [&] { c.poll_wait([&](const Record& r) { got.push_back(test::bytes_to_string(r.value)); }, 16, 100ms); };
  take();
  EXPECT_TRUE(got.empty());
  auto r = p.append(as_bytes("second"));
  ASSERT_EQ(p.wait_durable(0, r.offset + 1, 10s), Errc::kOk);
  take();
  EXPECT_EQ(got, (std::vector<std::string>{"first", "second"}));
  const auto info = log.info();
  EXPECT_EQ(info.partitions[0].durable_offset, info.partitions[0].end_offset);
}

// The disk, noting which process and thread ran each batch with a sync,
// in memory shared with forked children.
class SyncWitness : public io::FileLayer {
 public:
  struct Sync {
    std::int32_t pid, tid;
  };
  SyncWitness() : disk_(io::make_disk_layer(8).value()) {
    void* at = ::mmap(nullptr, sizeof(Book), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (at == MAP_FAILED) std::abort();
    book_ = new (at) Book();
  }
  ~SyncWitness() override { ::munmap(book_, sizeof(Book)); }
  Status run(std::span<io::IoOp> ops, bool inline_run) override {
    for (const io::IoOp& op : ops) {
      if (op.kind != io::IoOp::Kind::kDataSync) continue;
      const std::uint32_t i = book_->count.fetch_add(1);
      if (i < std::size(book_->syncs)) book_->syncs[i] = {static_cast<std::int32_t>(::getpid()), static_cast<std::int32_t>(::gettid())};
      break;
    }
    return disk_->run(ops, inline_run);
  }
  Status sync_directory(const std::string& dir) override { return disk_->sync_directory(dir); }
  Status replace_file(const std::string& path, const std::string& header, const io::KeyValues& values,
                      std::uint32_t mode) override {
    return disk_->replace_file(path, header, values, mode);
  }
  Result<io::SegmentFile> create_segment_file(const std::string& dir, const io::SegmentFileHeader& header,
                                              std::uint32_t mode) override {
    return disk_->create_segment_file(dir, header, mode);
  }
  Status remove_file(const std::string& path) override { return disk_->remove_file(path); }
  // How many of the batches with a sync ran on thread `tid`.
  std::size_t syncs_on_thread(std::int32_t tid) const {
    const std::size_t n = std::min<std::size_t>(book_->count.load(), std::size(book_->syncs));
    return static_cast<std::size_t>(std::count_if(book_->syncs, book_->syncs + n, [&](const Sync& s) { return s.tid == tid; }));
  }
  std::vector<Sync> syncs() const {
    const std::size_t n = std::min<std::size_t>(book_->count.load(), std::size(book_->syncs));
    return {book_->syncs, book_->syncs + n};
  }

 private:
  struct Book {
    std::atomic<std::uint32_t> count{0};
    Sync syncs[4096];
  };
  std::unique_ptr<io::FileLayer> disk_;
  Book* book_ = nullptr;
};

// A log synced on request whose keeper (this process's, running) writes
// through a SyncWitness.
struct WitnessedLog {
  test::TempLogPath path;
  std::shared_ptr<SyncWitness> layer = std::make_shared<SyncWitness>();
  test::FileLayerScope scope{layer};
  Log log = Log::create(path.str(), synced_on_request()).value();
  WitnessedLog() {
    while (!log.info().keeper_alive) std::this_thread::sleep_for(1ms);
  }
};

// A durable producer in the process whose keeper holds the lease writes
// and syncs its record in its own thread (a round of the keeper's, under
// its lock), without waking the keeper and waiting to be woken.
TEST(Durability, DurableWaiterSyncsInItsOwnThreadWhereItsProcessKeeps) {
  WitnessedLog w;
  Log& log = w.log;
  auto p = log.producer(acks_durable()).value();
  // A waiter that finds the keeper mid-round (its 1 ms poll, or descheduled
  // holding the lock on a loaded machine) wakes it instead: append until
  // one sync ran here, at most 1 000 records (without the waiter's own
  // rounds, none ever does).
  const std::int32_t self = static_cast<std::int32_t>(::gettid());
  for (int i = 0; i < 1000 && w.layer->syncs_on_thread(self) == 0; ++i) {
    ASSERT_TRUE(p.append(as_bytes(value_of(i)))) << i;
  }
  EXPECT_GE(w.layer->syncs_on_thread(self), 1u) << "every sync ran on the keeper's thread";
  const auto info = log.info();
  EXPECT_EQ(info.partitions[0].durable_offset, info.partitions[0].end_offset);
}

// A forked child inherits the handle but not the keeper's thread: its
// durable appends are synced by the parent's keeper, never by a copy of
// the keeper's state in the child.
TEST(Durability, ForkedChildsDurableAppendsAreSyncedByTheKeeper) {
  WitnessedLog w;
  Log& log = w.log;
  const auto child = test::spawn([&] {
    auto p = log.producer(acks_durable());
    if (!p.ok()) return 2;
    for (int i = 0; i < 20; ++i) {
      if (!p->append(as_bytes(value_of(i)))) return 3;
    }
    return 0;
  });
  EXPECT_EQ(test::join(child), 0);
  const auto syncs = w.layer->syncs();
  EXPECT_FALSE(syncs.empty());
  for (const auto& sync : syncs) EXPECT_EQ(sync.pid, ::getpid()) << "a sync ran in the child";
}

// Many producers waiting for durability share fsyncs (group commit).
TEST(Durability, ConcurrentDurableProducersShareSyncs) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), durable()).value();
  constexpr int kThreads = 4, kEach = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      ProducerOptions po;
      po.acks = ProducerOptions::Acks::kDurable;
      auto p = log.producer(po).value();
      for (int i = 0; i < kEach; ++i) ASSERT_TRUE(p.append(as_bytes("shared")));
    });
  }
  for (auto& t : threads) t.join();
  const auto info = log.info();
  EXPECT_EQ(info.partitions[0].durable_offset, info.partitions[0].end_offset);
  // Not a timing claim: one sync per record at most, usually far fewer.
  EXPECT_LE(info.partitions[0].fsyncs, static_cast<std::uint64_t>(kThreads * kEach));
  EXPECT_GE(info.partitions[0].fsyncs, 1u);
}

TEST(Durability, RetentionDeletesOldestSegmentsAndReadersStartAfterThem) {
  test::TempLogPath path;
  LogOptions o = durable(Durability::kFlush);
  o.retention_bytes = 4 * o.segment_size;
  auto log = Log::create(path.str(), o).value();
  auto p = log.producer().value();
  int n = 0;
  while (log.info().partitions[0].end_offset < 12 * o.segment_size) ASSERT_TRUE(p.append(as_bytes(value_of(n++))));
  // Retention runs once a second in the keeper.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (log.info().partitions[0].disk_start == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  const auto info = log.info();
  ASSERT_GT(info.partitions[0].disk_start, 0u);
  // disk_start moves first, then the files before it go, then disk_bytes
  // counts what is left: the retention budget, plus files the keeper
  // preallocated ahead (up to 4) and the one being written.
  // Retention may run more than once meanwhile (when files are made, and
  // as the checkpoint comes to hold the sequences of more records): the
  // start it settles at.
  const auto first = [&] { return io::list_segment_files(io::partition_directory(path.str(), 0)).value().front(); };
  const std::uint64_t bound = o.retention_bytes + 5 * (o.segment_size + io::kSegmentHeaderSize);
  std::uint64_t start = info.partitions[0].disk_start;
  for (; std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(20ms)) {
    start = log.info().partitions[0].disk_start;
    if (first() == start && log.info().partitions[0].disk_bytes <= bound) break;
  }
  EXPECT_EQ(first(), start);
  EXPECT_LE(log.info().partitions[0].disk_bytes, bound);
  // A reader from the earliest starts at the oldest file, not at 0.
  auto c = log.consumer({}).value();
  Record r0;
  c.poll([&](const Record& r) { r0 = r; }, 1);
  EXPECT_GE(r0.offset, start);
  auto seek = c.seek(0, 0);
  ASSERT_FALSE(seek.ok());
  EXPECT_NE(seek.message().find("not retained"), std::string::npos) << seek.message();
}

TEST(Durability, SeekTimeFindsTheFirstRecordAtOrAfterOnDiskAndInTheRing) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), durable(Durability::kFlush)).value();
  auto p = log.producer().value();
  std::vector<std::pair<std::uint64_t, std::uint64_t>> stamps;  // offset, timestamp
  int n = 0;
  while (log.info().partitions[0].end_offset < 5 * 64 * 1024) {
    auto r = p.append(as_bytes(value_of(n++)));
    ASSERT_TRUE(r);
    stamps.emplace_back(r.offset, 0);
  }
  auto c = log.consumer({}).value();
  std::size_t i = 0;
  while (i < stamps.size()) {
    c.poll([&](const Record& r) { stamps[i++].second = r.timestamp_ns; }, 512);
  }
  for (std::size_t pick : {std::size_t{0}, std::size_t{1}, stamps.size() / 3, stamps.size() - 1}) {
    auto at = c.seek_time(0, stamps[pick].second);
    ASSERT_TRUE(at.ok());
    // The first record in offset order with a timestamp at or after.
    std::size_t expect = 0;
    while (stamps[expect].second < stamps[pick].second) ++expect;
    EXPECT_EQ(*at, stamps[expect].first) << pick;
    Record r1;
    c.poll([&](const Record& r) { r1 = r; }, 1);
    EXPECT_EQ(r1.offset, stamps[expect].first);
  }
  auto end = c.seek_time(0, UINT64_MAX);
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(*end, log.info().partitions[0].end_offset);
}

// A file system too small for the log: appends end in kDiskFull (the ring
// cannot be reused), never a crash; every acknowledged record is readable.
TEST(Durability, DiskFullIsBackPressureNotACrash) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  char dir[] = "/tmp/shmlog-full-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  if (::mount("tmpfs", dir, "tmpfs", 0, "size=256k") != 0) {
    ::rmdir(dir);
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  const std::string path = std::string(dir) + "/log";
  {
    auto log = Log::create(path, durable(Durability::kFlush)).value();
    ProducerOptions po;
    po.backpressure_timeout = 300ms;
    auto p = log.producer(po).value();
    int acked = 0;
    AppendResult r;
    for (int i = 0; i < 100000; ++i) {
      r = p.append(as_bytes(value_of(i)));
      if (!r) break;
      ++acked;
    }
    EXPECT_EQ(r.error, Errc::kDiskFull) << errc_name(r.error);
    const auto info = log.info();
    EXPECT_GE(info.partitions[0].disk_full, 1u);
    EXPECT_EQ(info.partitions[0].flush_errno, ENOSPC);
    auto got = read_all(log, static_cast<std::size_t>(acked));
    ASSERT_EQ(got.size(), static_cast<std::size_t>(acked));
    for (int i = 0; i < acked; ++i) ASSERT_EQ(got[static_cast<std::size_t>(i)], value_of(i));
  }
  EXPECT_TRUE(Log::remove(path).ok());
  ::umount(dir);
  ::rmdir(dir);
}

// ---------------------------------------------------------------------------
// The scanner over forged damage (LevelDB-style helpers).

struct Forge {
  std::vector<std::byte> data = std::vector<std::byte>(64 * 1024);
  std::uint64_t at = 0;
  std::vector<std::uint64_t> offsets;
  void add(const std::string& value) {
    const auto frame = static_cast<std::uint32_t>(32 + value.size());
    format::RecordHeader h{};
    h.commit_word = format::make_commit_word(static_cast<std::int32_t>(frame), format::RecordType::kData,
                                             format::kRecordFlagChecksum, 0);
    h.timestamp_ns = 1;
    h.sequence = offsets.size();
    h.checksum = record::checksum(h, h.commit_word, reinterpret_cast<const std::byte*>(value.data()), value.size());
    std::memcpy(data.data() + at, &h, sizeof h);
    std::memcpy(data.data() + at + 32, value.data(), value.size());
    offsets.push_back(at);
    at += format::align_record(frame);
  }
  void increment_byte(std::uint64_t where) { data[where] = std::byte(static_cast<std::uint8_t>(data[where]) + 1); }
};

TEST(SegmentScan, CleanTailEndsAtTheLastRecord) {
  Forge f;
  for (int i = 0; i < 10; ++i) f.add(value_of(i));
  auto scan = scan_segment(f.data, 1 << 16, 4096);
  EXPECT_EQ(scan.records, 10u);
  EXPECT_EQ(scan.end, (1u << 16) + f.at);
  EXPECT_TRUE(scan.problems.empty());
  EXPECT_TRUE(scan.torn.empty());
}

TEST(SegmentScan, BadChecksumInTheMiddleIsReportedAndSkipped) {
  Forge f;
  for (int i = 0; i < 10; ++i) f.add(value_of(i));
  f.increment_byte(f.offsets[4] + 40);  // a value byte of record 4
  std::vector<std::uint64_t> seen;
  auto scan = scan_segment(f.data, 0, 4096, [&](const SegmentRecord& r) { seen.push_back(r.offset); });
  EXPECT_EQ(scan.records, 9u);
  ASSERT_EQ(scan.problems.size(), 1u);
  EXPECT_EQ(scan.problems[0].offset, f.offsets[4]);
  EXPECT_EQ(scan.problems[0].bytes, f.offsets[5] - f.offsets[4]);
  EXPECT_EQ(scan.problems[0].reason, "checksum mismatch");
  EXPECT_TRUE(scan.torn.empty());
  EXPECT_EQ(seen.size(), 9u);
}

TEST(SegmentScan, DamageAfterTheLastGoodRecordIsTheTornTail) {
  Forge f;
  for (int i = 0; i < 10; ++i) f.add(value_of(i));
  f.increment_byte(f.offsets[9] + 2);  // the last record's length
  auto scan = scan_segment(f.data, 0, 4096);
  EXPECT_EQ(scan.records, 9u);
  EXPECT_EQ(scan.end, f.offsets[9]);
  EXPECT_TRUE(scan.problems.empty());
  ASSERT_EQ(scan.torn.size(), 1u);
  EXPECT_EQ(scan.torn[0].offset, f.offsets[9]);
  EXPECT_LE(scan.torn[0].bytes, f.at - f.offsets[9]);
}

TEST(SegmentScan, RandomBytesNeverReadOutOfBounds) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::byte> data(4096 + 32 * (rng() % 64));
    for (auto& b : data) b = std::byte(static_cast<std::uint8_t>(rng() % 4 == 0 ? rng() : 0));
    auto scan = scan_segment(data, 0, 4096);
    EXPECT_LE(scan.end, data.size());
    auto header = io::decode_segment_header(data);
    EXPECT_FALSE(header.ok());
  }
}

TEST(SegmentFileHeader, RoundTripsAndRefusesDamage) {
  io::SegmentFileHeader h{3, 5u << 16, 1u << 16, 0xabcdef, 42, 0x1234567890};
  std::byte fields[io::kSegmentHeaderFields];
  io::encode_segment_header(h, std::span<std::byte, io::kSegmentHeaderFields>(fields));
  auto back = io::decode_segment_header(fields);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->partition, 3u);
  EXPECT_EQ(back->base_offset, 5u << 16);
  EXPECT_EQ(back->log_id, 0xabcdefu);
  EXPECT_EQ(back->incarnation, 0x1234567890u);
  // A 1.0 header: no incarnation (zeros past the first checksum), read as 0.
  std::byte old_fields[io::kSegmentHeaderFields];
  std::memcpy(old_fields, fields, sizeof old_fields);
  old_fields[10] = std::byte{0};  // minor 0
  std::memset(old_fields + 48, 0, 16);
  const std::uint32_t crc = crc32c::mask(crc32c::value(old_fields, 48));
  std::memcpy(old_fields + 48, &crc, sizeof crc);
  back = io::decode_segment_header(old_fields);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->incarnation, 0u);
  for (const std::size_t at : {20, 55}) {  // a field, and the incarnation
    std::byte damaged[io::kSegmentHeaderFields];
    std::memcpy(damaged, fields, sizeof damaged);
    damaged[at] ^= std::byte{1};
    EXPECT_NE(io::decode_segment_header(damaged).status().message().find("checksum"), std::string::npos) << at;
  }
  EXPECT_EQ(io::parse_segment_file_name(io::segment_file_name(123456789)), 123456789u);
  EXPECT_FALSE(io::parse_segment_file_name("00000000000000000001.tmp").has_value());
}

}  // namespace
}  // namespace shmlog
