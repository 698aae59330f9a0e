// The two ends of each path that shmlog_bridge_bench measures (a writer
// and a reader), and what they stand on: librdkafka's mock cluster, a
// plain producer and consumer, and a log with the bridge in a thread.
// Only the bench includes this.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "shmlog/bridge/from_kafka.h"
#include "shmlog/bridge/to_kafka.h"
#include "shmlog/log.h"

namespace shmlog::bench {

[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "shmlog_bridge_bench: %s\n", what.c_str());
  std::exit(1);
}

inline std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

// ---- librdkafka: the mock cluster, a producer, a consumer ----

using Properties = std::vector<std::pair<std::string, std::string>>;
struct ClientDeleter {
  void operator()(rd_kafka_t* rk) const noexcept { rd_kafka_destroy(rk); }
};
using Client = std::unique_ptr<rd_kafka_t, ClientDeleter>;

inline Client make_client(rd_kafka_type_t type, const Properties& properties) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char why[512];
  for (const auto& [key, value] : properties) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), why, sizeof why) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      die("librdkafka property " + key + ": " + why);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, why, sizeof why);  // owns conf on success
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    die(std::string("librdkafka client: ") + why);
  }
  return Client(rk);
}

// A 3-broker mock cluster on localhost ports, hosted by a plain producer
// handle, alive as long as this object.
class MockCluster {
 public:
  MockCluster() : host_(make_client(RD_KAFKA_PRODUCER, {{"log_level", "0"}})) {
    cluster_ = rd_kafka_mock_cluster_new(host_.get(), 3);
    if (cluster_ == nullptr) die("rd_kafka_mock_cluster_new failed");
  }
  ~MockCluster() { rd_kafka_mock_cluster_destroy(cluster_); }
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;
  std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }
  void create_topic(const std::string& topic, std::uint32_t partitions) {
    if (rd_kafka_mock_topic_create(cluster_, topic.c_str(), static_cast<int>(partitions), 3) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      die("cannot create mock topic " + topic);
    }
  }

 private:
  Client host_;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

// The bridge's producer properties (bridge/src/to_kafka.cc), for the baseline.
inline Properties producer_properties(const std::string& bootstrap, std::uint32_t linger_ms) {
  return {{"bootstrap.servers", bootstrap},     {"log_level", "0"},          {"enable.idempotence", "true"},
          {"enable.gapless.guarantee", "true"}, {"message.timeout.ms", "0"}, {"linger.ms", std::to_string(linger_ms)}};
}

// ---- the two ends of every path: a writer and a reader ----

class Writer {
 public:
  virtual ~Writer() = default;
  // Writes `value` to `partition`; waits while the writer is full.
  virtual void send(std::uint32_t partition, std::span<const std::byte> value) = 0;
  // Called once after the last send, on the same thread.
  virtual void finish() {}
  // What is still in flight, for an error message.
  virtual std::string where() { return {}; }
};

// Called with each value read and the time it was read.
using OnValue = std::function<void(std::span<const std::byte>, std::uint64_t now)>;

class Reader {
 public:
  virtual ~Reader() = default;
  // Reads until `n` records arrived or `patience` passed; returns how many.
  virtual std::uint64_t read(std::uint64_t n, const OnValue& on_value, std::chrono::seconds patience) = 0;
  // Where each partition stands, for an error message.
  virtual std::string where() { return {}; }
};

// A plain librdkafka producer: the baseline, and the source of from-kafka.
class KafkaWriter : public Writer {
 public:
  KafkaWriter(const std::string& bootstrap, const std::string& topic, std::uint32_t linger_ms)
      : producer_(make_client(RD_KAFKA_PRODUCER, producer_properties(bootstrap, linger_ms))),
        topic_(rd_kafka_topic_new(producer_.get(), topic.c_str(), nullptr)) {}
  ~KafkaWriter() override { rd_kafka_topic_destroy(topic_); }

