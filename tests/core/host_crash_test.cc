// Host crashes and disk errors, injected with the fault layer: a failed
// fsync or directory sync is never reported durable; recovery cuts at the
// first hole past the checkpointed durable position, keeps damage below it,
// and never takes its tail from a file that is not the segment it names.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "crash_util.h"
#include "meta.h"
#include "shmlog/shm/process.h"
#include "shmlog/io/segment_file.h"
#include "shmlog/segments.h"
#include "test_util.h"
#include "test_hooks.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;

LogOptions durable_log() {
  LogOptions o;
  o.partitions = 1;
  o.segment_size = 64 * 1024;
  o.ring_segments = 2;
  o.max_record_size = 4096;
  o.durability = Durability::kFsync;
  o.claim_timeout = 100ms;  // a reader at a hole waits this long, then steps over it
  return o;
}

std::string value_of(int i) { return "record-" + std::to_string(i) + std::string(static_cast<std::size_t>(i % 61), 'x'); }

// Every record of partition 0 of a log nothing writes to (up to its end).
std::vector<std::string> read_settled(const Log& log) {
  ConsumerOptions co;
  co.partitions = {0};
  auto c = log.consumer(co).value();
  const std::uint64_t end = log.info().partitions[0].end_offset;
  std::vector<std::string> out;
  for (int idle = 0; c.position(0).value_or(0) < end && idle < 3;) {
    const std::uint64_t before = c.position(0).value_or(0);
    (void)c.poll_wait([&](const Record& rec) { out.push_back(test::bytes_to_string(rec.value)); }, 512, 500ms);
    idle = c.position(0).value_or(0) == before ? idle + 1 : 0;
  }
  return out;
}

// After a crash: the log as recovery rebuilds it from its files alone.
Log reopen_after_crash(const std::string& path) {
  EXPECT_TRUE(test::lose_shared_memory(path).ok());
  auto log = Log::open(path, {.keeper = false});
  EXPECT_TRUE(log.ok()) << log.status().to_string();
  return std::move(log).value();
}

// What survived is exactly value_of(0 .. n-1), and n covers every ack.
void expect_prefix_with(const std::vector<std::string>& got, int acked_through) {
  ASSERT_GE(static_cast<int>(got.size()), acked_through + 1)
      << "acknowledged records lost: " << got.size() << " survived, acked through " << acked_through;
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], value_of(static_cast<int>(i))) << i;
}

// Appends value_of(0 .. count-1), each acknowledged durable, on a log whose
// keeper writes through `layer`; `before(i)` runs before append i (to arm a
// fault). Then the host crashes, dropping every unsynced write, and the
// log is reopened from its files: every acknowledged record must be there.
void append_acked_then_crash(const std::string& path, const std::shared_ptr<io::FaultLayer>& layer, int count,
                             const std::function<void(int)>& before) {
  int acked = -1;
  {
    test::FileLayerScope scope(layer);
    auto log = Log::create(path, durable_log()).value();
    ProducerOptions po;
    po.acks = ProducerOptions::Acks::kDurable;
    auto p = log.producer(po).value();
    for (int i = 0; i < count; ++i) {
      before(i);
      if (p.append(as_bytes(value_of(i))) && acked == i - 1) acked = i;
    }
    EXPECT_EQ(layer->counts().faults, 1u);
    EXPECT_GE(log.info().partitions[0].io_errors, 1u);
    layer->crash(io::FaultLayer::Crash::kDropAll);
  }
  auto log = reopen_after_crash(path);
  expect_prefix_with(read_settled(log), acked);
}

// Linux reports a writeback error once: the sync after a failed one
// succeeds although the pages it lost never reached the disk. The keeper
// writes those bytes again before it calls anything durable.
TEST(HostCrash, FailedSyncIsNeverReportedDurable) {
  test::TempLogPath path;
  auto layer = std::make_shared<io::FaultLayer>(1);
  append_acked_then_crash(path.str(), layer, 40, [&](int i) {
    if (i == 20) layer->fail_sync(1, EIO);
  });
}

// The first sync of a new file fails: its header, written when the file
// was made and synced only with the file's first data, may be lost with
// the data, so the keeper writes it again too (the host-crash torture
// found every record of such a file unreadable after the crash).
TEST(HostCrash, AFailedFirstSyncOfAFileDoesNotLoseItsHeader) {
  test::TempLogPath path;
  auto layer = std::make_shared<io::FaultLayer>(5);
  layer->fail_sync(1, EIO);
  append_acked_then_crash(path.str(), layer, 40, [](int) {});
}

