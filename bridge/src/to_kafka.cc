// `shmlog bridge to-kafka`, one step per function, top-down: lock the
// topic, connect and check the topic, find where Kafka ends, resume the
// log there, then pump records and commit the acknowledged ones as hints.
#include "shmlog/bridge/to_kafka.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <deque>
#include <optional>
#include <string_view>

#include "common.h"
#include "kafka.h"
#include "shmlog/log.h"

namespace shmlog::bridge {
namespace {

constexpr const char* kLogHeader = "shmlog.log";
constexpr const char* kPartitionHeader = "shmlog.partition";
constexpr const char* kOffsetHeader = "shmlog.offset";
constexpr const char* kNextOffsetHeader = "shmlog.next_offset";
constexpr const char* kProducerHeader = "shmlog.producer";
constexpr const char* kSequenceHeader = "shmlog.sequence";

std::string hex_id(std::uint64_t id) {
  char text[17];
  std::snprintf(text, sizeof text, "%016" PRIx64, id);
  return text;
}

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

Result<TopicLock> lock_topic(const ToKafkaOptions& o) {
  return bridge::lock_topic(o.log, "bridge-kafka-" + o.topic + ".lock", "bridge to Kafka topic '" + o.topic + "'");
}

// What exactly-once rests on is not the user's to change.
constexpr std::array<std::string_view, 7> kOurs{
    "bootstrap.servers",  "metadata.broker.list", "enable.idempotence", "enable.gapless.guarantee",
    "message.timeout.ms", "delivery.timeout.ms",  "transactional.id"};

kafka::Properties producer_properties(const ToKafkaOptions& o) {
  kafka::Properties p = client_properties(o.bootstrap, o.timeout);
  p.insert(p.end(), {{"enable.idempotence", "true"},
                     // A failed batch stops the producer rather than leave a gap
                     // that a later batch would cover (a restart resumes after it).
                     {"enable.gapless.guarantee", "true"},
                     {"message.timeout.ms", "0"},  // retry for as long as it takes
                     {"allow.auto.create.topics", "false"},
                     {"statistics.interval.ms", std::to_string(o.stats_interval.count())},
                     {"linger.ms", std::to_string(o.linger_ms)}});
  p.insert(p.end(), o.properties.begin(), o.properties.end());
  return p;
}

kafka::Properties reader_properties(const ToKafkaOptions& o) {
  kafka::Properties p = client_properties(o.bootstrap, o.timeout);
  p.insert(p.end(), {{"enable.partition.eof", "false"}, {"enable.auto.commit", "false"}});
  p.insert(p.end(), o.properties.begin(), o.properties.end());
  return p;
}

// Where the log resumes in each partition: after the record named by the
// last Kafka record, or nothing (Kafka holds none: the group's offset).
using ResumePoints = std::vector<std::optional<std::uint64_t>>;

Result<std::uint64_t> next_offset_of(const rd_kafka_message_t* m, std::int32_t partition, const Log& log,
                                     const std::string& where) {
  const auto log_id = kafka::header(m, kLogHeader);
  const auto from = kafka::header(m, kPartitionHeader);
  const auto next = kafka::header(m, kNextOffsetHeader);
  if (!log_id || !from || !next) {
    return Status(Status::Code::kCorrupt, "the last record of Kafka partition " + where +
                                              " has no shmlog headers: the bridge must be the topic's only writer");
  }
  if (*log_id != hex_id(log.id())) {
    return Status(Status::Code::kInvalidArgument, "Kafka partition " + where + " holds records of log " +
                                                      quoted(*log_id) + ", not of " + log.path() + " (" +
                                                      hex_id(log.id()) + ")");
  }
  const auto p = parse_u64(*from);
  const auto offset = parse_u64(*next);
  if (!p || *p != static_cast<std::uint64_t>(partition) || !offset) {
    return Status(Status::Code::kCorrupt, "the last record of Kafka partition " + where + " has bad shmlog headers (" +
                                              kPartitionHeader + " " + quoted(*from) + ", " + kNextOffsetHeader + " " +
                                              quoted(*next) + ")");
  }
  return *offset;
}

Result<ResumePoints> find_resume_points(const ToKafkaOptions& o, const Log& log, std::int32_t partitions) {
  auto reader = kafka::make_client(RD_KAFKA_CONSUMER, reader_properties(o));
  if (!reader.ok()) return std::move(reader).status();
  auto topic = kafka::make_topic(reader->get(), o.topic);
  if (!topic.ok()) return std::move(topic).status();
  ResumePoints points(static_cast<std::size_t>(partitions));
  for (std::int32_t p = 0; p < partitions; ++p) {
    const std::string where = o.topic + "[" + std::to_string(p) + "]";
    auto w = kafka::watermarks(reader->get(), o.topic, p, o.timeout);
    if (!w.ok()) return std::move(w).status();
    if (w->high <= w->low) continue;  // never written, or all deleted by retention
    auto last = kafka::read_message(topic->get(), p, w->high - 1, o.timeout);
    if (!last.ok()) return std::move(last).status();
    auto next = next_offset_of(last->get(), p, log, where);
    if (!next.ok()) return std::move(next).status();
    points[static_cast<std::size_t>(p)] = *next;
  }
  return points;
}

// The pump: the shmlog consumer feeds an idempotent producer; delivery
// reports (run inside rd_kafka_poll, on this thread) advance `acked_`.
class Pump : public kafka::ClientCounters {
 public:
  Pump(const ToKafkaOptions& o, const Log& log, std::uint32_t partitions)
      : options_(o),
        log_id_(hex_id(log.id())),
        acked_(partitions, kNone),
        committed_(partitions, kNone),
        stamps_(partitions) {}

