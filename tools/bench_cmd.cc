#include "bench_cmd.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "command.h"
#include "harness/clock.h"
#include "harness/host.h"
#include "harness/throughput.h"
#include "memory_flags.h"
#include "shmlog/log.h"
#include "shmlog/shm/process.h"

namespace shmlog::tools {
namespace {

struct BenchArgs {
  std::vector<std::string> sizes;  // SIZE strings; empty: the default set
  std::uint32_t producers = 0;
  std::uint32_t consumers = 0;
  double seconds = 1;
  std::uint32_t rounds = 1;
  std::uint64_t consumer_backoff_ns = 0;
  bool json = false;
  std::string dir = "/tmp";
  MemoryFlags memory;
};

std::string cell_name(const bench::ThroughputCell& c) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%u -> %u %s %zu B", c.producers, c.consumers,
                c.ring ? "baseline ring" : c.exclusive ? "exclusive" : "shared", c.size);
  return buf;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The index of the baseline ring's cell for a 1 -> 1 cell of the same size
// (none: cells.size()).
std::size_t ring_of(const std::vector<bench::ThroughputCell>& cells, const bench::ThroughputCell& c) {
  if (c.ring || c.producers != 1 || c.consumers != 1) return cells.size();
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (cells[i].ring && cells[i].size == c.size) return i;
  }
  return cells.size();
}

// --json: each cell's median rates; fraction_of_ring only where there is
// a baseline ring to compare with (versus_ring > 0).
Json bench_json(const std::vector<bench::ThroughputCell>& cells, const std::vector<double>& versus_ring,
                const bench::MemcpyBandwidth& mem, std::uint64_t consumer_backoff_ns) {
  Json rows = Json::array();
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const auto& c = cells[i];
    Json& row = rows.emplace_back(Json{{"producers", c.producers},
                                       {"consumers", c.consumers},
                                       {"exclusive", c.exclusive},
                                       {"baseline_ring", c.ring},
                                       {"size", c.size},
                                       {"records_per_s", c.records_per_s}});
    if (versus_ring[i] > 0) row["fraction_of_ring"] = versus_ring[i];
    row["bytes_per_s"] = c.bytes_per_s;
    row["fraction_of_memcpy"] = c.bytes_per_s / mem.streaming_bytes_per_s;
  }
  return {{"host", bench::host_summary()},
          {"memcpy_streaming_bytes_per_s", mem.streaming_bytes_per_s},
          {"memcpy_cached_bytes_per_s", mem.cached_bytes_per_s},
          {"consumer_backoff_ns", consumer_backoff_ns},
          {"cells", std::move(rows)}};
}

