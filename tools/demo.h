// `shmlog demo`: producers and consumers in separate processes sharing one
// log; prints throughput and end-to-end latency percentiles.
#pragma once

#include <csignal>
#include <cstdint>
#include <string>

#include "shmlog/wait.h"

namespace shmlog::tools {

struct DemoArgs {
  // 0: fit the machine: half the cores produce, half consume (1 to 4 each),
  // one partition per consumer.
  std::uint32_t producers = 0;
  std::uint32_t consumers = 0;
  std::uint32_t partitions = 0;
  std::uint32_t size = 32;
  double seconds = 2.0;
  std::uint64_t rate = 100000;
  std::string dir = "/tmp";
  std::string wait = "backoff";
  WaitStrategy wait_strategy;
};

int run_demo(const DemoArgs& args, volatile std::sig_atomic_t* interrupted);

}  // namespace shmlog::tools
