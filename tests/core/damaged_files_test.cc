// Damaged segment files of a durable log: readers report what they skip
// (PollResult::corrupt) and go on at the next good record or file; a file
// under another segment's name is not read as that segment; verify names
// missing files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "crash_util.h"
#include "shmlog/io/segment_file.h"
#include "shmlog/segments.h"
#include "test_util.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kSegment = 64 * 1024;

std::string value_of(int i) { return "r" + std::to_string(i) + std::string(static_cast<std::size_t>(i % 53), 'x'); }

// A closed durable log of `count` records over many segments (the ring
// holds two: the rest are read from the files), and each record's offset.
std::vector<std::uint64_t> make_log(const std::string& path, int count) {
  LogOptions o;
  o.partitions = 1;
  o.segment_size = kSegment;
  o.ring_segments = 2;
  o.max_record_size = 4096;
  o.durability = Durability::kFlush;
  auto log = Log::create(path, o).value();
  auto p = log.producer().value();
  std::vector<std::uint64_t> offsets;
  for (int i = 0; i < count; ++i) offsets.push_back(p.append(as_bytes(value_of(i))).offset);
  return offsets;
}

std::string segment_file(const std::string& path, std::uint64_t segment) {
  return io::partition_directory(path, 0) + "/" + io::segment_file_name(segment * kSegment);
}

struct Read {
  std::vector<int> indexes;  // which records came, by their value
  std::uint64_t corrupt = 0;
  std::vector<Damage> damage;  // as the consumer reported it
  bool reached_end = false;
};

// Reads partition 0 from the earliest record to the end.
Read read_all(const std::string& path) {
  auto log = Log::open(path).value();
  const std::uint64_t end = log.info().partitions[0].end_offset;
  ConsumerOptions co;
  co.partitions = {0};
  auto c = log.consumer(co).value();
  Read out;
  for (int idle = 0; c.position(0).value_or(0) < end && idle < 3;) {
    const auto r = c.poll_wait(
        [&](const Record& rec) {
          const std::string v = test::bytes_to_string(rec.value);
          out.indexes.push_back(std::stoi(v.substr(1)));
        },
        1024, 100ms);
    out.corrupt += r.corrupt;
    for (auto& d : c.take_damage()) out.damage.push_back(std::move(d));
    idle = r.records == 0 && r.corrupt == 0 ? idle + 1 : 0;
  }
  out.reached_end = c.position(0).value_or(0) == end;
  return out;
}

// The records whose frames lie in [from, to).
std::vector<int> records_in(const std::vector<std::uint64_t>& offsets, std::uint64_t from, std::uint64_t to) {
  std::vector<int> out;
  for (std::size_t i = 0; i < offsets.size(); ++i) {
    if (offsets[i] >= from && offsets[i] < to) out.push_back(static_cast<int>(i));
  }
  return out;
}

// The consumer reported one damaged region, [from, to), naming `file`
// and saying `why`.
void expect_one_damage(const Read& got, std::uint64_t from, std::uint64_t to, const std::string& file,
                       const std::string& why, const std::string& what = "") {
  ASSERT_EQ(got.damage.size(), 1u) << what;
  const Damage& d = got.damage[0];
  EXPECT_EQ(d.partition, 0u) << what;
  EXPECT_EQ(d.from, from) << what << ": " << d.what;
  EXPECT_EQ(d.to, to) << what << ": " << d.what;
  EXPECT_NE(d.what.find(file), std::string::npos) << what << ": " << d.what;
  EXPECT_NE(d.what.find(why), std::string::npos) << what << ": " << d.what;
  EXPECT_EQ(d.what.find('\n'), std::string::npos) << what << ": " << d.what;
  EXPECT_EQ(got.corrupt, to - from) << what;
}

std::vector<int> all_but(int count, const std::vector<int>& lost) {
  std::vector<int> out;
  for (int i = 0; i < count; ++i) {
    if (std::find(lost.begin(), lost.end(), i) == lost.end()) out.push_back(i);
  }
  return out;
}

TEST(DamagedFiles, MissingSegmentFileIsCountedAndReadingGoesOn) {
  test::TempLogPath path;
  const auto offsets = make_log(path.str(), 5000);
  ASSERT_GT(offsets.back(), 5 * kSegment);
  std::filesystem::remove(segment_file(path.str(), 1));
  const Read got = read_all(path.str());
  EXPECT_TRUE(got.reached_end) << "the reader stopped at the missing file";
  EXPECT_EQ(got.indexes, all_but(5000, records_in(offsets, kSegment, 2 * kSegment)));
  expect_one_damage(got, kSegment, 2 * kSegment, segment_file(path.str(), 1), "No such file");
  auto scan = scan_log_files(path.str()).value();
  ASSERT_EQ(scan.bad_files.size(), 1u);
  EXPECT_NE(scan.bad_files[0].reason.find("missing"), std::string::npos) << scan.bad_files[0].reason;
}

