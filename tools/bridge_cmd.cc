#include "bridge_cmd.h"

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bridge_stats.h"
#include "command.h"
#include "shmlog/bridge/from_kafka.h"
#include "shmlog/bridge/to_kafka.h"
#include "shmlog/io/files.h"
#include "shmlog/shm/process.h"

namespace shmlog::tools {
namespace {

// What both directions take besides their options.
struct CommonArgs {
  std::vector<std::string> properties;  // key=value
  std::int64_t timeout_ms = 10000;
  std::int64_t idle_exit_ms = -1;
};

struct ToKafkaArgs {
  bridge::ToKafkaOptions options;
  CommonArgs common;
};

struct FromKafkaArgs {
  bridge::FromKafkaOptions options;
  CommonArgs common;
  std::int64_t commit_interval_ms = 1000;
};

int failed(const char* command, const std::string& what) {
  std::fprintf(stderr, "shmlog bridge %s: %s\n", command, what.c_str());
  return 1;
}

// Parses the common arguments into `properties`, `timeout` and `idle_exit`;
// an error names the argument.
Status apply(const CommonArgs& a, std::vector<std::pair<std::string, std::string>>& properties,
             std::chrono::milliseconds& timeout, std::chrono::milliseconds& idle_exit) {
  for (const auto& p : a.properties) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status(Status::Code::kInvalidArgument, "--property " + p + ": expected key=value");
    }
    properties.emplace_back(p.substr(0, eq), p.substr(eq + 1));
  }
  if (a.timeout_ms < 1) return Status(Status::Code::kInvalidArgument, "--timeout-ms must be at least 1");
  timeout = std::chrono::milliseconds(a.timeout_ms);
  idle_exit = std::chrono::milliseconds(a.idle_exit_ms);
  return {};
}

void add_common(CLI::App* command, CommonArgs& a) {
  command->add_option("--property", a.properties, "librdkafka property key=value (repeatable)");
  command->add_option("--timeout-ms", a.timeout_ms, "Wait this long for the brokers (connect, metadata, flush)")
      ->capture_default_str();
  command->add_option("--idle-exit-ms", a.idle_exit_ms, "Exit once all is done and nothing arrived for this long");
}

// Keeps LOG/bridge-DIRECTION-TOPIC.stats current while the bridge runs
// (for `shmlog stat` and the exporter), and removes it at the end.
class StatsFile {
 public:
  StatsFile(const std::string& log, const char* direction, const std::string& topic)
      : path_(bridge_stats_path(log, direction, topic)) {
    const shm::ProcessId me = shm::self();
    file_.direction = direction;
    file_.topic = topic;
    file_.pid = me.pid;
    file_.start_time = me.start_time;
  }
  ~StatsFile() {
    if (written_) (void)io::remove_file(path_);
  }
  StatsFile(const StatsFile&) = delete;
  StatsFile& operator=(const StatsFile&) = delete;
  // The bridge's on_stats. A file that cannot be written costs the
  // counters, not the bridge: said once.
  void write(const bridge::BridgeStats& stats, const char* command) {
    file_.stats = stats;
    file_.updated_ns = realtime_ns();
    const Status s = write_bridge_stats(path_, file_);
    if (s.ok()) {
      written_ = true;
    } else if (!warned_) {
      warned_ = true;
      std::fprintf(stderr, "shmlog bridge %s: no counters for shmlog stat: %s\n", command, s.message().c_str());
    }
  }

 private:
  std::string path_;
  BridgeStatsFile file_;
  bool written_ = false;
  bool warned_ = false;
};

