#include "info_cmd.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "args.h"
#include "command.h"
#include "shmlog/log.h"
#include "shmlog/shm/topology.h"

namespace shmlog::tools {
namespace {

// What info and groups are given.
struct ShowArgs {
  std::string log;
  bool json = false;
};

const char* policy_name(Policy p) {
  return p == Policy::kOverwrite ? "overwrite" : "backpressure";
}

// info --json: the keys and their order are what scripts read.
Json partition_json(const LogInfo::Partition& p, bool durable) {
  Json j = {{"partition", p.index},
            {"earliest_offset", p.earliest_offset},
            {"end_offset", p.end_offset},
            {"writers", p.writers},
            {"exclusive", p.exclusive}};
  if (p.counted) j.update(Json{{"appends", p.appends}, {"bytes", p.bytes}});
  if (durable) {
    j.update(Json{{"disk_start", p.disk_start},
                  {"written_offset", p.written_offset},
                  {"durable_offset", p.durable_offset},
                  {"disk_bytes", p.disk_bytes},
                  {"disk_segments", p.disk_segments},
                  {"fsyncs", p.fsyncs},
                  {"disk_full", p.disk_full},
                  {"io_errors", p.io_errors},
                  {"flush_errno", p.flush_errno}});
  }
  return j;
}

Json producer_json(const LogInfo::ProducerInfo& p) {
  Json j = {{"id", p.id},
            {"name", p.name},
            {"pid", p.pid},
            {"alive", p.alive},
            {"exclusive", p.exclusive},
            {"appends", p.appends},
            {"bytes", p.bytes},
            {"idempotent", p.idempotent},
            {"epoch", p.epoch}};
  if (p.last_sequence) j["last_sequence"] = *p.last_sequence;
  if (!p.transaction.empty()) {
    j["transaction"] = p.transaction;
    j["transaction_epoch"] = p.transaction_epoch;
  }
  return j;
}

Json info_json(const LogInfo& info, const shm::PageReport& where) {
  const auto& o = info.options;
  const bool durable = o.durability != Durability::kNone;
  Json j = {{"path", info.path},
            {"memory_path", info.memory_path},
            {"pages", shm::page_kind_name(o.pages)},
            {"numa_node", o.numa_node >= 0 ? Json(o.numa_node) : Json("none")},
            {"kernel_page_bytes", where.kernel_page_bytes},
            {"huge_bytes", where.huge_bytes}};
  if (where.nodes_error.empty()) {
    j["pages_on_node"] = where.pages_on_node;
    j["pages_not_present"] = where.pages_not_present;
  } else {
    j["pages_on_node_error"] = where.nodes_error;
  }
  j.update(Json{{"format_version", std::to_string(info.version_major) + "." + std::to_string(info.version_minor)},
                {"partitions", o.partitions},
                {"segment_size", o.segment_size},
                {"ring_segments", o.ring_segments},
                {"policy", policy_name(o.policy)},
                {"max_record_size", o.max_record_size},
                {"claim_timeout_ms", o.claim_timeout.count()},
                {"checksums", o.checksums},
                {"shm_bytes", info.shm_bytes},
                {"durability", durability_name(o.durability)}});
  if (durable) {
    j.update(Json{{"keeper_pid", info.keeper_pid},
                  {"keeper_alive", info.keeper_alive},
                  {"keeper_takeovers", info.keeper_takeovers}});
  }
  Json& partitions = j["partition_offsets"] = Json::array();
  for (const auto& p : info.partitions) partitions.push_back(partition_json(p, durable));
  Json& producers = j["producers"] = Json::array();
  for (const auto& p : info.producers) producers.push_back(producer_json(p));
  Json& groups = j["groups"] = Json::array();
  for (const auto& g : info.groups) groups.push_back(g.name);
  return j;
}

int run_info(const std::string& path, bool json) {
  auto log = check(Log::attach(path));
  auto info = log.info();
  const auto where = log.memory_report();
  const auto& o = info.options;
  if (json) {
    print_json(info_json(info, where));
    return 0;
  }
  std::printf("log            %s\n", info.path.c_str());
  std::printf("shared memory  %s (%" PRIu64 " bytes)\n", info.memory_path.c_str(), info.shm_bytes);
  std::printf("placement      %s\n", placement_text(o).c_str());
  std::printf("pages          kernel page %" PRIu64 " KiB, %" PRIu64 " KiB mapped by huge pages\n",
              where.kernel_page_bytes >> 10, where.huge_bytes >> 10);
  if (!where.nodes_error.empty()) {
    std::printf("pages are on   unknown: %s\n", where.nodes_error.c_str());
  } else {
    std::uint64_t total = where.pages_not_present;
    for (auto n : where.pages_on_node) total += n;
    std::string on;
    for (std::size_t n = 0; n < where.pages_on_node.size(); ++n) {
      if (where.pages_on_node[n] == 0) continue;
      char part[96];
      std::snprintf(part, sizeof part, "%snode %zu: %" PRIu64 " pages (%.1f%%)", on.empty() ? "" : ", ", n,
                    where.pages_on_node[n], 100.0 * static_cast<double>(where.pages_on_node[n]) / static_cast<double>(total));
      on += part;
    }
    if (where.pages_not_present != 0) on += (on.empty() ? "" : ", ") + std::to_string(where.pages_not_present) + " not present";
    std::printf("pages are on   %s (as the kernel reports them)\n", on.c_str());
  }
  std::printf("format         %u.%u\n", info.version_major, info.version_minor);
  std::printf("partitions     %u\n", o.partitions);
  std::printf("ring           %u segments x %" PRIu64 " bytes\n", o.ring_segments, o.segment_size);
  std::printf("policy         %s\n", policy_name(o.policy));
  std::printf("max record     %u bytes\n", o.max_record_size);
  std::printf("claim timeout  %lld ms\n", static_cast<long long>(o.claim_timeout.count()));
  std::printf("checksums      %s\n", o.checksums ? "on" : "off");
  const bool durable = o.durability != Durability::kNone;
  if (durable) {
    std::string policy_text = durability_name(o.durability);
    if (o.fsync_interval_bytes != 0) policy_text += ", sync every " + std::to_string(o.fsync_interval_bytes) + " bytes";
    if (o.fsync_interval.count() != 0) policy_text += ", sync every " + std::to_string(o.fsync_interval.count()) + " us";
    if (o.retention_bytes != 0) policy_text += ", keep " + std::to_string(o.retention_bytes) + " bytes";
    if (o.retention_time.count() != 0) policy_text += ", keep " + std::to_string(o.retention_time.count()) + " ms";
    std::printf("durability     %s\n", policy_text.c_str());
    const double beat = info.keeper_heartbeat_ns == 0 ? -1.0
                        : static_cast<double>(static_cast<std::int64_t>(realtime_ns() - info.keeper_heartbeat_ns)) / 1e6;
    std::printf("keeper         %s (last round %.0f ms ago, %" PRIu64 " takeover(s))\n",
                info.keeper_pid == 0 ? "none" : (std::string("pid ") + std::to_string(info.keeper_pid) +
                                                 (info.keeper_alive ? "" : ", dead")).c_str(),
                beat, info.keeper_takeovers);
  }
  std::printf("\n%-10s %16s %16s %8s %12s %14s", "PARTITION", "EARLIEST", "END", "WRITERS", "APPENDS", "BYTES");
  if (durable) std::printf(" %16s %16s %16s %12s %8s %8s", "DISK START", "WRITTEN", "DURABLE", "DISK BYTES", "FSYNCS", "FULL");
  std::printf("\n");
  for (const auto& p : info.partitions) {
    std::printf("%-10u %16" PRIu64 " %16" PRIu64 " %8s %12s %14s", p.index, p.earliest_offset, p.end_offset,
                p.exclusive ? "excl" : std::to_string(p.writers).c_str(), p.counted ? std::to_string(p.appends).c_str() : "-",
                p.counted ? std::to_string(p.bytes).c_str() : "-");
    if (durable) {
      std::printf(" %16" PRIu64 " %16" PRIu64 " %16" PRIu64 " %12" PRIu64 " %8" PRIu64 " %8" PRIu64, p.disk_start,
                  p.written_offset, p.durable_offset, p.disk_bytes, p.fsyncs, p.disk_full);
      if (p.flush_errno != 0) std::printf("  last error: %s", std::strerror(p.flush_errno));
    }
    std::printf("\n");
  }
  if (!info.producers.empty()) {
    std::printf("\n%-4s %-20s %8s %6s %12s %14s %6s %12s  %s\n", "ID", "NAME", "PID", "ALIVE", "APPENDS", "BYTES",
                "EPOCH", "LAST SEQ", "TRANSACTION");
    for (const auto& p : info.producers) {
      // Named (idempotent) producers show their epoch, last sequence and open transaction.
      const std::string txn = p.transaction.empty() ? "-" : p.transaction + " (epoch " + std::to_string(p.transaction_epoch) + ")";
      std::printf("%-4u %-20s %8u %6s %12" PRIu64 " %14" PRIu64 " %6s %12s  %s\n", p.id, p.name.c_str(), p.pid,
                  p.alive ? "yes" : "no", p.appends, p.bytes, p.idempotent ? std::to_string(p.epoch).c_str() : "-",
                  p.last_sequence ? std::to_string(*p.last_sequence).c_str() : "-", txn.c_str());
    }
  }
  std::printf("\ngroups         %zu (see shmlog groups)\n", info.groups.size());
  return 0;
}

struct GroupsArgs {
  std::string log;
  bool json = false;
  std::string remove;  // --delete
  bool force = false;
  std::string reset;  // --reset
  std::string to;     // --to
};

int run_groups(const std::string& path, bool json) {
  auto log = check(Log::attach(path));
  auto info = log.info();
  if (json) {
    Json groups = Json::array();
    for (const auto& g : info.groups) {
      Json partitions = Json::array();
      for (const auto& p : g.partitions) {
        partitions.push_back(Json{{"partition", p.partition},
                                  {"committed_offset", p.committed_offset},
                                  {"end_offset", p.end_offset},
                                  {"lag_bytes", p.lag_bytes},
                                  {"lag_records", p.lag_records},
                                  {"owner", p.owner}});
      }
      groups.push_back(Json{{"group", g.name}, {"members", g.members}, {"partitions", std::move(partitions)}});
    }
    print_json(groups);
    return 0;
  }
  std::printf("%-20s %8s %9s %16s %16s %12s %12s %6s\n", "GROUP", "MEMBERS", "PARTITION", "COMMITTED", "END",
              "LAG(REC)", "LAG(BYTES)", "OWNER");
  for (const auto& g : info.groups) {
    for (const auto& p : g.partitions) {
      std::printf("%-20s %8u %9u %16" PRIu64 " %16" PRIu64 " %12" PRIu64 " %12" PRIu64 " %6s\n", g.name.c_str(),
                  g.members, p.partition, p.committed_offset, p.end_offset, p.lag_records, p.lag_bytes,
                  p.owner < 0 ? "-" : std::to_string(p.owner).c_str());
    }
  }
  return 0;
}

}  // namespace

void add_info_commands(CLI::App& app) {
  auto info_args = std::make_shared<ShowArgs>();
  auto* info = app.add_subcommand("info", "Show a log's configuration, partitions and producers");
  info->add_option("LOG", info_args->log, "Log directory")->required();
  info->add_flag("--json", info_args->json, "Print JSON");
  set_action(info, [info_args] { return run_info(info_args->log, info_args->json); });

  auto groups_args = std::make_shared<GroupsArgs>();
  auto* groups = app.add_subcommand("groups", "Show committed offsets and lag per group and partition; delete or reset a group");
  groups->add_option("LOG", groups_args->log, "Log directory")->required();
  groups->add_flag("--json", groups_args->json, "Print JSON");
  groups->add_option("--delete", groups_args->remove, "Delete this group (its offsets; the ring stops waiting for it)");
  groups->add_flag("--force", groups_args->force, "With --delete: even while it has live members (they are released)");
  groups->add_option("--reset", groups_args->reset,
                     "Move this group's committed offsets (every partition; refused while it has live members)");
  groups->add_option("--to", groups_args->to,
                     "With --reset: earliest, latest, OFFSET, a UTC time (2026-12-04T21:30:00Z) or a time ago (-15m, "
                     "-2h, -1d)");
  set_action(groups, [groups_args] {
    const GroupsArgs& a = *groups_args;
    if (!a.reset.empty() && !a.remove.empty()) fail("--reset and --delete: one at a time");
    if (a.reset.empty() != a.to.empty()) fail("--reset GROUP and --to WHERE go together");
    if (a.force && a.remove.empty()) fail("--force is for --delete");
    if (!a.reset.empty()) {
      auto to = parse_reset(a.to, realtime_ns());
      if (!to.ok()) fail("--to: " + to.status().message());
      auto log = check(Log::open(a.log));
      const auto offsets = check(log.reset_group(a.reset, *to));
      std::printf("reset group '%s' of %s to %s:", a.reset.c_str(), log.path().c_str(), a.to.c_str());
      for (std::size_t p = 0; p < offsets.size(); ++p) std::printf(" %zu@%" PRIu64, p, offsets[p]);
      std::printf("\n");
      return 0;
    }
    if (a.remove.empty()) return run_groups(a.log, a.json);
    auto log = check(Log::open(a.log));
    check(log.delete_group(a.remove, a.force));
    std::printf("deleted group '%s' of %s\n", a.remove.c_str(), log.path().c_str());
    return 0;
  });
}

}  // namespace shmlog::tools
