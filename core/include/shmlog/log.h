// shmlog's public C++ API: a log of partitions in shared memory, producers
// that append to it and consumers (optionally in groups) that poll it.
//
//   auto log = shmlog::Log::open("./orders").value();
//   auto producer = log.producer().value();
//   producer.append(shmlog::as_bytes("hello"));
//   auto consumer = log.consumer({.group = "billing"}).value();
//   consumer.poll([](const shmlog::Record& r) { use(r.value); }, 64);
//
// Threading: a Log is shared freely; each Producer and each Consumer belongs
// to one thread at a time. Handles keep the log's mapping alive, so they may
// outlive the Log object they came from.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "shmlog/detail/consumer_hot.h"
#include "shmlog/detail/producer_hot.h"
#include "shmlog/shm/shared_memory.h"
#include "shmlog/status.h"
#include "shmlog/wait.h"

namespace shmlog {

using Bytes = std::span<const std::byte>;
inline Bytes as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
inline std::string_view as_string(Bytes b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

enum class Policy : std::uint32_t {
  kOverwrite = 1,     // producers never wait; lapped consumers are told what they lost
  kBackpressure = 2,  // a segment is reused only after every group committed past it
};

// How far a log's records persist (segment files in the log directory,
// written by the keeper's io_uring flusher):
enum class Durability : std::uint32_t {
  kNone = 0,   // shared memory only: records survive process crashes, not a host crash
  kFlush = 1,  // written to the segment files (the page cache): survive a crash of every process
  kFsync = 2,  // and fdatasync'ed: survive a host crash once durable
};
// "none", "flush" or "fsync".
Result<Durability> parse_durability(std::string_view text);
const char* durability_name(Durability d) noexcept;

// Pages backing the ring: normal, transparent huge pages (a tmpfs mounted
// with huge=), or explicit huge pages (a hugetlbfs mount, reserved pages).
using Pages = shm::PageKind;

struct LogOptions {
  std::uint32_t partitions = 1;
  std::uint64_t segment_size = 4u << 20;  // a power of two, >= 64 KiB
  std::uint32_t ring_segments = 16;       // >= 2; ring = 64 MiB per partition
  Policy policy = Policy::kBackpressure;
  std::uint32_t max_record_size = 1u << 20;  // key + value bytes
  std::uint32_t max_producers = 256;
  std::uint32_t max_groups = 64;
  std::uint32_t max_members = 32;  // consumers per group
  // A claim left uncommitted this long (or whose producer died) is abandoned.
  std::chrono::milliseconds claim_timeout{1000};
  std::uint32_t mode = 0600;  // permissions of the shared memory and files
  bool checksums = false;     // producers store a CRC32C; consumers verify it
  // Where the memory lives. A log's memory is the file shmlog-<id> in
  // memory_dir (empty: /dev/shm, or the first hugetlbfs mount for kHuge).
  Pages pages = Pages::kNormal;
  std::string memory_dir{};
  int numa_node = -1;  // >= 0: bound to this NUMA node and pre-faulted from it
  // Uniqueness tokens (Producer::append_unique): how many recent tokens are
  // remembered (0: none; the table takes 128 bytes per token), and
  // optionally for how long at most (0: by count only).
  std::uint64_t token_window = 0;
  std::chrono::milliseconds token_window_time{0};
  // Durability (see Durability). A durable log always carries checksums,
  // and a ring slot is reused only after the segment it held is written:
  // consumer groups then no longer hold producers back (a group more than a
  // ring behind reads the segment files, invisibly).
  Durability durability = Durability::kNone;
  // kFsync: sync when this many bytes are unsynced (0: no byte limit) ...
  std::uint64_t fsync_interval_bytes = 0;
  // ... or when the oldest unsynced write is this old (0: no time limit),
  // or when a producer waits for durability. Both 0: every flush syncs.
  std::chrono::microseconds fsync_interval{0};
  // Retention of segment files: the oldest are deleted while the files of a
  // partition take more than this (0: no limit) ...
  std::uint64_t retention_bytes = 0;
  // ... or once the segment was last written this long ago (0: no limit).
  // Segments still in the ring are always kept.
  std::chrono::milliseconds retention_time{0};
};

// "normal", "thp" or "huge".
Result<Pages> parse_pages(std::string_view text);

// Checks options before anything is created; the error names the option.
Status validate(const LogOptions& options);

// Outcome of a hot-path operation. No strings, no allocation.
enum class Errc : std::uint8_t {
  kOk = 0,
  kEmpty,                // nothing to read (poll)
  kTooLarge,             // key + value exceed max_record_size
  kBadPartition,         // partition out of range
  kBackpressureTimeout,  // the ring stayed full past the producer's timeout
  kRevoked,              // the claim stalled past claim_timeout and was abandoned
  kBadState,             // claim not open, handle moved-from, or similar misuse
  kFenced,               // a newer instance of this named producer took over
  kDuplicate,            // the sequence already reached the log (named producers): nothing written
  kDiskFull,             // durable log: the ring is full because its segment files cannot grow
  kNotDurable,           // the record did not become durable in time (or the log is not durable)
  kCorrupt,              // the log's shared memory holds a position that cannot be right (damage)
};
const char* errc_name(Errc e) noexcept;

struct AppendResult {
  Errc error = Errc::kOk;
  std::uint32_t partition = 0;
  std::uint64_t offset = 0;  // the record's offset in its partition
  explicit operator bool() const noexcept { return error == Errc::kOk; }
};

// A record handed to a poll handler. key and value view shared memory and
// are valid only during the handler call.
struct Record {
  std::uint32_t partition = 0;
  std::uint64_t offset = 0;
  std::uint64_t next_offset = 0;  // where the next record starts
  std::uint64_t timestamp_ns = 0;  // CLOCK_REALTIME at commit, 0 if disabled
  std::uint16_t producer_id = 0;
  std::uint16_t producer_epoch = 0;
  std::uint64_t sequence = 0;
  bool transactional = false;  // written inside a transaction
  std::uint8_t type = 1;       // 1: data (control records reach only shmlog's own readers)
  Bytes key;
  Bytes value;
};

class Log;
class Producer;
class Consumer;
namespace detail {
struct LogState;
struct ProducerState;
struct ConsumerState;
struct LogAccess;  // tests only: reaches the shared-memory state
struct Internals;  // transactions spanning logs reach other logs' state
// Appends a transaction control record on behalf of producer `id`, `epoch`.
Errc append_control(Producer& producer, std::uint32_t partition, std::uint8_t type, std::uint16_t id,
                    std::uint16_t epoch, Bytes value) noexcept;
// Lets a reader see control records (shmlog's own recovery reads).
void deliver_control_records(Consumer& consumer) noexcept;
// Why the inline poll stopped.
enum class InlineStop : std::uint8_t {
  kMax,      // it handed out as many records as asked for
  kSkip,     // at padding or past its segment: the library's poll steps over, then inline again
  kEmpty,    // nothing committed at the position yet (in a slot that still holds its segment)
  kLibrary,  // at anything else: the library's poll goes on from there
  kRefused,  // a commit was refused (the partition is another member's now): the poll ends
};
}  // namespace detail

// An open claim: write key and value in place, then commit or abort it.
class Claim {
 public:
  std::span<std::byte> key() const noexcept { return {data_, key_size_}; }
  std::span<std::byte> value() const noexcept { return {data_ + key_size_, value_size_}; }
  Errc error() const noexcept { return error_; }
  std::uint32_t partition() const noexcept { return partition_; }
  std::uint64_t offset() const noexcept { return offset_; }
  explicit operator bool() const noexcept { return error_ == Errc::kOk && data_ != nullptr; }

 private:
  friend class Producer;
  std::byte* data_ = nullptr;
  std::uint32_t key_size_ = 0;
  std::uint32_t value_size_ = 0;
  std::uint32_t partition_ = 0;
  std::uint64_t offset_ = 0;
  Errc error_ = Errc::kBadState;
};

struct ProducerOptions {
  // Partition for records without a key; keyed records hash to a partition.
  std::uint32_t partition = 0;
  // The only writer of every partition: claims become plain stores. Fails
  // with kBusy while any other producer is attached, and vice versa.
  bool exclusive = false;
  // How long append waits for space under backpressure.
  std::chrono::nanoseconds backpressure_timeout = std::chrono::seconds(10);
  WaitStrategy wait = WaitStrategy::backoff();
  bool timestamps = true;  // stamp each record with CLOCK_REALTIME (read through the TSC: core/README.md)
  std::string name{};      // shown by tools
  int core = -1;           // >= 0: pin the calling thread to this CPU first
  // Non-empty: an idempotent producer with this identity (up to 63 bytes).
  // Opening it learns the last sequence that reached the log (also when
  // the previous instance died right after a commit) and fences any older
  // instance still running; appends whose sequence is not above the last
  // one return kDuplicate and write nothing. Uses shared claims (not
  // exclusive): fencing revokes in-flight claims.
  std::string producer_id{};
  // With a producer_id: begin/commit/abort_transaction. A transactional
  // producer's sequence numbers count only committed records.
  bool transactional = false;
  // An open transaction older than this may be aborted by a read_committed
  // reader waiting on it (also when the producer died: at once).
  std::chrono::milliseconds transaction_timeout{60000};
  // Durable logs: append returns once the record is in shared memory
  // (kMemory), or once it is durable as the log's policy says (kDurable:
  // many waiting producers share one fdatasync). Waits up to durable_timeout,
  // then kNotDurable (the record stays appended).
  enum class Acks : std::uint8_t { kMemory, kDurable } acks = Acks::kMemory;
  std::chrono::nanoseconds durable_timeout = std::chrono::seconds(10);
};

// Appends records. One thread at a time; not copyable.
class Producer {
 public:
  Producer(Producer&&) noexcept;
  Producer& operator=(Producer&&) noexcept;
  ~Producer();

  // Copies `value` into a new record of the default partition. Inline (no
  // call into the library) for an exclusive producer while the record fits
  // the segment it writes: see shmlog/detail/producer_hot.h.
  [[nodiscard]] AppendResult append(Bytes value) noexcept;
  // A keyed record goes to partition_for(key).
  [[nodiscard]] AppendResult append(Bytes key, Bytes value) noexcept;
  [[nodiscard]] AppendResult append_to(std::uint32_t partition, Bytes key, Bytes value) noexcept;
  // As append_to, but the record carries `timestamp_ns` (nanoseconds since
  // the Unix epoch) rather than the clock's time: a record copied from
  // elsewhere keeps its own.
  [[nodiscard]] AppendResult append_at(std::uint32_t partition, Bytes key, Bytes value,
                                       std::uint64_t timestamp_ns) noexcept;
  // With a uniqueness token (a log with token_window > 0 and no open
  // transaction, else kBadState):
  // only the first record carrying `token` within the window is kept; a
  // later one returns kDuplicate and writes nothing. Producers racing with
  // the same token: exactly one wins. Lock-free (CAS in a shared table).
  // The record ends in the token's 8-byte hash (readers see key and value
  // only), so key and value may take max_record_size - 8 bytes; durable
  // logs rebuild the window from these after a host crash.
  [[nodiscard]] AppendResult append_unique(Bytes token, Bytes key, Bytes value) noexcept;
  [[nodiscard]] AppendResult append_unique_to(std::uint32_t partition, Bytes token, Bytes key, Bytes value) noexcept;
  // Appends values in order; stops at the first error. Returns the number
  // appended and, in `last`, the result of the last attempt.
  std::size_t append_batch(std::span<const Bytes> values, AppendResult* last = nullptr) noexcept;

  // Zero-copy: reserve space, write it, then commit() or abort(). A claim
  // must be committed or aborted before the next claim of this producer.
  [[nodiscard]] Claim claim(std::size_t value_size, std::size_t key_size = 0) noexcept;
  [[nodiscard]] Claim claim_in(std::uint32_t partition, std::size_t value_size,
                               std::size_t key_size = 0) noexcept;
  [[nodiscard]] AppendResult commit(Claim& claim) noexcept;
  void abort(Claim& claim) noexcept;

  std::uint32_t partition_for(Bytes key) const noexcept;
  // Waits until partition's records below `end` (an append's offset plus
  // one, or any offset) are durable: kOk, kNotDurable after `timeout` or
  // on a log without durability, kDiskFull when the files cannot grow.
  [[nodiscard]] Errc wait_durable(std::uint32_t partition, std::uint64_t end,
                                  std::chrono::nanoseconds timeout) noexcept;

  std::uint16_t id() const noexcept;
  std::uint16_t epoch() const noexcept;
  // Sets the sequence number the next record carries (it then counts up).
  void set_next_sequence(std::uint64_t sequence) noexcept;
  std::uint64_t next_sequence() const noexcept;
  // Named producers: the last sequence that reached the log, if any.
  std::optional<std::uint64_t> last_sequence() const noexcept;

  // Transactions (transactional producers). Records appended between begin
  // and commit become visible to read_committed consumers together, in every
  // partition, or never (abort, a fence, the producer's death, the timeout).
  // Opening the producer id again aborts what an older instance left open.
  Status begin_transaction();
  // Consume-process-produce: consumer offsets committed with the
  // transaction. They are recorded in this log; after a restart,
  // committed_offsets() returns those of the last committed transaction.
  void add_offsets(const std::string& group, std::uint32_t partition, std::uint64_t offset);
  Status commit_transaction();
  Status abort_transaction();
  bool in_transaction() const noexcept;
  // A transaction spanning several logs: begin_transaction() on each
  // producer (transactional, one per log, the same producer id in each),
  // append, then commit or abort them together. The first log holds the
  // decision: read_committed readers of every log see all of it or none,
  // also when this process dies half-way (whoever finds it abandoned
  // finishes it everywhere as decided; undecided means abort).
  static Status commit_transactions(std::span<Producer* const> producers);
  static Status abort_transactions(std::span<Producer* const> producers);
  std::vector<std::pair<std::uint32_t, std::uint64_t>> committed_offsets(const std::string& group) const;

 private:
  static constexpr std::uint64_t kClockTime = ~std::uint64_t{0};  // append_stamped: the clock's time (or none)
  AppendResult append_stamped(std::uint32_t partition, Bytes key, Bytes value, std::uint64_t timestamp_ns) noexcept;
  Status decide_commit();  // commit_transaction's two halves (also used across logs)
  Status finish_commit();
  Status decide_abort();
  Status finish_abort();
  // Abort markers in the participants producers[from..], whatever their state.
  static Status abort_participants(std::span<Producer* const> producers, std::size_t from);
  friend class Log;
  friend Errc detail::append_control(Producer&, std::uint32_t, std::uint8_t, std::uint16_t, std::uint16_t,
                                     Bytes) noexcept;
  explicit Producer(std::unique_ptr<detail::ProducerState> state);
  // The inline append of a value longer than detail::kShortValue.
  AppendResult append_long(Bytes value) noexcept;
  // After an inline append's seq_cst publish: wakes sleeping consumers,
  // returns `appended`.
  AppendResult woken(AppendResult appended) noexcept;
  std::unique_ptr<detail::ProducerState> state_;
  detail::ProducerHot* hot_ = nullptr;  // *state_, as its base: what the inline append reads
};

enum class Isolation : std::uint8_t {
  kReadUncommitted,  // every record as soon as it is committed to the ring
  kReadCommitted,    // transactional records only once their transaction committed;
                     // a partition stops at the first transaction still open
};

enum class DeliveryMode : std::uint8_t {
  kAtMostOnce,   // the offset is committed before the records are handed out
  kAtLeastOnce,  // the offset is committed after the handler returns
  kManual,       // the application calls commit()
};

struct StartFrom {
  enum class Kind : std::uint8_t { kEarliest, kLatest, kOffset };
  Kind kind = Kind::kEarliest;
  std::uint64_t offset = 0;
  static StartFrom earliest() { return {}; }
  static StartFrom latest() { return {Kind::kLatest, 0}; }
  static StartFrom at(std::uint64_t offset) { return {Kind::kOffset, offset}; }
};

// Where Log::reset_group moves a group's committed offsets.
struct GroupReset {
  enum class Kind : std::uint8_t { kEarliest, kLatest, kOffset, kTime };
  Kind kind = Kind::kEarliest;
  std::uint64_t value = 0;  // the offset (kOffset), or CLOCK_REALTIME ns (kTime)
  static GroupReset earliest() { return {}; }
  static GroupReset latest() { return {Kind::kLatest, 0}; }
  static GroupReset to_offset(std::uint64_t offset) { return {Kind::kOffset, offset}; }
  static GroupReset to_time(std::uint64_t time_ns) { return {Kind::kTime, time_ns}; }
};

struct ConsumerOptions {
  // Empty: a private reader of `partitions` (all when empty) with no commits.
  std::string group{};
  DeliveryMode mode = DeliveryMode::kAtLeastOnce;
  std::uint32_t commit_every = 1;  // records per automatic commit
  // Where a new group (or a private reader) starts; a group member that
  // inherits a partition resumes from the group's committed offset.
  StartFrom from = StartFrom::earliest();
  std::vector<std::uint32_t> partitions{};  // private readers only
  WaitStrategy wait = WaitStrategy::backoff();
  // poll_wait: after a call that handed out fewer than `max` records (this
  // consumer caught up with the producers), the next call first waits this
  // long, so that a producer streaming records writes lines no one is
  // reading; a consumer at its heels costs it ~3.5x (bench/README.md, "A
  // consumer at the producer's heels"). Trades latency for throughput: a
  // record that arrives meanwhile waits too. 0: poll again at once.
  std::chrono::nanoseconds short_poll_backoff{0};
  int core = -1;  // >= 0: pin the calling thread to this CPU first
  // Exactly-once reading: skip a record whose (producer id, epoch,
  // sequence) is not above the last one seen from that producer instance
  // in its partition (a producer's retry); counted in PollResult::duplicates.
  bool drop_duplicates = false;
  Isolation isolation = Isolation::kReadUncommitted;
  // Durable logs: hand out only records that are durable already (what the
  // consumer acts on then survives a host crash).
  bool read_durable = false;
};

struct PollResult {
  std::size_t records = 0;
  std::uint64_t lost_bytes = 0;  // skipped because the ring lapped this consumer
  std::uint64_t corrupt = 0;     // records refused by validation (bytes skipped)
  std::uint64_t duplicates = 0;  // records skipped by drop_duplicates
};

// Damage a consumer stepped over (its bytes are counted in
// PollResult::corrupt): the offsets lost and, in one line, where and why.
struct Damage {
  std::uint32_t partition = 0;
  std::uint64_t from = 0;  // offsets [from, to) were skipped
  std::uint64_t to = 0;
  std::string what;        // names the segment file (or the shared memory)
};

// A callable reference (non-owning) for poll handlers: one indirect call
// per record, no allocation.
class RecordHandler {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, RecordHandler>>>
  RecordHandler(F&& f) noexcept  // NOLINT: implicit by design
      : object_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* o, const Record& r) { (*static_cast<std::remove_reference_t<F>*>(o))(r); }) {}
  void operator()(const Record& r) const { call_(object_, r); }

