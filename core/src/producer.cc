#include <algorithm>
#include <atomic>
#include <cerrno>
#include <map>
#include <optional>
#include <cstring>
#include <vector>

#include "durability.h"
#include "log_state.h"
#include "owner.h"
#include "record.h"
#include "txn.h"
#include "word_pair.h"
#include "shmlog/log.h"
#include "test_hooks.h"

namespace shmlog {
namespace detail {

using format::atomic;

namespace {
bool g_die_between_claim_and_commit = false;
bool g_die_between_commit_and_count = false;
int g_die_in_commit = 0;  // tests: 1 right after the decision, 2 after the commit markers

// The instances of one named producer may overlap briefly (a fenced one
// finishing a commit): the recorded last sequence only ever goes up.
void raise_last_sequence(format::ProducerSlot& slot, std::uint64_t plus_one) noexcept {
  auto last = atomic(slot.last_sequence_plus_one);
  std::uint64_t seen = last.load(std::memory_order_relaxed);
  while (seen < plus_one && !last.compare_exchange_weak(seen, plus_one, std::memory_order_release,
                                                        std::memory_order_relaxed)) {
  }
}

// The sequence + 1 of the record `d` (decoded at `position` of partition
// p) if it is a published plain (not transactional) record of the identity
// in producer slot `id`, else 0. Reads the header with acquire loads: a
// restart reads it while the ring slot may be reused, and checks the
// slot's state after (no later load moves before these).
std::uint64_t plain_sequence_plus_one(const LogState& s, format::ProducerSlot& slot, std::uint32_t id,
                                      std::uint32_t p, std::uint64_t position, const record::Decoded& d) noexcept {
  if (d.kind != record::Kind::kData || (d.flags & format::kRecordFlagTransactional) != 0) return 0;
  auto& h = *reinterpret_cast<format::RecordHeader*>(word_at(s, p, position));
  if (atomic(h.producer_id).load(std::memory_order_acquire) != id) return 0;
  // One of this identity's epochs, from its first to the slot's newest (the
  // slot's previous identity's records lie before its first).
  const std::uint16_t first = atomic(slot.first_epoch).load(std::memory_order_relaxed);
  const auto age = static_cast<std::uint16_t>(atomic(h.producer_epoch).load(std::memory_order_acquire) - first);
  if (age > static_cast<std::uint16_t>(atomic(slot.epoch).load(std::memory_order_relaxed) - first)) return 0;
  return atomic(h.sequence).load(std::memory_order_acquire) + 1;
}

// When the ring slot holding `segment` of partition p was taken for its
// next lap, before it is zeroed: counts the pending claims of named
// producers that lie in it (their records are resolved by now: published,
// or abandoned). A named producer counts its
// record itself just after publishing it; this covers one that died, or
// was stopped, between the two, whose record would otherwise leave the
// ring uncounted and be written again by its restart.
void count_pending_claims(const LogState& s, std::uint32_t p, std::uint64_t segment) noexcept {
  const std::uint32_t named = std::min(atomic(s.header->named_slots_end).load(std::memory_order_acquire),
                                       s.options.max_producers);
  const std::uint64_t begin = segment << s.segment_shift;
  for (std::uint32_t id = 0; id < named; ++id) {
    auto& slot = s.producer_slot(id);
    const std::uint64_t at = atomic(slot.pending_position_plus_one).load(std::memory_order_acquire);
    if (at <= begin || at > begin + s.segment_size) continue;
    // Damaged (off the record alignment): nothing to count there.
    if (!format::plausible_position(at - 1)) continue;
    if (atomic(slot.pending_partition).load(std::memory_order_relaxed) != p) continue;
    const record::At a = s.ring_record_at(p, at - 1);
    if (const std::uint64_t plus_one = plain_sequence_plus_one(s, slot, id, p, at - 1, a.d)) {
      raise_last_sequence(slot, plus_one);
    }
  }
}

// Moves a named identity's first epoch up once `epoch` is half the 16-bit
// circle past it, so that its epochs in use (those of records still in the
// ring, which recovery reads) always lie within less than the circle and
// order by their age. Records older than the window count for nothing in
// recovery: the slot's last sequence covers them. (What the window cannot
// tell apart: records of the slot's previous identity still in the ring
// after 16 384 transactions of this one.)
void keep_epoch_window(format::ProducerSlot& slot, std::uint16_t epoch) noexcept {
  auto first = atomic(slot.first_epoch);
  if (static_cast<std::uint16_t>(epoch - first.load(std::memory_order_relaxed)) >= 2 * format::kEpochWindow) {
    first.store(static_cast<std::uint16_t>(epoch - format::kEpochWindow), std::memory_order_relaxed);
  }
}

// The token claims of `segment`'s lap in partition p, about to be reused
// (as count_pending_claims): each token slot still naming one notes its
// fate (kept, or gone: aborted or abandoned) before the ring forgets it,
// for a producer that meets the token later (holder_state). A claim's
// bytes end in its token's hash (written before the token is taken), so
// walking the lap's records finds them: committed data flagged
// kRecordFlagToken, and padding or abandoned records (an aborted or dead
// claim), whose last 8 bytes are looked up (a slot must name this very
// position to count). Logs with a token window and token_hashes only.
void resolve_tokens(const LogState& s, std::uint32_t p, std::uint64_t segment) noexcept {
  if (s.geometry.token_slots == 0 || (s.header->features & format::kFeatureTokenHashes) == 0) return;
  const std::byte* base = s.segment_base(p, segment);
  const std::uint64_t begin = segment << s.segment_shift;
  const format::TokenSlot* table = s.tokens();
  const std::uint64_t mask = s.geometry.token_slots - 1;
  // To the lap's end (or damage).
  s.walk_records(base, begin, begin + s.segment_size, [&](const record::At& a, std::uint64_t position) {
    const record::Decoded& d = a.d;
    const bool data = d.kind == record::Kind::kData;
    const bool candidate = data ? (d.flags & format::kRecordFlagToken) != 0
                                : d.type == format::RecordType::kPadding || d.type == format::RecordType::kAbandoned;
    if (candidate && d.frame_length >= format::kRecordHeaderSize + format::kTokenTrailer) {
      std::uint64_t hash = 0;
      std::memcpy(&hash, reinterpret_cast<const std::byte*>(a.header) + d.frame_length - format::kTokenTrailer, sizeof hash);
      const std::uint64_t mine = format::encode_token_position(p, position);
      for (std::uint64_t i = 0; hash != 0 && i < std::min<std::uint64_t>(64, mask + 1); ++i) {
        auto& slot = const_cast<format::TokenSlot&>(table[(hash + i) & mask]);
        std::uint64_t slot_hash = 0, seq = 0, held = 0, published = 0;
        load_pair(&slot.hash, slot_hash, seq);
        if (slot_hash == 0) break;  // tokens never sit past an empty slot
        if (slot_hash != hash) continue;
        load_pair(&slot.position, held, published);
        if (published == seq && held == mine) {
          atomic(slot.resolved_seq).store(seq | (data ? format::kTokenKept : 0), std::memory_order_release);
        }
        break;
      }
    }
    return true;
  });
}

#ifndef SHMLOG_HOT_COUNTERS
#define SHMLOG_HOT_COUNTERS 1
#endif
// Off only in the build that measures what counting costs.
constexpr bool kHotCounters = SHMLOG_HOT_COUNTERS != 0;

// Undoes a producer's join of partitions [0, count): the exclusive mark, or
// one count of shared writers.
void leave_writers(const LogState& s, std::uint32_t count, bool exclusive) noexcept {
  for (std::uint32_t p = 0; p < count; ++p) {
    auto writers = atomic(s.partition(p).writers);
    if (exclusive) {
      writers.store(0, std::memory_order_release);
    } else {
      writers.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}
}  // namespace

struct ProducerState {
  std::shared_ptr<LogState> log;
  std::uint16_t id = 0;
  std::uint16_t epoch = 0;  // names this instance's records (and its transaction's)
  std::uint32_t fence = 0;  // this instance's fence in the slot's txn_word
  bool exclusive = false;
  bool timestamps = true;
  bool checksums = false;
  std::uint32_t default_partition = 0;
  std::chrono::nanoseconds backpressure_timeout{};
  bool acks_durable = false;  // append waits until its record is durable
  std::chrono::nanoseconds durable_timeout{};
  WaitStrategy wait;
  std::uint64_t next_sequence = 0;
  // Named producers: sequences below this already reached the log.
  bool idempotent = false;
  std::uint64_t last_sequence_plus_one = 0;

  // Transactions (the epoch is bumped by each begin: (id, epoch) names one).
  bool transactional = false;
  bool txn_open = false;
  std::chrono::milliseconds txn_timeout{};
  std::vector<bool> touched;               // partitions written in the open transaction
  TxnOffsets txn_offsets;  // to commit with it
  std::uint64_t txn_max_sequence_plus_one = 0;
  std::string committed_offsets;  // of the last committed transaction (encoded)
  // The next commit writes a control record (a marker or offsets) instead of data.
  struct Control {
    bool active = false;
    format::RecordType type = format::RecordType::kData;
    std::uint16_t id = 0;
    std::uint16_t epoch = 0;
  } control;

  // Per partition: the ready segment this producer last wrote into, and for
  // an exclusive producer its own copy of the tail.
  struct Cursor {
    std::uint64_t ready_begin = 1;  // empty range until the first check
    std::uint64_t ready_end = 0;
    std::byte* ready_base = nullptr;  // where ready_begin lies in memory
    std::uint64_t tail = 0;
    std::uint64_t* tail_position = nullptr;  // the partition's shared tail
    // Exclusive producers zero the next segment a chunk at a time while
    // they write the current one, instead of all at once at the crossing.
    std::uint64_t ahead_segment = UINT64_MAX;
    std::uint64_t ahead_zeroed = 0;  // bytes of ahead_segment zeroed so far
  };
  static constexpr std::uint64_t kZeroChunk = 16 * 1024;
  std::vector<Cursor> cursors;

  // The open claim, if any.
  bool claim_open = false;
  std::uint32_t claim_partition = 0;
  std::uint64_t claim_position = 0;
  format::RecordHeader* claim_header = nullptr;
  std::uint32_t claim_frame = 0;
  std::uint16_t claim_key = 0;

  ~ProducerState() { close(); }

  format::ProducerSlot* slot_ = nullptr;  // this producer's slot (cached)
  std::uint32_t max_record = 0;
  format::ProducerSlot& slot() const { return *slot_; }
  // Address of a position in the ready segment of cursor p (hot path: no
  // division). Valid after ensure_ready() covered the position.
  std::uint64_t* word(std::uint32_t p, std::uint64_t position) const {
    const Cursor& c = cursors[p];
    return reinterpret_cast<std::uint64_t*>(c.ready_base + (position - c.ready_begin));
  }

  Errc ensure_ready(std::uint32_t p, std::uint64_t begin, std::uint64_t end) noexcept;
  Errc prepare(std::uint32_t p, std::uint64_t segment, bool may_wait) noexcept;
  bool wait_for_space(std::uint32_t p, std::uint64_t needed,
                      std::chrono::steady_clock::time_point deadline) noexcept;
  void try_prepare_ahead(std::uint32_t p, std::uint64_t segment) noexcept {
    (void)prepare(p, segment, /*may_wait=*/false);
  }
  void start_zeroing_ahead(std::uint32_t p, std::uint64_t segment) noexcept;
  void zero_ahead(std::uint32_t p, std::uint64_t upto) noexcept;
  void finish_zeroing_ahead(std::uint32_t p) noexcept;
  void pad(std::uint32_t p, std::uint64_t position, std::uint64_t length) noexcept;
  Errc claim(std::uint32_t p, std::uint32_t frame, std::uint64_t* position) noexcept;
  // `extra_flags`: record flags the claim's bytes call for (kRecordFlagToken).
  AppendResult commit(std::uint64_t timestamp_ns, std::uint8_t extra_flags = 0) noexcept;
  Errc wait_durable(std::uint32_t p, std::uint64_t end, std::chrono::nanoseconds timeout) noexcept;
  // Why the ring is full when a wait for space times out.
  Errc full_error(std::uint32_t p) const noexcept {
    return log->durable() && atomic(log->partition(p).flush_errno).load(std::memory_order_acquire) == ENOSPC
               ? Errc::kDiskFull
               : Errc::kBackpressureTimeout;
  }
  void abort() noexcept;
  void close() noexcept;

  Errc append_control(std::uint32_t p, format::RecordType type, std::uint16_t txn_id, std::uint16_t txn_epoch,
                      Bytes value) noexcept;
  // Takes `token` for the claim at (p, position): kOk, or kDuplicate when a
  // record with it is kept within the window.
  Errc take_token(Bytes token, std::uint32_t p, std::uint64_t position) noexcept;
  // Writes `type` markers of transaction `txn_epoch` to the partitions in
  // `which` (all when empty), waiting out backpressure up to its timeout.
  Status write_markers(format::RecordType type, std::uint16_t txn_epoch, const std::vector<bool>& which);
  Status finish_previous_transaction(const std::map<std::uint16_t, std::string>& prepared,
                                    const std::map<std::uint16_t, std::string>& participants, bool* acted);
  // This instance's transaction is finished: its word -> done, by CAS (a
  // newer instance's word is left alone).
  void mark_done() noexcept {
    auto word = atomic(slot().txn_word);
    std::uint64_t w = word.load(std::memory_order_acquire);
    while (format::txn_fence(w) == fence && format::txn_epoch(w) == epoch &&
           format::txn_state(w) != format::TxnState::kDone &&
           !word.compare_exchange_weak(w, txn(format::TxnState::kDone), std::memory_order_acq_rel)) {
    }
  }
  // The committed transaction's sequences reached the log.
  void count_transaction_sequences() noexcept {
    if (txn_max_sequence_plus_one > last_sequence_plus_one) {
      last_sequence_plus_one = txn_max_sequence_plus_one;
      raise_last_sequence(slot(), last_sequence_plus_one);
    }
  }
  // This instance's transaction in `state`, as its slot's txn_word.
  std::uint64_t txn(format::TxnState state) const noexcept { return format::make_txn_word(fence, epoch, state); }
  // A newer instance of this named producer opened the slot.
  bool fenced() const noexcept {
    return format::txn_fence(atomic(slot().txn_word).load(std::memory_order_seq_cst)) != fence;
  }
};

Errc ProducerState::ensure_ready(std::uint32_t p, std::uint64_t begin, std::uint64_t end) noexcept {
  Cursor& c = cursors[p];
  if (begin >= c.ready_begin && end <= c.ready_end) return Errc::kOk;
  const std::uint64_t segment = begin >> log->segment_shift;
  Errc e = prepare(p, segment, /*may_wait=*/true);
  if (e != Errc::kOk) return e;
  c.ready_begin = segment << log->segment_shift;
  c.ready_end = c.ready_begin + log->segment_size;
  c.ready_base = log->segment_base(p, segment);
  return Errc::kOk;
}

void (*g_after_taking_slot)(std::uint32_t p, std::uint64_t segment) = nullptr;

namespace {

// Marks the ring slot of `segment` as being prepared by this process if it
// still holds (w, stamp). The word (with our pid) and our stamp (owner.h)
// change in one 16-byte CAS: a reader of the word always finds the stamp of
// the process it names, never the previous preparer's, which would make a
// live preparer look dead and its slot free to take.
//
// Taking the previous lap's slot, it looks at the reuse floor again after
// the CAS and gives the slot back if it dropped below the old segment's
// end: a group member sets its hold before it reads a slot's state, so
// either it sees the slot taken (and reads the segment's file) or this
// sees its hold (Dekker's order: each stores, then loads the other's).
bool take_slot(const LogState& s, std::uint32_t p, std::uint64_t segment, std::uint64_t w,
               std::uint64_t stamp) noexcept {
  auto& d = s.descriptor(p, segment);
  const std::uint64_t mine = format::make_segment_word(segment, format::SegmentState::kPreparing, shm::self().pid);
  const std::uint64_t mine_stamp = own_stamp(s);
  const std::uint64_t old = w, old_stamp = stamp;
  if (!cas_pair(&d.state_word, w, stamp, mine, mine_stamp)) return false;
  if (format::segment_index(old) + s.ring_segments == segment) {
    const std::uint64_t floor = s.reuse_floor(p);
    if (floor != UINT64_MAX && floor < (format::segment_index(old) + 1) << s.segment_shift) {
      std::uint64_t taken = mine, taken_stamp = mine_stamp;
      (void)cas_pair(&d.state_word, taken, taken_stamp, old, old_stamp);  // ours: nobody else changes it
      return false;
    }
  }
  if (g_after_taking_slot != nullptr) g_after_taking_slot(p, segment);
  // Ours now, the previous lap still in it: count its pending claims before
  // anything is zeroed. Taking over a dead preparer's slot counts again
  // what it left: it counted before it zeroed anything.
  if (segment >= s.ring_segments) {
    count_pending_claims(s, p, segment - s.ring_segments);
    resolve_tokens(s, p, segment - s.ring_segments);
  }
  return true;
}

// Zeroes the slot this process took for `segment` (from `zeroed`, what is
// zeroed already) and publishes it ready.
void zero_and_publish(const LogState& s, std::uint32_t p, std::uint64_t segment, std::uint64_t zeroed = 0) noexcept {
  auto& d = s.descriptor(p, segment);
  if (zeroed < s.segment_size) zero_shared(s.segment_base(p, segment) + zeroed, s.segment_size - zeroed);
  atomic(d.prepared_ns).store(now_realtime_ns(), std::memory_order_relaxed);
  // Pairs with the acquire of producers and consumers checking the slot.
  atomic(d.state_word).store(format::make_segment_word(segment, format::SegmentState::kReady, 0),
                             std::memory_order_release);
}

// True once every claim in `segment` is resolved (committed, padding or
// abandoned): nothing in it needs protecting from zeroing. Waits for
// (and unblocks) claims in flight if may_wait, until `deadline`.
bool seal_segment(const LogState& s, std::uint32_t p, std::uint64_t segment, bool may_wait,
                  std::chrono::steady_clock::time_point deadline) noexcept {
  std::uint64_t position = segment << s.segment_shift;
  const std::uint64_t end = position + s.segment_size;
  auto stall_since = std::chrono::steady_clock::time_point{};
  std::uint64_t stall_position = UINT64_MAX;
  while (position < end) {
    const record::At a = s.ring_record_at(p, position);
    if (a.committed()) {
      position += a.d.aligned_length;
      continue;
    }
    if (a.d.kind == record::Kind::kCorrupt) return true;  // nothing valid to protect beyond
    if (a.d.kind == record::Kind::kEmpty && s.tail(p) <= position) return true;
    if (!may_wait) return false;
    const auto now = std::chrono::steady_clock::now();
    if (now > deadline) return false;  // a word that never resolves (damage): the append times out
    if (stall_position != position) {
      stall_position = position;
      stall_since = now;
    }
    if (!unblock(s, p, position, now - stall_since)) shm::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

}  // namespace

bool prepare_unprepared(const LogState& s, std::uint32_t p, std::uint64_t segment) noexcept {
  auto& d = s.descriptor(p, segment);
  const std::uint64_t w = atomic(d.state_word).load(std::memory_order_acquire);
  const std::uint64_t stamp = atomic(d.preparer_stamp).load(std::memory_order_relaxed);
  const std::uint64_t held = format::segment_index(w);
  const bool ready = format::segment_state(w) == format::SegmentState::kReady;
  if (held == segment && ready) return true;
  if (held == segment) {  // being prepared: only a dead preparer's is taken over
    if (!preparer_dead(s, w, stamp) || !take_slot(s, p, segment, w, stamp)) return false;
    zero_and_publish(s, p, segment);
    return true;
  }
  if (held + s.ring_segments != segment || !ready) return false;
  const std::uint64_t floor = s.reuse_floor(p);
  const bool reusable = floor != UINT64_MAX ? floor >= (held + 1) << s.segment_shift
                                            : seal_segment(s, p, held, /*may_wait=*/false, {});
  if (!reusable || !take_slot(s, p, segment, w, stamp)) return false;
  zero_and_publish(s, p, segment);
  return true;
}

// Makes the ring slot of `segment` hold it, zeroed: waits for the policy to
// allow reuse of the slot's previous segment, checks that every claim in
// that segment is resolved, zeroes it and publishes it.
Errc ProducerState::prepare(std::uint32_t p, std::uint64_t segment, bool may_wait) noexcept {
  const LogState& s = *log;
  auto state = atomic(s.descriptor(p, segment).state_word);
  const auto deadline = std::chrono::steady_clock::now() + backpressure_timeout;
  Waiter waiter(wait);
  for (;;) {
    // Pairs with the release that publishes a prepared slot.
    std::uint64_t w = state.load(std::memory_order_acquire);
    const std::uint64_t held = format::segment_index(w);
    const bool ready = format::segment_state(w) == format::SegmentState::kReady;
    if (held == segment && ready) return Errc::kOk;
    if (held > segment) return Errc::kRevoked;  // the ring lapped this claim
    if (cursors[p].ahead_segment == segment) {  // we have been zeroing it: finish
      finish_zeroing_ahead(p);
      continue;
    }
    // Read after the word, so never older than it (both change in one CAS).
    const std::uint64_t stamp = atomic(s.descriptor(p, segment).preparer_stamp).load(std::memory_order_relaxed);
    bool take = false;
    if (held == segment) {
      // Another producer zeroes it; take over only if that process died.
      take = preparer_dead(s, w, stamp);
    } else if (held + s.ring_segments == segment && ready) {
      const std::uint64_t old_end = (held + 1) << s.segment_shift;
      const std::uint64_t committed = s.reuse_floor(p);
      if (committed != UINT64_MAX && committed < old_end) {
        if (!may_wait) return Errc::kBackpressureTimeout;
        // Counted when the wait begins (a stall in progress shows), timed when it ends.
        auto& sl = slot();  // single writer: relaxed stores
        atomic(sl.backpressure_waits_total).store(sl.backpressure_waits_total + 1, std::memory_order_relaxed);
        const auto started = std::chrono::steady_clock::now();
        const bool room = wait_for_space(p, old_end, deadline);
        atomic(sl.backpressure_wait_ns_total)
            .store(sl.backpressure_wait_ns_total +
                       static_cast<std::uint64_t>((std::chrono::steady_clock::now() - started).count()),
                   std::memory_order_relaxed);
        if (!room) return full_error(p);
        continue;
      }
      // With no group holding it, the old segment may still have claims in
      // flight: wait for each to commit or be abandoned before zeroing.
      // An exclusive producer is the only live writer: nothing to wait for.
      // (A group's offset, or the written position of a durable log, past
      // the segment means every claim in it is resolved.)
      take = committed != UINT64_MAX || exclusive || seal_segment(s, p, held, may_wait, deadline);
      if (!take && !may_wait) return Errc::kBackpressureTimeout;
      if (!take && std::chrono::steady_clock::now() > deadline) return full_error(p);
    }
    if (take) {
      if (take_slot(s, p, segment, w, stamp)) {
        zero_and_publish(s, p, segment);
        return Errc::kOk;
      }
      continue;
    }
    if (!may_wait) return Errc::kBackpressureTimeout;
    if (std::chrono::steady_clock::now() > deadline) return full_error(p);
    if (waiter.idle(0)) shm::sleep_for(std::chrono::microseconds(50));
  }
}

bool ProducerState::wait_for_space(std::uint32_t p, std::uint64_t needed,
                                   std::chrono::steady_clock::time_point deadline) noexcept {
  const LogState& s = *log;
  Waiter waiter(wait);
  for (;;) {
    if (s.reuse_floor(p) >= needed) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    if (!waiter.idle(0)) continue;
    // A durable log's ring moves on once the keeper wrote (fsync: synced)
    // the old segment: ask for that.
    if (s.durable()) detail::request_sync(s, p, needed);
    // Park until a consumer commits, or the keeper writes (either wakes us
    // when waiters > 0).
    auto waiters = atomic(s.header->space_waiters);
    auto seq = atomic(s.header->space_seq);
    waiters.fetch_add(1, std::memory_order_seq_cst);
    const std::uint32_t seen = seq.load(std::memory_order_seq_cst);
    if (s.reuse_floor(p) < needed) {
      const auto left = std::min<std::chrono::nanoseconds>(deadline - now, std::chrono::milliseconds(10));
      shm::futex_wait(&s.header->space_seq, seen, left);
    }
    waiters.fetch_sub(1, std::memory_order_seq_cst);
  }
}

void ProducerState::pad(std::uint32_t p, std::uint64_t position, std::uint64_t length) noexcept {
  const std::uint64_t padding =
      format::make_commit_word(static_cast<std::int32_t>(length), format::RecordType::kPadding, 0, 0);
  auto w = atomic(*word(p, position));
  if (exclusive) {
    w.store(padding, std::memory_order_release);  // pairs with consumers' acquire
  } else {
    std::uint64_t expected = 0;  // fails only if an unblocker poisoned it: fine
    w.compare_exchange_strong(expected, padding, std::memory_order_release, std::memory_order_relaxed);
  }
}

// Takes the slot of `segment` (the next one) for zeroing in chunks, if the
// policy allows its reuse right now; otherwise the crossing prepares it.
void ProducerState::start_zeroing_ahead(std::uint32_t p, std::uint64_t segment) noexcept {
  const LogState& s = *log;
  Cursor& c = cursors[p];
  c.ahead_zeroed = s.segment_size;  // "nothing to do" unless taken below
  auto state = atomic(s.descriptor(p, segment).state_word);
  std::uint64_t w = state.load(std::memory_order_acquire);
  if (format::segment_index(w) + s.ring_segments != segment ||
      format::segment_state(w) != format::SegmentState::kReady) {
    return;
  }
  const std::uint64_t stamp = atomic(s.descriptor(p, segment).preparer_stamp).load(std::memory_order_relaxed);
  const std::uint64_t old_end = (format::segment_index(w) + 1) << s.segment_shift;
  if (s.reuse_floor(p) < old_end) return;
  if (!take_slot(s, p, segment, w, stamp)) return;
  c.ahead_segment = segment;
  c.ahead_zeroed = 0;
}

void ProducerState::zero_ahead(std::uint32_t p, std::uint64_t upto) noexcept {
  const LogState& s = *log;
  Cursor& c = cursors[p];
  upto = std::min(upto, s.segment_size);
  if (c.ahead_segment == UINT64_MAX || upto <= c.ahead_zeroed) return;
  zero_shared(s.segment_base(p, c.ahead_segment) + c.ahead_zeroed, upto - c.ahead_zeroed);
  c.ahead_zeroed = upto;
  if (upto == s.segment_size) finish_zeroing_ahead(p);
}

void ProducerState::finish_zeroing_ahead(std::uint32_t p) noexcept {
  const LogState& s = *log;
  Cursor& c = cursors[p];
  if (c.ahead_segment == UINT64_MAX) return;
  zero_and_publish(s, p, c.ahead_segment, c.ahead_zeroed);
  c.ahead_segment = UINT64_MAX;
  c.ahead_zeroed = s.segment_size;
}

Errc ProducerState::claim(std::uint32_t p, std::uint32_t frame, std::uint64_t* position) noexcept {
  const LogState& s = *log;
  const std::uint64_t aligned = format::align_record(frame);
  auto tail = atomic(s.partition(p).tail_position);
  if (exclusive) {
    Cursor& c = cursors[p];
    std::uint64_t pos = c.tail;
    const std::uint64_t segment_end = (pos | s.segment_mask) + 1;
    if (pos + aligned > segment_end) {
      Errc e = ensure_ready(p, pos, segment_end);
      if (e != Errc::kOk) return e;
      pad(p, pos, segment_end - pos);
      pos = c.tail = segment_end;
      tail.store(pos, std::memory_order_release);
    }
    Errc e = ensure_ready(p, pos, pos + aligned);
    if (e != Errc::kOk) return e;
    if (c.ahead_segment == UINT64_MAX) {
      start_zeroing_ahead(p, (pos >> s.segment_shift) + 1);
    } else if (pos - c.ready_begin >= c.ahead_zeroed) {
      zero_ahead(p, c.ahead_zeroed + kZeroChunk);
    }
    *position = pos;
    return Errc::kOk;
  }
  for (;;) {
    // The claim: positions [pos, pos + aligned) now belong to this producer.
    const std::uint64_t pos = tail.fetch_add(aligned, std::memory_order_relaxed);
    if (!format::plausible_position(pos)) [[unlikely]] return Errc::kCorrupt;
    const std::uint64_t segment_end = (pos | s.segment_mask) + 1;
    if (pos + aligned > segment_end) {
      // Crossing a segment end: both pieces become padding; claim again.
      Errc e = ensure_ready(p, pos, segment_end);
      if (e != Errc::kOk) return e;
      pad(p, pos, segment_end - pos);
      e = ensure_ready(p, segment_end, pos + aligned);
      if (e != Errc::kOk) return e;
      pad(p, segment_end, pos + aligned - segment_end);
      try_prepare_ahead(p, (segment_end >> s.segment_shift) + 1);
      continue;
    }
    Errc e = ensure_ready(p, pos, pos + aligned);
    if (e != Errc::kOk) return e;  // the unclaimed hole is abandoned by readers later
    if (idempotent) {
      // Named before it registers (the registration orders the two stores
      // before this instance's fence check): see pending_position_plus_one.
      auto& sl = slot();
      atomic(sl.pending_partition).store(p, std::memory_order_relaxed);
      atomic(sl.pending_position_plus_one).store(pos + 1, std::memory_order_release);
    }
    // Register the claim: the negated length (and our id, for liveness).
    std::uint64_t expected = 0;
    const std::uint64_t claimed =
        format::make_commit_word(-static_cast<std::int32_t>(frame), format::RecordType::kNone, 0, id);
    // seq_cst (the same instruction as release on x86): a named producer's
    // fencing relies on this registration and its epoch check being ordered.
    if (atomic(*word(p, pos)).compare_exchange_strong(expected, claimed, std::memory_order_seq_cst,
                                                      std::memory_order_relaxed)) {
      *position = pos;
      return Errc::kOk;
    }
    // Poisoned by an unblocker while we were descheduled: claim again.
  }
}

AppendResult ProducerState::commit(std::uint64_t timestamp_ns, std::uint8_t extra_flags) noexcept {
  const LogState& s = *log;
  const std::uint32_t p = claim_partition;
  const std::uint64_t pos = claim_position;
  claim_open = false;
  format::RecordHeader* header = claim_header;
  if (idempotent && fenced()) {
    // A newer instance of this producer id took over: publish nothing.
    claim_open = true;
    abort();
    return {Errc::kFenced, p, pos};
  }
  std::uint8_t flags = extra_flags | (checksums ? format::kRecordFlagChecksum : 0);
  format::RecordType type = format::RecordType::kData;
  if (control.active) [[unlikely]] {
    header->producer_id = control.id;
    header->producer_epoch = control.epoch;
    header->sequence = 0;
    type = control.type;
    if (type == format::RecordType::kTxnOffsets) flags |= format::kRecordFlagTransactional;
  } else {
    header->producer_id = id;
    header->producer_epoch = epoch;
    header->sequence = next_sequence++;
    if (txn_open) {
      flags |= format::kRecordFlagTransactional;
      touched[p] = true;
    }
  }
  header->timestamp_ns = timestamp_ns;
  const std::uint64_t final_word =
      format::make_commit_word(static_cast<std::int32_t>(claim_frame), type, flags, claim_key);
  if (checksums) {
    header->checksum = record::checksum(*header, final_word, reinterpret_cast<std::byte*>(header + 1),
                                        claim_frame - format::kRecordHeaderSize);
  }
  if (g_die_between_claim_and_commit) shm::kill_self();
  auto w = atomic(header->commit_word);
  // Once a consumer may sleep, the commit is seq_cst so that it is ordered
  // before the waiter check (the consumer increments data_waiters, then
  // re-reads this word); before that, release is enough.
  const bool sleepers = atomic(s.header->sleepers).load(std::memory_order_relaxed) != 0;
  if (exclusive) {
    w.store(final_word, sleepers ? std::memory_order_seq_cst : std::memory_order_release);
    Cursor& c = cursors[p];
    c.tail = pos + format::align_record(claim_frame);
    atomic(*c.tail_position).store(c.tail, std::memory_order_release);
  } else {
    std::uint64_t expected =
        format::make_commit_word(-static_cast<std::int32_t>(claim_frame), format::RecordType::kNone, 0, id);
    if (!w.compare_exchange_strong(expected, final_word, std::memory_order_seq_cst)) {
      auto& counter = slot().revoked_total;
      atomic(counter).store(counter + 1, std::memory_order_relaxed);
      // A newer instance revokes the claims it finds in flight when it fences us.
      if (idempotent && fenced()) return {Errc::kFenced, p, pos};
      return {Errc::kRevoked, p, pos};
    }
  }
  if (sleepers && atomic(s.header->data_waiters).load(std::memory_order_seq_cst) != 0) {
    s.wake_consumers();
    atomic(slot().wakeups_total).store(slot().wakeups_total + 1, std::memory_order_relaxed);
  }
  if (idempotent && !control.active) {
    if (txn_open) {
      // Counts only once the transaction commits.
      txn_max_sequence_plus_one = std::max(txn_max_sequence_plus_one, header->sequence + 1);
    } else {
      if (g_die_between_commit_and_count) [[unlikely]] shm::kill_self();
      last_sequence_plus_one = header->sequence + 1;
      raise_last_sequence(slot(), last_sequence_plus_one);
    }
  }
  if constexpr (kHotCounters) {
    // Single-writer counters: a relaxed store, no read-modify-write.
    auto& sl = slot();
    atomic(sl.appends_total).store(sl.appends_total + 1, std::memory_order_relaxed);
    atomic(sl.bytes_total).store(sl.bytes_total + claim_frame - format::kRecordHeaderSize,
                                 std::memory_order_relaxed);
  }
  if (acks_durable) {
    const Errc durable = wait_durable(p, pos + format::align_record(claim_frame), durable_timeout);
    if (durable != Errc::kOk) return {durable, p, pos};
  }
  return {Errc::kOk, p, pos};
}

void ProducerState::abort() noexcept {
  if (!claim_open) return;
  claim_open = false;
  const std::uint64_t aligned = format::align_record(claim_frame);
  auto* base = reinterpret_cast<std::byte*>(claim_header);
  if (exclusive) {
    // Nothing was published; clear what the caller may have written so no
    // stale bytes lie where the next record's header goes.
    zero_shared(base, aligned);
    return;
  }
  std::uint64_t expected = format::make_commit_word(-static_cast<std::int32_t>(claim_frame),
                                                    format::RecordType::kNone, 0, id);
  atomic(*reinterpret_cast<std::uint64_t*>(base))
      .compare_exchange_strong(expected,
                               format::make_commit_word(static_cast<std::int32_t>(claim_frame),
                                                        format::RecordType::kPadding, 0, 0),
                               std::memory_order_seq_cst);
  if (atomic(log->header->data_waiters).load(std::memory_order_seq_cst) != 0) log->wake_consumers();
}

Errc ProducerState::append_control(std::uint32_t p, format::RecordType type, std::uint16_t txn_id,
                                   std::uint16_t txn_epoch, Bytes value) noexcept {
  if (claim_open) return Errc::kBadState;
  const auto frame = static_cast<std::uint32_t>(format::kRecordHeaderSize + value.size());
  if (value.size() > max_record) return Errc::kTooLarge;
  std::uint64_t position = 0;
  Errc e = claim(p, frame, &position);
  if (e != Errc::kOk) return e;
  claim_open = true;
  claim_partition = p;
  claim_position = position;
  claim_header = reinterpret_cast<format::RecordHeader*>(word(p, position));
  claim_frame = frame;
  claim_key = 0;
  if (!value.empty()) std::memcpy(claim_header + 1, value.data(), value.size());
  control = {true, type, txn_id, txn_epoch};
  AppendResult r = commit(timestamps ? now_realtime_ns() : 0);
  control = {};
  return r.error;
}

Status ProducerState::write_markers(format::RecordType type, std::uint16_t txn_epoch, const std::vector<bool>& which) {
  for (std::uint32_t p = 0; p < log->options.partitions; ++p) {
    if (!which.empty() && !which[p]) continue;
    Errc e = append_control(p, type, id, txn_epoch, {});
    if (e != Errc::kOk) {
      return Status(e == Errc::kFenced ? Status::Code::kAborted : Status::Code::kBusy,
                    std::string("writing the transaction's ") + (type == format::RecordType::kTxnCommit ? "commit" : "abort") +
                        " marker to partition " + std::to_string(p) + ": " + errc_name(e));
    }
  }
  return {};
}

Status ProducerState::finish_previous_transaction(const std::map<std::uint16_t, std::string>& prepared,
                                                 const std::map<std::uint16_t, std::string>& participants, bool* acted) {
  auto word_ref = atomic(slot().txn_word);
  std::uint64_t w = word_ref.load(std::memory_order_acquire);
  const std::uint16_t txn_epoch = format::txn_epoch(w);
  if (format::txn_state(w) == format::TxnState::kPrepared) {
    // A participant of a transaction spanning logs: the coordinator decides
    // (undecided means abort now: the instance that was committing is gone).
    auto it = prepared.find(txn_epoch);
    const auto refs = it == prepared.end() ? std::vector<TxnRef>{} : decode_refs(it->second);
    if (refs.empty()) {
      // Its prepare records left the ring, and with them every record of
      // it (they come after them in each partition): nothing to finish.
      word_ref.compare_exchange_strong(w, format::with_txn_state(w, format::TxnState::kDone), std::memory_order_acq_rel);
      return {};
    }
    *acted = true;
    std::map<std::uint64_t, Log> open_logs;
    const auto decision = coordinator_decision(refs[0], /*decide_abort=*/true, open_logs);
    if (decision == format::TxnState::kOpen) {
      return Status(Status::Code::kBusy, "the previous instance's transaction waits for the decision of its coordinator log " +
                                             refs[0].dir + ", which cannot be opened");
    }
    if (decision == format::TxnState::kCommitting || decision == format::TxnState::kAborting) {
      SHMLOG_RETURN_IF_ERROR(write_markers(marker_for(decision), txn_epoch, {}));
    }
    if (decision == format::TxnState::kCommitting) {
      raise_last_sequence(slot(), atomic(slot().txn_sequence_plus_one).load(std::memory_order_acquire));
    }
    word_ref.compare_exchange_strong(w, format::with_txn_state(w, format::TxnState::kDone), std::memory_order_acq_rel);
    return {};
  }
  const auto state = format::txn_state(w);  // never open: decided before the recovery read
  if (state != format::TxnState::kCommitting && state != format::TxnState::kAborting) return {};
  *acted = true;
  // A coordinator finishes its participants first: while it is not done,
  // its decision is what their readers consult.
  if (auto it = participants.find(txn_epoch); it != participants.end()) {
    for (const auto& ref : decode_refs(it->second)) {
      auto other = Log::open(ref.dir);
      if (!other.ok()) return std::move(other).status().with_context("finishing a transaction's participant");
      if (other->id() != ref.log_id) continue;  // another log now lives there: nothing of ours
      SHMLOG_RETURN_IF_ERROR(finish_part(*other, ref.slot, ref.epoch, state));
    }
  }
  // Which partitions it touched is not known: every partition gets a marker
  // (one where the transaction wrote nothing is ignored by readers).
  SHMLOG_RETURN_IF_ERROR(write_markers(marker_for(state), txn_epoch, {}));
  word_ref.compare_exchange_strong(w, format::with_txn_state(w, format::TxnState::kDone), std::memory_order_acq_rel);
  return {};
}

namespace {

// A token slot's two pairs, (hash, seq) and (position, published_seq), are
// each compared and replaced together (word_pair.h).

// kReused: its ring slot is being taken for a later lap (the fate is
// noted before the slot is zeroed).
enum class Holder : std::uint8_t { kKept, kGone, kPending, kReused };

// What became of the claim that took a token (`seq`, in `slot`): kept
// (committed), gone (aborted or abandoned: the token is free), pending.
Holder holder_state(const LogState& s, std::uint64_t encoded, const format::TokenSlot& slot,
                    std::uint64_t seq) noexcept {
  const auto p = static_cast<std::uint32_t>((encoded >> 48) - 1);
  const std::uint64_t position = (encoded & ((1ull << 48) - 1)) << 5;
  if (p >= s.options.partitions) return Holder::kKept;
  const std::uint64_t segment = position >> s.segment_shift;
  const std::uint64_t w = atomic(s.descriptor(p, segment).state_word).load(std::memory_order_acquire);
  const std::uint64_t held = format::segment_index(w);
  if (held != segment) {
    // The ring moved on: whoever took the slot for a later lap noted the
    // fate first (resolve_tokens); still taking it: wait. Not noted: a
    // record restored after a host crash (those are all kept).
    if (held == segment + s.ring_segments && format::segment_state(w) != format::SegmentState::kReady) {
      return Holder::kReused;
    }
    const std::uint64_t resolved = atomic(const_cast<std::uint64_t&>(slot.resolved_seq)).load(std::memory_order_acquire);
    if ((resolved & ~format::kTokenKept) == seq) return (resolved & format::kTokenKept) != 0 ? Holder::kKept : Holder::kGone;
    return Holder::kKept;
  }
  const std::uint64_t v = atomic(*word_at(s, p, position)).load(std::memory_order_acquire);
  const std::int32_t length = format::word_length(v);
  if (length <= 0) return Holder::kPending;
  return format::word_type(v) == format::RecordType::kData ? Holder::kKept : Holder::kGone;
}

}  // namespace

Errc ProducerState::take_token(Bytes token, std::uint32_t p, std::uint64_t position) noexcept {
  const LogState& s = *log;
  const auto& h = *s.header;
  const std::uint64_t hash = token_hash(token);
  const std::uint64_t seq = atomic(const_cast<std::uint64_t&>(h.token_seq)).fetch_add(1, std::memory_order_relaxed) + 1;
  const std::uint64_t now = now_realtime_ns();
  const std::uint64_t window_ns = std::uint64_t{h.token_window_ms} * 1000000;
  const std::uint64_t mine = format::encode_token_position(p, position);
  format::TokenSlot* table = s.tokens();
  const std::uint64_t mask = s.geometry.token_slots - 1;
  const std::uint64_t probes = std::min<std::uint64_t>(64, mask + 1);
  const auto started = std::chrono::steady_clock::now();
  // Whether a slot's token is still in the window (a pending one is).
  auto fresh = [&](format::TokenSlot& slot, std::uint64_t slot_seq) {
    if (static_cast<std::int64_t>(seq - slot_seq) >= static_cast<std::int64_t>(h.token_window)) return false;
    if (window_ns == 0 || atomic(slot.published_seq).load(std::memory_order_acquire) != slot_seq) return true;
    return now - atomic(slot.time_ns).load(std::memory_order_relaxed) < window_ns;
  };
  // Takes `slot` from (slot_hash, slot_seq), then publishes our claim from
  // the position pair seen before: kOk, or false when either CAS lost.
  auto take = [&](format::TokenSlot& slot, std::uint64_t slot_hash, std::uint64_t slot_seq) {
    std::uint64_t old_position = 0, old_published = 0;
    load_pair(&slot.position, old_position, old_published);
    if (!cas_pair(&slot.hash, slot_hash, slot_seq, hash, seq)) return false;
    atomic(slot.time_ns).store(now, std::memory_order_relaxed);
    return cas_pair(&slot.position, old_position, old_published, mine, seq);
  };
  for (;;) {
    // Our token's slot on the probe path, or else the first slot to reuse.
    format::TokenSlot* own = nullptr;
    format::TokenSlot* reusable = nullptr;
    std::uint64_t own_seq = 0, reuse_hash = 0, reuse_seq = 0;
    for (std::uint64_t i = 0; i < probes && own == nullptr; ++i) {
      format::TokenSlot& slot = table[(hash + i) & mask];
      std::uint64_t slot_hash = 0, slot_seq = 0;
      load_pair(&slot.hash, slot_hash, slot_seq);
      if (slot_hash == hash) {
        own = &slot;
        own_seq = slot_seq;
      } else if (reusable == nullptr && (slot_hash == 0 || !fresh(slot, slot_seq))) {
        reusable = &slot;
        reuse_hash = slot_hash;
        reuse_seq = slot_seq;
      }
      if (slot_hash == 0) break;  // tokens never sit past an empty slot
    }
    if (own == nullptr) {
      if (reusable == nullptr) return Errc::kBadState;  // 64 slots in the window: cannot happen at half load
      if (take(*reusable, reuse_hash, reuse_seq)) return Errc::kOk;
      continue;  // lost a race: look again (perhaps at the same token)
    }
    if (fresh(*own, own_seq)) {
      std::uint64_t held = 0, published = 0;
      load_pair(&own->position, held, published);
      const Holder state = published != own_seq ? Holder::kPending : holder_state(s, held, *own, own_seq);
      if (state == Holder::kKept) return Errc::kDuplicate;
      if (state == Holder::kReused) {
        // Wait for the slot's taker to note the fate (take a dead one's over).
        const auto partition = static_cast<std::uint32_t>((held >> 48) - 1);
        const std::uint64_t segment = ((held & ((1ull << 48) - 1)) << 5 >> s.segment_shift) + s.ring_segments;
        if (std::chrono::steady_clock::now() - started < s.claim_timeout || !prepare_unprepared(s, partition, segment)) {
          shm::yield_now();
        }
        continue;
      }
      if (state == Holder::kPending) {
        // The holder is between taking the token and committing: wait for
        // it; past the claim timeout its claim is resolved (or, never
        // published, its slot taken over: its publish then fails).
        const auto waited = std::chrono::steady_clock::now() - started;
        if (waited < s.claim_timeout) {
          shm::yield_now();
          continue;
        }
        if (published == own_seq) {
          const auto partition = static_cast<std::uint32_t>((held >> 48) - 1);
          if (partition < s.options.partitions && unblock(s, partition, (held & ((1ull << 48) - 1)) << 5, waited)) {
            continue;  // resolved: look at its fate again
          }
          shm::yield_now();
          continue;
        }
      }
    }
    // Ours to take: out of the window, its record never kept, or never published.
    if (take(*own, hash, own_seq)) return Errc::kOk;
  }
}

void ProducerState::close() noexcept {
  if (!log) return;
  abort();
  const LogState& s = *log;
  // A slot we took for zeroing must not stay "being prepared" by a live process.
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) finish_zeroing_ahead(p);
  {
    AdminLock lock(s);  // released before log.reset(), which may unmap the log
    // Fenced: the newer instance owns the slot and our writer counts now.
    if (!fenced()) {
      leave_writers(s, s.options.partitions, exclusive);
      atomic(slot().state).store(static_cast<std::uint32_t>(format::SlotState::kFree), std::memory_order_release);
    }
  }
  log.reset();
}

}  // namespace detail

// ----------------------------------------------------------------------------

using detail::ProducerState;

namespace {

bool slot_named(const format::ProducerSlot& slot, const std::string& name) {
  return (slot.flags & format::kProducerIdempotent) != 0 && strnlen(slot.name, sizeof slot.name) == name.size() &&
         std::memcmp(slot.name, name.data(), name.size()) == 0;
}

// The slot for a new producer, under the admin lock: a named producer's own
// slot if it has one (`*takeover` when an instance of it still runs), else
// a free slot, preferring those no named producer left its state in.
std::optional<std::uint32_t> choose_slot(const detail::LogState& s, const ProducerOptions& options, bool* takeover) {
  const auto free_state = static_cast<std::uint32_t>(format::SlotState::kFree);
  const auto active = static_cast<std::uint32_t>(format::SlotState::kActive);
  *takeover = false;
  if (!options.producer_id.empty()) {
    for (std::uint32_t id = 0; id < s.options.max_producers; ++id) {
      const auto& slot = s.producer_slot(id);
      if (!slot_named(slot, options.producer_id)) continue;
      const std::uint32_t state = format::atomic(const_cast<std::uint32_t&>(slot.state)).load(std::memory_order_acquire);
      if (state == free_state) return id;
      if (state == active) {
        *takeover = true;
        return id;
      }
      return std::nullopt;  // being reaped: try again after the sweep
    }
  }
  std::optional<std::uint32_t> retired;
  for (std::uint32_t id = 0; id < s.options.max_producers; ++id) {
    const auto& slot = s.producer_slot(id);
    if (format::atomic(const_cast<std::uint32_t&>(slot.state)).load(std::memory_order_acquire) != free_state) continue;
    if ((slot.flags & format::kProducerIdempotent) == 0) return id;
    if (!retired) retired = id;
  }
  return retired;  // forgets that named producer's last sequence: only when nothing else is free
}

// What a named producer's restart learns from the ring.
struct Recovered {
  std::uint64_t last_sequence_plus_one = 0;  // 0: none
  std::string committed_offsets;             // of the last committed transaction that had any
  // Transactions spanning logs, by epoch: the coordinator a participant
  // named (kTxnPrepare), the participants a coordinator listed.
  std::map<std::uint16_t, std::string> prepared, participants;
};

// Counts the pending claim of named producer `id`'s previous instance (see
// ProducerSlot::pending_position_plus_one): waits until the claim is
// published or abandoned (a dead owner's after the claim timeout) and
// counts it if published. If its ring slot was taken for the next lap
// meanwhile, the taker counts it (before zeroing: this waits for that).
// Called after the new fence is stored: an older instance that registers a
// claim later finds itself fenced at its commit.
Status count_pending_claim(const detail::LogState& s, std::uint32_t id) {
  auto& slot = s.producer_slot(id);
  const std::uint64_t at = format::atomic(slot.pending_position_plus_one).load(std::memory_order_seq_cst);
  if (at == 0) return {};
  const std::uint32_t p = format::atomic(slot.pending_partition).load(std::memory_order_relaxed);
  const std::uint64_t position = at - 1;
  if (p >= s.options.partitions || !format::plausible_position(position)) {
    return Status(Status::Code::kCorrupt, "shared memory " + s.memory_path + ": producer id '" + std::string(slot.name) +
                                              "' names a claim at partition " + std::to_string(p) + ", offset " +
                                              std::to_string(position) + " that cannot be right (damaged or foreign)");
  }
  const std::uint64_t segment = position >> s.segment_shift;
  auto state = format::atomic(s.descriptor(p, segment).state_word);
  const auto since = std::chrono::steady_clock::now();
  const auto deadline = since + s.claim_timeout + std::chrono::seconds(5);
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now > deadline) {
      return Status(Status::Code::kTimeout, "recovering the state of producer id '" + std::string(slot.name) +
                                                "': its previous instance's claim at partition " + std::to_string(p) +
                                                ", offset " + std::to_string(position) + " stayed unresolved");
    }
    const std::uint64_t w = state.load(std::memory_order_acquire);
    const std::uint64_t held = format::segment_index(w);
    const bool ready = format::segment_state(w) == format::SegmentState::kReady;
    if (held == segment + s.ring_segments && !ready) {
      // Taken for the next lap: its preparer counts the claim before it
      // zeroes the slot. Wait for that (a dead preparer's is taken over
      // here, which counts again).
      if (!detail::prepare_unprepared(s, p, held)) shm::sleep_for(std::chrono::microseconds(100));
      continue;
    }
    // Reused and counted, or never prepared (nothing was published).
    if (held != segment || !ready) return {};
    const record::Decoded d = s.ring_record_at(p, position).d;
    const std::uint64_t plus_one = detail::plain_sequence_plus_one(s, slot, id, p, position, d);
    if (state.load(std::memory_order_acquire) != w) continue;  // what was read may be the next lap's
    if (d.kind == record::Kind::kData || d.kind == record::Kind::kSkip || d.kind == record::Kind::kCorrupt) {
      detail::raise_last_sequence(slot, plus_one);
      return {};
    }
    if (!detail::unblock(s, p, position, now - since)) shm::sleep_for(std::chrono::microseconds(100));
  }
}

// The offsets buffer holding named producer `id`'s last committed
// transaction offsets, or nullptr: the one the slot names, or the other
// when it was written for the transaction `w` says was decided "commit"
// (its producer died before naming it: named now).
const format::OffsetsBuffer* kept_offsets(const detail::LogState& s, std::uint32_t id, std::uint64_t w) noexcept {
  format::OffsetsBuffer* buffers = s.offsets_buffers(id);
  if (buffers == nullptr) return nullptr;
  auto named = format::atomic(s.producer_slot(id).committed_offsets_buffer);
  const std::uint32_t current = named.load(std::memory_order_acquire);
  const std::uint32_t other = format::unnamed_offsets_buffer(current);
  if (format::txn_state(w) == format::TxnState::kCommitting && buffers[other].epoch == format::txn_epoch(w) &&
      buffers[other].length != 0) {
    named.store(other + 1, std::memory_order_release);
    return &buffers[other];
  }
  if (current == 0 || current > 2) return nullptr;
  return &buffers[current - 1];
}

// What a named producer's restart learns: the last sequence that reached
// the log (the slot's, with the previous instance's pending claim and a
// transaction decided "commit" counted), and for an identity that used
// transactions what the ring's records of its older epochs say: the last
// committed offsets and the transactions spanning logs. The ring's records
// are read up to each tail as it was after the new fence was stored, so
// every claim of an older instance in them is published or resolved first.
Result<Recovered> recover(const Log& log, const detail::LogState& s, std::uint32_t id, std::uint16_t epoch,
                          bool transactional) {
  auto& slot = s.producer_slot(id);
  // A full barrier between the fence's store and the reads below (a seq_cst
  // read-modify-write: the same locked instruction as a fence on x86, and
  // visible to ThreadSanitizer, which does not model fences).
  (void)format::atomic(slot.txn_word).fetch_add(0, std::memory_order_seq_cst);
  SHMLOG_RETURN_IF_ERROR(count_pending_claim(s, id));
  // A transaction decided "commit" whose instance died before counting it:
  // the slot has its last sequence from before the decision.
  const std::uint64_t w = format::atomic(slot.txn_word).load(std::memory_order_acquire);
  const bool committing = format::txn_state(w) == format::TxnState::kCommitting;
  if (committing) detail::raise_last_sequence(slot, format::atomic(slot.txn_sequence_plus_one).load(std::memory_order_acquire));
  Recovered r;
  r.last_sequence_plus_one = format::atomic(slot.last_sequence_plus_one).load(std::memory_order_acquire);
  if (!transactional && format::txn_state(w) == format::TxnState::kNone) return r;
  const format::OffsetsBuffer* kept = kept_offsets(s, id, w);
  std::vector<std::uint64_t> end(s.options.partitions);
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) end[p] = s.tail(p);
  const std::uint16_t first = format::atomic(slot.first_epoch).load(std::memory_order_relaxed);
  ConsumerOptions co;
  co.from = StartFrom::earliest();
  co.wait = WaitStrategy::yield();
  auto reader = log.consumer(co);
  if (!reader.ok()) return std::move(reader).status();
  // The ring's records, not a durable log's whole history on disk.
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
    if (s.retained_start(p) < s.earliest(p)) SHMLOG_RETURN_IF_ERROR(reader->seek(p, s.earliest(p)));
  }
  detail::deliver_control_records(*reader);
  struct Txn {
    bool committed = false;
    std::string offsets;
  };
  std::map<std::uint16_t, Txn> txns;  // by epoch - first (wrap-safe order)
  auto reached_end = [&] {
    for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
      if (reader->position(p).value_or(end[p]) < end[p]) return false;
    }
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + s.claim_timeout + std::chrono::seconds(5);
  while (!reached_end()) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::string where;
      for (std::uint32_t p = 0; p < s.options.partitions && where.empty(); ++p) {
        const std::uint64_t at = reader->position(p).value_or(end[p]);
        if (at >= end[p]) continue;
        const std::uint64_t segment = at >> s.segment_shift;
        const std::uint64_t sw = format::atomic(s.descriptor(p, segment).state_word).load(std::memory_order_acquire);
        where = " (partition " + std::to_string(p) + " at offset " + std::to_string(at) + " of " + std::to_string(end[p]) +
                "; its ring slot holds segment " + std::to_string(format::segment_index(sw)) +
                (format::segment_state(sw) == format::SegmentState::kReady ? ", ready" : ", being prepared") + ")";
      }
      return Status(Status::Code::kTimeout, "recovering the state of producer id '" + std::string(slot.name) +
                                                "': the log stayed unreadable below its tail" + where);
    }
    reader->poll_wait(
        [&](const Record& rec) {
          // Records of this identity: its epochs from the first up to ours.
          const auto age = static_cast<std::uint16_t>(rec.producer_epoch - first);
          if (rec.producer_id != id || age >= static_cast<std::uint16_t>(epoch - first)) return;
          switch (static_cast<format::RecordType>(rec.type)) {
            case format::RecordType::kTxnCommit: txns[age].committed = true; break;
            case format::RecordType::kTxnOffsets: txns[age].offsets = std::string(as_string(rec.value)); break;
            case format::RecordType::kTxnPrepare: r.prepared[rec.producer_epoch] = std::string(as_string(rec.value)); break;
            case format::RecordType::kTxnParticipants:
              r.participants[rec.producer_epoch] = std::string(as_string(rec.value));
              break;
            default: break;
          }
        },
        4096, std::chrono::milliseconds(10));
  }
  if (committing) txns[static_cast<std::uint16_t>(format::txn_epoch(w) - first)].committed = true;
  // The newest committed transaction with offsets: the slot's (unless they
  // did not fit there), or a newer one in the ring (the slot's memory was
  // made anew from the files, its buffer from a checkpoint up to 100 ms old).
  const auto window = static_cast<std::uint16_t>(epoch - first);
  const std::uint16_t kept_age = kept != nullptr ? static_cast<std::uint16_t>(kept->epoch - first) : 0;
  const bool kept_in_window = kept != nullptr && kept_age < window;
  // (A length past the buffer is kOffsetsTooLarge, or damage: not read either way.)
  const bool kept_usable = kept != nullptr && kept->length <= sizeof kept->bytes;
  for (const auto& [age, t] : txns) {
    if (!t.committed || t.offsets.empty()) continue;
    if (kept_in_window && (age < kept_age || (age == kept_age && kept_usable))) continue;
    r.committed_offsets = t.offsets;  // the map is in epoch order
  }
  if (r.committed_offsets.empty() && kept_usable) {
    r.committed_offsets.assign(reinterpret_cast<const char*>(kept->bytes), kept->length);
  }
  return r;
}

}  // namespace

