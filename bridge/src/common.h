// What both directions of the bridge share: Kafka topic names, the lock
// that makes a bridge the only one on its log and topic, the properties
// exactly-once rests on, and the client properties both start from.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "kafka.h"
#include "shmlog/status.h"

namespace shmlog::bridge {

// Kafka's legal topic names, which also makes the name safe in a file name.
Status check_topic_name(const std::string& topic);

// Held while the bridge runs; the kernel drops the flock when it dies.
class TopicLock {
 public:
  explicit TopicLock(int fd) : fd_(fd) {}
  TopicLock(TopicLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  TopicLock& operator=(TopicLock&&) = delete;
  ~TopicLock();

 private:
  int fd_;
};

// Locks `log`/`file`, or kBusy naming `who` ("a bridge to Kafka topic 't'").
Result<TopicLock> lock_topic(const std::string& log, const std::string& file, const std::string& who);

// Refuses a --property whose key is one of `ours`.
Status check_properties(const kafka::Properties& properties, std::span<const std::string_view> ours);

// Waits up to `timeout` for the metadata of `topic` (on `rk`, connected to
// `bootstrap`) and checks that it has as many partitions as the log.
Status check_partition_count(rd_kafka_t* rk, rd_kafka_topic_t* topic, const std::string& bootstrap,
                             const std::string& log, std::uint32_t partitions, std::chrono::milliseconds timeout);

// CLOCK_REALTIME in milliseconds, as Kafka's timestamps are.
std::int64_t unix_ms();

// bootstrap.servers, quiet logging and the connection timeout.
kafka::Properties client_properties(const std::string& bootstrap, std::chrono::milliseconds timeout);

}  // namespace shmlog::bridge
