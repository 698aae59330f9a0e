// A producer: claim, commit and abort of one record (the commit word's
// protocol is ring.h), registration of a producer in a slot, and the
// public Producer API. producer_state.h says where the other steps live.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>
#include <utility>

#include "durability.h"
#include "owner.h"
#include "producer_state.h"
#include "record.h"
#include "ring.h"
#include "test_hooks.h"
#include "shmlog/log.h"

namespace shmlog {
namespace detail {

using format::atomic;

namespace {
// Off only in the build that measures what counting costs (producer_hot.h).
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

// The claim of `frame` bytes in partition p: [*position, + its aligned
// length) belong to this producer until it commits or aborts.
Errc ProducerState::claim(std::uint32_t p, std::uint32_t frame, std::uint64_t* position) noexcept {
  return exclusive ? claim_exclusive(p, frame, position) : claim_shared(p, frame, position);
}

// The only writer of the partition: its own copy of the tail moves; the
// shared tail moves at the commit.
inline Errc ProducerState::claim_exclusive(std::uint32_t p, std::uint32_t frame, std::uint64_t* position) noexcept {
  const LogState& s = *log;
  const std::uint64_t aligned = format::align_record(frame);
  Cursor& c = cursors[p];
  std::uint64_t pos = c.tail;
  const std::uint64_t segment_end = (pos | s.segment_mask) + 1;
  if (pos + aligned > segment_end) {  // the rest of the segment becomes padding
    Errc e = ensure_ready(p, pos, segment_end);
    if (e != Errc::kOk) return e;
    ring::pad(*word(p, pos), segment_end - pos, /*exclusive=*/true);
    pos = c.tail = segment_end;
    atomic(*c.tail_position).store(pos, std::memory_order_release);
  }
  Errc e = ensure_ready(p, pos, pos + aligned);
  if (e != Errc::kOk) return e;
  if (c.ahead_segment == UINT64_MAX) {
    start_zeroing_ahead(p, (pos >> s.segment_shift) + 1);
  } else if (pos - c.ready_begin >= c.ahead_zeroed) {
    zero_ahead(p, c.ahead_zeroed + kZeroChunk);
  }
  // Up to where the claims after this one need none of the above.
  if (c.ahead_segment == UINT64_MAX) {
    c.fast_limit = c.ahead_zeroed == s.segment_size ? c.ready_end : 0;
  } else {
    c.fast_limit = std::min(c.ready_end, c.ready_begin + c.ahead_zeroed);
  }
  *position = pos;
  return Errc::kOk;
}

// The exclusive claim when nothing but the claim is due: the record ends
// at or below the cursor's fast_limit, which claim_exclusive set (the
// inline append in shmlog/log.h checks the same). The header's address
// (and its position in `*position`), or nullptr.
inline format::RecordHeader* ProducerState::claim_exclusive_fast(std::uint32_t p, std::uint32_t frame,
                                                                 std::uint64_t* position) noexcept {
  const Cursor& c = cursors[p];
  const std::uint64_t pos = c.tail;
  if (pos + format::align_record(frame) > c.fast_limit) return nullptr;
  *position = pos;
  return reinterpret_cast<format::RecordHeader*>(c.ready_base + (pos - c.ready_begin));
}

// One of several writers: the tail's fetch_add takes the positions, the
// commit word's registration names them ours (for liveness and fencing).
inline Errc ProducerState::claim_shared(std::uint32_t p, std::uint32_t frame, std::uint64_t* position) noexcept {
  const LogState& s = *log;
  const std::uint64_t aligned = format::align_record(frame);
  auto tail = atomic(s.partition(p).tail_position);
  const Cursor& c = cursors[p];
  for (;;) {
    // Room before positions (see wait_for_room), unless the claim ends in
    // the segment this producer last found ready.
    if (const std::uint64_t at = tail.load(std::memory_order_relaxed);
        at < c.ready_begin || at + aligned > c.ready_end) [[unlikely]] {
      if (const Errc room = wait_for_room(p, at + aligned); room != Errc::kOk) return room;
    }
    const std::uint64_t pos = tail.fetch_add(aligned, std::memory_order_relaxed);
    if (!format::plausible_position(pos)) [[unlikely]] return Errc::kCorrupt;
    const std::uint64_t segment_end = (pos | s.segment_mask) + 1;
    if (pos + aligned > segment_end) {
      // Crossing a segment end: both pieces become padding; claim again.
      Errc e = ensure_ready(p, pos, segment_end);
      if (e != Errc::kOk) return e;
      ring::pad(*word(p, pos), segment_end - pos, /*exclusive=*/false);
      e = ensure_ready(p, segment_end, pos + aligned);
      if (e != Errc::kOk) return e;
      ring::pad(*word(p, segment_end), pos + aligned - segment_end, /*exclusive=*/false);
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
    if (ring::register_claim(*word(p, pos), frame, id)) {
      *position = pos;
      return Errc::kOk;
    }
    // Poisoned by an unblocker while we were descheduled: claim again.
  }
}

// Opens a claim for a record of key_size + value_size bytes in partition
// p: the checks, the claim, and the open claim's fields (claim_header
// and the rest). kDuplicate when a named producer's record with this
// sequence is in the log already (the sequence moves past it).
Errc ProducerState::open_claim(std::uint32_t p, std::size_t key_size, std::size_t value_size) noexcept {
  if (!log || claim_open) return Errc::kBadState;
  if (idempotent && next_sequence < last_sequence_plus_one) [[unlikely]] {
    ++next_sequence;  // that record is in the log already
    return Errc::kDuplicate;
  }
  if (p >= log->options.partitions) return Errc::kBadPartition;
  if (key_size > 0xffff || value_size > max_record || key_size + value_size > max_record) return Errc::kTooLarge;
  return take_claim(p, static_cast<std::uint32_t>(format::kRecordHeaderSize + key_size + value_size),
                    static_cast<std::uint16_t>(key_size));
}

// Claims `frame` bytes in partition p and makes them the open claim.
Errc ProducerState::take_claim(std::uint32_t p, std::uint32_t frame, std::uint16_t key_size) noexcept {
  std::uint64_t position = 0;
  const Errc e = claim(p, frame, &position);
  if (e == Errc::kOk) hold_claim(p, position, frame, key_size);
  return e;
}

// Commits the open claim: the steps around the commit word's publish.
AppendResult ProducerState::commit(std::uint64_t timestamp_ns, std::uint8_t extra_flags) noexcept {
  if (idempotent && fenced()) [[unlikely]] return fenced_at_commit();
  claim_open = false;
  const std::uint64_t final_word = fill_header(timestamp_ns, extra_flags);
  if constexpr (hooks::kEnabled) {
    if (hooks::die_between_claim_and_commit) shm::kill_self();
  }
  // Once a consumer may sleep, the commit is seq_cst so that it is ordered
  // before the waiter check (the consumer increments data_waiters, then
  // re-reads this word); before that, release is enough.
  const bool sleepers = consumers_may_sleep(*this);
  if (!publish(final_word, sleepers)) [[unlikely]] return revoked();
  count_published(sleepers);
  if (acks_durable) [[unlikely]] return acknowledge_durable();
  return {Errc::kOk, claim_partition, claim_position};
}

// The steps off the common path, out of line so that commit's stays short.

// A newer instance of this producer id took over: publish nothing.
AppendResult ProducerState::fenced_at_commit() noexcept {
  abort();
  return {Errc::kFenced, claim_partition, claim_position};
}

// acks = durable: the append returns once its record is durable.
AppendResult ProducerState::acknowledge_durable() noexcept {
  const std::uint32_t p = claim_partition;
  const std::uint64_t pos = claim_position;
  const Errc durable = wait_durable(p, pos + format::align_record(claim_frame), durable_timeout);
  return {durable, p, pos};
}

// A named producer's sequence reached the log (or its transaction's, once
// the transaction commits).
void ProducerState::count_sequence() noexcept {
  const std::uint64_t sequence_plus_one = claim_header->sequence + 1;
  if (txn_open) {
    txn_max_sequence_plus_one = std::max(txn_max_sequence_plus_one, sequence_plus_one);
    return;
  }
  if constexpr (hooks::kEnabled) {
    if (hooks::die_between_commit_and_count) [[unlikely]] shm::kill_self();
  }
  last_sequence_plus_one = sequence_plus_one;
  raise_last_sequence(slot(), last_sequence_plus_one);
}

// The record's header fields (a data record's identity and sequence, or a
// transaction's control record), its checksum, and its commit word.
inline std::uint64_t ProducerState::fill_header(std::uint64_t timestamp_ns, std::uint8_t extra_flags) noexcept {
  format::RecordHeader* header = claim_header;
  std::uint8_t flags = extra_flags | (checksums ? format::kRecordFlagChecksum : 0);
  format::RecordType type = format::RecordType::kData;
  if (control.active) [[unlikely]] {
    header->producer_id = control.id;
    header->producer_epoch = control.epoch;
    header->sequence = 0;
    type = control.type;
    if (type == format::RecordType::kTxnOffsets) flags |= format::kRecordFlagTransactional;
    header->timestamp_ns = timestamp_ns;
  } else {
    stamp_data_header(*header, *this, timestamp_ns);
    if (txn_open) {
      flags |= format::kRecordFlagTransactional;
      touched[claim_partition] = true;
    }
  }
  const std::uint64_t final_word =
      format::make_commit_word(static_cast<std::int32_t>(claim_frame), type, flags, claim_key);
  if (checksums) {
    header->checksum = record::checksum(*header, final_word, reinterpret_cast<std::byte*>(header + 1),
                                        claim_frame - format::kRecordHeaderSize);
  }
  return final_word;
}

// The commit word, and an exclusive producer's tail. False when the claim
// was revoked.
inline bool ProducerState::publish(std::uint64_t final_word, bool sleepers) noexcept {
  std::uint64_t& commit_word = claim_header->commit_word;
  if (!exclusive) return ring::publish_shared(commit_word, claim_frame, id, final_word);
  publish_exclusive(commit_word, final_word, cursors[claim_partition],
                    claim_position + format::align_record(claim_frame), sleepers);
  return true;
}

// An unblocker abandoned the claim (it outlived the claim timeout), or a
// newer instance that fenced this one revoked it.
AppendResult ProducerState::revoked() noexcept {
  auto& counter = slot().revoked_total;
  atomic(counter).store(counter + 1, std::memory_order_relaxed);
  return {idempotent && fenced() ? Errc::kFenced : Errc::kRevoked, claim_partition, claim_position};
}

// After a publish: sleeping readers woken, a named producer's sequence
// counted, the producer's counters.
inline void ProducerState::count_published(bool sleepers) noexcept {
  if (sleepers) wake_consumers();
  if (idempotent && !control.active) count_sequence();
  Cursor& c = cursors[claim_partition];
  const std::uint64_t bytes = claim_frame - format::kRecordHeaderSize;
  if (!idempotent) [[likely]] {
    count_append(c, bytes);
  } else if constexpr (kHotCounters) {
    // A fenced older instance of the name may still count into this row.
    atomic(*c.appends_total).fetch_add(1, std::memory_order_relaxed);
    atomic(*c.bytes_total).fetch_add(bytes, std::memory_order_relaxed);
  }
}

// After a seq_cst publish: wakes consumers that park (counted).
void ProducerState::wake_consumers() noexcept {
  const LogState& s = *log;
  if (atomic(s.header->data_waiters).load(std::memory_order_seq_cst) == 0) return;
  s.wake_consumers();
  atomic(slot().wakeups_total).store(slot().wakeups_total + 1, std::memory_order_relaxed);
}

void ProducerState::abort() noexcept {
  if (!claim_open) return;
  claim_open = false;
  if (exclusive) {
    // Nothing was published; clear what the caller may have written so no
    // stale bytes lie where the next record's header goes.
    zero_shared(reinterpret_cast<std::byte*>(claim_header), format::align_record(claim_frame));
    return;
  }
  ring::abort_shared(claim_header->commit_word, claim_frame, id);
  if (atomic(log->header->data_waiters).load(std::memory_order_seq_cst) != 0) log->wake_consumers();
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

Status check_options(const detail::LogState& s, const ProducerOptions& options) {
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
  return {};
}

// Joins every partition as exclusive or shared writer (id `id`), under the
// admin lock; undone on a conflict, which is reported.
Status join_writers(const detail::LogState& s, std::uint32_t id, bool exclusive) {
  std::uint32_t p = 0;
  std::uint32_t conflict = 0;
  for (; p < s.options.partitions; ++p) {
    auto writers = format::atomic(s.partition(p).writers);
    std::uint32_t current = writers.load(std::memory_order_acquire);
    if (exclusive) {
      if (current != 0 ||
          !writers.compare_exchange_strong(current, format::kExclusiveWriter | id, std::memory_order_acq_rel)) {
        conflict = current;
        break;
      }
      continue;
    }
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
  if (p == s.options.partitions) return {};
  detail::leave_writers(s, p, exclusive);
  const std::string who = (conflict & format::kExclusiveWriter) ? "exclusive producer " + std::to_string(conflict & 0xffff)
                                                                : std::to_string(conflict) + " other producer(s)";
  return Status(Status::Code::kBusy, "partition " + std::to_string(p) + " of " + s.path + " has " + who +
                                         (exclusive ? "; an exclusive producer must be alone"
                                                    : "; it cannot take a shared producer"));
}

// Makes producer slot `id` this instance's, under the admin lock: owner,
// name, counters, and a new epoch and fence. A new epoch names this
// instance's records, and a new fence stops any older instance of a named
// producer: its next commit, and its next transaction decision (a CAS of
// the word), sees it and publishes nothing. The word keeps the previous
// transaction and its state, which the recovery finishes. A slot that held
// another identity forgets that identity's sequences.
void open_slot(const detail::LogState& s, std::uint32_t id, const ProducerOptions& options, std::uint16_t* epoch,
               std::uint32_t* fence) {
  auto& slot = s.producer_slot(id);
  const bool named = !options.producer_id.empty();
  const bool same_identity = named && slot_named(slot, options.producer_id);
  slot.flags = (options.exclusive ? format::kProducerExclusive : 0) | (named ? format::kProducerIdempotent : 0);
  detail::store_owner(slot, shm::self());
  slot.opened_ns = detail::now_realtime_ns();
  *epoch = static_cast<std::uint16_t>(format::atomic(slot.epoch).fetch_add(1, std::memory_order_seq_cst) + 1);
  *fence = format::txn_fence(format::atomic(slot.txn_word).fetch_add(std::uint64_t{1} << 32, std::memory_order_seq_cst)) + 1;
  if (!same_identity) {
    format::atomic(slot.last_sequence_plus_one).store(0, std::memory_order_relaxed);
    format::atomic(slot.first_epoch).store(*epoch, std::memory_order_relaxed);
    format::atomic(slot.pending_position_plus_one).store(0, std::memory_order_relaxed);
    format::atomic(slot.committed_offsets_buffer).store(0, std::memory_order_relaxed);
  } else {
    detail::keep_epoch_window(slot, *epoch);
  }
  slot.appends_total = 0;
  slot.bytes_total = 0;
  const detail::AppendTotals at_open = detail::row_totals(s, id);
  slot.appends_at_open = at_open.appends;
  slot.bytes_at_open = at_open.bytes;
  slot.revoked_total = 0;
  slot.backpressure_waits_total = 0;
  slot.backpressure_wait_ns_total = 0;
  slot.wakeups_total = 0;
  const std::string& label = named ? options.producer_id : options.name;
  std::memset(slot.name, 0, sizeof slot.name);
  std::memcpy(slot.name, label.data(), label.size());
  format::atomic(slot.state).store(static_cast<std::uint32_t>(format::SlotState::kActive), std::memory_order_release);
  if (named) {
    auto end = format::atomic(s.header->named_slots_end);
    if (end.load(std::memory_order_relaxed) <= id) end.store(id + 1, std::memory_order_release);
  }
  auto used = format::atomic(s.header->used_slots_end);
  if (used.load(std::memory_order_relaxed) <= id) used.store(id + 1, std::memory_order_release);
}

std::unique_ptr<ProducerState> make_state(const std::shared_ptr<detail::LogState>& log, std::uint32_t id,
                                          std::uint16_t epoch, std::uint32_t fence, const ProducerOptions& options) {
  const detail::LogState& s = *log;
  auto st = std::make_unique<ProducerState>();
  st->log = log;
  st->id = static_cast<std::uint16_t>(id);
  st->epoch = epoch;
  st->fence = fence;
  st->exclusive = options.exclusive;
  st->idempotent = !options.producer_id.empty();
  st->transactional = options.transactional;
  st->txn_timeout = options.transaction_timeout;
  st->timestamps = options.timestamps;
  st->sleepers_flag = &s.header->sleepers;
  st->checksums = s.options.checksums;
  st->default_partition = options.partition;
  st->backpressure_timeout = options.backpressure_timeout;
  st->acks_durable = options.acks == ProducerOptions::Acks::kDurable;
  st->durable_timeout = options.durable_timeout;
  st->wait = options.wait;
  st->slot_ = &s.producer_slot(id);
  st->max_record = s.options.max_record_size;
  st->cursors.resize(s.options.partitions);
  for (std::uint32_t q = 0; q < s.options.partitions; ++q) {
    st->cursors[q].tail = s.tail(q);
    st->cursors[q].tail_position = &s.partition(q).tail_position;
    format::AppendCounts* row = s.append_counts(id);
    st->cursors[q].appends_total = row != nullptr ? &row[q].appends_total : &st->slot_->appends_total;
    st->cursors[q].bytes_total = row != nullptr ? &row[q].bytes_total : &st->slot_->bytes_total;
  }
  // What the inline append (shmlog/log.h) does not do: shared claims,
  // checksums, transactions, waiting for durability.
  const bool plain = st->exclusive && !st->idempotent && !st->transactional && !st->checksums && !st->acks_durable;
  st->fast = plain ? &st->cursors[options.partition] : nullptr;
  return st;
}

// A named producer's new instance takes over from its previous ones: the
// last sequence that reached the log, the last committed offsets, and a
// transaction they left behind, finished as decided.
Status take_over_named(const Log& log, const detail::LogState& s, ProducerState& st, bool transactional) {
  // An older instance's open transaction can only end aborted now (it is
  // fenced): decide so first, so that read_committed readers pass its
  // records by the decision; on a backpressure ring they hold the room the
  // recovery read below may need. (A waiting reader may decide the same at
  // once.)
  const std::uint64_t w = format::atomic(st.slot().txn_word).load(std::memory_order_acquire);
  if (format::txn_state(w) == format::TxnState::kOpen) (void)detail::decide_abort(st.slot(), w);
  auto recovered = detail::recover(log, s, st.id, st.epoch, transactional);
  if (!recovered.ok()) return std::move(recovered).status();
  // A transaction an older instance left behind: finish it as decided
  // (open means abort), in every partition, before this one writes.
  bool acted = false;
  Status finished = st.finish_previous_transaction(recovered->prepared, recovered->participants, &acted);
  if (!finished.ok()) return std::move(finished).with_context("completing the previous instance's transaction");
  if (acted) {
    // It may have committed (decided so, or by its coordinator): read
    // again, now with its markers, for the sequences and offsets.
    recovered = detail::recover(log, s, st.id, st.epoch, transactional);
    if (!recovered.ok()) return std::move(recovered).status();
  }
  st.last_sequence_plus_one = recovered->last_sequence_plus_one;
  st.next_sequence = recovered->last_sequence_plus_one;
  st.committed_offsets = std::move(recovered->committed_offsets);
  return {};
}

}  // namespace

Result<Producer> Log::producer(const ProducerOptions& options) const {
  const detail::LogState& s = *state_;
  SHMLOG_RETURN_IF_ERROR(check_options(s, options));
  if (options.core >= 0) SHMLOG_RETURN_IF_ERROR(pin_current_thread(static_cast<unsigned>(options.core)));
  const bool named = !options.producer_id.empty();
  // A named producer's previous instance may be dead: reap it first, so
  // that its writer counts go and only a live instance is taken over.
  if (named) detail::sweep(s);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (attempt == 1) detail::sweep(s);  // reap ids of dead processes, then retry
    std::unique_ptr<ProducerState> st;
    {
      detail::AdminLock lock(s);
      bool takeover = false;
      const auto id = choose_slot(s, options, &takeover);
      if (!id) continue;
      // Taking over a running instance inherits its writer counts.
      if (!takeover) SHMLOG_RETURN_IF_ERROR(join_writers(s, *id, options.exclusive));
      std::uint16_t epoch = 0;
      std::uint32_t fence = 0;
      open_slot(s, *id, options, &epoch, &fence);
      st = make_state(state_, *id, epoch, fence, options);
    }
    // An exclusive producer writes at its own copy of the tail from here on:
    // one damaged in memory is refused, not written at.
    for (std::uint32_t q = 0; q < s.options.partitions; ++q) {
      auto tail = detail::checked_position(s, q, "tail position", st->cursors[q].tail);
      if (!tail.ok()) return std::move(tail).status();
    }
    if (named) SHMLOG_RETURN_IF_ERROR(take_over_named(*this, s, *st, options.transactional));
    return Producer(std::move(st));
  }
  return Status(Status::Code::kBusy, "all " + std::to_string(s.options.max_producers) +
                                         " producer ids of " + s.path + " are in use (see --max-producers)");
}

Producer::Producer(std::unique_ptr<ProducerState> state) : state_(std::move(state)), hot_(state_.get()) {}
Producer::Producer(Producer&& other) noexcept
    : state_(std::move(other.state_)), hot_(std::exchange(other.hot_, nullptr)) {}
Producer& Producer::operator=(Producer&& other) noexcept {
  state_ = std::move(other.state_);
  hot_ = std::exchange(other.hot_, nullptr);
  return *this;
}
Producer::~Producer() = default;

AppendResult Producer::append_long(Bytes value) noexcept {
  AppendResult result;
  switch (detail::append_plain<false>(*hot_, value, result)) {
    case detail::PlainAppend::kDone:
      return result;
    case detail::PlainAppend::kWake:
      return woken(result);
    case detail::PlainAppend::kLibrary:
      break;
  }
  return append_to(hot_->default_partition, {}, value);
}

AppendResult Producer::woken(AppendResult appended) noexcept {
  state_->wake_consumers();
  return appended;
}

std::uint16_t Producer::id() const noexcept { return state_->id; }
std::uint16_t Producer::epoch() const noexcept { return state_->epoch; }
void Producer::set_next_sequence(std::uint64_t sequence) noexcept { state_->next_sequence = sequence; }
std::uint64_t Producer::next_sequence() const noexcept { return state_->next_sequence; }
std::optional<std::uint64_t> Producer::last_sequence() const noexcept {
  if (!state_ || !state_->idempotent || state_->last_sequence_plus_one == 0) return std::nullopt;
  return state_->last_sequence_plus_one - 1;
}
std::uint32_t Producer::partition_for(Bytes key) const noexcept {
  return static_cast<std::uint32_t>(format::key_hash(key) % state_->log->options.partitions);
}

Claim Producer::claim_in(std::uint32_t partition, std::size_t value_size, std::size_t key_size) noexcept {
  Claim c;
  ProducerState* st = state_.get();
  if (st == nullptr) return c;  // kBadState
  c.error_ = st->open_claim(partition, key_size, value_size);
  if (c.error_ != Errc::kOk) return c;
  c.data_ = reinterpret_cast<std::byte*>(st->claim_header) + format::kRecordHeaderSize;
  c.key_size_ = static_cast<std::uint32_t>(key_size);
  c.value_size_ = static_cast<std::uint32_t>(value_size);
  c.partition_ = partition;
  c.offset_ = st->claim_position;
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
  // Where this process's keeper holds the lease, this thread writes and
  // syncs the record itself (a round of the keeper's, under its lock):
  // no wake of the keeper and none back, ~40 us of a 100 us sync on the
  // development VM. Otherwise, or once a round of its own moves nothing,
  // it asks the keeper and waits to be woken.
  detail::raise_sync_request(s, p, end);
  bool own_rounds = true;
  bool asked = false;
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
    if (own_rounds) {
      own_rounds = detail::run_keeper_round(s);
      if (own_rounds) continue;
    }
    if (!asked) {
      detail::request_sync(s, p, end);
      asked = true;
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
  return st->commit(detail::record_timestamp(*st));
}

void Producer::abort(Claim& claim) noexcept {
  ProducerState* st = state_.get();
  if (st == nullptr || !st->claim_open || claim.data_ == nullptr || claim.offset_ != st->claim_position) return;
  claim.data_ = nullptr;
  claim.error_ = Errc::kBadState;
  st->abort();
}

AppendResult Producer::append_to(std::uint32_t partition, Bytes key, Bytes value) noexcept {
  return append_stamped(partition, key, value, kClockTime);
}

AppendResult Producer::append_at(std::uint32_t partition, Bytes key, Bytes value, std::uint64_t timestamp_ns) noexcept {
  // kClockTime is a time no clock reaches (year 2554): one ns earlier.
  return append_stamped(partition, key, value, std::min(timestamp_ns, kClockTime - 1));
}

AppendResult Producer::append_stamped(std::uint32_t partition, Bytes key, Bytes value,
                                      std::uint64_t timestamp_ns) noexcept {
  ProducerState* st = state_.get();
  const auto stamp = [&] {
    if (timestamp_ns != kClockTime) return timestamp_ns;
    return detail::record_timestamp(*st);
  };
  // Fast path of an exclusive producer (claim_exclusive_fast).
  if (st != nullptr && st->exclusive && !st->claim_open && partition < st->cursors.size() &&
      key.size() <= 0xffff && key.size() + value.size() <= st->max_record) {
    const auto frame = static_cast<std::uint32_t>(format::kRecordHeaderSize + key.size() + value.size());
    std::uint64_t pos = 0;
    if (format::RecordHeader* header = st->claim_exclusive_fast(partition, frame, &pos)) {
      auto* body = reinterpret_cast<std::byte*>(header + 1);
      if (!key.empty()) std::memcpy(body, key.data(), key.size());
      if (!value.empty()) std::memcpy(body + key.size(), value.data(), value.size());
      st->hold_claim(partition, pos, frame, static_cast<std::uint16_t>(key.size()));
      return st->commit(stamp());
    }
  }
  if (st == nullptr) return {Errc::kBadState, partition, 0};
  const Errc opened = st->open_claim(partition, key.size(), value.size());
  if (opened != Errc::kOk) return {opened, partition, 0};
  auto* body = reinterpret_cast<std::byte*>(st->claim_header + 1);
  if (!key.empty()) std::memcpy(body, key.data(), key.size());
  if (!value.empty()) std::memcpy(body + key.size(), value.data(), value.size());
  // The claim is ours and open: commit without re-validating it.
  return st->commit(stamp());
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
  return st->commit(detail::record_timestamp(*st), trailer ? format::kRecordFlagToken : 0);
}

AppendResult Producer::append_unique(Bytes token, Bytes key, Bytes value) noexcept {
  if (!state_) return {Errc::kBadState, 0, 0};
  return append_unique_to(key.empty() ? state_->default_partition : partition_for(key), token, key, value);
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
    const std::uint64_t now = stamp ? detail::record_time_ns(st->clock) : 0;
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

}  // namespace shmlog
