#include "bridge_cmd.h"

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "shmlog/bridge/to_kafka.h"

namespace shmlog::tools {
namespace {

struct ToKafkaArgs {
  bridge::ToKafkaOptions options;
  std::vector<std::string> properties;  // key=value
  std::int64_t timeout_ms = 10000;
  std::int64_t idle_exit_ms = -1;
};

int failed(const std::string& what) {
  std::fprintf(stderr, "shmlog bridge to-kafka: %s\n", what.c_str());
  return 1;
}

int run_to_kafka(ToKafkaArgs& a) {
  for (const auto& p : a.properties) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) return failed("--property " + p + ": expected key=value");
    a.options.properties.emplace_back(p.substr(0, eq), p.substr(eq + 1));
  }
  if (a.timeout_ms < 1) return failed("--timeout-ms must be at least 1");
  a.options.timeout = std::chrono::milliseconds(a.timeout_ms);
  a.options.idle_exit = std::chrono::milliseconds(a.idle_exit_ms);
  a.options.note = [](const std::string& line) { std::fprintf(stderr, "shmlog bridge to-kafka: %s\n", line.c_str()); };
  bridge::ToKafkaReport report;
  const Status s = bridge::run_to_kafka(a.options, &g_interrupted, &report);
  if (!s.ok()) return failed(s.message());
  std::fprintf(stderr, "shmlog bridge to-kafka: %" PRIu64 " records sent, %" PRIu64 " acknowledged\n", report.sent,
               report.acknowledged);
  return 0;  // SIGINT and SIGTERM included: what was sent is flushed
}

}  // namespace

void add_bridge_command(CLI::App& app) {
  auto* bridge = app.add_subcommand("bridge", "Bridge a log to another system (Kafka)");
  bridge->require_subcommand(1);
  auto a = std::make_shared<ToKafkaArgs>();
  auto& o = a->options;
  auto* to = bridge->add_subcommand("to-kafka", "Produce a log's records to a Kafka topic exactly once");
  to->add_option("LOG", o.log, "Log to read")->required();
  to->add_option("--bootstrap", o.bootstrap, "Kafka brokers, HOST:PORT[,HOST:PORT...]")->required();
  to->add_option("--topic", o.topic, "Kafka topic, with as many partitions as the log")->required();
  to->add_option("--group", o.group, "Consumer group in LOG (default: kafka-TOPIC)");
  to->add_option("--batch", o.batch, "Records per poll of the log")->capture_default_str();
  to->add_option("--linger-ms", o.linger_ms, "librdkafka's linger.ms")->capture_default_str();
  to->add_option("--property", a->properties, "librdkafka property key=value (repeatable)");
  to->add_option("--timeout-ms", a->timeout_ms, "Wait this long for the brokers (connect, metadata, flush)")
      ->capture_default_str();
  to->add_option("--idle-exit-ms", a->idle_exit_ms, "Exit once all is acknowledged and nothing arrived for this long");
  set_action(to, [a] { return run_to_kafka(*a); });
}

}  // namespace shmlog::tools
