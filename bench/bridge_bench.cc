// What the Kafka bridge costs, against librdkafka's mock cluster hosted in
// this process (3 brokers): records/s and end-to-end latency of
//   to-kafka:    shmlog append -> bridge::run_to_kafka -> Kafka consumer
//   from-kafka:  Kafka producer -> bridge::run_from_kafka -> shmlog consumer
// next to the baseline measured in the same run, a plain librdkafka
// producer with the bridge's producer properties (idempotent, gapless,
// the same linger) writing the same records straight to the mock cluster,
// read by the same Kafka consumer. Each measurement has a fresh cluster,
// topic and log; the paths alternate within each round; medians of rounds.
//
// Throughput: N records written flat out, timed from the first write until
// the reader has all N. Latency: records written at a fixed rate, each
// value carrying its intended write time (steady clock, one process), so a
// stalled writer counts against every record it delayed; the reader takes
// its receive time minus that; the first 10% are warm-up.
//
// The mock cluster, librdkafka's threads, the bridge and the readers all
// share this process and the host's cores: the figures bound what the
// bridge does on this host, not what it does against real brokers. The
// mock answers an empty Fetch only after the consumer's fetch.wait.max.ms
// (it does not cut the wait short when records arrive), so that setting
// (--fetch-wait-ms) is part of every latency figure, the baseline's too.
//
//   build/bench/shmlog_bridge_bench [--quick] [--records N] [--sizes 32,1024]
//       [--partitions P] [--rate R] [--seconds S] [--latency-size B]
//       [--linger-ms 0,5] [--fetch-wait-ms W] [--window-mib M] [--rounds R] [--dir DIR]
//       [--no-from-kafka]
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include "harness/host.h"
#include "shmlog/bridge/from_kafka.h"
#include "shmlog/bridge/to_kafka.h"
#include "shmlog/histogram.h"
#include "shmlog/log.h"

namespace shmlog::bench {
namespace {

using namespace std::chrono_literals;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "shmlog_bridge_bench: %s\n", what.c_str());
  std::exit(1);
}

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

struct Config {
  std::uint64_t records = 200000;  // throughput: records per measurement
  std::vector<std::size_t> sizes{32, 1024};
  // Throughput: the writer stays at most this much ahead of the reader, per
  // partition. The mock keeps only the last 5 MiB of each partition: a
  // reader further behind would lose records.
  double window_mib = 2;
  std::uint32_t partitions = 3;
  std::uint32_t rate = 2000;  // latency: records/s
  double seconds = 5;         // latency: how long
  std::size_t latency_size = 32;
  std::vector<std::uint32_t> lingers{0, 5};  // ms
  int fetch_wait_ms = 1;
  int rounds = 3;
  std::string dir = "/tmp";
  bool from_kafka = true;
  std::chrono::seconds patience{60};  // a measurement that takes longer fails
};

// ---- librdkafka: the mock cluster, a producer, a consumer ----

using Properties = std::vector<std::pair<std::string, std::string>>;
struct ClientDeleter {
  void operator()(rd_kafka_t* rk) const noexcept { rd_kafka_destroy(rk); }
};
using Client = std::unique_ptr<rd_kafka_t, ClientDeleter>;

