// What the bridge's tests share: librdkafka's in-process mock cluster and
// the shmlog command run in a process of its own.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "shmlog/shm/process.h"
#include "test_util.h"

namespace shmlog::test {

// A mock Kafka cluster on localhost ports, alive as long as this object.
class MockCluster {
 public:
  explicit MockCluster(int brokers) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char why[256];
    rd_kafka_conf_set(conf, "log_level", "0", why, sizeof why);
    host_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (host_ == nullptr) return;
    cluster_ = rd_kafka_mock_cluster_new(host_, brokers);
  }
  ~MockCluster() {
    if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
    if (host_ != nullptr) rd_kafka_destroy(host_);
  }
  bool ok() const { return cluster_ != nullptr; }
  std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }
  void create_topic(const std::string& topic, int partitions) {
    ASSERT_EQ(rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  void set_rtt(int broker, int rtt_ms) {
    ASSERT_EQ(rd_kafka_mock_broker_set_rtt(cluster_, broker, rtt_ms), RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  // The next `errors.size()` requests of `api_key` (0: Produce) fail so.
  void push_request_errors(std::int16_t api_key, const std::vector<rd_kafka_resp_err_t>& errors) {
    rd_kafka_mock_push_request_errors_array(cluster_, api_key, errors.size(), errors.data());
  }
  void set_leader(const std::string& topic, int partition, int broker) {
    ASSERT_EQ(rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, broker),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  void set_broker_up(int broker, bool up) {
    ASSERT_EQ(up ? rd_kafka_mock_broker_set_up(cluster_, broker) : rd_kafka_mock_broker_set_down(cluster_, broker),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  // While records flow: leaders of `topic`'s partitions 0 and 1 move,
  // broker 1 is down for 300 ms, then partition 2's leader moves to it.
  void move_leaders_and_take_a_broker_down(const std::string& topic) {
    using namespace std::chrono_literals;
    std::this_thread::sleep_for(50ms);
    set_leader(topic, 0, 2);
    set_leader(topic, 1, 3);
    std::this_thread::sleep_for(50ms);
    set_broker_up(1, false);
    std::this_thread::sleep_for(300ms);
    set_broker_up(1, true);
    set_leader(topic, 2, 1);
  }
  // The error the brokers' metadata gives for `topic`. (The 2.0.2 mock
  // creates any topic a client asks about, allow.auto.create.topics=false
  // or not: a missing topic is played this way.)
  void set_topic_error(const std::string& topic, rd_kafka_resp_err_t err) {
    rd_kafka_mock_topic_set_error(cluster_, topic.c_str(), err);
  }

 private:
  rd_kafka_t* host_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

inline std::string contents(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// `shmlog ARGS...`, stdout and stderr into `work`.out and .err.
inline std::uint32_t start_command(const std::vector<std::string>& args, const std::string& work) {
  std::vector<std::string> text{SHMLOG_CLI_PATH};
  text.insert(text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : text) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out = work + ".out", err = work + ".err";
  return test::spawn([&] {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (o < 0 || e < 0 || ::dup2(o, 1) < 0 || ::dup2(e, 2) < 0) return 97;
    ::execv(argv[0], argv.data());
    return 98;
  });
}

struct Outcome {
  int code = 0;
  std::string err;
};

// Runs `shmlog ARGS...` to its end (killed after `patience`: code -1).
inline Outcome run_command(const std::vector<std::string>& args, const std::string& work,
                           std::chrono::milliseconds patience = std::chrono::seconds(60)) {
  const auto pid = start_command(args, work);
  Outcome o;
  o.code = shm::wait_process_for(pid, patience);
  if (o.code == -1) {
    shm::kill_process(pid);
    (void)shm::wait_process(pid);
  }
  o.err = contents(work + ".err");
  return o;
}

// Waits (boundedly) until a bridge's stderr says it runs: locked,
// connected, resumed.
inline void wait_started(const std::string& work) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (contents(work + ".err").find("->") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// The bridges of `log` as one `shmlog stat --json` update shows them.
inline nlohmann::json stat_bridges(const std::string& log, const std::string& work) {
  const Outcome o = run_command({"stat", log, "--json", "--count", "1", "--interval", "10"}, work + "-stat");
  EXPECT_EQ(o.code, 0) << o.err;
  const auto line = nlohmann::json::parse(contents(work + "-stat.out"), nullptr, false);
  return line.is_object() && line.contains("bridges") ? line["bridges"] : nlohmann::json::array();
}

// Waits (boundedly) until `shmlog stat` shows one bridge and it passes
// `ready`; returns it (or, when stat showed none or several, an empty object).
template <class Ready>
nlohmann::json wait_for_bridge(const std::string& log, const std::string& work, Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  nlohmann::json b = stat_bridges(log, work);
  while (!(b.size() == 1 && ready(b[0])) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    b = stat_bridges(log, work);
  }
  return b.size() == 1 ? b[0] : nlohmann::json::object();
}

}  // namespace shmlog::test
