// `shmlog bench`: the throughput matrix with a progress display and a summary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "memory_flags.h"

namespace shmlog::tools {

struct BenchArgs {
  std::vector<std::string> sizes;  // SIZE strings; empty: the default set
  std::uint32_t producers = 0;
  std::uint32_t consumers = 0;
  double seconds = 1;
  bool json = false;
  std::string dir = "/tmp";
  MemoryFlags memory;
};

int run_bench(const BenchArgs& args);

}  // namespace shmlog::tools
