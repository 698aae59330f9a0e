// find_stale_memory (`shmlog gc`): the objects of logs that are gone, and
// never the object a log uses.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "shmlog/log.h"
#include "test_util.h"

namespace shmlog {
namespace {

bool lists(const std::vector<StaleMemory>& stale, const std::string& object, const std::string& why_part) {
  return std::any_of(stale.begin(), stale.end(), [&](const StaleMemory& m) {
    return m.object == object && m.why.find(why_part) != std::string::npos;
  });
}

bool lists(const std::vector<StaleMemory>& stale, const std::string& object) { return lists(stale, object, ""); }

TEST(StaleMemory, FindsTheMemoryOfRemovedAndReplacedLogsAndNeverALiveLogs) {
  test::TempLogPath gone, replaced, live;
  std::string gone_object, old_object, new_object, live_object;
  {
    auto log = Log::create(gone.str()).value();
    gone_object = log.info().memory_path;
  }
  {
    auto log = Log::create(replaced.str()).value();
    old_object = log.info().memory_path;
  }
  auto kept = Log::create(live.str()).value();
  live_object = kept.info().memory_path;
  // Directories removed by hand: the objects stay behind.
  std::filesystem::remove_all(gone.str());
  std::filesystem::remove_all(replaced.str());
  // Another log made where one was.
  auto again = Log::create(replaced.str()).value();
  new_object = again.info().memory_path;
  ASSERT_NE(new_object, old_object);

  auto stale = find_stale_memory().value();
  EXPECT_TRUE(lists(stale, gone_object, "is gone")) << gone_object;
  EXPECT_TRUE(lists(stale, old_object, "holds another log now")) << old_object;
  EXPECT_FALSE(lists(stale, new_object));
  EXPECT_FALSE(lists(stale, live_object));
  for (const auto& m : stale) {
    if (m.object == gone_object || m.object == old_object) (void)::unlink(m.object.c_str());
  }
  auto after = find_stale_memory().value();
  EXPECT_FALSE(lists(after, gone_object));
  EXPECT_FALSE(lists(after, old_object));
  EXPECT_TRUE(kept.producer().value().append(as_bytes("still here")));  // the live log is untouched
}

TEST(StaleMemory, AMissingMemoryDirectoryIsAnErrorNamingIt) {
  auto r = find_stale_memory("/nonexistent-shmlog-memory-dir");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent-shmlog-memory-dir"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace shmlog
