// `shmlog bridge from-kafka` against librdkafka's in-process mock cluster
// (hosted by this test process), the bridge run as the real command in
// processes of its own: SIGKILLed at random moments and restarted, every
// Kafka record reaches the log exactly once, in order per partition, as
// `shmlog consume` prints it.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>

#include <array>
#include <cinttypes>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bridge/kafka_test_util.h"
#include "shmlog/bridge/from_kafka.h"
#include "shmlog/log.h"
#include "shmlog/shm/process.h"
#include "test_util.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;
using test::contents;
using test::MockCluster;
using test::Outcome;
using test::wait_started;

constexpr std::uint32_t kPartitions = 3;

// A record as Kafka holds it and as the log must hold it.
struct Copy {
  std::string key, value;
  std::int64_t timestamp_ms = 0;
  std::uint64_t sequence = 0;  // in the log: the Kafka offset
  bool operator==(const Copy&) const = default;
};
using ByPartition = std::vector<std::vector<Copy>>;

// The test's own Kafka producer (not idempotent: the mock then keeps what
// it is sent, in order, as a plain broker would).
class KafkaProducer {
 public:
  explicit KafkaProducer(const std::string& bootstrap) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char why[256];
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), why, sizeof why);
    rd_kafka_conf_set(conf, "log_level", "0", why, sizeof why);
    rd_kafka_conf_set(conf, "linger.ms", "0", why, sizeof why);
    rd_kafka_conf_set(conf, "batch.num.messages", "10", why, sizeof why);  // small fetches for the bridge
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
  }
  ~KafkaProducer() {
    if (rk_ != nullptr) rd_kafka_destroy(rk_);
  }
  void produce(const std::string& topic, std::int32_t partition, const Copy& c) {
    ASSERT_NE(rk_, nullptr);
    std::array<rd_kafka_vu_t, 6> vu{};
    vu[0].vtype = RD_KAFKA_VTYPE_TOPIC;
    vu[0].u.cstr = topic.c_str();
    vu[1].vtype = RD_KAFKA_VTYPE_PARTITION;
    vu[1].u.i32 = partition;
    vu[2].vtype = RD_KAFKA_VTYPE_KEY;
    vu[2].u.mem = {const_cast<char*>(c.key.data()), c.key.size()};
    vu[3].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[3].u.mem = {const_cast<char*>(c.value.data()), c.value.size()};
    vu[4].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[4].u.i = RD_KAFKA_MSG_F_COPY;
    vu[5].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
    vu[5].u.i64 = c.timestamp_ms;
    rd_kafka_error_t* error = rd_kafka_produceva(rk_, vu.data(), vu.size());
    EXPECT_EQ(error, nullptr) << rd_kafka_error_string(error);
    if (error != nullptr) rd_kafka_error_destroy(error);
  }
  void flush() { ASSERT_EQ(rd_kafka_flush(rk_, 30000), RD_KAFKA_RESP_ERR_NO_ERROR); }

 private:
  rd_kafka_t* rk_ = nullptr;
};

// A client of Kafka consumer group `group` (assigned nothing: for its offsets).
rd_kafka_t* group_client(const std::string& bootstrap, const std::string& group) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char why[256];
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), why, sizeof why);
  rd_kafka_conf_set(conf, "group.id", group.c_str(), why, sizeof why);
  rd_kafka_conf_set(conf, "log_level", "0", why, sizeof why);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
  EXPECT_NE(rk, nullptr) << why;
  return rk;
}

// Every partition of `topic` in a list, each at `offset`.
rd_kafka_topic_partition_list_t* all_partitions(const std::string& topic, std::int64_t offset) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(kPartitions);
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), static_cast<std::int32_t>(p))->offset = offset;
  }
  return list;
}

