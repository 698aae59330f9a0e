// read_committed: a transactional record is delivered once its
// transaction's commit marker lies ahead of it, passed over once its abort
// marker does, and holds its partition while neither does. The reader
// looks ahead for markers, and finishes a transaction nobody else will.
#include <algorithm>
#include <string>

#include "consumer_state.h"
#include "owner.h"
#include "txn.h"

namespace shmlog::detail {

using format::atomic;

namespace {
constexpr auto kActive = static_cast<std::uint32_t>(format::SlotState::kActive);
}  // namespace

// read_committed: a transactional record at `position` is delivered once a
// commit marker of its transaction (same producer id and epoch) lies ahead
// of it, skipped once an abort marker does, and blocks its partition while
// neither does. Markers come after all of a transaction's records, so the
// first one ahead decides.
ConsumerState::Txn ConsumerState::outcome(Part& part, std::uint64_t position, std::uint16_t id,
                                          std::uint16_t epoch) noexcept {
  if (position < part.scan_base) {  // moved back (seek): what was pruned may be needed again
    part.outcomes.clear();
    part.prepared.clear();
    part.in_flight.clear();
    part.scanned_to = position;
  }
  part.scan_base = position;
  auto find = [&]() -> const Part::Outcome* {
    for (const auto& o : part.outcomes) {
      if (o.id == id && o.epoch == epoch && o.marker > position) return &o;
    }
    return nullptr;
  };
  const Part::Outcome* o = find();
  if (o == nullptr) {
    std::erase_if(part.outcomes, [&](const Part::Outcome& x) { return x.marker < position; });
    std::erase_if(part.prepared, [&](const Part::Prepared& x) { return x.position < position; });
    look_ahead(part, position);
    o = find();
  }
  if (o != nullptr) return o->committed ? Txn::kCommitted : Txn::kAborted;
  complete_if_abandoned(part, position, id, epoch);
  // A decision in the producer's slot is final, markers or not: they need
  // ring space, which this reader's own group may be what holds.
  if (id < log->options.max_producers) {
    const std::uint64_t w = atomic(log->producer_slot(id).txn_word).load(std::memory_order_acquire);
    if (format::txn_epoch(w) == epoch && format::txn_state(w) == format::TxnState::kAborting) return Txn::kAborted;
    if (format::txn_epoch(w) == epoch && format::txn_state(w) == format::TxnState::kCommitting) return Txn::kCommitted;
  }
  return Txn::kOpen;
}


// Reads ahead from where it stopped last (at most 64K records a call) and
// notes every intact transaction marker it passes; claims it passed in
// flight are looked at again until they resolve.
void ConsumerState::look_ahead(Part& part, std::uint64_t from) noexcept {
  const SpeculativeReads speculative;  // checked against the slot's word before use
  try {
    const LogState& s = *log;
    const std::uint32_t p = part.partition;
    // A marker or prepare record at `pos` is noted; `a` is what is there.
    auto note = [&](const record::At& a, std::uint64_t pos) {
      const record::Decoded& d = a.d;
      const bool control = d.kind == record::Kind::kSkip && d.type >= format::RecordType::kTxnCommit;
      if (control && !intact(s, a)) return;  // damaged: no outcome is taken from it
      const format::RecordHeader& h = *a.header;
      if (d.kind == record::Kind::kSkip &&
          (d.type == format::RecordType::kTxnCommit || d.type == format::RecordType::kTxnAbort)) {
        part.outcomes.push_back({h.producer_id, h.producer_epoch, d.type == format::RecordType::kTxnCommit, pos});
      } else if (d.kind == record::Kind::kSkip && d.type == format::RecordType::kTxnPrepare) {
        const std::size_t n = d.frame_length - format::kRecordHeaderSize;
        part.prepared.push_back(
            {h.producer_id, h.producer_epoch, pos, std::string(reinterpret_cast<const char*>(a.body()), n)});
      }
    };
    std::erase_if(part.in_flight, [&](std::uint64_t pos) {
      if (pos < from) return true;
      const std::byte* bytes = segment_bytes(s, p, pos >> s.segment_shift, part.look);
      if (bytes == nullptr) return true;
      const record::At a = s.record_at(bytes, pos);
      note(a, pos);
      return a.d.kind != record::Kind::kInProgress;
    });
    std::uint64_t pos = std::max(from, part.scanned_to);
    const std::uint64_t tail = s.tail(p);
    int budget = 1 << 16;  // records per call
    auto visit = [&](const record::At& a, std::uint64_t at) {
      if (budget == 0) return false;
      --budget;
      note(a, at);
      return true;
    };
    while (pos < tail && budget > 0) {
      const std::uint64_t segment = pos >> s.segment_shift;
      // The ring, or a segment file's copy (durable logs).
      const std::byte* bytes = segment_bytes(s, p, segment, part.look);
      if (bytes == nullptr) {
        // Claimed into but never prepared (see read_at).
        const auto stuck = stalled(part.look_stall, pos, /*idle=*/false);
        if (stuck && *stuck >= s.claim_timeout && prepare_unprepared(s, p, segment)) continue;
        break;
      }
      const std::uint64_t segment_end = (pos | s.segment_mask) + 1;
      pos = s.walk_records(bytes, pos, tail, visit);
      if (pos >= tail || pos == segment_end || budget == 0) continue;  // the end, or the next segment
      const record::At a = s.record_at(bytes, pos);
      if (a.committed()) continue;  // committed since the walk stopped
      if (a.d.kind == record::Kind::kInProgress) {
        // Stepped over, and looked at again until it resolves (it may become a marker).
        if (part.in_flight.size() >= 1024) break;  // enough to look at again
        part.in_flight.push_back(pos);
        pos += a.d.aligned_length;
        --budget;
        continue;
      }
      // Not claimed yet, being unblocked, or damaged: look again later.
      // A hole whose producer died before registering its claim is
      // abandoned here as by a reader standing on it: this reader stands
      // at an open transaction before it and would never reach it, and
      // the markers past it would stay unseen.
      if (a.d.kind == record::Kind::kEmpty || a.d.kind == record::Kind::kUnblocking) {
        const auto stuck = stalled(part.look_stall, pos, /*idle=*/a.d.kind == record::Kind::kEmpty && tail <= pos);
        if (stuck && unblock(s, p, pos, *stuck)) continue;
      }
      break;
    }
    part.scanned_to = pos;
  } catch (...) {
    // Out of memory: nothing more is taken from the records ahead; the next poll looks again.
  }
}

// A transaction nobody will finish: its producer died (or it outlived its
// timeout) while open, or died while writing the markers it decided on; or
// one that cannot finish: the backpressure ring filled up behind its record
// at `position` (readers cannot pass it, so producers, its own included,
// wait for room that never comes). Decide "abort" if undecided, then write
// this partition's marker.
void ConsumerState::complete_if_abandoned(Part& part, std::uint64_t position, std::uint16_t id,
                                          std::uint16_t epoch) noexcept {
  try {
    const auto now = Clock::now();
    if (now - part.txn_checked < std::chrono::milliseconds(10)) return;  // liveness reads /proc: not every poll
    part.txn_checked = now;
    const LogState& s = *log;
    if (id >= s.options.max_producers) return;
    auto& slot = s.producer_slot(id);
    auto word = atomic(slot.txn_word);
    std::uint64_t w = word.load(std::memory_order_acquire);
    if (format::txn_epoch(w) != epoch) return;  // the slot moved on: whoever did finishes this one
    const bool alive = atomic(slot.state).load(std::memory_order_acquire) == kActive &&
                       shm::is_alive(load_owner(slot));
    const std::uint64_t since = now_realtime_ns() - atomic(slot.txn_changed_ns).load(std::memory_order_relaxed);
    auto write_marker = [&](format::TxnState decision) {
      if (!helper) {
        ProducerOptions po;
        po.name = "shmlog: completes transactions";
        // Never waits for room in the poll: the slot holds the decision
        // meanwhile, and the next look tries again.
        po.backpressure_timeout = std::chrono::nanoseconds(0);
        auto h = Log(log).producer(po);
        if (!h.ok()) return;
        helper.emplace(std::move(h).value());
      }
      (void)append_control(*helper, part.partition, static_cast<std::uint8_t>(marker_for(decision)), id, epoch, {});
    };
    if (format::txn_state(w) == format::TxnState::kPrepared) {
      // Part of a transaction spanning logs: its coordinator's decision holds.
      if (alive && since < static_cast<std::uint64_t>(s.claim_timeout.count())) return;  // being committed now
      for (const auto& pr : part.prepared) {
        if (pr.id != id || pr.epoch != epoch) continue;
        const auto refs = decode_refs(pr.coordinator);
        if (refs.empty()) return;
        const auto decision =
            coordinator_decision(refs[0], /*decide_abort=*/false, coordinators, Reach::kExistingOnly, s.owner);
        if (decision == format::TxnState::kCommitting || decision == format::TxnState::kAborting) write_marker(decision);
        return;
      }
      return;  // its prepare record is ahead: the look-ahead finds it next time
    }
    if (format::txn_state(w) == format::TxnState::kOpen) {
      const std::uint32_t timeout_ms = atomic(slot.txn_timeout_ms).load(std::memory_order_relaxed);
      const bool expired = timeout_ms != 0 && since > std::uint64_t{timeout_ms} * 1000000;
      const bool ring_full_behind = s.options.policy == Policy::kBackpressure && !s.durable() &&
                                    atomic(s.header->space_waiters).load(std::memory_order_relaxed) > 0 &&
                                    s.tail(part.partition) - position >= (s.ring_segments - 1) << s.segment_shift;
      if (alive && !expired && !ring_full_behind) return;
      (void)decide_abort(slot, w);
      w = word.load(std::memory_order_acquire);
      if (format::txn_epoch(w) != epoch) return;
    }
    if (alive && format::txn_state(w) == format::TxnState::kAborting) {
      // A live producer may still append to it: it writes the markers
      // itself, after its last record, once its commit or abort learns of
      // the decision (a marker before a record would not cover it).
      // Readers skip it meanwhile by the decision in its slot.
      return;
    }
    if (alive && since < static_cast<std::uint64_t>(s.claim_timeout.count())) {
      return;  // decided: its producer is writing the markers
    }
    const auto state = format::txn_state(w);
    if (state == format::TxnState::kCommitting || state == format::TxnState::kAborting) write_marker(state);
  } catch (...) {
    // Out of memory (or a failure reaching the coordinator): the transaction stays
    // undecided here; the next poll tries again.
  }
}

}  // namespace shmlog::detail
