// Kill torture: thousands of SIGKILLs of real processes at random moments
// (within a millisecond of start, mid-stream, between a claim and its
// commit), each followed by a restart, while the other processes of the
// trial go on. An independent checker asks whether each promise held:
//
// - producers (shared, exclusive, idempotent, transactional, unique): every
//   acknowledged record is there; nothing is invented, repeated or out of
//   order per producer; an idempotent producer's re-sends, and a unique
//   one's (append_unique, a token per record), are dropped, so each record
//   is there once; read_committed sees whole transactions only;
//   the log goes on (the dead producer's claims are resolved, other
//   producers finish, new ones append).
// - group members (at-least-once, at-most-once, exactly-once into a
//   FileSink), killed and restarted while a producer fills a backpressure
//   ring: at-least-once hands out every record, at-most-once none twice,
//   exactly-once writes each once and in order; a zero-copy view never
//   changes while its handler runs.
// - the keeper of a fsync log (keeper), killed and restarted while a
//   producer waits for durable acks: the producer finishes, every record
//   there once, in order.
// - members of a group over three partitions (rebalance), killed while
//   others join and take their partitions over: at-least-once hands out
//   every record, at-most-once none twice.
// - `shmlog copy` (copy), the command itself, killed and restarted with the
//   same arguments while a producer fills its input: each input record is
//   in the output once, in order, whole transactions only.
//
//   shmlog_kill_torture [--trials N] [--seed S] [--dir D] [--durable] [--kinds K,...]
//
// --durable runs every trial on a log with durability flush (a keeper in
// each process, killed with it); --kinds runs only the kinds named (shared,
// exclusive, idempotent, transactional, at-least-once, at-most-once,
// exactly-once, unique, keeper, rebalance, copy). Exits 1 naming the trial and seed of the
// first violation, or of a process that hung.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "shmlog/file_sink.h"
#include "shmlog/log.h"
#include "shmlog/shm/process.h"
#include "test_hooks.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kMaxRecords = 4096;
constexpr std::uint32_t kWriters = 3;  // the killed producer, its restart's id, a survivor

// What the children tell the checker, in memory shared before fork.
struct Board {
  std::atomic<std::uint32_t> started;       // the child reached its loop
  std::atomic<std::uint32_t> produced;      // the consumer trial's producer is done
  std::atomic<std::uint64_t> acked;         // records (or transactions) the killed producer had acknowledged
  std::atomic<std::uint32_t> view_changed;  // a handler saw its record change under it
  std::atomic<std::uint32_t> handled[kMaxRecords];
  // The checker of producer trials: what it read, per writer and record.
  std::atomic<std::uint32_t> checker_ready;
  std::atomic<std::uint32_t> seen[kWriters][kMaxRecords];
  std::atomic<std::uint32_t> out_of_order[kWriters];
  // The first disorder per writer: the record, the one before it, and its offset.
  std::atomic<std::uint32_t> disorder_record[kWriters], disorder_after[kWriters];
  std::atomic<std::uint64_t> disorder_offset[kWriters];
  std::atomic<std::uint32_t> invented;
};

// Forked children run a std::function and exit with its value.
int run_body(void* arg) {
  try {
    return (*static_cast<std::function<int()>*>(arg))();
  } catch (...) {
    return 99;
  }
}

std::uint32_t spawn(std::function<int()> body) {
  auto pid = shm::fork_process(run_body, &body);
  return pid.ok() ? *pid : 0;
}

// Exit code, or 128 + signal; -1 if it is still running after `timeout`
// (then it is killed: a hang).
int join(std::uint32_t pid, std::chrono::milliseconds timeout) {
  const int code = shm::wait_process_for(pid, timeout);
  if (code != -1) return code;
  shm::kill_process(pid);
  shm::wait_process(pid);
  return -1;
}

// Kills the child at a random moment after it started: at once, within a
// millisecond, or within a few milliseconds of work.
void kill_at_random(std::mt19937_64& rng, std::uint32_t pid, const Board& board) {
  for (int i = 0; i < 2000 && board.started.load() == 0 && shm::wait_process_for(pid, 0ms) == -1; ++i) {
    shm::sleep_for(100us);
  }
  switch (rng() % 4) {
    case 0: break;
    case 1: shm::sleep_for(std::chrono::microseconds(rng() % 1000)); break;
    default: shm::sleep_for(std::chrono::microseconds(rng() % 20000)); break;
  }
  shm::kill_process(pid);
}

std::string value_of(std::uint32_t writer, std::uint32_t i, std::uint32_t pad) {
  return std::to_string(writer) + ":" + std::to_string(i) + ":" + std::string(pad, static_cast<char>('a' + i % 26));
}