// The group's committed offsets of `topic`, partition by partition (-1: none).
std::vector<std::int64_t> committed(const std::string& bootstrap, const std::string& group, const std::string& topic) {
  rd_kafka_t* rk = group_client(bootstrap, group);
  std::vector<std::int64_t> offsets(kPartitions, -1);
  rd_kafka_topic_partition_list_t* list = all_partitions(topic, RD_KAFKA_OFFSET_INVALID);
  EXPECT_EQ(rd_kafka_committed(rk, list, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  for (int i = 0; i < list->cnt; ++i) offsets[static_cast<std::size_t>(list->elems[i].partition)] = list->elems[i].offset;
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
  return offsets;
}

// Commits `offset` for every partition of `topic` in the group.
void commit_all(const std::string& bootstrap, const std::string& group, const std::string& topic,
                std::int64_t offset) {
  rd_kafka_t* rk = group_client(bootstrap, group);
  rd_kafka_topic_partition_list_t* list = all_partitions(topic, offset);
  EXPECT_EQ(rd_kafka_commit(rk, list, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
}

ByPartition read_log(const Log& log) {
  ByPartition all(kPartitions);
  auto c = log.consumer({}).value();
  for (;;) {
    const auto r = c.poll(
        [&](const Record& rec) {
          all[rec.partition].push_back({test::bytes_to_string(rec.key), test::bytes_to_string(rec.value),
                                        static_cast<std::int64_t>(rec.timestamp_ns / 1000000), rec.sequence});
        },
        1024);
    if (r.records == 0) return all;
  }
}

// What `shmlog consume --print-offsets --print-key` prints of the log:
// "KEY\tVALUE" lines, by partition.
std::vector<std::vector<std::string>> consume_with_the_command(const std::string& log, const std::string& work) {
  const Outcome o = test::run_command({"consume", log, "--print-offsets", "--print-key", "--idle-timeout-ms", "300"},
                                      work + "-consume");
  EXPECT_EQ(o.code, 0) << o.err;
  std::vector<std::vector<std::string>> lines(kPartitions);
  std::istringstream out(contents(work + "-consume.out"));
  for (std::string line; std::getline(out, line);) {
    const auto colon = line.find(':');
    const auto tab = line.find('\t');
    if (colon == std::string::npos || tab == std::string::npos) {
      ADD_FAILURE() << "a line without PARTITION:OFFSET: " << line;
      continue;
    }
    const auto p = std::stoul(line.substr(0, colon));
    if (p < kPartitions) lines[p].push_back(line.substr(tab + 1));
  }
  return lines;
}

class BridgeFromKafka : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.ok());
    auto log = Log::create(path_.str(), {.partitions = kPartitions,
                                         .segment_size = 256u << 10,
                                         .ring_segments = 64,
                                         .max_record_size = 4096});
    ASSERT_TRUE(log.ok()) << log.status().message();
    log_.emplace(std::move(*log));
    work_ = path_.str() + "-bridge";
  }
  // `n` more records into `topic`, round robin over the partitions.
  void produce(std::uint32_t n, const std::string& topic = "orders") {
    KafkaProducer producer(cluster_.bootstrap());
    for (std::uint32_t i = produced_; i < produced_ + n; ++i) {
      const std::uint32_t p = i % kPartitions;
      Copy c{"k" + std::to_string(i), "value " + std::to_string(i), 1'600'000'000'000 + i, sent_[p].size()};
      producer.produce(topic, static_cast<std::int32_t>(p), c);
      sent_[p].push_back(c);
    }
    producer.flush();
    produced_ += n;
  }
  std::vector<std::string> args(const std::string& topic, std::vector<std::string> more = {}) {
    std::vector<std::string> a{"bridge", "from-kafka", "--bootstrap", cluster_.bootstrap(), "--topic", topic,
                               "--group", "g", path_.str()};
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
  // The log holds what was sent, each once, in order, as the library and
  // `shmlog consume` read it.
  void expect_log_holds_what_was_sent() {
    const ByPartition in_log = read_log(*log_);
    const auto printed = consume_with_the_command(path_.str(), work_);
    for (std::uint32_t p = 0; p < kPartitions; ++p) {
      EXPECT_EQ(in_log[p].size(), sent_[p].size()) << "partition " << p;
      EXPECT_TRUE(in_log[p] == sent_[p]) << "partition " << p << " differs";
      ASSERT_EQ(printed[p].size(), sent_[p].size()) << "partition " << p;
      for (std::size_t i = 0; i < sent_[p].size(); ++i) {
        EXPECT_EQ(printed[p][i], sent_[p][i].key + "\t" + sent_[p][i].value) << "partition " << p << " record " << i;
      }
    }
  }

  MockCluster cluster_{3};
  test::TempLogPath path_;
  std::optional<Log> log_;
  std::string work_;
  std::uint32_t produced_ = 0;
  ByPartition sent_ = ByPartition(kPartitions);
};

TEST_F(BridgeFromKafka, EveryRecordOnceInOrderAcrossKills) {
  cluster_.create_topic("orders", kPartitions);
  // Slow brokers and small fetches, so that kills land mid-stream; offsets
  // committed often, so that kills land between appends and commits too.
  for (int broker = 1; broker <= 3; ++broker) cluster_.set_rtt(broker, 10);
  const auto a = args("orders", {"--commit-interval-ms", "20", "--property", "max.partition.fetch.bytes=256"});
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<std::uint64_t> more(1, 499);
  const auto appended = [&] {
    std::uint64_t n = 0;
    for (const auto& p : log_->info().partitions) n += p.appends;
    return n;
  };
  // 500 records more before each killed run and the last one: 5 kills and
  // 3000 records, or SHMLOG_BRIDGE_KILLS kills (the long run). Each kill
  // lands once the bridge appended a random number of the new records
  // (or, should it stall, after 30 s).
  const char* long_run = std::getenv("SHMLOG_BRIDGE_KILLS");
  const int kills = long_run != nullptr ? std::atoi(long_run) : 5;
  for (int kill = 0; kill < kills; ++kill) {
    const std::uint64_t target = appended() + more(rng);
    produce(500);
    const std::string work = work_ + "-" + std::to_string(kill);
    const auto pid = test::start_command(a, work);
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (appended() < target && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    shm::kill_process(pid);
    ASSERT_EQ(shm::wait_process(pid), 128 + SIGKILL) << contents(work + ".err");
    // Where the kills landed, for the log (no assertion on timing).
    std::printf("kill %d: %" PRIu64 " of %d records in the log\n", kill, appended(), (kill + 1) * 500);
  }
  produce(500);
  auto last = a;
  last.insert(last.end(), {"--idle-exit-ms", "1000"});
  const Outcome o = test::run_command(last, work_);
  ASSERT_EQ(o.code, 0) << o.err;
  expect_log_holds_what_was_sent();
  // The group's offsets, a hint committed after the appends, reached the end.
  const auto offsets = committed(cluster_.bootstrap(), "g", "orders");
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(offsets[p], static_cast<std::int64_t>(sent_[p].size())) << "partition " << p;
  }
}

TEST_F(BridgeFromKafka, BrokerErrorsLeaderMovesAndABrokerDownNeitherLoseNorRepeat) {
  cluster_.create_topic("orders", kPartitions);
  for (int broker = 1; broker <= 3; ++broker) cluster_.set_rtt(broker, 5);
  produce(3000);
  constexpr std::int16_t kFetch = 1;  // the first Fetch requests fail with retriable errors
  cluster_.push_request_errors(kFetch, {RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE});
  const auto pid = test::start_command(
      args("orders", {"--property", "max.partition.fetch.bytes=256", "--idle-exit-ms", "2000"}), work_);
  wait_started(work_);
  cluster_.move_leaders_and_take_a_broker_down("orders");
  EXPECT_EQ(shm::wait_process_for(pid, 60s), 0) << contents(work_ + ".err");
  expect_log_holds_what_was_sent();
}

// The log is the truth: with the group's offsets moved back to the start,
// a restart still reads on after what the log holds, and appends nothing
// twice.
TEST_F(BridgeFromKafka, TheLogIsTheTruthNotTheGroupsOffsets) {
  cluster_.create_topic("orders", kPartitions);
  produce(300);
  const auto once = args("orders", {"--idle-exit-ms", "300"});
  ASSERT_EQ(test::run_command(once, work_).code, 0) << contents(work_ + ".err");
  // Move the group back to offset 0 of every partition.
  commit_all(cluster_.bootstrap(), "g", "orders", 0);
  EXPECT_EQ(committed(cluster_.bootstrap(), "g", "orders"), std::vector<std::int64_t>(kPartitions, 0));
  produce(300);
  const Outcome again = test::run_command(once, work_);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.err.find("300 records appended, 0 already in the log"), std::string::npos) << again.err;
  expect_log_holds_what_was_sent();
}

// A log that holds none of a partition starts at the group's offsets.
TEST_F(BridgeFromKafka, ANewLogStartsAtTheGroupsOffsets) {
  cluster_.create_topic("orders", kPartitions);
  produce(300);
  ASSERT_EQ(test::run_command(args("orders", {"--idle-exit-ms", "300"}), work_).code, 0) << contents(work_ + ".err");
  produce(30);
  test::TempLogPath fresh;
  ASSERT_TRUE(Log::create(fresh.str(), {.partitions = kPartitions}).ok());
  auto a = args("orders", {"--idle-exit-ms", "300"});
  a[8] = fresh.str();
  const Outcome o = test::run_command(a, work_);
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.err.find("30 records appended"), std::string::npos) << o.err;
}

