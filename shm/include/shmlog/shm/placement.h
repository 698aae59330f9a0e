// Placing processes: memory binding, real-time scheduling, and a registry
// of the CPUs that shmlog has pinned processes to (so that two latency-
// critical processes are not put on SMT siblings of one core).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shmlog/status.h"

namespace shmlog::shm {

// Binds the calling process's future allocations to NUMA node `node`
// (hwloc). kInvalidArgument if no such node; a no-op on a one-node host.
Status bind_memory_to_node(int node);
// SCHED_FIFO at `priority` (1..99) for the calling process.
Status set_fifo_scheduling(int priority);

struct PinnedProcess {
  std::uint32_t pid = 0;
  std::uint64_t start_time = 0;
  unsigned cpu = 0;
};

// The registry (/dev/shm/shmlog-pinned, or $SHMLOG_PIN_REGISTRY; under
// flock): live entries only; entries of dead processes are dropped as it
// is read.
std::string pin_registry_path();
Result<std::vector<PinnedProcess>> pinned_processes(const std::string& registry = pin_registry_path());
// Adds the calling process, pinned to `cpu`.
Status register_pinned(unsigned cpu, const std::string& registry = pin_registry_path());

// Replaces the calling process with `argv` (execvp); returns only on error.
Status exec_command(const std::vector<std::string>& argv);

}  // namespace shmlog::shm