Result<Producer> Log::producer(const ProducerOptions& options) const {
  const detail::LogState& s = *state_;
  if (s.read_only) return Status(Status::Code::kPermissionDenied, s.path + " is attached read-only");
  if (options.partition >= s.options.partitions) {
    return Status(Status::Code::kInvalidArgument, "partition " + std::to_string(options.partition) +
                                                      " out of range: the log has " +
                                                      std::to_string(s.options.partitions));
  }
  if (options.name.size() >= format::kNameCapacity) {
    return Status(Status::Code::kInvalidArgument, "producer name longer than 63 bytes");
  }
  const bool named = !options.producer_id.empty();
  if (named && options.producer_id.size() >= format::kNameCapacity) {
    return Status(Status::Code::kInvalidArgument, "producer id longer than 63 bytes");
  }
  if (options.transactional && !named) {
    return Status(Status::Code::kInvalidArgument, "a transactional producer needs a producer id");
  }
  if (named && options.exclusive) {
    return Status(Status::Code::kInvalidArgument,
                  "a producer with a producer id cannot be exclusive: fencing an older instance revokes its "
                  "claims, which needs shared claims");
  }
  if (options.core >= 0) SHMLOG_RETURN_IF_ERROR(pin_current_thread(static_cast<unsigned>(options.core)));
  // A named producer's previous instance may be dead: reap it first, so
  // that its writer counts go and only a live instance is taken over.
  if (named) detail::sweep(s);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (attempt == 1) detail::sweep(s);  // reap ids of dead processes, then retry
    std::uint32_t id = 0;
    bool takeover = false;
    std::unique_ptr<ProducerState> st;
    {
      detail::AdminLock lock(s);
      auto chosen = choose_slot(s, options, &takeover);
      if (!chosen) continue;
      id = *chosen;
      // Join every partition as exclusive or shared writer; undo on conflict.
      // Taking over a running instance inherits its writer counts.
      std::uint32_t p = takeover ? s.options.partitions : 0;
      std::uint32_t conflict = 0;
      for (; p < s.options.partitions; ++p) {
        auto writers = format::atomic(s.partition(p).writers);
        std::uint32_t current = writers.load(std::memory_order_acquire);
        if (options.exclusive) {
          if (current != 0 || !writers.compare_exchange_strong(current, format::kExclusiveWriter | id,
                                                               std::memory_order_acq_rel)) {
            conflict = current;
            break;
          }
        } else {
          bool joined = false;
          while (!(current & format::kExclusiveWriter)) {
            if (writers.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel)) {
              joined = true;
              break;
            }
          }
          if (!joined) {
            conflict = current;
            break;
          }
        }
      }
      if (p < s.options.partitions) {
        detail::leave_writers(s, p, options.exclusive);
        std::string who = (conflict & format::kExclusiveWriter)
                              ? "exclusive producer " + std::to_string(conflict & 0xffff)
                              : std::to_string(conflict) + " other producer(s)";
        return Status(Status::Code::kBusy, "partition " + std::to_string(p) + " of " + s.path + " has " + who +
                                               (options.exclusive ? "; an exclusive producer must be alone"
                                                                  : "; it cannot take a shared producer"));
      }
      st = std::make_unique<ProducerState>();
      auto& slot = s.producer_slot(id);
      const shm::ProcessId self = shm::self();
      const bool same_identity = named && slot_named(slot, options.producer_id);
      slot.flags = (options.exclusive ? format::kProducerExclusive : 0) | (named ? format::kProducerIdempotent : 0);
      detail::store_owner(slot, self);
      slot.opened_ns = detail::now_realtime_ns();
      // A new epoch names this instance's records, and a new fence stops
      // any older instance of a named producer: its next commit, and its
      // next transaction decision (a CAS of the word), sees it and
      // publishes nothing. The word keeps the previous transaction and its
      // state, which the recovery below finishes.
      const auto epoch = static_cast<std::uint16_t>(format::atomic(slot.epoch).fetch_add(1, std::memory_order_seq_cst) + 1);
      const std::uint32_t fence =
          format::txn_fence(format::atomic(slot.txn_word).fetch_add(std::uint64_t{1} << 32, std::memory_order_seq_cst)) + 1;
      if (!same_identity) {
        format::atomic(slot.last_sequence_plus_one).store(0, std::memory_order_relaxed);
        format::atomic(slot.first_epoch).store(epoch, std::memory_order_relaxed);
        format::atomic(slot.pending_position_plus_one).store(0, std::memory_order_relaxed);
        format::atomic(slot.committed_offsets_buffer).store(0, std::memory_order_relaxed);
      } else {
        detail::keep_epoch_window(slot, epoch);
      }
      slot.appends_total = 0;
      slot.bytes_total = 0;
      slot.revoked_total = 0;
      slot.backpressure_waits_total = 0;
      slot.backpressure_wait_ns_total = 0;
      slot.wakeups_total = 0;
      const std::string& label = named ? options.producer_id : options.name;
      std::memset(slot.name, 0, sizeof slot.name);
      std::memcpy(slot.name, label.data(), label.size());
      format::atomic(slot.state).store(static_cast<std::uint32_t>(format::SlotState::kActive),
                                       std::memory_order_release);
      if (named) {
        auto end = format::atomic(s.header->named_slots_end);
        if (end.load(std::memory_order_relaxed) <= id) end.store(id + 1, std::memory_order_release);
      }
      st->log = state_;
      st->id = static_cast<std::uint16_t>(id);
      st->epoch = epoch;
      st->fence = fence;
      st->exclusive = options.exclusive;
      st->idempotent = named;
      st->transactional = options.transactional;
      st->txn_timeout = options.transaction_timeout;
      st->timestamps = options.timestamps;
      st->checksums = s.options.checksums;
      st->default_partition = options.partition;
      st->backpressure_timeout = options.backpressure_timeout;
      st->acks_durable = options.acks == ProducerOptions::Acks::kDurable;
      st->durable_timeout = options.durable_timeout;
      st->wait = options.wait;
      st->slot_ = &slot;
      st->max_record = s.options.max_record_size;
      st->cursors.resize(s.options.partitions);
      for (std::uint32_t q = 0; q < s.options.partitions; ++q) {
        st->cursors[q].tail = s.tail(q);
        st->cursors[q].tail_position = &s.partition(q).tail_position;
      }
    }
    // An exclusive producer writes at its own copy of the tail from here on:
    // one damaged in memory is refused, not written at.
    for (std::uint32_t q = 0; q < s.options.partitions; ++q) {
      auto tail = detail::checked_position(s, q, "tail position", st->cursors[q].tail);
      if (!tail.ok()) return std::move(tail).status();
    }
    if (named) {
      // An older instance's open transaction can only end aborted now (it
      // is fenced): decide so first, so that read_committed readers pass
      // its records by the decision; on a backpressure ring they hold the
      // room the recovery read below may need. (A waiting reader may
      // decide the same at once.)
      const std::uint64_t w = format::atomic(s.producer_slot(id).txn_word).load(std::memory_order_acquire);
      if (format::txn_state(w) == format::TxnState::kOpen) (void)detail::decide_abort(s.producer_slot(id), w);
      auto recovered = recover(*this, s, id, st->epoch, options.transactional);
      if (!recovered.ok()) return std::move(recovered).status();
      st->last_sequence_plus_one = recovered->last_sequence_plus_one;
      st->next_sequence = recovered->last_sequence_plus_one;
      st->committed_offsets = std::move(recovered->committed_offsets);
      // A transaction an older instance left behind: finish it as decided
      // (open means abort), in every partition, before this one writes.
      bool acted = false;
      Status finished = st->finish_previous_transaction(recovered->prepared, recovered->participants, &acted);
      if (!finished.ok()) return std::move(finished).with_context("completing the previous instance's transaction");
      if (acted) {
        // It may have committed (decided so, or by its coordinator): read
        // again, now with its markers, for the sequences and offsets.
        recovered = recover(*this, s, id, st->epoch, options.transactional);
        if (!recovered.ok()) return std::move(recovered).status();
        st->last_sequence_plus_one = recovered->last_sequence_plus_one;
        st->next_sequence = recovered->last_sequence_plus_one;
        st->committed_offsets = std::move(recovered->committed_offsets);
      }
    }
    return Producer(std::move(st));
  }
  return Status(Status::Code::kBusy, "all " + std::to_string(s.options.max_producers) +
                                         " producer ids of " + s.path + " are in use (see --max-producers)");
}

