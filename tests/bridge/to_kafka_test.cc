// `shmlog bridge to-kafka` against librdkafka's in-process mock cluster
// (hosted by this test process), the bridge run as the real command in
// processes of its own: SIGKILLed at random moments and restarted, every
// record reaches the topic exactly once, in order per partition.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bridge/kafka_test_util.h"
#include "shmlog/log.h"
#include "shmlog/shm/process.h"
#include "test_util.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kPartitions = 3;

using test::contents;
using test::MockCluster;
using test::Outcome;
using test::wait_started;

std::uint32_t start_bridge(std::vector<std::string> args, const std::string& work) {
  args.insert(args.begin(), {"bridge", "to-kafka"});
  return test::start_command(args, work);
}

Outcome run_bridge(std::vector<std::string> args, const std::string& work, std::chrono::milliseconds patience = 60s) {
  args.insert(args.begin(), {"bridge", "to-kafka"});
  return test::run_command(args, work, patience);
}

struct Copy {
  std::uint64_t offset = 0;
  std::string key, value;
  std::int64_t timestamp_ms = 0;
  bool operator==(const Copy&) const = default;
};
using ByPartition = std::vector<std::vector<Copy>>;

ByPartition read_log(const Log& log) {
  ByPartition all(kPartitions);
  auto c = log.consumer({}).value();
  for (;;) {
    const auto r = c.poll(
        [&](const Record& rec) {
          all[rec.partition].push_back({rec.offset, test::bytes_to_string(rec.key), test::bytes_to_string(rec.value),
                                        static_cast<std::int64_t>(rec.timestamp_ns / 1000000)});
        },
        1024);
    if (r.records == 0) return all;
  }
}

std::string header(const rd_kafka_message_t* m, const char* name) {
  rd_kafka_headers_t* h = nullptr;
  const void* v = nullptr;
  std::size_t n = 0;
  if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return "(none)";
  }
  return {static_cast<const char*>(v), n};
}

// Every record of `topic`, its shmlog offset from its header.
ByPartition read_topic(const std::string& bootstrap, const std::string& topic) {
  ByPartition all(kPartitions);
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char why[256];
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), why, sizeof why);
  rd_kafka_conf_set(conf, "log_level", "0", why, sizeof why);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
  EXPECT_NE(rk, nullptr) << why;
  if (rk == nullptr) return all;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  for (std::int32_t p = 0; p < static_cast<std::int32_t>(kPartitions); ++p) {
    std::int64_t low = 0, high = 0;
    EXPECT_EQ(rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    if (high == 0) continue;
    EXPECT_EQ(rd_kafka_consume_start(rkt, p, RD_KAFKA_OFFSET_BEGINNING), 0);
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    std::int64_t next = 0;
    while (next < high && std::chrono::steady_clock::now() < deadline) {
      rd_kafka_message_t* m = rd_kafka_consume(rkt, p, 200);
      if (m == nullptr) continue;
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* k = static_cast<const char*>(m->key);
        const char* v = static_cast<const char*>(m->payload);
        all[static_cast<std::size_t>(p)].push_back(
            {std::stoull(header(m, "shmlog.offset")), k == nullptr ? "" : std::string(k, m->key_len),
             v == nullptr ? "" : std::string(v, m->len), rd_kafka_message_timestamp(m, nullptr)});
        EXPECT_EQ(header(m, "shmlog.partition"), std::to_string(p));
        next = m->offset + 1;
      }
      rd_kafka_message_destroy(m);
    }
    EXPECT_EQ(next, high) << "partition " << p << " not read to its end";
    rd_kafka_consume_stop(rkt, p);
  }
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  return all;
}

// Where a partition read from Kafka first differs from the log's, for a
// failure message.
std::string first_difference(const std::vector<Copy>& kafka, const std::vector<Copy>& log) {
  const auto [k, l] = std::mismatch(kafka.begin(), kafka.end(), log.begin(), log.end());
  if (k == kafka.end() && l == log.end()) return "none";
  std::string at = "record " + std::to_string(k - kafka.begin()) + ": Kafka has ";
  at += k == kafka.end() ? "nothing" : "offset " + std::to_string(k->offset);
  at += ", the log ";
  at += l == log.end() ? "nothing" : "offset " + std::to_string(l->offset);
  return at;
}

