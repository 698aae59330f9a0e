// The shmlog command's tools run against a live durable log while another
// process scribbles random bytes over its shared memory (another user with
// access, or a bug in a linked program): each tool ends by itself, never by
// a signal or a sanitizer's report, and what it says on stderr is printable
// lines, the last one naming the error when it fails.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "run_tool.h"
#include "shmlog/shm/process.h"
#include "test_util.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;
using test::Outcome;
using test::run_tool;

// What is wrong with `o`, or "" (a tool's exit, by itself, printable).
std::string judge(const Outcome& o) {
  if (o.code == -1) return "still running after its deadline (hang)";
  if (o.code == 97 || o.code == 98) return "could not be started";
  if (o.code >= 128) return "killed by signal " + std::to_string(o.code - 128);
  if (o.err.find("Sanitizer") != std::string::npos || o.err.find("runtime error") != std::string::npos) {
    return "a sanitizer report";
  }
  for (char c : o.err) {
    if (c != '\n' && (c < 0x20 || c > 0x7e)) return "unprintable byte on stderr";
  }
  // (verify reports damage on stdout, and exits 1.)
  if (o.code != 0 && (o.err.empty() || o.err.back() != '\n' || o.err == "\n") && o.out.empty()) {
    return "failed without saying why";
  }
  return "";
}

// A durable log with records in both partitions and a group's offsets.
Log written_log(const std::string& path) {
  LogOptions o;
  o.partitions = 2;
  o.segment_size = 64 * 1024;
  o.ring_segments = 2;
  o.max_record_size = 1024;
  o.checksums = true;
  o.claim_timeout = 20ms;
  o.durability = Durability::kFlush;
  auto log = Log::create(path, o).value();
  auto producer = log.producer().value();
  for (int i = 0; i < 3000; ++i) EXPECT_TRUE(producer.append(as_bytes("record " + std::to_string(i))));
  auto member = log.consumer({.group = "g"}).value();
  (void)member.poll([](const Record&) {}, 500);
  member.commit();
  return log;
}

TEST(ToolsUnderAScribbler, EveryToolEndsByItselfWithPrintableErrors) {
  const std::uint64_t seed = std::random_device{}();
  RecordProperty("seed", std::to_string(seed));
  std::map<std::string, int> failed;  // by tool: runs that exited non-zero (allowed)
  std::vector<std::string> wrong;
  int runs = 0;
  // Rounds on fresh logs, the damage growing through each: the tools meet
  // a log early in its damage (deep paths), and late (refused at open).
  for (int round = 0; round < 6 && wrong.empty(); ++round) {
    test::TempLogPath path;
    auto log = written_log(path.str());
    const std::string input = path.str() + ".input";
    const std::string work = path.str() + ".tool";
    std::ofstream(input) << "one\ntwo\nthree\n";
    const std::vector<std::vector<std::string>> tools = {
        {"info", path.str()},
        {"info", path.str(), "--json"},
        {"stat", path.str(), "--count", "2", "--interval", "10", "--json"},
        {"groups", path.str()},
        {"groups", path.str(), "--json"},
        {"consume", path.str(), "--from", "earliest", "--max", "500", "--idle-timeout-ms", "20"},
        {"consume", path.str(), "--group", "g", "--max", "200", "--idle-timeout-ms", "20"},
        {"consume", path.str(), "--isolation", "read_committed", "--max", "200", "--idle-timeout-ms", "20"},
        {"produce", path.str(), "--timeout-ms", "50"},
        {"verify", path.str()},
    };
    const std::uint32_t scribbler = test::spawn_scribbler(log, seed + static_cast<std::uint64_t>(round), 500us);
    for (int pass = 0; pass < 2 && wrong.empty(); ++pass) {
      for (const auto& args : tools) {
        // Generous: two cores, a scribbler, sanitizers.
        const Outcome got = run_tool(args, input, work, 60s);
        ++runs;
        std::string command;
        for (const auto& a : args) command += " " + a;
        if (const std::string why = judge(got); !why.empty()) {
          wrong.push_back("round " + std::to_string(round) + ": shmlog" + command + ": " + why + "\n" + got.err);
        }
        if (got.code != 0) ++failed[args[0]];
      }
    }
    ::kill(static_cast<pid_t>(scribbler), SIGKILL);
    EXPECT_EQ(test::join(scribbler), 128 + SIGKILL);
    std::remove(input.c_str());
    std::remove((work + ".out").c_str());
    std::remove((work + ".err").c_str());
  }
  for (const auto& w : wrong) ADD_FAILURE() << w;
  RecordProperty("runs", runs);
  for (const auto& [tool, n] : failed) RecordProperty("failed_" + tool, n);
}

}  // namespace
}  // namespace shmlog