  Status connect() {
    auto producer = kafka::make_client(RD_KAFKA_PRODUCER, producer_properties(options_), this, &Pump::on_delivery);
    if (!producer.ok()) return std::move(producer).status();
    producer_ = std::move(*producer);
    auto topic = kafka::make_topic(producer_.get(), options_.topic);
    if (!topic.ok()) return std::move(topic).status();
    topic_ = std::move(*topic);
    return {};
  }
  rd_kafka_t* client() const { return producer_.get(); }
  rd_kafka_topic_t* topic() const { return topic_.get(); }

  // Queues `r` for Kafka, waiting while librdkafka's queue is full.
  Status send(const Record& r, const volatile std::sig_atomic_t* stop);
  // Serves delivery reports (waiting up to `wait`) and reports a failed one.
  Status serve(std::chrono::milliseconds wait);
  // The group's offsets up to what Kafka acknowledged.
  void commit_acknowledged(Consumer& consumer);
  // Waits up to the timeout for what was sent; the error counts what is left.
  Status flush();
  bool idle() const { return rd_kafka_outq_len(producer_.get()) == 0; }
  ToKafkaReport report() const { return {sent_, acknowledged_}; }
  BridgeStats stats() const {
    return {.records = acknowledged_,
            .kafka_errors = errors(),
            .kafka_retries = retries(),
            .lag = static_cast<std::int64_t>(sent_ - acknowledged_),
            .age_ms = age_ms_};
  }

 private:
  static constexpr std::uint64_t kNone = ~std::uint64_t{0};
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque);

  const ToKafkaOptions& options_;
  const std::string log_id_;
  kafka::Client producer_;
  kafka::Topic topic_;
  std::vector<std::uint64_t> acked_;  // next_offset after the last acknowledged record
  std::vector<std::uint64_t> committed_;
  Status failed_;
  std::uint64_t sent_ = 0, acknowledged_ = 0;
  // Per partition, the timestamps (ms) of the records sent and not yet
  // reported on, oldest first: a delivery report carries the broker's
  // time, not the record's.
  std::vector<std::deque<std::int64_t>> stamps_;
  std::int64_t age_ms_ = -1;  // of the last acknowledged record
};

void Pump::on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* self = static_cast<Pump*>(static_cast<kafka::ClientCounters*>(opaque));
  std::deque<std::int64_t>& stamps = self->stamps_[static_cast<std::size_t>(m->partition)];
  const std::int64_t stamped = stamps.empty() ? 0 : stamps.front();
  if (!stamps.empty()) stamps.pop_front();
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    self->count_error();
    if (self->failed_.ok()) {
      self->failed_ =
          Status(Status::Code::kIoError, "Kafka refused a record for " + self->options_.topic + "[" +
                                             std::to_string(m->partition) + "]: " + kafka::error_text(m->err));
    }
    return;
  }
  // Per partition, reports arrive in the order sent (idempotent producer).
  self->acked_[static_cast<std::size_t>(m->partition)] = reinterpret_cast<std::uintptr_t>(m->_private);
  ++self->acknowledged_;
  if (stamped > 0) self->age_ms_ = unix_ms() - stamped;
}

kafka::Headers make_headers(const std::string& log_id, const Record& r) {
  kafka::Headers h{rd_kafka_headers_new(6)};
  auto add = [&](const char* name, const std::string& value) {
    rd_kafka_header_add(h.get(), name, -1, value.data(), static_cast<ssize_t>(value.size()));
  };
  add(kLogHeader, log_id);
  add(kPartitionHeader, std::to_string(r.partition));
  add(kOffsetHeader, std::to_string(r.offset));
  add(kNextOffsetHeader, std::to_string(r.next_offset));
  add(kProducerHeader, std::to_string(r.producer_id) + "." + std::to_string(r.producer_epoch));
  add(kSequenceHeader, std::to_string(r.sequence));
  return h;
}

