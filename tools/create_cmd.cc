#include "create_cmd.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "args.h"
#include "command.h"
#include "memory_flags.h"
#include "shmlog/log.h"
#include "shmlog/shm/topology.h"

namespace shmlog::tools {
namespace {

// A SIZE option: a byte count or K/M/G suffix.
struct SizeOpt {
  std::string text;
  std::uint64_t parse(const char* name) const {
    auto v = parse_size(text);
    if (!v.ok()) fail(std::string("--") + name + ": " + v.status().message());
    return *v;
  }
};

struct CreateArgs {
  std::string log;
  std::uint32_t partitions = 1;
  SizeOpt segment_size{"4M"};
  std::uint32_t ring_segments = 16;
  std::string policy = "backpressure";
  SizeOpt max_record_size{""};  // empty: 1M, or a quarter segment when segments are smaller than 4M
  std::uint32_t max_producers = 256, max_groups = 64, max_members = 32;
  std::uint32_t claim_timeout_ms = 1000;
  std::string mode = "0600";
  bool checksums = false;
  int numa_node = -1;
  int near_core = -1;
  MemoryFlags memory;
  std::uint64_t token_window = 0;
  std::uint64_t token_window_ms = 0;
  std::string durability = "none";
  std::vector<std::string> fsync_interval;  // SIZE (bytes) and/or TIME (500us, 2ms, 1s)
  SizeOpt retention_bytes{"0"};
  std::uint64_t retention_ms = 0;
};

int run_create(const CreateArgs& a) {
  LogOptions o;
  o.partitions = a.partitions;
  o.segment_size = a.segment_size.parse("segment-size");
  o.ring_segments = a.ring_segments;
  if (a.policy == "overwrite") {
    o.policy = Policy::kOverwrite;
  } else if (a.policy == "backpressure") {
    o.policy = Policy::kBackpressure;
  } else {
    fail("--policy: unknown policy '" + a.policy + "' (overwrite or backpressure)");
  }
  std::uint64_t max_record = a.max_record_size.text.empty() ? std::min<std::uint64_t>(1u << 20, o.segment_size / 4)
                                                            : a.max_record_size.parse("max-record-size");
  if (max_record > UINT32_MAX) fail("--max-record-size: " + a.max_record_size.text + " is too large");
  o.max_record_size = static_cast<std::uint32_t>(max_record);
  o.max_producers = a.max_producers;
  o.max_groups = a.max_groups;
  o.max_members = a.max_members;
  o.claim_timeout = std::chrono::milliseconds(a.claim_timeout_ms);
  char* end = nullptr;
  unsigned long mode = std::strtoul(a.mode.c_str(), &end, 8);
  if (end == a.mode.c_str() || *end != '\0') fail("--mode: '" + a.mode + "' is not an octal mode");
  o.mode = static_cast<std::uint32_t>(mode);
  o.checksums = a.checksums;
  o.numa_node = a.numa_node;
  if (a.near_core >= 0) {
    auto node = shm::numa_node_of_cpu(static_cast<unsigned>(a.near_core));
    if (!node.ok()) fail("--near-core: " + node.status().message());
    o.numa_node = *node;
  }
  o.pages = a.memory.pages();
  o.memory_dir = a.memory.dir;
  o.token_window = a.token_window;
  o.token_window_time = std::chrono::milliseconds(a.token_window_ms);
  o.durability = check(parse_durability(a.durability));
  for (const auto& interval : a.fsync_interval) {
    auto parsed = parse_micros(interval);
    if (!parsed.ok()) fail("--fsync-interval: " + parsed.status().message());
    if (const std::optional<std::uint64_t> us = *parsed) {
      o.fsync_interval = std::chrono::microseconds(*us);
    } else {
      o.fsync_interval_bytes = SizeOpt{interval}.parse("fsync-interval");
    }
  }
  if (!a.fsync_interval.empty() && o.durability != Durability::kFsync) {
    fail("--fsync-interval needs --durability fsync");
  }
  o.retention_bytes = a.retention_bytes.parse("retention-bytes");
  o.retention_time = std::chrono::milliseconds(a.retention_ms);
  if ((o.retention_bytes != 0 || a.retention_ms != 0) && o.durability == Durability::kNone) {
    fail("--retention-bytes/--retention-ms need --durability flush or fsync (they apply to segment files)");
  }
  auto log = check(Log::create(a.log, o));
  auto info = log.info();
  std::printf("created %s: %u partition(s), ring %u x %" PRIu64 " bytes, %s, shared memory %s (%s)\n",
              info.path.c_str(), o.partitions, o.ring_segments, o.segment_size, a.policy.c_str(),
              info.memory_path.c_str(), placement_text(o).c_str());
  if (o.durability != Durability::kNone) {
    std::printf("durability %s: segment files in %s/partition-*, written by the keeper of an attached process "
                "or `shmlog keeper`\n",
                durability_name(o.durability), info.path.c_str());
  }
  return 0;
}

}  // namespace

void add_create_command(CLI::App& app) {
  auto a = std::make_shared<CreateArgs>();
  auto* create = app.add_subcommand("create", "Create a log (a directory and its shared memory)");
  create->add_option("LOG", a->log, "Log directory (absent or empty)")->required();
  create->add_option("--partitions", a->partitions, "Number of partitions")->capture_default_str();
  create->add_option("--segment-size", a->segment_size.text, "Segment size: power of two, 64K..1G")->capture_default_str();
  create->add_option("--ring-segments", a->ring_segments, "Segments in each partition's ring")->capture_default_str();
  create->add_option("--policy", a->policy, "overwrite or backpressure")->capture_default_str();
  create->add_option("--max-record-size", a->max_record_size.text,
                     "Largest key+value (default 1M, or a quarter of a smaller segment)");
  create->add_option("--max-producers", a->max_producers, "Producers attached at once")->capture_default_str();
  create->add_option("--max-groups", a->max_groups, "Consumer groups")->capture_default_str();
  create->add_option("--max-members", a->max_members, "Consumers per group")->capture_default_str();
  create->add_option("--claim-timeout-ms", a->claim_timeout_ms, "Abandon a claim uncommitted this long")->capture_default_str();
  create->add_option("--mode", a->mode, "Permissions (octal), e.g. 0660 to share with the group")->capture_default_str();
  create->add_flag("--checksums", a->checksums, "Producers store CRC32C; consumers verify it");
  auto* numa = create->add_option("--numa-node", a->numa_node, "Bind the log's memory to this NUMA node");
  create->add_option("--near-core", a->near_core, "Bind the log's memory to the NUMA node of this CPU")->excludes(numa);
  a->memory.add_to(create);
  create->add_option("--token-window", a->token_window, "Uniqueness tokens remembered (0: none; 128 bytes each)")
      ->capture_default_str();
  create->add_option("--token-window-ms", a->token_window_ms, "Also forget tokens older than this (0: by count only)")
      ->capture_default_str();
  create->add_option("--durability", a->durability,
                     "none (shared memory only), flush (segment files) or fsync (and fdatasync)")
      ->capture_default_str();
  create->add_option("--fsync-interval", a->fsync_interval,
                     "fsync: sync after SIZE unsynced bytes (64K, 1M) and/or TIME (500us, 2ms); default: every flush");
  create->add_option("--retention-bytes", a->retention_bytes.text,
                     "Delete the oldest segment files while a partition's take more (0: keep all)")
      ->capture_default_str();
  create->add_option("--retention-ms", a->retention_ms, "Delete segment files last written longer ago (0: keep all)")
      ->capture_default_str();
  set_action(create, [a] { return run_create(*a); });
}

}  // namespace shmlog::tools