// SIGTERM stops reading and commits the group's offsets behind what was
// appended; a restart carries on from there without a repeat.
TEST_F(BridgeFromKafka, SigtermCommitsAndExitsZero) {
  cluster_.create_topic("t", kPartitions);
  produce(300, "t");
  const auto pid = test::start_command(args("t", {"--commit-interval-ms", "60000"}), work_);
  wait_started(work_);
  std::this_thread::sleep_for(100ms);
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGTERM), 0);
  EXPECT_EQ(shm::wait_process_for(pid, 30s), 0) << contents(work_ + ".err");
  const ByPartition in_log = read_log(*log_);
  const auto offsets = committed(cluster_.bootstrap(), "g", "t");
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(offsets[p], in_log[p].empty() ? -1001 : static_cast<std::int64_t>(in_log[p].size())) << "partition " << p;
  }
  const Outcome rest = test::run_command(args("t", {"--idle-exit-ms", "300"}), work_);
  ASSERT_EQ(rest.code, 0) << rest.err;
  expect_log_holds_what_was_sent();
}

// `shmlog stat` shows the running bridge's counters: every record
// appended, none twice, Kafka's consumer lag 0; they go with a clean exit.
TEST_F(BridgeFromKafka, StatShowsTheBridge) {
  cluster_.create_topic("t", kPartitions);
  produce(300, "t");
  const auto pid = test::start_command(args("t"), work_);
  wait_started(work_);
  const auto b = test::wait_for_bridge(path_.str(), work_, [](const nlohmann::json& x) {
    return x.value("records", 0) == 300 && x.value("lag", -1) == 0;
  });
  EXPECT_EQ(b.value("records", 0), 300) << b.dump();
  EXPECT_EQ(b.value("lag", -1), 0) << b.dump();
  EXPECT_EQ(b.value("direction", ""), "from-kafka");
  EXPECT_EQ(b.value("topic", ""), "t");
  EXPECT_EQ(b.value("up", false), true);
  EXPECT_EQ(b.value("duplicates", -1), 0);
  // The records' Kafka timestamps are of 2020: their age is years.
  EXPECT_GT(b.value("age_ms", std::int64_t{-1}), std::int64_t{1000} * 3600 * 24 * 365) << b.dump();
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGTERM), 0);
  EXPECT_EQ(shm::wait_process_for(pid, 30s), 0) << contents(work_ + ".err");
  EXPECT_EQ(test::stat_bridges(path_.str(), work_).size(), 0u);
}

