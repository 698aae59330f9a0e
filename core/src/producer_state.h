// A producer's state behind the public Producer handle, and the steps of an
// append. Each step's protocol lives in its own unit:
//   producer.cc    claim, commit and abort (the commit word itself: ring.h),
//                  registration (Log::producer) and the public API
//   prepare.cc     segment preparation: taking a ring slot, sealing the
//                  previous lap, zeroing, waiting for space
//   recovery.cc    named producers: sequences, pending claims, restart
//   tokens.cc      the token window of append_unique
//   txn.cc         transactions, within one log and across logs
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "format.h"
#include "log_state.h"
#include "recovery.h"
#include "txn.h"
#include "shmlog/log.h"
#include "shmlog/wait.h"

namespace shmlog::detail {

// The fields every append touches (id, epoch, next_sequence, timestamps,
// the default partition, max_record, claim_open, and the inline append's
// cursor) are ProducerHot's: shmlog/detail/producer_hot.h.
struct ProducerState : ProducerHot {
  std::shared_ptr<LogState> log;
  std::uint32_t fence = 0;  // this instance's fence in the slot's txn_word
  bool exclusive = false;
  bool checksums = false;
  std::chrono::nanoseconds backpressure_timeout{};
  bool acks_durable = false;  // append waits until its record is durable
  std::chrono::nanoseconds durable_timeout{};
  WaitStrategy wait;
  format::ProducerSlot* slot_ = nullptr;  // this producer's slot (cached)

  // Named producers: sequences below this already reached the log.
  bool idempotent = false;
  std::uint64_t last_sequence_plus_one = 0;

  // Transactions (the epoch is bumped by each begin: (id, epoch) names one).
  bool transactional = false;
  bool txn_open = false;
  std::chrono::milliseconds txn_timeout{};
  std::vector<bool> touched;  // partitions written in the open transaction
  TxnOffsets txn_offsets;     // to commit with it
  std::uint64_t txn_max_sequence_plus_one = 0;
  std::string committed_offsets;  // of the last committed transaction (encoded)
  // The next commit writes a control record (a marker or offsets) instead of data.
  struct Control {
    bool active = false;
    format::RecordType type = format::RecordType::kData;
    std::uint16_t id = 0;
    std::uint16_t epoch = 0;
  } control;

  using Cursor = ProducerCursor;  // per partition
  static constexpr std::uint64_t kZeroChunk = 16 * 1024;
  std::vector<Cursor> cursors;

  // The open claim, if any (claim_open: ProducerHot).
  std::uint32_t claim_partition = 0;
  std::uint64_t claim_position = 0;
  format::RecordHeader* claim_header = nullptr;
  std::uint32_t claim_frame = 0;
  std::uint16_t claim_key = 0;

  ~ProducerState() { close(); }

  format::ProducerSlot& slot() const { return *slot_; }
  // Address of a position in the ready segment of cursor p (hot path: no
  // division). Valid after ensure_ready() covered the position.
  std::uint64_t* word(std::uint32_t p, std::uint64_t position) const {
    const Cursor& c = cursors[p];
    return reinterpret_cast<std::uint64_t*>(c.ready_base + (position - c.ready_begin));
  }