// Writer and index of a value written by value_of; false if it is not one.
bool parse(Bytes value, std::uint32_t* writer, std::uint32_t* i) {
  const std::string_view v = as_string(value);
  const auto first = v.find(':');
  const auto second = first == std::string_view::npos ? first : v.find(':', first + 1);
  if (second == std::string_view::npos) return false;
  *writer = static_cast<std::uint32_t>(std::strtoul(std::string(v.substr(0, first)).c_str(), nullptr, 10));
  *i = static_cast<std::uint32_t>(std::strtoul(std::string(v.substr(first + 1, second - first - 1)).c_str(), nullptr, 10));
  const std::string pad = std::string(v.substr(second + 1));
  return *writer < kWriters && *i < kMaxRecords &&
         pad == std::string(pad.size(), static_cast<char>('a' + *i % 26));
}

constexpr int kKinds = 11;
constexpr int kUnique = 7;  // a producer kind (numbered after the members': seeds of older runs keep their kind)
constexpr int kKeeper = 8;     // the keeper of a fsync log killed
constexpr int kRebalance = 9;  // members of a group over three partitions killed while others take over
constexpr int kCopy = 10;      // `shmlog copy` killed

struct Totals {
  std::uint64_t trials = 0, kills = 0, acked = 0, records_checked = 0, handled = 0;
  std::uint64_t by_kind[kKinds] = {};
};

const char* const kKindNames[kKinds] = {"shared",       "exclusive",    "idempotent", "transactional", "at-least-once",
                                        "at-most-once", "exactly-once", "unique",     "keeper",        "rebalance",
                                        "copy"};

bool producer_kind(int kind) { return kind < 4 || kind == kUnique; }

LogOptions options_for(std::mt19937_64& rng, bool durable, int kind) {
  LogOptions o;
  o.partitions = 1;
  o.segment_size = 64 * 1024;
  o.ring_segments = 2 + static_cast<std::uint32_t>(rng() % 3);
  o.max_record_size = 1024;
  o.claim_timeout = 20ms;
  o.max_producers = 16;
  if (kind == kUnique) o.token_window = 4096;  // more than a trial's records
  if (durable) o.durability = Durability::kFlush;
  if (kind == kKeeper) o.durability = Durability::kFsync;
  if (kind == kRebalance) o.partitions = 3;
  return o;
}

// The checker of a producer trial, in a process of its own: a group
// (which holds the backpressure ring for it) reading with read_committed
// until the end marker, noting on the board what it read and in what order.
int check_producers(const std::string& path, Board& board, bool keeper = true) {
  auto log = Log::open(path, {.keeper = keeper});
  if (!log.ok()) return 60;
  auto consumer = log->consumer({.group = "check", .isolation = Isolation::kReadCommitted});
  if (!consumer.ok()) return 61;
  board.checker_ready = 1;
  std::uint32_t last[kWriters] = {};
  bool any[kWriters] = {}, ended = false;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!ended && std::chrono::steady_clock::now() < deadline) {
    auto r = consumer->poll_wait(
        [&](const Record& rec) {
          if (as_string(rec.value) == "end") {
            ended = true;
            return;
          }
          std::uint32_t w = 0, i = 0;
          if (!parse(rec.value, &w, &i)) {
            board.invented.fetch_add(1);
            return;
          }
          board.seen[w][i].fetch_add(1);
          if (any[w] && i <= last[w] && board.out_of_order[w].fetch_add(1) == 0) {
            board.disorder_record[w] = i;
            board.disorder_after[w] = last[w];
            board.disorder_offset[w] = rec.offset;
          }
          any[w] = true;
          last[w] = i;
        },
        256, 100ms);
    if (r.lost_bytes > 0 || r.corrupt > 0) board.invented.fetch_add(1);
  }
  return ended ? 0 : 62;
}

// Records 0..n-1 of writer w each seen once, in order (exact), or: the
// first `acked` there, none twice, in order.
std::string check_writer(const Board& board, std::uint32_t w, std::uint32_t n, std::uint64_t acked, bool exact,
                         const char* who) {
  if (board.out_of_order[w].load() > 0) {
    return std::string(who) + ": records out of order (" + std::to_string(board.out_of_order[w].load()) +
           " times; first record " + std::to_string(board.disorder_record[w].load()) + " after " +
           std::to_string(board.disorder_after[w].load()) + ", at offset " + std::to_string(board.disorder_offset[w].load()) +
           "; record " + std::to_string(board.disorder_record[w].load()) + " was seen " +
           std::to_string(board.seen[w][board.disorder_record[w].load()].load()) + " times)";
  }
  for (std::uint32_t i = 0; i < kMaxRecords; ++i) {
    const std::uint32_t count = board.seen[w][i].load();
    if (count > 0 && i >= n) return std::string(who) + ": record " + std::to_string(i) + " was never written";
    if (count > 1) return std::string(who) + ": record " + std::to_string(i) + " is there " + std::to_string(count) + " times";
    if (count == 0 && i < n && (exact || i < acked)) {
      return std::string(who) + ": record " + std::to_string(i) + " is missing (" + std::to_string(acked) + " acknowledged)";
    }
  }
  return {};
}

