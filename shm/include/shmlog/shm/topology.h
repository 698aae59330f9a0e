// The host's CPU and memory topology (from hwloc) and the Linux settings
// that decide tail latency. Read once; the recommendation logic works on
// these plain structs, so it can be tested on synthetic topologies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shmlog/status.h"

namespace shmlog::shm {

struct Cpu {                 // a hardware thread (hwloc PU)
  unsigned os_index = 0;     // the number Linux uses (taskset, /proc)
  unsigned core = 0;         // logical index of its core
  unsigned package = 0;
  int numa_node = -1;        // OS index of its NUMA node, -1 if unknown
  int l2 = -1;               // logical index of its L2 cache, -1 if none
  int l3 = -1;               // logical index of its L3 cache, -1 if none
};

struct Topology {
  std::vector<Cpu> cpus;     // ordered by os_index
  unsigned packages = 0;
  unsigned numa_nodes = 0;
  unsigned cores = 0;
  std::uint64_t l2_bytes = 0;
  std::uint64_t l3_bytes = 0;
  std::string source;        // "this host" or the synthetic description
  bool smt_siblings(unsigned a, unsigned b) const;
  const Cpu* cpu(unsigned os_index) const;
};

// The topology of this host, or of a synthetic hwloc description such as
// "pack:2 numa:1 l3:1 core:4 pu:2" (for tests and what-if planning).
Result<Topology> load_topology(const std::string& synthetic = "");

struct HostSettings {
  std::vector<unsigned> isolated;   // isolcpus (/sys/devices/system/cpu/isolated)
  std::vector<unsigned> nohz_full;
  std::vector<unsigned> rcu_nocbs;  // from the kernel command line
  std::string smt = "unknown";      // "on", "off", "unsupported"
  std::vector<std::string> governors;  // per CPU, empty when cpufreq is absent
  bool tsc_invariant = false;
  std::vector<std::uint64_t> interrupts;  // per CPU, from /proc/interrupts
};

HostSettings read_host_settings(unsigned cpus);
// The NUMA node of CPU `cpu` on this host; kInvalidArgument naming the CPUs
// there are when it does not exist.
Result<int> numa_node_of_cpu(unsigned cpu);

// Parses a Linux CPU list such as "0-3,8,10-11".
std::vector<unsigned> parse_cpu_list(const std::string& text);

struct CorePair {
  unsigned producer = 0;  // OS CPU numbers
  unsigned consumer = 0;
  std::string why;
};

struct Recommendation {
  std::vector<CorePair> pairs;      // best first
  std::vector<std::string> fixes;   // what to change on this host, with the command
};

// The best producer/consumer CPU pairs: never hyperthread siblings, then
// isolated over not, same L3, same NUMA node, not CPU 0 (housekeeping),
// fewer interrupts.
Recommendation recommend(const Topology& topology, const HostSettings& settings, std::size_t max_pairs = 3);

}  // namespace shmlog::shm