// A write that wrote half its bytes: the keeper writes the piece again
// from its start, and the records after it in the segment still reach
// the file (the flusher once resumed its scan mid-record, skipped to the
// segment's end and acknowledged records it never wrote).
TEST(HostCrash, ShortWriteIsWrittenAgainAndLaterRecordsReachTheDisk) {
  test::TempLogPath path;
  auto layer = std::make_shared<io::FaultLayer>(4);
  layer->short_write(7);
  append_acked_then_crash(path.str(), layer, 300, [](int) {});
}

// A file whose directory entry may not be on disk takes no writes: the
// files made ahead of need in a batch whose directory sync failed are
// opened again only after a directory sync succeeds. Here none does once
// the first record is in, so the records past the files made before then
// are not acknowledged, and a crash that loses their names loses nothing
// acknowledged.
TEST(HostCrash, FailedDirectorySyncKeepsNewFilesFromTakingWrites) {
  test::TempLogPath path;
  auto layer = std::make_shared<io::FaultLayer>(2);
  const std::string big(3000, 'v');
  int acked = -1;
  {
    test::FileLayerScope scope(layer);
    auto log = Log::create(path.str(), durable_log()).value();
    ProducerOptions po;
    po.acks = ProducerOptions::Acks::kDurable;
    po.durable_timeout = 300ms;
    auto p = log.producer(po).value();
    ASSERT_TRUE(p.append(as_bytes(value_of(0) + big)));
    acked = 0;
    layer->fail_directory_sync(1, EIO, /*sticky=*/true);
    for (int i = 1; i < 200 && acked == i - 1; ++i) {  // ~9 segments, until an ack fails
      if (p.append(as_bytes(value_of(i) + big))) acked = i;
    }
    EXPECT_GE(layer->counts().faults, 1u);
    EXPECT_LT(acked, 199) << "records in files whose names may be lost were acknowledged";
    layer->crash(io::FaultLayer::Crash::kDropAll);
  }
  auto log = reopen_after_crash(path.str());
  const auto got = read_settled(log);
  ASSERT_GE(static_cast<int>(got.size()), acked + 1) << "acknowledged records lost";
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], value_of(static_cast<int>(i)) + big);
}

// Retention removed files, but the directory syncs failed, so the host
// crash brings them back whole: recovery reads them as the history before
// the files that stayed, in order, nothing reported damaged, and every
// acknowledged record in a file that was not removed for good survives.
TEST(HostCrash, FilesRetentionRemovedComeBackWholeAndInOrder) {
  test::TempLogPath path;
  auto layer = std::make_shared<io::FaultLayer>(3);
  const std::string big(3000, 'v');
  LogOptions o = durable_log();
  o.retention_bytes = 1;  // everything outside the ring goes
  int acked = -1;
  {
    test::FileLayerScope scope(layer);
    auto log = Log::create(path.str(), o).value();
    ProducerOptions po;
    po.acks = ProducerOptions::Acks::kDurable;
    po.durable_timeout = 300ms;
    auto p = log.producer(po).value();
    // Appends until retention has removed files (it waits for a checkpoint
    // that holds what it removes), then no directory sync succeeds: no
    // file made from then on takes writes, and removals stay undone.
    int failing_from = -1;
    for (int i = 0; i < 2000 && acked == i - 1; ++i) {
      if (failing_from < 0 && i >= 130 && !layer->removed_files().empty()) {
        layer->fail_directory_sync(1, EIO, /*sticky=*/true);
        failing_from = i;
      }
      if (p.append(as_bytes(value_of(i) + big))) acked = i;
    }
    ASSERT_GE(failing_from, 130) << "retention removed nothing";
    ASSERT_LT(acked, 1999) << "records in files whose names may be lost were acknowledged";
    const auto crash = layer->crash(io::FaultLayer::Crash::kDropAll);
    EXPECT_GE(crash.removals_undone, 1u);
  }
  std::uint64_t removed_below = 0;
  for (const std::string& file : layer->removed_files()) {
    removed_below = std::max(removed_below, *io::parse_segment_file_name(file.substr(file.rfind('/') + 1)) + o.segment_size);
  }
  auto log = reopen_after_crash(path.str());
  ConsumerOptions co;
  co.partitions = {0};
  auto c = log.consumer(co).value();
  std::vector<std::pair<std::uint64_t, std::string>> got;
  std::uint64_t corrupt = 0;
  const std::uint64_t end = log.info().partitions[0].end_offset;
  for (int idle = 0; c.position(0).value_or(0) < end && idle < 3;) {
    const std::uint64_t before = c.position(0).value_or(0);
    corrupt += c.poll_wait([&](const Record& r) { got.emplace_back(r.offset, test::bytes_to_string(r.value)); }, 512,
                           500ms)
                   .corrupt;
    idle = c.position(0).value_or(0) == before ? idle + 1 : 0;
  }
  EXPECT_EQ(corrupt, 0u);
  ASSERT_FALSE(got.empty());
  // (a segment may begin with padding: the first record is in the first file back)
  EXPECT_GE(got.front().first, removed_below);
  EXPECT_LT(got.front().first, removed_below + o.segment_size) << "the files that came back were not read first";
  const int first = std::stoi(got.front().second.substr(7));
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].second, value_of(first + static_cast<int>(i)) + big) << i;
  }
  EXPECT_GE(first + static_cast<int>(got.size()) - 1, acked) << "acknowledged records lost";
}