Producer::Producer(std::unique_ptr<ProducerState> state) : state_(std::move(state)) {}
Producer::Producer(Producer&&) noexcept = default;
Producer& Producer::operator=(Producer&&) noexcept = default;
Producer::~Producer() = default;

std::uint16_t Producer::id() const noexcept { return state_->id; }
std::uint16_t Producer::epoch() const noexcept { return state_->epoch; }
void Producer::set_next_sequence(std::uint64_t sequence) noexcept { state_->next_sequence = sequence; }
std::uint64_t Producer::next_sequence() const noexcept { return state_->next_sequence; }
std::optional<std::uint64_t> Producer::last_sequence() const noexcept {
  if (!state_ || !state_->idempotent || state_->last_sequence_plus_one == 0) return std::nullopt;
  return state_->last_sequence_plus_one - 1;
}

// ---- transactions ------------------------------------------------------------

namespace {

Status not_transactional() {
  return Status(Status::Code::kInvalidArgument,
                "not a transactional producer (open it with a producer id and transactional = true)");
}

}  // namespace

Status Producer::begin_transaction() {
  ProducerState* st = state_.get();
  if (st == nullptr || !st->log) return Status(Status::Code::kInvalidArgument, "producer is closed");
  if (!st->transactional) return not_transactional();
  if (st->txn_open) return Status(Status::Code::kInvalidArgument, "a transaction is already open");
  auto& slot = st->slot();
  auto fenced = [] { return Status(Status::Code::kAborted, std::string("fenced: ") + errc_name(Errc::kFenced)); };
  auto word = format::atomic(slot.txn_word);
  std::uint64_t w = word.load(std::memory_order_acquire);
  if (format::txn_fence(w) != st->fence) return fenced();
  // Each transaction gets its own epoch, so (id, epoch) names it in the
  // records. The word opens it with this instance's fence, by CAS: a
  // fenced instance cannot open one under the newer instance (its epoch
  // taken meanwhile is only a number skipped).
  const auto epoch = static_cast<std::uint16_t>(format::atomic(slot.epoch).fetch_add(1, std::memory_order_seq_cst) + 1);
  format::atomic(slot.txn_timeout_ms)
      .store(static_cast<std::uint32_t>(std::min<std::int64_t>(st->txn_timeout.count(), UINT32_MAX)),
             std::memory_order_relaxed);
  format::atomic(slot.txn_changed_ns).store(detail::now_realtime_ns(), std::memory_order_relaxed);
  while (!word.compare_exchange_weak(w, format::make_txn_word(st->fence, epoch, format::TxnState::kOpen),
                                     std::memory_order_seq_cst)) {
    if (format::txn_fence(w) != st->fence) return fenced();
  }
  st->epoch = epoch;
  detail::keep_epoch_window(slot, epoch);
  st->txn_open = true;
  st->touched.assign(st->log->options.partitions, false);
  st->txn_offsets.clear();
  st->txn_max_sequence_plus_one = 0;
  return {};
}

