// `shmlog bridge from-kafka`, one step per function, top-down: lock the
// topic, connect and check the topic, open one named producer per
// partition and resume Kafka after the last sequence each has in the log,
// then append records and commit Kafka offsets behind them as hints.
#include "shmlog/bridge/from_kafka.h"

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "common.h"
#include "kafka.h"
#include "shmlog/log.h"

namespace shmlog::bridge {
namespace {

// What exactly-once rests on is not the user's to change.
constexpr std::array<std::string_view, 7> kOurs{
    "bootstrap.servers",        "metadata.broker.list", "group.id", "enable.auto.commit",
    "enable.auto.offset.store", "isolation.level",      "enable.partition.eof"};

kafka::Properties consumer_properties(const FromKafkaOptions& o) {
  kafka::Properties p = client_properties(o.bootstrap, o.timeout);
  p.insert(p.end(), {{"group.id", o.group},
                     {"enable.auto.commit", "false"},  // offsets follow the appends
                     {"enable.auto.offset.store", "false"},
                     {"isolation.level", "read_committed"},  // never an aborted transaction's records
                     {"enable.partition.eof", "true"},  // idle_exit waits for every partition's end
                     {"auto.offset.reset", "earliest"},  // a new group reads the whole topic
                     {"statistics.interval.ms", std::to_string(o.stats_interval.count())},
                     {"allow.auto.create.topics", "false"}});
  p.insert(p.end(), o.properties.begin(), o.properties.end());
  return p;
}

std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t h = 14695981039346656037ull;
  for (const char c : text) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

// Kafka offsets to commit, per partition: the next one to read.
class Offsets {
 public:
  Offsets(const std::string& topic, std::uint32_t partitions) : topic_(topic), next_(partitions, -1) {}
  void advance(std::int32_t partition, std::int64_t next) { next_[static_cast<std::size_t>(partition)] = next; }
  // Commits what advanced since the last commit; async or waiting for the answer.
  Status commit(rd_kafka_t* rk, bool async) {
    kafka::PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(next_.size())));
    for (std::size_t p = 0; p < next_.size(); ++p) {
      if (next_[p] < 0) continue;
      rd_kafka_topic_partition_list_add(list.get(), topic_.c_str(), static_cast<std::int32_t>(p))->offset = next_[p];
    }
    if (list->cnt == 0) return {};
    const rd_kafka_resp_err_t err = rd_kafka_commit(rk, list.get(), async ? 1 : 0);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
      return Status(Status::Code::kIoError, "committing Kafka offsets of topic " + topic_ + ": " + kafka::error_text(err));
    }
    std::fill(next_.begin(), next_.end(), -1);
    return {};
  }

 private:
  const std::string& topic_;
  std::vector<std::int64_t> next_;
};

// One named producer per partition; the sequence of a record is its Kafka offset.
Result<std::vector<Producer>> open_producers(const FromKafkaOptions& o, const Log& log) {
  std::vector<Producer> producers;
  for (std::uint32_t p = 0; p < log.options().partitions; ++p) {
    const std::string id = producer_name(o.topic, static_cast<std::int32_t>(p));
    // A full ring is waited out 200 ms at a time, so that a stop is seen.
    auto producer = log.producer(
        {.partition = p, .backpressure_timeout = std::chrono::milliseconds(200), .name = id, .producer_id = id});
    if (!producer.ok()) return std::move(producer).status().with_context("producer " + quoted(id));
    producers.push_back(std::move(*producer));
  }
  return producers;
}

// Reads each partition after the last offset its producer has in the log;
// a partition the log holds none of starts at the group's offset (or the
// earliest). Says so when Kafka deleted records the log has not got.
Status resume(const FromKafkaOptions& o, rd_kafka_t* rk, std::vector<Producer>& producers) {
  kafka::PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(producers.size())));
  for (std::size_t p = 0; p < producers.size(); ++p) {
    const auto partition = static_cast<std::int32_t>(p);
    const std::optional<std::uint64_t> last = producers[p].last_sequence();
    std::int64_t from = RD_KAFKA_OFFSET_STORED;
    if (last) {
      from = static_cast<std::int64_t>(*last + 1);
      auto w = kafka::watermarks(rk, o.topic, partition, o.timeout);
      if (!w.ok()) return std::move(w).status().with_context("Kafka at " + o.bootstrap);
      if (w->low > from) {
        o.note("offsets " + std::to_string(from) + " to " + std::to_string(w->low) + " of Kafka partition " + o.topic +
               "[" + std::to_string(p) + "] were deleted before they reached " + o.log);
        from = w->low;
      }
    }
    rd_kafka_topic_partition_list_add(list.get(), o.topic.c_str(), partition)->offset = from;
  }
  const rd_kafka_resp_err_t err = rd_kafka_assign(rk, list.get());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status(Status::Code::kIoError, "reading Kafka topic " + o.topic + ": " + kafka::error_text(err));
  }
  return {};
}

