// What each delivery mode costs, side by side in one run: one thread
// appends a record and polls it back through a consumer group, timing each
// append+deliver pair (TSC), then appends and polls batches of 256 for
// throughput. Modes are interleaved round by round; medians are printed
// with the ratio to at-least-once. One thread measures the CPU cost of each
// mode's path (what differs between them), not the cross-core hop that
// `shmlog lat` measures.
//
//   build/bench/shmlog_delivery_bench [ROUNDS] [ITERATIONS]
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include "harness/clock.h"
#include "harness/host.h"
#include "shmlog/histogram.h"
#include "shmlog/log.h"

namespace shmlog::bench {
namespace {

struct Mode {
  const char* name;
  const char* guarantee;
};
constexpr Mode kModes[] = {
    {"at-most-once", "offset committed before delivery: a crash loses, never repeats"},
    {"at-least-once", "offset committed after delivery: a crash repeats, never loses"},
    {"exactly-once", "idempotent producer id, read_committed, duplicates dropped (sink keeps the offsets)"},
    {"exactly-once txn/1", "a transaction per record: begin, append, commit markers, read_committed"},
    {"exactly-once txn/256", "transactions of 256 records (throughput only: a record waits for its commit)"},
};

struct Result {
  std::uint64_t p50 = 0, p99 = 0, p999 = 0;
  double records_per_s = 0;
};

struct Rig {
  std::string path;
  Log log;
  Producer producer;
  Consumer consumer;
};

Rig make_rig(int mode, std::size_t size, int round) {
  const std::string path = "/tmp/shmlog-delivery-" + std::to_string(::getpid()) + "-" + std::to_string(mode) + "-" +
                           std::to_string(size) + "-" + std::to_string(round);
  LogOptions lo;
  lo.max_record_size = 4096;
  auto log = Log::create(path, lo);
  if (!log.ok()) {
    std::fprintf(stderr, "shmlog_delivery_bench: %s\n", log.status().message().c_str());
    std::exit(1);
  }
  ProducerOptions po;
  ConsumerOptions co;
  co.group = "bench";
  co.wait = WaitStrategy::spin();
  switch (mode) {
    case 0: co.mode = DeliveryMode::kAtMostOnce; break;
    case 1: co.mode = DeliveryMode::kAtLeastOnce; break;
    default:
      po.producer_id = "bench";
      po.transactional = mode >= 3;
      co.mode = DeliveryMode::kAtLeastOnce;
      co.isolation = Isolation::kReadCommitted;
      co.drop_duplicates = true;
      break;
  }
  auto producer = log->producer(po);
  auto consumer = log->consumer(co);
  if (!producer.ok() || !consumer.ok()) {
    std::fprintf(stderr, "shmlog_delivery_bench: cannot attach\n");
    std::exit(1);
  }
  return Rig{path, std::move(log).value(), std::move(producer).value(), std::move(consumer).value()};
}

void must(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "shmlog_delivery_bench: %s failed\n", what);
    std::exit(1);
  }
}