void Producer::add_offsets(const std::string& group, std::uint32_t partition, std::uint64_t offset) {
  if (state_ && state_->txn_open) state_->txn_offsets[{group, partition}] = offset;
}

bool Producer::in_transaction() const noexcept { return state_ && state_->txn_open; }

Status Producer::commit_transaction() {
  ProducerState* st = state_.get();
  if (st == nullptr || !st->log) return Status(Status::Code::kInvalidArgument, "producer is closed");
  if (!st->transactional) return not_transactional();
  if (!st->txn_open) return Status(Status::Code::kInvalidArgument, "no transaction is open");
  Status decided = decide_commit();
  if (!decided.ok()) {
    if (st->txn_open) {  // aborted by a reader: write the markers it did not
      Status finished = finish_abort();
      if (!finished.ok()) return Status(decided.code(), decided.message() + "; " + finished.message());
    }
    return decided;
  }
  return finish_commit();
}

// The offsets record, then the decision: one CAS from open to committing
// (a retry after an error finds it committing already). A reader that found
// the transaction too old may have decided "abort" first: then the abort is
// finished here and reported.
Status Producer::decide_commit() {
  ProducerState* st = state_.get();
  auto word = format::atomic(st->slot().txn_word);
  std::uint64_t w = word.load(std::memory_order_acquire);
  if (w == st->txn(format::TxnState::kOpen)) {
    std::string value;
    if (!st->txn_offsets.empty()) {
      value = detail::encode_offsets(st->txn_offsets);
      Errc e = st->append_control(0, format::RecordType::kTxnOffsets, st->id, st->epoch, as_bytes(value));
      if (e != Errc::kOk) return Status(Status::Code::kBusy, std::string("writing the transaction's offsets: ") + errc_name(e));
      st->touched[0] = true;
    }
    // The offsets also go to the slot's buffer it does not name: the
    // record may leave the ring before a restart reads it.
    auto named = format::atomic(st->slot().committed_offsets_buffer);
    const std::uint32_t next = format::unnamed_offsets_buffer(named.load(std::memory_order_relaxed));
    if (format::OffsetsBuffer* buffers = st->log->offsets_buffers(st->id)) {
      format::OffsetsBuffer& b = buffers[next];
      b.epoch = st->epoch;
      b.length = value.size() <= sizeof b.bytes ? static_cast<std::uint32_t>(value.size()) : format::kOffsetsTooLarge;
      if (b.length != format::kOffsetsTooLarge) std::memcpy(b.bytes, value.data(), value.size());
    }
    format::atomic(st->slot().txn_sequence_plus_one).store(st->txn_max_sequence_plus_one, std::memory_order_relaxed);
    if (word.compare_exchange_strong(w, st->txn(format::TxnState::kCommitting),
                                     std::memory_order_acq_rel)) {
      if (detail::g_die_in_commit == 1) shm::kill_self();
      if (!value.empty() && st->log->offsets_buffers(st->id) != nullptr) named.store(next + 1, std::memory_order_release);
      format::atomic(st->slot().txn_changed_ns).store(detail::now_realtime_ns(), std::memory_order_relaxed);
      // Its sequences count from the decision on (a reader may deliver the
      // records now): a restart that finds the slot past them needs no
      // record of them in the ring, which other producers may be reusing
      // while it reads.
      st->count_transaction_sequences();
      return {};
    }
  }
  if (w == st->txn(format::TxnState::kCommitting)) return {};
  if (w == st->txn(format::TxnState::kAborting)) {
    // Decided "abort" by a reader; the caller finishes it (txn_open stays set).
    return Status(Status::Code::kAborted, "the transaction was aborted by a reader: it outlived its timeout (" +
                                              std::to_string(st->txn_timeout.count()) +
                                              " ms), or the ring filled up behind it while it was open");
  }
  st->txn_open = false;  // a newer instance took over and finishes it
  return Status(Status::Code::kAborted, std::string("the transaction was aborted: ") + errc_name(Errc::kFenced));
}