std::size_t count_topic(const std::string& bootstrap, const std::string& topic) {
  std::size_t n = 0;
  for (const auto& p : read_topic(bootstrap, topic)) n += p.size();
  return n;
}

class BridgeToKafka : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.ok());
    auto log = Log::create(
        path_.str(),
        {.partitions = kPartitions, .segment_size = 64u << 10, .ring_segments = 64, .max_record_size = 4096});
    ASSERT_TRUE(log.ok()) << log.status().message();
    log_.emplace(std::move(*log));
    work_ = path_.str() + "-bridge";
  }
  void append(std::uint32_t n) {
    auto producer = log_->producer().value();
    for (std::uint32_t i = appended_; i < appended_ + n; ++i) {
      const std::string key = "k" + std::to_string(i), value = "value " + std::to_string(i);
      ASSERT_TRUE(producer.append_to(i % kPartitions, as_bytes(key), as_bytes(value)));
    }
    appended_ += n;
  }
  std::vector<std::string> args(const std::string& topic, std::vector<std::string> more = {}) {
    std::vector<std::string> a{path_.str(), "--bootstrap", cluster_.bootstrap(), "--topic", topic};
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }

  MockCluster cluster_{3};
  test::TempLogPath path_;
  std::optional<Log> log_;
  std::string work_;
  std::uint32_t appended_ = 0;
};

TEST_F(BridgeToKafka, EveryRecordOnceInOrderAcrossKills) {
  cluster_.create_topic("orders", kPartitions);
  // Slow brokers and small requests, so that kills land mid-stream: with
  // 5 requests in flight of 20 records each, about 2000 records a second.
  for (int broker = 1; broker <= 3; ++broker) cluster_.set_rtt(broker, 10);
  const auto a = args("orders", {"--batch", "16", "--linger-ms", "0", "--property", "batch.num.messages=20"});
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> delay_ms(0, 300);
  // 500 records more before each killed run and the last one: 5 kills and
  // 3000 records, or SHMLOG_BRIDGE_KILLS kills (the long run).
  const char* long_run = std::getenv("SHMLOG_BRIDGE_KILLS");
  const int kills = long_run != nullptr ? std::atoi(long_run) : 5;
  for (int kill = 0; kill < kills; ++kill) {
    append(500);
    const std::string work = work_ + "-" + std::to_string(kill);
    const auto pid = start_bridge(a, work);
    wait_started(work);  // then a kill in the first 300 ms of the stream
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    shm::kill_process(pid);
    const int code = shm::wait_process(pid);
    ASSERT_EQ(code, 128 + SIGKILL) << contents(work + ".err");
    // Where the kills landed, for the log (no assertion on timing).
    std::printf("kill %d: %zu of %d records in Kafka\n", kill, count_topic(cluster_.bootstrap(), "orders"),
                (kill + 1) * 500);
  }
  append(500);
  auto last_args = a;
  last_args.insert(last_args.end(), {"--idle-exit-ms", "1000"});
  const auto last = run_bridge(last_args, work_);
  ASSERT_EQ(last.code, 0) << last.err;
  const ByPartition in_log = read_log(*log_);
  const ByPartition in_kafka = read_topic(cluster_.bootstrap(), "orders");
  std::size_t total = 0;
  for (const auto& p : in_log) total += p.size();
  EXPECT_EQ(total, (static_cast<std::size_t>(kills) + 1) * 500);  // all still in the ring: the reference
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(in_kafka[p].size(), in_log[p].size()) << "partition " << p;
    EXPECT_TRUE(in_kafka[p] == in_log[p]) << "partition " << p << " differs at " << first_difference(in_kafka[p], in_log[p]);
  }
  // The group's offsets, a hint committed after Kafka's acknowledgements,
  // reached the end.
  bool found = false;
  for (const auto& g : log_->info().groups) {
    if (g.name != "kafka-orders") continue;
    found = true;
    for (const auto& gp : g.partitions) EXPECT_EQ(gp.committed_offset, gp.end_offset) << "partition " << gp.partition;
  }
  EXPECT_TRUE(found) << "no group kafka-orders in the log";
}