// Latency of append+deliver pairs, then throughput of batches of 256.
Result run(int mode, std::size_t size, int round, std::uint64_t iterations, const Clock& clock) {
  Result out;
  std::vector<std::byte> value(size, std::byte{'v'});
  std::uint64_t delivered = 0;
  auto handler = [&](const Record& r) { delivered += r.value.size() == size ? 1 : 0; };
  std::string path;
  {
    Rig rig = make_rig(mode, size, round);
    path = rig.path;
    Histogram h;
    const std::uint64_t warmup = iterations / 10;
    const bool per_record_txn = mode == 3;
    const bool batched_txn = mode == 4;
    // Latency of a record in a transaction of 256 is the whole batch's: not measured here.
    for (std::uint64_t i = 0; !batched_txn && i < iterations + warmup; ++i) {
      const std::uint64_t before = delivered;
      const std::uint64_t t0 = clock.now_ticks();
      if (per_record_txn) must(rig.producer.begin_transaction().ok(), "begin");
      must(static_cast<bool>(rig.producer.append(value)), "append");
      if (per_record_txn) must(rig.producer.commit_transaction().ok(), "commit");
      while (delivered == before) rig.consumer.poll(handler, 1);
      const std::uint64_t t1 = clock.now_ticks();
      if (i >= warmup) h.record(clock.to_ns(t1 - t0));
    }
    out.p50 = h.percentile(50);
    out.p99 = h.percentile(99);
    out.p999 = h.percentile(99.9);
    // Throughput: batches of 256 appended, then polled (txn/256: one transaction per batch).
    constexpr std::uint64_t kBatch = 256;
    const std::uint64_t batches = std::max<std::uint64_t>(iterations / kBatch, 8);
    const std::uint64_t t0 = clock.now_ticks();
    for (std::uint64_t b = 0; b < batches; ++b) {
      if (batched_txn) must(rig.producer.begin_transaction().ok(), "begin");
      for (std::uint64_t i = 0; i < kBatch; ++i) {
        if (per_record_txn) must(rig.producer.begin_transaction().ok(), "begin");
        must(static_cast<bool>(rig.producer.append(value)), "append");
        if (per_record_txn) must(rig.producer.commit_transaction().ok(), "commit");
      }
      if (batched_txn) must(rig.producer.commit_transaction().ok(), "commit");
      const std::uint64_t target = delivered + kBatch;
      while (delivered < target) rig.consumer.poll(handler, kBatch);
    }
    const double seconds = static_cast<double>(clock.to_ns(clock.now_ticks() - t0)) / 1e9;
    out.records_per_s = static_cast<double>(batches * kBatch) / seconds;
  }
  (void)Log::remove(path);
  return out;
}

}  // namespace
}  // namespace shmlog::bench

int main(int argc, char** argv) {
  using namespace shmlog::bench;
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  const std::uint64_t iterations = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 200000;
  if (rounds < 1 || iterations < 1000) {
    std::fprintf(stderr, "usage: shmlog_delivery_bench [ROUNDS >= 1] [ITERATIONS >= 1000]\n");
    return 2;
  }
  const Clock clock(calibrate_tsc());
  const std::size_t sizes[] = {32, 1024};
  constexpr int kModeCount = sizeof kModes / sizeof kModes[0];
  std::map<std::pair<int, std::size_t>, std::vector<Result>> results;
  for (int round = 0; round < rounds; ++round) {
    for (std::size_t size : sizes) {
      for (int mode = 0; mode < kModeCount; ++mode) results[{mode, size}].push_back(run(mode, size, round, iterations, clock));
    }
    std::fprintf(stderr, "round %d of %d done\n", round + 1, rounds);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("shmlog_delivery_bench: %s; one thread, append then poll through a group; medians of %d rounds of %" PRIu64
              " records\n\n",
              host_summary().c_str(), rounds, iterations);
  std::printf("%-22s %6s %8s %8s %8s %12s %10s\n", "mode", "size", "p50 ns", "p99 ns", "p99.9 ns", "M records/s",
              "p50 / ALO");
  for (std::size_t size : sizes) {
    double alo = 0;
    for (int mode = 0; mode < kModeCount; ++mode) {
      const auto& rs = results[{mode, size}];
      auto pick = [&](auto field) {
        std::vector<double> v;
        for (const auto& r : rs) v.push_back(static_cast<double>(field(r)));
        return median(v);
      };
      const double p50 = pick([](const Result& r) { return r.p50; });
      if (mode == 1) alo = p50;
      const double rate = pick([](const Result& r) { return r.records_per_s; }) / 1e6;
      if (p50 == 0) {  // throughput only
        std::printf("%-22s %6zu %8s %8s %8s %12.2f %10s\n", kModes[mode].name, size, "-", "-", "-", rate, "");
        continue;
      }
      std::printf("%-22s %6zu %8.0f %8.0f %8.0f %12.2f %10s\n", kModes[mode].name, size, p50,
                  pick([](const Result& r) { return r.p99; }), pick([](const Result& r) { return r.p999; }), rate,
                  mode == 0 || alo == 0 ? "" : std::to_string(p50 / alo).substr(0, 4).c_str());
    }
  }
  std::printf("\n");
  for (const auto& m : kModes) std::printf("%-22s %s\n", m.name, m.guarantee);
  return 0;
}
