// `shmlog gc`: removes the shared memory of logs that are gone.
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_gc_command(CLI::App& app);

}  // namespace shmlog::tools
