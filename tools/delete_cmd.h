// `shmlog delete`: a log's shared memory, files and directory.
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_delete_command(CLI::App& app);

}  // namespace shmlog::tools
