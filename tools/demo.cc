#include "demo.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "command.h"
#include "shmlog/histogram.h"
#include "shmlog/log.h"
#include "shmlog/shm/process.h"
#include "shmlog/shm/shared_memory.h"
#include "shmlog/shm/topology.h"
#include "shmlog/wait.h"

namespace shmlog::tools {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::uint32_t kMaxProcesses = 32;

struct DemoArgs {
  // 0: fit the machine: half the cores produce, half consume (1 to 4 each),
  // one partition per consumer.
  std::uint32_t producers = 0;
  std::uint32_t consumers = 0;
  std::uint32_t partitions = 0;
  std::uint32_t size = 32;
  double seconds = 2.0;
  std::uint64_t rate = 100000;
  std::string dir = "/tmp";
  // auto: spin when every process has a core of its own (the latency a
  // pinned, spinning consumer gets), else backoff.
  std::string wait = "auto";
  WaitStrategy wait_strategy;
};

// Shared between the demo's processes (a small shared-memory object).
struct Board {
  std::uint32_t consumers_ready;
  std::uint32_t producers_done;
  std::uint32_t stop;
  std::uint32_t failed;
  std::uint64_t expected;  // records appended in total, valid once expected_ready
  std::uint32_t expected_ready;
  std::uint64_t received;  // records consumed in total
  std::uint64_t appended[kMaxProcesses];
  std::uint64_t consumed[kMaxProcesses];
  Histogram latency[kMaxProcesses];
};

template <class T>
std::atomic_ref<T> at(T& field) {
  return std::atomic_ref<T>(field);
}

struct Phase {
  const DemoArgs* args;
  std::string log_path;
  Board* board;
  std::uint64_t rate;  // records/s over all producers; 0 = as fast as possible
  std::string group;
  std::uint32_t index;
  int core;  // -1: not pinned
};

bool pin(const Phase& ph, const char* who) {
  if (ph.core < 0) return true;
  Status s = shm::pin_current_thread(static_cast<unsigned>(ph.core));
  if (!s.ok()) std::fprintf(stderr, "demo %s: %s\n", who, s.message().c_str());
  return s.ok();
}

// Reports a failed step of a demo process and marks the phase failed.
template <class T>
bool failed(const Result<T>& r, const char* who, Board& b) {
  if (r.ok()) return false;
  std::fprintf(stderr, "demo %s: %s\n", who, r.status().message().c_str());
  at(b.failed).store(1);
  return true;
}

int producer_main(void* arg) {
  auto& ph = *static_cast<Phase*>(arg);
  Board& b = *ph.board;
  pin(ph, "producer");
  auto log = Log::open(ph.log_path);
  if (failed(log, "producer", b)) return 1;
  ProducerOptions po;
  po.partition = ph.index % ph.args->partitions;
  po.name = "demo producer " + std::to_string(ph.index);
  auto producer = log->producer(po);
  if (failed(producer, "producer", b)) return 1;
  std::vector<std::byte> value(ph.args->size, std::byte{0x5a});
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(ph.args->seconds));
  const double per_producer = ph.rate == 0 ? 0 : static_cast<double>(ph.rate) / ph.args->producers;
  std::uint64_t n = 0;
  for (;;) {
    if ((n & 63) == 0 && (Clock::now() >= end || at(b.stop).load())) break;
    if (per_producer > 0) {
      // Paced: send record n at start + n / rate; sleep when far ahead.
      const auto due = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(n / per_producer));
      // Yield while early: on a small machine the consumers need this CPU.
      for (auto now = Clock::now(); now < due; now = Clock::now()) {
        if (due - now > std::chrono::microseconds(200)) {
          shm::sleep_for(std::chrono::microseconds(100));
        } else {
          shm::yield_now();
        }
      }
      if (Clock::now() >= end) break;
    }
    auto r = producer->append(value);
    if (!r) {
      std::fprintf(stderr, "demo producer: append failed: %s\n", errc_name(r.error));
      at(b.failed).store(1);
      break;
    }
    ++n;
  }
  b.appended[ph.index] = n;
  at(b.producers_done).fetch_add(1);
  return 0;
}

int consumer_main(void* arg) {
  auto& ph = *static_cast<Phase*>(arg);
  Board& b = *ph.board;
  pin(ph, "consumer");
  auto log = Log::open(ph.log_path);
  if (failed(log, "consumer", b)) return 1;
  ConsumerOptions co;
  co.group = ph.group;
  co.mode = DeliveryMode::kAtLeastOnce;
  co.commit_every = 64;
  co.from = StartFrom::latest();  // the group is new: only this phase's records
  co.wait = ph.args->wait_strategy;
  auto consumer = log->consumer(co);
  if (failed(consumer, "consumer", b)) return 1;
  at(b.consumers_ready).fetch_add(1);
  Histogram& h = b.latency[ph.index];
  std::uint64_t n = 0;
  auto handler = [&](const Record& r) {
    const std::uint64_t now = realtime_ns();
    h.record(now > r.timestamp_ns ? now - r.timestamp_ns : 0);
    ++n;
  };
  const auto give_up = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(ph.args->seconds + 30));
  for (;;) {
    auto r = consumer->poll_wait(handler, 256, std::chrono::milliseconds(20));
    if (r.records > 0) at(b.received).fetch_add(r.records);
    // expected is valid once published (the parent sums the producers' counts).
    if (at(b.expected_ready).load() && at(b.received).load() >= at(b.expected).load()) break;
    if (at(b.stop).load() || at(b.failed).load() || Clock::now() > give_up) break;
  }
  consumer->commit();
  b.consumed[ph.index] = n;
  return 0;
}

