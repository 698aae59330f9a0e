// Uniqueness tokens: only the first record with a token within the window
// is kept, racing processes get exactly one winner per token, and a token
// whose record was never kept (its producer died) is free again.
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <map>
#include <string>
#include <vector>

#include "log_state.h"
#include "shmlog/shm/process.h"
#include "test_util.h"
#include "test_hooks.h"

namespace shmlog {
namespace {

LogOptions with_tokens(std::uint64_t window, std::chrono::milliseconds span = std::chrono::milliseconds(0)) {
  LogOptions o;
  o.segment_size = 256 * 1024;
  o.ring_segments = 16;
  o.max_record_size = 1024;
  o.token_window = window;
  o.token_window_time = span;
  o.claim_timeout = std::chrono::milliseconds(100);
  return o;
}

std::vector<std::string> values(const Log& log) {
  auto c = log.consumer().value();
  std::vector<std::string> out;
  while (c.poll([&](const Record& r) { out.push_back(test::bytes_to_string(r.value)); }, 4096).records != 0) {
  }
  return out;
}

TEST(Tokens, OnlyTheFirstRecordWithATokenIsKept) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), with_tokens(100)).value();
  auto p = log.producer().value();
  ASSERT_TRUE(p.append_unique(as_bytes("order-1"), {}, as_bytes("first")));
  auto again = p.append_unique(as_bytes("order-1"), {}, as_bytes("retry"));
  EXPECT_EQ(again.error, Errc::kDuplicate);
  ASSERT_TRUE(p.append_unique(as_bytes("order-2"), {}, as_bytes("second")));
  // Another producer is no different.
  auto other = log.producer().value();
  EXPECT_EQ(other.append_unique(as_bytes("order-2"), {}, as_bytes("copy")).error, Errc::kDuplicate);
  EXPECT_EQ(values(log), (std::vector<std::string>{"first", "second"}));
}

TEST(Tokens, TheWindowCountsTokens) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), with_tokens(4)).value();
  auto p = log.producer().value();
  ASSERT_TRUE(p.append_unique(as_bytes("t"), {}, as_bytes("1")));
  EXPECT_EQ(p.append_unique(as_bytes("t"), {}, as_bytes("x")).error, Errc::kDuplicate);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(p.append_unique(as_bytes("u" + std::to_string(i)), {}, as_bytes("u")));
  ASSERT_TRUE(p.append_unique(as_bytes("t"), {}, as_bytes("2"))) << "out of the window of 4";
}

// T sits one slot past its home because U held the home when T came; once
// U leaves the window its slot is reusable, but T must still be found.
TEST(Tokens, ATokenPastACollisionIsStillFoundWhenTheSlotBeforeItGoesStale) {
  constexpr std::uint64_t kSlots = 4;  // window 2
  std::string u, t;
  for (int i = 0; i < 1000 && t.empty(); ++i) {
    for (int j = 0; j < 1000 && t.empty(); ++j) {
      const std::string a = "u" + std::to_string(i), b = "t" + std::to_string(j);
      if ((detail::token_hash(as_bytes(a)) & (kSlots - 1)) == (detail::token_hash(as_bytes(b)) & (kSlots - 1))) {
        u = a;
        t = b;
      }
    }
  }
  ASSERT_FALSE(t.empty());
  test::TempLogPath path;
  auto log = Log::create(path.str(), with_tokens(2)).value();
  auto p = log.producer().value();
  ASSERT_TRUE(p.append_unique(as_bytes(u), {}, as_bytes("u")));  // token 1: the home slot
  ASSERT_TRUE(p.append_unique(as_bytes(t), {}, as_bytes("t")));  // token 2: the next slot
  // Token 3: U is out of the window of 2, T is not.
  EXPECT_EQ(p.append_unique(as_bytes(t), {}, as_bytes("t again")).error, Errc::kDuplicate);
  EXPECT_EQ(values(log), (std::vector<std::string>{"u", "t"}));
}

TEST(Tokens, NotInsideATransaction) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), with_tokens(16)).value();
  ProducerOptions po;
  po.producer_id = "tx";
  po.transactional = true;
  auto p = log.producer(po).value();
  ASSERT_TRUE(p.begin_transaction().ok());
  EXPECT_EQ(p.append_unique(as_bytes("t"), {}, as_bytes("v")).error, Errc::kBadState);
}

