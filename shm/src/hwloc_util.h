// What placement.cc and shared_memory.cc share of hwloc: a loaded topology
// and a NUMA node looked up by its OS number.
#pragma once

#include <hwloc.h>

#include <memory>
#include <string>

#include "shmlog/status.h"

namespace shmlog::shm::detail {

struct TopologyDeleter {
  void operator()(hwloc_topology* t) const noexcept { hwloc_topology_destroy(t); }
};
using HwlocTopology = std::unique_ptr<hwloc_topology, TopologyDeleter>;

inline Result<HwlocTopology> load_hwloc() {
  hwloc_topology_t raw = nullptr;
  if (hwloc_topology_init(&raw) != 0) return Status(Status::Code::kIoError, "hwloc: cannot initialise a topology");
  HwlocTopology t(raw);
  if (hwloc_topology_load(raw) != 0) return Status(Status::Code::kIoError, "hwloc: cannot read the topology");
  return t;
}

inline int numa_node_count(hwloc_topology_t t) { return hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE); }

// The node whose OS index is `node`; kInvalidArgument naming the nodes there are.
inline Result<hwloc_obj_t> find_numa_node(hwloc_topology_t t, int node) {
  for (hwloc_obj_t o = hwloc_get_next_obj_by_type(t, HWLOC_OBJ_NUMANODE, nullptr); o != nullptr;
       o = hwloc_get_next_obj_by_type(t, HWLOC_OBJ_NUMANODE, o)) {
    if (static_cast<int>(o->os_index) == node) return o;
  }
  const int n = numa_node_count(t);
  return Status(Status::Code::kInvalidArgument,
                "NUMA node " + std::to_string(node) + " does not exist (this host has " + std::to_string(n) +
                    (n == 1 ? " node: 0)" : " nodes: 0.." + std::to_string(n - 1) + ")"));
}

}  // namespace shmlog::shm::detail
