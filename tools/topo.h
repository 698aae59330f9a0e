// `shmlog topo`: the host's topology, the Linux settings that decide tail
// latency, and a recommendation of producer/consumer cores.
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_topo_command(CLI::App& app);

}  // namespace shmlog::tools