// A consumer error that ends the bridge, or OK for one librdkafka retries
// by itself (a broker down, a leader moving).
Status consumer_error(const FromKafkaOptions& o, const rd_kafka_message_t& m) {
  switch (m.err) {
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
      return Status(Status::Code::kNotFound, "Kafka topic '" + o.topic + "' does not exist");
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      return Status(Status::Code::kNotFound,
                    "Kafka topic '" + o.topic + "' has no partition " + std::to_string(m.partition));
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
      return Status(Status::Code::kPermissionDenied, "not authorized for Kafka topic '" + o.topic + "' or group '" +
                                                         o.group + "': " + kafka::error_text(m.err));
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
      return Status(Status::Code::kIoError, "reading Kafka partition " + o.topic + "[" + std::to_string(m.partition) +
                                                "]: " + kafka::error_text(m.err));
    default:
      return {};
  }
}

// Appends `m` to its partition and sets `age_ms` to its age: true, or
// false when the ring stayed full for the producer's backpressure timeout
// (nothing was written: append it again).
Result<bool> append(const FromKafkaOptions& o, const rd_kafka_message_t& m, Producer& producer,
                    FromKafkaReport& report, std::int64_t* age_ms) {
  const auto partition = static_cast<std::uint32_t>(m.partition);
  const Bytes key(static_cast<const std::byte*>(m.key), m.key_len);
  const Bytes value(static_cast<const std::byte*>(m.payload), m.len);
  const std::int64_t ms = rd_kafka_message_timestamp(&m, nullptr);
  producer.set_next_sequence(static_cast<std::uint64_t>(m.offset));
  const AppendResult r = ms >= 0 ? producer.append_at(partition, key, value, static_cast<std::uint64_t>(ms) * 1000000)
                                 : producer.append_to(partition, key, value);
  const std::string where = "the record at offset " + std::to_string(m.offset) + " of Kafka partition " + o.topic +
                            "[" + std::to_string(m.partition) + "]";
  switch (r.error) {
    case Errc::kOk:
      ++report.appended;
      if (ms > 0) *age_ms = unix_ms() - ms;
      return true;
    case Errc::kDuplicate:
      ++report.duplicates;
      return true;
    case Errc::kBackpressureTimeout:  // readers behind: wait on
    case Errc::kRevoked:              // this thread stalled past the claim timeout: again
      return false;
    case Errc::kFenced:
      return Status(Status::Code::kBusy, "another bridge appends Kafka partition " + o.topic + "[" +
                                             std::to_string(m.partition) + "] to " + o.log + " (producer " +
                                             quoted(producer_name(o.topic, m.partition)) +
                                             " was opened again): this one stops");
    case Errc::kTooLarge:
      return Status(Status::Code::kInvalidArgument, where + " has " + std::to_string(m.key_len + m.len) +
                                                        " bytes of key and value, more than " + o.log +
                                                        "'s max_record_size");
    default:
      return Status(Status::Code::kIoError, "appending " + where + " to " + o.log + ": " + errc_name(r.error));
  }
}

// The counters of a run, for FromKafkaOptions::on_stats.
struct Counters {
  kafka::ClientCounters client;
  FromKafkaReport report;
  std::int64_t age_ms = -1;
  BridgeStats stats() const {
    return {.records = report.appended,
            .duplicates = report.duplicates,
            .kafka_errors = client.errors(),
            .kafka_retries = client.retries(),
            .lag = client.consumer_lag(),
            .age_ms = age_ms};
  }
};

