// Small RAII wrappers over librdkafka's C API, for the bridge's sources
// in this folder (nothing else sees librdkafka). Every error becomes a
// Status whose message names what failed and librdkafka's reason.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shmlog/status.h"

namespace shmlog::bridge::kafka {

using Properties = std::vector<std::pair<std::string, std::string>>;

struct ClientDeleter {
  void operator()(rd_kafka_t* rk) const noexcept { rd_kafka_destroy(rk); }
};
struct TopicDeleter {
  void operator()(rd_kafka_topic_t* rkt) const noexcept { rd_kafka_topic_destroy(rkt); }
};
struct HeadersDeleter {
  void operator()(rd_kafka_headers_t* h) const noexcept { rd_kafka_headers_destroy(h); }
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const noexcept { rd_kafka_message_destroy(m); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const noexcept { rd_kafka_topic_partition_list_destroy(l); }
};
using Client = std::unique_ptr<rd_kafka_t, ClientDeleter>;
using Topic = std::unique_ptr<rd_kafka_topic_t, TopicDeleter>;
using Headers = std::unique_ptr<rd_kafka_headers_t, HeadersDeleter>;
using Message = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

// What librdkafka tells a client's owner besides messages: errors (its
// error callback) and, every statistics.interval.ms, the requests it sent
// again and a consumer's lag (its statistics). Both callbacks run in the
// thread that polls the client.
class ClientCounters {
 public:
  std::uint64_t errors() const { return errors_; }
  std::uint64_t retries() const { return retries_; }
  std::int64_t consumer_lag() const { return consumer_lag_; }  // -1: not known yet
  void count_error() { ++errors_; }
  // librdkafka's statistics JSON: txretries summed over the brokers, and
  // the consumer_lag of the topics' partitions summed (where known).
  void read_statistics(std::string_view json);

 private:
  std::uint64_t errors_ = 0;
  std::uint64_t retries_ = 0;
  std::int64_t consumer_lag_ = -1;
};

// Called by rd_kafka_poll (in the polling thread) for each produced
// message; its opaque is the client's ClientCounters.
using DeliveryCallback = void (*)(rd_kafka_t*, const rd_kafka_message_t*, void* opaque);

// A producer or consumer client from `properties`, applied in order (later
// ones win). With `counters`, librdkafka's errors and statistics go there
// (and it is the opaque `on_delivery` gets). The error names the property
// librdkafka refused.
Result<Client> make_client(rd_kafka_type_t type, const Properties& properties, ClientCounters* counters = nullptr,
                           DeliveryCallback on_delivery = nullptr);
Result<Topic> make_topic(rd_kafka_t* rk, const std::string& name);

// The partition count of `topic`, or an error naming the topic (missing,
// not authorized) or the brokers (unreachable within `timeout`).
Result<std::int32_t> partition_count(rd_kafka_t* rk, rd_kafka_topic_t* topic, std::chrono::milliseconds timeout);

struct Watermarks {
  std::int64_t low = 0;
  std::int64_t high = 0;  // the offset the next message will get
};
Result<Watermarks> watermarks(rd_kafka_t* rk, const std::string& topic, std::int32_t partition,
                              std::chrono::milliseconds timeout);

// The message at `offset` of `partition` (legacy simple consumer: no group).
Result<Message> read_message(rd_kafka_topic_t* topic, std::int32_t partition, std::int64_t offset,
                             std::chrono::milliseconds timeout);

// The last value of header `name`, if the message has one.
std::optional<std::string_view> header(const rd_kafka_message_t* message, const char* name);

// librdkafka's text for `err`.
std::string error_text(rd_kafka_resp_err_t err);

}  // namespace shmlog::bridge::kafka