int run_to_kafka(ToKafkaArgs& a) {
  auto& o = a.options;
  if (Status s = apply(a.common, o.properties, o.timeout, o.idle_exit); !s.ok()) return failed("to-kafka", s.message());
  o.note = [](const std::string& line) { std::fprintf(stderr, "shmlog bridge to-kafka: %s\n", line.c_str()); };
  StatsFile stats(o.log, "to-kafka", o.topic);
  o.on_stats = [&stats](const bridge::BridgeStats& s) { stats.write(s, "to-kafka"); };
  bridge::ToKafkaReport report;
  const Status s = bridge::run_to_kafka(o, &g_interrupted, &report);
  if (!s.ok()) return failed("to-kafka", s.message());
  std::fprintf(stderr, "shmlog bridge to-kafka: %" PRIu64 " records sent, %" PRIu64 " acknowledged\n", report.sent,
               report.acknowledged);
  return 0;  // SIGINT and SIGTERM included: what was sent is flushed
}

int run_from_kafka(FromKafkaArgs& a) {
  auto& o = a.options;
  if (Status s = apply(a.common, o.properties, o.timeout, o.idle_exit); !s.ok()) {
    return failed("from-kafka", s.message());
  }
  if (a.commit_interval_ms < 1) return failed("from-kafka", "--commit-interval-ms must be at least 1");
  o.commit_interval = std::chrono::milliseconds(a.commit_interval_ms);
  o.note = [](const std::string& line) { std::fprintf(stderr, "shmlog bridge from-kafka: %s\n", line.c_str()); };
  StatsFile stats(o.log, "from-kafka", o.topic);
  o.on_stats = [&stats](const bridge::BridgeStats& s) { stats.write(s, "from-kafka"); };
  bridge::FromKafkaReport report;
  const Status s = bridge::run_from_kafka(o, &g_interrupted, &report);
  if (!s.ok()) return failed("from-kafka", s.message());
  std::fprintf(stderr, "shmlog bridge from-kafka: %" PRIu64 " records appended, %" PRIu64 " already in the log\n",
               report.appended, report.duplicates);
  return 0;  // SIGINT and SIGTERM included: the offsets are committed
}

}  // namespace

void add_bridge_command(CLI::App& app) {
  auto* bridge = app.add_subcommand("bridge", "Bridge a log to and from another system (Kafka)");
  bridge->require_subcommand(1);

  auto to_args = std::make_shared<ToKafkaArgs>();
  auto& t = to_args->options;
  auto* to = bridge->add_subcommand("to-kafka", "Produce a log's records to a Kafka topic exactly once");
  to->add_option("LOG", t.log, "Log to read")->required();
  to->add_option("--bootstrap", t.bootstrap, "Kafka brokers, HOST:PORT[,HOST:PORT...]")->required();
  to->add_option("--topic", t.topic, "Kafka topic, with as many partitions as the log")->required();
  to->add_option("--group", t.group, "Consumer group in LOG (default: kafka-TOPIC)");
  to->add_option("--batch", t.batch, "Records per poll of the log")->capture_default_str();
  to->add_option("--linger-ms", t.linger_ms, "librdkafka's linger.ms")->capture_default_str();
  add_common(to, to_args->common);
  set_action(to, [to_args] { return run_to_kafka(*to_args); });

  auto from_args = std::make_shared<FromKafkaArgs>();
  auto& f = from_args->options;
  auto* from = bridge->add_subcommand("from-kafka", "Append a Kafka topic's records to a log exactly once");
  from->add_option("--bootstrap", f.bootstrap, "Kafka brokers, HOST:PORT[,HOST:PORT...]")->required();
  from->add_option("--topic", f.topic, "Kafka topic, with as many partitions as the log")->required();
  from->add_option("--group", f.group, "Kafka consumer group whose offsets the bridge commits")->required();
  from->add_option("LOG", f.log, "Log to append to")->required();
  from->add_option("--commit-interval-ms", from_args->commit_interval_ms, "Commit Kafka offsets this often")
      ->capture_default_str();
  add_common(from, from_args->common);
  set_action(from, [from_args] { return run_from_kafka(*from_args); });
}

}  // namespace shmlog::tools
