// The harness measures OS mechanisms (pipes, sockets, Boost.Interprocess)
// as baselines, so unlike the library it includes their headers directly.
#include "latency.h"

#include <boost/interprocess/ipc/message_queue.hpp>
#include <concurrentqueue/concurrentqueue.h>
#include <readerwriterqueue/readerwriterqueue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>

#include "shmlog/log.h"
#include "shmlog/shm/process.h"
#include "shmlog/shm/shared_memory.h"
#include "shmlog/shm/topology.h"

namespace shmlog::bench {
namespace {

using namespace std::chrono_literals;

// Shared between the two processes of one measurement.
struct Board {
  std::uint32_t ready;
  std::uint32_t stop;
  std::uint32_t failed;
  std::uint32_t pad;
  std::uint64_t measured;
  char error[256];
  alignas(128) std::uint64_t ping;  // the raw cache-line ping-pong's two lines
  alignas(128) std::uint64_t pong;
  alignas(128) Histogram histogram;
};

template <class T>
std::atomic_ref<T> at(T& v) {
  return std::atomic_ref<T>(v);
}

void fail(Board& b, const std::string& what) {
  std::snprintf(b.error, sizeof b.error, "%s", what.c_str());
  at(b.failed).store(1);
}

struct Job {
  const LatencyOptions* options = nullptr;
  const Clock* clock = nullptr;
  Board* board = nullptr;
  std::string ping_log{}, pong_log{};
  std::uint64_t total = 0;  // messages including warm-up
  std::uint64_t warmup = 0;
  double budget_s = 0;      // baselines: stop after this long
  int fds[4] = {-1, -1, -1, -1};
  std::string queue_names[2]{};
};

bool pin_or_fail(Job& j, int core) {
  Status s = shm::pin_current_thread(static_cast<unsigned>(core));
  if (!s.ok()) fail(*j.board, s.message());
  return s.ok();
}

bool wait_ready(Board& b) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!at(b.ready).load() && !at(b.failed).load()) {
    if (std::chrono::steady_clock::now() > deadline) {
      fail(b, "the other process did not start within 30 s");
      return false;
    }
    shm::sleep_for(100us);
  }
  return !at(b.failed).load();
}

// Runs `initiator` here-in-a-child and `responder` in another child, each
// pinned; returns the initiator's histogram.
Status run_pair(Job& job, int (*initiator)(void*), int (*responder)(void*)) {
  Board& b = *job.board;
  std::memset(static_cast<void*>(&b), 0, sizeof b);
  b.histogram = Histogram();
  auto r = shm::fork_process(responder, &job);
  if (!r.ok()) return std::move(r).status();
  auto i = shm::fork_process(initiator, &job);
  if (!i.ok()) {
    at(b.stop).store(1);
    shm::kill_process(*r);
    shm::wait_process(*r);
    return std::move(i).status();
  }
  const int ci = shm::wait_process(*i);
  at(b.stop).store(1);
  int cr = shm::wait_process_for(*r, std::chrono::milliseconds(5000));
  if (cr == -1) {
    shm::kill_process(*r);
    cr = shm::wait_process(*r);
  }
  if (at(b.failed).load()) return Status(Status::Code::kIoError, b.error);
  if (ci != 0 || cr != 0) {
    return Status(Status::Code::kIoError, "a measuring process exited with " + std::to_string(ci != 0 ? ci : cr));
  }
  return {};
}

bool over_budget(const Job& j, std::uint64_t start_ns, std::uint64_t i) {
  return j.budget_s > 0 && (i & 255) == 0 &&
         static_cast<double>(monotonic_ns() - start_ns) > j.budget_s * 1e9;
}

// Times `round_trip(i)` for each message within the job's count and time
// budget, recording every one after the warm-up. False if one failed.
template <class F>
bool time_round_trips(Job& j, F&& round_trip) {
  Board& b = *j.board;
  const Clock& clock = *j.clock;
  const std::uint64_t start = monotonic_ns();
  std::uint64_t i = 0;
  for (; i < j.total && !over_budget(j, start, i); ++i) {
    const std::uint64_t t0 = clock.now_ticks();
    if (!round_trip(i)) return false;
    const std::uint64_t t1 = clock.now_ticks();
    if (i >= j.warmup) b.histogram.record(clock.to_ns(t1 - t0));
  }
  b.measured = i > j.warmup ? i - j.warmup : 0;
  return true;
}

