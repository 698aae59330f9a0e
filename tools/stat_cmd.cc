#include "stat_cmd.h"

#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "command.h"
#include "json.h"
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
  std::uint64_t t_before = realtime_ns();
  for (std::uint64_t n = 0; (a.count == 0 || n < a.count) && !*interrupted; ++n) {
    shm::sleep_for(std::chrono::milliseconds(a.interval_ms));
    const LogInfo info = log->info();
    const std::uint64_t t = realtime_ns();
    const double seconds = static_cast<double>(t - t_before) / 1e9;
    std::map<std::uint16_t, LogInfo::ProducerInfo> previous;
    for (const auto& p : before.producers) previous[p.id] = p;
    if (a.json) {
      Json j;
      j.begin_object().key("log").value(info.path).key("time_ns").value(t).key("interval_s").value(seconds);
      j.key("partitions").begin_array();
      for (std::size_t i = 0; i < info.partitions.size(); ++i) {
        const auto& p = info.partitions[i];
        j.begin_object().key("partition").value(p.index).key("end_offset").value(p.end_offset);
        j.key("bytes_per_s").value(rate(p.end_offset, before.partitions[i].end_offset, seconds));
        if (p.counted) {
          j.key("appends").value(p.appends).key("appends_per_s").value(rate(p.appends, before.partitions[i].appends, seconds));
        }
        j.key("abandoned_claims").value(p.abandoned_claims).end_object();
      }
      j.end_array().key("producers").begin_array();
      for (const auto& p : info.producers) {
        const auto& b = previous.count(p.id) ? previous[p.id] : p;
        j.begin_object().key("id").value(p.id).key("name").value(p.name).key("pid").value(p.pid);
        j.key("appends").value(p.appends).key("appends_per_s").value(rate(p.appends, b.appends, seconds));
        j.key("bytes_per_s").value(rate(p.bytes, b.bytes, seconds)).key("revoked").value(p.revoked);
        j.key("backpressure_waits").value(p.backpressure_waits).key("backpressure_wait_ns").value(p.backpressure_wait_ns);
        j.key("wakeups").value(p.wakeups).end_object();
      }
      j.end_array().key("groups").begin_array();
      for (const auto& g : info.groups) {
        for (const auto& gp : g.partitions) {
          j.begin_object().key("group").value(g.name).key("partition").value(gp.partition);
          j.key("committed_offset").value(gp.committed_offset).key("lag_records").value(gp.lag_records);
          j.key("lag_bytes").value(gp.lag_bytes).key("lag_ns").value(gp.lag_ns).key("lost_bytes").value(gp.lost_bytes);
          j.end_object();
        }
      }
      j.end_array().end_object();
      std::printf("%s\n", j.str().c_str());
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
        const auto& b = previous.count(p.id) ? previous[p.id] : p;
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
    }
    std::fflush(stdout);
    before = info;
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