// Decided: the markers follow, then done.
Status Producer::finish_commit() {
  ProducerState* st = state_.get();
  SHMLOG_RETURN_IF_ERROR(st->write_markers(format::RecordType::kTxnCommit, st->epoch, st->touched));
  if (detail::g_die_in_commit == 2) shm::kill_self();
  st->txn_open = false;
  st->count_transaction_sequences();  // a participant of a commit across logs: not counted at a decision
  if (!st->txn_offsets.empty()) st->committed_offsets = detail::encode_offsets(st->txn_offsets);
  st->mark_done();
  return {};
}

namespace {
int g_die_in_multi_log_commit = 0;  // tests: 1 after the prepares, 2 after the decision
}  // namespace

Status Producer::commit_transactions(std::span<Producer* const> producers) {
  if (producers.empty()) return Status(Status::Code::kInvalidArgument, "no producers");
  for (Producer* p : producers) {
    if (p == nullptr || !p->state_ || !p->state_->log) return Status(Status::Code::kInvalidArgument, "producer is closed");
    if (!p->state_->transactional) return not_transactional();
    if (!p->state_->txn_open) return Status(Status::Code::kInvalidArgument, "no transaction is open in " + p->state_->log->path);
  }
  if (producers.size() == 1) return producers[0]->commit_transaction();
  ProducerState* c = producers[0]->state_.get();
  auto finish = [&]() -> Status {
    // Participants first: the coordinator's decision stays readable until
    // every participant has its markers.
    for (std::size_t i = 1; i < producers.size(); ++i) {
      if (producers[i]->state_->txn_open) SHMLOG_RETURN_IF_ERROR(producers[i]->finish_commit());
    }
    return producers[0]->finish_commit();
  };
  if (format::atomic(c->slot().txn_word).load(std::memory_order_acquire) ==
      c->txn(format::TxnState::kCommitting)) {
    return finish();  // a retry after an error while finishing
  }
  auto ref_of = [](const ProducerState& st) {
    return detail::TxnRef{st.log->header->log_id, st.id, st.epoch, st.log->path};
  };
  auto fail = [&](Status why) {
    Status aborted = abort_transactions(producers);
    return Status(Status::Code::kAborted, why.message() + (aborted.ok() ? "; aborted in every log" : "; " + aborted.message()));
  };
  // 1. The coordinator lists its participants, for whoever finishes after a crash.
  std::vector<detail::TxnRef> participants;
  for (std::size_t i = 1; i < producers.size(); ++i) participants.push_back(ref_of(*producers[i]->state_));
  const std::string listed = detail::encode_refs(participants);
  Errc e = c->append_control(0, format::RecordType::kTxnParticipants, c->id, c->epoch, as_bytes(listed));
  if (e != Errc::kOk) return fail(Status(Status::Code::kBusy, std::string("writing the participants: ") + errc_name(e)));
  c->touched[0] = true;
  // 2. Each participant names the coordinator where its records are, then is prepared.
  const std::string coordinator = detail::encode_refs({ref_of(*c)});
  for (std::size_t i = 1; i < producers.size(); ++i) {
    ProducerState* st = producers[i]->state_.get();
    // A participant that wrote nothing has nothing to hold back: it stays
    // open until the end (a crash leaves it to be aborted, harmlessly).
    if (std::find(st->touched.begin(), st->touched.end(), true) == st->touched.end()) continue;
    for (std::uint32_t p = 0; p < st->log->options.partitions; ++p) {
      if (!st->touched[p]) continue;
      e = st->append_control(p, format::RecordType::kTxnPrepare, st->id, st->epoch, as_bytes(coordinator));
      if (e != Errc::kOk) return fail(Status(Status::Code::kBusy, std::string("preparing ") + st->log->path + ": " + errc_name(e)));
    }
    format::atomic(st->slot().txn_sequence_plus_one).store(st->txn_max_sequence_plus_one, std::memory_order_relaxed);
    std::uint64_t open = st->txn(format::TxnState::kOpen);
    if (!format::atomic(st->slot().txn_word)
             .compare_exchange_strong(open, st->txn(format::TxnState::kPrepared),
                                      std::memory_order_acq_rel)) {
      return fail(Status(Status::Code::kAborted, "the transaction in " + st->log->path + " was aborted or fenced"));
    }
  }
  if (g_die_in_multi_log_commit == 1) shm::kill_self();
  // 3. The decision, in the coordinator.
  Status decided = producers[0]->decide_commit();
  if (!decided.ok()) {  // a reader decided abort (or the coordinator was fenced)
    (void)abort_participants(producers, 1);
    if (producers[0]->state_->txn_open) (void)producers[0]->finish_abort();
    return decided;
  }
  if (g_die_in_multi_log_commit == 2) shm::kill_self();
  // 4. Markers in the participants, then the coordinator finishes last.
  return finish();
}

