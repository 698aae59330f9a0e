#include "exporter_cmd.h"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "bridge_stats.h"
#include "command.h"
#include "shmlog/log.h"
#include "shmlog/shm/process.h"

namespace shmlog::tools {
namespace {

struct ExporterArgs {
  std::vector<std::string> logs;
  std::string listen = "127.0.0.1:9464";
};

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

class LogCollector : public prometheus::Collectable {
 public:
  explicit LogCollector(std::vector<Log> logs) : logs_(std::move(logs)) {}

  std::vector<MetricFamily> Collect() const override {
    Families f;
    for (const auto& log : logs_) {
      const LogInfo info = log.info();
      const ClientMetric::Label l{"log", info.path};
      for (const auto& p : info.partitions) {
        const ClientMetric::Label part{"partition", std::to_string(p.index)};
        f.gauge("shmlog_partition_end_offset", "Where the next record of the partition starts (bytes)", {l, part},
                static_cast<double>(p.end_offset));
        f.counter("shmlog_claims_abandoned_total", "Claims of dead or stalled producers turned into abandoned records",
                  {l, part}, static_cast<double>(p.abandoned_claims));
        if (p.counted) {
          f.counter("shmlog_partition_records_appended_total",
                    "Records appended to the partition by every producer, also those that exited", {l, part},
                    static_cast<double>(p.appends));
          f.counter("shmlog_partition_bytes_appended_total",
                    "Key and value bytes appended to the partition by every producer, also those that exited",
                    {l, part}, static_cast<double>(p.bytes));
        }
        if (info.options.durability == Durability::kNone) continue;
        f.gauge("shmlog_partition_durable_offset", "Where the partition's durable records end (bytes)", {l, part},
                static_cast<double>(p.durable_offset));
        f.counter("shmlog_disk_full_total", "Times a write or preallocation of a segment file found no space", {l, part},
                  static_cast<double>(p.disk_full));
        f.counter("shmlog_io_errors_total", "Failed writes or syncs of segment files (other than no space)", {l, part},
                  static_cast<double>(p.io_errors));
        f.counter("shmlog_fsyncs_total", "fdatasyncs of segment files", {l, part}, static_cast<double>(p.fsyncs));
      }
      if (info.options.durability != Durability::kNone) {
        f.gauge("shmlog_keeper_up", "1 while a live process holds the durable log's keeper lease", {l},
                info.keeper_alive ? 1 : 0);
        const std::uint64_t now = realtime_ns();
        const std::uint64_t beat = info.keeper_heartbeat_ns;
        const double heartbeat_age = beat == 0 || beat > now ? 0 : static_cast<double>(now - beat) / 1e9;
        f.gauge("shmlog_keeper_heartbeat_age_seconds", "Since the keeper's last heartbeat", {l}, heartbeat_age);
      }
      for (const auto& p : info.producers) {
        const std::vector<ClientMetric::Label> labels = {l, {"producer_id", std::to_string(p.id)}, {"producer", p.name}};
        f.counter("shmlog_records_appended_total", "Records appended by this instance of the producer (a restart counts anew)", labels, static_cast<double>(p.appends));
        f.counter("shmlog_bytes_appended_total", "Key and value bytes appended by the producer", labels,
                  static_cast<double>(p.bytes));
        f.counter("shmlog_claims_revoked_total", "Claims of the producer abandoned after the claim timeout", labels,
                  static_cast<double>(p.revoked));
        f.counter("shmlog_backpressure_waits_total", "Times the producer waited for ring space", labels,
                  static_cast<double>(p.backpressure_waits));
        f.counter("shmlog_backpressure_wait_seconds_total", "Time the producer waited for ring space", labels,
                  static_cast<double>(p.backpressure_wait_ns) / 1e9);
        f.counter("shmlog_consumer_wakeups_total", "Futex wake-ups of sleeping consumers by the producer", labels,
                  static_cast<double>(p.wakeups));
      }
      for (const auto& b : find_bridges(log.path())) {
        if (!b.stats.ok()) continue;  // `shmlog stat` names the file and what is wrong with it
        const auto& bs = b.stats->stats;
        const std::vector<ClientMetric::Label> labels = {l, {"direction", b.stats->direction},
                                                         {"topic", b.stats->topic}};
        f.gauge("shmlog_bridge_up", "1 while the bridge's process lives and updates its counters", labels,
                b.up ? 1 : 0);
        f.counter("shmlog_bridge_records_total",
                  "Records bridged since the bridge started: acknowledged by Kafka, or appended to the log", labels,
                  static_cast<double>(bs.records));
        f.counter("shmlog_bridge_duplicates_total", "Records from Kafka already in the log", labels,
                  static_cast<double>(bs.duplicates));
        f.counter("shmlog_bridge_kafka_errors_total", "Errors librdkafka reported: connections, brokers, requests",
                  labels, static_cast<double>(bs.kafka_errors));
        f.counter("shmlog_bridge_kafka_retries_total", "Requests librdkafka sent again", labels,
                  static_cast<double>(bs.kafka_retries));
        if (bs.lag >= 0) {
          f.gauge("shmlog_bridge_lag_records",
                  "Records behind: sent to Kafka and not acknowledged, or Kafka's consumer lag", labels,
                  static_cast<double>(bs.lag));
        }
        if (bs.age_ms >= 0) {
          f.gauge("shmlog_bridge_age_seconds", "End to end, of the last record bridged: from its timestamp", labels,
                  static_cast<double>(bs.age_ms) / 1e3);
        }
      }
      for (const auto& g : info.groups) {
        for (const auto& gp : g.partitions) {
          const std::vector<ClientMetric::Label> labels = {l, {"group", g.name}, {"partition", std::to_string(gp.partition)}};
          f.gauge("shmlog_group_committed_offset", "The group's committed offset (bytes)", labels,
                  static_cast<double>(gp.committed_offset));
          f.gauge("shmlog_group_lag_records", "Records after the group's committed offset", labels,
                  static_cast<double>(gp.lag_records));
          f.gauge("shmlog_group_lag_seconds", "Age of the oldest record the group has not consumed", labels,
                  static_cast<double>(gp.lag_ns) / 1e9);
          f.counter("shmlog_group_lost_bytes_total", "Bytes the group skipped because the ring lapped it", labels,
                    static_cast<double>(gp.lost_bytes));
        }
      }
    }
    return f.families;
  }

