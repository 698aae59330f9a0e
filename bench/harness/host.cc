#include "host.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

namespace shmlog::bench {
namespace {

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Parses a CPU list such as "0-3,8" into its members.
std::set<int> parse_cpu_list(const std::string& text) {
  std::set<int> cpus;
  std::istringstream in(text);
  for (std::string part; std::getline(in, part, ',');) {
    auto dash = part.find('-');
    try {
      if (dash == std::string::npos) {
        if (!part.empty()) cpus.insert(std::stoi(part));
      } else {
        for (int c = std::stoi(part.substr(0, dash)); c <= std::stoi(part.substr(dash + 1)); ++c) cpus.insert(c);
      }
    } catch (...) {
    }
  }
  return cpus;
}

}  // namespace

std::vector<std::string> host_warnings(const std::vector<int>& cores, bool tsc_usable) {
  std::vector<std::string> warnings;
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  for (int c : cores) {
    if (c < 0 || c >= online) warnings.push_back("core " + std::to_string(c) + " does not exist (" + std::to_string(online) + " online)");
  }
  for (std::size_t i = 0; i < cores.size(); ++i) {
    for (std::size_t j = i + 1; j < cores.size(); ++j) {
      if (cores[i] == cores[j]) {
        warnings.push_back("producer and consumer share core " + std::to_string(cores[i]) + ": spinning waits will starve each other");
        continue;
      }
      auto siblings = parse_cpu_list(
          read_line("/sys/devices/system/cpu/cpu" + std::to_string(cores[i]) + "/topology/thread_siblings_list"));
      if (siblings.count(cores[j])) {
        warnings.push_back("cores " + std::to_string(cores[i]) + " and " + std::to_string(cores[j]) +
                           " are hyperthread siblings: they share a core's caches and pipeline");
      }
    }
  }
  for (int c : cores) {
    const std::string governor =
        read_line("/sys/devices/system/cpu/cpu" + std::to_string(c) + "/cpufreq/scaling_governor");
    if (!governor.empty() && governor != "performance") {
      warnings.push_back("core " + std::to_string(c) + " uses the '" + governor +
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
