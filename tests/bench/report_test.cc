#include "harness/report.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <sstream>
#include <string>
#include <vector>

namespace shmlog::bench {
namespace {

struct HdrLine {
  double value_us;
  double percentile;
  std::uint64_t total;
};

std::vector<HdrLine> parse(const std::string& text) {
  std::vector<HdrLine> lines;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // column names
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    HdrLine l{};
    fields >> l.value_us >> l.percentile >> l.total;
    lines.push_back(l);
  }
  return lines;
}

TEST(HdrPercentileDistribution, IsMonotonicAndEndsAtTheMaxWithEveryCount) {
  Histogram h;
  for (std::uint64_t v = 1; v <= 100000; ++v) h.record(v * 3);
  const std::string text = hdr_percentile_distribution(h);
  EXPECT_EQ(text.rfind("       Value     Percentile TotalCount 1/(1-Percentile)\n\n", 0), 0u);
  auto lines = parse(text);
  ASSERT_GT(lines.size(), 30u);  // 5 per half distance until the top bucket holds the max
  for (std::size_t i = 1; i < lines.size(); ++i) {
    EXPECT_GE(lines[i].value_us, lines[i - 1].value_us);
    EXPECT_GE(lines[i].percentile, lines[i - 1].percentile);
    EXPECT_GE(lines[i].total, lines[i - 1].total);
  }
  EXPECT_DOUBLE_EQ(lines.back().percentile, 1.0);
  EXPECT_EQ(lines.back().total, 100000u);
  EXPECT_NEAR(lines.back().value_us, 300.0, 0.001);
  // The median line reads 150 us within the histogram's 1%.
  for (const auto& l : lines) {
    if (l.percentile >= 0.5) {
      EXPECT_NEAR(l.value_us, 150.0, 1.5);
      break;
    }
  }
  EXPECT_NE(text.find("#[Max     =      300.000, Total count    =       100000]"), std::string::npos) << text;
}

TEST(LatencyTable, NamesEveryRowAndTheRatios) {
  Histogram fast, slow;
  for (int i = 0; i < 1000; ++i) {
    fast.record(200);
    slow.record(20000);
  }
  std::vector<LatencyRow> rows = {{"shmlog", "round trip", true, fast}, {"pipe", "round trip", true, slow}};
  const std::string table = latency_table(rows);
  EXPECT_NE(table.find("pipe"), std::string::npos);
  EXPECT_NE(table.find("100.0x faster than pipe"), std::string::npos) << table;
}

TEST(LatencyJson, HeaderKeysFirstThenOneObjectPerRow) {
  Histogram h;
  for (int i = 0; i < 1000; ++i) h.record(200);
  std::vector<LatencyRow> rows = {{"shmlog", "round trip", true, h}, {"a \"quoted\" pipe", "round trip", true, h}};
  const auto json = latency_json(rows, {{"mode", "ping-pong"}});
  EXPECT_EQ(json.begin().key(), "mode");
  ASSERT_EQ(json["rows"].size(), 2u);
  EXPECT_EQ(json["rows"][1]["name"], "a \"quoted\" pipe");
  EXPECT_EQ(json["rows"][0]["count"], 1000);
  EXPECT_EQ(json["rows"][0]["percentiles"]["50"], 200);
  EXPECT_EQ(json["rows"][0]["percentiles"]["99.999"], 200);
  EXPECT_TRUE(json["rows"][0]["mean"].is_number_float());
}

}  // namespace
}  // namespace shmlog::bench
