// What durability costs, each figure beside its baseline measured in the
// same run, on the same file system (DIR), rounds interleaved, medians:
//
//  1. durable append latency (acks=durable, durability fsync, one producer)
//     against a raw pwrite + fdatasync of the same size, the two alternating;
//  2. group commit: producers appending with acks=durable at once share
//     fdatasyncs (fsyncs per record);
//  3. persisted throughput of 64 KiB records (fsync every 8 MiB) against a
//     plain io_uring sequential writer (1 MiB writes, 8 in flight, the same
//     fdatasync cadence);
//  4. a memory-only consumer's latency (p50, p99) with durability none and
//     fsync while a producer appends at a fixed rate (it sleeps between
//     sends: on two cores a spinning producer, a spinning consumer and the
//     keeper would measure the scheduler, not shmlog).
//
//   build/bench/shmlog_durability_bench [ROUNDS] [DIR] [THROUGHPUT_MIB]
//   [SECTIONS]
//
// SECTIONS picks parts by number, e.g. "13" (default "1234").
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "harness/host.h"
#include "shmlog/histogram.h"
#include "shmlog/io/uring.h"
#include "shmlog/log.h"

namespace shmlog::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::uint64_t ns_since(Clock::time_point t) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count());
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "shmlog_durability_bench: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T must(Result<T> r) {
  if (!r.ok()) die(r.status().message());
  return std::move(r).value();
}

std::string g_dir = "/tmp";
int g_serial = 0;

struct TempLog {
  std::string path;
  Log log;
  explicit TempLog(LogOptions o)
      : path(g_dir + "/shmlog-durability-bench-" + std::to_string(::getpid()) + "-" + std::to_string(g_serial++)),
        log(must(Log::create(path, o))) {}
  ~TempLog() {
    log = must(Log::create_in_memory({}));  // drop the handle (joins the keeper) before removing
    (void)Log::remove(path);
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// ---------------------------------------------------------------- 1. latency
struct Lat {
  double p50 = 0, p99 = 0;
};

// Raw syncs and durable appends alternate, one of each per step, so that
// both see the same disk: its latency drifts over seconds on a shared host.
struct LatPair {
  Lat raw, durable;
};

LatPair durable_vs_raw(std::size_t size, int count) {
  const std::string file = g_dir + "/shmlog-durability-bench-raw-" + std::to_string(::getpid());
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) die("cannot create " + file + ": " + std::strerror(errno));
  const std::uint64_t total = std::uint64_t{size} * static_cast<std::uint64_t>(count) + 4096;
  if (::posix_fallocate(fd, 0, static_cast<off_t>(total)) != 0) die("cannot preallocate " + file);
  (void)::fdatasync(fd);
  std::vector<char> buf(size, 'r');

  LogOptions o;
  o.durability = Durability::kFsync;
  TempLog t(o);
  ProducerOptions po;
  po.acks = ProducerOptions::Acks::kDurable;
  auto p = must(t.log.producer(po));
  std::vector<std::byte> value(size, std::byte{'d'});
  for (int i = 0; i < 50; ++i) (void)p.append(value);  // the keeper takes its lease, files exist

  Histogram raw, durable;
  for (int i = 0; i < count; ++i) {
    auto start = Clock::now();
    if (::pwrite(fd, buf.data(), size, static_cast<off_t>(std::uint64_t{size} * static_cast<std::uint64_t>(i))) !=
        static_cast<ssize_t>(size)) {
      die("pwrite failed");
    }
    if (::fdatasync(fd) != 0) die("fdatasync failed");
    raw.record(ns_since(start));
    start = Clock::now();
    if (!p.append(value)) die("durable append failed");
    durable.record(ns_since(start));
  }
  ::close(fd);
  ::unlink(file.c_str());
  const auto lat = [](const Histogram& h) {
    return Lat{static_cast<double>(h.percentile(50)), static_cast<double>(h.percentile(99))};
  };
  return {lat(raw), lat(durable)};
}

// ---------------------------------------------------------- 2. group commit
struct Group {
  double records_per_s = 0;
  double fsyncs_per_record = 0;
};

Group group_commit(int producers, int each) {
  LogOptions o;
  o.durability = Durability::kFsync;
  TempLog t(o);
  {
    auto warm = must(t.log.producer({.acks = ProducerOptions::Acks::kDurable}));
    (void)warm.append(as_bytes("warm"));
  }
  const std::uint64_t fsyncs_before = t.log.info().partitions[0].fsyncs;
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int i = 0; i < producers; ++i) {
    threads.emplace_back([&] {
      ProducerOptions po;
      po.acks = ProducerOptions::Acks::kDurable;
      auto p = must(t.log.producer(po));
      std::vector<std::byte> value(256, std::byte{'g'});
      for (int k = 0; k < each; ++k) {
        if (!p.append(value)) die("durable append failed");
      }
    });
  }
  for (auto& th : threads) th.join();
  const double seconds = static_cast<double>(ns_since(start)) / 1e9;
  const double records = static_cast<double>(producers) * each;
  const auto fsyncs = static_cast<double>(t.log.info().partitions[0].fsyncs - fsyncs_before);
  return {records / seconds, fsyncs / records};
}