 private:
  // Families by name, in first-use order.
  struct Families {
    std::vector<MetricFamily> families;
    MetricFamily& family(const std::string& name, const std::string& help, MetricType type) {
      for (auto& fam : families) {
        if (fam.name == name) return fam;
      }
      families.push_back(MetricFamily{name, help, type, {}});
      return families.back();
    }
    void counter(const std::string& name, const std::string& help, std::vector<ClientMetric::Label> labels, double v) {
      ClientMetric m;
      m.label = std::move(labels);
      m.counter.value = v;
      family(name, help, MetricType::Counter).metric.push_back(std::move(m));
    }
    void gauge(const std::string& name, const std::string& help, std::vector<ClientMetric::Label> labels, double v) {
      ClientMetric m;
      m.label = std::move(labels);
      m.gauge.value = v;
      family(name, help, MetricType::Gauge).metric.push_back(std::move(m));
    }
  };
  std::vector<Log> logs_;
};

int run_exporter(const ExporterArgs& a, volatile std::sig_atomic_t* interrupted) {
  std::vector<Log> logs;
  for (const auto& path : a.logs) {
    auto log = Log::attach(path);
    if (!log.ok()) {
      std::fprintf(stderr, "shmlog exporter: %s\n", log.status().message().c_str());
      return 1;
    }
    logs.push_back(std::move(log).value());
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(a.listen);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmlog exporter: cannot listen on %s: %s\n", a.listen.c_str(), e.what());
    return 1;
  }
  auto collector = std::make_shared<LogCollector>(std::move(logs));
  exposer->RegisterCollectable(collector);
  std::fprintf(stderr, "shmlog exporter: serving %zu log(s) at http://%s/metrics\n", a.logs.size(), a.listen.c_str());
  while (!*interrupted) shm::sleep_for(std::chrono::milliseconds(100));
  return 0;
}

}  // namespace

void add_exporter_command(CLI::App& app) {
  auto a = std::make_shared<ExporterArgs>();
  auto* exporter = app.add_subcommand("exporter", "Serve logs' counters at /metrics for Prometheus");
  exporter->add_option("LOG", a->logs, "Log directories")->required();
  exporter->add_option("--listen", a->listen, "ADDR:PORT to serve on")->capture_default_str();
  set_action(exporter, [a] { return run_exporter(*a, &g_interrupted); });
}

}  // namespace shmlog::tools