// Overwrites partition 0's bytes [from, to) with zeros in their file.
void zero_range(const std::string& path, std::uint64_t segment_size, std::uint64_t from, std::uint64_t to) {
  const std::uint64_t base = from & ~(segment_size - 1);
  std::fstream f(io::partition_directory(path, 0) + "/" + io::segment_file_name(base),
                 std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good());
  f.seekp(static_cast<std::streamoff>(io::kSegmentHeaderSize + (from - base)));
  const std::string zeros(to - from, '\0');
  f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
}

// 60 records by a named producer, written and synced in order.
std::vector<std::uint64_t> sixty_records(const std::string& path) {
  std::vector<std::uint64_t> offsets;
  auto log = Log::create(path, durable_log()).value();
  ProducerOptions po;
  po.producer_id = "sensor";
  auto p = log.producer(po).value();
  for (int i = 0; i < 60; ++i) offsets.push_back(p.append(as_bytes(value_of(i))).offset);
  offsets.push_back(log.info().partitions[0].end_offset);
  return offsets;  // the handle goes: the keeper syncs all and checkpoints
}

// The checkpoint says only 30 records were synced, and record 40 is gone:
// the crash left records after a hole, which prove nothing (writeback runs
// in any order). Recovery ends the partition at the hole, and the named
// producer resumes there, so its resend of record 40 is appended, not
// answered "duplicate".
TEST(HostCrash, RecoveryCutsAtTheFirstHolePastTheDurablePosition) {
  test::TempLogPath path;
  const auto offsets = sixty_records(path.str());
  ASSERT_TRUE(test::rewind_checkpoint(path.str(), 0, offsets[30], 30).ok());
  zero_range(path.str(), durable_log().segment_size, offsets[40], offsets[41]);
  auto log = reopen_after_crash(path.str());
  const auto got = read_settled(log);
  ASSERT_EQ(got.size(), 40u);
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], value_of(static_cast<int>(i)));
  EXPECT_EQ(log.info().partitions[0].end_offset, offsets[40]);
  ProducerOptions po;
  po.producer_id = "sensor";
  auto again = log.producer(po).value();
  ASSERT_TRUE(again.last_sequence().has_value());
  EXPECT_EQ(*again.last_sequence() + 1, 40u);
  EXPECT_EQ(again.append(as_bytes(value_of(40))).offset, offsets[40]);
}

// The same hole below the checkpointed durable position is damage, not a
// crash's doing: the records after it stay, readers step over it. The
// damaged segment is read from its file (where the damage is reported
// naming it), so the partition goes on at the next segment.
TEST(HostCrash, DamageBelowTheDurablePositionIsSkippedNotCut) {
  test::TempLogPath path;
  const auto offsets = sixty_records(path.str());
  zero_range(path.str(), durable_log().segment_size, offsets[40], offsets[41]);
  auto log = reopen_after_crash(path.str());
  const auto got = read_settled(log);
  ASSERT_EQ(got.size(), 59u);
  EXPECT_EQ(got[39], value_of(39));
  EXPECT_EQ(got[40], value_of(41));
  EXPECT_EQ(got.back(), value_of(59));
  ASSERT_LT(offsets[60], durable_log().segment_size);
  EXPECT_EQ(log.info().partitions[0].end_offset, durable_log().segment_size);
}

