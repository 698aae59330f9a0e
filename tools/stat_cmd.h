// `shmlog stat`: a live view of a log's counters, attached read-only.
#pragma once

#include <csignal>
#include <cstdint>
#include <string>

namespace shmlog::tools {

struct StatArgs {
  std::string log;
  std::uint32_t interval_ms = 1000;
  std::uint64_t count = 0;  // intervals to print; 0: until interrupted
  bool json = false;
};

int run_stat(const StatArgs& args, volatile std::sig_atomic_t* interrupted);

}  // namespace shmlog::tools
