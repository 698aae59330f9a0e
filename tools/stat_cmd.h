// `shmlog stat`: a live view of a log's counters, attached read-only.
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_stat_command(CLI::App& app);

}  // namespace shmlog::tools