// A full ring (backpressure, a group behind) makes the bridge wait, not
// drop: once the group reads, every record arrives, once, in order.
TEST_F(BridgeFromKafka, AFullRingIsWaitedOutNotDropped) {
  cluster_.create_topic("t", kPartitions);
  test::TempLogPath path;
  auto small = Log::create(path.str(), {.partitions = kPartitions,
                                        .segment_size = 64u << 10,
                                        .ring_segments = 2,
                                        .max_record_size = 4096})
                   .value();
  auto reader = small.consumer({.group = "slow"}).value();  // holds the ring back until it reads
  // 600 records of 1000 bytes: more than the three rings of 128 KiB hold.
  ByPartition sent(kPartitions);
  {
    KafkaProducer producer(cluster_.bootstrap());
    for (std::uint32_t i = 0; i < 600; ++i) {
      const std::uint32_t p = i % kPartitions;
      Copy c{"", std::string(996, static_cast<char>('a' + i % 26)) + std::to_string(1000 + i), 1'600'000'000'000,
             sent[p].size()};
      producer.produce("t", static_cast<std::int32_t>(p), c);
      sent[p].push_back(c);
    }
    producer.flush();
  }
  auto a = args("t");
  a[8] = path.str();
  const auto pid = test::start_command(a, work_);
  wait_started(work_);
  // The bridge fills the rings and waits.
  const auto full = test::wait_for_bridge(path.str(), work_, [](const nlohmann::json& b) {
    return b.value("records", 0) >= 300;
  });
  EXPECT_LT(full.value("records", 0), 600) << full.dump();
  // The group reads: everything arrives.
  ByPartition got(kPartitions);
  std::size_t n = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (n < 600 && std::chrono::steady_clock::now() < deadline) {
    n += reader
             .poll_wait(
                 [&](const Record& r) {
                   got[r.partition].push_back({test::bytes_to_string(r.key), test::bytes_to_string(r.value),
                                               static_cast<std::int64_t>(r.timestamp_ns / 1000000), r.sequence});
                 },
                 64, 100ms)
             .records;
  }
  EXPECT_EQ(n, 600u) << test::stat_bridges(path.str(), work_).dump();
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGTERM), 0);
  EXPECT_EQ(shm::wait_process_for(pid, 30s), 0) << contents(work_ + ".err");
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    EXPECT_TRUE(got[p] == sent[p]) << "partition " << p << ": " << got[p].size() << " records";
  }
}

