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

// Runs the measurement; `progress` receives one line per step.
Result<std::vector<LatencyRow>> run_latency(const LatencyOptions& options, const Clock& clock,
                                            const std::function<void(const std::string&)>& progress);

}  // namespace shmlog::bench