// ---------------------------------------------------------------- shmlog

WaitStrategy consumer_wait(const Job& j) { return j.options->wait; }

int shmlog_echo(void* arg) {
  Job& j = *static_cast<Job*>(arg);
  Board& b = *j.board;
  if (!pin_or_fail(j, j.options->consumer_core)) return 1;
  auto ping = Log::open(j.ping_log);
  auto pong = Log::open(j.pong_log);
  if (!ping.ok() || !pong.ok()) return fail(b, "echo: cannot open the logs"), 1;
  auto consumer = ping->consumer({.wait = consumer_wait(j)});
  auto producer = pong->producer({.exclusive = true, .timestamps = false});
  if (!consumer.ok() || !producer.ok()) return fail(b, "echo: cannot attach"), 1;
  at(b.ready).store(1);
  std::vector<std::byte> copy(j.options->size);
  bool ok = true;
  auto echo = [&](const Record& r) {
    std::memcpy(copy.data(), r.value.data(), r.value.size());
    ok = static_cast<bool>(producer->append(Bytes(copy.data(), r.value.size()))) && ok;
  };
  while (!at(b.stop).load()) {
    consumer->poll_wait(echo, 1, 100ms);
    if (!ok) return fail(b, "echo: append failed"), 1;
  }
  return 0;
}

int shmlog_ping(void* arg) {
  Job& j = *static_cast<Job*>(arg);
  Board& b = *j.board;
  if (!pin_or_fail(j, j.options->producer_core)) return 1;
  auto ping = Log::open(j.ping_log);
  auto pong = Log::open(j.pong_log);
  if (!ping.ok() || !pong.ok()) return fail(b, "ping: cannot open the logs"), 1;
  auto producer = ping->producer({.exclusive = true, .timestamps = false});
  auto consumer = pong->consumer({.wait = consumer_wait(j)});
  if (!consumer.ok() || !producer.ok()) return fail(b, "ping: cannot attach"), 1;
  if (!wait_ready(b)) return 1;
  std::vector<std::byte> value(j.options->size);
  std::size_t got = 0;
  auto on_reply = [&](const Record&) { ++got; };
  const bool ok = time_round_trips(j, [&](std::uint64_t i) {
    std::memcpy(value.data(), &i, std::min<std::size_t>(8, value.size()));
    if (!producer->append(value)) return fail(b, "ping: append failed"), false;
    got = 0;
    while (got == 0) {
      consumer->poll_wait(on_reply, 1, 1s);
      if (got == 0 && at(b.failed).load()) return false;
    }
    return true;
  });
  return ok ? 0 : 1;
}

int shmlog_oneway_consumer(void* arg) {
  Job& j = *static_cast<Job*>(arg);
  Board& b = *j.board;
  if (!pin_or_fail(j, j.options->consumer_core)) return 1;
  auto log = Log::open(j.ping_log);
  if (!log.ok()) return fail(b, "consumer: cannot open the log"), 1;
  auto consumer = log->consumer({.wait = consumer_wait(j)});
  if (!consumer.ok()) return fail(b, "consumer: cannot attach"), 1;
  at(b.ready).store(1);
  const Clock& clock = *j.clock;
  std::uint64_t seen = 0;
  auto on_record = [&](const Record& r) {
    const std::uint64_t now = clock.now_ticks();
    std::uint64_t intended;
    std::memcpy(&intended, r.value.data(), 8);
    // From the intended send time: a stalled producer shows as latency.
    if (seen++ >= j.warmup) b.histogram.record(now > intended ? clock.to_ns(now - intended) : 0);
  };
  while (seen < j.total && !at(b.failed).load()) {
    consumer->poll_wait(on_record, 64, 100ms);
    if (at(b.stop).load() && seen < j.total) {
      // The producer finished: drain what is left, then stop.
      if (consumer->poll_wait(on_record, 1 << 20, 500ms).records == 0) break;
    }
  }
  b.measured = seen > j.warmup ? seen - j.warmup : 0;
  return 0;
}

