// A bridge's counter file: written and found again, a dead bridge's file
// shown down, and damaged files refused naming the file and the field.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "bridge_stats.h"
#include "shmlog/io/files.h"
#include "shmlog/shm/process.h"
#include "test_util.h"

namespace shmlog::tools {
namespace {

BridgeStatsFile mine(const char* direction, const std::string& topic) {
  const shm::ProcessId me = shm::self();
  BridgeStatsFile f;
  f.direction = direction;
  f.topic = topic;
  f.pid = me.pid;
  f.start_time = me.start_time;
  f.updated_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  f.stats = {.records = 12, .duplicates = 1, .kafka_errors = 2, .kafka_retries = 3, .lag = 4, .age_ms = 5};
  return f;
}

TEST(BridgeStats, WrittenFilesAreFoundWithTheirCounters) {
  test::TempLogPath dir;
  ASSERT_TRUE(io::create_empty_directory(dir.str(), 0755).ok());
  ASSERT_TRUE(write_bridge_stats(bridge_stats_path(dir.str(), "to-kafka", "orders"), mine("to-kafka", "orders")).ok());
  BridgeStatsFile gone = mine("from-kafka", "payments");
  const std::uint32_t dead = test::spawn([] { return 0; });
  ASSERT_EQ(shm::wait_process(dead), 0);
  gone.pid = dead;  // reaped: no such process now
  ASSERT_TRUE(write_bridge_stats(bridge_stats_path(dir.str(), "from-kafka", "payments"), gone).ok());
  auto found = find_bridges(dir.str());
  ASSERT_EQ(found.size(), 2u);
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.file < b.file; });
  ASSERT_TRUE(found[0].stats.ok()) << found[0].stats.status().message();
  ASSERT_TRUE(found[1].stats.ok()) << found[1].stats.status().message();
  EXPECT_EQ(found[0].stats->direction, "from-kafka");
  EXPECT_FALSE(found[0].up);
  EXPECT_EQ(found[1].stats->topic, "orders");
  EXPECT_TRUE(found[1].up);
  EXPECT_EQ(found[1].stats->stats.records, 12u);
  EXPECT_EQ(found[1].stats->stats.age_ms, 5);
}

TEST(BridgeStats, DamagedFilesAreRefusedNamingTheField) {
  test::TempLogPath dir;
  ASSERT_TRUE(io::create_empty_directory(dir.str(), 0755).ok());
  const std::string path = bridge_stats_path(dir.str(), "to-kafka", "t");
  ASSERT_TRUE(write_bridge_stats(path, mine("to-kafka", "t")).ok());
  auto fd = io::open_read_only(path);
  ASSERT_TRUE(fd.ok());
  const std::string good = io::read_whole_file(*fd, path, io::kMaxKeyValueFile).value();
  io::close_file(*fd);
  ASSERT_TRUE(parse_bridge_stats(good, "f").ok());
  // Without its checksum line, edits are read as they are.
  const std::string body = good.substr(0, good.find("crc32c="));
  auto with = [&](const std::string& from, const std::string& to) {
    std::string text = body;
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return text.replace(at, from.size(), to);
  };
  struct Case {
    std::string text, says;
  };
  for (const Case& c : {Case{with("lag=4", "lag=-2"), "f: lag '-2' is not a number of at least -1"},
                        Case{with("pid=", "pid=x"), "f: pid"},
                        Case{with("direction=to-kafka", "direction=sideways"), "neither to-kafka nor from-kafka"},
                        Case{with("records=12\n", ""), "f: no records"},
                        Case{"not a stats file\n", "f"}}) {
    const auto parsed = parse_bridge_stats(c.text, "f");
    ASSERT_FALSE(parsed.ok()) << c.text;
    EXPECT_NE(parsed.status().message().find(c.says), std::string::npos) << parsed.status().message();
    EXPECT_EQ(parsed.status().message().find('\n'), std::string::npos);
  }
  // A damaged file is reported by find_bridges, naming it.
  std::string damaged = good;
  damaged[damaged.find("records=1") + 8] = '9';
  ASSERT_TRUE(io::write_key_value_file(path + ".x", "x", {}, 0644).ok());  // any other file is ignored
  {
    auto out = io::open_read_write(path, 0644).value();
    ASSERT_TRUE(io::truncate_file(out, 0, path).ok());
    ASSERT_TRUE(io::pwrite_all(out, damaged.data(), damaged.size(), 0, path).ok());
    io::close_file(out);
  }
  const auto found = find_bridges(dir.str());
  ASSERT_EQ(found.size(), 1u);
  ASSERT_FALSE(found[0].stats.ok());
  EXPECT_NE(found[0].stats.status().message().find(path), std::string::npos) << found[0].stats.status().message();
}

}  // namespace
}  // namespace shmlog::tools