// ------------------------------------------------------------ 3. throughput
constexpr std::size_t kBigRecord = 64 * 1024;
constexpr std::uint64_t kSyncEvery = 8u << 20;

double uring_writer_mib_s(std::uint64_t total) {
  const std::string file = g_dir + "/shmlog-durability-bench-uring-" + std::to_string(::getpid());
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) die("cannot create " + file);
  auto ring = must(io::Uring::create(64));
  constexpr std::uint32_t kChunk = 1u << 20;
  std::vector<char> buf(std::size_t{kChunk} * 8, 'u');
  const auto start = Clock::now();
  // Preallocated as it goes, like the log (which reserves each segment file
  // ahead of need): timed.
  std::uint64_t reserved = 0;
  for (std::uint64_t done = 0; done < total;) {
    if (reserved < done + kSyncEvery) {
      if (::posix_fallocate(fd, static_cast<off_t>(reserved), static_cast<off_t>(kSyncEvery)) != 0) die("fallocate");
      reserved += kSyncEvery;
    }
    std::vector<io::IoOp> ops;
    for (int i = 0; i < 8 && done < total; ++i) {
      io::IoOp op;
      op.fd = fd;
      op.data = buf.data() + static_cast<std::size_t>(i) * kChunk;
      op.size = kChunk;
      op.offset = done;
      op.link = true;
      ops.push_back(op);
      done += kChunk;
    }
    io::IoOp sync;
    sync.kind = io::IoOp::Kind::kDataSync;
    sync.fd = fd;
    ops.push_back(sync);
    if (!ring.run(ops).ok()) die("io_uring failed");
    for (const auto& op : ops) {
      if (op.result < 0) die(std::string("io_uring op failed: ") + std::strerror(-op.result));
    }
  }
  const double seconds = static_cast<double>(ns_since(start)) / 1e9;
  ::close(fd);
  ::unlink(file.c_str());
  return static_cast<double>(total) / (1 << 20) / seconds;
}

double log_persisted_mib_s(std::uint64_t total) {
  LogOptions o;
  o.durability = Durability::kFsync;
  o.fsync_interval_bytes = kSyncEvery;
  o.max_record_size = kBigRecord;
  TempLog t(o);
  auto p = must(t.log.producer());
  std::vector<std::byte> value(kBigRecord, std::byte{'t'});
  const auto start = Clock::now();
  AppendResult last;
  for (std::uint64_t done = 0; done < total; done += kBigRecord) {
    last = p.append(value);
    if (!last) die(std::string("append failed: ") + errc_name(last.error));
  }
  if (p.wait_durable(0, last.offset + 1, std::chrono::seconds(60)) != Errc::kOk) die("not durable in 60 s");
  const double seconds = static_cast<double>(ns_since(start)) / 1e9;
  return static_cast<double>(total) / (1 << 20) / seconds;
}

// ----------------------------------------------------- 4. consumer latency
Lat consumer_latency(Durability d, std::chrono::microseconds fsync_interval, std::uint64_t rate, double seconds) {
  LogOptions o;
  o.durability = d;
  o.fsync_interval = fsync_interval;
  TempLog t(o);
  // The consumer spins on the last core; the producer sleeps on the first,
  // and the keeper runs there too (a housekeeping core, as `shmlog keeper
  // --core 0` would), so that the consumer's core is its own.
  const int last_core = static_cast<int>(std::thread::hardware_concurrency()) - 1;
  std::atomic<bool> done{false};
  std::atomic<bool> stop_keeper{false};
  std::thread keeper;
  if (d != Durability::kNone) {
    t.log = must(Log::create_in_memory({}));             // hands the lease back ...
    t.log = must(Log::open(t.path, {.keeper = false}));  // ... to a pinned keeper
    keeper = std::thread([&] {
      if (!pin_current_thread(0).ok()) die("cannot pin the keeper to core 0");
      if (!t.log.keep(stop_keeper).ok()) die("keeper failed");
    });
  }
  std::thread producer([&] {
    auto p = must(t.log.producer({.core = 0}));
    std::vector<std::byte> value(64, std::byte{'c'});
    const auto start = Clock::now();
    const auto period = std::chrono::nanoseconds(1000000000 / rate);
    for (std::uint64_t i = 0; Clock::now() - start < std::chrono::duration<double>(seconds); ++i) {
      // Sleeps between sends (two cores: the consumer spins on one, the
      // producer and the keeper share the other), spins the last 30 us.
      const auto due = start + period * static_cast<std::int64_t>(i);
      if (due - Clock::now() > std::chrono::microseconds(30)) {
        std::this_thread::sleep_until(due - std::chrono::microseconds(30));
      }
      while (Clock::now() < due) {
      }
      const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
      std::memcpy(value.data(), &now, sizeof now);
      if (!p.append(value)) die("append failed");
    }
    done.store(true, std::memory_order_release);
  });
  Histogram h;
  std::thread consumer([&] {
    auto c = must(t.log.consumer({.wait = WaitStrategy::spin(), .core = last_core}));
    std::uint64_t seen = 0;
    while (!done.load(std::memory_order_acquire) || seen == 0) {
      c.poll(
          [&](const Record& r) {
            std::int64_t sent;
            std::memcpy(&sent, r.value.data(), sizeof sent);
            const auto now =
                std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
            if (++seen > rate / 10) h.record(static_cast<std::uint64_t>(now - sent));  // after a warm-up
          },
          64);
    }
  });
  producer.join();
  consumer.join();
  stop_keeper.store(true);
  if (keeper.joinable()) keeper.join();
  return {static_cast<double>(h.percentile(50)), static_cast<double>(h.percentile(99))};
}

}  // namespace
}  // namespace shmlog::bench