Client make_client(rd_kafka_type_t type, const Properties& properties) {
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
Properties producer_properties(const std::string& bootstrap, std::uint32_t linger_ms) {
  return {{"bootstrap.servers", bootstrap},       {"log_level", "0"},
          {"enable.idempotence", "true"},         {"enable.gapless.guarantee", "true"},
          {"message.timeout.ms", "0"},            {"linger.ms", std::to_string(linger_ms)}};
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
        const std::string what = rd_kafka_message_errstr(m);
        rd_kafka_message_destroy(m);
        die("Kafka consumer: " + what + " (the mock cluster keeps 5 MiB per partition: see --window-mib)");
      }
      rd_kafka_message_destroy(m);
    }
    return got;
  }
  std::string where() override {
    std::string text;
    for (std::size_t p = 0; p < next_.size(); ++p) {
      std::int64_t low = 0, high = 0;
      (void)rd_kafka_query_watermark_offsets(consumer_.get(), topic_.c_str(), static_cast<std::int32_t>(p), &low,
                                             &high, 5000);
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

Log make_log(const Config& c, const std::string& path) {
  LogOptions lo;
  lo.partitions = c.partitions;
  lo.segment_size = 1u << 20;
  lo.ring_segments = 16;
  lo.max_record_size = 64u << 10;
  (void)Log::remove(path);
  auto log = Log::create(path, lo);
  if (!log.ok()) die(log.status().message());
  return std::move(log).value();
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
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    // Pairs with the release in the note.
    while (!ready_.load(std::memory_order_acquire)) {
      if (std::chrono::steady_clock::now() > deadline) die("the bridge did not start within 30 s");
      std::this_thread::sleep_for(1ms);
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
  ShmlogWriter(const Config& c, const std::string& path, const std::string& bootstrap, const std::string& topic,
               std::uint32_t linger_ms)
      : path_(path), log_(make_log(c, path)) {
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
    po.backpressure_timeout = 10min;  // the bridge's group holds the ring until Kafka acknowledges
    auto producer = log_.producer(po);
    if (!producer.ok()) die(producer.status().message());
    producer_.emplace(std::move(producer).value());
  }
  ~ShmlogWriter() override {
    producer_.reset();
    bridge_.reset();  // the bridge flushes and stops
    (void)Log::remove(path_);
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
  Log log_;
  std::optional<BridgeThread> bridge_;
  std::optional<Producer> producer_;
};

// from-kafka's sink: the bridge appends to a fresh log that a group reads.
class ShmlogReader : public Reader {
 public:
  ShmlogReader(const Config& c, const std::string& path, const std::string& bootstrap, const std::string& topic)
      : path_(path), log_(make_log(c, path)) {
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
    o.properties = {{"fetch.wait.max.ms", std::to_string(c.fetch_wait_ms)}};
    bridge_.emplace([o](const volatile std::sig_atomic_t* stop, std::function<void(const std::string&)> note) mutable {
      o.note = std::move(note);
      return bridge::run_from_kafka(o, stop, nullptr);
    });
  }
  ~ShmlogReader() override {
    bridge_.reset();
    consumer_.reset();
    (void)Log::remove(path_);
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
          256, 100ms);
    }
    return got;
  }

 private:
  std::string path_;
  Log log_;
  std::optional<Consumer> consumer_;
  std::optional<BridgeThread> bridge_;
};

// ---- the paths and the two measurements ----

enum class Path { kProducer, kToKafka, kFromKafka };
constexpr std::array<const char*, 3> kPathNames{"Kafka producer -> consumer", "shmlog -> to-kafka -> consumer",
                                                "producer -> from-kafka -> shmlog"};

// A fresh cluster, topic, log and both ends of `path`.
struct Rig {
  MockCluster cluster;
  std::string what;  // the path and its parameters, for errors
  std::unique_ptr<Writer> writer;
  std::unique_ptr<Reader> reader;

  void expect(std::uint64_t n, std::uint64_t got, std::chrono::seconds patience) {
    if (got < n) {
      die(what + ": the reader has " + std::to_string(got) + " of " + std::to_string(n) + " records after " +
          std::to_string(patience.count()) + " s;" + reader->where() + writer->where());
    }
  }
};

// One record through each partition before the clock starts: connections,
// metadata, the idempotent producer's id and the readers' first fetch
// positions are then in place, as in a bridge that has been running.
void prime(const Config& c, Rig& rig) {
  const std::vector<std::byte> value(16, std::byte{0});
  for (std::uint32_t p = 0; p < c.partitions; ++p) rig.writer->send(p, value);
  rig.expect(c.partitions, rig.reader->read(c.partitions, [](std::span<const std::byte>, std::uint64_t) {}, c.patience),
             c.patience);
}

std::unique_ptr<Rig> make_rig(const Config& c, Path path, std::uint32_t linger_ms, int serial,
                              const std::string& what) {
  auto rig = std::make_unique<Rig>();
  rig->what = std::string(kPathNames[static_cast<std::size_t>(path)]) + ", " + what + ", linger.ms " +
              std::to_string(linger_ms);
  const std::string topic = "bench-" + std::to_string(serial);
  rig->cluster.create_topic(topic, c.partitions);
  const std::string bootstrap = rig->cluster.bootstrap();
  const std::string log =
      c.dir + "/shmlog-bridge-bench-" + std::to_string(::getpid()) + "-" + std::to_string(serial);
  if (path == Path::kFromKafka) {
    rig->reader = std::make_unique<ShmlogReader>(c, log, bootstrap, topic);
  } else {
    rig->reader = std::make_unique<KafkaReader>(bootstrap, topic, c.partitions, c.fetch_wait_ms);
  }
  if (path == Path::kToKafka) {
    rig->writer = std::make_unique<ShmlogWriter>(c, log, bootstrap, topic, linger_ms);
  } else {
    rig->writer = std::make_unique<KafkaWriter>(bootstrap, topic, linger_ms);
  }
  prime(c, *rig);
  return rig;
}

// How many records of `size` the writer may be ahead of the reader (a
// record takes at most ~256 bytes more in the mock, the bridge's headers
// included).
std::uint64_t window(const Config& c, std::size_t size) {
  const double bytes = c.window_mib * static_cast<double>(1u << 20) * c.partitions;
  return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(bytes / static_cast<double>(size + 256)));
}

// Records/s from the first write until the reader has all of them.
double throughput(const Config& c, Path path, std::size_t size, int serial) {
  auto rig = make_rig(c, path, 5, serial, "throughput " + std::to_string(size) + " B");
  const std::vector<std::byte> value(size, std::byte{'v'});
  const std::uint64_t ahead = window(c, size);
  std::atomic<std::uint64_t> read{0};
  const std::uint64_t t0 = now_ns();
  std::thread writer([&] {
    for (std::uint64_t i = 0; i < c.records; ++i) {
      // Pairs with the release by the reader.
      while (i >= read.load(std::memory_order_acquire) + ahead) std::this_thread::sleep_for(100us);
      rig->writer->send(static_cast<std::uint32_t>(i % c.partitions), value);
    }
    rig->writer->finish();
  });
  std::uint64_t bytes = 0, n = 0;
  rig->expect(c.records,
              rig->reader->read(
                  c.records,
                  [&](std::span<const std::byte> v, std::uint64_t) {
                    bytes += v.size();
                    read.store(++n, std::memory_order_release);
                  },
                  c.patience),
              c.patience);
  const std::uint64_t t1 = now_ns();
  writer.join();
  if (bytes != c.records * size) die("the reader got records of the wrong size");
  return static_cast<double>(c.records) / (static_cast<double>(t1 - t0) / 1e9);
}

// Write time to read time of records written at c.rate, in ns.
Histogram latency(const Config& c, Path path, std::uint32_t linger_ms, int serial) {
  auto rig = make_rig(c, path, linger_ms, serial, "latency");
  const auto count = static_cast<std::uint64_t>(c.rate * c.seconds);
  const std::uint64_t warmup = count / 10;
  const std::size_t size = std::max<std::size_t>(c.latency_size, 16);
  const std::uint64_t start = now_ns() + 10'000'000;
  std::thread writer([&] {
    std::vector<std::byte> value(size, std::byte{'v'});
    for (std::uint64_t i = 0; i < count; ++i) {
      // The intended write time: a writer running late counts against the record.
      const std::uint64_t due = start + i * 1'000'000'000 / c.rate;
      std::this_thread::sleep_until(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(due)));
      std::memcpy(value.data(), &due, 8);
      std::memcpy(value.data() + 8, &i, 8);
      rig->writer->send(static_cast<std::uint32_t>(i % c.partitions), value);
    }
    rig->writer->finish();
  });
  Histogram h;
  const std::uint64_t got = rig->reader->read(
      count,
      [&](std::span<const std::byte> v, std::uint64_t now) {
        std::uint64_t due = 0, i = 0;
        std::memcpy(&due, v.data(), 8);
        std::memcpy(&i, v.data() + 8, 8);
        if (i >= warmup) h.record(now - due);
      },
      c.patience);
  rig->expect(count, got, c.patience);
  writer.join();
  return h;
}