bool run_phase(const DemoArgs& a, const std::string& log_path, Board& b, std::uint64_t rate,
               const std::string& group, volatile std::sig_atomic_t* interrupted, double* seconds_out) {
  std::memset(static_cast<void*>(&b), 0, sizeof b);
  for (auto& h : b.latency) h = Histogram();
  std::vector<Phase> phases(a.producers + a.consumers);
  // One process per core when they fit; otherwise the scheduler places them.
  const bool pinned = a.producers + a.consumers <= shm::online_cpus();
  auto core_of = [&](std::uint32_t slot) { return pinned ? static_cast<int>(slot) : -1; };
  std::vector<std::uint32_t> pids;
  for (std::uint32_t i = 0; i < a.consumers; ++i) {
    phases[i] = Phase{&a, log_path, &b, rate, group, i, core_of(i)};
    auto pid = shm::fork_process(consumer_main, &phases[i]);
    if (!pid.ok()) {
      std::fprintf(stderr, "shmlog demo: %s\n", pid.status().message().c_str());
      return false;
    }
    pids.push_back(*pid);
  }
  // Producers start once every consumer has joined the group, so the group
  // holds the ring (backpressure) and sees every record.
  while (at(b.consumers_ready).load() < a.consumers && !at(b.failed).load() && !*interrupted) {
    shm::sleep_for(std::chrono::milliseconds(1));
  }
  const auto start = Clock::now();
  for (std::uint32_t i = 0; i < a.producers; ++i) {
    auto& ph = phases[a.consumers + i];
    ph = Phase{&a, log_path, &b, rate, group, i, core_of(a.consumers + i)};
    auto pid = shm::fork_process(producer_main, &ph);
    if (!pid.ok()) {
      at(b.stop).store(1);
      std::fprintf(stderr, "shmlog demo: %s\n", pid.status().message().c_str());
      break;
    }
    pids.push_back(*pid);
  }
  while (at(b.producers_done).load() < a.producers && !at(b.failed).load()) {
    if (*interrupted) at(b.stop).store(1);
    shm::sleep_for(std::chrono::milliseconds(1));
  }
  std::uint64_t total = 0;
  for (std::uint32_t i = 0; i < a.producers; ++i) total += b.appended[i];
  at(b.expected).store(total);
  at(b.expected_ready).store(1);
  bool ok = true;
  for (auto pid : pids) ok = shm::wait_process(pid) == 0 && ok;
  *seconds_out = std::chrono::duration<double>(Clock::now() - start).count();
  return ok && !at(b.failed).load();
}

// Prints the phase's figures; false when a record was lost or duplicated.
bool report(const DemoArgs& a, const Board& b, double seconds, const char* title) {
  std::uint64_t appended = 0, consumed = 0;
  Histogram all;
  for (std::uint32_t i = 0; i < a.producers; ++i) appended += b.appended[i];
  for (std::uint32_t i = 0; i < a.consumers; ++i) {
    consumed += b.consumed[i];
    all.merge(b.latency[i]);
  }
  const double rate = static_cast<double>(consumed) / seconds;
  std::printf("\n%s\n", title);
  std::printf("  records   appended %" PRIu64 ", consumed %" PRIu64 " (%s)\n", appended, consumed,
              appended == consumed ? "every record exactly once" : "MISMATCH");
  std::printf("  throughput %.2f M records/s, %.1f MB/s of values (%.2f s)\n", rate / 1e6,
              rate * a.size / 1e6, seconds);
  std::printf("  latency commit->delivery (ns):  p50 %" PRIu64 "  p90 %" PRIu64 "  p99 %" PRIu64 "  p99.9 %" PRIu64
              "  p99.99 %" PRIu64 "  max %" PRIu64 "\n",
              all.percentile(50), all.percentile(90), all.percentile(99), all.percentile(99.9),
              all.percentile(99.99), all.max());
  return appended == consumed;
}

