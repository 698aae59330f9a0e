// `shmlog lat`: latency percentiles between two pinned processes, with
// baselines measured in the same run.
#pragma once

#include <cstdint>
#include <string>

#include "memory_flags.h"

#include "shmlog/wait.h"

namespace shmlog::tools {

struct LatArgs {
  std::size_t size = 32;
  std::uint64_t count = 0;
  double duration_s = 5;
  std::uint64_t rate = 100000;
  std::string mode = "ping-pong";
  int producer_core = 0;
  int consumer_core = 1;
  std::string wait_name = "spin";
  WaitStrategy wait = WaitStrategy::spin();
  bool json = false;
  std::string hdr_out;
  std::string plot;
  bool baselines = true;
  double baseline_seconds = 1;
  std::string dir = "/tmp";
  MemoryFlags memory;
};

int run_lat(const LatArgs& args);

}  // namespace shmlog::tools
