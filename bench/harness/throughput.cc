#include "throughput.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "clock.h"
#include "shmlog/log.h"
#include "shmlog/shm/process.h"
#include "shmlog/shm/shared_memory.h"
#include "shmlog/shm/topology.h"

namespace shmlog::bench {
namespace {

using namespace std::chrono_literals;
constexpr std::uint32_t kMax = 64;

struct Board {
  std::uint32_t ready;  // consumers that joined
  std::uint32_t go;
  std::uint32_t stop;
  std::uint32_t failed;
  std::uint64_t start_ns;
  std::uint64_t consumed[kMax];
  std::uint64_t end_ns[kMax];
};

volatile std::uint64_t g_sink;  // keeps the consumer's reads of the values

template <class T>
std::atomic_ref<T> at(T& v) {
  return std::atomic_ref<T>(v);
}

struct Job {
  const ThroughputCell* cell = nullptr;
  Board* board = nullptr;
  std::string log{};
  std::uint32_t index = 0;
  int core = -1;
  double seconds = 1;
  std::uint64_t backoff_ns = 0;
};

int producer_main(void* arg) {
  auto& j = *static_cast<Job*>(arg);
  Board& b = *j.board;
  if (j.core >= 0) (void)shm::pin_current_thread(static_cast<unsigned>(j.core));
  auto log = Log::open(j.log);
  if (!log.ok()) return at(b.failed).store(1), 1;
  auto producer = log->producer({.partition = j.index % log->options().partitions,
                                 .exclusive = j.cell->exclusive,
                                 .timestamps = false});
  if (!producer.ok()) return at(b.failed).store(1), 1;
  std::vector<std::byte> value(j.cell->size, std::byte{0x5a});
  while (!at(b.go).load()) shm::yield_now();
  for (std::uint64_t n = 0; !at(b.stop).load(std::memory_order_relaxed); ++n) {
    // 64 appends between looks at the stop flag.
    for (int k = 0; k < 64; ++k) {
      auto r = producer->append(value);
      if (!r) {
        if (r.error == Errc::kBackpressureTimeout && at(b.stop).load()) return 0;
        return at(b.failed).store(1), 1;
      }
    }
  }
  return 0;
}

int consumer_main(void* arg) {
  auto& j = *static_cast<Job*>(arg);
  Board& b = *j.board;
  if (j.core >= 0) (void)shm::pin_current_thread(static_cast<unsigned>(j.core));
  auto log = Log::open(j.log);
  if (!log.ok()) return at(b.failed).store(1), 1;
  auto consumer = log->consumer({.group = "bench",
                                 .commit_every = 256,
                                 .wait = WaitStrategy::spin(),
                                 .short_poll_backoff = std::chrono::nanoseconds(j.backoff_ns)});
  if (!consumer.ok()) return at(b.failed).store(1), 1;
  at(b.ready).fetch_add(1);
  std::uint64_t n = 0, sink = 0;
  while (!at(b.go).load()) shm::yield_now();
  // A consumer reads what it receives: one load per cache line of the value.
  auto handler = [&](const Record& r) {
    const auto* p = reinterpret_cast<const unsigned char*>(r.value.data());
    for (std::size_t i = 0; i < r.value.size(); i += 64) sink += p[i];
    ++n;
  };
  const std::uint64_t deadline = at(b.start_ns).load() + static_cast<std::uint64_t>(j.seconds * 1e9);
  // With a back-off, poll_wait applies it (ConsumerOptions::short_poll_backoff).
  while (monotonic_ns() < deadline && !at(b.failed).load()) {
    if (j.backoff_ns == 0) {
      consumer->poll(handler, 256);
    } else {
      consumer->poll_wait(handler, 256, 1ms);
    }
  }
  b.end_ns[j.index] = monotonic_ns();
  b.consumed[j.index] = n;
  g_sink = sink;
  at(b.stop).store(1);
  // Keep committing until the producers are gone so none waits on us.
  const auto linger = std::chrono::steady_clock::now() + 200ms;
  while (std::chrono::steady_clock::now() < linger) consumer->poll(handler, 4096);
  return 0;
}

// Opens the gate for the forked processes `pids` (or, when `status` says
// starting them failed, stops those that started) and waits for each, at
// most the run's length and 30 s: the first failure, or `status`.
Status start_and_wait(Board& b, const std::vector<std::uint32_t>& pids, double seconds, Status status) {
  shm::sleep_for(20ms);  // let every process reach the gate
  at(b.start_ns).store(monotonic_ns());
  at(b.go).store(1);
  if (!status.ok()) at(b.stop).store(1);
  for (auto pid : pids) {
    int code = shm::wait_process_for(pid, std::chrono::milliseconds(static_cast<long>(seconds * 1000) + 30000));
    if (code == -1) {
      shm::kill_process(pid);
      shm::wait_process(pid);
      code = 1;
    }
    if (code != 0 && status.ok()) status = Status(Status::Code::kIoError, "a benchmark process failed");
  }
  return status;
}

// The baseline ring (kRingSlot): its consumer's position on a line of its
// own, then the slots.
struct Ring {
  alignas(128) std::uint64_t head;  // records the consumer has read (published every 256)
  std::uint8_t pad[128 - 8];
};

struct RingJob {
  const ThroughputCell* cell = nullptr;
  Board* board = nullptr;
  Ring* ring = nullptr;
  std::uint64_t slots = 0;  // a power of two
  int core = -1;
  double seconds = 1;
  std::uint64_t backoff_ns = 0;
};

std::byte* slot_at(Ring* ring, std::uint64_t slots, std::uint64_t n) {
  return reinterpret_cast<std::byte*>(ring + 1) + (n & (slots - 1)) * kRingSlot;
}

int ring_producer_main(void* arg) {
  auto& j = *static_cast<RingJob*>(arg);
  Board& b = *j.board;
  if (j.core >= 0) (void)shm::pin_current_thread(static_cast<unsigned>(j.core));
  std::vector<std::byte> value(j.cell->size, std::byte{0x5a});
  std::uint64_t tail = 0, head = 0;  // head: the consumer's position as last read
  while (!at(b.go).load()) shm::yield_now();
  while (!at(b.stop).load(std::memory_order_relaxed)) {
    for (int k = 0; k < 64; ++k) {
      while (tail - head >= j.slots) {
        head = at(j.ring->head).load(std::memory_order_acquire);
        if (tail - head >= j.slots && at(b.stop).load(std::memory_order_relaxed)) return 0;
      }
      std::byte* slot = slot_at(j.ring, j.slots, tail);
      if (!value.empty()) std::memcpy(slot + 8, value.data(), value.size());
      at(*reinterpret_cast<std::uint64_t*>(slot)).store(tail + 1, std::memory_order_release);
      ++tail;
    }
  }
  return 0;
}

// The ring's consumer waits `ns` after a short batch, as the log's does
// through ConsumerOptions::short_poll_backoff; 0: not at all.
void back_off(std::uint64_t ns) noexcept {
  if (ns == 0) return;
  const std::uint64_t until = monotonic_ns() + ns;
  while (monotonic_ns() < until) shm::cpu_relax();
}

int ring_consumer_main(void* arg) {
  auto& j = *static_cast<RingJob*>(arg);
  Board& b = *j.board;
  if (j.core >= 0) (void)shm::pin_current_thread(static_cast<unsigned>(j.core));
  at(b.ready).fetch_add(1);
  std::uint64_t n = 0, sink = 0;
  while (!at(b.go).load()) shm::yield_now();
  const std::uint64_t deadline = at(b.start_ns).load() + static_cast<std::uint64_t>(j.seconds * 1e9);
  const std::size_t size = j.cell->size;
  while (monotonic_ns() < deadline) {
    int k = 0;
    for (; k < 256; ++k) {
      std::byte* slot = slot_at(j.ring, j.slots, n);
      if (at(*reinterpret_cast<std::uint64_t*>(slot)).load(std::memory_order_acquire) != n + 1) break;
      // As the log's consumer does: one load per cache line of the value.
      const auto* p = reinterpret_cast<const unsigned char*>(slot + 8);
      for (std::size_t i = 0; i < size; i += 64) sink += p[i];
      ++n;
      at(j.ring->head).store(n, std::memory_order_release);  // the slot is free again
    }
    if (k < 256) back_off(j.backoff_ns);
  }
  b.end_ns[0] = monotonic_ns();
  b.consumed[0] = n;
  g_sink = sink;
  at(b.stop).store(1);
  return 0;
}

Status run_ring_cell(ThroughputCell& cell, const ThroughputOptions& o, Board& b) {
  if (cell.producers != 1 || cell.consumers != 1 || cell.size > kRingPayload) {
    return Status(Status::Code::kInvalidArgument, "the baseline ring runs 1 -> 1 with records up to " +
                                                      std::to_string(kRingPayload) + " bytes");
  }
  const LogOptions log_sized;  // as much memory as one partition's ring
  const std::uint64_t slots = log_sized.segment_size * log_sized.ring_segments / kRingSlot;
  const std::string name = "/dev/shm/shmlog-bench-ring-" + std::to_string(shm::self().pid);
  auto mem = shm::SharedMemory::create(name, sizeof(Ring) + slots * kRingSlot, 0600);
  if (!mem.ok()) return std::move(mem).status();
  (void)shm::SharedMemory::unlink(name);
  auto* ring = reinterpret_cast<Ring*>(mem->data());
  const bool pin = shm::online_cpus() >= 2;
  RingJob consumer{&cell, &b, ring, slots, pin ? 1 : -1, o.seconds, o.consumer_backoff_ns};
  RingJob producer{&cell, &b, ring, slots, pin ? 0 : -1, o.seconds};
  std::vector<std::uint32_t> pids;
  Status status;
  auto c = shm::fork_process(ring_consumer_main, &consumer);
  if (c.ok()) pids.push_back(*c); else status = std::move(c).status();
  while (status.ok() && at(b.ready).load() < 1) shm::sleep_for(100us);
  if (status.ok()) {
    auto p = shm::fork_process(ring_producer_main, &producer);
    if (p.ok()) pids.push_back(*p); else status = std::move(p).status();
  }
  status = start_and_wait(b, pids, o.seconds, std::move(status));
  if (!status.ok()) return status;
  cell.records = b.consumed[0];
  cell.seconds = static_cast<double>(b.end_ns[0] - b.start_ns) / 1e9;
  cell.records_per_s = static_cast<double>(cell.records) / cell.seconds;
  cell.bytes_per_s = cell.records_per_s * static_cast<double>(cell.size);
  return {};
}

}  // namespace

MemcpyBandwidth measure_memcpy(double seconds) {
  MemcpyBandwidth m;
  constexpr std::size_t kRing = 64u << 20, kBlock = 4096;
  std::unique_ptr<std::byte[]> src(new std::byte[kRing]), dst(new std::byte[kRing]);
  std::memset(src.get(), 1, kRing);
  std::memset(dst.get(), 0, kRing);
  auto run = [&](std::size_t span) {
    std::uint64_t bytes = 0;
    const std::uint64_t t0 = monotonic_ns();
    std::size_t offset = 0;
    while (monotonic_ns() - t0 < static_cast<std::uint64_t>(seconds * 1e9)) {
      for (int k = 0; k < 256; ++k) {
        std::memcpy(dst.get() + offset, src.get() + offset, kBlock);
        asm volatile("" ::: "memory");  // every copy happens: none is hoisted or merged
        offset = (offset + kBlock) % span;
        bytes += kBlock;
      }
    }
    return static_cast<double>(bytes) / (static_cast<double>(monotonic_ns() - t0) / 1e9);
  };
  m.streaming_bytes_per_s = run(kRing);
  m.cached_bytes_per_s = run(kBlock);
  return m;
}

Status run_cell(ThroughputCell& cell, const ThroughputOptions& o) {
  if (cell.producers + cell.consumers > kMax) return Status(Status::Code::kInvalidArgument, "too many processes");
  const std::string name = "/dev/shm/shmlog-bench-board-" + std::to_string(shm::self().pid);
  auto mem = shm::SharedMemory::create(name, sizeof(Board), 0600);
  if (!mem.ok()) return std::move(mem).status();
  (void)shm::SharedMemory::unlink(name);
  Board& b = *reinterpret_cast<Board*>(mem->data());
  if (cell.ring) return run_ring_cell(cell, o, b);
  const std::string path = o.dir + "/shmlog-bench-" + std::to_string(shm::self().pid);
  LogOptions lo;
  lo.partitions = cell.consumers;
  lo.max_record_size = static_cast<std::uint32_t>(std::max<std::size_t>(cell.size, 1024));
  lo.pages = o.pages;
  lo.memory_dir = o.memory_dir;
  const unsigned cpus = shm::online_cpus();
  const bool pin = cell.producers + cell.consumers <= cpus;
  // Pinned: the memory goes to the node of the first consumer's core.
  if (auto node = shm::numa_node_of_cpu(cell.producers); pin && node.ok()) lo.numa_node = *node;
  auto log = Log::create(path, lo);
  if (!log.ok()) return std::move(log).status();
  std::vector<Job> jobs(cell.producers + cell.consumers);
  std::vector<std::uint32_t> pids;
  Status status;
  for (std::uint32_t i = 0; i < cell.consumers && status.ok(); ++i) {
    jobs[i] = Job{&cell, &b, path, i, pin ? static_cast<int>(cell.producers + i) : -1, o.seconds, o.consumer_backoff_ns};
    auto pid = shm::fork_process(consumer_main, &jobs[i]);
    if (pid.ok()) pids.push_back(*pid); else status = std::move(pid).status();
  }
  while (status.ok() && at(b.ready).load() < cell.consumers && !at(b.failed).load()) shm::sleep_for(100us);
  for (std::uint32_t i = 0; i < cell.producers && status.ok(); ++i) {
    auto& job = jobs[cell.consumers + i];
    job = Job{&cell, &b, path, i, pin ? static_cast<int>(i) : -1, o.seconds};
    auto pid = shm::fork_process(producer_main, &job);
    if (pid.ok()) pids.push_back(*pid); else status = std::move(pid).status();
  }
  status = start_and_wait(b, pids, o.seconds, std::move(status));
  (void)Log::remove(path);
  if (!status.ok()) return status;
  if (at(b.failed).load()) return Status(Status::Code::kIoError, "a benchmark process failed");
  std::uint64_t total = 0, end = 0;
  for (std::uint32_t i = 0; i < cell.consumers; ++i) {
    total += b.consumed[i];
    end = std::max(end, b.end_ns[i]);
  }
  cell.records = total;
  cell.seconds = static_cast<double>(end - b.start_ns) / 1e9;
  cell.records_per_s = static_cast<double>(total) / cell.seconds;
  cell.bytes_per_s = cell.records_per_s * static_cast<double>(cell.size);
  return {};
}

std::vector<ThroughputCell> throughput_matrix(const ThroughputOptions& o) {
  std::vector<ThroughputCell> cells;
  // 1 -> 1: the baseline ring where the size fits its slot, then the log
  // both ways, next to each other (a noisy machine drifts less between them).
  for (std::size_t size : o.sizes) {
    if (size <= kRingPayload) cells.push_back({.size = size, .ring = true});
    for (bool exclusive : {true, false}) cells.push_back({1, 1, exclusive, size});
  }
  const std::uint32_t half = std::max<std::uint32_t>(1, shm::online_cpus() / 2);
  const std::uint32_t n = o.producers != 0 ? o.producers : std::max<std::uint32_t>(2, half);
  const std::uint32_t m = o.consumers != 0 ? o.consumers : n;
  for (std::size_t size : {std::size_t{32}, std::size_t{4096}}) cells.push_back({n, m, false, size});
  return cells;
}

}  // namespace shmlog::bench
