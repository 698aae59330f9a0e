// `shmlog create`: a log, its directory and shared memory, from the options.
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_create_command(CLI::App& app);

}  // namespace shmlog::tools