Status Producer::abort_participants(std::span<Producer* const> producers, std::size_t from) {
  for (std::size_t i = from; i < producers.size(); ++i) {
    ProducerState* st = producers[i] != nullptr ? producers[i]->state_.get() : nullptr;
    if (st == nullptr || !st->txn_open) continue;
    SHMLOG_RETURN_IF_ERROR(st->write_markers(format::RecordType::kTxnAbort, st->epoch, st->touched));
    st->txn_open = false;
    st->mark_done();
  }
  return {};
}

Status Producer::abort_transactions(std::span<Producer* const> producers) {
  if (producers.empty() || producers[0] == nullptr) return Status(Status::Code::kInvalidArgument, "no producers");
  // The coordinator decides first (a decided commit cannot be aborted); the
  // participants follow, and the coordinator finishes last.
  if (producers[0]->in_transaction()) {
    Status decided = producers[0]->decide_abort();
    if (!decided.ok() && decided.code() != Status::Code::kAborted) return decided;  // committing
  }
  SHMLOG_RETURN_IF_ERROR(abort_participants(producers, 1));
  return producers[0]->in_transaction() ? producers[0]->finish_abort() : Status();
}

Status Producer::abort_transaction() {
  ProducerState* st = state_.get();
  if (st == nullptr || !st->log) return Status(Status::Code::kInvalidArgument, "producer is closed");
  if (!st->transactional) return not_transactional();
  if (!st->txn_open) return Status(Status::Code::kInvalidArgument, "no transaction is open");
  SHMLOG_RETURN_IF_ERROR(decide_abort());
  return finish_abort();
}