// Librdkafka 2.0.2's mock cluster checks an idempotent producer's
// sequence numbers only for a transactional producer
// (rd_kafka_mock_validate_records returns at once without a
// TransactionalId). Two things a Kafka broker refuses then pass:
// - A request that follows a failed one with more of the same partition
//   is appended (a broker refuses it as out of order, and librdkafka
//   sends both again). Librdkafka then takes its success to mean the
//   failed one was appended too, and reports both delivered: the failed
//   one's records are lost. So the fault test keeps one request in flight
//   per connection, and moves leaders only with nothing in flight (two
//   brokers would each have one).
// - A request the mock appended but whose response was lost to a broker
//   going down is appended again when librdkafka retries it (a broker
//   acknowledges the retry as a duplicate without appending it).
// This takes such replays out of a partition read from the mock and says
// how many it took: a record at or below the highest shmlog offset seen
// before it must be an exact copy of the record already there at that
// offset, or the test fails.
std::size_t drop_mock_replays(std::vector<Copy>& partition, std::uint32_t p) {
  std::vector<Copy> kept;
  for (const Copy& c : partition) {
    if (kept.empty() || c.offset > kept.back().offset) {
      kept.push_back(c);
      continue;
    }
    const auto same = std::lower_bound(kept.begin(), kept.end(), c.offset,
                                       [](const Copy& k, std::uint64_t offset) { return k.offset < offset; });
    EXPECT_TRUE(same != kept.end() && *same == c)
        << "partition " << p << ": offset " << c.offset << " out of order, not a replay of a record already there";
  }
  const std::size_t replays = partition.size() - kept.size();
  partition = std::move(kept);
  return replays;
}

TEST_F(BridgeToKafka, BrokerErrorsLeaderMovesAndABrokerDownNeitherLoseNorRepeat) {
  cluster_.create_topic("orders", kPartitions);
  for (int broker = 1; broker <= 3; ++broker) cluster_.set_rtt(broker, 5);
  append(3000);
  // The first Produce requests (api key 0) fail with retriable errors;
  // then, while records flow, broker 1 is down a while.
  constexpr std::int16_t kProduce = 0;
  cluster_.push_request_errors(kProduce,
                               {RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE});
  const auto pid =
      start_bridge(args("orders", {"--batch", "16", "--linger-ms", "0", "--property", "batch.num.messages=20",
                                   "--property", "max.in.flight.requests.per.connection=1"}),
                   work_);
  wait_started(work_);
  std::this_thread::sleep_for(50ms);
  cluster_.set_broker_up(1, false);
  std::this_thread::sleep_for(300ms);
  cluster_.set_broker_up(1, true);
  // Then every leader moves, with nothing in flight (see drop_mock_replays:
  // with requests in flight to two brokers the mock can take a later one
  // before an earlier one), and more records follow the new leaders.
  const auto all = test::wait_for_bridge(path_.str(), work_, [](const nlohmann::json& b) {
    return b.value("records", 0) == 3000;
  });
  EXPECT_EQ(all.value("records", 0), 3000) << all.dump();
  cluster_.set_leader("orders", 0, 2);
  cluster_.set_leader("orders", 1, 3);
  cluster_.set_leader("orders", 2, 1);
  append(300);
  const auto more = test::wait_for_bridge(path_.str(), work_, [](const nlohmann::json& b) {
    return b.value("records", 0) == 3300;
  });
  EXPECT_EQ(more.value("records", 0), 3300) << more.dump();
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGTERM), 0);
  EXPECT_EQ(shm::wait_process_for(pid, 60s), 0) << contents(work_ + ".err");
  const ByPartition in_log = read_log(*log_);
  ByPartition in_kafka = read_topic(cluster_.bootstrap(), "orders");
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    // How many the mock appended twice, for the log (a matter of timing).
    std::printf("partition %u: %zu records replayed by the mock\n", p, drop_mock_replays(in_kafka[p], p));
    EXPECT_EQ(in_kafka[p].size(), in_log[p].size()) << "partition " << p;
    EXPECT_TRUE(in_kafka[p] == in_log[p]) << "partition " << p << " differs at " << first_difference(in_kafka[p], in_log[p]);
  }
}

