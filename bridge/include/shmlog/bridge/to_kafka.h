// The bridge from a shmlog log to a Kafka topic, exactly once without
// Kafka transactions (`shmlog bridge to-kafka`).
//
// Partitions map 1:1. Each Kafka record carries its source in headers:
//   shmlog.log          the log's id (16 hex digits)
//   shmlog.partition    shmlog.offset    shmlog.next_offset
//   shmlog.producer     "ID.EPOCH" of the shmlog producer
//   shmlog.sequence     its sequence number
// (decimal text). The producer is idempotent and gapless, so within one
// run Kafka holds a prefix of what was sent, in order, once. Kafka is the
// truth: a (re)start reads the last record of each Kafka partition and
// resumes the log right after the shmlog offset it names. The consumer
// group's offsets in the log are committed only after Kafka acknowledged
// the records, as a hint (lag in `shmlog groups`, room in the ring).
//
// Contract: the bridge is the only writer of the topic (a second bridge
// on the same log and topic is refused by a lock file in the log's
// directory), and the topic has as many partitions as the log.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "shmlog/bridge/stats.h"
#include "shmlog/status.h"

namespace shmlog::bridge {

struct ToKafkaOptions {
  std::string log;        // the log directory
  std::string bootstrap;  // HOST:PORT[,HOST:PORT...]
  std::string topic;
  std::string group;          // empty: "kafka-" + topic
  std::uint32_t batch = 256;  // records per poll of the log
  std::uint32_t linger_ms = 5;
  // Connecting, reading the topic's metadata and last records, and the
  // final flush each wait at most this long.
  std::chrono::milliseconds timeout{10000};
  // >= 0: stop once everything was acknowledged and no record arrived for
  // this long (tests, one-shot exports).
  std::chrono::milliseconds idle_exit{-1};
  // librdkafka properties (security, tuning), applied after ours.
  std::vector<std::pair<std::string, std::string>> properties;
  // One line each: the bridge runs (connected and resumed), and records
  // lost in the log before they reached Kafka (an overwrite ring that
  // lapped the bridge, damage). Called on the bridge's thread.
  std::function<void(const std::string&)> note = [](const std::string&) {};
  // Every stats_interval, and once at the end: the bridge's counters.
  // Called on the bridge's thread.
  std::chrono::milliseconds stats_interval{1000};
  std::function<void(const BridgeStats&)> on_stats = [](const BridgeStats&) {};
};

struct ToKafkaReport {
  std::uint64_t sent = 0;
  std::uint64_t acknowledged = 0;
};

// Runs until `*stop` becomes non-zero (then flushes what was sent) or an
// error: unreachable brokers, a missing or mismatched topic, a refused
// delivery, another bridge holding the lock. `report` may be null.
Status run_to_kafka(const ToKafkaOptions& options, const volatile std::sig_atomic_t* stop, ToKafkaReport* report);

// "kafka-" + topic: the default consumer group.
std::string default_group(const std::string& topic);

}  // namespace shmlog::bridge
