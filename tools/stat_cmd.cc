#include "stat_cmd.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "bridge_stats.h"
#include "command.h"
#include "shmlog/log.h"
#include "shmlog/shm/process.h"

namespace shmlog::tools {
namespace {

struct StatArgs {
  std::string log;
  std::uint32_t interval_ms = 1000;
  std::uint64_t count = 0;  // intervals to print; 0: until interrupted
  bool json = false;
};

double rate(std::uint64_t now, std::uint64_t before, double seconds) {
  return now >= before && seconds > 0 ? static_cast<double>(now - before) / seconds : 0.0;
}

using ProducersById = std::map<std::uint16_t, LogInfo::ProducerInfo>;

// `p` as it was at the last update (`previous`); `p` itself if it is new.
const LogInfo::ProducerInfo& earlier(const ProducersById& previous, const LogInfo::ProducerInfo& p) {
  const auto it = previous.find(p.id);
  return it != previous.end() ? it->second : p;
}

// Bridges' records at the last update, by stats file.
using RecordsByFile = std::map<std::string, std::uint64_t>;

double bridge_rate(const FoundBridge& b, const RecordsByFile& before, double seconds) {
  const auto it = before.find(b.file);
  return it == before.end() ? 0.0 : rate(b.stats->stats.records, it->second, seconds);
}

Json bridges_json(const std::vector<FoundBridge>& bridges, const RecordsByFile& before, double seconds) {
  Json all = Json::array();
  for (const auto& b : bridges) {
    if (!b.stats.ok()) {
      all.push_back(Json{{"file", b.file}, {"error", b.stats.status().message()}});
      continue;
    }
    const auto& f = b.stats.value();
    all.push_back(Json{{"file", b.file},
                       {"direction", f.direction},
                       {"topic", f.topic},
                       {"up", b.up},
                       {"pid", f.pid},
                       {"updated_ns", f.updated_ns},
                       {"records", f.stats.records},
                       {"records_per_s", bridge_rate(b, before, seconds)},
                       {"duplicates", f.stats.duplicates},
                       {"kafka_errors", f.stats.kafka_errors},
                       {"kafka_retries", f.stats.kafka_retries},
                       {"lag", f.stats.lag},
                       {"age_ms", f.stats.age_ms}});
  }
  return all;
}

void print_bridges(const std::vector<FoundBridge>& bridges, const RecordsByFile& before, double seconds) {
  if (bridges.empty()) return;
  std::printf("\n%-10s %-20s %-5s %12s %14s %10s %10s %8s %8s\n", "BRIDGE", "TOPIC", "STATE", "RECORDS/S", "RECORDS",
              "LAG(REC)", "AGE(MS)", "ERRORS", "RETRIES");
  for (const auto& b : bridges) {
    if (!b.stats.ok()) {
      std::printf("%s\n", b.stats.status().message().c_str());
      continue;
    }
    const auto& f = b.stats.value();
    std::printf("%-10s %-20s %-5s %12.0f %14" PRIu64 " %10" PRId64 " %10" PRId64 " %8" PRIu64 " %8" PRIu64 "\n",
                f.direction.c_str(), f.topic.c_str(), b.up ? "up" : "down", bridge_rate(b, before, seconds),
                f.stats.records, f.stats.lag, f.stats.age_ms, f.stats.kafka_errors, f.stats.kafka_retries);
  }
}

RecordsByFile records_by_file(const std::vector<FoundBridge>& bridges) {
  RecordsByFile records;
  for (const auto& b : bridges) {
    if (b.stats.ok()) records[b.file] = b.stats->stats.records;
  }
  return records;
}

// One --json line: counters now, rates since `before` (`previous`: its
// producers by id).
Json stat_json(const LogInfo& info, const LogInfo& before, const ProducersById& previous, std::uint64_t time_ns,
               double seconds) {
  Json partitions = Json::array();
  for (std::size_t i = 0; i < info.partitions.size(); ++i) {
    const auto& p = info.partitions[i];
    Json part = {{"partition", p.index},
                 {"end_offset", p.end_offset},
                 {"bytes_per_s", rate(p.end_offset, before.partitions[i].end_offset, seconds)}};
    if (p.counted) {
      part.update(Json{{"appends", p.appends}, {"appends_per_s", rate(p.appends, before.partitions[i].appends, seconds)}});
    }
    part.update(Json{{"abandoned_claims", p.abandoned_claims}});
    partitions.push_back(std::move(part));
  }
  Json producers = Json::array();
  for (const auto& p : info.producers) {
    const auto& b = earlier(previous, p);
    producers.push_back(Json{{"id", p.id},
                             {"name", p.name},
                             {"pid", p.pid},
                             {"appends", p.appends},
                             {"appends_per_s", rate(p.appends, b.appends, seconds)},
                             {"bytes_per_s", rate(p.bytes, b.bytes, seconds)},
                             {"revoked", p.revoked},
                             {"backpressure_waits", p.backpressure_waits},
                             {"backpressure_wait_ns", p.backpressure_wait_ns},
                             {"wakeups", p.wakeups}});
  }
  Json groups = Json::array();
  for (const auto& g : info.groups) {
    for (const auto& gp : g.partitions) {
      groups.push_back(Json{{"group", g.name},
                            {"partition", gp.partition},
                            {"committed_offset", gp.committed_offset},
                            {"lag_records", gp.lag_records},
                            {"lag_bytes", gp.lag_bytes},
                            {"lag_ns", gp.lag_ns},
                            {"lost_bytes", gp.lost_bytes}});
    }
  }
  return {{"log", info.path},
          {"time_ns", time_ns},
          {"interval_s", seconds},
          {"partitions", std::move(partitions)},
          {"producers", std::move(producers)},
          {"groups", std::move(groups)}};
}

int run_stat(const StatArgs& a, volatile std::sig_atomic_t* interrupted) {
  auto log = Log::attach(a.log);
  if (!log.ok()) {
    std::fprintf(stderr, "shmlog stat: %s\n", log.status().message().c_str());
    return 1;
  }
  if (a.interval_ms < 10) {
    std::fprintf(stderr, "shmlog stat: --interval must be at least 10 ms\n");
    return 1;
  }
  const bool tty = ::isatty(STDOUT_FILENO) != 0 && !a.json;
  LogInfo before = log->info();
  RecordsByFile bridged_before = records_by_file(find_bridges(a.log));
  std::uint64_t t_before = realtime_ns();
  for (std::uint64_t n = 0; (a.count == 0 || n < a.count) && !*interrupted; ++n) {
    shm::sleep_for(std::chrono::milliseconds(a.interval_ms));
    const LogInfo info = log->info();
    const std::uint64_t t = realtime_ns();
    const double seconds = static_cast<double>(t - t_before) / 1e9;
    ProducersById previous;
    for (const auto& p : before.producers) previous[p.id] = p;
    const std::vector<FoundBridge> bridges = find_bridges(a.log);
    if (a.json) {
      Json line = stat_json(info, before, previous, t, seconds);
      line["bridges"] = bridges_json(bridges, bridged_before, seconds);
      print_json(line);
    } else {
      if (tty) std::printf("\x1b[H\x1b[2J");  // redraw in place, like top
      std::printf("shmlog stat %s   every %u ms\n\n", info.path.c_str(), a.interval_ms);
      std::printf("%-10s %16s %12s %14s %12s %10s\n", "PARTITION", "END", "MB/S", "APPENDS", "APPENDS/S", "ABANDONED");
      for (std::size_t i = 0; i < info.partitions.size(); ++i) {
        const auto& p = info.partitions[i];
        std::printf("%-10u %16" PRIu64 " %12.2f %14" PRIu64 " %12.0f %10" PRIu64 "\n", p.index, p.end_offset,
                    rate(p.end_offset, before.partitions[i].end_offset, seconds) / 1e6, p.appends,
                    rate(p.appends, before.partitions[i].appends, seconds), p.abandoned_claims);
      }
      std::printf("\n%-4s %-20s %8s %12s %10s %10s %12s %8s\n", "ID", "PRODUCER", "PID", "APPENDS/S", "MB/S", "BP-WAITS",
                  "BP-WAIT-MS", "WAKEUPS");
      for (const auto& p : info.producers) {
        const auto& b = earlier(previous, p);
        std::printf("%-4u %-20s %8u %12.0f %10.2f %10" PRIu64 " %12.1f %8" PRIu64 "\n", p.id, p.name.c_str(), p.pid,
                    rate(p.appends, b.appends, seconds), rate(p.bytes, b.bytes, seconds) / 1e6, p.backpressure_waits,
                    static_cast<double>(p.backpressure_wait_ns) / 1e6, p.wakeups);
      }
      std::printf("\n%-20s %9s %12s %12s %12s\n", "GROUP", "PARTITION", "LAG(REC)", "LAG(MS)", "LOST(B)");
      for (const auto& g : info.groups) {
        for (const auto& gp : g.partitions) {
          std::printf("%-20s %9u %12" PRIu64 " %12.3f %12" PRIu64 "\n", g.name.c_str(), gp.partition, gp.lag_records,
                      static_cast<double>(gp.lag_ns) / 1e6, gp.lost_bytes);
        }
      }
      print_bridges(bridges, bridged_before, seconds);
    }
    std::fflush(stdout);
    before = info;
    bridged_before = records_by_file(bridges);
    t_before = t;
  }
  return 0;
}

}  // namespace

void add_stat_command(CLI::App& app) {
  auto a = std::make_shared<StatArgs>();
  auto* stat = app.add_subcommand("stat", "Live counters of a log: rates, lag, stalls (attaches read-only)");
  stat->add_option("LOG", a->log, "Log directory")->required();
  stat->add_option("--interval", a->interval_ms, "Milliseconds between updates")->capture_default_str();
  stat->add_option("--count", a->count, "Stop after this many updates");
  stat->add_flag("--json", a->json, "One JSON object per update");
  set_action(stat, [a] { return run_stat(*a, &g_interrupted); });
}

}  // namespace shmlog::tools
