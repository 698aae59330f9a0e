#include "gc_cmd.h"

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "shmlog/log.h"
#include "shmlog/shm/shared_memory.h"

namespace shmlog::tools {
namespace {

struct GcArgs {
  std::vector<std::string> memory_dirs;
  bool dry_run = false;
};

int run_gc(const GcArgs& a) {
  std::uint64_t count = 0, bytes = 0;
  for (const std::string& dir : a.memory_dirs) {
    for (const StaleMemory& m : check(find_stale_memory(dir))) {
      if (!a.dry_run) check(shm::SharedMemory::unlink(m.object));
      std::printf("%s %s (%s, %" PRIu64 " bytes)\n", a.dry_run ? "would remove" : "removed", m.object.c_str(),
                  m.why.c_str(), m.bytes);
      ++count;
      bytes += m.bytes;
    }
  }
  std::printf("%s %" PRIu64 " object(s), %" PRIu64 " bytes\n", a.dry_run ? "would free" : "freed", count, bytes);
  return 0;
}

}  // namespace

void add_gc_command(CLI::App& app) {
  auto a = std::make_shared<GcArgs>();
  auto* gc = app.add_subcommand("gc", "Remove the shared memory of logs that are gone (this user's)");
  gc->add_option("--memory-dir", a->memory_dirs, "Where logs' shared memory lives (default /dev/shm; repeatable)");
  gc->add_flag("--dry-run", a->dry_run, "Only list what would be removed");
  set_action(gc, [a] {
    if (a->memory_dirs.empty()) a->memory_dirs.push_back("/dev/shm");
    return run_gc(*a);
  });
}

}  // namespace shmlog::tools
