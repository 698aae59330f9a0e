// `shmlog copy`: consume-process-produce from one log into another, exactly
// once, with transactions.
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_copy_command(CLI::App& app);

}  // namespace shmlog::tools
