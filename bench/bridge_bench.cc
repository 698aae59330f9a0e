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
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bridge_bench_ends.h"
#include "harness/host.h"
#include "shmlog/histogram.h"

namespace shmlog::bench {
namespace {

using namespace std::chrono_literals;

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
  rig.expect(c.partitions,
             rig.reader->read(
                 c.partitions, [](std::span<const std::byte>, std::uint64_t) {}, c.patience),
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
  const std::string log = c.dir + "/shmlog-bridge-bench-" + std::to_string(::getpid()) + "-" + std::to_string(serial);
  if (path == Path::kFromKafka) {
    rig->reader = std::make_unique<ShmlogReader>(c.partitions, log, bootstrap, topic, c.fetch_wait_ms);
  } else {
    rig->reader = std::make_unique<KafkaReader>(bootstrap, topic, c.partitions, c.fetch_wait_ms);
  }
  if (path == Path::kToKafka) {
    rig->writer = std::make_unique<ShmlogWriter>(c.partitions, log, bootstrap, topic, linger_ms);
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
    if (ec != std::errc() || end != text.data() + comma)
      die(std::string(flag) + ": bad number in '" + std::string(text) + "'");
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

  std::printf(
      "shmlog_bridge_bench: %s; librdkafka %s mock cluster (3 brokers) in this process; %u partitions; "
      "medians of %d rounds\n\n",
      host_summary().c_str(), rd_kafka_version_str(), c.partitions, c.rounds);
  std::printf(
      "throughput: %llu records written flat out, at most %.1f MiB per partition ahead of the reader, "
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
  std::printf(
      "\nlatency: %u records/s for %.1f s, %zu B, write (intended time) to read, first 10%% warm-up; "
      "consumer fetch.wait.max.ms %d\n",
      c.rate, c.seconds, std::max<std::size_t>(c.latency_size, 16), c.fetch_wait_ms);
  std::printf("%6s  %-34s %9s %9s %9s %9s\n", "linger", "path", "p50 ms", "p99 ms", "p99.9 ms", "max ms");
  for (std::uint32_t linger : c.lingers) {
    for (Path p : paths(c)) {
      const Latency& l = latencies[{p, linger}];
      std::printf("%6u  %-34s %9.2f %9.2f %9.2f %9.2f\n", linger, kPathNames[static_cast<int>(p)], median(l.p50) / 1e3,
                  median(l.p99) / 1e3, median(l.p999) / 1e3, median(l.max) / 1e3);
    }
  }
}

}  // namespace
}  // namespace shmlog::bench

int main(int argc, char** argv) {
  shmlog::bench::run(shmlog::bench::parse(argc, argv));
  return 0;
}