// Lines of the exactly-once output: 0..n-1, each once, in order.
std::string check_output(const std::string& file, std::uint32_t n) {
  std::ifstream in(file);
  std::uint32_t expected = 0;
  for (std::string line; std::getline(in, line); ++expected) {
    if (line != std::to_string(expected)) {
      return "exactly-once output: line " + std::to_string(expected + 1) + " is '" + line.substr(0, 20) + "'";
    }
  }
  return expected == n ? std::string() : "exactly-once output: " + std::to_string(expected) + " of " + std::to_string(n) + " records";
}

// A producer of kind 0..3 or unique is killed and restarted while a survivor appends.
std::string producer_trial(std::mt19937_64& rng, int kind, const std::string& path, Board& board, Totals& totals) {
  const bool exclusive = kind == 1, idempotent = kind == 2, transactional = kind == 3, unique = kind == kUnique;
  const std::uint32_t n = 200 + static_cast<std::uint32_t>(rng() % 1500);
  const std::uint32_t pad = static_cast<std::uint32_t>(rng() % 300);
  const std::uint32_t txn_size = 1 + static_cast<std::uint32_t>(rng() % 8);
  const bool die_in_claim = rng() % 4 == 0;
  const std::uint32_t die_at = static_cast<std::uint32_t>(rng() % n);
  ProducerOptions po{.exclusive = exclusive, .backpressure_timeout = 10s};
  if (idempotent || transactional) po.producer_id = "killed";
  po.transactional = transactional;

  // Writer 0: the one killed. Transactional: records of a transaction go
  // together; acked counts records of committed transactions.
  auto write = [=, &board](std::uint32_t from, bool die) -> int {
    auto log = Log::open(path);
    if (!log.ok()) return 10;
    auto producer = log->producer(po);
    if (!producer.ok()) {
      std::fprintf(stderr, "producer: %s\n", producer.status().to_string().c_str());
      return 11;
    }
    board.started = 1;
    for (std::uint32_t i = from; i < n;) {
      if (transactional && !producer->begin_transaction().ok()) return 12;
      const std::uint32_t end = transactional ? std::min(n, i + txn_size) : i + 1;
      for (std::uint32_t k = i; k < end; ++k) {
        if (die && k == die_at) testing::die_between_claim_and_commit(true);
        if (idempotent) producer->set_next_sequence(k);
        const std::string value = value_of(0, k, pad);
        // The hook is in the library's commit: an exclusive producer's
        // inline append skips it, append_to does not.
        const bool hooked = die && k == die_at;
        auto r = unique   ? producer->append_unique(as_bytes("token-" + std::to_string(k)), {}, as_bytes(value))
                 : hooked ? producer->append_to(0, {}, as_bytes(value))
                          : producer->append(as_bytes(value));
        if (!r && !((idempotent || unique) && r.error == Errc::kDuplicate)) {
          std::fprintf(stderr, "killed producer, append %u of %u: %s\n", k, n, errc_name(r.error));
          return 13;
        }
      }
      if (transactional) {
        const Status committed = producer->commit_transaction();
        if (committed.code() == Status::Code::kAborted && producer->abort_transaction().ok()) {
          continue;  // aborted by a reader (the ring filled up behind it): again
        }
        if (!committed.ok()) return 14;
      }
      i = end;
      board.acked = i;
    }
    return 0;
  };
  // Writer 2: never killed; shares the log unless the killed one is exclusive.
  auto survive = [=]() -> int {
    auto log = Log::open(path);
    if (!log.ok()) return 20;
    // As long as the feeders wait: a starved checker (a loaded machine)
    // may hold the ring for seconds; that is no hang.
    auto producer = log->producer({.backpressure_timeout = 30s});
    if (!producer.ok()) return 21;
    for (std::uint32_t i = 0; i < n; ++i) {
      const AppendResult r = producer->append(as_bytes(value_of(2, i, pad / 2)));
      if (!r) {
        std::fprintf(stderr, "surviving producer, append %u of %u: %s\n", i, n, errc_name(r.error));
        return 22;
      }
    }
    return 0;
  };

  const std::uint32_t checker = spawn([&] { return check_producers(path, board); });
  for (int i = 0; i < 20000 && board.checker_ready.load() == 0 && shm::wait_process_for(checker, 0ms) == -1; ++i) {
    shm::sleep_for(100us);
  }
  std::uint32_t survivor = exclusive ? 0 : spawn(survive);
  const std::uint32_t killed = spawn([&] { return write(0, die_in_claim); });
  kill_at_random(rng, killed, board);
  const int killed_code = join(killed, 30s);
  if (killed_code == -1) return "the producer to be killed hung";
  ++totals.kills;
  const std::uint64_t acked = board.acked.load();
  totals.acked += acked;
  if (killed_code != 0) {
    // Restart: an idempotent or unique producer re-sends from what was
    // acknowledged (what reached the log past it must come back kDuplicate); a
    // transactional one from the last committed transaction; the others
    // only open a producer of the same kind (an exclusive one needs the
    // dead one gone).
    const std::uint32_t restart = spawn([&]() -> int {
      if (idempotent || unique) return write(static_cast<std::uint32_t>(acked), false);
      if (transactional) {
        auto log = Log::open(path);
        if (!log.ok()) return 30;
        std::uint32_t from = 0;
        {
          auto probe = log->producer(po);
          if (!probe.ok()) {
            std::fprintf(stderr, "restarted producer: %s\n", probe.status().to_string().c_str());
            return 31;
          }
          from = probe->last_sequence() ? static_cast<std::uint32_t>(*probe->last_sequence() + 1) : 0;
        }
        return write(from, false);
      }
      auto log = Log::open(path);
      if (!log.ok()) {
        std::fprintf(stderr, "restarted producer: %s\n", log.status().to_string().c_str());
        return 32;
      }
      return log->producer({.exclusive = exclusive, .backpressure_timeout = 10s}).ok() ? 0 : 33;
    });
    const int code = join(restart, 30s);
    if (code != 0) return "the restarted producer " + std::string(code == -1 ? "hung" : "failed: " + std::to_string(code));
  }
  if (exclusive) survivor = spawn(survive);  // now it may write
  const int code = join(survivor, 30s);
  if (code != 0) return "the surviving producer " + std::string(code == -1 ? "hung" : "failed: " + std::to_string(code));

  // Every writer is done: an end marker after all of them.
  auto log = Log::open(path);
  if (!log.ok()) return "reopen: " + log.status().to_string();
  {
    auto producer = log->producer();
    if (!producer.ok() || !producer->append(as_bytes("end"))) return "the end marker could not be appended";
  }
  const int checked = join(checker, 60s);
  if (checked != 0) return "the checker " + std::string(checked == -1 ? "hung" : "failed: " + std::to_string(checked));
  if (board.invented.load() > 0) return std::to_string(board.invented.load()) + " record(s) no writer wrote, lost or corrupt";
  std::string e = check_writer(board, 2, n, n, true, "survivor");
  if (e.empty()) {
    // Idempotent and unique: re-sends dropped. Transactional: the restart
    // writes again what an aborted transaction held, so a part of one seen
    // by read_committed shows as a record twice.
    const bool exact = idempotent || unique || transactional || killed_code == 0;
    e = check_writer(board, 0, n, acked, exact, "killed producer");
  }
  totals.records_checked += 2 * n;
  return e;
}