int shmlog_oneway_producer(void* arg) {
  Job& j = *static_cast<Job*>(arg);
  Board& b = *j.board;
  if (!pin_or_fail(j, j.options->producer_core)) return 1;
  auto log = Log::open(j.ping_log);
  if (!log.ok()) return fail(b, "producer: cannot open the log"), 1;
  auto producer = log->producer({.exclusive = true, .timestamps = false});
  if (!producer.ok()) return fail(b, "producer: cannot attach"), 1;
  if (!wait_ready(b)) return 1;
  const Clock& clock = *j.clock;
  std::vector<std::byte> value(j.options->size);
  const double period_ticks = j.options->rate > 0 ? 1e9 / static_cast<double>(j.options->rate) / clock.tsc().ns_per_tick : 0;
  const std::uint64_t start = clock.now_ticks() + clock.from_ns(1e6);
  for (std::uint64_t i = 0; i < j.total; ++i) {
    std::uint64_t intended = start + static_cast<std::uint64_t>(static_cast<double>(i) * period_ticks);
    if (period_ticks > 0) {
      while (clock.now_ticks() < intended) shm::cpu_relax();
    } else {
      intended = clock.now_ticks();
    }
    std::memcpy(value.data(), &intended, 8);
    if (!producer->append(value)) return fail(b, "producer: append failed"), 1;
  }
  return 0;
}

// ---------------------------------------------------------------- baselines

// The physical floor: one cache line written by each side in turn.
int cacheline_pong(void* arg) {
  Job& j = *static_cast<Job*>(arg);
  Board& b = *j.board;
  if (!pin_or_fail(j, j.options->consumer_core)) return 1;
  at(b.ready).store(1);
  std::uint64_t expect = 1;
  while (!at(b.stop).load(std::memory_order_relaxed)) {
    if (at(b.ping).load(std::memory_order_acquire) == expect) {
      at(b.pong).store(expect, std::memory_order_release);
      ++expect;
    } else {
      shm::cpu_relax();
    }
  }
  return 0;
}

int cacheline_ping(void* arg) {
  Job& j = *static_cast<Job*>(arg);
  Board& b = *j.board;
  if (!pin_or_fail(j, j.options->producer_core) || !wait_ready(b)) return 1;
  time_round_trips(j, [&](std::uint64_t i) {
    at(b.ping).store(i + 1, std::memory_order_release);
    while (at(b.pong).load(std::memory_order_acquire) != i + 1) shm::cpu_relax();
    return true;
  });
  return 0;
}

// The one-way floor at shmlog's pace: one cache line carries each
// message's number, and the reader times it from its intended send time
// (the writer's start, in the other line, plus the period), as shmlog's
// one-way consumer does: a stall of either side shows the same way.
int cacheline_oneway_reader(void* arg) {
  Job& j = *static_cast<Job*>(arg);
  Board& b = *j.board;
  if (!pin_or_fail(j, j.options->consumer_core)) return 1;
  at(b.ready).store(1);
  const Clock& clock = *j.clock;
  const double period_ticks = 1e9 / static_cast<double>(j.options->rate) / clock.tsc().ns_per_tick;
  std::uint64_t seen = 0;
  while (seen < j.total && !at(b.failed).load(std::memory_order_relaxed)) {
    const std::uint64_t sent = at(b.ping).load(std::memory_order_acquire);
    if (sent == seen) {
      if (at(b.stop).load(std::memory_order_relaxed)) break;
      shm::cpu_relax();
      continue;
    }
    const std::uint64_t now = clock.now_ticks();
    const std::uint64_t start = at(b.pong).load(std::memory_order_relaxed);  // stored before the first message
    for (; seen < sent; ++seen) {
      const std::uint64_t intended = start + static_cast<std::uint64_t>(static_cast<double>(seen) * period_ticks);
      if (seen >= j.warmup) b.histogram.record(now > intended ? clock.to_ns(now - intended) : 0);
    }
  }
  b.measured = seen > j.warmup ? seen - j.warmup : 0;
  return 0;
}