// kcat (Debian: kcat; tools/setup.sh installs it), the usual Kafka
// command-line client, reads what the bridge wrote: partition, key, value
// and the shmlog headers.
TEST_F(BridgeToKafka, KcatReadsWhatTheBridgeWrote) {
  cluster_.create_topic("orders", kPartitions);
  append(30);
  ASSERT_EQ(run_bridge(args("orders", {"--idle-exit-ms", "300"}), work_).code, 0) << contents(work_ + ".err");
  const std::string command = "kcat -C -b " + cluster_.bootstrap() + " -t orders -e -q -f '%p %k %s %h\\n' 2>&1";
  FILE* kcat = ::popen(command.c_str(), "r");
  ASSERT_NE(kcat, nullptr);
  std::string out;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, kcat)) > 0;) out.append(buffer, n);
  ASSERT_EQ(::pclose(kcat), 0) << "kcat failed (is it installed? tools/setup.sh installs it): " << out;
  const ByPartition in_log = read_log(*log_);
  std::size_t lines = 0;
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    for (const Copy& c : in_log[p]) {
      const std::string line = std::to_string(p) + " " + c.key + " " + c.value + " shmlog.log=";
      EXPECT_NE(out.find(line), std::string::npos) << line << " not in:\n" << out;
      EXPECT_NE(out.find("shmlog.partition=" + std::to_string(p) + ",shmlog.offset=" + std::to_string(c.offset) + ","),
                std::string::npos)
          << out;
      ++lines;
    }
  }
  EXPECT_EQ(lines, 30u);
  EXPECT_EQ(static_cast<std::size_t>(std::count(out.begin(), out.end(), '\n')), 30u) << out;
}

// `shmlog stat` and the exporter show a running bridge's counters: what
// Kafka acknowledged, then errors while every broker is down, then the
// rest acknowledged; the counters go with a clean exit.
TEST_F(BridgeToKafka, StatAndTheExporterShowTheBridge) {
  cluster_.create_topic("orders", kPartitions);
  append(300);
  const auto pid = start_bridge(args("orders"), work_);
  wait_started(work_);
  const auto all = test::wait_for_bridge(path_.str(), work_, [](const nlohmann::json& b) {
    return b.value("records", 0) == 300;
  });
  EXPECT_EQ(all.value("records", 0), 300) << all.dump();
  EXPECT_EQ(all.value("direction", ""), "to-kafka");
  EXPECT_EQ(all.value("topic", ""), "orders");
  EXPECT_EQ(all.value("up", false), true);
  EXPECT_EQ(all.value("lag", -1), 0);
  EXPECT_GE(all.value("age_ms", std::int64_t{-1}), 0);
  EXPECT_LT(all.value("age_ms", std::int64_t{-1}), 600'000);  // from the records' own timestamps, not Kafka's

  const int port = 20000 + static_cast<int>(std::random_device{}() % 20000);
  const auto exporter = test::start_command({"exporter", path_.str(), "--listen", "127.0.0.1:" + std::to_string(port)},
                                            work_ + "-exporter");
  std::string metrics;
  for (int i = 0; i < 100 && metrics.find("shmlog_bridge_up{") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
    const std::string command = "curl -sf http://127.0.0.1:" + std::to_string(port) + "/metrics";
    FILE* curl = ::popen(command.c_str(), "r");
    ASSERT_NE(curl, nullptr);
    metrics.clear();
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, curl)) > 0;) metrics.append(buffer, n);
    (void)::pclose(curl);
  }
  shm::kill_process(exporter);
  (void)shm::wait_process(exporter);
  // One line each, labelled with the log, the direction and the topic.
  const auto line_of = [&](const std::string& name) {
    const auto at = metrics.find("\n" + name + "{");
    return at == std::string::npos ? std::string() : metrics.substr(at + 1, metrics.find('\n', at + 1) - at - 1);
  };
  for (const auto& [name, value] :
       {std::pair{"shmlog_bridge_up", " 1"}, {"shmlog_bridge_records_total", " 300"}, {"shmlog_bridge_lag_records", " 0"}}) {
    const std::string line = line_of(name);
    EXPECT_NE(line.find("direction=\"to-kafka\""), std::string::npos) << name << ":\n" << metrics;
    EXPECT_NE(line.find("topic=\"orders\""), std::string::npos) << line;
    EXPECT_TRUE(line.ends_with(value)) << line;
  }
  EXPECT_NE(line_of("shmlog_bridge_age_seconds"), "") << metrics;

  // Every broker down while records are to be sent: librdkafka reports it.
  for (int broker = 1; broker <= 3; ++broker) cluster_.set_broker_up(broker, false);
  append(30);
  const auto down = test::wait_for_bridge(path_.str(), work_, [](const nlohmann::json& b) {
    return b.value("kafka_errors", 0) > 0;
  });
  EXPECT_GT(down.value("kafka_errors", 0), 0) << down.dump();
  EXPECT_EQ(down.value("up", false), true);
  for (int broker = 1; broker <= 3; ++broker) cluster_.set_broker_up(broker, true);
  const auto back = test::wait_for_bridge(path_.str(), work_, [](const nlohmann::json& b) {
    return b.value("records", 0) == 330;
  });
  EXPECT_EQ(back.value("records", 0), 330) << back.dump();
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGTERM), 0);
  EXPECT_EQ(shm::wait_process_for(pid, 30s), 0) << contents(work_ + ".err");
  EXPECT_EQ(test::stat_bridges(path_.str(), work_).size(), 0u);
}