 private:
  void* object_;
  void (*call_)(void*, const Record&);
};

// Reads records. One thread at a time; not copyable.
class Consumer {
 public:
  Consumer(Consumer&&) noexcept;
  Consumer& operator=(Consumer&&) noexcept;
  // Commits what was processed (at-least-once), leaves the group.
  ~Consumer();

  // Hands up to `max` committed records to `handler`, in offset order per
  // partition, and returns at once (records == 0 when there are none).
  PollResult poll(RecordHandler handler, std::size_t max = 64);
  // The same for a handler called directly (no RecordHandler), and inline
  // (no call into the library) while a consumer of one partition finds
  // plain data records: see shmlog/detail/consumer_hot.h.
  template <class Handler>
  PollResult poll(Handler&& handler, std::size_t max = 64);
  // As poll, but waits up to `timeout` (with the consumer's wait strategy)
  // for at least one record.
  PollResult poll_wait(RecordHandler handler, std::size_t max, std::chrono::nanoseconds timeout);

  // Commits the position of every owned partition (what was handed out).
  void commit() noexcept;
  // Commits `offset` for `partition` (must be owned and at most the position).
  Status commit(std::uint32_t partition, std::uint64_t offset);
  // Moves the position of an owned partition; `offset` must be a record
  // boundary that is still retained (in the ring, or in a segment file of
  // a durable log).
  Status seek(std::uint32_t partition, std::uint64_t offset);
  // Moves to the first record whose timestamp is at or after `time_ns`
  // (CLOCK_REALTIME), searching the segment files and the ring; past the
  // last record: the end. Returns the new position.
  Result<std::uint64_t> seek_time(std::uint32_t partition, std::uint64_t time_ns);
  std::optional<std::uint64_t> position(std::uint32_t partition) const noexcept;
  // Partitions this consumer reads now (changes when group members come and go).
  std::vector<std::uint32_t> assignment() const;
  std::uint64_t lost_bytes() const noexcept;
  // The damage stepped over since the last call, oldest first (adjacent
  // regions merged; at most 64 kept between calls, later ones only counted
  // in PollResult::corrupt).
  std::vector<Damage> take_damage();
  // Leaves the group (committing as the mode says) and releases partitions.
  void close() noexcept;