// Group "g", made before the first record (it holds the ring from there);
// empty, or what went wrong.
std::string make_group(const std::string& path) {
  auto log = Log::open(path);
  if (!log.ok()) return "open: " + log.status().to_string();
  auto consumer = log->consumer({.group = "g"});
  if (!consumer.ok()) return "group: " + consumer.status().to_string();
  consumer->close();
  return {};
}

// A process appending writer 0's records 0..n-1 (round robin over
// `partitions`), then setting board.produced.
std::uint32_t spawn_feeder(const std::string& path, std::uint32_t n, std::uint32_t pad, std::uint32_t partitions,
                           Board& board) {
  return spawn([&path, n, pad, partitions, &board]() -> int {
    auto log = Log::open(path);
    if (!log.ok()) return 40;
    auto p = log->producer({.backpressure_timeout = 30s});
    if (!p.ok()) return 41;
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::string value = value_of(0, i, pad);
      if (!(partitions == 1 ? p->append(as_bytes(value)) : p->append_to(i % partitions, {}, as_bytes(value)))) return 42;
    }
    board.produced = 1;
    return 0;
  });
}

// The keeper of a fsync log, in a process of its own (nobody else runs
// one), is killed at random moments one to three times and restarted,
// while a producer appends and waits for durability every 1 to 64 records:
// acks need a keeper, so the restarted one must take the dead one's lease
// and go on. Every acknowledged record is there once, in order, and the
// producer finishes.
std::string keeper_trial(std::mt19937_64& rng, const std::string& path, Board& board, Totals& totals) {
  const std::uint32_t n = 200 + static_cast<std::uint32_t>(rng() % 1500);
  const std::uint32_t pad = static_cast<std::uint32_t>(rng() % 300);
  const std::uint32_t wait_every = 1 + static_cast<std::uint32_t>(rng() % 64);
  auto keeper = [&]() -> int {
    auto log = Log::open(path);  // its keeper thread is the log's only one
    if (!log.ok()) return 70;
    board.started = 1;
    while (board.produced.load() == 0) shm::sleep_for(1ms);
    return 0;
  };
  const std::uint32_t checker = spawn([&] { return check_producers(path, board, /*keeper=*/false); });
  for (int i = 0; i < 20000 && board.checker_ready.load() == 0 && shm::wait_process_for(checker, 0ms) == -1; ++i) {
    shm::sleep_for(100us);
  }
  const std::uint32_t producer = spawn([&]() -> int {
    auto log = Log::open(path, {.keeper = false});
    if (!log.ok()) return 80;
    auto p = log->producer({.backpressure_timeout = 30s});
    if (!p.ok()) return 81;
    for (std::uint32_t i = 0; i < n; ++i) {
      const AppendResult r = p->append(as_bytes(value_of(0, i, pad)));
      if (!r) {
        std::fprintf(stderr, "keeper trial, append %u of %u: %s\n", i, n, errc_name(r.error));
        return 82;
      }
      if ((i + 1) % wait_every != 0 && i + 1 != n) continue;
      const Errc durable = p->wait_durable(0, r.offset + 1, 30s);
      if (durable != Errc::kOk) {
        std::fprintf(stderr, "keeper trial, durable wait at %u of %u: %s\n", i, n, errc_name(durable));
        return 83;
      }
      board.acked = i + 1;
    }
    board.produced = 1;
    return 0;
  });
  const int kills = 1 + static_cast<int>(rng() % 3);
  for (int k = 0; k < kills; ++k) {
    board.started = 0;
    const std::uint32_t pid = spawn(keeper);
    kill_at_random(rng, pid, board);
    if (join(pid, 30s) == -1) return "a keeper to be killed hung";
    ++totals.kills;
  }
  const std::uint32_t last = spawn(keeper);
  const int produced = join(producer, 60s);
  const int kept = join(last, 30s);
  if (produced != 0) return "the producer " + std::string(produced == -1 ? "hung" : "failed: " + std::to_string(produced));
  if (kept != 0) return "the last keeper " + std::string(kept == -1 ? "hung" : "failed: " + std::to_string(kept));
  auto log = Log::open(path);
  if (!log.ok()) return "reopen: " + log.status().to_string();
  {
    auto p = log->producer();
    if (!p.ok() || !p->append(as_bytes("end"))) return "the end marker could not be appended";
  }
  const int checked = join(checker, 60s);
  if (checked != 0) return "the checker " + std::string(checked == -1 ? "hung" : "failed: " + std::to_string(checked));
  if (board.invented.load() > 0) return std::to_string(board.invented.load()) + " record(s) no writer wrote, lost or corrupt";
  totals.records_checked += n;
  return check_writer(board, 0, n, n, true, "producer");
}

