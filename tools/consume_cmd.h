// `shmlog consume`: one record per stdout line, at most, at least or
// exactly once (into a file).
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_consume_command(CLI::App& app);

}  // namespace shmlog::tools