// A copy of segment 0 under a far-off segment's name is not that segment:
// recovery neither takes the tail from it nor deletes it (set aside as
// .foreign), and appends go on where the log ended.
TEST(HostCrash, StrayCopyUnderAFarOffNameDoesNotMoveTheTail) {
  test::TempLogPath path;
  const LogOptions o = durable_log();
  std::uint64_t end = 0;
  {
    auto log = Log::create(path.str(), o).value();
    auto p = log.producer().value();
    for (int i = 0; i < 2500; ++i) ASSERT_TRUE(p.append(as_bytes(value_of(i))));
    end = log.info().partitions[0].end_offset;
  }
  ASSERT_GT(end, 2 * o.segment_size);  // three segments
  const std::string dir = io::partition_directory(path.str(), 0);
  const std::string stray = dir + "/" + io::segment_file_name(50 * o.segment_size);
  std::filesystem::copy_file(dir + "/" + io::segment_file_name(0), stray);
  auto log = reopen_after_crash(path.str());
  EXPECT_EQ(log.info().partitions[0].end_offset, end);
  EXPECT_FALSE(std::filesystem::exists(stray));
  EXPECT_TRUE(std::filesystem::exists(stray + ".foreign"));
  const auto got = read_settled(log);
  ASSERT_EQ(got.size(), 2500u);
  EXPECT_EQ(got.back(), value_of(2499));
  auto p = log.producer().value();
  EXPECT_EQ(p.append(as_bytes("next")).offset, end);
}

// After a crash that kept `survived` records of named producer `name`:
// reopened from the files, the producer resumes right after them and a
// resend of the last one is a duplicate.
void expect_named_producer_resumes(const std::string& path, const std::string& name, std::size_t survived) {
  auto log = reopen_after_crash(path);
  ASSERT_EQ(read_settled(log).size(), survived);
  ProducerOptions po;
  po.producer_id = name;
  auto again = log.producer(po).value();
  ASSERT_TRUE(again.last_sequence().has_value()) << "its records survived, whose they are did not";
  EXPECT_EQ(*again.last_sequence() + 1, survived);
  again.set_next_sequence(survived - 1);
  EXPECT_EQ(again.append(as_bytes(value_of(static_cast<int>(survived) - 1))).error, Errc::kDuplicate);
}

// A named producer's first records are synced before the periodic
// checkpoint names it: the keeper checkpoints its identity first, or after
// a crash nothing would say whose sequences those records carry.
TEST(HostCrash, NamedProducerIdentityReachesTheDiskBeforeItsRecords) {
  test::TempLogPath path;
  auto layer = std::make_shared<io::FaultLayer>(3);
  {
    test::FileLayerScope scope(layer);
    auto log = Log::create(path.str(), durable_log()).value();
    std::this_thread::sleep_for(20ms);  // the keeper's first checkpoint: no producer yet
    ProducerOptions po;
    po.producer_id = "meter";
    po.acks = ProducerOptions::Acks::kDurable;
    auto p = log.producer(po).value();
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(p.append(as_bytes(value_of(i))));
    layer->crash(io::FaultLayer::Crash::kDropAll);  // long before the next periodic checkpoint
  }
  expect_named_producer_resumes(path.str(), "meter", 5);
}

// Written but never synced, a named producer's records may still be on
// disk after a crash: the checkpoint names the producer before the keeper
// writes them at all, so its restart knows they are its own.
TEST(HostCrash, NamedProducerIdentityReachesTheDiskBeforeItsRecordsAreWritten) {
  test::TempLogPath path;
  auto layer = std::make_shared<io::FaultLayer>(5);
  LogOptions o = durable_log();
  o.fsync_interval = std::chrono::minutes(10);  // nothing is synced unless asked
  {
    test::FileLayerScope scope(layer);
    auto log = Log::create(path.str(), o).value();
    std::this_thread::sleep_for(20ms);  // the keeper's first checkpoint: no producer yet
    ProducerOptions po;
    po.producer_id = "gauge";
    auto p = log.producer(po).value();
    std::uint64_t end = 0;
    for (int i = 0; i < 10; ++i) end = p.append(as_bytes(value_of(i))).offset + 1;
    for (int i = 0; i < 2000 && log.info().partitions[0].written_offset < end; ++i) std::this_thread::sleep_for(1ms);
    ASSERT_GE(log.info().partitions[0].written_offset, end);
    EXPECT_EQ(log.info().partitions[0].durable_offset, 0u);
    layer->crash(io::FaultLayer::Crash::kKeepAll);  // the page cache reached the disk after all
  }
  expect_named_producer_resumes(path.str(), "gauge", 10);
}

