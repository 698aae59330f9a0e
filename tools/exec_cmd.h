// `shmlog exec`: run a program pinned to a core, its memory on that core's
// NUMA node, optionally SCHED_FIFO.
#pragma once

#include <string>
#include <vector>

namespace shmlog::tools {

struct ExecArgs {
  int core = -1;
  std::string numa = "local";  // "local", "none" or a node number
  std::string sched;           // "" or "fifo:PRIO"
  bool force = false;          // pin even next to another pinned process
  std::vector<std::string> command;
};

int run_exec(const ExecArgs& args);

}  // namespace shmlog::tools