  void send(std::uint32_t partition, std::span<const std::byte> value) override {
    std::array<rd_kafka_vu_t, 4> vu{};
    vu[0].vtype = RD_KAFKA_VTYPE_RKT;
    vu[0].u.rkt = topic_;
    vu[1].vtype = RD_KAFKA_VTYPE_PARTITION;
    vu[1].u.i32 = static_cast<std::int32_t>(partition);
    vu[2].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[2].u.i = RD_KAFKA_MSG_F_COPY;
    vu[3].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[3].u.mem.ptr = const_cast<std::byte*>(value.data());
    vu[3].u.mem.size = value.size();
    for (;;) {
      rd_kafka_error_t* error = rd_kafka_produceva(producer_.get(), vu.data(), vu.size());
      if (error == nullptr) break;
      const rd_kafka_resp_err_t code = rd_kafka_error_code(error);
      const std::string what = rd_kafka_error_string(error);
      rd_kafka_error_destroy(error);
      if (code != RD_KAFKA_RESP_ERR__QUEUE_FULL) die("produce: " + what);
      (void)rd_kafka_poll(producer_.get(), 10);  // serve delivery reports: room in the queue
    }
    if (++unpolled_ >= 1024) {
      (void)rd_kafka_poll(producer_.get(), 0);
      unpolled_ = 0;
    }
  }
  void finish() override {
    if (rd_kafka_flush(producer_.get(), 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) die("producer flush timed out");
  }
  std::string where() override {
    return "; the producer has " + std::to_string(rd_kafka_outq_len(producer_.get())) + " in flight";
  }

 private:
  Client producer_;
  rd_kafka_topic_t* topic_;
  int unpolled_ = 0;
};

// A Kafka consumer assigned every partition from the beginning (no group
// coordination: what a bench consumer needs, and what a fresh topic holds).
class KafkaReader : public Reader {
 public:
  KafkaReader(const std::string& bootstrap, const std::string& topic, std::uint32_t partitions, int fetch_wait_ms)
      : consumer_(make_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap},
                                                  {"log_level", "0"},
                                                  {"group.id", "bench-reader"},
                                                  {"enable.auto.commit", "false"},
                                                  {"enable.partition.eof", "false"},
                                                  // A record the mock deleted unread is an error, not a skip.
                                                  {"auto.offset.reset", "error"},
                                                  {"fetch.wait.max.ms", std::to_string(fetch_wait_ms)}})),
        topic_(topic),
        next_(partitions, 0) {
    (void)rd_kafka_poll_set_consumer(consumer_.get());
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(partitions));
    for (std::uint32_t p = 0; p < partitions; ++p) {
      rd_kafka_topic_partition_list_add(list, topic.c_str(), static_cast<std::int32_t>(p))->offset =
          RD_KAFKA_OFFSET_BEGINNING;
    }
    const rd_kafka_resp_err_t err = rd_kafka_assign(consumer_.get(), list);
    rd_kafka_topic_partition_list_destroy(list);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) die(std::string("assign: ") + rd_kafka_err2str(err));
  }
  ~KafkaReader() override { (void)rd_kafka_consumer_close(consumer_.get()); }

  std::uint64_t read(std::uint64_t n, const OnValue& on_value, std::chrono::seconds patience) override {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    std::uint64_t got = 0;
    while (got < n && std::chrono::steady_clock::now() < deadline) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_.get(), 100);
      if (m == nullptr) continue;
      const std::uint64_t t = now_ns();
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        on_value({static_cast<const std::byte*>(m->payload), m->len}, t);
        ++got;
        next_[static_cast<std::size_t>(m->partition)] = m->offset + 1;
      } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        std::string what = rd_kafka_message_errstr(m);
        if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
          what += " (records deleted unread: the mock keeps the last 5 MiB of a partition; see --window-mib)";
        }
        rd_kafka_message_destroy(m);
        die("Kafka consumer: " + what);
      }
      rd_kafka_message_destroy(m);
    }
    return got;
  }
  std::string where() override {
    std::string text;
    for (std::size_t p = 0; p < next_.size(); ++p) {
      std::int64_t low = 0, high = 0;
      (void)rd_kafka_query_watermark_offsets(consumer_.get(), topic_.c_str(), static_cast<std::int32_t>(p), &low, &high,
                                             5000);
      text += " [" + std::to_string(p) + "] read to " + std::to_string(next_[p]) + " of " + std::to_string(high);
    }
    return "Kafka" + text;
  }

 private:
  Client consumer_;
  std::string topic_;
  std::vector<std::int64_t> next_;  // per partition, the offset after the last record read
};

// ---- shmlog's side: a fresh log, and the bridge in a thread ----

// A fresh log at `path` whose ring (16 MiB per partition) holds far less
// than a measurement writes: backpressure paces whoever appends.
inline Log make_log(std::uint32_t partitions, const std::string& path) {
  LogOptions lo;
  lo.partitions = partitions;
  lo.segment_size = 1u << 20;
  lo.ring_segments = 16;
  lo.max_record_size = 64u << 10;
  (void)Log::remove(path);
  auto log = Log::create(path, lo);
  if (!log.ok()) die(log.status().message());
  return std::move(log).value();
}

// Deletes a bench log and the lock file its bridge leaves in it (kept
// between a bridge's runs; Log::remove leaves a directory holding a file
// it does not know).
inline void remove_log(const std::string& path, const std::string& bridge_lock) {
  (void)std::remove((path + "/" + bridge_lock).c_str());
  const Status s = Log::remove(path);
  if (!s.ok()) std::fprintf(stderr, "shmlog_bridge_bench: %s\n", s.message().c_str());
}

