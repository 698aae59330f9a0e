// The exactly-once tools (`shmlog copy`, `shmlog consume --mode
// exactly-once`) run as the command, against logs this test sets up.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "run_tool.h"
#include "shmlog/log.h"
#include "test_util.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;

// 100-byte values: 160 bytes a record, 409 in a 64 KiB segment, then 96
// bytes of padding.
std::string value(int i) {
  std::string v = std::to_string(i);
  return v + std::string(100 - v.size(), '.');
}

LogOptions small_ring() { return {.segment_size = 64 * 1024, .ring_segments = 2, .max_record_size = 1024}; }

// A tool's poll can end past a segment's end padding (the next record was
// still being written), and it commits that position in the group. The
// tools saved the last record's end, before the padding, as the place to
// resume: once the ring reused that segment (the group was past it), a
// restart failed with "offset ... is not retained" (the kill torture's
// copy kind found it). They now save the position the group commits.
//
// Fills IN's segment 0 (group "g" made first), leaves the next record
// open past the padding, runs `tool`, commits the record, appends until
// segment 0's ring slot is reused, runs `tool` again. Returns how many
// records IN got.
int end_a_run_at_padding_then_reuse_its_segment(Log& in, const std::function<void()>& tool) {
  in.consumer({.group = "g"}).value().close();
  auto producer = in.producer().value();
  int next = 0;
  for (; next < 409; ++next) EXPECT_TRUE(producer.append(as_bytes(value(next))));
  Claim open = producer.claim(100);
  EXPECT_TRUE(open);
  EXPECT_GE(open.offset(), in.options().segment_size) << "the claim fitted in segment 0";
  tool();
  const std::string v = value(next++);
  std::memcpy(open.value().data(), v.data(), v.size());
  EXPECT_TRUE(producer.commit(open));
  for (; next < 409 * 2 + 10; ++next) EXPECT_TRUE(producer.append(as_bytes(value(next))));
  EXPECT_GE(in.info().partitions[0].earliest_offset, in.options().segment_size) << "segment 0 is still in the ring";
  tool();
  return next;
}

TEST(Copy, ResumesAfterTheRingReusedTheSegmentItsLastPollEndedIn) {
  test::TempLogPath in_path, out_path;
  auto in = Log::create(in_path.str(), small_ring()).value();
  LogOptions roomy = small_ring();
  roomy.ring_segments = 64;  // keeps every copied record for the check
  auto out = Log::create(out_path.str(), roomy).value();
  const std::vector<std::string> copy = {"copy", in_path.str(), out_path.str(), "--group", "g",
                                         "--transactional-id", "t", "--idle-timeout-ms", "200"};
  const int n = end_a_run_at_padding_then_reuse_its_segment(in, [&] {
    const test::Outcome o = test::run_tool(copy, "/dev/null", in_path.str() + ".copy", 60s);
    ASSERT_EQ(o.code, 0) << o.err;
  });
  auto reader = out.consumer({.isolation = Isolation::kReadCommitted}).value();
  std::vector<std::string> got;
  while (reader.poll([&](const Record& r) { got.emplace_back(as_string(r.value)); }, 256).records > 0) {
  }
  ASSERT_EQ(got.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) ASSERT_EQ(got[static_cast<std::size_t>(i)], value(i)) << "record " << i;
}

TEST(ExactlyOnceSink, ResumesAfterTheRingReusedTheSegmentItsLastPollEndedIn) {
  test::TempLogPath in_path;
  auto in = Log::create(in_path.str(), small_ring()).value();
  const std::string out = in_path.str() + ".out";
  const std::vector<std::string> consume = {"consume", in_path.str(), "--group", "g", "--mode", "exactly-once",
                                            "--out", out, "--idle-timeout-ms", "200"};
  const int n = end_a_run_at_padding_then_reuse_its_segment(in, [&] {
    const test::Outcome o = test::run_tool(consume, "/dev/null", in_path.str() + ".consume", 60s);
    ASSERT_EQ(o.code, 0) << o.err;
  });
  std::istringstream lines(test::contents(out));
  int i = 0;
  for (std::string line; std::getline(lines, line); ++i) ASSERT_EQ(line, value(i)) << "line " << i + 1;
  EXPECT_EQ(i, n);
}

}  // namespace
}  // namespace shmlog
