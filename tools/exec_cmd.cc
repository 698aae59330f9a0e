#include "exec_cmd.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "command.h"
#include "shmlog/shm/placement.h"
#include "shmlog/shm/process.h"
#include "shmlog/shm/topology.h"

namespace shmlog::tools {
namespace {

struct ExecArgs {
  int core = -1;
  std::string numa = "local";  // "local", "none" or a node number
  std::string sched;           // "" or "fifo:PRIO"
  bool force = false;          // pin even next to another pinned process
  std::vector<std::string> command;
};

// Whether `program` can be run: a path that is executable, or a name found
// in $PATH.
bool on_path(const std::string& program) {
  if (program.find('/') != std::string::npos) return ::access(program.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t colon = dirs.find(':', start);
    if (colon == std::string::npos) colon = dirs.size();
    const std::string dir = colon > start ? dirs.substr(start, colon - start) : ".";
    if (::access((dir + "/" + program).c_str(), X_OK) == 0) return true;
    start = colon + 1;
  }
  return false;
}

int failed(const std::string& what) {
  std::fprintf(stderr, "shmlog exec: %s\n", what.c_str());
  return 1;
}

int run_exec(const ExecArgs& a) {
  auto topology = shm::load_topology();
  if (!topology.ok()) return failed(topology.status().message());
  if (a.core < 0) return failed("--core is required");
  const shm::Cpu* cpu = topology->cpu(static_cast<unsigned>(a.core));
  if (cpu == nullptr) {
    return failed("core " + std::to_string(a.core) + " does not exist (" + std::to_string(topology->cpus.size()) +
                " CPUs)");
  }
  // Another latency-critical process pinned by shmlog on this core or its
  // SMT sibling would share its caches and pipeline.
  auto pinned = shm::pinned_processes();
  if (!pinned.ok()) return failed(pinned.status().message());
  const std::uint32_t me = shm::self().pid;
  for (const auto& p : *pinned) {
    if (p.pid == me) continue;
    const bool same = p.cpu == static_cast<unsigned>(a.core);
    if ((same || topology->smt_siblings(p.cpu, static_cast<unsigned>(a.core))) && !a.force) {
      return failed("core " + std::to_string(a.core) + (same ? " already runs" : " is an SMT sibling of core " +
                                                                                std::to_string(p.cpu) + ", which runs") +
                  " process " + std::to_string(p.pid) + " pinned by shmlog exec (use --force to pin anyway)");
    }
  }
  // Every argument is checked, and the program found, before anything is
  // changed or printed: an error is one line.
  int node = cpu->numa_node;
  if (a.numa != "local" && a.numa != "none") {
    char* end = nullptr;
    long n = std::strtol(a.numa.c_str(), &end, 10);
    if (a.numa.empty() || *end != '\0' || n < 0) return failed("--numa must be local, none or a node number, got '" + a.numa + "'");
    node = static_cast<int>(n);
  }
  long priority = 0;
  if (!a.sched.empty()) {
    char* end = nullptr;
    if (a.sched.rfind("fifo:", 0) == 0) priority = std::strtol(a.sched.c_str() + 5, &end, 10);
    if (a.sched.rfind("fifo:", 0) != 0 || *end != '\0') return failed("--sched must be fifo:PRIO, got '" + a.sched + "'");
  }
  if (a.command.empty() || !on_path(a.command[0])) {
    return failed("running " + (a.command.empty() ? std::string("nothing") : a.command[0]) +
                ": no such program on PATH");
  }
  Status s = shm::pin_current_thread(static_cast<unsigned>(a.core));
  if (!s.ok()) return failed(s.message());
  if (a.numa != "none" && node >= 0) {
    s = shm::bind_memory_to_node(node);
    if (!s.ok()) return failed(s.message());
  }
  if (!a.sched.empty()) {
    s = shm::set_fifo_scheduling(static_cast<int>(priority));
    if (!s.ok()) return failed(s.message());
  }
  s = shm::register_pinned(static_cast<unsigned>(a.core));  // exec keeps the pid
  if (!s.ok()) return failed(s.message());
  const auto settings = shm::read_host_settings(static_cast<unsigned>(topology->cpus.size()));
  if (std::find(settings.isolated.begin(), settings.isolated.end(), static_cast<unsigned>(a.core)) ==
      settings.isolated.end()) {
    std::fprintf(stderr, "shmlog exec: warning: core %d is not isolated (isolcpus); the scheduler may run other work there\n",
                 a.core);
  }
  s = shm::exec_command(a.command);
  return failed(s.message());
}

}  // namespace

void add_exec_command(CLI::App& app) {
  auto a = std::make_shared<ExecArgs>();
  auto* exec = app.add_subcommand("exec", "Run a program pinned to a core, memory on its NUMA node");
  exec->add_option("--core", a->core, "The core (CPU number) to pin to")->required();
  exec->add_option("--numa", a->numa, "Memory: local (the core's node), none, or a node number")->capture_default_str();
  exec->add_option("--sched", a->sched, "Real-time scheduling: fifo:PRIO (1..99)");
  exec->add_flag("--force", a->force, "Pin even beside another process pinned by shmlog exec");
  exec->add_option("command", a->command, "-- CMD ARGS...")->required();
  set_action(exec, [a] { return run_exec(*a); });
}

}  // namespace shmlog::tools
