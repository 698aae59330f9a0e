#include "host.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>

#include "shmlog/shm/topology.h"

namespace shmlog::bench {

std::vector<std::string> host_warnings(const std::vector<int>& cores, bool tsc_usable) {
  std::vector<std::string> warnings;
  auto topology = shm::load_topology();
  const auto online = sysconf(_SC_NPROCESSORS_ONLN);
  for (int c : cores) {
    if (c < 0 || (topology.ok() && topology->cpu(static_cast<unsigned>(c)) == nullptr) || c >= online) {
      warnings.push_back("core " + std::to_string(c) + " does not exist (" + std::to_string(online) + " online)");
    }
  }
  for (std::size_t i = 0; i < cores.size(); ++i) {
    for (std::size_t j = i + 1; j < cores.size(); ++j) {
      if (cores[i] == cores[j]) {
        warnings.push_back("producer and consumer share core " + std::to_string(cores[i]) + ": spinning waits will starve each other");
      } else if (topology.ok() && cores[i] >= 0 && cores[j] >= 0 &&
                 topology->smt_siblings(static_cast<unsigned>(cores[i]), static_cast<unsigned>(cores[j]))) {
        warnings.push_back("cores " + std::to_string(cores[i]) + " and " + std::to_string(cores[j]) +
                           " are hyperthread siblings: they share a core's caches and pipeline");
      }
    }
  }
  const auto settings = shm::read_host_settings(static_cast<unsigned>(online));
  for (int c : cores) {
    if (c >= 0 && static_cast<std::size_t>(c) < settings.governors.size() && settings.governors[c] != "performance") {
      warnings.push_back("core " + std::to_string(c) + " uses the '" + settings.governors[c] +
                         "' frequency governor; 'performance' gives steadier latency (cpupower frequency-set -g performance)");
    }
  }
  if (!tsc_usable) warnings.push_back("the TSC is not invariant: timestamps use CLOCK_MONOTONIC (~20 ns each)");
  return warnings;
}

std::string host_summary() {
  std::string model;
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  utsname u{};
  uname(&u);
  return model + ", " + std::to_string(sysconf(_SC_NPROCESSORS_ONLN)) + " CPUs, Linux " + u.release;
}

}  // namespace shmlog::bench
