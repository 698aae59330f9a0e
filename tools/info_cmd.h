// `shmlog info` (a log's configuration, partitions and producers) and
// `shmlog groups` (committed offsets and lag), as tables or JSON.
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_info_commands(CLI::App& app);

}  // namespace shmlog::tools
