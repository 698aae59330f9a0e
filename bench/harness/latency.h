// The multi-process latency harness behind `shmlog lat`: shmlog between two
// pinned processes (ping-pong over two logs, or one-way at a fixed rate with
// latency measured from the intended send time), and baselines measured in
// the same run with the same message size and cores.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "clock.h"
#include "shmlog/histogram.h"
#include "shmlog/log.h"
#include "shmlog/status.h"
#include "shmlog/wait.h"

namespace shmlog::bench {

struct LatencyOptions {
  enum class Mode { kPingPong, kOneWay };
  Mode mode = Mode::kPingPong;
  std::size_t size = 32;        // value bytes (>= 8: the first 8 carry a timestamp or sequence)
  std::uint64_t count = 0;      // measured messages; 0: from duration
  double duration_s = 5;        // when count is 0
  std::uint64_t rate = 100000;  // one-way: messages per second
  std::uint64_t warmup = 0;     // excluded first messages; 0: count / 10, at most 100 000
  int producer_core = 0;
  int consumer_core = 1;
  WaitStrategy wait = WaitStrategy::spin();
  bool baselines = true;
  double baseline_seconds = 1;  // time budget of each baseline
  // shmlog and the cache-line floor alternate this many times, each round
  // with its share of the messages and of the floor's time budget.
  unsigned rounds = 1;
  std::string dir = "/tmp";     // where the temporary logs go
  Pages pages = Pages::kNormal;  // the logs' pages (normal, thp, huge)
  std::string memory_dir;        // empty: the default for `pages`
  // Asked between steps: true stops the run there (kAborted, "interrupted").
  std::function<bool()> interrupted;
};

// One line of the report: a histogram of latencies in ns.
struct LatencyRow {
  std::string name;
  std::string kind;  // "one-way", "round trip"
  bool processes = true;  // false: threads of one process
  Histogram histogram;
};

// A round's shmlog figure over the floor's in the same round: round trips
// over the cache line's; one-way records at a rate over the cache line's
// one-way at that rate (timed from the intended send time alike), without
// a rate over half its round trip.
struct FloorRatio {
  double p50 = 0;
  double p9999 = 0;
};

struct LatencyRun {
  std::vector<LatencyRow> rows;           // shmlog's and the floor's over all rounds, then the other baselines
  std::vector<FloorRatio> floor_rounds;  // one per round, with baselines
  std::string floor_compared;            // what the ratios compare, in words
};

// Runs the measurement; `progress` receives one line per step.
Result<LatencyRun> run_latency(const LatencyOptions& options, const Clock& clock,
                               const std::function<void(const std::string&)>& progress);

}  // namespace shmlog::bench
