// Host-crash torture: thousands of simulated host crashes of a durable log
// whose keeper writes through the fault layer, each at a random moment and
// with a random disk fault before it (a failed fsync, write or directory
// sync, ENOSPC, a short write). After each crash the shared memory is
// removed, the log is rebuilt from its files alone, and an independent
// checker asks: did every record acknowledged durable survive? Is what
// survived exactly the records written, in order, none twice, none
// invented? Is the recovered end at or past every durable position the log
// published? Does the named producer resume right after what survived?
//
//   shmlog_host_crash_torture [--trials N] [--seed S] [--dir D]
//
// Exits 1 naming the trial and seed of the first violation.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "crash_util.h"
#include "trials.h"
#include "shmlog/io/segment_file.h"
#include "shmlog/log.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;

std::string value_of(std::uint64_t trial, int i) {
  // 20 to 700 bytes: records straddle 512-byte sectors, so tears cut them.
  return "t" + std::to_string(trial) + "-" + std::to_string(i) + "-" +
         std::string(static_cast<std::size_t>((i * 37 + trial) % 680), static_cast<char>('a' + i % 26));
}

struct Totals {
  std::uint64_t trials = 0, acked = 0, retention_removed = 0, survived = 0, faults = 0;
  io::FaultLayer::CrashReport crash;
};