// Two members of one group (at-least-once or at-most-once) share three
// partitions while a producer fills them; one of them is killed at a random
// moment one to three times and a new member joins each time, so
// partitions move between live members (and from dead ones, once judged
// dead) while records flow. A last member drains what is left. At least
// once: every record handed out; at most once: none twice.
std::string rebalance_trial(std::mt19937_64& rng, const std::string& path, Board& board, Totals& totals) {
  const bool at_most_once = rng() % 2 == 0;
  const std::uint32_t n = 300 + static_cast<std::uint32_t>(rng() % 2000);
  const std::uint32_t pad = static_cast<std::uint32_t>(rng() % 400);
  const std::size_t batch = 1 + rng() % 64;
  if (std::string e = make_group(path); !e.empty()) return e;
  const std::uint32_t producer = spawn_feeder(path, n, pad, 3, board);
  // Reads until the producer is done and a poll finds nothing (`drain`:
  // until nothing comes for 200 ms), or until killed.
  auto member = [&](bool drain) -> int {
    auto log = Log::open(path);
    if (!log.ok()) return 50;
    ConsumerOptions co{.group = "g"};
    co.mode = at_most_once ? DeliveryMode::kAtMostOnce : DeliveryMode::kAtLeastOnce;
    co.commit_every = batch;
    auto consumer = log->consumer(co);
    if (!consumer.ok()) return 52;
    board.started = 1;
    int idle = 0;
    const auto deadline = std::chrono::steady_clock::now() + 40s;
    while (std::chrono::steady_clock::now() < deadline) {
      const bool produced = board.produced.load() != 0;
      auto got = consumer->poll_wait(
          [&](const Record& r) {
            std::uint32_t w = 0, i = 0;
            if (parse(r.value, &w, &i)) {
              board.handled[i].fetch_add(1);
            } else {
              board.view_changed.fetch_add(1);
            }
          },
          batch, 50ms);
      idle = got.records == 0 ? idle + 1 : 0;
      if (produced && idle >= (drain ? 4 : 1)) break;
    }
    consumer->close();
    return std::chrono::steady_clock::now() < deadline ? 0 : 55;
  };
  const std::uint32_t steady = spawn([&] { return member(false); });
  std::vector<std::uint32_t> joined;
  const int kills = 1 + static_cast<int>(rng() % 3);
  for (int k = 0; k < kills; ++k) {
    board.started = 0;
    const std::uint32_t pid = spawn([&] { return member(false); });
    kill_at_random(rng, pid, board);
    if (join(pid, 30s) == -1) return "a member to be killed hung";
    ++totals.kills;
    joined.push_back(spawn([&] { return member(false); }));  // a new member joins meanwhile
  }
  for (const std::uint32_t pid : joined) {
    const int code = join(pid, 60s);
    if (code != 0) return "a member that joined " + std::string(code == -1 ? "hung" : "failed: " + std::to_string(code));
  }
  const int kept = join(steady, 60s);
  if (kept != 0) return "the member never killed " + std::string(kept == -1 ? "hung" : "failed: " + std::to_string(kept));
  const std::uint32_t last = spawn([&] { return member(true); });
  const int code = join(last, 60s);
  if (code != 0) return "the last member " + std::string(code == -1 ? "hung" : "failed: " + std::to_string(code));
  const int produced = join(producer, 30s);
  if (produced != 0) return "the producer " + std::string(produced == -1 ? "hung" : "failed: " + std::to_string(produced));
  if (board.view_changed.load() > 0) return std::to_string(board.view_changed.load()) + " record(s) torn or invented";
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint32_t h = board.handled[i].load();
    totals.handled += h;
    if (!at_most_once && h == 0) return "at-least-once: record " + std::to_string(i) + " never handed out";
    if (at_most_once && h > 1) return "at-most-once: record " + std::to_string(i) + " handed out " + std::to_string(h) + " times";
  }
  totals.records_checked += n;
  return {};
}