// Runs `body(stop)` on a thread of its own until destroyed; the bridge's
// note containing " -> " (it runs: connected and resumed) makes it ready.
class BridgeThread {
 public:
  using Body = std::function<Status(const volatile std::sig_atomic_t* stop, std::function<void(const std::string&)>)>;
  explicit BridgeThread(Body body) {
    thread_ = std::thread([this, body = std::move(body)] {
      Status s = body(&stop_, [this](const std::string& line) {
        // Any other note is a loss (records deleted or overwritten unread): the figures would be wrong.
        if (line.find(" -> ") == std::string::npos) die("bridge: " + line);
        ready_.store(true, std::memory_order_release);
      });
      if (!s.ok()) die("bridge: " + s.message());
    });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    // Pairs with the release in the note.
    while (!ready_.load(std::memory_order_acquire)) {
      if (std::chrono::steady_clock::now() > deadline) die("the bridge did not start within 30 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ~BridgeThread() {
    stop_ = 1;
    thread_.join();
  }
  BridgeThread(const BridgeThread&) = delete;
  BridgeThread& operator=(const BridgeThread&) = delete;

 private:
  volatile std::sig_atomic_t stop_ = 0;
  std::atomic<bool> ready_{false};
  std::thread thread_;
};

// to-kafka's source: appends to a fresh log that the bridge reads.
class ShmlogWriter : public Writer {
 public:
  ShmlogWriter(std::uint32_t partitions, const std::string& path, const std::string& bootstrap,
               const std::string& topic, std::uint32_t linger_ms)
      : path_(path), lock_("bridge-kafka-" + topic + ".lock"), log_(make_log(partitions, path)) {
    bridge::ToKafkaOptions o;
    o.log = path;
    o.bootstrap = bootstrap;
    o.topic = topic;
    o.linger_ms = linger_ms;
    bridge_.emplace([o](const volatile std::sig_atomic_t* stop, std::function<void(const std::string&)> note) mutable {
      o.note = std::move(note);
      return bridge::run_to_kafka(o, stop, nullptr);
    });
    ProducerOptions po;
    po.exclusive = true;
    po.backpressure_timeout = std::chrono::minutes(10);  // the bridge's group holds the ring until Kafka acknowledges
    auto producer = log_.producer(po);
    if (!producer.ok()) die(producer.status().message());
    producer_.emplace(std::move(producer).value());
  }
  ~ShmlogWriter() override {
    producer_.reset();
    bridge_.reset();  // the bridge flushes and stops
    remove_log(path_, lock_);
  }
  void send(std::uint32_t partition, std::span<const std::byte> value) override {
    const AppendResult r = producer_->append_to(partition, {}, value);
    if (!r) die("append failed: error " + std::to_string(static_cast<int>(r.error)));
  }
  std::string where() override {  // the bridge's group commits what Kafka acknowledged
    std::string text = "; the bridge's acknowledged/appended:";
    for (const auto& g : log_.info().groups) {
      for (const auto& p : g.partitions) {
        text += " [" + std::to_string(p.partition) + "] " + std::to_string(p.committed_offset) + "/" +
                std::to_string(p.end_offset);
      }
    }
    return text;
  }

 private:
  std::string path_;
  std::string lock_;  // the bridge's, in the log's directory
  Log log_;
  std::optional<BridgeThread> bridge_;
  std::optional<Producer> producer_;
};

// from-kafka's sink: the bridge appends to a fresh log that a group reads.
class ShmlogReader : public Reader {
 public:
  ShmlogReader(std::uint32_t partitions, const std::string& path, const std::string& bootstrap,
               const std::string& topic, int fetch_wait_ms)
      : path_(path), lock_("bridge-from-kafka-" + topic + ".lock"), log_(make_log(partitions, path)) {
    ConsumerOptions co;
    co.group = "bench";  // a group holds the ring: the bridge waits rather than lap it
    co.commit_every = 256;
    co.wait = WaitStrategy::spin();
    auto consumer = log_.consumer(co);
    if (!consumer.ok()) die(consumer.status().message());
    consumer_.emplace(std::move(consumer).value());
    bridge::FromKafkaOptions o;
    o.log = path;
    o.bootstrap = bootstrap;
    o.topic = topic;
    o.group = "bench-from-kafka";
    o.properties = {{"fetch.wait.max.ms", std::to_string(fetch_wait_ms)}};
    bridge_.emplace([o](const volatile std::sig_atomic_t* stop, std::function<void(const std::string&)> note) mutable {
      o.note = std::move(note);
      return bridge::run_from_kafka(o, stop, nullptr);
    });
  }
  ~ShmlogReader() override {
    bridge_.reset();
    consumer_.reset();
    remove_log(path_, lock_);
  }
  std::uint64_t read(std::uint64_t n, const OnValue& on_value, std::chrono::seconds patience) override {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    std::uint64_t got = 0;
    while (got < n && std::chrono::steady_clock::now() < deadline) {
      (void)consumer_->poll_wait(
          [&](const Record& r) {
            on_value(r.value, now_ns());
            ++got;
          },
          256, std::chrono::milliseconds(100));
    }
    return got;
  }

 private:
  std::string path_;
  std::string lock_;  // the bridge's, in the log's directory
  Log log_;
  std::optional<Consumer> consumer_;
  std::optional<BridgeThread> bridge_;
};

}  // namespace shmlog::bench
