// `shmlog exec`: run a program pinned to a core, its memory on that core's
// NUMA node, optionally SCHED_FIFO.
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_exec_command(CLI::App& app);

}  // namespace shmlog::tools
