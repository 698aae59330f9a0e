// The bridge from a Kafka topic into a shmlog log, exactly once
// (`shmlog bridge from-kafka`).
//
// Partitions map 1:1. Kafka partition p is appended to log partition p
// by an idempotent shmlog producer of its own, named
// "kafka:TOPIC:p" (see producer_name), whose sequence number for each
// record is the record's Kafka offset: the log is the truth. A (re)start
// opens each producer, which learns the last sequence that reached the
// log (also when the bridge died right after an append), and reads Kafka
// from the offset after it; a record appended again is a kDuplicate and
// writes nothing. The Kafka consumer group's offsets are committed after
// the appends, as a hint (`kafka-consumer-groups` shows the lag; a log
// holding none of a partition's records resumes there). Records carry
// their key, value and timestamp (Kafka's milliseconds).
//
// Contract: the bridge is the log's only writer under those producer
// names (a second bridge on the same log and topic is refused by a lock
// file in the log's directory; a named producer also fences an older
// instance), and the topic has as many partitions as the log.
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

struct FromKafkaOptions {
  std::string bootstrap;  // HOST:PORT[,HOST:PORT...]
  std::string topic;
  std::string group;  // the Kafka consumer group (required)
  std::string log;    // the log directory
  // Connecting, reading the topic's metadata and the group's offsets, and
  // the last commit each wait at most this long.
  std::chrono::milliseconds timeout{10000};
  // How often the Kafka group's offsets are committed (a hint).
  std::chrono::milliseconds commit_interval{1000};
  // >= 0: stop once every partition was read to its end and no record
  // arrived for this long (tests, one-shot imports).
  std::chrono::milliseconds idle_exit{-1};
  // librdkafka properties (security, tuning), applied after ours.
  std::vector<std::pair<std::string, std::string>> properties;
  // One line each: the bridge runs (connected and resumed), and records
  // Kafka deleted before they reached the log. Called on the bridge's thread.
  std::function<void(const std::string&)> note = [](const std::string&) {};
  // Every stats_interval, and once at the end: the bridge's counters.
  // Called on the bridge's thread.
  std::chrono::milliseconds stats_interval{1000};
  std::function<void(const BridgeStats&)> on_stats = [](const BridgeStats&) {};
};

struct FromKafkaReport {
  std::uint64_t appended = 0;
  std::uint64_t duplicates = 0;  // records already in the log (kDuplicate)
};

// Runs until `*stop` becomes non-zero (then commits the Kafka offsets) or
// an error: unreachable brokers, a missing or mismatched topic, a record
// the log cannot hold, another bridge holding the lock or fencing this
// one. `report` may be null.
Status run_from_kafka(const FromKafkaOptions& options, const volatile std::sig_atomic_t* stop,
                      FromKafkaReport* report);

// The producer id that appends Kafka partition `partition` of `topic`:
// "kafka:TOPIC:P", or, where that exceeds 63 bytes, the topic's first 28
// bytes and a hash of the whole name in its place.
std::string producer_name(const std::string& topic, std::int32_t partition);

}  // namespace shmlog::bridge