// A transactional producer killed with its 21st transaction open, after 20
// committed ones; the host crash leaves a checkpoint from its second
// transaction. Its epoch and transactions come from the records, not from
// that checkpoint: the open transaction is aborted (a read_committed reader
// passes it), the restarted producer fences every epoch on disk, and its
// resends of committed records are duplicates.
TEST(HostCrash, EpochsAndOpenTransactionsComeFromTheRecordsNotAnOldCheckpoint) {
  test::TempLogPath path;
  { auto created = Log::create(path.str(), durable_log()).value(); }
  const std::string state = path.str() + "/shmlog.state";
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const auto child = test::spawn([&] {
    ::close(fds[0]);
    auto log = Log::open(path.str()).value();
    ProducerOptions po;
    po.producer_id = "payments";
    po.transactional = true;
    auto p = log.producer(po).value();
    for (int i = 0; i < 21; ++i) {
      if (!p.begin_transaction().ok() || !p.append(as_bytes(value_of(i)))) return 1;
      if (i == 20) break;  // left open
      if (!p.commit_transaction().ok()) return 2;
      if (i == 1) {  // a checkpoint of this moment, for the crash to leave behind
        std::this_thread::sleep_for(300ms);
        std::filesystem::copy_file(state, state + ".early", std::filesystem::copy_options::overwrite_existing);
      }
    }
    // Another producer's record after the open transaction: a reader
    // that waits on the transaction never gets to it.
    auto other = log.producer().value();
    if (!other.append(as_bytes("after"))) return 5;
    if (p.wait_durable(0, log.info().partitions[0].end_offset, 10s) != Errc::kOk) return 3;
    const std::uint16_t epoch = p.epoch();
    if (::write(fds[1], &epoch, sizeof epoch) != sizeof epoch) return 4;
    for (;;) std::this_thread::sleep_for(1s);
  });
  ::close(fds[1]);
  std::uint16_t epoch = 0;
  const bool ready = ::read(fds[0], &epoch, sizeof epoch) == sizeof epoch;
  ::close(fds[0]);
  ::kill(static_cast<pid_t>(child), SIGKILL);
  EXPECT_EQ(test::join(child), 128 + SIGKILL);
  ASSERT_TRUE(ready) << "the child ended before it was ready";
  ASSERT_GE(epoch, 20);  // every transaction moved it
  std::filesystem::rename(state + ".early", state);
  auto log = reopen_after_crash(path.str());
  {
    ConsumerOptions co;
    co.partitions = {0};
    co.isolation = Isolation::kReadCommitted;
    auto c = log.consumer(co).value();
    std::vector<std::string> got;
    for (int idle = 0; got.size() < 22 && idle < 5;) {
      const auto r = c.poll_wait([&](const Record& rec) { got.push_back(test::bytes_to_string(rec.value)); }, 64, 200ms);
      idle = r.records == 0 ? idle + 1 : 0;
    }
    ASSERT_EQ(got.size(), 21u) << "a read_committed reader stopped at, or delivered, the open transaction";
    EXPECT_EQ(got[19], value_of(19));
    EXPECT_EQ(got[20], "after");
  }
  ProducerOptions po;
  po.producer_id = "payments";
  po.transactional = true;
  auto again = log.producer(po).value();
  EXPECT_GT(again.epoch(), epoch);
  ASSERT_TRUE(again.last_sequence().has_value());
  EXPECT_EQ(*again.last_sequence(), 19u);
  again.set_next_sequence(5);
  ASSERT_TRUE(again.begin_transaction().ok());
  EXPECT_EQ(again.append(as_bytes(value_of(5))).error, Errc::kDuplicate);
  EXPECT_TRUE(again.abort_transaction().ok());
}

// A transactional producer's last committed offsets come back after a
// host crash once their record is older than the ring the files restore:
// the checkpoint keeps them. Before, the restart found none, and `shmlog
// copy` resumed from its input group's offset and copied its last
// transaction again.
TEST(HostCrash, TheLastCommittedOffsetsComeBackFromTheCheckpoint) {
  test::TempLogPath path;
  ProducerOptions po;
  po.producer_id = "copier";
  po.transactional = true;
  {
    auto log = Log::create(path.str(), durable_log()).value();
    auto p = log.producer(po).value();
    ASSERT_TRUE(p.begin_transaction().ok());
    ASSERT_TRUE(p.append(as_bytes("out")));
    p.add_offsets("input", 0, 4096);
    ASSERT_TRUE(p.commit_transaction().ok());
    auto other = log.producer().value();
    const std::string filler(3000, 'f');
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(other.append(as_bytes(filler)));  // past the 128 KiB ring
  }  // the last handle goes: its keeper syncs all and checkpoints
  auto log = reopen_after_crash(path.str());
  auto again = log.producer(po).value();
  using Offsets = std::vector<std::pair<std::uint32_t, std::uint64_t>>;
  EXPECT_EQ(again.committed_offsets("input"), (Offsets{{0, 4096}}));
}