// Open -> aborting by CAS (aborting already is fine: a reader decided).
Status Producer::decide_abort() {
  ProducerState* st = state_.get();
  std::uint64_t w = st->txn(format::TxnState::kOpen);
  if (format::atomic(st->slot().txn_word)
          .compare_exchange_strong(w, st->txn(format::TxnState::kAborting),
                                   std::memory_order_acq_rel) ||
      w == st->txn(format::TxnState::kAborting)) {
    return {};
  }
  if (w == st->txn(format::TxnState::kCommitting)) {
    return Status(Status::Code::kInvalidArgument, "the transaction is committing: call commit_transaction again");
  }
  st->txn_open = false;  // fenced: the newer instance finishes it
  return Status(Status::Code::kAborted, std::string("fenced: ") + errc_name(Errc::kFenced));
}

// Decided "abort": the markers (read_committed readers skip its records), then done.
Status Producer::finish_abort() {
  ProducerState* st = state_.get();
  SHMLOG_RETURN_IF_ERROR(st->write_markers(format::RecordType::kTxnAbort, st->epoch, st->touched));
  st->txn_open = false;
  st->mark_done();
  return {};
}

std::vector<std::pair<std::uint32_t, std::uint64_t>> Producer::committed_offsets(const std::string& group) const {
  if (!state_) return {};
  return detail::decode_offsets(state_->committed_offsets, group);
}

