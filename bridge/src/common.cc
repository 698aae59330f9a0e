#include "common.h"

#include <algorithm>
#include <cstdint>

#include "shmlog/io/files.h"

namespace shmlog::bridge {

Status check_topic_name(const std::string& topic) {
  const bool legal =
      !topic.empty() && topic.size() <= 249 && topic != "." && topic != ".." &&
      topic.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == std::string::npos;
  if (legal) return {};
  return Status(Status::Code::kInvalidArgument,
                "Kafka topic name " + quoted(topic) + " is not legal (1 to 249 of [a-zA-Z0-9._-])");
}

TopicLock::~TopicLock() {
  if (fd_ >= 0) io::close_file(fd_);
}

Result<TopicLock> lock_topic(const std::string& log, const std::string& file, const std::string& who) {
  const std::string path = log + "/" + file;
  auto fd = io::open_read_write(path, 0600);
  if (!fd.ok()) return std::move(fd).status();
  TopicLock lock(*fd);
  auto locked = io::try_lock_file(*fd, path);
  if (!locked.ok()) return std::move(locked).status();
  if (!*locked) return Status(Status::Code::kBusy, "another " + who + " runs on " + log + " (it holds " + path + ")");
  return lock;
}

Status check_properties(const kafka::Properties& properties, std::span<const std::string_view> ours) {
  for (const auto& [key, value] : properties) {
    if (std::find(ours.begin(), ours.end(), key) != ours.end()) {
      return Status(
          Status::Code::kInvalidArgument,
          "--property " + key + ": set by the bridge (its exactly-once rests on it; the brokers: --bootstrap)");
    }
  }
  return {};
}

Status check_partition_count(rd_kafka_t* rk, rd_kafka_topic_t* topic, const std::string& bootstrap,
                             const std::string& log, std::uint32_t partitions, std::chrono::milliseconds timeout) {
  auto count = kafka::partition_count(rk, topic, timeout);
  if (!count.ok()) return std::move(count).status().with_context("Kafka at " + bootstrap);
  if (*count == static_cast<std::int32_t>(partitions)) return {};
  return Status(Status::Code::kInvalidArgument, "Kafka topic '" + std::string(rd_kafka_topic_name(topic)) + "' has " +
                                                    std::to_string(*count) + " partitions, log " + log + " has " +
                                                    std::to_string(partitions) + ": they must map 1:1");
}

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

kafka::Properties client_properties(const std::string& bootstrap, std::chrono::milliseconds timeout) {
  return {{"bootstrap.servers", bootstrap},
          {"log_level", "0"},  // errors reach the user as one line, from us
          // librdkafka's least is 1 s
          {"socket.connection.setup.timeout.ms", std::to_string(std::max<std::int64_t>(timeout.count(), 1000))}};
}

}  // namespace shmlog::bridge