// systemd-logind's RemoveIPC (or a cleaner of /dev/shm) removes a log's
// shared memory while a process still runs on it: opening the log must not
// make a second incarnation that appends at the same offsets into the same
// files. It is refused until the last process closes the log; then the log
// comes back from its files with every record once.
TEST(SharedMemoryRemoved, UnderALiveProcessTheLogIsNotMadeAnew) {
  test::TempLogPath path;
  LogOptions o = durable_log();
  o.durability = Durability::kFlush;
  {
    auto log = Log::create(path.str(), o).value();
    auto p = log.producer().value();
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(p.append(as_bytes(value_of(i))));
    ASSERT_EQ(::unlink(log.info().memory_path.c_str()), 0);
    auto second = Log::open(path.str());
    ASSERT_FALSE(second.ok()) << "a second incarnation was made";
    EXPECT_EQ(second.status().code(), Status::Code::kBusy);
    EXPECT_NE(second.status().message().find("processes still have the log open: it was removed under them"),
              std::string::npos)
        << second.status().to_string();
    for (int i = 100; i < 200; ++i) ASSERT_TRUE(p.append(as_bytes(value_of(i))));
  }  // the last handle goes: its keeper writes everything to the files
  auto log = Log::open(path.str(), {.keeper = false});
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  const auto got = read_settled(*log);
  ASSERT_EQ(got.size(), 200u);
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], value_of(static_cast<int>(i)));
}

// Should a second incarnation of the log exist anyway (its lock file
// removed too, or a /dev/shm of its own beside the same directory), its
// keeper makes the segment files it writes under the names this one
// writes. This keeper then never calls durable what went into a file that
// lost its name, nor writes into a file another incarnation made: durable
// waits fail, and the partition names the error (ESTALE).
TEST(SharedMemoryRemoved, AKeeperWritesOnlyFilesOfItsOwnIncarnation) {
  for (const bool current : {true, false}) {  // the file being written, or one made ahead of need
    SCOPED_TRACE(current ? "the file being written is replaced" : "a file made ahead is replaced");
    test::TempLogPath path;
    auto log = Log::create(path.str(), durable_log()).value();
    ProducerOptions po;
    po.acks = ProducerOptions::Acks::kDurable;
    po.durable_timeout = 300ms;
    auto p = log.producer(po).value();
    ASSERT_TRUE(p.append(as_bytes(value_of(0))));
    const auto at = log.info();
    const std::uint64_t segment = at.partitions[0].end_offset / durable_log().segment_size + (current ? 0 : 1);
    const std::uint64_t base = segment * durable_log().segment_size;
    // What the other incarnation's keeper does: a file under the name, made
    // anew (under a temporary name, renamed over the old one).
    const std::string dir = io::partition_directory(path.str(), 0);
    const std::string name = dir + "/" + io::segment_file_name(base);
    for (int i = 0; i < 500 && !std::filesystem::exists(name); ++i) std::this_thread::sleep_for(10ms);  // made ahead
    ASSERT_TRUE(std::filesystem::exists(name));
    auto theirs = io::SegmentFile::create(dir, {0, base, durable_log().segment_size, at.log_id, 0, 0x5eed}, 0600);
    ASSERT_TRUE(theirs.ok()) << theirs.status().to_string();
    const std::string filler(3000, 'f');
    int acked = 1;
    for (int i = 1; i < 60 && acked == i; ++i) {  // ~3 segments, into the file replaced
      if (p.append(as_bytes(value_of(i) + filler))) ++acked;
    }
    EXPECT_LT(acked, 60) << "records written into a file that lost its name were acknowledged durable";
    const auto after = log.info().partitions[0];
    EXPECT_EQ(after.flush_errno, ESTALE) << std::strerror(after.flush_errno);
    EXPECT_LE(after.durable_offset, base + durable_log().segment_size);
    auto scanned = scan_segment_file(name, 4096);
    ASSERT_TRUE(scanned.ok()) << scanned.status().to_string();
    EXPECT_EQ(scanned->scan.records, 0u) << "the keeper wrote into another incarnation's file";
  }
}