int run_demo(const DemoArgs& requested, volatile std::sig_atomic_t* interrupted) {
  DemoArgs a = requested;
  const std::uint32_t half = std::clamp<std::uint32_t>(shm::online_cpus() / 2, 1, 4);
  if (a.producers == 0) a.producers = half;
  if (a.consumers == 0) a.consumers = half;
  if (a.partitions == 0) a.partitions = a.consumers;
  if (a.producers < 1 || a.producers > kMaxProcesses || a.consumers < 1 || a.consumers > kMaxProcesses) {
    std::fprintf(stderr, "shmlog demo: --producers and --consumers must be 1..%u\n", kMaxProcesses);
    return 1;
  }
  if (a.partitions < 1 || a.seconds <= 0 || a.seconds > 3600) {
    std::fprintf(stderr, "shmlog demo: --partitions must be >= 1 and --seconds in (0, 3600]\n");
    return 1;
  }
  const std::string log_path = a.dir + "/shmlog-demo-" + std::to_string(shm::self().pid);
  LogOptions options;
  options.partitions = a.partitions;
  // Consumer 0 runs on CPU 0 when processes are pinned: its node gets the memory.
  const bool pinned = a.producers + a.consumers <= shm::online_cpus();
  if (auto node = shm::numa_node_of_cpu(0); pinned && node.ok()) options.numa_node = *node;
  auto log = Log::create(log_path, options);
  if (!log.ok()) {
    std::fprintf(stderr, "shmlog demo: %s\n", log.status().message().c_str());
    return 1;
  }
  const std::string board_name = "/dev/shm/shmlog-demo-board-" + std::to_string(shm::self().pid);
  auto board_mem = shm::SharedMemory::create(board_name, sizeof(Board), 0600);
  if (!board_mem.ok()) {
    std::fprintf(stderr, "shmlog demo: %s\n", board_mem.status().message().c_str());
    (void)Log::remove(log_path);
    return 1;
  }
  (void)shm::SharedMemory::unlink(board_name);  // stays mapped; nothing to clean up later
  Board& board = *reinterpret_cast<Board*>(board_mem->data());
  std::printf("shmlog demo: %u producer and %u consumer processes, %u partition(s), %u-byte records, log %s\n",
              a.producers, a.consumers, a.partitions, a.size, log_path.c_str());
  if (a.wait == "auto") {
    a.wait = pinned ? "spin" : "backoff";
    a.wait_strategy = pinned ? WaitStrategy::spin() : WaitStrategy::backoff();
    a.wait += pinned ? " (auto: a core each)" : " (auto: fewer cores than processes)";
  }
  std::printf("host: %u CPUs; consumers wait with '%s'; %s; memory %s\n", shm::online_cpus(), a.wait.c_str(),
              pinned ? "one process pinned per core" : "more processes than cores: not pinned",
              options.numa_node >= 0 ? ("on NUMA node " + std::to_string(options.numa_node) + ", the first consumer's").c_str()
                                     : "placed by the kernel's NUMA policy");
  int rc = 0;
  double seconds = 0;
  if (run_phase(a, log_path, board, 0, "throughput", interrupted, &seconds)) {
    if (!report(a, board, seconds, "phase 1: producers append as fast as they can (latency includes queueing)")) rc = 1;
  } else {
    rc = 1;
  }
  if (rc == 0 && !*interrupted && run_phase(a, log_path, board, a.rate, "latency", interrupted, &seconds)) {
    char title[128];
    std::snprintf(title, sizeof title, "phase 2: paced at %" PRIu64 " records/s in total", a.rate);
    if (!report(a, board, seconds, title)) rc = 1;
  } else if (rc == 0) {
    rc = 1;
  }
  // What a consumer that sleeps between records (futex) costs, for contrast.
  if (rc == 0 && !*interrupted && a.wait_strategy.kind != WaitStrategy::Kind::kBlock) {
    DemoArgs sleeping = a;
    sleeping.wait_strategy = WaitStrategy::block();
    if (run_phase(sleeping, log_path, board, a.rate, "sleeping", interrupted, &seconds)) {
      char title[160];
      std::snprintf(title, sizeof title,
                    "phase 3: paced at %" PRIu64 " records/s, consumers sleeping between records (--wait block)", a.rate);
      if (!report(sleeping, board, seconds, title)) rc = 1;
    } else {
      rc = 1;
    }
  }
  Status removed = Log::remove(log_path);
  if (!removed.ok()) std::fprintf(stderr, "shmlog demo: %s\n", removed.message().c_str());
  if (rc != 0) std::fprintf(stderr, "shmlog demo: a phase failed (see above)\n");
  return rc;
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto a = std::make_shared<DemoArgs>();
  auto* demo = app.add_subcommand("demo", "Live demo: producer and consumer processes, throughput and latency");
  demo->add_option("--producers", a->producers, "Producer processes (default: half the cores, 1..4)");
  demo->add_option("--consumers", a->consumers, "Consumer processes in one group (default: as producers)");
  demo->add_option("--partitions", a->partitions, "Partitions (default: one per consumer)");
  demo->add_option("--size", a->size, "Record value size in bytes")->capture_default_str();
  demo->add_option("--seconds", a->seconds, "Duration of each phase")->capture_default_str();
  demo->add_option("--rate", a->rate, "Records/s (all producers) for the latency phase")->capture_default_str();
  demo->add_option("--dir", a->dir, "Where to create the demo log")->capture_default_str();
  demo->add_option("--wait", a->wait, "Consumer wait: auto, spin, yield, backoff or block")->capture_default_str();
  set_action(demo, [a] {
    if (a->wait != "auto") a->wait_strategy = parse_wait(a->wait);
    return run_demo(*a, &g_interrupted);
  });
}

}  // namespace shmlog::tools