TEST_F(BridgeToKafka, KafkaIsTheTruthNotTheGroupsOffsets) {
  cluster_.create_topic("t", kPartitions);
  append(300);
  const auto once = args("t", {"--idle-exit-ms", "300"});
  ASSERT_EQ(run_bridge(once, work_).code, 0) << contents(work_ + ".err");
  // The hint says nothing was bridged: the bridge still resumes after
  // what Kafka holds.
  ASSERT_TRUE(log_->reset_group("kafka-t", GroupReset::earliest()).ok());
  append(300);
  const auto again = run_bridge(once, work_);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(read_topic(cluster_.bootstrap(), "t"), read_log(*log_));
}

TEST_F(BridgeToKafka, RecordsAnOverwriteRingReusedAreReportedNotRepeated) {
  cluster_.create_topic("t", kPartitions);
  test::TempLogPath path;
  auto small = Log::create(path.str(), {.partitions = kPartitions,
                                        .segment_size = 64u << 10,
                                        .ring_segments = 2,
                                        .policy = Policy::kOverwrite,
                                        .max_record_size = 4096});
  ASSERT_TRUE(small.ok()) << small.status().message();
  auto producer = small->producer().value();
  const std::string value(200, 'v');
  auto append_some = [&](int n) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(producer.append_to(i % kPartitions, {}, as_bytes(value)));
  };
  auto a = args("t", {"--idle-exit-ms", "300"});
  a[0] = path.str();
  append_some(30);
  ASSERT_EQ(run_bridge(a, work_).code, 0) << contents(work_ + ".err");
  const ByPartition first = read_topic(cluster_.bootstrap(), "t");
  append_some(3000);  // 1000 records of 200 bytes a partition: laps a ring of 128 KiB
  const auto second = run_bridge(a, work_);
  ASSERT_EQ(second.code, 0) << second.err;
  EXPECT_NE(second.err.find("were overwritten before they reached Kafka"), std::string::npos) << second.err;
  // Kafka: the first run's records, then those the ring still holds, once.
  const ByPartition now = read_log(*small);
  const ByPartition in_kafka = read_topic(cluster_.bootstrap(), "t");
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    ByPartition::value_type expected = first[p];
    expected.insert(expected.end(), now[p].begin(), now[p].end());
    for (auto& c : expected) c.timestamp_ms = 0;
    ByPartition::value_type got = in_kafka[p];
    for (auto& c : got) c.timestamp_ms = 0;
    EXPECT_TRUE(got == expected) << "partition " << p << ": " << got.size() << " records, expected " << expected.size();
  }
}