// Retention removed every file of a partition (and the crash lost the
// files of the ring's segments, never synced): recovery must not start the
// partition again at offset 0, below what was durable and what groups
// committed. It goes on at the segment past the checkpointed durable
// position, and a group that had read everything reads the next record.
TEST(HostCrash, OffsetsNeverGoBackWhenNoFileSurvived) {
  test::TempLogPath path;
  std::uint64_t end = 0;
  {
    auto log = Log::create(path.str(), durable_log()).value();
    auto p = log.producer().value();
    for (int i = 0; i < 30; ++i) ASSERT_TRUE(p.append(as_bytes(value_of(i))));
    ConsumerOptions co;
    co.group = "g";
    auto c = log.consumer(co).value();
    int seen = 0;
    for (int tries = 0; seen < 30 && tries < 50; ++tries) {
      seen += static_cast<int>(c.poll_wait([](const Record&) {}, 64, 100ms).records);
    }
    ASSERT_EQ(seen, 30);
    end = log.info().partitions[0].end_offset;
  }  // the keeper syncs everything and checkpoints: durable up to `end`
  ASSERT_GT(end % durable_log().segment_size, 0u);
  for (const auto& entry : std::filesystem::directory_iterator(io::partition_directory(path.str(), 0))) {
    std::filesystem::remove(entry.path());
  }
  auto log = reopen_after_crash(path.str());
  const std::uint64_t next_segment = (end / durable_log().segment_size + 1) * durable_log().segment_size;
  EXPECT_EQ(log.info().partitions[0].end_offset, next_segment);
  auto p = log.producer().value();
  const AppendResult r = p.append(as_bytes(std::string("after")));
  ASSERT_TRUE(r);
  EXPECT_GE(r.offset, end) << "an offset given out again";
  ConsumerOptions co;
  co.group = "g";
  auto c = log.consumer(co).value();
  std::vector<std::string> got;
  for (int tries = 0; got.empty() && tries < 20; ++tries) {
    (void)c.poll_wait([&](const Record& rec) { got.push_back(test::bytes_to_string(rec.value)); }, 64, 100ms);
  }
  EXPECT_EQ(got, std::vector<std::string>{"after"});
}

// Nothing was durable yet (the checkpoint says 0, retention never ran)
// and the first file's name never reached the disk, while a later file
// holds records: records after a hole prove nothing, so the log ends at 0
// (it took the later file for the start of the history, and readers
// reported the missing first segment as damage; the host-crash torture
// found it).
TEST(HostCrash, AMissingFirstFileBeforeAnythingWasDurableIsAHoleNotTheStart) {
  test::TempLogPath path;
  {
    auto log = Log::create(path.str(), durable_log()).value();
    auto p = log.producer().value();
    const std::string big(3000, 'v');
    for (int i = 0; i < 40; ++i) ASSERT_TRUE(p.append(as_bytes(value_of(i) + big)));  // into the second segment
  }
  ASSERT_TRUE(test::rewind_checkpoint(path.str(), 0, 0, 0).ok());
  ASSERT_TRUE(std::filesystem::remove(io::partition_directory(path.str(), 0) + "/" + io::segment_file_name(0)));
  auto log = reopen_after_crash(path.str());
  EXPECT_EQ(log.info().partitions[0].end_offset, 0u);
  ConsumerOptions co;
  co.partitions = {0};
  auto c = log.consumer(co).value();
  const PollResult r = c.poll_wait([](const Record&) {}, 64, 100ms);
  EXPECT_EQ(r.records, 0u);
  EXPECT_EQ(r.corrupt, 0u);
  EXPECT_TRUE(c.take_damage().empty());
}

// The memory made anew after a host crash goes on writing the files of
// the one before: recovery stamps them with the new incarnation, so its
// keeper takes them as its own.
TEST(HostCrash, TheNewMemorysKeeperGoesOnWritingTheFilesItRecovered) {
  test::TempLogPath path;
  ProducerOptions po;
  po.acks = ProducerOptions::Acks::kDurable;
  po.durable_timeout = 2s;
  {
    auto log = Log::create(path.str(), durable_log()).value();
    auto p = log.producer(po).value();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(p.append(as_bytes(value_of(i))));
  }
  ASSERT_TRUE(test::lose_shared_memory(path.str()).ok());
  auto log = Log::open(path.str()).value();
  auto p = log.producer(po).value();
  for (int i = 10; i < 20; ++i) {
    const AppendResult r = p.append(as_bytes(value_of(i)));
    ASSERT_TRUE(r) << errc_name(r.error) << ", partition error " << std::strerror(log.info().partitions[0].flush_errno);
  }
  auto file = io::SegmentFile::open(io::partition_directory(path.str(), 0) + "/" + io::segment_file_name(0), false);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->header().incarnation, detail::read_meta(path.str())->memory_nonce);
  EXPECT_EQ(read_settled(log).size(), 20u);
}