TEST_F(BridgeFromKafka, ARecordTheLogCannotHoldStopsTheBridge) {
  cluster_.create_topic("t", kPartitions);
  produce(6, "t");
  {
    KafkaProducer producer(cluster_.bootstrap());
    const Copy big{"", std::string(5000, 'x'), 1'600'000'000'000, 0};
    producer.produce("t", 1, big);
    producer.flush();
  }
  const Outcome o = test::run_command(args("t", {"--idle-exit-ms", "300"}), work_);
  EXPECT_EQ(o.code, 1);
  // One line after the one that says the bridge ran.
  const std::string last_line = o.err.substr(o.err.rfind('\n', o.err.size() - 2) + 1);
  EXPECT_EQ(last_line.find("shmlog bridge from-kafka: the record at offset 2 of Kafka partition t[1] has 5000 bytes of "
                           "key and value"),
            0u)
      << o.err;
  EXPECT_EQ(read_log(*log_)[1].size(), 2u);  // what came before it
}

// Offsets Kafka's retention deleted before the bridge read them are
// reported, and the bridge goes on from the earliest left. (The mock
// keeps 5 MiB a partition: 12 records of 500 KB push out the oldest.)
TEST_F(BridgeFromKafka, RecordsKafkaDeletedFirstAreReported) {
  cluster_.create_topic("t", 1);
  test::TempLogPath path;
  ASSERT_TRUE(Log::create(path.str(), {.partitions = 1,
                                       .segment_size = 4u << 20,
                                       .ring_segments = 8,
                                       .max_record_size = 600u << 10})
                  .ok());
  auto a = args("t", {"--idle-exit-ms", "300"});
  a[8] = path.str();
  KafkaProducer producer(cluster_.bootstrap());
  for (int i = 0; i < 3; ++i) producer.produce("t", 0, {"", "small", 1'600'000'000'000, 0});
  producer.flush();
  ASSERT_EQ(test::run_command(a, work_).code, 0) << contents(work_ + ".err");
  const std::string big(500u << 10, 'b');
  for (int i = 0; i < 12; ++i) {
    producer.produce("t", 0, {"", big, 1'600'000'000'000, 0});
    producer.flush();
  }
  const Outcome o = test::run_command(a, work_);
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.err.find("offsets 3 to "), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("of Kafka partition t[0] were deleted before they reached " + path.str()), std::string::npos)
      << o.err;
  auto log = Log::open(path.str()).value();
  auto c = log.consumer({}).value();
  std::vector<std::uint64_t> sequences;
  while (c.poll([&](const Record& r) { sequences.push_back(r.sequence); }, 64).records > 0) {
  }
  ASSERT_GT(sequences.size(), 3u) << o.err;
  EXPECT_EQ(sequences[2], 2u);
  EXPECT_GT(sequences[3], 3u);  // the deleted ones are not there; the rest follow in order
  EXPECT_EQ(sequences.back(), 14u);
}

