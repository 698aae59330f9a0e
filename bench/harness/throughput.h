// The throughput matrix behind `shmlog bench`: producer and consumer
// processes, pinned, appending flat out through one log; records/s and
// bytes/s next to the memcpy bandwidth of the same machine, same run.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "shmlog/log.h"
#include "shmlog/status.h"

namespace shmlog::bench {

struct ThroughputCell {
  std::uint32_t producers = 1;
  std::uint32_t consumers = 1;
  bool exclusive = false;  // exclusive claims (one producer only)
  std::size_t size = 32;
  // The baseline instead of a log: a plain ring of 64-byte slots between
  // one producer and one consumer process (sizes up to kRingPayload).
  bool ring = false;
  // Results
  double records_per_s = 0;
  double bytes_per_s = 0;
  std::uint64_t records = 0;
  double seconds = 0;
};

struct MemcpyBandwidth {
  double streaming_bytes_per_s = 0;  // 4 KiB blocks through 64 MiB, like a ring
  double cached_bytes_per_s = 0;     // 4 KiB in cache
};

struct ThroughputOptions {
  std::vector<std::size_t> sizes = {0, 32, 256, 1024, 4096, 65536};
  std::uint32_t producers = 0;  // N for the N -> M rows; 0: half the cores
  std::uint32_t consumers = 0;  // M; 0: as producers
  double seconds = 1;
  std::string dir = "/tmp";
  Pages pages = Pages::kNormal;  // the log's pages (normal, thp, huge)
  std::string memory_dir;        // empty: the default for `pages`
  // After a poll that found fewer records than it asked for (the producer
  // is at most a batch ahead), each consumer waits this long before it
  // polls again: the log's through ConsumerOptions::short_poll_backoff,
  // the baseline ring's in its loop; 0: it polls again at once. A
  // consumer at the producer's heels reads each line as it is written, and
  // each of the producer's writes then waits for the line to come back;
  // waiting lets the producer write a batch of lines no one is reading
  // (bench/README.md, "A consumer at the producer's heels").
  std::uint64_t consumer_backoff_ns = 0;
};

// The baseline ring's slot: an 8-byte sequence the producer publishes
// with a release store, then the payload. The consumer publishes its
// position after each record (as a plain SPSC queue such as rigtorp's
// does); the producer reads it only when its cached copy says the ring is
// full. As much ring memory as a log's partition.
inline constexpr std::size_t kRingSlot = 64;
inline constexpr std::size_t kRingPayload = kRingSlot - 8;

MemcpyBandwidth measure_memcpy(double seconds);
std::vector<ThroughputCell> throughput_matrix(const ThroughputOptions& options);
// Runs one cell in processes (the log's, or the baseline ring's); fills its
// results.
Status run_cell(ThroughputCell& cell, const ThroughputOptions& options);

}  // namespace shmlog::bench