int run_bench(const BenchArgs& a) {
  bench::ThroughputOptions o;
  o.producers = a.producers;
  o.consumers = a.consumers;
  o.seconds = a.seconds;
  o.consumer_backoff_ns = a.consumer_backoff_ns;
  o.dir = a.dir;
  o.pages = a.memory.pages();
  o.memory_dir = a.memory.dir;
  if (a.rounds < 1 || a.rounds > 100) {
    std::fprintf(stderr, "shmlog bench: --rounds must be 1..100\n");
    return 1;
  }
  if (a.seconds <= 0 || a.seconds > 600) {
    std::fprintf(stderr, "shmlog bench: --seconds must be in (0, 600]\n");
    return 1;
  }
  if (!a.sizes.empty()) {
    o.sizes.clear();
    for (const auto& text : a.sizes) {
      auto v = parse_size(text);
      if (!v.ok() || *v > (1u << 20)) {
        std::fprintf(stderr, "shmlog bench: --sizes: '%s' is not a size up to 1M\n", text.c_str());
        return 1;
      }
      o.sizes.push_back(static_cast<std::size_t>(*v));
    }
  }
  auto cells = bench::throughput_matrix(o);
  // Processes are pinned to cores 0.. when they fit: check those cores.
  std::vector<int> cores;
  for (unsigned c = 0; c < std::min(2u, shm::online_cpus()); ++c) cores.push_back(static_cast<int>(c));
  for (const auto& w : bench::host_warnings(cores, bench::calibrate_tsc().usable)) {
    std::fprintf(stderr, "shmlog bench: warning: %s\n", w.c_str());
  }
  std::fprintf(stderr, "shmlog bench: %zu runs of %.1f s on %s\n", cells.size() * a.rounds + 1, a.seconds,
               bench::host_summary().c_str());
  std::fprintf(stderr, "[ 1/%zu] memcpy bandwidth ...", cells.size() * a.rounds + 1);
  const auto mem = bench::measure_memcpy(std::min(a.seconds, 1.0));
  std::fprintf(stderr, " %.1f GB/s streaming, %.1f GB/s in cache\n", mem.streaming_bytes_per_s / 1e9,
               mem.cached_bytes_per_s / 1e9);
  // Rounds alternate over the whole matrix; each cell reports its median.
  std::vector<std::vector<double>> rates(cells.size());
  const std::size_t runs = cells.size() * a.rounds + 1;
  std::size_t run = 1;
  for (std::uint32_t round = 0; round < a.rounds; ++round) {
    for (std::size_t i = 0; i < cells.size(); ++i) {
      // SIGINT or SIGTERM: after the run in progress (its processes end with it).
      if (g_interrupted) {
        std::fprintf(stderr, "shmlog bench: interrupted\n");
        return 130;
      }
      std::fprintf(stderr, "[%2zu/%zu] %-32s ...", ++run, runs, cell_name(cells[i]).c_str());
      Status s = bench::run_cell(cells[i], o);
      if (!s.ok()) {
        std::fprintf(stderr, "\nshmlog bench: %s: %s\n", cell_name(cells[i]).c_str(), s.message().c_str());
        return 1;
      }
      std::fprintf(stderr, " %.2f M records/s\n", cells[i].records_per_s / 1e6);
      rates[i].push_back(cells[i].records_per_s);
    }
  }
  // Against the ring: the median of each round's ratio (the machine may
  // change speed between rounds, both sides of a ratio share a round).
  std::vector<double> versus_ring(cells.size(), 0);
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const std::size_t r = ring_of(cells, cells[i]);
    if (r == cells.size()) continue;
    std::vector<double> ratios;
    for (std::uint32_t k = 0; k < a.rounds; ++k) ratios.push_back(rates[i][k] / rates[r][k]);
    versus_ring[i] = median(ratios);
  }
  for (std::size_t i = 0; i < cells.size(); ++i) {
    cells[i].records_per_s = median(rates[i]);
    cells[i].bytes_per_s = cells[i].records_per_s * static_cast<double>(cells[i].size);
  }
  if (a.json) {
    print_json(bench_json(cells, versus_ring, mem, a.consumer_backoff_ns));
    return 0;
  }
  std::printf("\n%-34s %14s %10s %14s %10s\n", "producers -> consumers, claims, size", "records/s", "GB/s", "% of memcpy",
              "x ring");
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const auto& c = cells[i];
    char versus[32] = "";
    if (versus_ring[i] > 0) std::snprintf(versus, sizeof versus, "%.2f", versus_ring[i]);
    std::printf("%-34s %12.2f M %10.3f %13.1f%% %10s\n", cell_name(c).c_str(), c.records_per_s / 1e6,
                c.bytes_per_s / 1e9, 100.0 * c.bytes_per_s / mem.streaming_bytes_per_s, versus);
  }
  std::printf("\nmemcpy of 4 KiB blocks, same run: %.2f GB/s streaming through 64 MiB (the %% column's base), %.2f GB/s in cache\n",
              mem.streaming_bytes_per_s / 1e9, mem.cached_bytes_per_s / 1e9);
  std::printf("x ring: records/s as a fraction of the baseline ring's (64-byte slots published by a sequence store,\n"
              "the consumer's position cached by the producer) of the same size, same run%s\n",
              a.rounds > 1 ? "; medians over the rounds (of each round's ratio for x ring)" : "");
  if (a.consumer_backoff_ns > 0) {
    std::printf("consumers (the log's and the ring's) waited %llu ns after each poll that found less than a batch\n",
                static_cast<unsigned long long>(a.consumer_backoff_ns));
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* bench = app.add_subcommand("bench", "Throughput matrix: producer and consumer processes, records/s and GB/s");
  bench->add_option("--sizes", a->sizes, "Record sizes (default 0 32 256 1K 4K 64K)");
  bench->add_option("--producers", a->producers, "N for the N -> M rows (default: half the cores, at least 2)");
  bench->add_option("--consumers", a->consumers, "M for the N -> M rows (default: as producers)");
  bench->add_option("--seconds", a->seconds, "Duration of each run")->capture_default_str();
  bench->add_option("--rounds", a->rounds, "Rounds over the matrix, alternating; each cell shows its median")
      ->capture_default_str();
  bench->add_option("--consumer-backoff", a->consumer_backoff_ns,
                    "After a poll that found less than a batch, each consumer (the log's and the baseline ring's) "
                    "waits this many ns before polling again (0: at once)")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1'000'000}));
  bench->add_flag("--json", a->json, "Print JSON instead of the table");
  bench->add_option("--dir", a->dir, "Where the temporary logs go")->capture_default_str();
  a->memory.add_to(bench);
  set_action(bench, [a] { return run_bench(*a); });
}

}  // namespace shmlog::tools
