#include "kafka.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>

namespace shmlog::bridge::kafka {
namespace {

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* c) const noexcept { rd_kafka_conf_destroy(c); }
};
using Conf = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

int millis(std::chrono::milliseconds t) { return static_cast<int>(t.count()); }

}  // namespace

std::string error_text(rd_kafka_resp_err_t err) { return rd_kafka_err2str(err); }

void ClientCounters::read_statistics(std::string_view json) {
  const nlohmann::json stats = nlohmann::json::parse(json, nullptr, false);
  if (!stats.is_object()) return;  // librdkafka's own output: not expected, and nothing to count
  std::uint64_t retries = 0;
  if (const auto brokers = stats.find("brokers"); brokers != stats.end() && brokers->is_object()) {
    for (const auto& broker : brokers->items()) {
      const auto r = broker.value().find("txretries");
      if (r != broker.value().end() && r->is_number_unsigned()) retries += r->get<std::uint64_t>();
    }
  }
  retries_ = retries;
  std::int64_t lag = -1;
  if (const auto topics = stats.find("topics"); topics != stats.end() && topics->is_object()) {
    for (const auto& topic : topics->items()) {
      const auto partitions = topic.value().find("partitions");
      if (partitions == topic.value().end() || !partitions->is_object()) continue;
      for (const auto& partition : partitions->items()) {
        const auto l = partition.value().find("consumer_lag");
        if (partition.key() == "-1" || l == partition.value().end() || !l->is_number_integer()) continue;
        if (const auto v = l->get<std::int64_t>(); v >= 0) lag = std::max<std::int64_t>(lag, 0) + v;
      }
    }
  }
  consumer_lag_ = lag;
}

Result<Client> make_client(rd_kafka_type_t type, const Properties& properties, ClientCounters* counters,
                           DeliveryCallback on_delivery) {
  Conf conf{rd_kafka_conf_new()};
  std::array<char, 512> why{};
  for (const auto& [key, value] : properties) {
    if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), why.data(), why.size()) != RD_KAFKA_CONF_OK) {
      return Status(Status::Code::kInvalidArgument, "Kafka property " + key + "=" + value + ": " + why.data());
    }
  }
  if (counters != nullptr) {
    rd_kafka_conf_set_error_cb(conf.get(), [](rd_kafka_t*, int, const char*, void* opaque) {
      static_cast<ClientCounters*>(opaque)->count_error();
    });
    rd_kafka_conf_set_stats_cb(conf.get(), [](rd_kafka_t*, char* json, std::size_t size, void* opaque) {
      static_cast<ClientCounters*>(opaque)->read_statistics(std::string_view(json, size));
      return 0;  // librdkafka frees json
    });
    rd_kafka_conf_set_opaque(conf.get(), counters);
  }
  if (on_delivery != nullptr) rd_kafka_conf_set_dr_msg_cb(conf.get(), on_delivery);
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), why.data(), why.size());
  if (rk == nullptr) return Status(Status::Code::kInvalidArgument, std::string("Kafka client: ") + why.data());
  (void)conf.release();  // rd_kafka_new took it
  return Client{rk};
}

Result<Topic> make_topic(rd_kafka_t* rk, const std::string& name) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, name.c_str(), nullptr);
  if (rkt == nullptr) {
    return Status(Status::Code::kInvalidArgument, "Kafka topic '" + name + "': " + error_text(rd_kafka_last_error()));
  }
  return Topic{rkt};
}

Result<std::int32_t> partition_count(rd_kafka_t* rk, rd_kafka_topic_t* topic, std::chrono::milliseconds timeout) {
  const std::string name = rd_kafka_topic_name(topic);
  const rd_kafka_metadata_t* md = nullptr;
  const rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, topic, &md, millis(timeout));
  if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__TIMED_OUT) {
    return Status(Status::Code::kTimeout, "no answer from the Kafka brokers within " + std::to_string(timeout.count()) +
                                              " ms (" + error_text(err) + ")");
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status(Status::Code::kIoError, "metadata of Kafka topic '" + name + "': " + error_text(err));
  }
  std::unique_ptr<const rd_kafka_metadata_t, void (*)(const rd_kafka_metadata_t*)> hold(md, rd_kafka_metadata_destroy);
  for (int i = 0; i < md->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& t = md->topics[i];
    if (name != t.topic) continue;
    switch (t.err) {
      case RD_KAFKA_RESP_ERR_NO_ERROR:
        return std::int32_t{t.partition_cnt};
      case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
        return Status(Status::Code::kNotFound, "Kafka topic '" + name + "' does not exist");
      case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        return Status(Status::Code::kPermissionDenied, "not authorized for Kafka topic '" + name + "'");
      default:
        return Status(Status::Code::kIoError, "Kafka topic '" + name + "': " + error_text(t.err));
    }
  }
  return Status(Status::Code::kNotFound, "Kafka topic '" + name + "' does not exist (not in the brokers' metadata)");
}

Result<Watermarks> watermarks(rd_kafka_t* rk, const std::string& topic, std::int32_t partition,
                              std::chrono::milliseconds timeout) {
  Watermarks w;
  const rd_kafka_resp_err_t err =
      rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &w.low, &w.high, millis(timeout));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status(Status::Code::kIoError,
                  "offsets of Kafka partition " + topic + "[" + std::to_string(partition) + "]: " + error_text(err));
  }
  return w;
}

Result<Message> read_message(rd_kafka_topic_t* topic, std::int32_t partition, std::int64_t offset,
                             std::chrono::milliseconds timeout) {
  const std::string where = std::string(rd_kafka_topic_name(topic)) + "[" + std::to_string(partition) + "]";
  if (rd_kafka_consume_start(topic, partition, offset) != 0) {
    return Status(Status::Code::kIoError,
                  "reading Kafka partition " + where + ": " + error_text(rd_kafka_last_error()));
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Result<Message> found =
      Status(Status::Code::kTimeout, "no message at offset " + std::to_string(offset) + " of Kafka partition " + where +
                                         " within " + std::to_string(timeout.count()) + " ms");
  while (std::chrono::steady_clock::now() < deadline) {
    Message m{rd_kafka_consume(topic, partition, 100)};
    if (!m) continue;  // nothing yet
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      found = Status(Status::Code::kIoError, "reading Kafka partition " + where + ": " + error_text(m->err));
      break;
    }
    if (m->offset == offset) {
      found = std::move(m);
      break;
    }
  }
  (void)rd_kafka_consume_stop(topic, partition);
  return found;
}

std::optional<std::string_view> header(const rd_kafka_message_t* message, const char* name) {
  rd_kafka_headers_t* headers = nullptr;  // owned by the message
  if (rd_kafka_message_headers(message, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  const void* value = nullptr;
  std::size_t size = 0;
  if (rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  return std::string_view(static_cast<const char*>(value), size);
}

}  // namespace shmlog::bridge::kafka