// True once the log's meta file names memory other than `before`'s (an
// opener that makes the memory names it first) and that memory exists (not
// yet published while it recovers), within `within`.
bool seen_made_anew(const std::string& path, const detail::Meta& before, std::chrono::seconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    auto now = detail::read_meta(path);
    struct stat st {};
    if (now.ok() && now->memory_nonce != before.memory_nonce &&
        ::stat(detail::memory_path_for(*now).c_str(), &st) == 0) {
      return true;
    }
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

TEST(SharedMemoryRemoved, AnOpenWaitsForAnotherOpenerThatRecoversTheLogFromItsFiles) {
  test::TempLogPath path;
  {
    auto log = Log::create(path.str(), durable_log()).value();
    auto p = log.producer().value();
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(p.append(as_bytes(value_of(i))));
  }
  ASSERT_TRUE(test::lose_shared_memory(path.str()).ok());
  const auto before = detail::read_meta(path.str()).value();
  // The first opener recovers for 2.5 s (as a large log's recovery
  // takes): it finishes while the second, which found its memory not yet
  // published (2 s), tries for the exclusive lock (1 s).
  // Then it keeps the log open, as its user would.
  const auto recovering = test::spawn([&] {
    testing::pause_in_recovery(2500ms);
    auto log = Log::open(path.str(), {.keeper = false});
    std::this_thread::sleep_for(3s);
    return log.ok() ? 0 : 1;
  });
  const bool seen = seen_made_anew(path.str(), before, 20s);
  auto second = Log::open(path.str(), {.keeper = false});
  EXPECT_EQ(test::join(recovering), 0) << "the recovering opener failed";
  ASSERT_TRUE(seen) << "the recovering opener never made its memory";
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  EXPECT_EQ(second->info().memory_path, detail::memory_path_for(detail::read_meta(path.str()).value()))
      << "the second opener made memory of its own";
  const auto got = read_settled(*second);
  ASSERT_EQ(got.size(), 100u);
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], value_of(static_cast<int>(i)));
}

TEST(SharedMemoryRemoved, AnOpenGivesUpOnAMakerPastItsPatienceAndSaysSo) {
  test::TempLogPath path;
  (void)Log::create(path.str(), durable_log()).value();
  ASSERT_TRUE(test::lose_shared_memory(path.str()).ok());
  auto maker = shm::FileLock::acquire(path.str() + "/shmlog.lock", 0600).value();
  auto opened = Log::open(path.str(), {.keeper = false, .maker_patience = 200ms});
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), Status::Code::kBusy);
  EXPECT_NE(opened.status().message().find("held the log's lock exclusively for 200 ms"), std::string::npos)
      << opened.status().to_string();
  auto attached = Log::attach(path.str());
  ASSERT_FALSE(attached.ok());
  EXPECT_EQ(attached.status().code(), Status::Code::kBusy);
  EXPECT_NE(attached.status().message().find("another process is making its shared memory"), std::string::npos)
      << attached.status().to_string();
  maker = shm::FileLock();
  EXPECT_TRUE(Log::open(path.str(), {.keeper = false}).ok());
}

TEST(HostCrash, UniquenessTokensComeBackFromTheRecordsThatSurvived) {
  test::TempLogPath path;
  LogOptions o = durable_log();
  o.token_window = 4096;
  constexpr int kTokens = 3000;  // ~3 rings' worth: the older ones are in files only
  {
    auto log = Log::create(path.str(), o).value();
    auto p = log.producer().value();
    for (int i = 0; i < kTokens; ++i) {
      const auto r = p.append_unique(as_bytes("token-" + std::to_string(i)), {}, as_bytes(value_of(i)));
      ASSERT_EQ(r.error, Errc::kOk) << i;
    }
  }  // the last handle goes: its keeper writes everything to the files
  auto log = reopen_after_crash(path.str());
  auto p = log.producer().value();
  for (int i : {0, 1, kTokens / 2, kTokens - 1}) {
    EXPECT_EQ(p.append_unique(as_bytes("token-" + std::to_string(i)), {}, as_bytes("again")).error, Errc::kDuplicate)
        << "token " << i << " was taken again after the crash";
  }
  EXPECT_EQ(p.append_unique(as_bytes("token-new"), {}, as_bytes(value_of(kTokens))).error, Errc::kOk);
  // Readers see the values, not the tokens' hashes the records end in.
  const auto got = read_settled(log);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kTokens) + 1);
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], value_of(static_cast<int>(i)));
}

}  // namespace
}  // namespace shmlog