// A group member of kind 4..6 is killed and restarted, a few times, while a
// producer fills a backpressure ring.
std::string consumer_trial(std::mt19937_64& rng, int kind, const std::string& path, Board& board, Totals& totals) {
  const bool at_most_once = kind == 5, exactly_once = kind == 6;
  const std::uint32_t n = 300 + static_cast<std::uint32_t>(rng() % 2000);
  const std::uint32_t pad = static_cast<std::uint32_t>(rng() % 400);
  const std::string out = path + ".out";
  const std::size_t batch = 1 + rng() % 64;

  if (std::string e = make_group(path); !e.empty()) return e;
  const std::uint32_t producer = spawn_feeder(path, n, pad, 1, board);

  // Returns 0 once the producer is done and nothing is left to read.
  auto member = [&]() -> int {
    auto log = Log::open(path);
    if (!log.ok()) return 50;
    ConsumerOptions co{.group = "g"};
    co.mode = at_most_once ? DeliveryMode::kAtMostOnce : exactly_once ? DeliveryMode::kManual : DeliveryMode::kAtLeastOnce;
    co.commit_every = batch;
    std::optional<FileSink> sink;
    if (exactly_once) {
      auto s = FileSink::open(out, *log, FileSink::Survives::kProcessCrash);
      if (!s.ok()) return 51;
      sink.emplace(std::move(*s));
    }
    auto consumer = log->consumer(co);
    if (!consumer.ok()) return 52;
    if (sink) {
      if (auto at = sink->offset(0)) {
        if (!consumer->seek(0, *at).ok()) return 53;
      } else {
        sink->advance(0, consumer->position(0).value_or(0));
      }
    }
    board.started = 1;
    bool ended = false;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!ended && std::chrono::steady_clock::now() < deadline) {
      const bool produced = board.produced.load() != 0;
      auto got = consumer->poll_wait(
          [&](const Record& r) {
            const std::string copy(as_string(r.value));
            std::uint32_t w = 0, i = 0;
            if (parse(r.value, &w, &i)) {
              board.handled[i].fetch_add(1);
              if (sink) sink->write(std::to_string(i) + "\n");
            } else {
              board.view_changed.fetch_add(1);  // torn or invented: counted with the changed ones
            }
            if (sink) sink->advance(r.partition, r.next_offset);
            shm::yield_now();  // let the producer try to reuse what we read
            if (as_string(r.value) != copy) board.view_changed.fetch_add(1);
          },
          batch, 50ms);
      if (sink) sink->advance(0, consumer->position(0).value_or(0));  // past padding the poll stepped over
      if (sink && !sink->checkpoint().ok()) return 54;
      if (sink) consumer->commit();
      ended = produced && got.records == 0;
    }
    consumer->close();
    return ended ? 0 : 55;
  };

  const int kills = 1 + static_cast<int>(rng() % 3);
  for (int k = 0; k < kills; ++k) {
    board.started = 0;
    const std::uint32_t pid = spawn(member);
    kill_at_random(rng, pid, board);
    if (join(pid, 30s) == -1) return "a member to be killed hung";
    ++totals.kills;
  }
  const std::uint32_t last = spawn(member);
  const int code = join(last, 60s);
  if (code != 0) return "the last member " + std::string(code == -1 ? "hung" : "failed: " + std::to_string(code));
  const int produced = join(producer, 30s);
  if (produced != 0) return "the producer " + std::string(produced == -1 ? "hung" : "failed: " + std::to_string(produced));

  if (board.view_changed.load() > 0) {
    return std::to_string(board.view_changed.load()) + " record(s) changed under a handler";
  }
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint32_t h = board.handled[i].load();
    totals.handled += h;
    if (!at_most_once && !exactly_once && h == 0) return "at-least-once: record " + std::to_string(i) + " never handed out";
    if (at_most_once && h > 1) return "at-most-once: record " + std::to_string(i) + " handed out " + std::to_string(h) + " times";
  }
  if (exactly_once) {
    std::string e = check_output(out, n);
    if (!e.empty()) return e;
  }
  totals.records_checked += n;
  return {};
}

