// The exactly-once file sink: output and offsets advance together, a crash
// between them is undone at open, torn journal entries are cut, and foreign
// or damaged files are refused. Also the consumer's duplicate filter.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "crash_util.h"
#include "shmlog/file_sink.h"
#include "test_util.h"
#include "test_hooks.h"

namespace shmlog {
namespace {

LogOptions small() {
  LogOptions o;
  o.partitions = 2;
  o.segment_size = 64 * 1024;
  o.ring_segments = 16;
  o.max_record_size = 1024;
  return o;
}

std::string slurp(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct Files {
  std::string dir = [] {
    char t[] = "/tmp/shmlog-sink-XXXXXX";
    return std::string(::mkdtemp(t));
  }();
  std::string out = dir + "/out.txt";
  ~Files() {
    ::unlink(out.c_str());
    ::unlink((out + ".offsets").c_str());
    ::rmdir(dir.c_str());
  }
};

void produce(const Log& log, int from, int to) {
  auto p = log.producer().value();
  for (int i = from; i < to; ++i) ASSERT_TRUE(p.append(as_bytes(std::to_string(i))));
}

// Consumes up to `max` records of group "g" into the sink, checkpointing
// after each poll, resuming where the sink says.
void drain(const Log& log, FileSink& sink, std::size_t max = SIZE_MAX) {
  ConsumerOptions co;
  co.group = "g";
  co.mode = DeliveryMode::kManual;
  auto c = log.consumer(co).value();
  for (std::uint32_t p = 0; p < log.options().partitions; ++p) {
    if (auto at = sink.offset(p)) {
      ASSERT_TRUE(c.seek(p, *at).ok());
    }
  }
  std::size_t n = 0;
  while (n < max) {
    auto r = c.poll(
        [&](const Record& rec) {
          sink.write(rec.value);
          sink.write("\n");
          sink.advance(rec.partition, rec.next_offset);
        },
        std::min<std::size_t>(max - n, 7));
    ASSERT_TRUE(sink.checkpoint().ok());
    c.commit();
    if (r.records == 0) break;
    n += r.records;
  }
}

std::string lines(int from, int to) {
  std::string s;
  for (int i = from; i < to; ++i) s += std::to_string(i) + "\n";
  return s;
}

// A host crash at any sync of the sink's checkpoints, with a file layer
// that keeps, drops or tears each unsynced write: the output is synced
// before the journal entry that names it, so the sink opens again, cuts
// what no entry names, and resuming writes every record exactly once.
TEST(FileSink, AHostCrashAtAnySyncLosesAndRepeatsNothing) {
  for (std::uint64_t crash_at = 1; crash_at <= 16; ++crash_at) {
    SCOPED_TRACE("crash before sync " + std::to_string(crash_at));
    test::TempLogPath path;
    LogOptions o = small();
    o.partitions = 1;
    auto log = Log::create(path.str(), o).value();
    produce(log, 0, 100);
    Files files;
    auto layer = std::make_shared<io::FaultLayer>(crash_at);
    layer->crash_before_sync(crash_at);
    {
      test::FileLayerScope scope(layer);
      auto sink = FileSink::open(files.out, log).value();
      ConsumerOptions co;
      co.partitions = {0};
      auto c = log.consumer(co).value();
      while (!layer->crashed()) {
        const auto r = c.poll(
            [&](const Record& rec) {
              sink.write(rec.value);
              sink.write("\n");
              sink.advance(rec.partition, rec.next_offset);
            },
            7);
        (void)sink.checkpoint();  // fails once the host crashed
        ASSERT_GT(r.records, 0u) << "all records written before the crash";
      }
    }
    auto sink = FileSink::open(files.out, log);
    ASSERT_TRUE(sink.ok()) << sink.status().to_string();
    drain(log, *sink);
    EXPECT_EQ(slurp(files.out), lines(0, 100));
  }
}

TEST(FileSink, ResumesWhereItsCheckpointSays) {
  test::TempLogPath path;
  Files f;
  auto log = Log::create(path.str(), small()).value();
  produce(log, 0, 100);
  {
    auto sink = FileSink::open(f.out, log).value();
    EXPECT_FALSE(sink.offset(0).has_value());
    drain(log, sink, 40);
  }
  EXPECT_EQ(slurp(f.out), lines(0, 40));
  auto sink = FileSink::open(f.out, log).value();
  ASSERT_TRUE(sink.offset(0).has_value());
  EXPECT_EQ(sink.truncated_at_open(), 0u);
  drain(log, sink);
  EXPECT_EQ(slurp(f.out), lines(0, 100));
}

TEST(FileSink, AKillBetweenOutputAndCheckpointIsUndoneAtOpen) {
  test::TempLogPath path;
  Files f;
  auto log = Log::create(path.str(), small()).value();
  produce(log, 0, 50);
  const std::uint32_t child = test::spawn([&] {
    auto l = Log::open(path.str()).value();
    auto sink = FileSink::open(f.out, l).value();
    drain(l, sink, 20);  // checkpointed
    testing::die_between_output_and_checkpoint(true);
    drain(l, sink);  // writes more output, then dies before its checkpoint
    return 1;
  });
  ASSERT_EQ(test::join(child), 128 + SIGKILL);
  EXPECT_GT(slurp(f.out).size(), lines(0, 20).size()) << "the output was written";
  auto reopened = Log::open(path.str()).value();  // as a restarted process does: reaps the dead member
  auto sink = FileSink::open(f.out, reopened).value();
  EXPECT_EQ(sink.truncated_at_open(), lines(20, 27).size()) << "the uncheckpointed poll is cut";
  EXPECT_EQ(slurp(f.out), lines(0, 20));
  drain(reopened, sink);
  EXPECT_EQ(slurp(f.out), lines(0, 50)) << "every record once";
}

TEST(FileSink, ATornJournalEntryIsCutAndTheLastWholeOneUsed) {
  test::TempLogPath path;
  Files f;
  auto log = Log::create(path.str(), small()).value();
  produce(log, 0, 30);
  {
    auto sink = FileSink::open(f.out, log).value();
    drain(log, sink, 10);
  }
  const std::string journal = f.out + ".offsets";
  const std::string whole = slurp(journal);
  // A crash mid-way through the next entry, after more output.
  const std::size_t entry = 32 + 8 * 2 + 4;  // two partitions
  ASSERT_EQ(whole.size() % entry, 0u);
  std::ofstream(journal, std::ios::app | std::ios::binary) << whole.substr(0, entry - 5);
  std::ofstream(f.out, std::ios::app) << "11\n12\n";
  auto sink = FileSink::open(f.out, log).value();
  EXPECT_EQ(slurp(journal).size(), whole.size()) << "torn tail cut";
  EXPECT_EQ(sink.truncated_at_open(), 6u);
  drain(log, sink);
  EXPECT_EQ(slurp(f.out), lines(0, 30));
}

// Damage to the journal's first entry (a flipped byte) does not matter:
// the newest whole checkpoint is there. The sink once stopped reading at
// the damage, cut FILE to nothing and resumed at the group's offset, so
// the output of every checkpoint was lost.
TEST(FileSink, ADamagedFirstJournalEntryKeepsTheOutput) {
  test::TempLogPath path;
  Files f;
  auto log = Log::create(path.str(), small()).value();
  produce(log, 0, 60);
  {
    auto sink = FileSink::open(f.out, log).value();
    drain(log, sink, 40);  // several checkpoints
  }
  const std::string journal = f.out + ".offsets";
  {
    std::fstream j(journal, std::ios::in | std::ios::out | std::ios::binary);
    j.seekp(17);  // inside the first entry's file length
    j.put('\x7f');
  }
  auto sink = FileSink::open(f.out, log).value();
  EXPECT_EQ(sink.truncated_at_open(), 0u);
  EXPECT_EQ(slurp(f.out), lines(0, 40)) << "the output was cut";
  drain(log, sink);
  EXPECT_EQ(slurp(f.out), lines(0, 60)) << "every record once";
}

// A journal with no whole entry left (truncated to a few bytes) beside
// output: where to resume cannot be told, so nothing is cut.
TEST(FileSink, AJournalWithNoReadableCheckpointBesideOutputIsRefused) {
  test::TempLogPath path;
  Files f;
  auto log = Log::create(path.str(), small()).value();
  produce(log, 0, 20);
  {
    auto sink = FileSink::open(f.out, log).value();
    drain(log, sink);
  }
  ASSERT_EQ(::truncate((f.out + ".offsets").c_str(), 10), 0);
  auto refused = FileSink::open(f.out, log);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kCorrupt);
  EXPECT_NE(refused.status().message().find("no readable checkpoint"), std::string::npos)
      << refused.status().message();
  EXPECT_EQ(slurp(f.out), lines(0, 20)) << "the output was cut";
}

// The output and its journal get the log's mode: records of a 0600 log do
// not become readable by others through the sink.
TEST(FileSink, FilesTakeTheLogsMode) {
  test::TempLogPath path;
  Files f;
  LogOptions o = small();
  o.mode = 0600;
  auto log = Log::create(path.str(), o).value();
  const mode_t old = ::umask(0);
  auto sink = FileSink::open(f.out, log);
  ::umask(old);
  ASSERT_TRUE(sink.ok()) << sink.status().to_string();
  struct stat st {};
  ASSERT_EQ(::stat(f.out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((f.out + ".offsets").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(FileSink, ForeignOrDamagedFilesAreRefusedNamingThem) {
  test::TempLogPath path, other_path;
  Files f;
  auto log = Log::create(path.str(), small()).value();
  auto other = Log::create(other_path.str(), small()).value();
  std::ofstream(f.out) << "someone else's data\n";
  auto r = FileSink::open(f.out, log);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("has no " + f.out + ".offsets"), std::string::npos) << r.status().message();
  ::unlink(f.out.c_str());
  produce(log, 0, 5);
  {
    auto sink = FileSink::open(f.out, log).value();
    drain(log, sink);
  }
  auto foreign = FileSink::open(f.out, other);
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.status().message().find("belongs to another log"), std::string::npos);
  ASSERT_EQ(::truncate(f.out.c_str(), 3), 0);
  auto shorter = FileSink::open(f.out, log);
  ASSERT_FALSE(shorter.ok());
  EXPECT_EQ(shorter.status().code(), Status::Code::kCorrupt);
  EXPECT_NE(shorter.status().message().find("changed outside shmlog"), std::string::npos);
}

TEST(FileSink, OneWriterPerFile) {
  test::TempLogPath path;
  Files f;
  auto log = Log::create(path.str(), small()).value();
  auto first = FileSink::open(f.out, log);
  ASSERT_TRUE(first.ok());
  auto second = FileSink::open(f.out, log);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Status::Code::kBusy);
  EXPECT_NE(second.status().message().find("another exactly-once consumer"), std::string::npos);
  { auto closed = std::move(first).value(); }
  EXPECT_TRUE(FileSink::open(f.out, log).ok()) << "the lock goes with its holder";
}

TEST(FileSink, TheJournalIsCompactedAndStillResumes) {
  test::TempLogPath path;
  Files f;
  LogOptions o = small();
  o.ring_segments = 256;  // 16 MiB: 40 000 records stay in the ring
  auto log = Log::create(path.str(), o).value();
  produce(log, 0, 40000);
  {
    auto sink = FileSink::open(f.out, log, FileSink::Survives::kProcessCrash).value();
    drain(log, sink);  // ~5700 checkpoints of 52 bytes: compacted past 1 MiB
  }
  struct stat st {};
  ASSERT_EQ(::stat((f.out + ".offsets").c_str(), &st), 0);
  EXPECT_LT(st.st_size, 1 << 20);
  produce(log, 40000, 40010);
  auto sink = FileSink::open(f.out, log).value();
  drain(log, sink);
  EXPECT_EQ(slurp(f.out), lines(0, 40010));
}

TEST(Consumer, DropDuplicatesSkipsAProducersRetries) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small()).value();
  auto p = log.producer().value();
  for (std::uint64_t seq : {0, 1, 2, 1, 2, 3}) {  // a retry of 1 and 2
    p.set_next_sequence(seq);
    ASSERT_TRUE(p.append(as_bytes(std::to_string(seq))));
  }
  auto read = [&](bool drop, std::uint64_t* duplicates) {
    ConsumerOptions co;
    co.drop_duplicates = drop;
    auto c = log.consumer(co).value();
    std::string got;
    auto r = c.poll([&](const Record& rec) { got += test::bytes_to_string(rec.value); }, 64);
    *duplicates = r.duplicates;
    return got;
  };
  std::uint64_t dups = 0;
  EXPECT_EQ(read(false, &dups), "012123");
  EXPECT_EQ(dups, 0u);
  EXPECT_EQ(read(true, &dups), "0123");
  EXPECT_EQ(dups, 2u);
}

}  // namespace
}  // namespace shmlog
