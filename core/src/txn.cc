#include "txn.h"

#include <cstring>

#include "owner.h"
#include "producer_state.h"
#include "test_hooks.h"
#include "shmlog/shm/process.h"

namespace shmlog::detail {

using format::atomic;

const LogState& Internals::state(const Log& log) { return *log.state_; }

std::string encode_refs(const std::vector<TxnRef>& refs) {
  std::string out;
  for (const auto& r : refs) {
    const auto n = static_cast<std::uint16_t>(r.dir.size());
    out.append(reinterpret_cast<const char*>(&r.log_id), 8);
    out.append(reinterpret_cast<const char*>(&r.slot), 2);
    out.append(reinterpret_cast<const char*>(&r.epoch), 2);
    out.append(reinterpret_cast<const char*>(&n), 2);
    out.append(r.dir);
  }
  return out;
}

std::vector<TxnRef> decode_refs(std::string_view in) {
  std::vector<TxnRef> out;
  while (in.size() >= 14) {
    TxnRef r;
    std::uint16_t n = 0;
    std::memcpy(&r.log_id, in.data(), 8);
    std::memcpy(&r.slot, in.data() + 8, 2);
    std::memcpy(&r.epoch, in.data() + 10, 2);
    std::memcpy(&n, in.data() + 12, 2);
    if (in.size() < 14u + n) break;
    r.dir.assign(in.substr(14, n));
    out.push_back(std::move(r));
    in.remove_prefix(14u + n);
  }
  return out;
}

std::string encode_offsets(const std::map<std::pair<std::string, std::uint32_t>, std::uint64_t>& offsets) {
  std::string out;
  for (const auto& [key, offset] : offsets) {
    const auto& [group, partition] = key;
    const auto n = static_cast<std::uint16_t>(group.size());
    out.append(reinterpret_cast<const char*>(&n), 2);
    out.append(group);
    out.append(reinterpret_cast<const char*>(&partition), 4);
    out.append(reinterpret_cast<const char*>(&offset), 8);
  }
  return out;
}

std::vector<std::pair<std::uint32_t, std::uint64_t>> decode_offsets(std::string_view in, const std::string& group) {
  std::vector<std::pair<std::uint32_t, std::uint64_t>> out;
  while (in.size() >= 2) {
    std::uint16_t n = 0;
    std::memcpy(&n, in.data(), 2);
    if (in.size() < 2u + n + 12u) break;  // damaged: stop (the record had a whole commit word)
    const std::string_view name = in.substr(2, n);
    std::uint32_t partition = 0;
    std::uint64_t offset = 0;
    std::memcpy(&partition, in.data() + 2 + n, 4);
    std::memcpy(&offset, in.data() + 6 + n, 8);
    if (name == group) out.emplace_back(partition, offset);
    in.remove_prefix(2u + n + 12u);
  }
  return out;
}

format::TxnState coordinator_decision(const TxnRef& ref, bool decide_abort, std::map<std::uint64_t, Log>& open_logs,
                                      Reach reach, std::uint32_t owner) {
  auto it = open_logs.find(ref.log_id);
  if (it == open_logs.end()) {
    auto log = reach == Reach::kOpen ? Log::open(ref.dir) : Internals::open_existing(ref.dir, owner);
    if (!log.ok() || log->id() != ref.log_id) return format::TxnState::kOpen;  // not reachable now: wait
    it = open_logs.emplace(ref.log_id, std::move(log).value()).first;
  }
  const LogState& s = Internals::state(it->second);
  if (ref.slot >= s.options.max_producers) return format::TxnState::kAborting;  // cannot be: treat as never decided commit
  auto& slot = s.producer_slot(ref.slot);
  auto word = atomic(slot.txn_word);
  std::uint64_t w = word.load(std::memory_order_acquire);
  if (format::txn_epoch(w) != ref.epoch) return format::TxnState::kDone;  // moved on: it finished everywhere first
  const auto state = format::txn_state(w);
  if (state != format::TxnState::kOpen) return state;
  const bool alive = atomic(slot.state).load(std::memory_order_acquire) == static_cast<std::uint32_t>(format::SlotState::kActive) &&
                     shm::is_alive(load_owner(slot));
  if (alive && !decide_abort) return format::TxnState::kOpen;
  std::uint64_t open = w;
  word.compare_exchange_strong(open, format::with_txn_state(w, format::TxnState::kAborting), std::memory_order_acq_rel);
  w = word.load(std::memory_order_acquire);
  return format::txn_epoch(w) == ref.epoch ? format::txn_state(w) : format::TxnState::kDone;
}

bool decide_abort(format::ProducerSlot& slot, std::uint64_t open_word) noexcept {
  if (!atomic(slot.txn_word)
           .compare_exchange_strong(open_word, format::with_txn_state(open_word, format::TxnState::kAborting),
                                    std::memory_order_acq_rel)) {
    return false;
  }
  atomic(slot.txn_changed_ns).store(now_realtime_ns(), std::memory_order_relaxed);
  return true;
}

Status finish_part(const Log& log, std::uint16_t slot_id, std::uint16_t epoch, format::TxnState decision) {
  const LogState& s = Internals::state(log);
  if (slot_id >= s.options.max_producers) return {};
  ProducerOptions po;
  po.name = "shmlog: finishes transactions";
  auto helper = log.producer(po);
  if (!helper.ok()) return std::move(helper).status();
  const auto type = marker_for(decision);
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
    Errc e = append_control(*helper, p, static_cast<std::uint8_t>(type), slot_id, epoch, {});
    if (e != Errc::kOk) return Status(Status::Code::kBusy, "writing a transaction marker in " + s.path + ": " + errc_name(e));
  }
  auto word = atomic(s.producer_slot(slot_id).txn_word);
  std::uint64_t w = word.load(std::memory_order_acquire);
  if (format::txn_epoch(w) == epoch && format::txn_state(w) != format::TxnState::kDone) {
    word.compare_exchange_strong(w, format::with_txn_state(w, format::TxnState::kDone), std::memory_order_acq_rel);
  }
  return {};
}