// Runs `shmlog copy IN OUT` (the command of this build, or the one
// $SHMLOG_COMMAND names) as the copy trial does, its stderr appended to OUT.stderr; `until_idle`: it exits once
// nothing arrived for half a second.
std::uint32_t spawn_copy(const std::string& in, const std::string& out, const std::string& transaction_size,
                         bool until_idle) {
  return spawn([&]() -> int {
    const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    const int err = ::open((out + ".stderr").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (null < 0 || err < 0 || ::dup2(null, 1) < 0 || ::dup2(err, 2) < 0) return 96;
    const char* command = std::getenv("SHMLOG_COMMAND");  // another build's, or a copy of it
    if (command == nullptr) command = SHMLOG_COMMAND;
    std::vector<const char*> args = {command, "copy", in.c_str(), out.c_str(), "--group", "g",
                                     "--transactional-id", "copy", "--transaction-size", transaction_size.c_str()};
    if (until_idle) {
      args.push_back("--idle-timeout-ms");
      args.push_back("500");
    }
    args.push_back(nullptr);
    ::execv(command, const_cast<char* const*>(args.data()));
    return 97;
  });
}

// `shmlog copy` from the trial's log (IN) into another (OUT) is killed at
// random moments one to three times and restarted with the same
// arguments, while a producer fills IN; then copies that stop when idle
// copy the rest (another while the checker has not read it all).
// OUT's ring holds less than what is copied, so a restart may find the
// last transaction's offsets gone from the ring (the defect where the copy
// then resumed from the group's older offsets in IN and copied a
// transaction twice). The checker reads OUT with read_committed: every
// record of IN there once, in order.
std::string copy_trial(std::mt19937_64& rng, const std::string& path, bool durable, Board& board, Totals& totals) {
  const std::uint32_t n = 300 + static_cast<std::uint32_t>(rng() % 2000);
  const std::uint32_t pad = static_cast<std::uint32_t>(rng() % 400);
  const std::string transaction_size = std::to_string(1 + rng() % 64);
  const std::string out = path + ".copy";
  {
    auto made = Log::create(out, options_for(rng, durable, kCopy));
    if (!made.ok()) return "create OUT: " + made.status().to_string();
  }
  if (std::string e = make_group(path); !e.empty()) return e;
  // The checker's group holds OUT's ring from before the first copy.
  const std::uint32_t checker = spawn([&] { return check_producers(out, board); });
  for (int i = 0; i < 20000 && board.checker_ready.load() == 0 && shm::wait_process_for(checker, 0ms) == -1; ++i) {
    shm::sleep_for(100us);
  }
  const std::uint32_t feeder = spawn([&]() -> int {
    auto log = Log::open(path);
    if (!log.ok()) return 40;
    auto p = log->producer({.backpressure_timeout = 30s});
    if (!p.ok()) return 41;
    for (std::uint32_t i = 0; i < n; ++i) {
      if (!p->append(as_bytes(value_of(0, i, pad)))) return 42;
    }
    return p->append(as_bytes("end")) ? 0 : 43;
  });
  auto stderr_of_copies = [&] {
    std::ifstream in(out + ".stderr");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return all.size() > 400 ? all.substr(all.size() - 400) : all;
  };
  const int kills = 1 + static_cast<int>(rng() % 3);
  for (int k = 0; k < kills; ++k) {
    const std::uint32_t pid = spawn_copy(path, out, transaction_size, /*until_idle=*/false);
    board.started = 1;  // from its exec on: killed while it starts up, too
    kill_at_random(rng, pid, board);
    const int code = join(pid, 30s);
    if (code == -1) return "a copy to be killed hung";
    if (code != 128 + 9) return "a copy to be killed failed (" + std::to_string(code) + "): " + stderr_of_copies();
    ++totals.kills;
  }
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  int checked = -1;
  do {
    const int code = join(spawn_copy(path, out, transaction_size, /*until_idle=*/true), 60s);
    if (code != 0) {
      return "a last copy " + std::string(code == -1 ? "hung" : "failed (" + std::to_string(code) + "): " + stderr_of_copies());
    }
    checked = shm::wait_process_for(checker, 0ms);
  } while (checked == -1 && std::chrono::steady_clock::now() < deadline);
  if (checked == -1) checked = join(checker, 1s);
  const int fed = join(feeder, 30s);
  if (fed != 0) return "the producer " + std::string(fed == -1 ? "hung" : "failed: " + std::to_string(fed));
  if (checked != 0) {
    return "the checker " + std::string(checked == -1 ? "hung" : "failed: " + std::to_string(checked)) +
           "; the copies said: " + stderr_of_copies();
  }
  if (board.invented.load() > 0) return "the checker read a record no one wrote";
  if (std::string e = check_writer(board, 0, n, n, /*exact=*/true, "copy"); !e.empty()) return e;
  totals.records_checked += n;
  return {};
}

std::string trial(std::uint64_t number, std::uint64_t seed, const std::string& dir, bool durable,
                  const std::vector<int>& kinds, Totals& totals) {
  std::mt19937_64 rng(seed);
  const int kind = kinds[rng() % kinds.size()];
  const std::string path = dir + "/kill-torture-" + std::to_string(::getpid()) + "-" + std::to_string(number);
  void* mem = ::mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return "mmap failed";
  Board& board = *new (mem) Board{};
  std::string error;
  {
    auto log = Log::create(path, options_for(rng, durable, kind));
    if (!log.ok()) error = "create: " + log.status().to_string();
  }
  if (error.empty()) {
    error = kind == kKeeper       ? keeper_trial(rng, path, board, totals)
            : kind == kRebalance  ? rebalance_trial(rng, path, board, totals)
            : kind == kCopy       ? copy_trial(rng, path, durable, board, totals)
            : producer_kind(kind) ? producer_trial(rng, kind, path, board, totals)
                                  : consumer_trial(rng, kind, path, board, totals);
  }
  ::munmap(mem, sizeof(Board));
  if (!error.empty()) return std::string(kKindNames[kind]) + ": " + error + " (log left at " + path + ")";
  ++totals.trials;
  ++totals.by_kind[kind];
  (void)Log::remove(path);
  std::error_code ec;
  std::filesystem::remove(path + ".out", ec);
  std::filesystem::remove(path + ".out.offsets", ec);
  if (kind == kCopy) {
    (void)Log::remove(path + ".copy");
    std::filesystem::remove(path + ".copy.stderr", ec);
  }
  return {};
}

}  // namespace
}  // namespace shmlog