Status pump_records(const FromKafkaOptions& o, rd_kafka_t* rk, std::vector<Producer>& producers, Offsets& offsets,
                    Counters& counters, const volatile std::sig_atomic_t* stop) {
  auto last_record = std::chrono::steady_clock::now();
  auto last_commit = last_record;
  auto last_stats = last_record;
  // Commits and counters on their intervals, also while a full ring waits.
  const auto on_time = [&](std::chrono::steady_clock::time_point now) -> Status {
    if (now - last_commit >= o.commit_interval) {
      SHMLOG_RETURN_IF_ERROR(offsets.commit(rk, true));
      last_commit = now;
    }
    if (now - last_stats >= o.stats_interval) {
      o.on_stats(counters.stats());
      last_stats = now;
    }
    return {};
  };
  std::vector<bool> at_end(producers.size(), false);  // read to its end since its last record
  while (*stop == 0) {
    kafka::Message m{rd_kafka_consumer_poll(rk, 20)};
    const auto now = std::chrono::steady_clock::now();
    SHMLOG_RETURN_IF_ERROR(on_time(now));
    char why[512];
    if (const rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(rk, why, sizeof why);
        fatal != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status(Status::Code::kIoError, "Kafka consumer of topic " + o.topic + " failed: " + why);
    }
    if (!m) {
      const bool caught_up = std::find(at_end.begin(), at_end.end(), false) == at_end.end();
      if (o.idle_exit.count() >= 0 && caught_up && now - last_record >= o.idle_exit) break;
      continue;
    }
    const bool known = m->partition >= 0 && static_cast<std::size_t>(m->partition) < producers.size();
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (known) at_end[static_cast<std::size_t>(m->partition)] = true;
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      counters.client.count_error();
      SHMLOG_RETURN_IF_ERROR(consumer_error(o, *m));
      continue;
    }
    last_record = now;
    if (!known) {
      return Status(Status::Code::kCorrupt, "Kafka sent a record of partition " + std::to_string(m->partition) +
                                                " of topic " + o.topic + ", which the bridge does not read");
    }
    Producer& producer = producers[static_cast<std::size_t>(m->partition)];
    for (;;) {
      auto appended = append(o, *m, producer, counters.report, &counters.age_ms);
      if (!appended.ok()) return std::move(appended).status();
      if (*appended) break;
      // The ring is full: a stop leaves the record for the next run.
      if (*stop != 0) return {};
      SHMLOG_RETURN_IF_ERROR(on_time(std::chrono::steady_clock::now()));
    }
    offsets.advance(m->partition, m->offset + 1);
    at_end[static_cast<std::size_t>(m->partition)] = false;
  }
  return {};
}

}  // namespace

std::string producer_name(const std::string& topic, std::int32_t partition) {
  const std::string tail = ":" + std::to_string(partition);
  std::string name = "kafka:" + topic + tail;
  if (name.size() <= 63) return name;
  char hash[18];
  std::snprintf(hash, sizeof hash, "~%016" PRIx64, fnv1a(topic));
  return "kafka:" + topic.substr(0, 28) + hash + tail;  // at most 6 + 28 + 17 + 11 bytes
}

Status run_from_kafka(const FromKafkaOptions& o, const volatile std::sig_atomic_t* stop, FromKafkaReport* report) {
  SHMLOG_RETURN_IF_ERROR(check_topic_name(o.topic));
  if (o.group.empty()) return Status(Status::Code::kInvalidArgument, "--group must name a Kafka consumer group");
  SHMLOG_RETURN_IF_ERROR(check_properties(o.properties, kOurs));
  auto log = Log::open(o.log);
  if (!log.ok()) return std::move(log).status();
  auto lock = lock_topic(o.log, "bridge-from-kafka-" + o.topic + ".lock",
                         "bridge from Kafka topic '" + o.topic + "'");
  if (!lock.ok()) return std::move(lock).status();
  const std::uint32_t partitions = log->options().partitions;

  Counters counters;
  auto client = kafka::make_client(RD_KAFKA_CONSUMER, consumer_properties(o), &counters.client);
  if (!client.ok()) return std::move(client).status();
  rd_kafka_t* rk = client->get();
  (void)rd_kafka_poll_set_consumer(rk);
  {
    auto topic = kafka::make_topic(rk, o.topic);
    if (!topic.ok()) return std::move(topic).status();
    SHMLOG_RETURN_IF_ERROR(check_partition_count(rk, topic->get(), o.bootstrap, o.log, partitions, o.timeout));
  }
  auto producers = open_producers(o, *log);
  if (!producers.ok()) return std::move(producers).status();
  SHMLOG_RETURN_IF_ERROR(resume(o, rk, *producers));
  o.note("Kafka topic " + o.topic + " at " + o.bootstrap + " -> " + o.log);

  Offsets offsets(o.topic, partitions);
  Status pumped = pump_records(o, rk, *producers, offsets, counters, stop);
  Status committed = offsets.commit(rk, false);
  (void)rd_kafka_consumer_close(rk);
  o.on_stats(counters.stats());
  if (report != nullptr) *report = counters.report;
  return pumped.ok() ? std::move(committed) : std::move(pumped);
}

}  // namespace shmlog::bridge