 private:
  friend class Log;
  friend void detail::deliver_control_records(Consumer&) noexcept;
  explicit Consumer(std::unique_ptr<detail::ConsumerState> state);
  // Where the inline poll stopped before `max`: the library's poll goes on
  // (and after padding or a segment's end, the inline poll again).
  template <class Handler>
  [[gnu::noinline]] PollResult poll_on(Handler& handler, std::size_t max, std::size_t delivered,
                                       detail::InlineStop stop);
  std::unique_ptr<detail::ConsumerState> state_;
  detail::ConsumerHot* hot_ = nullptr;  // *state_, as its base: what the inline poll reads
};

// What tools show about a log (a snapshot, read without locks).
struct LogInfo {
  std::string path;
  std::string memory_path;  // the shared-memory file
  std::uint64_t log_id = 0;
  std::uint32_t version_major = 0, version_minor = 0;
  LogOptions options;
  std::uint64_t shm_bytes = 0;
  struct Partition {
    std::uint32_t index = 0;
    std::uint64_t earliest_offset = 0;  // oldest record still in the ring
    std::uint64_t end_offset = 0;       // tail: where the next claim starts
    std::uint32_t writers = 0;
    bool exclusive = false;
    std::uint64_t abandoned_claims = 0;  // claims of dead or stalled producers
    // Records and bytes (key + value) appended since the log was created,
    // by every producer, also those that exited or died: a counter that
    // never goes back while the log's memory lives. A durable log's memory
    // made anew after a host crash starts from its last checkpoint. False
    // `counted`: the log's memory was made by an older binary, which
    // counted per producer only (appends and bytes are then 0).
    bool counted = false;
    std::uint64_t appends = 0;
    std::uint64_t bytes = 0;
    // Durable logs:
    std::uint64_t written_offset = 0;  // written to segment files
    std::uint64_t durable_offset = 0;  // durable as the policy says
    std::uint64_t disk_start = 0;      // first offset still on disk
    std::uint64_t disk_bytes = 0;
    std::uint32_t disk_segments = 0;
    std::uint64_t fsyncs = 0;
    std::uint64_t disk_full = 0;  // times the files could not grow
    std::uint64_t io_errors = 0;
    int flush_errno = 0;          // last write error (0: none)
  };
  std::vector<Partition> partitions;
  struct GroupPartition {
    std::uint32_t partition = 0;
    std::uint64_t committed_offset = 0;
    std::uint64_t end_offset = 0;
    std::uint64_t lag_bytes = 0;
    std::uint64_t lag_records = 0;  // counted by walking the ring
    std::uint64_t lag_ns = 0;       // age of the oldest unconsumed record (0: none, or no timestamp)
    std::uint64_t lost_bytes = 0;   // skipped because the ring lapped the group
    int owner = -1;                 // member index, -1 when unowned
  };
  struct Group {
    std::string name;
    std::uint32_t members = 0;
    std::uint64_t membership_epoch = 0;
    std::vector<GroupPartition> partitions;
  };
  std::vector<Group> groups;
  struct ProducerInfo {
    std::uint16_t id = 0;
    std::string name;
    std::uint32_t pid = 0;
    bool alive = false;
    bool exclusive = false;
    std::uint64_t appends = 0;  // by this instance (the partitions' counts keep them after it exits)
    std::uint64_t bytes = 0;
    std::uint64_t revoked = 0;
    std::uint64_t backpressure_waits = 0;
    std::uint64_t backpressure_wait_ns = 0;
    std::uint64_t wakeups = 0;
    // Named (idempotent) producers, listed also while no instance runs.
    bool idempotent = false;
    std::uint16_t epoch = 0;
    std::optional<std::uint64_t> last_sequence;
    // Its last transaction: "open", "committing", "aborting", or empty.
    std::string transaction;
    std::uint16_t transaction_epoch = 0;
  };
  std::vector<ProducerInfo> producers;
  // The keeper (durable logs): who holds the lease, and its last round.
  std::uint32_t keeper_pid = 0;
  bool keeper_alive = false;
  std::uint64_t keeper_heartbeat_ns = 0;
  std::uint64_t keeper_takeovers = 0;
};