TEST_F(BridgeToKafka, ATopicFedByAnotherLogIsRefused) {
  cluster_.create_topic("t", kPartitions);
  append(30);
  ASSERT_EQ(run_bridge(args("t", {"--idle-exit-ms", "300"}), work_).code, 0) << contents(work_ + ".err");
  test::TempLogPath other;
  ASSERT_TRUE(Log::create(other.str(), {.partitions = kPartitions}).ok());
  auto a = args("t");
  a[0] = other.str();
  const auto o = run_bridge(a, work_);
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("holds records of log"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << o.err;
}

// SIGTERM stops reading and flushes what was sent: Kafka then holds a
// prefix of each partition (all of it if the bridge had read that far;
// how far it got depends on the machine's load), and a restart carries on
// from there without a repeat.
TEST_F(BridgeToKafka, SigtermFlushesAndExitsZero) {
  cluster_.create_topic("t", kPartitions);
  append(300);
  const auto pid = start_bridge(args("t"), work_);
  wait_started(work_);
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGTERM), 0);
  EXPECT_EQ(shm::wait_process_for(pid, 30s), 0) << contents(work_ + ".err");
  const ByPartition in_log = read_log(*log_);
  const ByPartition in_kafka = read_topic(cluster_.bootstrap(), "t");
  ASSERT_EQ(in_kafka.size(), in_log.size());
  for (std::size_t p = 0; p < in_log.size(); ++p) {
    ASSERT_LE(in_kafka[p].size(), in_log[p].size()) << "partition " << p;
    EXPECT_TRUE(std::equal(in_kafka[p].begin(), in_kafka[p].end(), in_log[p].begin())) << "partition " << p;
  }
  const auto rest = run_bridge(args("t", {"--idle-exit-ms", "300"}), work_);
  ASSERT_EQ(rest.code, 0) << rest.err;
  EXPECT_EQ(read_topic(cluster_.bootstrap(), "t"), in_log);
}

TEST_F(BridgeToKafka, SecondBridgeOnTheSameTopicIsRefused) {
  cluster_.create_topic("t", kPartitions);
  const auto first = start_bridge(args("t"), work_);
  wait_started(work_);
  const auto second = run_bridge(args("t"), work_ + "2");
  EXPECT_EQ(second.code, 1);
  EXPECT_NE(second.err.find("another bridge to Kafka topic 't'"), std::string::npos) << second.err;
  ASSERT_EQ(::kill(static_cast<pid_t>(first), SIGTERM), 0);
  EXPECT_EQ(shm::wait_process_for(first, 30s), 0) << contents(work_ + ".err");
}

TEST_F(BridgeToKafka, MissingTopicIsOneLineError) {
  cluster_.set_topic_error("absent", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  const auto o = run_bridge(args("absent", {"--timeout-ms", "5000"}), work_);
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("Kafka topic 'absent' does not exist"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << o.err;
}

TEST_F(BridgeToKafka, UnauthorizedTopicIsOneLineError) {
  cluster_.create_topic("secret", kPartitions);
  cluster_.set_topic_error("secret", RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  const auto o = run_bridge(args("secret", {"--timeout-ms", "5000"}), work_);
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("not authorized for Kafka topic 'secret'"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << o.err;
}

TEST_F(BridgeToKafka, PartitionCountMismatchIsOneLineError) {
  cluster_.create_topic("two", 2);
  const auto o = run_bridge(args("two"), work_);
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("has 2 partitions"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << o.err;
}

TEST_F(BridgeToKafka, PropertiesExactlyOnceRestsOnAreRefused) {
  cluster_.create_topic("t", kPartitions);
  for (const char* p : {"enable.idempotence=false", "message.timeout.ms=1000", "transactional.id=x"}) {
    const auto o = run_bridge(args("t", {"--property", p}), work_);
    EXPECT_EQ(o.code, 1) << p;
    EXPECT_NE(o.err.find("set by the bridge"), std::string::npos) << o.err;
  }
  const auto bad = run_bridge(args("t", {"--property", "no.such.property=1"}), work_);
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("no.such.property"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find('\n'), bad.err.size() - 1) << bad.err;
}

TEST_F(BridgeToKafka, UnreachableBrokersFailWithinTheTimeout) {
  // Port 1: nobody listens there, connections are refused.
  std::vector<std::string> a{path_.str(), "--bootstrap", "127.0.0.1:1", "--topic", "t", "--timeout-ms", "1500"};
  const auto started = std::chrono::steady_clock::now();
  const auto o = run_bridge(a, work_, 30s);
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("Kafka at 127.0.0.1:1"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << o.err;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 20s);  // bounded, not a timing check
}

}  // namespace
}  // namespace shmlog
