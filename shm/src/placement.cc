#include "shmlog/shm/placement.h"

#include <fcntl.h>
#include <hwloc.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <memory>
#include <sstream>

#include "shmlog/shm/process.h"
#include "hwloc_util.h"

namespace shmlog::shm {
namespace {

// Reads and rewrites the registry under an exclusive flock; `change` edits
// the live entries.
template <class F>
Status with_registry(const std::string& path, F&& change) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return Status::from_errno("opening " + path, errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  (void)::fchmod(fd, 0666);  // shared by every user who pins processes (fails harmlessly if not ours)
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno != EINTR) return Status::from_errno("locking " + path, errno);
  }
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(text.size()))) > 0) text.append(buf, static_cast<std::size_t>(n));
  std::vector<PinnedProcess> live;
  std::istringstream in(text);
  PinnedProcess p;
  while (in >> p.pid >> p.start_time >> p.cpu) {
    if (is_alive({p.pid, p.start_time})) live.push_back(p);
  }
  change(live);
  std::string out;
  for (const auto& e : live) {
    out += std::to_string(e.pid) + " " + std::to_string(e.start_time) + " " + std::to_string(e.cpu) + "\n";
  }
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, out.data(), out.size(), 0) != static_cast<ssize_t>(out.size())) {
    return Status::from_errno("writing " + path, errno);
  }
  return {};
}

}  // namespace

std::string pin_registry_path() {
  const char* env = std::getenv("SHMLOG_PIN_REGISTRY");
  return env != nullptr && *env != '\0' ? env : "/dev/shm/shmlog-pinned";
}

Status bind_memory_to_node(int node) {
  auto topology = detail::load_hwloc();
  if (!topology.ok()) return std::move(topology).status();
  hwloc_topology_t t = topology->get();
  auto found = detail::find_numa_node(t, node);
  if (!found.ok()) return std::move(found).status();
  // With one node there is nothing to choose (and kernels built without
  // NUMA support refuse the call).
  if (detail::numa_node_count(t) <= 1) return {};
  if (hwloc_set_membind(t, (*found)->nodeset, HWLOC_MEMBIND_BIND, HWLOC_MEMBIND_PROCESS | HWLOC_MEMBIND_BYNODESET) != 0) {
    return Status::from_errno("binding memory to NUMA node " + std::to_string(node), errno);
  }
  return {};
}

Status set_fifo_scheduling(int priority) {
  if (priority < 1 || priority > 99) {
    return Status(Status::Code::kInvalidArgument, "SCHED_FIFO priority must be 1..99, got " + std::to_string(priority));
  }
  sched_param param{};
  param.sched_priority = priority;
  if (::sched_setscheduler(0, SCHED_FIFO, &param) != 0) {
    return Status::from_errno("setting SCHED_FIFO priority " + std::to_string(priority) +
                                  " (needs root or CAP_SYS_NICE)",
                              errno);
  }
  return {};
}

Result<std::vector<PinnedProcess>> pinned_processes(const std::string& registry) {
  std::vector<PinnedProcess> result;
  Status s = with_registry(registry, [&](std::vector<PinnedProcess>& live) { result = live; });
  if (!s.ok()) return s;
  return result;
}

Status register_pinned(unsigned cpu, const std::string& registry) {
  const ProcessId me = self();
  return with_registry(registry, [&](std::vector<PinnedProcess>& live) {
    live.erase(std::remove_if(live.begin(), live.end(), [&](const PinnedProcess& p) { return p.pid == me.pid; }),
               live.end());
    live.push_back({me.pid, me.start_time, cpu});
  });
}

Status exec_command(const std::vector<std::string>& argv) {
  if (argv.empty()) return Status(Status::Code::kInvalidArgument, "no command to run");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execvp(args[0], args.data());
  return Status::from_errno("running " + argv[0], errno);
}

}  // namespace shmlog::shm