struct OpenOptions {
  // Durable logs: run a keeper thread in this process (flusher, retention,
  // unblocking) when no live process holds the keeper lease, and stand by
  // to take it over when its holder dies. Off: this process never keeps.
  bool keeper = true;
  // While another process holds the log's lock exclusively (it makes the
  // log's memory anew, from the segment files after a host crash, which
  // takes minutes for a large log; or it creates, repairs or deletes the
  // log), open waits this long for it, then fails with kBusy.
  std::chrono::milliseconds maker_patience = std::chrono::minutes(5);
};

// A shared-memory object whose log is gone (find_stale_memory).
struct StaleMemory {
  std::string object;  // its path, e.g. /dev/shm/shmlog-...
  std::string log;     // the log directory its header names
  std::string why;     // one line
  std::uint64_t bytes = 0;
};

// The shared-memory objects in `memory_dir` that this user owns, that a
// log made, and whose log is gone: its directory removed, or another
// object (a newer incarnation, or another log) in its place. The object a
// log directory names is never one of them, nor one whose log directory
// cannot be read. `shmlog gc` removes what it finds (removing an object
// only unlinks its name: a process that maps it keeps its mapping).
Result<std::vector<StaleMemory>> find_stale_memory(const std::string& memory_dir = "/dev/shm");

