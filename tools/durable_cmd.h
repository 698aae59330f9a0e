// Commands for durable logs: `shmlog keeper`, `dump`, `verify`, `repair`.
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_durable_commands(CLI::App& app);

}  // namespace shmlog::tools
