// `shmlog bench`: the throughput matrix with a progress display and a summary.
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_bench_command(CLI::App& app);

}  // namespace shmlog::tools