// One trial; returns an empty string or what went wrong.
std::string trial(std::uint64_t n, std::uint64_t seed, const std::string& dir, Totals& totals) {
  std::mt19937_64 rng(seed);
  const std::string path = dir + "/torture-" + std::to_string(::getpid()) + "-" + std::to_string(n);
  auto layer = std::make_shared<io::FaultLayer>(seed);
  LogOptions o;
  o.partitions = 1;
  o.segment_size = 64 * 1024;
  o.ring_segments = 2 + static_cast<std::uint32_t>(rng() % 3);
  o.max_record_size = 4096;
  o.durability = Durability::kFsync;
  std::string plan = "ring " + std::to_string(o.ring_segments) + " segments, syncs ";
  switch (rng() % 3) {  // when the keeper syncs
    case 0: plan += "every round"; break;
    case 1: o.fsync_interval_bytes = 16 * 1024; plan += "every 16 KiB"; break;
    default: o.fsync_interval = std::chrono::minutes(10); plan += "when asked"; break;
  }
  // One trial in four keeps only the ring's worth of files and runs longer:
  // retention removes files while others are made, and a crash may bring
  // removed files back or leave new ones empty.
  const bool retention = rng() % 4 == 0;
  if (retention) {
    o.retention_bytes = 1;
    plan += ", retention";
  }
  const std::uint64_t nth = 1 + rng() % 30;
  switch (rng() % 6) {  // the disk fault before the crash, if any
    case 0: layer->fail_sync(nth, EIO); plan += ", sync " + std::to_string(nth) + " fails"; break;
    case 1: {
      const int err = rng() % 2 == 0 ? EIO : ENOSPC;
      layer->fail_write(nth, err);
      plan += ", write " + std::to_string(nth) + " fails with " + std::strerror(err);
      break;
    }
    case 2: layer->short_write(nth); plan += ", write " + std::to_string(nth) + " is short"; break;
    case 3: layer->fail_directory_sync(1 + nth % 4, EIO); plan += ", directory sync " + std::to_string(1 + nth % 4) + " fails"; break;
    default: break;
  }
  if (retention && rng() % 2 == 0) {  // removals that never reach the disk
    const std::uint64_t from = 2 + rng() % 8;
    layer->fail_directory_sync(from, EIO, /*sticky=*/true);
    plan += ", directory syncs fail from " + std::to_string(from);
  }
  const bool named = rng() % 2 == 0;
  // Each record acked durable, or batches acked by one wait: up to 64, or
  // hundreds (more unsynced bytes for the crash to drop or tear; the ring
  // fills, and producers wait for syncs to reuse it).
  const int kind = static_cast<int>(rng() % 3);
  const int batch = kind == 0 ? 1 : kind == 1 ? 1 + static_cast<int>(rng() % 64) : 200 + static_cast<int>(rng() % 1800);
  plan += std::string(named ? ", a named producer" : ", a producer") + " waiting every " + std::to_string(batch) + " records";
  // The crash: at a random moment, or right before a sync (everything
  // written since the last one is then at its mercy).
  auto crash_after = std::chrono::microseconds(rng() % 15000 + (retention ? 20000 + rng() % 100000 : 0));
  if (rng() % 2 == 0) {
    const std::uint64_t sync = 1 + rng() % 12;
    layer->crash_before_sync(sync);
    crash_after = std::chrono::milliseconds(500);  // unless the syncs stop coming
    plan += ", crash before sync " + std::to_string(sync);
  } else {
    plan += ", crash after " + std::to_string(crash_after.count()) + " us";
  }
  int acked = -1, attempted = 0;
  std::vector<std::uint64_t> offsets;  // of each record appended
  std::uint64_t durable_published = 0;
  io::FaultLayer::CrashReport crash;
  {
    test::FileLayerScope scope(layer);
    auto log = Log::create(path, o);
    if (!log.ok()) return "create: " + log.status().to_string();
    ProducerOptions po;
    po.backpressure_timeout = 100ms;  // after the crash the ring never frees
    if (named) po.producer_id = "torture";
    auto p = log->producer(po);
    if (!p.ok()) return "producer: " + p.status().to_string();
    std::atomic<bool> crashed{false};
    std::thread host([&] {
      const auto at = std::chrono::steady_clock::now() + crash_after;
      while (!layer->crashed() && std::chrono::steady_clock::now() < at) std::this_thread::sleep_for(200us);
      (void)layer->crash();
      crash = layer->crash_report();
      crashed.store(true, std::memory_order_release);
    });
    for (int i = 0; !crashed.load(std::memory_order_acquire) && i < 20000; ++i) {
      attempted = i + 1;
      const AppendResult r = p->append(as_bytes(value_of(n, i)));
      if (!r) break;
      offsets.push_back(r.offset);
      if ((i + 1) % batch != 0) continue;
      // Everything up to this record is durable once the wait says so.
      if (p->wait_durable(0, r.offset + 1, 100ms) != Errc::kOk) break;
      acked = i;
    }
    host.join();
    durable_published = log->info().partitions[0].durable_offset;
  }
  totals.faults += layer->counts().faults;
  totals.crash.kept += crash.kept;
  totals.crash.dropped += crash.dropped;
  totals.crash.torn += crash.torn;
  totals.crash.entries_lost += crash.entries_lost;
  totals.crash.sizes_lost += crash.sizes_lost;
  totals.crash.removals_undone += crash.removals_undone;
  // Records in files that retention removed for good are gone by design;
  // every other record acknowledged durable must survive.
  std::uint64_t removed_below = 0;
  for (const std::string& file : layer->removed_files()) {
    const auto base = io::parse_segment_file_name(file.substr(file.rfind('/') + 1));
    if (base) removed_below = std::max(removed_below, *base + o.segment_size);
  }
  int must_survive_from = 0;  // the first record acknowledged durable that must survive
  while (must_survive_from < static_cast<int>(offsets.size()) && offsets[must_survive_from] < removed_below) {
    ++must_survive_from;
  }
  if (Status lost = test::lose_shared_memory(path); !lost.ok()) return "removing shared memory: " + lost.to_string();
  std::string error;
  {
    auto log = Log::open(path, {.keeper = false});
    if (!log.ok()) return "recovery: " + log.status().to_string();
    const std::uint64_t end = log->info().partitions[0].end_offset;
    if (end < durable_published) {
      error = "recovered end " + std::to_string(end) + " is below the published durable position " +
              std::to_string(durable_published);
    }
    ConsumerOptions co;
    co.partitions = {0};
    auto c = log->consumer(co).value();
    // Records from the first one kept (retention may have removed
    // earlier ones; a crash may bring some of those back) to the end.
    int first = -1, next = 0;
    for (int idle = 0; error.empty() && c.position(0).value_or(0) < end && idle < 3;) {
      const std::uint64_t before = c.position(0).value_or(0);
      const PollResult polled = c.poll_wait(
          [&](const Record& r) {
            if (!error.empty()) return;
            if (first < 0) {  // "t<trial>-<index>-..."
              const std::string v(as_string(r.value));
              first = next = retention ? std::atoi(v.c_str() + v.find('-') + 1) : 0;
            }
            if (next >= attempted || as_string(r.value) != value_of(n, next)) {
              error = "record " + std::to_string(next) + " is not what was written (lost, repeated, reordered or invented)";
            }
            ++next;
          },
          512, 200ms);
      if (error.empty() && polled.corrupt != 0) {
        error = std::to_string(polled.corrupt) + " bytes reported damaged at offset " + std::to_string(before);
      }
      idle = c.position(0).value_or(0) == before ? idle + 1 : 0;
    }
    if (error.empty() && must_survive_from <= acked &&
        (next < acked + 1 || first < 0 || first > must_survive_from)) {
      error = "records " + std::to_string(must_survive_from) + " to " + std::to_string(acked) +
              " acknowledged durable (and not removed by retention), " + std::to_string(first) + " to " +
              std::to_string(next - 1) + " survived";
    }
    if (error.empty() && c.position(0).value_or(0) != end) error = "the reader stopped before the recovered end";
    if (error.empty() && named) {
      ProducerOptions po;
      po.producer_id = "torture";
      auto again = log->producer(po).value();
      const std::uint64_t resumes = again.last_sequence() ? *again.last_sequence() + 1 : 0;
      // Right after the last record there, or in a file retention removed.
      const int after = std::max(next, std::min(must_survive_from, attempted));
      if (resumes != static_cast<std::uint64_t>(after)) {
        error = "the named producer resumes at sequence " + std::to_string(resumes) + " after record " +
                std::to_string(after - 1);
      }
    }
    totals.acked += static_cast<std::uint64_t>(acked + 1);
    totals.retention_removed += static_cast<std::uint64_t>(std::min(must_survive_from, acked + 1));
    totals.survived += static_cast<std::uint64_t>(next - std::max(first, 0));
  }
  ++totals.trials;
  if (error.empty()) {
    test::remove_log_and_its_memory(path);
    return error;
  }
  return error + " (" + plan + "; the log is left in " + path + ")";
}

}  // namespace
}  // namespace shmlog

