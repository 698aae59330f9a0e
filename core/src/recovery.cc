#include "recovery.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "owner.h"
#include "record.h"
#include "shmlog/shm/process.h"

namespace shmlog::detail {

using format::atomic;

namespace {

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



// Counts the pending claim of named producer `id`'s previous instance (see
// ProducerSlot::pending_position_plus_one): waits until the claim is
// published or abandoned (a dead owner's after the claim timeout) and
// counts it if published. If its ring slot was taken for the next lap
// meanwhile, the taker counts it (before zeroing: this waits for that).
// Called after the new fence is stored: an older instance that registers a
// claim later finds itself fenced at its commit.
Status count_pending_claim(const LogState& s, std::uint32_t id) {
  auto& slot = s.producer_slot(id);
  const std::uint64_t at = atomic(slot.pending_position_plus_one).load(std::memory_order_seq_cst);
  if (at == 0) return {};
  const std::uint32_t p = atomic(slot.pending_partition).load(std::memory_order_relaxed);
  const std::uint64_t position = at - 1;
  if (p >= s.options.partitions || !format::plausible_position(position)) {
    return Status(Status::Code::kCorrupt, "shared memory " + s.memory_path + ": producer id '" + std::string(slot.name) +
                                              "' names a claim at partition " + std::to_string(p) + ", offset " +
                                              std::to_string(position) + " that cannot be right (damaged or foreign)");
  }
  const std::uint64_t segment = position >> s.segment_shift;
  auto state = atomic(s.descriptor(p, segment).state_word);
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
      if (!prepare_unprepared(s, p, held)) shm::sleep_for(std::chrono::microseconds(100));
      continue;
    }
    // Reused and counted, or never prepared (nothing was published).
    if (held != segment || !ready) return {};
    const record::Decoded d = s.ring_record_at(p, position).d;
    const std::uint64_t plus_one = plain_sequence_plus_one(s, slot, id, p, position, d);
    if (state.load(std::memory_order_acquire) != w) continue;  // what was read may be the next lap's
    if (d.kind == record::Kind::kData || d.kind == record::Kind::kSkip || d.kind == record::Kind::kCorrupt) {
      raise_last_sequence(slot, plus_one);
      return {};
    }
    if (!unblock(s, p, position, now - since)) shm::sleep_for(std::chrono::microseconds(100));
  }
}

// The offsets buffer holding named producer `id`'s last committed
// transaction offsets, or nullptr: the one the slot names, or the other
// when it was written for the transaction `w` says was decided "commit"
// (its producer died before naming it: named now).
const format::OffsetsBuffer* kept_offsets(const LogState& s, std::uint32_t id, std::uint64_t w) noexcept {
  format::OffsetsBuffer* buffers = s.offsets_buffers(id);
  if (buffers == nullptr) return nullptr;
  auto named = atomic(s.producer_slot(id).committed_offsets_buffer);
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

}  // namespace

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

// What a named producer's restart learns: the last sequence that reached
// the log (the slot's, with the previous instance's pending claim and a
// transaction decided "commit" counted), and for an identity that used
// transactions what the ring's records of its older epochs say: the last
// committed offsets and the transactions spanning logs. The ring's records
// are read up to each tail as it was after the new fence was stored, so
// every claim of an older instance in them is published or resolved first.
Result<Recovered> recover(const Log& log, const LogState& s, std::uint32_t id, std::uint16_t epoch,
                          bool transactional) {
  auto& slot = s.producer_slot(id);
  // A full barrier between the fence's store and the reads below (a seq_cst
  // read-modify-write: the same locked instruction as a fence on x86, and
  // visible to ThreadSanitizer, which does not model fences).
  (void)atomic(slot.txn_word).fetch_add(0, std::memory_order_seq_cst);
  SHMLOG_RETURN_IF_ERROR(count_pending_claim(s, id));
  // A transaction decided "commit" whose instance died before counting it:
  // the slot has its last sequence from before the decision.
  const std::uint64_t w = atomic(slot.txn_word).load(std::memory_order_acquire);
  const bool committing = format::txn_state(w) == format::TxnState::kCommitting;
  if (committing) raise_last_sequence(slot, atomic(slot.txn_sequence_plus_one).load(std::memory_order_acquire));
  Recovered r;
  r.last_sequence_plus_one = atomic(slot.last_sequence_plus_one).load(std::memory_order_acquire);
  if (!transactional && format::txn_state(w) == format::TxnState::kNone) return r;
  const format::OffsetsBuffer* kept = kept_offsets(s, id, w);
  std::vector<std::uint64_t> end(s.options.partitions);
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) end[p] = s.tail(p);
  const std::uint16_t first = atomic(slot.first_epoch).load(std::memory_order_relaxed);
  ConsumerOptions co;
  co.from = StartFrom::earliest();
  co.wait = WaitStrategy::yield();
  auto reader = log.consumer(co);
  if (!reader.ok()) return std::move(reader).status();
  // The ring's records, not a durable log's whole history on disk.
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
    if (s.retained_start(p) < s.earliest(p)) SHMLOG_RETURN_IF_ERROR(reader->seek(p, s.earliest(p)));
  }
  deliver_control_records(*reader);
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
        const std::uint64_t sw = atomic(s.descriptor(p, segment).state_word).load(std::memory_order_acquire);
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

}  // namespace shmlog::detail