class Log {
 public:
  // Creates the log directory `path` (empty or absent) and its shared memory.
  static Result<Log> create(const std::string& path, const LogOptions& options = {});
  // Opens an existing log; recreates its shared memory if it is gone, and
  // reaps what dead processes left behind (claims, producer ids, members).
  // A durable log whose shared memory is gone (host crash, reboot) is
  // rebuilt from its segment files: torn tails cut, CRCs checked, group
  // offsets and producer ids restored from their last checkpoint.
  static Result<Log> open(const std::string& path, const OpenOptions& options = {});
  // Maps an existing log read-only, for tools that watch it (info, stat):
  // nothing is written, no process is reaped; producer() and consumer()
  // refuse.
  static Result<Log> attach(const std::string& path);
  // Removes the shared memory and the log's files, then the directory.
  static Status remove(const std::string& path);
  // A log in this process's memory only (no files): for tests and embedding.
  static Result<Log> create_in_memory(const LogOptions& options = {});

  Result<Producer> producer(const ProducerOptions& options = {}) const;
  Result<Consumer> consumer(const ConsumerOptions& options = {}) const;
  LogInfo info() const;
  // Where the log's pages are, as the kernel reports them (walks every page:
  // for tools, not hot paths).
  shm::PageReport memory_report() const;
  const LogOptions& options() const noexcept;
  const std::string& path() const noexcept;
  // The log's random 64-bit id (names its shared memory; survives renames).
  std::uint64_t id() const noexcept;
  // Reaps dead producers, members and stalled claims now (open does it too).
  void sweep() const;
  // Deletes consumer group `name`: its offsets go, and the ring no longer
  // waits for it (a checkpoint no longer brings it back). Refused (kBusy,
  // naming how many) while it has live members, unless `force`: those
  // members are then released (they read no more, their commits fail).
  // kNotFound when there is no such group.
  Status delete_group(const std::string& name, bool force = false) const;
  // Moves group `name`'s committed offset in every partition (Kafka's
  // offset reset): to the oldest retained record, the end, a record
  // boundary, or the first record at or after a time. Refused (kBusy,
  // naming how many) while it has live members. Returns the new offsets,
  // by partition.
  Result<std::vector<std::uint64_t>> reset_group(const std::string& name, GroupReset to) const;
  // Runs the keeper in the calling thread until `stop` becomes true: waits
  // for the lease (checking every 100 ms), then flushes, syncs, applies
  // retention and checkpoints offsets. For `shmlog keeper`; an error if the
  // log is not durable or io_uring is refused.
  Status keep(const std::atomic<bool>& stop) const;

 private:
  friend struct detail::LogAccess;
  friend struct detail::ConsumerState;  // completes transactions of dead producers
  friend struct detail::Internals;
  explicit Log(std::shared_ptr<detail::LogState> state) : state_(std::move(state)) {}
  std::shared_ptr<detail::LogState> state_;
};

// Pins the calling thread to one CPU (its OS number); the error names the
// CPU when it does not exist or cannot be used.
Status pin_current_thread(unsigned core);

// Parses "123", "64K", "4M", "1G" (powers of 1024).
Result<std::uint64_t> parse_size(std::string_view text);

}  // namespace shmlog

// The inline append and poll: Producer::append(Bytes) and
// Consumer::poll(Handler&&), defined once the classes above are complete.
#include "shmlog/detail/inline_paths.h"