int main(int argc, char** argv) {
  std::uint64_t trials = 100, seed = static_cast<std::uint64_t>(std::random_device{}()) << 20;
  std::string dir = "/tmp";
  bool durable = false;
  std::vector<int> kinds = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--durable") {
      durable = true;
    } else if (flag == "--kinds" && i + 1 < argc) {
      kinds.clear();
      const std::string list = std::string(argv[++i]) + ",";
      for (std::size_t at = 0, comma; (comma = list.find(',', at)) != std::string::npos; at = comma + 1) {
        const std::string name = list.substr(at, comma - at);
        int k = 0;
        while (k < shmlog::kKinds && name != shmlog::kKindNames[k]) ++k;
        if (k == shmlog::kKinds) {
          std::fprintf(stderr, "shmlog_kill_torture: unknown kind '%s'\n", name.c_str());
          return 2;
        }
        kinds.push_back(k);
      }
    } else if (flag == "--trials" && i + 1 < argc) {
      trials = std::strtoull(argv[++i], nullptr, 10);
    } else if (flag == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (flag == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else {
      std::fprintf(stderr, "shmlog_kill_torture: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  const auto started = std::chrono::steady_clock::now();
  shmlog::Totals totals;
  for (std::uint64_t n = 0; n < trials; ++n) {
    const std::string error = shmlog::trial(n, seed + n, dir, durable, kinds, totals);
    if (!error.empty()) {
      std::fprintf(stderr, "trial %llu (--seed %llu --trials 1%s): %s\n", static_cast<unsigned long long>(n),
                   static_cast<unsigned long long>(seed + n), durable ? " --durable" : "", error.c_str());
      return 1;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::string by_kind;
  for (int k = 0; k < shmlog::kKinds; ++k) {
    by_kind += std::string(k ? ", " : "") + shmlog::kKindNames[k] + " " + std::to_string(totals.by_kind[k]);
  }
  std::printf("%llu trials%s in %.0f s (seed %llu), %llu kills: 0 violations, 0 hangs; %llu records checked,"
              " %llu acknowledged before a kill, %llu handed to members; trials by kind: %s\n",
              static_cast<unsigned long long>(totals.trials), durable ? " (durable)" : "", seconds,
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(totals.kills),
              static_cast<unsigned long long>(totals.records_checked), static_cast<unsigned long long>(totals.acked),
              static_cast<unsigned long long>(totals.handled), by_kind.c_str());
  return 0;
}