TEST(Tokens, TheWindowCanAlsoBeATimeSpan) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), with_tokens(1000, std::chrono::milliseconds(30))).value();
  auto p = log.producer().value();
  ASSERT_TRUE(p.append_unique(as_bytes("t"), {}, as_bytes("1")));
  EXPECT_EQ(p.append_unique(as_bytes("t"), {}, as_bytes("x")).error, Errc::kDuplicate);
  ::usleep(60 * 1000);
  ASSERT_TRUE(p.append_unique(as_bytes("t"), {}, as_bytes("2"))) << "older than 30 ms";
}

// A process that takes `token` for its claim and dies before the commit.
void die_holding_token(const std::string& path, const std::string& token) {
  const std::uint32_t child = test::spawn([&] {
    auto l = Log::open(path).value();
    auto p = l.producer().value();
    testing::die_between_claim_and_commit(true);
    (void)p.append_unique(as_bytes(token), {}, as_bytes("lost"));
    return 1;
  });
  ASSERT_EQ(test::join(child), 128 + SIGKILL);
}

TEST(Tokens, ATokenWhoseRecordWasNeverKeptIsFreeAgain) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), with_tokens(100)).value();
  die_holding_token(path.str(), "tok");
  auto p = log.producer().value();
  ASSERT_TRUE(p.append_unique(as_bytes("tok"), {}, as_bytes("kept")));
  EXPECT_EQ(p.append_unique(as_bytes("tok"), {}, as_bytes("again")).error, Errc::kDuplicate);
  EXPECT_EQ(values(log), (std::vector<std::string>{"kept"}));
}

// Found by the kill torture: the dead producer's claim was abandoned, then
// the ring moved on past it; the token was taken for kept ("it was kept
// then") and the restart's re-send dropped as a duplicate of nothing.
TEST(Tokens, ATokenWhoseRecordWasNeverKeptIsFreeAfterTheRingMovedOn) {
  test::TempLogPath path;
  LogOptions o = with_tokens(100);
  o.segment_size = 64 * 1024;
  o.ring_segments = 2;
  auto log = Log::create(path.str(), o).value();
  die_holding_token(path.str(), "tok");
  log.sweep();  // the dead producer's claim: abandoned
  {
    // Two rings' worth: the segment of the abandoned claim is reused.
    auto other = log.producer().value();
    const std::string filler(900, 'f');
    for (int i = 0; i < 2 * 2 * 64; ++i) ASSERT_TRUE(other.append(as_bytes(filler))) << i;
  }
  auto p = log.producer().value();
  EXPECT_EQ(p.append_unique(as_bytes("tok"), {}, as_bytes("kept")).error, Errc::kOk);
  EXPECT_EQ(p.append_unique(as_bytes("tok"), {}, as_bytes("again")).error, Errc::kDuplicate);
}

TEST(Tokens, RacingProcessesGetExactlyOneWinnerPerToken) {
  test::TempLogPath path;
  constexpr int kTokens = 2000;
  constexpr int kProcesses = 4;
  auto log = Log::create(path.str(), with_tokens(4 * kTokens)).value();
  std::vector<std::uint32_t> pids;
  for (int w = 0; w < kProcesses; ++w) {
    pids.push_back(test::spawn([&, w] {
      auto l = Log::open(path.str()).value();
      auto p = l.producer().value();
      int wins = 0;
      for (int i = 0; i < kTokens; ++i) {
        const std::string token = "t" + std::to_string((i + w * 37) % kTokens);  // different orders
        auto r = p.append_unique(as_bytes(token), {}, as_bytes(token));
        if (r) {
          ++wins;
        } else if (r.error != Errc::kDuplicate) {
          return 200;
        }
      }
      return wins % 200;  // the count is checked through the log below
    }));
  }
  for (auto pid : pids) ASSERT_LT(test::join(pid), 200);
  std::map<std::string, int> seen;
  for (const auto& v : values(log)) ++seen[v];
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kTokens));
  for (const auto& [token, n] : seen) ASSERT_EQ(n, 1) << token;
}

TEST(Tokens, ALogWithoutATokenTableRefusesAndBadWindowsAreErrors) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), with_tokens(0)).value();
  auto p = log.producer().value();
  EXPECT_EQ(p.append_unique(as_bytes("t"), {}, as_bytes("v")).error, Errc::kBadState);
  LogOptions o = with_tokens(1ull << 40);
  EXPECT_NE(validate(o).message().find("token window"), std::string::npos);
}

}  // namespace
}  // namespace shmlog