int main(int argc, char** argv) {
  using namespace shmlog::bench;
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
  if (argc > 2) g_dir = argv[2];
  const std::uint64_t mib = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 256;
  const std::string sections = argc > 4 ? argv[4] : "1234";
  if (sections.find_first_not_of("1234") != std::string::npos) die("SECTIONS takes the digits 1 to 4, not " + sections);
  const auto runs = [&](char section) { return sections.find(section) != std::string::npos; };
  std::printf("# shmlog durability: %d round(s), files in %s, %s\n", rounds, g_dir.c_str(),
              shmlog::bench::host_summary().c_str());

  std::vector<double> raw50, raw99, dur50, dur99;
  for (int r = 0; r < rounds && runs('1'); ++r) {
    const auto [raw, dur] = durable_vs_raw(256, 1000);
    raw50.push_back(raw.p50), raw99.push_back(raw.p99), dur50.push_back(dur.p50), dur99.push_back(dur.p99);
  }
  if (runs('1')) {
    std::printf("\n1. durable append, 256 B, one producer (acks=durable, fsync)\n");
    std::printf("   raw pwrite+fdatasync  p50 %9.1f us  p99 %9.1f us\n", median(raw50) / 1e3, median(raw99) / 1e3);
    std::printf(
        "   shmlog durable append p50 %9.1f us  p99 %9.1f us   p50 "
        "ratio %.2fx (target <= 1.15x)\n",
        median(dur50) / 1e3, median(dur99) / 1e3, median(dur50) / median(raw50));
  }

  if (runs('2')) {
    std::printf(
        "\n2. group commit: producers appending with acks=durable at "
        "once (256 B, 500 each)\n");
    for (int producers : {1, 4, 16}) {
      std::vector<double> rate, per;
      for (int r = 0; r < rounds; ++r) {
        const Group g = group_commit(producers, 500);
        rate.push_back(g.records_per_s);
        per.push_back(g.fsyncs_per_record);
      }
      std::printf(
          "   %2d producer(s): %9.0f durable records/s, %.3f fsyncs "
          "per record\n",
          producers, median(rate), median(per));
    }
  }

  std::vector<double> uring, persisted;
  for (int r = 0; r < rounds && runs('3'); ++r) {
    uring.push_back(uring_writer_mib_s(mib << 20));
    persisted.push_back(log_persisted_mib_s(mib << 20));
  }
  if (runs('3')) {
    std::printf("\n3. persisted throughput, %" PRIu64 " MiB of 64 KiB records, fdatasync every 8 MiB\n", mib);
    std::printf("   plain io_uring writer %8.1f MiB/s\n", median(uring));
    std::printf(
        "   shmlog durable log    %8.1f MiB/s   %.0f%% of the writer "
        "(target >= 80%%)\n",
        median(persisted), 100 * median(persisted) / median(uring));
  }

  struct Setting {
    const char* name;
    shmlog::Durability durability;
    std::chrono::microseconds interval;
  };
  const Setting settings[] = {{"none", shmlog::Durability::kNone, {}},
                              {"flush", shmlog::Durability::kFlush, {}},
                              {"fsync every 10 ms", shmlog::Durability::kFsync, std::chrono::microseconds(10000)},
                              {"fsync every flush", shmlog::Durability::kFsync, {}}};
  constexpr std::size_t kSettings = std::size(settings);
  std::vector<double> p50[kSettings], p99[kSettings];
  for (int r = 0; r < rounds && runs('4'); ++r) {
    for (std::size_t i = 0; i < kSettings; ++i) {
      const Lat l = consumer_latency(settings[i].durability, settings[i].interval, 2000, 3);
      p50[i].push_back(l.p50);
      p99[i].push_back(l.p99);
    }
  }
  if (!runs('4')) return 0;
  std::printf(
      "\n4. memory-only consumer (spinning, last core), 64 B at 2 "
      "000/s, producer -> consumer latency\n");
  for (std::size_t i = 0; i < kSettings; ++i) {
    std::printf(
        "   durability %-18s p50 %8.0f ns  p99 %9.0f ns   p99 ratio "
        "%.2fx (target <= 1.2x)\n",
        settings[i].name, median(p50[i]), median(p99[i]), median(p99[i]) / median(p99[0]));
  }
  return 0;
}