// Each way a whole segment file can be damaged: readers count the segment
// as corrupt and go on; verify reports the file.
TEST(DamagedFiles, EveryKindOfLostSegmentFileIsCountedAndSkipped) {
  const std::vector<std::pair<std::string, std::function<void(const std::string&)>>> damages = {
      {"emptied", [](const std::string& f) { ASSERT_EQ(::truncate(f.c_str(), 0), 0); }},
      {"cut in half", [](const std::string& f) { ASSERT_EQ(::truncate(f.c_str(), (4096 + kSegment) / 2), 0); }},
      {"header flipped",
       [](const std::string& f) {
         std::fstream out(f, std::ios::in | std::ios::out | std::ios::binary);
         out.seekp(9);
         out.put('\x55');
       }},
      {"renamed away",
       [](const std::string& f) { std::filesystem::rename(f, f + ".old"); }},
  };
  for (const auto& [what, damage] : damages) {
    test::TempLogPath path;
    const auto offsets = make_log(path.str(), 5000);
    damage(segment_file(path.str(), 2));
    const Read got = read_all(path.str());
    EXPECT_TRUE(got.reached_end) << what;
    EXPECT_EQ(got.indexes, all_but(5000, records_in(offsets, 2 * kSegment, 3 * kSegment))) << what;
    expect_one_damage(got, 2 * kSegment, 3 * kSegment, segment_file(path.str(), 2), "", what);
    auto scan = scan_log_files(path.str()).value();
    EXPECT_EQ(scan.bad_files.size(), 1u) << what;
  }
}

// A damaged checkpoint or meta file is refused with an error naming it;
// nothing in the segment files is cut meanwhile.
TEST(DamagedFiles, DamagedCheckpointOrMetaFileIsRefusedNamingIt) {
  for (const std::string file : {"shmlog.state", "shmlog.meta"}) {
    test::TempLogPath path;
    make_log(path.str(), 3000);
    {  // a host crash: the shared memory is gone
      auto attached = Log::attach(path.str()).value();
      ASSERT_EQ(::unlink(attached.info().memory_path.c_str()), 0);
    }
    const std::string before = [&] {
      std::ifstream in(segment_file(path.str(), 0), std::ios::binary);
      return std::string((std::istreambuf_iterator<char>(in)), {});
    }();
    {
      std::ofstream out(path.str() + "/" + file, std::ios::app | std::ios::binary);
      out << "no equals sign here\n";
    }
    auto opened = Log::open(path.str());
    ASSERT_FALSE(opened.ok()) << file;
    EXPECT_EQ(opened.status().code(), Status::Code::kCorrupt) << opened.status().to_string();
    EXPECT_NE(opened.status().message().find(file), std::string::npos) << opened.status().to_string();
    std::ifstream in(segment_file(path.str(), 0), std::ios::binary);
    EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), {}), before) << file;
  }
}