int cacheline_oneway_writer(void* arg) {
  Job& j = *static_cast<Job*>(arg);
  Board& b = *j.board;
  if (!pin_or_fail(j, j.options->producer_core) || !wait_ready(b)) return 1;
  const Clock& clock = *j.clock;
  const double period_ticks = 1e9 / static_cast<double>(j.options->rate) / clock.tsc().ns_per_tick;
  const std::uint64_t start = clock.now_ticks() + clock.from_ns(1e6);
  at(b.pong).store(start, std::memory_order_relaxed);
  for (std::uint64_t i = 0; i < j.total; ++i) {
    const std::uint64_t intended = start + static_cast<std::uint64_t>(static_cast<double>(i) * period_ticks);
    while (clock.now_ticks() < intended) shm::cpu_relax();
    at(b.ping).store(i + 1, std::memory_order_release);
  }
  return 0;
}

bool read_full(int fd, std::byte* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool write_full(int fd, const std::byte* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::write(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// Pipes and Unix sockets: fds[0] read / fds[1] write for the initiator,
// fds[2] read / fds[3] write for the responder. A message of one byte 0xff
// after the measured ones tells the responder to stop.
int fd_pong(void* arg) {
  Job& j = *static_cast<Job*>(arg);
  if (!pin_or_fail(j, j.options->consumer_core)) return 1;
  at(j.board->ready).store(1);
  std::vector<std::byte> buf(std::max<std::size_t>(j.options->size, 1));
  for (;;) {
    if (!read_full(j.fds[2], buf.data(), buf.size())) return 0;
    if (buf[0] == std::byte{0xff}) return 0;
    if (!write_full(j.fds[3], buf.data(), buf.size())) return 0;
  }
}

int fd_ping(void* arg) {
  Job& j = *static_cast<Job*>(arg);
  Board& b = *j.board;
  if (!pin_or_fail(j, j.options->producer_core) || !wait_ready(b)) return 1;
  std::vector<std::byte> buf(std::max<std::size_t>(j.options->size, 1));
  const bool ok = time_round_trips(j, [&](std::uint64_t) {
    buf[0] = std::byte{0};
    return write_full(j.fds[1], buf.data(), buf.size()) && read_full(j.fds[0], buf.data(), buf.size());
  });
  if (!ok) return fail(b, "pipe/socket ping-pong broke"), 1;
  buf[0] = std::byte{0xff};
  (void)write_full(j.fds[1], buf.data(), buf.size());
  return 0;
}

namespace bip = boost::interprocess;

int mq_pong(void* arg) {
  Job& j = *static_cast<Job*>(arg);
  if (!pin_or_fail(j, j.options->consumer_core)) return 1;
  try {
    bip::message_queue in(bip::open_only, j.queue_names[0].c_str());
    bip::message_queue out(bip::open_only, j.queue_names[1].c_str());
    at(j.board->ready).store(1);
    std::vector<std::byte> buf(std::max<std::size_t>(j.options->size, 1));
    for (;;) {
      bip::message_queue::size_type got = 0;
      unsigned priority = 0;
      in.receive(buf.data(), buf.size(), got, priority);
      if (buf[0] == std::byte{0xff}) return 0;
      out.send(buf.data(), got, 0);
    }
  } catch (const std::exception& e) {
    fail(*j.board, std::string("message_queue: ") + e.what());
    return 1;
  }
}

int mq_ping(void* arg) {
  Job& j = *static_cast<Job*>(arg);
  Board& b = *j.board;
  if (!pin_or_fail(j, j.options->producer_core) || !wait_ready(b)) return 1;
  try {
    bip::message_queue out(bip::open_only, j.queue_names[0].c_str());
    bip::message_queue in(bip::open_only, j.queue_names[1].c_str());
    std::vector<std::byte> buf(std::max<std::size_t>(j.options->size, 1));
    time_round_trips(j, [&](std::uint64_t) {
      buf[0] = std::byte{0};
      out.send(buf.data(), buf.size(), 0);
      bip::message_queue::size_type got = 0;
      unsigned priority = 0;
      in.receive(buf.data(), buf.size(), got, priority);
      return true;
    });
    buf[0] = std::byte{0xff};
    out.send(buf.data(), buf.size(), 0);
    return 0;
  } catch (const std::exception& e) {
    fail(b, std::string("message_queue: ") + e.what());
    return 1;
  }
}

// In-process references: two threads, pinned to the same cores, moving
// `size`-byte messages through a pair of queues (copied in and out of a
// slab, as shmlog copies in and hands out views).
template <class Queue>
Histogram thread_ping_pong(const Job& j, Queue& there, Queue& back) {
  const std::size_t size = std::max<std::size_t>(j.options->size, 1);
  constexpr std::size_t kSlots = 64;
  std::vector<std::byte> slab(kSlots * size), out(size), in(size);
  std::atomic<bool> stop{false};
  Histogram h;
  std::thread pong([&] {
    (void)shm::pin_current_thread(static_cast<unsigned>(j.options->consumer_core));
    std::uint64_t slot;
    std::vector<std::byte> copy(size);
    while (!stop.load(std::memory_order_relaxed)) {
      if (there.try_dequeue(slot)) {
        std::memcpy(copy.data(), &slab[(slot % kSlots) * size], size);
        std::memcpy(&slab[((slot + 1) % kSlots) * size], copy.data(), size);
        while (!back.enqueue(slot + 1)) {
        }
      } else {
        shm::cpu_relax();
      }
    }
  });
  (void)shm::pin_current_thread(static_cast<unsigned>(j.options->producer_core));
  const Clock& clock = *j.clock;
  const std::uint64_t start = monotonic_ns();
  for (std::uint64_t i = 0; i < j.total && !over_budget(j, start, i); ++i) {
    const std::uint64_t slot = 2 * i;
    const std::uint64_t t0 = clock.now_ticks();
    std::memcpy(&slab[(slot % kSlots) * size], out.data(), size);
    while (!there.enqueue(slot)) {
    }
    std::uint64_t reply;
    while (!back.try_dequeue(reply)) shm::cpu_relax();
    std::memcpy(in.data(), &slab[(reply % kSlots) * size], size);
    const std::uint64_t t1 = clock.now_ticks();
    if (i >= j.warmup) h.record(clock.to_ns(t1 - t0));
  }
  stop.store(true);
  pong.join();
  return h;
}

template <class Queue>
int queue_child(void* arg) {
  Job& j = *static_cast<Job*>(arg);
  Queue there(64), back(64);
  j.board->histogram = thread_ping_pong(j, there, back);
  return 0;
}

// Runs a threaded baseline in a child, so that pinning its threads leaves
// the caller's affinity alone.
Status run_child(Job& job, int (*body)(void*)) {
  job.board->histogram = Histogram();
  auto pid = shm::fork_process(body, &job);
  if (!pid.ok()) return std::move(pid).status();
  const int code = shm::wait_process(*pid);
  if (code != 0) return Status(Status::Code::kIoError, "a threaded baseline exited with " + std::to_string(code));
  return {};
}

std::string unique(const char* what) {
  return std::string("shmlog-lat-") + what + "-" + std::to_string(shm::self().pid);
}

}  // namespace

Result<LatencyRun> run_latency(const LatencyOptions& o, const Clock& clock,
                               const std::function<void(const std::string&)>& progress) {
  if (o.size < 8) return Status(Status::Code::kInvalidArgument, "--size must be at least 8 bytes (a timestamp travels in the record)");
  if (o.size > (1u << 20)) return Status(Status::Code::kInvalidArgument, "--size must be at most 1M");
  if (o.mode == LatencyOptions::Mode::kOneWay && o.rate == 0 && o.count == 0) {
    return Status(Status::Code::kInvalidArgument, "one-way without --rate needs --count");
  }
  const std::string board_name = "/" + unique("board");
  auto board_mem = shm::SharedMemory::create(board_name, sizeof(Board), 0600);
  if (!board_mem.ok()) return std::move(board_mem).status();
  (void)shm::SharedMemory::unlink(board_name);
  Board& board = *reinterpret_cast<Board*>(board_mem->data());

  Job job;
  job.options = &o;
  job.clock = &clock;
  job.board = &board;
  std::uint64_t measured = o.count;
  if (measured == 0) {
    // From the duration: the rate for one-way, a first guess of 2 us per
    // round trip for ping-pong (the duration then bounds it loosely).
    measured = o.mode == LatencyOptions::Mode::kOneWay
                   ? static_cast<std::uint64_t>(o.duration_s * static_cast<double>(o.rate))
                   : static_cast<std::uint64_t>(o.duration_s * 5e5);
  }

  LatencyRun run;
  std::vector<LatencyRow>& rows = run.rows;
  // Before each step: stop there when asked to (SIGINT), else say what runs.
  auto step = [&](const std::string& line) -> Status {
    if (o.interrupted && o.interrupted()) return Status(Status::Code::kAborted, "interrupted");
    progress(line);
    return {};
  };
  LogOptions lo;
  lo.max_record_size = static_cast<std::uint32_t>(std::max<std::size_t>(o.size, 1024));
  lo.pages = o.pages;
  lo.memory_dir = o.memory_dir;
  // The memory goes where the consumer reads it.
  if (auto node = shm::numa_node_of_cpu(static_cast<unsigned>(o.consumer_core)); node.ok()) lo.numa_node = *node;
  // shmlog, then the cache-line floor, `rounds` times: each round a share
  // of the messages (and of the floor's time), so that a change of the
  // VM's mode between the two shows in that round's ratio, not in all.
  const unsigned rounds = std::max(1u, o.rounds);
  const bool ping_pong = o.mode == LatencyOptions::Mode::kPingPong;
  // One-way records at a rate are compared with a cache line at that rate.
  const bool paced_floor = !ping_pong && o.rate > 0;
  run.floor_compared = ping_pong     ? "shmlog's round trip over the cache line's"
                       : paced_floor ? "shmlog's one-way over a cache line's at the same pace, both from the intended send time"
                                     : "shmlog's one-way over half the cache line's round trip";
  const std::uint64_t per_round = std::max<std::uint64_t>(measured / rounds, 1);
  const std::uint64_t warmup = o.warmup != 0 ? o.warmup : std::min<std::uint64_t>(per_round / 10, 100000);
  Histogram shmlog_all, floor_all;
  for (unsigned round = 1; round <= rounds; ++round) {
    const std::string of = rounds > 1 ? " (round " + std::to_string(round) + " of " + std::to_string(rounds) + ")" : "";
    job.warmup = warmup;
    job.total = per_round + warmup;
    job.budget_s = 0;
    job.ping_log = o.dir + "/" + unique("ping");
    job.pong_log = o.dir + "/" + unique("pong");
    SHMLOG_RETURN_IF_ERROR(step(ping_pong ? "shmlog ping-pong: " + std::to_string(job.total) + " round trips" + of
                                          : "shmlog one-way: " + std::to_string(job.total) + " records at " +
                                                std::to_string(o.rate) + "/s" + of));
    Status s;
    for (const auto& path : {job.ping_log, job.pong_log}) {
      auto created = Log::create(path, lo);
      if (!created.ok()) s = std::move(created).status();
    }
    if (s.ok()) s = run_pair(job, ping_pong ? shmlog_ping : shmlog_oneway_producer,
                             ping_pong ? shmlog_echo : shmlog_oneway_consumer);
    (void)Log::remove(job.ping_log);
    (void)Log::remove(job.pong_log);
    if (!s.ok()) return s;
    const Histogram mine = board.histogram;
    shmlog_all.merge(mine);
    if (!o.baselines) continue;
    if (paced_floor) {
      // The same messages at the same pace, timed the same way.
      SHMLOG_RETURN_IF_ERROR(step("baseline: cache-line one-way at " + std::to_string(o.rate) + "/s" + of));
      SHMLOG_RETURN_IF_ERROR(run_pair(job, cacheline_oneway_writer, cacheline_oneway_reader));
    } else {
      // Ping-pong round trips within a time budget, with a warm-up of
      // their own (a pipe fits ~70 000 round trips in a second).
      job.budget_s = o.baseline_seconds / rounds;
      job.warmup = std::min<std::uint64_t>(warmup, 1000);
      SHMLOG_RETURN_IF_ERROR(step("baseline: cache-line ping-pong" + of));
      SHMLOG_RETURN_IF_ERROR(run_pair(job, cacheline_ping, cacheline_pong));
    }
    floor_all.merge(board.histogram);
    // Against the floor's round trip, or half of it for one-way records
    // without a pace.
    const auto ratio = [&](double p) {
      const double floor = static_cast<double>(board.histogram.percentile(p)) / (ping_pong || paced_floor ? 1 : 2);
      return floor > 0 ? static_cast<double>(mine.percentile(p)) / floor : 0.0;
    };
    run.floor_rounds.push_back({ratio(50), ratio(99.99)});
  }
  if (ping_pong) {
    LatencyRow one{"shmlog", "one-way (half round trip)", true, Histogram()};
    for (unsigned i = 0; i < Histogram::kBuckets; ++i) {
      const std::uint64_t n = shmlog_all.count_at_index(i);
      if (n != 0) one.histogram.record_n(Histogram::lowest_equivalent(i) / 2, n);
    }
    rows.push_back(one);
    rows.push_back({"shmlog", "round trip", true, shmlog_all});
  } else {
    rows.push_back({"shmlog", "one-way (from intended send time)", true, shmlog_all});
  }
  if (!o.baselines) return run;
  rows.push_back({"cache line (floor)",
                  paced_floor ? "one-way at " + std::to_string(o.rate) + "/s (from intended)" : "round trip", true,
                  floor_all});

  // The other baselines once, within the whole time budget each.
  job.budget_s = o.baseline_seconds;
  job.warmup = std::min<std::uint64_t>(warmup, 1000);
  job.total = measured + warmup;
  job.ping_log.clear();
  auto fd_baseline = [&](const char* name, bool socket) -> Status {
    SHMLOG_RETURN_IF_ERROR(step(std::string("baseline: ") + name));
    int a[2], c[2];
    if (socket) {
      if (::socketpair(AF_UNIX, SOCK_STREAM, 0, a) != 0) return Status::from_errno("socketpair", errno);
      job.fds[0] = a[0];  // initiator reads and writes its end
      job.fds[1] = a[0];
      job.fds[2] = a[1];
      job.fds[3] = a[1];
    } else {
      if (::pipe(a) != 0 || ::pipe(c) != 0) return Status::from_errno("pipe", errno);
      job.fds[0] = c[0];  // initiator reads replies from c, writes to a
      job.fds[1] = a[1];
      job.fds[2] = a[0];
      job.fds[3] = c[1];
    }
    Status r = run_pair(job, fd_ping, fd_pong);
    ::close(a[0]);
    ::close(a[1]);
    if (!socket) {
      ::close(c[0]);
      ::close(c[1]);
    }
    if (r.ok()) rows.push_back({name, "round trip", true, board.histogram});
    return r;
  };
  SHMLOG_RETURN_IF_ERROR(fd_baseline("pipe", false));
  SHMLOG_RETURN_IF_ERROR(fd_baseline("unix socket", true));

  SHMLOG_RETURN_IF_ERROR(step("baseline: Boost.Interprocess message_queue"));
  job.queue_names[0] = unique("mq-a");
  job.queue_names[1] = unique("mq-b");
  try {
    for (const auto& name : job.queue_names) {
      bip::message_queue::remove(name.c_str());
      bip::message_queue(bip::create_only, name.c_str(), 16, std::max<std::size_t>(o.size, 1));
    }
  } catch (const std::exception& e) {
    return Status(Status::Code::kIoError, std::string("creating message_queue: ") + e.what());
  }
  Status mq = run_pair(job, mq_ping, mq_pong);
  for (const auto& name : job.queue_names) bip::message_queue::remove(name.c_str());
  SHMLOG_RETURN_IF_ERROR(mq);
  rows.push_back({"boost message_queue", "round trip", true, board.histogram});

  SHMLOG_RETURN_IF_ERROR(step("baseline: moodycamel ConcurrentQueue (threads)"));
  SHMLOG_RETURN_IF_ERROR(run_child(job, queue_child<moodycamel::ConcurrentQueue<std::uint64_t>>));
  rows.push_back({"ConcurrentQueue", "round trip", false, board.histogram});
  SHMLOG_RETURN_IF_ERROR(step("baseline: moodycamel ReaderWriterQueue (threads)"));
  SHMLOG_RETURN_IF_ERROR(run_child(job, queue_child<moodycamel::ReaderWriterQueue<std::uint64_t>>));
  rows.push_back({"ReaderWriterQueue", "round trip", false, board.histogram});
  return run;
}

}  // namespace shmlog::bench