TEST_F(BridgeFromKafka, SecondBridgeOnTheSameTopicIsRefused) {
  cluster_.create_topic("t", kPartitions);
  const auto first = test::start_command(args("t"), work_);
  wait_started(work_);
  const Outcome second = test::run_command(args("t"), work_ + "2");
  EXPECT_EQ(second.code, 1);
  EXPECT_NE(second.err.find("another bridge from Kafka topic 't'"), std::string::npos) << second.err;
  ASSERT_EQ(::kill(static_cast<pid_t>(first), SIGTERM), 0);
  EXPECT_EQ(shm::wait_process_for(first, 30s), 0) << contents(work_ + ".err");
}

TEST_F(BridgeFromKafka, BadInputIsOneLineError) {
  cluster_.create_topic("two", 2);
  cluster_.create_topic("secret", kPartitions);
  cluster_.set_topic_error("secret", RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  cluster_.set_topic_error("absent", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases{
      {args("two"), "has 2 partitions"},
      {args("secret", {"--timeout-ms", "5000"}), "not authorized for Kafka topic 'secret'"},
      {args("absent", {"--timeout-ms", "5000"}), "Kafka topic 'absent' does not exist"},
      {args("t", {"--property", "group.id=x"}), "set by the bridge"},
      {args("t", {"--property", "isolation.level=read_uncommitted"}), "set by the bridge"},
      {args("t", {"--property", "no.such.property=1"}), "no.such.property"},
      {args("bad/name"), "is not legal"},
      {{"bridge", "from-kafka", "--bootstrap", "127.0.0.1:1", "--topic", "t", "--group", "g", path_.str(),
        "--timeout-ms", "1500"},
       "Kafka at 127.0.0.1:1"},
  };
  for (const Case& c : cases) {
    const Outcome o = test::run_command(c.args, work_, 30s);
    EXPECT_EQ(o.code, 1) << c.says;
    EXPECT_NE(o.err.find(c.says), std::string::npos) << o.err;
    EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << o.err;
  }
}

TEST(BridgeFromKafkaNames, ProducerNamesFitAndStayDistinct) {
  EXPECT_EQ(bridge::producer_name("orders", 7), "kafka:orders:7");
  const std::string a = std::string(100, 'a') + "-one", b = std::string(100, 'a') + "-two";
  const std::string na = bridge::producer_name(a, 123), nb = bridge::producer_name(b, 123);
  EXPECT_LE(na.size(), 63u);
  EXPECT_NE(na, nb);
  EXPECT_EQ(na, bridge::producer_name(a, 123));
  EXPECT_EQ(na.substr(na.size() - 4), ":123");
  EXPECT_LE(bridge::producer_name(a, 2147483647).size(), 63u);  // the largest partition
}

}  // namespace
}  // namespace shmlog
