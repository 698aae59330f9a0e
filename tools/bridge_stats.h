// Where a running bridge leaves its counters for `shmlog stat` and the
// exporter: LOG/bridge-DIRECTION-TOPIC.stats, a key=value file (io's
// format: a header line, a CRC32C line) rewritten whole, by rename, every
// stats interval, and removed when the bridge exits cleanly. A bridge
// killed leaves it behind; its reader then sees the process gone.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shmlog/bridge/stats.h"
#include "shmlog/status.h"

namespace shmlog::tools {

struct BridgeStatsFile {
  std::string direction;  // "to-kafka" or "from-kafka"
  std::string topic;
  std::uint32_t pid = 0;
  std::uint64_t start_time = 0;  // of the process, as /proc gives it
  std::uint64_t updated_ns = 0;  // CLOCK_REALTIME of the last rewrite
  bridge::BridgeStats stats;
};

std::string bridge_stats_path(const std::string& log, const std::string& direction, const std::string& topic);
// This process's counters, atomically.
Status write_bridge_stats(const std::string& path, const BridgeStatsFile& file);
// The file's text (`name` names it in errors): every field present and in
// range, or kCorrupt naming the file and the field. Pure.
Result<BridgeStatsFile> parse_bridge_stats(std::string_view text, const std::string& name);

// Every bridge-*.stats file of `log`: parsed, or the error that names it.
struct FoundBridge {
  std::string file;
  Result<BridgeStatsFile> stats = Status(Status::Code::kNotFound, "not read");
  bool up = false;  // the process lives, and rewrote the file within 10 s
};
std::vector<FoundBridge> find_bridges(const std::string& log);

}  // namespace shmlog::tools
