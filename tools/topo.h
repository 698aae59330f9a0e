// `shmlog topo`: the host's topology, the Linux settings that decide tail
// latency, and a recommendation of producer/consumer cores.
#pragma once

#include <string>

namespace shmlog::tools {
int run_topo(bool json, const std::string& synthetic);
}  // namespace shmlog::tools