Status Pump::send(const Record& r, const volatile std::sig_atomic_t* stop) {
  kafka::Headers headers = make_headers(log_id_, r);
  std::array<rd_kafka_vu_t, 8> vu{};
  std::size_t n = 0;
  vu[n].vtype = RD_KAFKA_VTYPE_RKT;
  vu[n++].u.rkt = topic_.get();
  vu[n].vtype = RD_KAFKA_VTYPE_PARTITION;
  vu[n++].u.i32 = static_cast<std::int32_t>(r.partition);
  vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  vu[n++].u.i = RD_KAFKA_MSG_F_COPY;
  if (!r.key.empty()) {
    vu[n].vtype = RD_KAFKA_VTYPE_KEY;
    vu[n].u.mem.ptr = const_cast<std::byte*>(r.key.data());
    vu[n++].u.mem.size = r.key.size();
  }
  vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
  vu[n].u.mem.ptr = const_cast<std::byte*>(r.value.data());
  vu[n++].u.mem.size = r.value.size();
  vu[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
  vu[n++].u.i64 = static_cast<std::int64_t>(r.timestamp_ns / 1000000);  // 0: librdkafka stamps it
  vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
  vu[n++].u.ptr = reinterpret_cast<void*>(static_cast<std::uintptr_t>(r.next_offset));
  vu[n].vtype = RD_KAFKA_VTYPE_HEADERS;
  vu[n++].u.headers = headers.get();
  for (;;) {
    rd_kafka_error_t* error = rd_kafka_produceva(producer_.get(), vu.data(), n);
    if (error == nullptr) {
      (void)headers.release();  // the message owns them now
      ++sent_;
      stamps_[r.partition].push_back(static_cast<std::int64_t>(r.timestamp_ns / 1000000));
      return {};
    }
    const rd_kafka_resp_err_t code = rd_kafka_error_code(error);
    std::string what = rd_kafka_error_string(error);
    rd_kafka_error_destroy(error);
    if (code != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      return Status(Status::Code::kIoError, "producing to Kafka topic " + options_.topic + ": " + what);
    }
    if (*stop != 0) return Status(Status::Code::kAborted, "stopped");
    SHMLOG_RETURN_IF_ERROR(serve(std::chrono::milliseconds(10)));
  }
}

Status Pump::serve(std::chrono::milliseconds wait) {
  (void)rd_kafka_poll(producer_.get(), static_cast<int>(wait.count()));
  char why[512];
  if (const rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(producer_.get(), why, sizeof why);
      fatal != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status(Status::Code::kIoError, "Kafka producer for topic " + options_.topic + " failed: " + why);
  }
  return failed_;
}

void Pump::commit_acknowledged(Consumer& consumer) {
  for (std::uint32_t p = 0; p < acked_.size(); ++p) {
    if (acked_[p] == kNone || acked_[p] == committed_[p]) continue;
    // A hint only (Kafka is the truth): a failure is corrected next time.
    if (consumer.commit(p, acked_[p]).ok()) committed_[p] = acked_[p];
  }
}

Status Pump::flush() {
  const rd_kafka_resp_err_t err = rd_kafka_flush(producer_.get(), static_cast<int>(options_.timeout.count()));
  SHMLOG_RETURN_IF_ERROR(serve(std::chrono::milliseconds(0)));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status(Status::Code::kTimeout,
                  std::to_string(rd_kafka_outq_len(producer_.get())) + " records not acknowledged by Kafka within " +
                      std::to_string(options_.timeout.count()) + " ms (a restart sends them again)");
  }
  return {};
}

Result<Consumer> join_group(const ToKafkaOptions& o, const Log& log) {
  ConsumerOptions co;
  co.group = o.group.empty() ? default_group(o.topic) : o.group;
  co.mode = DeliveryMode::kManual;  // commits follow Kafka's acknowledgements
  co.isolation = Isolation::kReadCommitted;
  auto consumer = log.consumer(co);
  if (!consumer.ok()) return std::move(consumer).status();
  if (consumer->assignment().size() != log.options().partitions) {
    return Status(Status::Code::kBusy, "another member is in group '" + co.group + "' of " + o.log +
                                           ": the bridge needs the group to itself");
  }
  return consumer;
}

// The oldest offset of partition `p` a reader can still seek to.
std::uint64_t retained_start(const LogInfo::Partition& p) {
  return p.disk_segments > 0 ? std::min(p.disk_start, p.earliest_offset) : p.earliest_offset;
}

