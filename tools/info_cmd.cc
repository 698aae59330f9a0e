#include "info_cmd.h"

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "args.h"
#include "command.h"
#include "json.h"
#include "shmlog/log.h"
#include "shmlog/shm/topology.h"

namespace shmlog::tools {
namespace {

// What info and groups are given.
struct ShowArgs {
  std::string log;
  bool json = false;
};

int run_info(const std::string& path, bool json) {
  auto log = check(Log::attach(path));
  auto info = log.info();
  const auto where = log.memory_report();
  const auto& o = info.options;
  const char* policy = o.policy == Policy::kOverwrite ? "overwrite" : "backpressure";
  if (json) {
    Json j;
    j.begin_object();
    j.key("path").value(info.path).key("memory_path").value(info.memory_path);
    j.key("pages").value(shm::page_kind_name(o.pages)).key("numa_node");
    if (o.numa_node >= 0) {
      j.value(o.numa_node);
    } else {
      j.value("none");
    }
    j.key("kernel_page_bytes").value(where.kernel_page_bytes).key("huge_bytes").value(where.huge_bytes);
    if (where.nodes_error.empty()) {
      j.key("pages_on_node").begin_array();
      for (auto n : where.pages_on_node) j.value(n);
      j.end_array().key("pages_not_present").value(where.pages_not_present);
    } else {
      j.key("pages_on_node_error").value(where.nodes_error);
    }
    j.key("format_version").value(std::to_string(info.version_major) + "." + std::to_string(info.version_minor));
    j.key("partitions").value(o.partitions).key("segment_size").value(o.segment_size);
    j.key("ring_segments").value(o.ring_segments).key("policy").value(policy);
    j.key("max_record_size").value(o.max_record_size).key("claim_timeout_ms").value(o.claim_timeout.count());
    j.key("checksums").value(o.checksums).key("shm_bytes").value(info.shm_bytes);
    j.key("durability").value(durability_name(o.durability));
    if (o.durability != Durability::kNone) {
      j.key("keeper_pid").value(info.keeper_pid).key("keeper_alive").value(info.keeper_alive);
      j.key("keeper_takeovers").value(info.keeper_takeovers);
    }
    j.key("partition_offsets").begin_array();
    for (const auto& p : info.partitions) {
      j.begin_object().key("partition").value(p.index).key("earliest_offset").value(p.earliest_offset);
      j.key("end_offset").value(p.end_offset).key("writers").value(p.writers).key("exclusive").value(p.exclusive);
      if (p.counted) j.key("appends").value(p.appends).key("bytes").value(p.bytes);
      if (o.durability != Durability::kNone) {
        j.key("disk_start").value(p.disk_start).key("written_offset").value(p.written_offset);
        j.key("durable_offset").value(p.durable_offset).key("disk_bytes").value(p.disk_bytes);
        j.key("disk_segments").value(p.disk_segments).key("fsyncs").value(p.fsyncs);
        j.key("disk_full").value(p.disk_full).key("io_errors").value(p.io_errors).key("flush_errno").value(p.flush_errno);
      }
      j.end_object();
    }
    j.end_array().key("producers").begin_array();
    for (const auto& p : info.producers) {
      j.begin_object().key("id").value(p.id).key("name").value(p.name).key("pid").value(p.pid);
      j.key("alive").value(p.alive).key("exclusive").value(p.exclusive).key("appends").value(p.appends);
      j.key("bytes").value(p.bytes).key("idempotent").value(p.idempotent).key("epoch").value(p.epoch);
      if (p.last_sequence) j.key("last_sequence").value(*p.last_sequence);
      if (!p.transaction.empty()) j.key("transaction").value(p.transaction).key("transaction_epoch").value(p.transaction_epoch);
      j.end_object();
    }
    j.end_array().key("groups").begin_array();
    for (const auto& g : info.groups) j.value(g.name);
    j.end_array().end_object();
    std::printf("%s\n", j.str().c_str());
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
  std::printf("policy         %s\n", policy);
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
    Json j;
    j.begin_array();
    for (const auto& g : info.groups) {
      j.begin_object().key("group").value(g.name).key("members").value(g.members);
      j.key("partitions").begin_array();
      for (const auto& p : g.partitions) {
        j.begin_object().key("partition").value(p.partition).key("committed_offset").value(p.committed_offset);
        j.key("end_offset").value(p.end_offset).key("lag_bytes").value(p.lag_bytes);
        j.key("lag_records").value(p.lag_records).key("owner").value(p.owner).end_object();
      }
      j.end_array().end_object();
    }
    j.end_array();
    std::printf("%s\n", j.str().c_str());
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