// After a host crash the log comes back from damaged files: whatever the
// damage, every record not delivered lies in a range the reader reported
// (naming the file), the reader reaches the end, the log never ends below
// where it did (offsets would be given out twice), and verify names the
// file. Each case was a silent loss or stop once (found by
// tests/torture/damage_torture.cc): a missing or cut file in the ring's
// window became padding or zeros, another segment's file was loaded as
// that segment, a missing first file moved the start, a missing last file
// made recovery end below the durable position.
TEST(DamagedFiles, AfterAHostCrashEveryDamageIsReportedNeverSilent) {
  struct Case {
    std::string what;
    std::function<std::uint64_t(const std::string&, std::uint64_t last)> damage;  // returns the segment damaged
  };
  const std::vector<Case> cases = {
      {"the last file removed", [](const std::string& p, std::uint64_t last) {
         std::filesystem::remove(segment_file(p, last));
         return last;
       }},
      {"the file before the last removed", [](const std::string& p, std::uint64_t last) {
         std::filesystem::remove(segment_file(p, last - 1));
         return last - 1;
       }},
      {"the last file cut short", [](const std::string& p, std::uint64_t last) {
         std::filesystem::resize_file(segment_file(p, last), 4096 + 100);
         return last;
       }},
      {"segment 0's file copied over the one before the last", [](const std::string& p, std::uint64_t last) {
         std::filesystem::copy_file(segment_file(p, 0), segment_file(p, last - 1),
                                    std::filesystem::copy_options::overwrite_existing);
         return last - 1;
       }},
      {"the first file removed", [](const std::string& p, std::uint64_t) {
         std::filesystem::remove(segment_file(p, 0));
         return std::uint64_t{0};
       }},
      {"the last block of a middle file zeroed", [](const std::string& p, std::uint64_t) {
         std::fstream f(segment_file(p, 2), std::ios::in | std::ios::out | std::ios::binary);
         f.seekp(static_cast<std::streamoff>(io::kSegmentHeaderSize + kSegment - 4096));
         const std::string zeros(4096, '\0');
         f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
         return std::uint64_t{2};
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    test::TempLogPath path;
    const auto offsets = make_log(path.str(), 5000);
    std::uint64_t end = 0;
    {  // a host crash: the shared memory is gone
      auto attached = Log::attach(path.str()).value();
      end = attached.info().partitions[0].end_offset;
      ASSERT_EQ(::unlink(attached.info().memory_path.c_str()), 0);
    }
    const std::uint64_t damaged = c.damage(path.str(), (end - 1) / kSegment);
    auto scan = scan_log_files(path.str()).value();
    const bool named = std::any_of(scan.bad_files.begin(), scan.bad_files.end(), [&](const SegmentProblem& b) {
      return b.reason.find(segment_file(path.str(), damaged)) != std::string::npos;
    });
    EXPECT_TRUE(named) << "verify does not name " << segment_file(path.str(), damaged);
    const Read got = read_all(path.str());
    EXPECT_TRUE(got.reached_end);
    EXPECT_GE(Log::open(path.str()).value().info().partitions[0].end_offset, end);
    std::vector<int> lost;
    for (int i = 0, k = 0; i < 5000; ++i) {
      if (k < static_cast<int>(got.indexes.size()) && got.indexes[static_cast<std::size_t>(k)] == i) {
        ++k;
        continue;
      }
      lost.push_back(i);
      const std::uint64_t at = offsets[static_cast<std::size_t>(i)];
      EXPECT_EQ(at / kSegment, damaged) << "record " << i << " of a segment nothing damaged";
      EXPECT_TRUE(std::any_of(got.damage.begin(), got.damage.end(), [&](const Damage& d) { return d.from <= at && at < d.to; }))
          << "record " << i << " lost in silence";
    }
    EXPECT_EQ(got.indexes, all_but(5000, lost));
    EXPECT_FALSE(lost.empty());
  }
}

// A flipped digit in the checkpoint (a durable position, a group's offset)
// or the meta file (an option) would read as another value: each file ends
// in its checksum, so it is damage, refused naming the file.
TEST(DamagedFiles, AFlippedDigitInTheCheckpointOrMetaIsDamageNotAnotherValue) {
  for (const auto& [file, key] : {std::pair<std::string, std::string>{"shmlog.state", "partition.0.durable="},
                                  {"shmlog.meta", "ring_segments="}}) {
    test::TempLogPath path;
    make_log(path.str(), 3000);
    {  // a host crash: the shared memory is gone
      auto attached = Log::attach(path.str()).value();
      ASSERT_EQ(::unlink(attached.info().memory_path.c_str()), 0);
    }
    const std::string name = path.str() + "/" + file;
    std::string text = [&] {
      std::ifstream in(name, std::ios::binary);
      return std::string((std::istreambuf_iterator<char>(in)), {});
    }();
    const auto at = text.find(key);
    ASSERT_NE(at, std::string::npos) << text;
    text[at + key.size()] ^= 0x01;  // '2' -> '3', '1' -> '0', ...
    std::ofstream(name, std::ios::trunc | std::ios::binary) << text;
    auto opened = Log::open(path.str());
    ASSERT_FALSE(opened.ok()) << file;
    EXPECT_EQ(opened.status().code(), Status::Code::kCorrupt) << opened.status().to_string();
    EXPECT_NE(opened.status().message().find(name + ": checksum mismatch"), std::string::npos)
        << opened.status().to_string();
  }
}

// A checkpoint naming a durable position far past the files (written from
// shared memory a scribbler damaged): verify reports the gap as one entry,
// it does not name (and list) 2^44 missing files (`shmlog verify` hung
// under the tools' scribbler test).
TEST(DamagedFiles, ACheckpointFarPastTheFilesIsOneGapNotAHang) {
  test::TempLogPath path;
  make_log(path.str(), 3000);
  ASSERT_TRUE(test::rewind_checkpoint(path.str(), 0, 1ull << 60, UINT64_MAX).ok());
  auto scan = scan_log_files(path.str()).value();
  // (and the files, which the checkpoint says hold records up to there)
  EXPECT_LE(scan.bad_files.size(), 16u);
  ASSERT_FALSE(scan.bad_files.empty());
  EXPECT_NE(scan.bad_files.back().reason.find("files missing"), std::string::npos) << scan.bad_files.back().reason;
}

// A forged header (its CRC fixed) naming a 1 TiB segment in a sparse file
// of that size: refused, not allocated (dump, verify and repair died of
// std::bad_alloc).
TEST(DamagedFiles, AForgedHugeSegmentSizeIsRefusedNotAllocated) {
  test::TempLogPath path;
  std::filesystem::create_directories(path.str());
  const std::string file = path.str() + "/" + io::segment_file_name(0);
  io::SegmentFileHeader h;
  h.segment_size = 1ull << 40;
  std::vector<std::byte> page(io::kSegmentHeaderSize);
  io::encode_segment_header(h, std::span<std::byte, io::kSegmentHeaderFields>(page.data(), io::kSegmentHeaderFields));
  std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(page.data()), static_cast<std::streamsize>(page.size()));
  ASSERT_EQ(::truncate(file.c_str(), static_cast<off_t>(io::kSegmentHeaderSize + h.segment_size)), 0);
  auto scanned = scan_segment_file(file);
  ASSERT_FALSE(scanned.ok());
  EXPECT_EQ(scanned.status().code(), Status::Code::kCorrupt);
  EXPECT_NE(scanned.status().message().find("bad segment size"), std::string::npos) << scanned.status().to_string();
}

TEST(DamagedFiles, ZeroedBlockInsideASegmentFileLosesOnlyItsRecords) {
  test::TempLogPath path;
  const auto offsets = make_log(path.str(), 5000);
  const std::uint64_t from = kSegment + 8192, to = from + 4096;  // 4 KiB inside segment 1
  {
    std::fstream f(segment_file(path.str(), 1), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(io::kSegmentHeaderSize + (from - kSegment)));
    const std::string zeros(to - from, '\0');
    f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
  const Read got = read_all(path.str());
  EXPECT_TRUE(got.reached_end);
  // The records touching the block are lost; the one straddling its start too.
  std::vector<int> lost = records_in(offsets, from, to);
  const auto first = std::upper_bound(offsets.begin(), offsets.end(), from) - offsets.begin() - 1;
  lost.insert(lost.begin(), static_cast<int>(first));
  EXPECT_EQ(got.indexes, all_but(5000, lost));
  EXPECT_LT(got.corrupt, 4096u + 256u);
  EXPECT_GE(got.corrupt, 4096u);
  // Two regions: the straddling record (its checksum), then the block up
  // to the next good record.
  const auto at = [&](std::size_t i) { return offsets[i]; };
  const auto straddling = static_cast<std::size_t>(first);
  ASSERT_EQ(got.damage.size(), 2u);
  Read one = got;
  one.damage = {got.damage[0]};
  one.corrupt = at(straddling + 1) - at(straddling);
  expect_one_damage(one, at(straddling), at(straddling + 1), segment_file(path.str(), 1), "checksum does not match");
  one.damage = {got.damage[1]};
  one.corrupt = got.corrupt - one.corrupt;
  expect_one_damage(one, at(straddling + 1), at(static_cast<std::size_t>(lost.back()) + 1), segment_file(path.str(), 1),
                    "damaged records");
}

TEST(DamagedFiles, SegmentFileUnderAnotherSegmentsNameIsNotReadAsIt) {
  test::TempLogPath path;
  const auto offsets = make_log(path.str(), 5000);
  std::filesystem::copy_file(segment_file(path.str(), 3), segment_file(path.str(), 1),
                             std::filesystem::copy_options::overwrite_existing);
  const Read got = read_all(path.str());
  EXPECT_TRUE(got.reached_end);
  // Segment 1's records are lost (counted), segment 3's come once, in place.
  EXPECT_EQ(got.indexes, all_but(5000, records_in(offsets, kSegment, 2 * kSegment)));
  expect_one_damage(got, kSegment, 2 * kSegment, segment_file(path.str(), 1),
                    "holds offset " + std::to_string(3 * kSegment) + " of partition 0, not this segment");
}

}  // namespace
}  // namespace shmlog
