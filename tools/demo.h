// `shmlog demo`: producers and consumers in separate processes sharing one
// log; prints throughput and end-to-end latency percentiles.
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_demo_command(CLI::App& app);

}  // namespace shmlog::tools