  // ---- claim, commit, abort (producer.cc) ----
  Errc claim(std::uint32_t p, std::uint32_t frame, std::uint64_t* position) noexcept;
  Errc open_claim(std::uint32_t p, std::size_t key_size, std::size_t value_size) noexcept;
  Errc take_claim(std::uint32_t p, std::uint32_t frame, std::uint16_t key_size) noexcept;
  // Makes the claim of `frame` bytes at (p, position) the open one.
  void hold_claim(std::uint32_t p, std::uint64_t position, std::uint32_t frame, std::uint16_t key_size) noexcept {
    claim_open = true;
    claim_partition = p;
    claim_position = position;
    claim_header = reinterpret_cast<format::RecordHeader*>(word(p, position));
    claim_frame = frame;
    claim_key = key_size;
  }
  // `extra_flags`: record flags the claim's bytes call for (kRecordFlagToken).
  AppendResult commit(std::uint64_t timestamp_ns, std::uint8_t extra_flags = 0) noexcept;
  void abort() noexcept;
  void close() noexcept;
  Errc wait_durable(std::uint32_t p, std::uint64_t end, std::chrono::nanoseconds timeout) noexcept;
  // The steps of claim() and commit(): inline, in producer.cc (the hot path).
  Errc claim_exclusive(std::uint32_t p, std::uint32_t frame, std::uint64_t* position) noexcept;
  format::RecordHeader* claim_exclusive_fast(std::uint32_t p, std::uint32_t frame, std::uint64_t* position) noexcept;
  Errc claim_shared(std::uint32_t p, std::uint32_t frame, std::uint64_t* position) noexcept;
  std::uint64_t fill_header(std::uint64_t timestamp_ns, std::uint8_t extra_flags) noexcept;
  bool publish(std::uint64_t final_word, bool sleepers) noexcept;
  void count_published(bool sleepers) noexcept;
  void wake_consumers() noexcept;
  // Off the common path (out of line).
  [[gnu::cold, gnu::noinline]] AppendResult revoked() noexcept;
  [[gnu::cold, gnu::noinline]] AppendResult fenced_at_commit() noexcept;
  [[gnu::cold, gnu::noinline]] AppendResult acknowledge_durable() noexcept;
  [[gnu::noinline]] void count_sequence() noexcept;

  // ---- segment preparation (prepare.cc) ----
  Errc ensure_ready(std::uint32_t p, std::uint64_t begin, std::uint64_t end) noexcept;
  Errc prepare(std::uint32_t p, std::uint64_t segment, bool may_wait) noexcept;
  bool wait_for_space(std::uint32_t p, std::uint64_t needed, std::chrono::steady_clock::time_point deadline) noexcept;
  // wait_for_space, counted in the producer's backpressure counters.
  bool wait_for_space_counted(std::uint32_t p, std::uint64_t needed,
                              std::chrono::steady_clock::time_point deadline) noexcept;
  // Before a shared claim takes positions: waits until the ring's policy
  // lets the claim ending at `end` have its segment (kOk), or the timeout.
  [[gnu::noinline]] Errc wait_for_room(std::uint32_t p, std::uint64_t end) noexcept;
  void try_prepare_ahead(std::uint32_t p, std::uint64_t segment) noexcept {
    (void)prepare(p, segment, /*may_wait=*/false);
  }
  void start_zeroing_ahead(std::uint32_t p, std::uint64_t segment) noexcept;
  void zero_ahead(std::uint32_t p, std::uint64_t upto) noexcept;
  void finish_zeroing_ahead(std::uint32_t p) noexcept;
  // Why the ring is full when a wait for space times out.
  Errc full_error(std::uint32_t p) const noexcept {
    return log->durable() && format::atomic(log->partition(p).flush_errno).load(std::memory_order_acquire) == ENOSPC
               ? Errc::kDiskFull
               : Errc::kBackpressureTimeout;
  }

  // ---- tokens (tokens.cc) ----
  // Takes `token` for the claim at (p, position): kOk, or kDuplicate when a
  // record with it is kept within the window.
  Errc take_token(Bytes token, std::uint32_t p, std::uint64_t position) noexcept;

  // ---- transactions (txn.cc) ----
  Errc append_control(std::uint32_t p, format::RecordType type, std::uint16_t txn_id, std::uint16_t txn_epoch,
                      Bytes value) noexcept;
  // Writes `type` markers of transaction `txn_epoch` to the partitions in
  // `which` (all when empty), waiting out backpressure up to its timeout.
  Status write_markers(format::RecordType type, std::uint16_t txn_epoch, const std::vector<bool>& which);
  Status finish_previous_transaction(const std::map<std::uint16_t, std::string>& prepared,
                                     const std::map<std::uint16_t, std::string>& participants, bool* acted);
  // This instance's transaction is finished: its word -> done, by CAS (a
  // newer instance's word is left alone).
  void mark_done() noexcept {
    auto word = format::atomic(slot().txn_word);
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
    return format::txn_fence(format::atomic(slot().txn_word).load(std::memory_order_seq_cst)) != fence;
  }
};

}  // namespace shmlog::detail