Status resume(const ToKafkaOptions& o, const Log& log, Consumer& consumer, const ResumePoints& points) {
  const LogInfo info = log.info();
  for (std::uint32_t p = 0; p < points.size(); ++p) {
    if (!points[p]) continue;
    Status s = consumer.seek(p, *points[p]);
    if (s.ok()) continue;
    // An overwrite ring reused what Kafka has not got: say so, go on from the oldest record left.
    const std::uint64_t oldest = retained_start(info.partitions[p]);
    if (*points[p] < oldest && consumer.seek(p, oldest).ok()) {
      o.note("offsets " + std::to_string(*points[p]) + " to " + std::to_string(oldest) + " of partition " +
             std::to_string(p) + " of " + o.log + " were overwritten before they reached Kafka");
      continue;
    }
    return std::move(s).with_context("cannot resume partition " + std::to_string(p) + " of " + o.log + " at offset " +
                                     std::to_string(*points[p]) + " (after Kafka's last record)");
  }
  return {};
}

// Loss is the log's to count (its policy, or damage), never silent here.
void report_loss(const ToKafkaOptions& o, const PollResult& r, Consumer& consumer) {
  if (r.lost_bytes > 0) {
    o.note(std::to_string(r.lost_bytes) + " bytes of " + o.log +
           " lost before they reached Kafka: the overwrite ring lapped the bridge");
  }
  if (r.corrupt > 0) {
    for (const Damage& d : consumer.take_damage()) {
      o.note("records " + std::to_string(d.from) + " to " + std::to_string(d.to) + " of partition " +
             std::to_string(d.partition) + " of " + o.log + " skipped, damaged: " + d.what);
    }
  }
}

Status pump_records(const ToKafkaOptions& o, Consumer& consumer, Pump& pump, const volatile std::sig_atomic_t* stop) {
  auto last_record = std::chrono::steady_clock::now();
  auto last_stats = last_record;
  while (*stop == 0) {
    Status sent;
    const PollResult r = consumer.poll_wait(
        [&](const Record& rec) {
          if (sent.ok()) sent = pump.send(rec, stop);  // after a failure, nothing more: no gap
        },
        o.batch, std::chrono::milliseconds(20));
    if (!sent.ok() && sent.code() != Status::Code::kAborted) return sent;
    report_loss(o, r, consumer);
    SHMLOG_RETURN_IF_ERROR(pump.serve(std::chrono::milliseconds(0)));
    pump.commit_acknowledged(consumer);
    if (!sent.ok()) break;  // stopped while librdkafka's queue was full
    const auto now = std::chrono::steady_clock::now();
    if (now - last_stats >= o.stats_interval) {
      o.on_stats(pump.stats());
      last_stats = now;
    }
    if (r.records > 0 || !pump.idle()) {
      last_record = now;
    } else if (o.idle_exit.count() >= 0 && now - last_record >= o.idle_exit) {
      break;
    }
  }
  return {};
}

}  // namespace

std::string default_group(const std::string& topic) { return "kafka-" + topic; }

Status run_to_kafka(const ToKafkaOptions& o, const volatile std::sig_atomic_t* stop, ToKafkaReport* report) {
  SHMLOG_RETURN_IF_ERROR(check_topic_name(o.topic));
  if (o.batch < 1) return Status(Status::Code::kInvalidArgument, "--batch must be at least 1");
  SHMLOG_RETURN_IF_ERROR(check_properties(o.properties, kOurs));
  auto log = Log::open(o.log);
  if (!log.ok()) return std::move(log).status();
  auto lock = lock_topic(o);
  if (!lock.ok()) return std::move(lock).status();
  const std::uint32_t partitions = log->options().partitions;

  Pump pump(o, *log, partitions);
  SHMLOG_RETURN_IF_ERROR(pump.connect());
  SHMLOG_RETURN_IF_ERROR(check_partition_count(pump.client(), pump.topic(), o.bootstrap, o.log, partitions, o.timeout));
  auto points = find_resume_points(o, *log, static_cast<std::int32_t>(partitions));
  if (!points.ok()) return std::move(points).status().with_context("Kafka at " + o.bootstrap);
  auto consumer = join_group(o, *log);
  if (!consumer.ok()) return std::move(consumer).status();
  SHMLOG_RETURN_IF_ERROR(resume(o, *log, *consumer, *points));
  o.note(o.log + " -> Kafka topic " + o.topic + " at " + o.bootstrap);

  Status pumped = pump_records(o, *consumer, pump, stop);
  Status flushed = pumped.ok() ? pump.flush() : Status{};
  pump.commit_acknowledged(*consumer);
  o.on_stats(pump.stats());
  if (report != nullptr) *report = pump.report();
  return pumped.ok() ? std::move(flushed) : std::move(pumped);
}

}  // namespace shmlog::bridge