int main(int argc, char** argv) {
  shmlog::torture::Run run;
  shmlog::Totals totals;
  if (const int rc = shmlog::torture::run_trials(
          argc, argv, run,
          [&](std::uint64_t n, std::uint64_t seed, const std::string& dir) { return shmlog::trial(n, seed, dir, totals); });
      rc != 0) {
    return rc;
  }
  std::printf(
      "%llu host crashes in %.0f s (seed %llu): %llu records acknowledged durable (%llu of them in files retention removed), %llu survived, 0 lost, 0 invented,"
      " 0 reported durable that were not; %llu disk faults injected; unsynced writes kept %llu, dropped %llu, torn %llu;"
      " %llu directory entries lost, %llu new files cut short, %llu removed files back\n",
      static_cast<unsigned long long>(totals.trials), run.seconds, static_cast<unsigned long long>(run.seed),
      static_cast<unsigned long long>(totals.acked), static_cast<unsigned long long>(totals.retention_removed),
      static_cast<unsigned long long>(totals.survived),
      static_cast<unsigned long long>(totals.faults), static_cast<unsigned long long>(totals.crash.kept),
      static_cast<unsigned long long>(totals.crash.dropped), static_cast<unsigned long long>(totals.crash.torn),
      static_cast<unsigned long long>(totals.crash.entries_lost),
      static_cast<unsigned long long>(totals.crash.sizes_lost),
      static_cast<unsigned long long>(totals.crash.removals_undone));
  return 0;
}
