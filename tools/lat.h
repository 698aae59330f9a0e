// `shmlog lat`: latency percentiles between two pinned processes, with
// baselines measured in the same run.
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_lat_command(CLI::App& app);

}  // namespace shmlog::tools