namespace detail {
Errc append_control(Producer& producer, std::uint32_t partition, std::uint8_t type, std::uint16_t id,
                    std::uint16_t epoch, Bytes value) noexcept {
  if (!producer.state_ || partition >= producer.state_->log->options.partitions) return Errc::kBadState;
  return producer.state_->append_control(partition, static_cast<format::RecordType>(type), id, epoch, value);
}
}  // namespace detail

std::uint32_t Producer::partition_for(Bytes key) const noexcept {
  return static_cast<std::uint32_t>(format::key_hash(key) % state_->log->options.partitions);
}

Claim Producer::claim_in(std::uint32_t partition, std::size_t value_size, std::size_t key_size) noexcept {
  Claim c;
  ProducerState* st = state_.get();
  if (st == nullptr || !st->log || st->claim_open) return c;  // kBadState
  if (st->idempotent && st->next_sequence < st->last_sequence_plus_one) {
    ++st->next_sequence;  // that record is in the log already
    c.error_ = Errc::kDuplicate;
    return c;
  }
  const detail::LogState& s = *st->log;
  if (partition >= s.options.partitions) {
    c.error_ = Errc::kBadPartition;
    return c;
  }
  if (key_size > 0xffff || value_size > s.options.max_record_size ||
      key_size + value_size > s.options.max_record_size) {
    c.error_ = Errc::kTooLarge;
    return c;
  }
  const auto frame = static_cast<std::uint32_t>(format::kRecordHeaderSize + key_size + value_size);
  std::uint64_t position = 0;
  c.error_ = st->claim(partition, frame, &position);
  if (c.error_ != Errc::kOk) return c;
  st->claim_open = true;
  st->claim_partition = partition;
  st->claim_position = position;
  st->claim_header = reinterpret_cast<format::RecordHeader*>(st->word(partition, position));
  st->claim_frame = frame;
  st->claim_key = static_cast<std::uint16_t>(key_size);
  c.data_ = reinterpret_cast<std::byte*>(st->claim_header) + format::kRecordHeaderSize;
  c.key_size_ = static_cast<std::uint32_t>(key_size);
  c.value_size_ = static_cast<std::uint32_t>(value_size);
  c.partition_ = partition;
  c.offset_ = position;
  return c;
}

Claim Producer::claim(std::size_t value_size, std::size_t key_size) noexcept {
  return claim_in(state_ ? state_->default_partition : 0, value_size, key_size);
}

Errc ProducerState::wait_durable(std::uint32_t p, std::uint64_t end, std::chrono::nanoseconds timeout) noexcept {
  const LogState& s = *log;
  if (!s.durable() || p >= s.options.partitions) return Errc::kNotDurable;
  auto durable = atomic(s.partition(p).durable_position);
  // Pairs with the keeper's release store after its sync completed.
  if (durable.load(std::memory_order_acquire) >= end) return Errc::kOk;
  detail::request_sync(s, p, end);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto waiters = atomic(s.header->durable_waiters);
  auto seq = atomic(s.header->durable_seq);
  // A sync takes 0.1 to 10 ms: the default backoff parks at once, since a
  // waiter that yields competes with the keeper and the sync for a core (on
  // 2 cores a durable append took 1.8x a raw fdatasync yielding, 1.1x
  // parked; bench/durability_bench.cc part 1). Spin and yield never park.
  const bool parks = wait.kind == WaitStrategy::Kind::kBackoff || wait.kind == WaitStrategy::Kind::kBlock;
  Waiter waiter(wait);
  for (;;) {
    if (durable.load(std::memory_order_acquire) >= end) return Errc::kOk;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return atomic(s.partition(p).flush_errno).load(std::memory_order_acquire) == ENOSPC ? Errc::kDiskFull
                                                                                           : Errc::kNotDurable;
    }
    if (!parks && !waiter.idle(0)) continue;
    // Park until the keeper publishes (it wakes us when waiters > 0).
    waiters.fetch_add(1, std::memory_order_seq_cst);
    const std::uint32_t seen = seq.load(std::memory_order_seq_cst);
    if (durable.load(std::memory_order_seq_cst) < end) {
      shm::futex_wait(&s.header->durable_seq, seen,
                      std::min<std::chrono::nanoseconds>(deadline - now, std::chrono::milliseconds(10)));
    }
    waiters.fetch_sub(1, std::memory_order_seq_cst);
  }
}

Errc Producer::wait_durable(std::uint32_t partition, std::uint64_t end, std::chrono::nanoseconds timeout) noexcept {
  if (!state_) return Errc::kBadState;
  return state_->wait_durable(partition, end, timeout);
}

AppendResult Producer::commit(Claim& claim) noexcept {
  ProducerState* st = state_.get();
  if (st == nullptr || !st->claim_open || claim.data_ == nullptr || claim.offset_ != st->claim_position ||
      claim.partition_ != st->claim_partition) {
    return {Errc::kBadState, claim.partition_, claim.offset_};
  }
  claim.data_ = nullptr;
  claim.error_ = Errc::kBadState;
  return st->commit(st->timestamps ? detail::now_realtime_ns() : 0);
}

void Producer::abort(Claim& claim) noexcept {
  ProducerState* st = state_.get();
  if (st == nullptr || !st->claim_open || claim.data_ == nullptr || claim.offset_ != st->claim_position) return;
  claim.data_ = nullptr;
  claim.error_ = Errc::kBadState;
  st->abort();
}

AppendResult Producer::append_to(std::uint32_t partition, Bytes key, Bytes value) noexcept {
  ProducerState* st = state_.get();
  // Fast path of an exclusive producer: the record fits the ready segment.
  if (st != nullptr && st->exclusive && !st->claim_open && partition < st->cursors.size() &&
      key.size() <= 0xffff && key.size() + value.size() <= st->max_record) {
    auto& cursor = st->cursors[partition];
    const auto frame = static_cast<std::uint32_t>(format::kRecordHeaderSize + key.size() + value.size());
    const std::uint64_t pos = cursor.tail;
    if (pos >= cursor.ready_begin && pos + format::align_record(frame) <= cursor.ready_end &&
        (cursor.ahead_segment == UINT64_MAX ? cursor.ahead_zeroed == st->log->segment_size
                                            : pos - cursor.ready_begin < cursor.ahead_zeroed)) {
      auto* header = reinterpret_cast<format::RecordHeader*>(cursor.ready_base + (pos - cursor.ready_begin));
      auto* body = reinterpret_cast<std::byte*>(header + 1);
      if (!key.empty()) std::memcpy(body, key.data(), key.size());
      if (!value.empty()) std::memcpy(body + key.size(), value.data(), value.size());
      st->claim_partition = partition;
      st->claim_position = pos;
      st->claim_header = header;
      st->claim_frame = frame;
      st->claim_key = static_cast<std::uint16_t>(key.size());
      return st->commit(st->timestamps ? detail::now_realtime_ns() : 0);
    }
  }
  Claim c = claim_in(partition, value.size(), key.size());
  if (!c) return {c.error(), partition, 0};
  if (!key.empty()) std::memcpy(c.data_, key.data(), key.size());
  if (!value.empty()) std::memcpy(c.data_ + key.size(), value.data(), value.size());
  // The claim is ours and open: commit without re-validating it.
  return st->commit(st->timestamps ? detail::now_realtime_ns() : 0);
}

AppendResult Producer::append_unique_to(std::uint32_t partition, Bytes token, Bytes key, Bytes value) noexcept {
  ProducerState* st = state_.get();
  // Not inside a transaction: its abort would leave the token taken.
  if (st == nullptr || !st->log || st->log->geometry.token_slots == 0 || st->txn_open) {
    return {Errc::kBadState, partition, 0};
  }
  // The record ends in its token's hash (recovery rebuilds the token table
  // from it), where the log's format has it.
  const bool trailer = (st->log->header->features & format::kFeatureTokenHashes) != 0;
  Claim c = claim_in(partition, value.size() + (trailer ? format::kTokenTrailer : 0), key.size());
  if (!c) return {c.error(), partition, 0};
  if (!key.empty()) std::memcpy(c.data_, key.data(), key.size());
  if (!value.empty()) std::memcpy(c.data_ + key.size(), value.data(), value.size());
  if (trailer) {
    const std::uint64_t hash = detail::token_hash(token);
    std::memcpy(c.data_ + key.size() + value.size(), &hash, sizeof hash);
  }
  // The claim exists before the token is taken, so the token always names
  // a claim whose fate a later producer can read.
  if (st->take_token(token, partition, c.offset_) != Errc::kOk) {
    const std::uint64_t offset = c.offset_;
    abort(c);
    return {Errc::kDuplicate, partition, offset};
  }
  return st->commit(st->timestamps ? detail::now_realtime_ns() : 0, trailer ? format::kRecordFlagToken : 0);
}

AppendResult Producer::append_unique(Bytes token, Bytes key, Bytes value) noexcept {
  if (!state_) return {Errc::kBadState, 0, 0};
  return append_unique_to(key.empty() ? state_->default_partition : partition_for(key), token, key, value);
}

AppendResult Producer::append(Bytes value) noexcept {
  return append_to(state_ ? state_->default_partition : 0, {}, value);
}

AppendResult Producer::append(Bytes key, Bytes value) noexcept {
  if (!state_) return {Errc::kBadState, 0, 0};
  return append_to(key.empty() ? state_->default_partition : partition_for(key), key, value);
}

std::size_t Producer::append_batch(std::span<const Bytes> values, AppendResult* last) noexcept {
  AppendResult r;
  std::size_t n = 0;
  ProducerState* st = state_.get();
  if (st == nullptr) {
    r.error = Errc::kBadState;
  } else {
    // One timestamp for the whole batch: the clock read is the costliest part
    // of a small append.
    const bool stamp = st->timestamps;
    st->timestamps = false;
    const std::uint64_t now = stamp ? detail::now_realtime_ns() : 0;
    for (Bytes v : values) {
      Claim c = claim_in(st->default_partition, v.size(), 0);
      if (c.error() == Errc::kDuplicate) {  // already in the log: counts as appended
        ++n;
        continue;
      }
      if (!c) {
        r = {c.error(), st->default_partition, 0};
        break;
      }
      if (!v.empty()) std::memcpy(c.data_, v.data(), v.size());
      c.data_ = nullptr;
      r = st->commit(now);
      if (!r) break;
      ++n;
    }
    st->timestamps = stamp;
  }
  if (last != nullptr) *last = r;
  return n;
}

namespace testing {
void die_between_claim_and_commit(bool enable) noexcept { detail::g_die_between_claim_and_commit = enable; }
void die_between_commit_and_count(bool enable) noexcept { detail::g_die_between_commit_and_count = enable; }
void die_in_multi_log_commit(int stage) noexcept { g_die_in_multi_log_commit = stage; }
void die_in_commit(int stage) noexcept { detail::g_die_in_commit = stage; }
}  // namespace testing

}  // namespace shmlog