// ---- a producer's transactions --------------------------------------------

Errc ProducerState::append_control(std::uint32_t p, format::RecordType type, std::uint16_t txn_id,
                                   std::uint16_t txn_epoch, Bytes value) noexcept {
  if (claim_open) return Errc::kBadState;
  const auto frame = static_cast<std::uint32_t>(format::kRecordHeaderSize + value.size());
  if (value.size() > max_record) return Errc::kTooLarge;
  const Errc e = take_claim(p, frame, 0);
  if (e != Errc::kOk) return e;
  if (!value.empty()) std::memcpy(claim_header + 1, value.data(), value.size());
  control = {true, type, txn_id, txn_epoch};
  AppendResult r = commit(record_timestamp(*this));
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

}  // namespace shmlog::detail

namespace shmlog {

using detail::ProducerState;

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
      if constexpr (detail::hooks::kEnabled) {
        if (detail::hooks::die_in_commit == 1) shm::kill_self();
      }
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
  if constexpr (detail::hooks::kEnabled) {
    if (detail::hooks::die_in_commit == 2) shm::kill_self();
  }
  st->txn_open = false;
  st->count_transaction_sequences();  // a participant of a commit across logs: not counted at a decision
  if (!st->txn_offsets.empty()) st->committed_offsets = detail::encode_offsets(st->txn_offsets);
  st->mark_done();
  return {};
}

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
  if constexpr (detail::hooks::kEnabled) {
    if (detail::hooks::die_in_multi_log_commit == 1) shm::kill_self();
  }
  // 3. The decision, in the coordinator.
  Status decided = producers[0]->decide_commit();
  if (!decided.ok()) {  // a reader decided abort (or the coordinator was fenced)
    (void)abort_participants(producers, 1);
    if (producers[0]->state_->txn_open) (void)producers[0]->finish_abort();
    return decided;
  }
  if constexpr (detail::hooks::kEnabled) {
    if (detail::hooks::die_in_multi_log_commit == 2) shm::kill_self();
  }
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

}  // namespace shmlog
