// `shmlog lat`: the latency profiler users run on their own machines.
#include "lat.h"

#include <nlohmann/json.hpp>

#include <cinttypes>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "command.h"
#include "harness/clock.h"
#include "harness/host.h"
#include "harness/latency.h"
#include "harness/report.h"
#include "memory_flags.h"
#include "shmlog/wait.h"

namespace shmlog::tools {
namespace {

struct LatArgs {
  std::size_t size = 32;
  std::uint64_t count = 0;
  double duration_s = 5;
  std::uint64_t rate = 100000;
  std::string mode = "ping-pong";
  int producer_core = 0;
  int consumer_core = 1;
  std::string wait_name = "spin";
  WaitStrategy wait = WaitStrategy::spin();
  bool json = false;
  std::string hdr_out;
  std::string plot;
  bool no_baselines = false;
  double baseline_seconds = 1;
  unsigned rounds = 1;
  std::string dir = "/tmp";
  MemoryFlags memory;
};

int run_lat(const LatArgs& a) {
  bench::LatencyOptions o;
  if (a.mode == "ping-pong") {
    o.mode = bench::LatencyOptions::Mode::kPingPong;
  } else if (a.mode == "one-way") {
    o.mode = bench::LatencyOptions::Mode::kOneWay;
  } else {
    std::fprintf(stderr, "shmlog lat: --mode must be ping-pong or one-way, got '%s'\n", a.mode.c_str());
    return 1;
  }
  o.size = a.size;
  o.count = a.count;
  o.duration_s = a.duration_s;
  o.rate = a.rate;
  o.producer_core = a.producer_core;
  o.consumer_core = a.consumer_core;
  o.wait = a.wait;
  o.baselines = !a.no_baselines;
  o.baseline_seconds = a.baseline_seconds;
  o.rounds = a.rounds;
  o.dir = a.dir;
  o.interrupted = [] { return g_interrupted != 0; };  // SIGINT: stop after the step in progress
  o.pages = a.memory.pages();
  o.memory_dir = a.memory.dir;
  const bench::Clock clock(bench::calibrate_tsc());
  const auto warnings = bench::host_warnings({a.producer_core, a.consumer_core}, clock.tsc().usable);
  for (const auto& w : warnings) {
    if (w.find("does not exist") != std::string::npos) {  // not a warning: nothing can run there
      std::fprintf(stderr, "shmlog lat: %s\n", w.c_str());
      return 1;
    }
  }
  for (const auto& w : warnings) std::fprintf(stderr, "shmlog lat: warning: %s\n", w.c_str());
  if (!a.json) {
    std::printf("shmlog lat: %s, %zu-byte records, producer core %d, consumer core %d, wait %s\n", a.mode.c_str(),
                a.size, a.producer_core, a.consumer_core, a.wait_name.c_str());
    std::printf("host: %s; TSC %s at %.3f GHz\n", bench::host_summary().c_str(),
                clock.tsc().usable ? "invariant" : "NOT usable (monotonic clock instead)", clock.tsc().ghz());
  }
  auto progress = [&](const std::string& line) {
    if (!a.json) std::fprintf(stderr, "  ... %s\n", line.c_str());
  };
  auto run = bench::run_latency(o, clock, progress);
  if (!run.ok() && g_interrupted) {
    std::fprintf(stderr, "shmlog lat: interrupted\n");
    return 130;
  }
  if (!run.ok()) {
    std::fprintf(stderr, "shmlog lat: %s\n", run.status().message().c_str());
    return 1;
  }
  const std::vector<bench::LatencyRow>* rows = &run->rows;
  if (a.json) {
    print_json(bench::latency_json(*rows, {{"mode", a.mode},
                                           {"size", a.size},
                                           {"producer_core", a.producer_core},
                                           {"consumer_core", a.consumer_core},
                                           {"wait", a.wait_name},
                                           {"rounds", a.rounds},
                                           {"floor_rounds", bench::floor_rounds_json(run->floor_rounds, run->floor_compared)},
                                           {"tsc_ghz", std::round(clock.tsc().ghz() * 1e4) / 1e4},
                                           {"host", bench::host_summary()}}));
  } else {
    std::printf("\n%s", bench::latency_table(*rows).c_str());
    if (run->floor_rounds.size() > 1) std::printf("\n%s", bench::floor_rounds_table(run->floor_rounds, run->floor_compared).c_str());
  }
  const auto& primary = rows->front().histogram;  // shmlog's one-way figure
  if (!a.hdr_out.empty()) {
    Status s = bench::write_file(a.hdr_out, bench::hdr_percentile_distribution(primary));
    if (!s.ok()) {
      std::fprintf(stderr, "shmlog lat: --hdr-out: %s\n", s.message().c_str());
      return 1;
    }
  }
  if (!a.plot.empty()) {
    Status s = bench::plot_png(a.plot, *rows,
                               "shmlog lat " + a.mode + ", " + std::to_string(a.size) + " B, cores " +
                                   std::to_string(a.producer_core) + "/" + std::to_string(a.consumer_core));
    if (!s.ok()) {
      std::fprintf(stderr, "shmlog lat: %s\n", s.message().c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace

void add_lat_command(CLI::App& app) {
  auto a = std::make_shared<LatArgs>();
  auto* lat = app.add_subcommand("lat", "Latency profiler: percentiles between two pinned processes, with baselines");
  lat->add_option("--size", a->size, "Record value size in bytes (>= 8)")->capture_default_str();
  auto* count_opt = lat->add_option("--count", a->count, "Measured messages (default: from --duration)");
  lat->add_option("--duration", a->duration_s, "Seconds of shmlog measurement when --count is not given")
      ->capture_default_str()->excludes(count_opt);
  lat->add_option("--rate", a->rate, "one-way: messages per second (latency from the intended send time)")
      ->capture_default_str();
  lat->add_option("--mode", a->mode, "ping-pong or one-way")->capture_default_str();
  lat->add_option("--producer-core", a->producer_core, "Core of the producer (ping) process")->capture_default_str();
  lat->add_option("--consumer-core", a->consumer_core, "Core of the consumer (echo) process")->capture_default_str();
  lat->add_option("--wait", a->wait_name, "Consumer wait: spin, yield, backoff or block")->capture_default_str();
  lat->add_flag("--json", a->json, "Print JSON instead of the table");
  lat->add_option("--hdr-out", a->hdr_out, "Write shmlog's one-way histogram in HdrHistogram's percentile format");
  lat->add_option("--plot", a->plot, "Write a PNG percentile plot of every row (needs gnuplot)");
  lat->add_flag("--no-baselines", a->no_baselines, "Measure shmlog only");
  lat->add_option("--baseline-seconds", a->baseline_seconds, "Time budget of each baseline")->capture_default_str();
  lat->add_option("--rounds", a->rounds,
                  "Alternate shmlog and the cache-line floor this many times, each with its share of the messages; "
                  "prints each round's ratio to the floor and their median")
      ->check(CLI::Range(1u, 100u))
      ->capture_default_str();
  lat->add_option("--dir", a->dir, "Where the temporary logs go")->capture_default_str();
  a->memory.add_to(lat);
  set_action(lat, [a] {
    a->wait = parse_wait(a->wait_name);
    return run_lat(*a);
  });
}

}  // namespace shmlog::tools