// ---- the command line and the report ----

template <typename T>
std::vector<T> parse_list(const char* flag, std::string_view text) {
  std::vector<T> out;
  while (!text.empty()) {
    const std::size_t comma = std::min(text.find(','), text.size());
    T v{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + comma, v);
    if (ec != std::errc() || end != text.data() + comma) die(std::string(flag) + ": bad number in '" + std::string(text) + "'");
    out.push_back(v);
    text.remove_prefix(std::min(comma + 1, text.size()));
  }
  if (out.empty()) die(std::string(flag) + " needs a value");
  return out;
}

Config parse(int argc, char** argv) {
  Config c;
  auto value = [&](int& i) -> std::string_view {
    if (i + 1 >= argc) die(std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--quick") {
      c.records = 5000;
      c.sizes = {32};
      c.rate = 500;
      c.seconds = 0.5;
      c.lingers = {5};
      c.rounds = 1;
    } else if (a == "--records") {
      c.records = parse_list<std::uint64_t>("--records", value(i)).front();
    } else if (a == "--sizes") {
      c.sizes = parse_list<std::size_t>("--sizes", value(i));
    } else if (a == "--partitions") {
      c.partitions = parse_list<std::uint32_t>("--partitions", value(i)).front();
    } else if (a == "--rate") {
      c.rate = parse_list<std::uint32_t>("--rate", value(i)).front();
    } else if (a == "--seconds") {
      c.seconds = std::atof(std::string(value(i)).c_str());
    } else if (a == "--latency-size") {
      c.latency_size = parse_list<std::size_t>("--latency-size", value(i)).front();
    } else if (a == "--linger-ms") {
      c.lingers = parse_list<std::uint32_t>("--linger-ms", value(i));
    } else if (a == "--fetch-wait-ms") {
      c.fetch_wait_ms = parse_list<int>("--fetch-wait-ms", value(i)).front();
    } else if (a == "--window-mib") {
      c.window_mib = std::atof(std::string(value(i)).c_str());
    } else if (a == "--rounds") {
      c.rounds = parse_list<int>("--rounds", value(i)).front();
    } else if (a == "--dir") {
      c.dir = std::string(value(i));
    } else if (a == "--no-from-kafka") {
      c.from_kafka = false;
    } else {
      die("unknown argument '" + std::string(a) +
          "' (--quick --records N --sizes B,.. --partitions P --rate R --seconds S --latency-size B "
          "--linger-ms MS,.. --fetch-wait-ms MS --window-mib M --rounds R --dir DIR --no-from-kafka)");
    }
  }
  if (c.records < 1 || c.partitions < 1 || c.rate < 1 || c.seconds <= 0 || c.rounds < 1 || c.fetch_wait_ms < 0 ||
      c.window_mib <= 0) {
    die("--records, --partitions, --rate, --seconds, --window-mib and --rounds must be positive");
  }
  for (std::size_t s : c.sizes) {
    if (s < 1 || s > (60u << 10)) die("--sizes: 1 to 61440 bytes");
  }
  return c;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Latency {
  std::vector<double> p50, p99, p999, max;
  void add(const Histogram& h) {
    p50.push_back(static_cast<double>(h.percentile(50)) / 1e3);
    p99.push_back(static_cast<double>(h.percentile(99)) / 1e3);
    p999.push_back(static_cast<double>(h.percentile(99.9)) / 1e3);
    max.push_back(static_cast<double>(h.max()) / 1e3);
  }
};

std::vector<Path> paths(const Config& c) {
  std::vector<Path> p{Path::kProducer, Path::kToKafka};
  if (c.from_kafka) p.push_back(Path::kFromKafka);
  return p;
}

void run(const Config& c) {
  std::map<std::pair<Path, std::size_t>, std::vector<double>> rates;
  std::map<std::pair<Path, std::uint32_t>, Latency> latencies;
  std::map<std::pair<Path, std::size_t>, std::vector<double>> ratios;  // per round, to the producer's rate
  int serial = 0;
  for (int round = 0; round < c.rounds; ++round) {
    for (std::size_t size : c.sizes) {
      std::map<Path, double> r;
      for (Path p : paths(c)) {
        rates[{p, size}].push_back(r[p] = throughput(c, p, size, serial++));
        std::fprintf(stderr, "round %d, %zu B, %s: %.0f records/s\n", round + 1, size,
                     kPathNames[static_cast<std::size_t>(p)], r[p]);
      }
      for (Path p : paths(c)) ratios[{p, size}].push_back(r[p] / r[Path::kProducer]);
    }
    for (std::uint32_t linger : c.lingers) {
      for (Path p : paths(c)) latencies[{p, linger}].add(latency(c, p, linger, serial++));
    }
    std::fprintf(stderr, "round %d of %d done\n", round + 1, c.rounds);
  }

  std::printf("shmlog_bridge_bench: %s; librdkafka %s mock cluster (3 brokers) in this process; %u partitions; "
              "medians of %d rounds\n\n",
              host_summary().c_str(), rd_kafka_version_str(), c.partitions, c.rounds);
  std::printf("throughput: %llu records written flat out, at most %.1f MiB per partition ahead of the reader, "
              "until the reader has all (linger.ms 5); MB/s of values\n",
              static_cast<unsigned long long>(c.records), c.window_mib);
  std::printf("%6s  %-34s %12s %8s %10s\n", "size", "path", "records/s", "MB/s", "/ producer");
  for (std::size_t size : c.sizes) {
    for (Path p : paths(c)) {
      const double rate = median(rates[{p, size}]);
      const std::string ratio = p == Path::kProducer ? "" : std::to_string(median(ratios[{p, size}])).substr(0, 4);
      std::printf("%6zu  %-34s %12.0f %8.1f %10s\n", size, kPathNames[static_cast<int>(p)], rate,
                  rate * static_cast<double>(size) / 1e6, ratio.c_str());
    }
  }
  std::printf("\nlatency: %u records/s for %.1f s, %zu B, write (intended time) to read, first 10%% warm-up; "
              "consumer fetch.wait.max.ms %d\n",
              c.rate, c.seconds, std::max<std::size_t>(c.latency_size, 16), c.fetch_wait_ms);
  std::printf("%6s  %-34s %9s %9s %9s %9s\n", "linger", "path", "p50 ms", "p99 ms", "p99.9 ms", "max ms");
  for (std::uint32_t linger : c.lingers) {
    for (Path p : paths(c)) {
      const Latency& l = latencies[{p, linger}];
      std::printf("%6u  %-34s %9.2f %9.2f %9.2f %9.2f\n", linger, kPathNames[static_cast<int>(p)],
                  median(l.p50) / 1e3, median(l.p99) / 1e3, median(l.p999) / 1e3, median(l.max) / 1e3);
    }
  }
}

}  // namespace
}  // namespace shmlog::bench

int main(int argc, char** argv) {
  shmlog::bench::run(shmlog::bench::parse(argc, argv));
  return 0;
}
