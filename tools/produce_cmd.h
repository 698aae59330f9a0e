// `shmlog produce`: one record per stdin line; keyed, idempotent,
// transactional or durable as the options say.
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_produce_command(CLI::App& app);

}  // namespace shmlog::tools
