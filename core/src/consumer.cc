#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "durability.h"
#include "log_state.h"
#include "owner.h"
#include "record.h"
#include "shmlog/segments.h"
#include "txn.h"
#include "word_pair.h"
#include "shmlog/log.h"

namespace shmlog {
namespace detail {

using format::atomic;
using Clock = std::chrono::steady_clock;

namespace {
constexpr auto kActive = static_cast<std::uint32_t>(format::SlotState::kActive);
constexpr auto kFree = static_cast<std::uint32_t>(format::SlotState::kFree);
constexpr std::size_t kBatch = 256;
constexpr auto kLivenessInterval = std::chrono::milliseconds(100);
}  // namespace

struct ConsumerState {
  std::shared_ptr<LogState> log;
  bool grouped = false;
  std::uint32_t group = 0;
  std::uint32_t member = 0;
  std::uint64_t joined_ns = 0;  // the member slot's join stamp when this member took it
  bool released = false;        // the others released this member (judged dead): it reads no more
  DeliveryMode mode = DeliveryMode::kAtLeastOnce;
  std::uint32_t commit_every = 1;
  // Whether the ring can reuse a slot under this consumer: always under
  // overwrite, and for a reader without a group (no commit holds its slot).
  bool may_be_lapped = true;
  WaitStrategy wait;
  std::uint64_t epoch_seen = UINT64_MAX;
  Clock::time_point last_liveness_check{};
  std::uint32_t polls_since_check = 0;
  std::uint64_t lost_bytes = 0;
  std::size_t next = 0;  // round-robin start among partitions

  // How long reading has been stuck at one position (see stalled()).
  struct Stall {
    std::uint64_t position = UINT64_MAX;
    std::uint32_t polls = 0;
    Clock::time_point since{};
  };
  struct Part {
    std::uint32_t partition = 0;
    bool owned = false;
    std::uint64_t ownership = 0;  // grouped: the slot's ownership word this member acquired it with
    std::uint64_t position = 0;
    std::uint64_t committed = 0;
    std::uint32_t uncommitted = 0;
    std::uint64_t segment = UINT64_MAX;  // segment whose slot was last validated
    std::byte* segment_base = nullptr;
    // That slot's state word; nullptr while reading a segment file's copy
    // (durable logs: the ring has moved on; the copy does not change).
    const std::uint64_t* descriptor = nullptr;
    SegmentBuffer disk;  // the segment file being read
    SegmentBuffer look;  // read_committed look-ahead in segment files
    Stall stall;       // reading, at the read position
    Stall look_stall;  // the look-ahead, at a hole past an open transaction
    // drop_duplicates: per producer id, (epoch + 1, next sequence expected).
    std::vector<std::pair<std::uint32_t, std::uint64_t>> next_sequence;
    // read_committed: outcomes of transactions found ahead, and how far
    // the look-ahead has read.
    struct Outcome {
      std::uint16_t id = 0;
      std::uint16_t epoch = 0;
      bool committed = false;
      std::uint64_t marker = 0;  // the marker's offset
    };
    std::vector<Outcome> outcomes;
    // Participants of transactions spanning logs: the coordinator each names.
    struct Prepared {
      std::uint16_t id = 0;
      std::uint16_t epoch = 0;
      std::uint64_t position = 0;
      std::string coordinator;  // encoded TxnRef
    };
    std::vector<Prepared> prepared;
    std::uint64_t scanned_to = 0;
    // Claims in flight that the look-ahead passed below scanned_to: each
    // may still become a marker, so each is looked at again.
    std::vector<std::uint64_t> in_flight;
    std::uint64_t scan_base = 0;  // the last position asked about (a smaller one means a seek back)
    Clock::time_point txn_checked{};
  };
  std::vector<Part> parts;
  bool force_stall_check = false;
  bool drop_duplicates = false;
  // Records without a checksum flag are delivered as they are: the log has
  // no checksums (a checksummed log's record without one is torn) and no
  // duplicates are dropped.
  bool fast_unchecked = false;
  bool read_committed = false;
  bool read_durable = false;  // only records below the durable position
  bool control_records = false;  // shmlog's own readers: deliver markers and offsets too
  std::optional<Producer> helper;  // writes the markers of dead producers' transactions
  std::vector<Record> batch;       // at-most-once: read, commit, then hand out
  std::map<std::uint64_t, Log> coordinators;  // logs that decide our participants' transactions
  bool announced_sleeper = false;  // this consumer has set the log's `sleepers`
  PollResult* result = nullptr;  // of the poll in progress
  std::vector<Damage> damage;    // stepped over since take_damage (see note_damage)

  ~ConsumerState() { close(); }

  format::OffsetSlot& slot(const Part& part) const { return log->offset_slot(part.partition, group); }

  enum class Read : std::uint8_t { kRecord, kNone };
  // `stay_in_file`: records already handed out view the segment file copy
  // (a batch): stop at its end rather than load the next over it.
  Read read_at(Part& part, std::uint64_t& position, Record* out, bool stay_in_file = false) noexcept;
  Read read_physical(Part& part, std::uint64_t& position, Record* out, bool stay_in_file) noexcept;
  enum class Delivery : std::uint8_t { kDeliver, kPass, kWait };
  Delivery delivery(Part& part, const Record& r) noexcept;
  enum class Entered : std::uint8_t { kEntered, kMoved, kNone };
  Entered enter_segment(Part& part, std::uint64_t& position, std::uint32_t& skipped) noexcept;
  bool is_duplicate(Part& part, const Record& r) noexcept;
  enum class Txn : std::uint8_t { kCommitted, kAborted, kOpen };
  Txn outcome(Part& part, std::uint64_t position, std::uint16_t id, std::uint16_t epoch) noexcept;
  void look_ahead(Part& part, std::uint64_t from) noexcept;
  void complete_if_abandoned(Part& part, std::uint64_t position, std::uint16_t id, std::uint16_t epoch) noexcept;
  void on_lapped(Part& part, std::uint64_t& position) noexcept;
  void skip_damage_in_file(Part& part, std::uint64_t& position) noexcept;
  void note_damage(std::uint32_t p, std::uint64_t from, std::uint64_t to, const std::string& what) noexcept;
  void note_damage(const Part& part, std::uint64_t from, std::uint64_t to, const char* why) noexcept;
  std::optional<Clock::duration> stalled(Stall& stall, std::uint64_t position, bool idle) noexcept;
  void skip_bad_record(Part& part, std::uint64_t& position, const record::Decoded& d) noexcept;
  bool still_valid(const Part& part, std::uint64_t position) const noexcept;
  // False when another member owns the partition now (this one was
  // released, judged dead): nothing is written, and the partition is no
  // longer this member's.
  bool commit_position(Part& part, std::uint64_t position) noexcept;
  std::size_t poll_partition(Part& part, RecordHandler& handler, std::size_t max);
  void rebalance();
  void check_liveness();
  bool try_acquire(Part& part);
  void release(Part& part) noexcept;
  bool any_ready() const noexcept;
  void close() noexcept;
};

// The record handed out for a decoded data record: views of its key and
// value right behind the header.
inline void fill_record(Record* out, std::uint32_t p, std::uint64_t position, const record::Decoded& d,
                        const format::RecordHeader& header) noexcept {
  const auto* body = reinterpret_cast<const std::byte*>(&header) + format::kRecordHeaderSize;
  const std::uint32_t body_size = d.frame_length - static_cast<std::uint32_t>(format::kRecordHeaderSize);
  out->partition = p;
  out->offset = position;
  out->next_offset = position + d.aligned_length;
  out->timestamp_ns = header.timestamp_ns;
  out->producer_id = header.producer_id;
  out->producer_epoch = header.producer_epoch;
  out->sequence = header.sequence;
  out->transactional = (d.flags & format::kRecordFlagTransactional) != 0;
  out->type = 1;
  out->key = Bytes(body, d.key_length);
  // (Bounded by the body: a damaged flag must not make the value wrap.)
  const std::uint32_t trailer =
      (d.flags & format::kRecordFlagToken) != 0 ? std::min(format::kTokenTrailer, body_size - d.key_length) : 0;
  out->value = Bytes(body + d.key_length, body_size - d.key_length - trailer);
}

// A record boundary at or before `target` in partition p, found by walking
// from the start of target's segment; stops early at an unresolved record.
Result<std::uint64_t> find_boundary(const LogState& s, std::uint32_t p, std::uint64_t target) {
  const std::uint64_t earliest = s.retained_start(p);
  const std::uint64_t tail = s.tail(p);
  if (target < earliest || target > tail) {
    return Status(Status::Code::kInvalidArgument,
                  "offset " + std::to_string(target) + " of partition " + std::to_string(p) + " is not retained (" +
                      std::to_string(earliest) + ".." + std::to_string(tail) + ")");
  }
  std::uint64_t pos = target & ~s.segment_mask;
  if (pos < earliest) pos = earliest;
  SegmentBuffer buffer;
  const std::byte* bytes = segment_bytes(s, p, pos >> s.segment_shift, buffer);
  if (bytes == nullptr) return pos;
  return s.walk_records(bytes, pos, target,
                        [&](const record::At& a, std::uint64_t at) { return at + a.d.aligned_length <= target; });
}

bool ConsumerState::is_duplicate(Part& part, const Record& r) noexcept {
  if (r.producer_id >= log->options.max_producers) return false;
  if (part.next_sequence.empty()) return false;  // sized by poll_partition, outside the noexcept read path
  auto& [epoch_plus_one, expected] = part.next_sequence[r.producer_id];
  if (epoch_plus_one == r.producer_epoch + 1u && r.sequence < expected) return true;
  epoch_plus_one = r.producer_epoch + 1u;
  expected = r.sequence + 1;
  return false;
}

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

// Whether the committed record at `at` (commit word `word`, decoded as
// `d`) passes its checksum. In a log with checksums every record with a
// payload carries one (producers set the flag there and only there), so a
// record without (its flags torn on disk) is as bad as a wrong one. Data
// records and transaction control records alike: a damaged abort marker
// must not read as a commit.
static bool intact(const LogState& s, const record::At& a) noexcept {
  const bool has_checksum = (a.d.flags & format::kRecordFlagChecksum) != 0;
  if (!has_checksum) return !s.options.checksums;
  return record::checksum(*a.header, a.word, a.body(), a.d.frame_length - format::kRecordHeaderSize) ==
         a.header->checksum;
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

void deliver_control_records(Consumer& consumer) noexcept {
  if (consumer.state_) consumer.state_->control_records = true;
}

void ConsumerState::on_lapped(Part& part, std::uint64_t& position) noexcept {
  // A durable log still has what the ring lost, back to its oldest file.
  const std::uint64_t earliest = log->retained_start(part.partition);
  if (earliest > position) {
    lost_bytes += earliest - position;
    if (result != nullptr) result->lost_bytes += earliest - position;
    if (grouped) {  // the owner is the slot's only writer
      auto& lost = slot(part).lost_bytes_total;
      atomic(lost).store(lost + (earliest - position), std::memory_order_relaxed);
    }
    position = earliest;
  }
  part.segment = UINT64_MAX;
}

bool ConsumerState::still_valid(const Part& part, std::uint64_t position) const noexcept {
  const std::uint64_t segment = position >> log->segment_shift;
  if (segment == part.segment && part.descriptor == nullptr) return true;  // a file's copy
  const std::uint64_t* word = segment == part.segment ? part.descriptor
                                                      : &log->descriptor(part.partition, segment).state_word;
  // Pairs with the release that publishes a prepared slot.
  return format::segment_index(atomic(*const_cast<std::uint64_t*>(word)).load(std::memory_order_acquire)) == segment;
}

// The logical level: the physical records (read_physical) that this
// reader's delivery rules let through. `position` ends past every record
// passed over.
ConsumerState::Read ConsumerState::read_at(Part& part, std::uint64_t& position, Record* out,
                                           bool stay_in_file) noexcept {
  const SpeculativeReads speculative;  // checked against the slot's word before use
  const LogState& s = *log;
  // Fast path: a committed data record without checksum in the validated segment.
  if ((position >> s.segment_shift) == part.segment) {
    const record::At a = s.record_at(part.segment_base, position);
    if (a.d.kind == record::Kind::kData && a.d.flags == 0 && fast_unchecked) {
      fill_record(out, part.partition, position, a.d, *a.header);
      if (!may_be_lapped || still_valid(part, position)) return Read::kRecord;
    }
  }
  for (;;) {
    if (read_physical(part, position, out, stay_in_file) == Read::kNone) return Read::kNone;
    switch (delivery(part, *out)) {
      case Delivery::kDeliver: return Read::kRecord;
      case Delivery::kPass: position = out->next_offset; continue;
      case Delivery::kWait: return Read::kNone;
    }
  }
}

// The delivery rules: control records reach only shmlog's own readers;
// read_committed passes an aborted transaction's records and stops at an
// open one's; drop_duplicates passes what a named producer's sequence
// shows delivered already.
ConsumerState::Delivery ConsumerState::delivery(Part& part, const Record& r) noexcept {
  if (r.type != static_cast<std::uint8_t>(format::RecordType::kData)) {
    return control_records ? Delivery::kDeliver : Delivery::kPass;
  }
  if (read_committed && r.transactional) {
    const Txn t = outcome(part, r.offset, r.producer_id, r.producer_epoch);
    if (t == Txn::kOpen) return Delivery::kWait;  // nothing past an open transaction
    if (t == Txn::kAborted) return Delivery::kPass;
  }
  if (drop_duplicates && is_duplicate(part, r)) {
    if (result != nullptr) ++result->duplicates;
    return Delivery::kPass;
  }
  return Delivery::kDeliver;
}

// The physical level: the next data or control record at or after
// `position` of the ring, or of its segment file once the ring moved on,
// whole (its checksum) and of the lap it was read in, filled into `out`.
// Steps over padding, abandoned records and damage (counted), resolves
// stuck claims (unblock) and unprepared segments. kNone: nothing more yet.
ConsumerState::Read ConsumerState::read_physical(Part& part, std::uint64_t& position, Record* out,
                                                 bool stay_in_file) noexcept {
  const LogState& s = *log;
  const std::uint32_t p = part.partition;
  std::uint32_t skipped = 0;  // missing segments stepped over in this call
  for (;;) {
    // Pairs with the keeper's release store after its sync.
    if (read_durable && position >= atomic(s.partition(p).durable_position).load(std::memory_order_acquire)) {
      return Read::kNone;
    }
    if ((position >> s.segment_shift) != part.segment) {
      if (stay_in_file && part.descriptor == nullptr) return Read::kNone;
      const Entered entered = enter_segment(part, position, skipped);
      if (entered == Entered::kNone) return Read::kNone;
      if (entered == Entered::kMoved) continue;
    }
    const record::At a = s.record_at(part.segment_base, position);
    const record::Decoded& d = a.d;
    const bool control = d.kind == record::Kind::kSkip && d.type >= format::RecordType::kTxnCommit;
    switch (d.kind) {
      case record::Kind::kData:
      case record::Kind::kSkip:
        if (d.kind == record::Kind::kData || control) {
          if (!intact(s, a)) {
            skip_bad_record(part, position, d);
            continue;
          }
          fill_record(out, p, position, d, *a.header);
          if (control) out->type = static_cast<std::uint8_t>(d.type);
        }
        // The slot may have been reused while we read (and a reused slot's
        // padding would make the reader step over a record of its own).
        if (may_be_lapped && !still_valid(part, position)) {
          on_lapped(part, position);
          continue;
        }
        if (d.kind == record::Kind::kData || control) return Read::kRecord;
        position += d.aligned_length;  // padding, or an abandoned claim
        continue;
      case record::Kind::kCorrupt:
        if (!still_valid(part, position)) {
          on_lapped(part, position);
          continue;
        }
        if (part.descriptor == nullptr) {
          skip_damage_in_file(part, position);
          continue;
        }
        // Nothing after a bad length can be trusted in this segment of the
        // ring (a claim may be in flight past it): skip to its end and
        // count the bytes.
        if (result != nullptr) result->corrupt += s.segment_size - (position & s.segment_mask);
        note_damage(part, position, (position | s.segment_mask) + 1, "a record with an impossible length");
        position = (position | s.segment_mask) + 1;
        continue;
      case record::Kind::kEmpty:
      case record::Kind::kInProgress:
      case record::Kind::kUnblocking: {
        if (part.descriptor == nullptr) {
          // A segment file is whole: a gap in it is damage, not a claim.
          skip_damage_in_file(part, position);
          continue;
        }
        if (may_be_lapped && !still_valid(part, position)) {  // not ours to unblock: a reused slot
          on_lapped(part, position);
          continue;
        }
        // Usually just "nothing yet"; unblock() abandons a dead or stuck claim.
        const auto stuck = stalled(part.stall, position, d.kind == record::Kind::kEmpty && s.tail(p) <= position);
        if (!stuck || !unblock(s, p, position, *stuck)) return Read::kNone;
        part.stall.position = UINT64_MAX;
        continue;
      }
    }
  }
}

// Moves `part` to the segment `position` lies in: its ring slot when that
// holds it ready (kEntered), its segment file's copy when the ring moved on
// (kEntered), or on past what retention took or damage lost (kMoved:
// `position` changed). kNone: not readable yet (not prepared; an
// unprepared one is prepared here after the claim timeout).
ConsumerState::Entered ConsumerState::enter_segment(Part& part, std::uint64_t& position,
                                                    std::uint32_t& skipped) noexcept {
  const LogState& s = *log;
  const std::uint32_t p = part.partition;
  const std::uint64_t segment = position >> s.segment_shift;
  const std::uint64_t w = atomic(s.descriptor(p, segment).state_word).load(std::memory_order_acquire);
  const std::uint64_t held = format::segment_index(w);
  if (held > segment) {
    // Durable: the ring reused the slot only after the segment was
    // written, so its file has it whole.
    if (const std::byte* copy = disk_segment(s, p, segment, part.disk)) {
      part.segment = segment;
      part.segment_base = const_cast<std::byte*>(copy);
      part.descriptor = nullptr;
      return Entered::kEntered;
    }
    on_lapped(part, position);  // retention took it: counted as lost
    if ((position >> s.segment_shift) == segment) {
      // Retained but missing, unreadable or another segment's file:
      // damage, counted; the next segment goes on, but not past the
      // tail, and no more than a ring's worth per call (descriptors
      // damaged in memory could name any segment).
      const std::uint64_t segment_end = (position | s.segment_mask) + 1;
      if (result != nullptr) result->corrupt += segment_end - position;
      note_damage(p, position, segment_end, part.disk.failure);
      position = segment_end;
      if (++skipped > s.ring_segments || position >= s.tail(p)) return Entered::kNone;
    }
    return Entered::kMoved;
  }
  if (held < segment || format::segment_state(w) != format::SegmentState::kReady) {
    // Claimed into but never prepared (its producer died waiting for
    // room, or preparing it): after the claim timeout, prepare it.
    if ((held == segment || held + s.ring_segments == segment) && position < s.tail(p)) {
      const auto stuck = stalled(part.stall, position, /*idle=*/false);
      if (stuck && *stuck >= s.claim_timeout && prepare_unprepared(s, p, segment)) {
        part.stall.position = UINT64_MAX;
        return Entered::kMoved;
      }
    }
    return Entered::kNone;
  }
  part.segment = segment;
  part.segment_base = s.segment_base(p, segment);
  part.descriptor = &s.descriptor(p, segment).state_word;
  return Entered::kEntered;
}

// How long reading has been stuck at `position`, timed every 64th look (or
// before parking); nullopt when not timed this look. `idle`: nothing is
// claimed there, so it is not a stall.
std::optional<Clock::duration> ConsumerState::stalled(Stall& stall, std::uint64_t position, bool idle) noexcept {
  if (stall.position != position) {
    stall.position = position;
    stall.polls = 0;
    stall.since = Clock::time_point{};
    return std::nullopt;
  }
  if ((++stall.polls & 63) != 0 && !force_stall_check) return std::nullopt;
  const auto now = Clock::now();
  if (stall.since == Clock::time_point{}) {
    if (!idle) stall.since = now;
    return std::nullopt;
  }
  return now - stall.since;
}

// A record that failed its checksum: a lapped reader read a reused slot
// (it moves on as lapped); otherwise the record is damaged, counted and
// stepped over.
void ConsumerState::skip_bad_record(Part& part, std::uint64_t& position, const record::Decoded& d) noexcept {
  if (!still_valid(part, position)) {
    on_lapped(part, position);
    return;
  }
  if (result != nullptr) result->corrupt += d.aligned_length;
  note_damage(part, position, position + d.aligned_length, "a record whose checksum does not match");
  position += d.aligned_length;
}

// A segment file's copy does not change: after damage at `position`,
// reading resumes at the next good record in it (or the next segment),
// and the bytes between are counted.
void ConsumerState::skip_damage_in_file(Part& part, std::uint64_t& position) noexcept {
  const LogState& s = *log;
  const std::span<const std::byte> data(part.segment_base, s.segment_size);
  const std::uint64_t resume = next_good_record(data, position & s.segment_mask, s.max_frame);
  if (result != nullptr) result->corrupt += resume - (position & s.segment_mask);
  note_damage(part, position, (position & ~s.segment_mask) + resume, "damaged records");
  position = (position & ~s.segment_mask) + resume;
}

// Damage stepped over at [from, to) of partition `p`, kept for
// take_damage: merged with the last region when adjacent, dropped past 64
// (counted in PollResult::corrupt all the same). Cold: allocation
// failures drop the note, never the reader.
void ConsumerState::note_damage(std::uint32_t p, std::uint64_t from, std::uint64_t to,
                                const std::string& what) noexcept {
  constexpr std::size_t kKept = 64;
  try {
    if (!damage.empty()) {
      Damage& last = damage.back();
      if (last.partition == p && last.to == from && last.what == what) {
        last.to = to;
        return;
      }
    }
    if (damage.size() < kKept) damage.push_back(Damage{p, from, to, what});
  } catch (...) {
  }
}

// Where `part` reads now: its segment file's copy, or the ring.
void ConsumerState::note_damage(const Part& part, std::uint64_t from, std::uint64_t to, const char* why) noexcept {
  try {
    const std::string where = part.descriptor != nullptr ? (log->memory_path.empty() ? "the log's memory" : "shared memory " + log->memory_path)
                                                         : part.disk.path;
    note_damage(part.partition, from, to, where + ": " + why);
  } catch (...) {
  }
}

bool ConsumerState::commit_position(Part& part, std::uint64_t position) noexcept {
  part.uncommitted = 0;
  if (!grouped || position == part.committed) return true;
  auto& sl = slot(part);
  // One CAS of (offset, ownership) expecting this member's acquisition: a
  // member released while it ran (judged dead) can never move the offset
  // back. A full barrier, so it is ordered before the waiter check
  // (producers increment space_waiters, then re-read committed offsets).
  std::uint64_t offset = part.committed;
  std::uint64_t ownership = part.ownership;
  while (!cas_pair(&sl.committed_offset, offset, ownership, position, part.ownership)) {
    if (ownership != part.ownership) {
      part.owned = false;
      return false;
    }
    // The offset was not what this member last wrote (its acquisition moved
    // it to a record boundary): it is still the owner, so commit over it.
  }
  part.committed = position;
  atomic(sl.commit_time_ns).store(now_realtime_ns(), std::memory_order_relaxed);
  if (atomic(log->header->space_waiters).load(std::memory_order_seq_cst) != 0) log->wake_producers();
  return true;
}

namespace {

// A group member's hold on the ring from `position` while its handler runs
// (format::OffsetSlot::hold), released however the handler leaves.
class Hold {
 public:
  Hold(std::atomic_ref<std::uint64_t> word, const LogState& log, std::uint64_t position_plus_one) noexcept
      : word_(word), log_(log), mine_(position_plus_one) {
    word_.store(position_plus_one, std::memory_order_seq_cst);
  }
  Hold(const Hold&) = delete;
  Hold& operator=(const Hold&) = delete;
  ~Hold() {
    // Only its own: a member released while its handler ran leaves the
    // hold of the partition's new owner alone.
    std::uint64_t mine = mine_;
    word_.compare_exchange_strong(mine, 0, std::memory_order_seq_cst);
    if (atomic(log_.header->space_waiters).load(std::memory_order_seq_cst) != 0) log_.wake_producers();
  }

 private:
  std::atomic_ref<std::uint64_t> word_;
  const LogState& log_;
  std::uint64_t mine_;
};

}  // namespace

std::size_t ConsumerState::poll_partition(Part& part, RecordHandler& handler, std::size_t max) {
  // Cold, once per partition: allocated here, where a failure reaches the
  // caller as an exception, not in read_at, where it would terminate.
  if (drop_duplicates && part.next_sequence.empty()) part.next_sequence.resize(log->options.max_producers);
  const bool lappable = may_be_lapped;
  std::size_t delivered = 0;
  if (mode == DeliveryMode::kAtMostOnce && grouped) {
    // Commit first, then hand out: a crash in the handler loses, never repeats.
    if (batch.empty()) batch.resize(kBatch);  // once: 256 records are 25 KB to construct
    while (delivered < max) {
      const std::size_t want = std::min({max - delivered, std::size_t{commit_every}, kBatch});
      // The views stay valid while the handler runs: the hold keeps the
      // ring from reusing their segments though the commit is past them
      // (set before reading: a durable log reuses what the keeper wrote).
      Hold hold(atomic(slot(part).hold), *log, part.position + 1);
      std::size_t count = 0;
      std::uint64_t position = part.position;
      while (count < want && read_at(part, position, &batch[count], count > 0) == Read::kRecord) {
        position = batch[count].next_offset;
        ++count;
      }
      part.position = position;
      if (count == 0) break;
      if (!commit_position(part, position)) break;  // not ours now: its new owner hands them out
      for (std::size_t i = 0; i < count; ++i) {
        handler(batch[i]);
        if (lappable && !still_valid(part, batch[i].offset)) {
          // The slot was reused during delivery: what follows is gone.
          on_lapped(part, part.position);
          return delivered + i + 1;
        }
      }
      delivered += count;
    }
    return delivered;
  }
  // A durable log reuses the ring once the keeper wrote it, whatever the
  // groups committed: a member's hold keeps the views of this poll valid
  // while the handler runs. Set before reading (producers taking a slot
  // look at the holds again after taking it, see take_slot in prepare.cc).
  std::optional<Hold> hold;
  if (grouped && log->durable()) hold.emplace(atomic(slot(part).hold), *log, part.position + 1);
  Record r;
  while (delivered < max) {
    std::uint64_t position = part.position;
    if (read_at(part, position, &r) != Read::kRecord) {
      part.position = position;  // past any padding or abandoned records
      break;
    }
    handler(r);
    ++delivered;
    part.position = r.next_offset;
    if (lappable && !still_valid(part, r.offset)) {
      on_lapped(part, part.position);
      break;
    }
    if (mode == DeliveryMode::kAtLeastOnce && ++part.uncommitted >= commit_every &&
        !commit_position(part, part.position)) {
      break;  // not ours now: its new owner resumes at the last commit
    }
  }
  return delivered;
}

bool ConsumerState::try_acquire(Part& part) {
  const LogState& s = *log;
  auto ownership = atomic(slot(part).ownership);
  std::uint64_t current = ownership.load(std::memory_order_acquire);
  const std::uint32_t owner = format::ownership_owner(current);
  const std::uint32_t acquisitions = format::ownership_acquisitions(current);
  if (owner != 0 && owner != member + 1) {
    // Held by another member: it lets go when it sees the new membership,
    // or is reaped when it is dead.
    const std::uint32_t m = owner - 1;
    const bool gone = m >= s.options.max_members ||  // garbage
                      atomic(const_cast<std::uint32_t&>(s.member(group, m).state)).load(std::memory_order_acquire) == kFree;
    if (gone) ownership.compare_exchange_strong(current, format::make_ownership(0, acquisitions), std::memory_order_acq_rel);
    return false;
  }
  // A new acquisition (also over an earlier holder of this member index):
  // commits of any earlier one fail from here on.
  const std::uint64_t mine = format::make_ownership(member + 1, acquisitions + 1);
  if (!ownership.compare_exchange_strong(current, mine, std::memory_order_acq_rel)) return false;
  part.ownership = mine;
  // Resume from the group's committed offset (pairs with commit_position's CAS).
  std::uint64_t committed = atomic(slot(part).committed_offset).load(std::memory_order_acquire);
  const std::uint64_t earliest = s.retained_start(part.partition);
  const std::uint64_t tail = s.tail(part.partition);
  if (committed < earliest) {
    lost_bytes += earliest - committed;
    if (result != nullptr) result->lost_bytes += earliest - committed;
    committed = earliest;
  }
  if (committed > tail) committed = tail;
  // Damaged positions: at least stay on the record alignment, below 2^62.
  if (!format::plausible_position(committed)) committed = std::min(committed, format::kMaxPosition) & ~std::uint64_t{format::kRecordAlignment - 1};
  // Shared memory is written by others: resume only at a record boundary.
  auto boundary = find_boundary(s, part.partition, committed);
  part.position = boundary.ok() ? *boundary : committed;
  part.committed = part.position;
  part.uncommitted = 0;
  part.segment = UINT64_MAX;
  part.stall.position = UINT64_MAX;
  part.owned = true;
  return true;
}

void ConsumerState::release(Part& part) noexcept {
  if (!part.owned) return;
  if (mode == DeliveryMode::kAtLeastOnce) commit_position(part, part.position);
  std::uint64_t mine = part.ownership;
  atomic(slot(part).ownership)
      .compare_exchange_strong(mine, format::make_ownership(0, format::ownership_acquisitions(part.ownership)),
                               std::memory_order_acq_rel);
  part.owned = false;
}

void ConsumerState::check_liveness() {
  const LogState& s = *log;
  for (std::uint32_t m = 0; m < s.options.max_members; ++m) {
    if (m == member) continue;
    const auto& other = s.member(group, m);
    if (atomic(const_cast<std::uint32_t&>(other.state)).load(std::memory_order_acquire) != kActive) continue;
    if (shm::is_alive(load_owner(other))) continue;
    AdminLock lock(s);
    if (atomic(const_cast<std::uint32_t&>(other.state)).load(std::memory_order_acquire) == kActive &&
        !shm::is_alive(load_owner(other))) {
      release_member(s, group, m);
    }
  }
}

void ConsumerState::rebalance() {
  if (!grouped || released) return;
  const LogState& s = *log;
  // The clock is read every 1024 polls (or before parking), not every poll.
  if (++polls_since_check >= 1024 || force_stall_check) {
    polls_since_check = 0;
    const auto now = Clock::now();
    if (now - last_liveness_check >= kLivenessInterval) {
      last_liveness_check = now;
      check_liveness();
    }
  }
  const std::uint64_t epoch = atomic(s.group(group).membership_epoch).load(std::memory_order_acquire);
  if (epoch != epoch_seen) {
    epoch_seen = epoch;
    // Released by the others (judged dead while it ran; its slot may be
    // another member's now): it owns nothing and must not act as a member.
    const auto& me = s.member(group, member);
    if (atomic(const_cast<std::uint32_t&>(me.state)).load(std::memory_order_acquire) != kActive ||
        atomic(const_cast<std::uint64_t&>(me.joined_ns)).load(std::memory_order_acquire) != joined_ns) {
      released = true;
      for (Part& part : parts) part.owned = false;  // their acquisitions are stale: commits fail anyway
      parts.clear();
      return;
    }
    // Partition p goes to the (p mod n)-th live member, in slot order.
    std::uint32_t rank = 0, live = 0;
    for (std::uint32_t m = 0; m < s.options.max_members; ++m) {
      if (atomic(s.member(group, m).state).load(std::memory_order_acquire) != kActive) continue;
      if (m == member) rank = live;
      ++live;
    }
    live = std::max<std::uint32_t>(live, 1);
    std::vector<Part> kept;
    for (Part& part : parts) {
      if (part.partition % live == rank) {
        kept.push_back(part);
      } else {
        release(part);
      }
    }
    for (std::uint32_t p = rank; p < s.options.partitions; p += live) {
      if (std::none_of(kept.begin(), kept.end(), [&](const Part& x) { return x.partition == p; })) {
        Part part;
        part.partition = p;
        kept.push_back(part);
      }
    }
    std::sort(kept.begin(), kept.end(), [](const Part& a, const Part& b) { return a.partition < b.partition; });
    parts = std::move(kept);
    // Others waiting for partitions we let go of: wake them.
    s.wake_consumers();
  }
  for (Part& part : parts) {
    if (!part.owned) try_acquire(part);
  }
}

bool ConsumerState::any_ready() const noexcept {
  // A hint poll checks again: the slot may be reused (an overwrite ring
  // lapping this reader) between its check and the word's load.
  const SpeculativeReads speculative;
  const LogState& s = *log;
  for (const Part& part : parts) {
    if (!part.owned) continue;
    const std::uint64_t segment = part.position >> s.segment_shift;
    const std::uint64_t w = atomic(s.descriptor(part.partition, segment).state_word).load(std::memory_order_acquire);
    if (format::segment_index(w) != segment) return true;  // lapped or moved on: poll handles it
    if (format::segment_state(w) != format::SegmentState::kReady) continue;
    const std::uint64_t v = atomic(*word_at(s, part.partition, part.position)).load(std::memory_order_seq_cst);
    if (format::word_length(v) > 0) return true;
  }
  return false;
}

void ConsumerState::close() noexcept {
  if (!log) return;
  if (grouped && !released) {
    for (Part& part : parts) release(part);
    AdminLock lock(*log);
    const auto& me = log->member(group, member);
    if (atomic(const_cast<std::uint64_t&>(me.joined_ns)).load(std::memory_order_acquire) == joined_ns) {
      release_member(*log, group, member);
    }
  }
  parts.clear();
  log.reset();
}

}  // namespace detail

// ----------------------------------------------------------------------------

using detail::ConsumerState;

namespace {

Result<std::uint64_t> start_position(const detail::LogState& s, std::uint32_t p, const StartFrom& from) {
  switch (from.kind) {
    case StartFrom::Kind::kEarliest: return detail::checked_position(s, p, "start position", s.retained_start(p));
    case StartFrom::Kind::kLatest: return detail::checked_position(s, p, "tail position", s.tail(p));
    case StartFrom::Kind::kOffset: {
      auto boundary = detail::find_boundary(s, p, from.offset);
      if (!boundary.ok()) return boundary;
      if (*boundary != from.offset) {
        return Status(Status::Code::kInvalidArgument,
                      "offset " + std::to_string(from.offset) + " of partition " + std::to_string(p) +
                          " is not a record boundary (the record there starts at " + std::to_string(*boundary) + ")");
      }
      return from.offset;
    }
  }
  return s.earliest(p);
}

}  // namespace

Result<Consumer> Log::consumer(const ConsumerOptions& options) const {
  const detail::LogState& s = *state_;
  if (s.read_only) return Status(Status::Code::kPermissionDenied, s.path + " is attached read-only");
  if (options.commit_every < 1) {
    return Status(Status::Code::kInvalidArgument, "commit_every must be at least 1");
  }
  if (options.core >= 0) SHMLOG_RETURN_IF_ERROR(pin_current_thread(static_cast<unsigned>(options.core)));
  auto st = std::make_unique<ConsumerState>();
  st->log = state_;
  st->mode = options.mode;
  st->commit_every = options.commit_every;
  st->drop_duplicates = options.drop_duplicates;
  st->fast_unchecked = !options.drop_duplicates && !s.options.checksums;
  st->read_committed = options.isolation == Isolation::kReadCommitted;
  st->read_durable = options.read_durable;
  if (options.read_durable && !s.durable()) {
    return Status(Status::Code::kInvalidArgument, "read_durable needs a durable log; " + s.path + " has durability none");
  }
  st->wait = options.wait;
  if (options.group.empty()) {
    std::vector<std::uint32_t> partitions = options.partitions;
    if (partitions.empty()) {
      for (std::uint32_t p = 0; p < s.options.partitions; ++p) partitions.push_back(p);
    }
    for (std::uint32_t p : partitions) {
      if (p >= s.options.partitions) {
        return Status(Status::Code::kInvalidArgument, "partition " + std::to_string(p) +
                                                          " out of range: the log has " +
                                                          std::to_string(s.options.partitions));
      }
      auto start = start_position(s, p, options.from);
      if (!start.ok()) return std::move(start).status();
      ConsumerState::Part part;
      part.partition = p;
      part.owned = true;
      part.position = part.committed = *start;
      st->parts.push_back(part);
    }
    return Consumer(std::move(st));
  }
  if (!options.partitions.empty()) {
    return Status(Status::Code::kInvalidArgument, "a group member cannot choose partitions: the group assigns them");
  }
  if (options.group.size() >= format::kNameCapacity || options.group.find('\0') != std::string::npos) {
    return Status(Status::Code::kInvalidArgument, "group name must be 1..63 bytes without NUL");
  }
  const auto active = static_cast<std::uint32_t>(format::SlotState::kActive);
  const auto free_state = static_cast<std::uint32_t>(format::SlotState::kFree);
  {
    detail::AdminLock lock(s);
    std::uint32_t g = 0, free_group = s.options.max_groups;
    for (; g < s.options.max_groups; ++g) {
      auto& group = s.group(g);
      const std::uint32_t state = format::atomic(group.state).load(std::memory_order_acquire);
      if (state == active && options.group == std::string(group.name, strnlen(group.name, sizeof group.name))) break;
      if (state == free_state && free_group == s.options.max_groups) free_group = g;
    }
    if (g == s.options.max_groups) {
      if (free_group == s.options.max_groups) {
        return Status(Status::Code::kBusy, "all " + std::to_string(s.options.max_groups) + " group slots of " +
                                               s.path + " are in use (see --max-groups)");
      }
      g = free_group;
      auto& group = s.group(g);
      // A new group starts where `from` says, on every partition.
      for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
        auto start = start_position(s, p, options.from);
        if (!start.ok()) return std::move(start).status();
        auto& slot = s.offset_slot(p, g);
        slot.ownership = format::make_ownership(0, format::ownership_acquisitions(slot.ownership));
        slot.commit_time_ns = 0;
        slot.lost_bytes_total = 0;
        format::atomic(slot.committed_offset).store(*start, std::memory_order_relaxed);
      }
      std::memset(group.name, 0, sizeof group.name);
      std::memcpy(group.name, options.group.data(), options.group.size());
      group.created_ns = detail::now_realtime_ns();
      for (std::uint32_t m = 0; m < s.options.max_members; ++m) s.member(g, m).state = free_state;
      // Activation publishes the slots (pairs with min_committed's acquire).
      format::atomic(group.state).store(active, std::memory_order_release);
    }
    std::uint32_t m = 0;
    while (m < s.options.max_members &&
           format::atomic(s.member(g, m).state).load(std::memory_order_acquire) != free_state) {
      ++m;
    }
    if (m == s.options.max_members) {
      return Status(Status::Code::kBusy, "group '" + options.group + "' already has " +
                                             std::to_string(s.options.max_members) + " members (see --max-members)");
    }
    auto& member = s.member(g, m);
    const shm::ProcessId self = shm::self();
    detail::store_owner(member, self);
    // Also this join's stamp: never the slot's previous member's, so a
    // member released from this slot can tell it is not its own now.
    const std::uint64_t joined = std::max(detail::now_realtime_ns(), member.joined_ns + 1);
    format::atomic(member.joined_ns).store(joined, std::memory_order_relaxed);
    format::atomic(member.state).store(active, std::memory_order_release);
    format::atomic(s.group(g).membership_epoch).fetch_add(1, std::memory_order_acq_rel);
    st->grouped = true;
    // Durable: the ring moves on without the group (it then reads files).
    st->may_be_lapped = s.options.policy == Policy::kOverwrite || s.durable();
    st->group = g;
    st->member = m;
    st->joined_ns = joined;
  }
  s.wake_consumers();  // members parked in poll_wait pick up the new membership
  st->rebalance();
  return Consumer(std::move(st));
}

Consumer::Consumer(std::unique_ptr<ConsumerState> state) : state_(std::move(state)) {}
Consumer::Consumer(Consumer&&) noexcept = default;
Consumer& Consumer::operator=(Consumer&&) noexcept = default;
Consumer::~Consumer() = default;

PollResult Consumer::poll(RecordHandler handler, std::size_t max) {
  PollResult result;
  ConsumerState* st = state_.get();
  if (st == nullptr || !st->log || max == 0) return result;
  st->result = &result;
  st->rebalance();
  // Round robin over partitions, starting one further each poll (no division).
  const std::size_t n = st->parts.size();
  if (st->next >= n) st->next = 0;
  std::size_t i = st->next;
  for (std::size_t visited = 0; visited < n && result.records < max; ++visited) {
    auto& part = st->parts[i];
    if (part.owned) result.records += st->poll_partition(part, handler, max - result.records);
    if (++i == n) i = 0;
  }
  ++st->next;
  st->result = nullptr;
  return result;
}

PollResult Consumer::poll_wait(RecordHandler handler, std::size_t max, std::chrono::nanoseconds timeout) {
  ConsumerState* st = state_.get();
  if (st == nullptr || !st->log) return {};
  const detail::LogState& s = *st->log;
  const auto deadline = detail::Clock::now() + timeout;
  Waiter waiter(st->wait);
  for (std::uint32_t round = 0;; ++round) {
    PollResult r = poll(handler, max);
    st->force_stall_check = false;
    if (r.records > 0 || r.lost_bytes > 0 || r.corrupt > 0) return r;
    if ((round & 15) == 0 && detail::Clock::now() >= deadline) return r;
    if (!waiter.idle(0)) continue;
    // Park until a producer commits (it wakes us when waiters > 0). The
    // timeout bounds the time to notice stalled claims and group changes.
    // The first park announces that consumers may sleep; a producer that
    // read the flag just before may not wake us, so that park is short.
    std::chrono::nanoseconds longest = std::chrono::milliseconds(5);
    if (!st->announced_sleeper) {
      st->announced_sleeper = true;
      auto sleepers = format::atomic(s.header->sleepers);
      if (sleepers.load(std::memory_order_relaxed) == 0) {
        sleepers.store(1, std::memory_order_seq_cst);
        longest = std::chrono::microseconds(100);
      }
    }
    auto waiters = format::atomic(s.header->data_waiters);
    waiters.fetch_add(1, std::memory_order_seq_cst);
    const std::uint32_t seen = format::atomic(s.header->data_seq).load(std::memory_order_seq_cst);
    if (!st->any_ready()) {
      const auto left = deadline - detail::Clock::now();
      shm::futex_wait(&s.header->data_seq, seen, std::min<std::chrono::nanoseconds>(left, longest));
    }
    waiters.fetch_sub(1, std::memory_order_seq_cst);
    st->force_stall_check = true;
    waiter.reset();
    if (detail::Clock::now() >= deadline) {
      PollResult last = poll(handler, max);
      st->force_stall_check = false;
      return last;
    }
  }
}

void Consumer::commit() noexcept {
  ConsumerState* st = state_.get();
  if (st == nullptr || !st->log) return;
  for (auto& part : st->parts) {
    if (part.owned) st->commit_position(part, part.position);
  }
}

Status Consumer::commit(std::uint32_t partition, std::uint64_t offset) {
  ConsumerState* st = state_.get();
  if (st == nullptr || !st->log) return Status(Status::Code::kInvalidArgument, "consumer is closed");
  for (auto& part : st->parts) {
    if (part.partition != partition || !part.owned) continue;
    if (offset > part.position) {
      return Status(Status::Code::kInvalidArgument, "cannot commit offset " + std::to_string(offset) +
                                                        " beyond the position " + std::to_string(part.position) +
                                                        " of partition " + std::to_string(partition));
    }
    if (offset != part.position) {
      auto boundary = detail::find_boundary(*st->log, partition, offset);
      if (!boundary.ok()) return std::move(boundary).status();
      if (*boundary != offset) {
        return Status(Status::Code::kInvalidArgument, "offset " + std::to_string(offset) + " is not a record boundary");
      }
    }
    if (!st->commit_position(part, offset)) {
      const std::string group_name(st->log->group(st->group).name);
      return Status(Status::Code::kAborted, "partition " + std::to_string(partition) + " of group '" + group_name +
                                                "' belongs to another member now (this one was released as dead): "
                                                "the commit was refused");
    }
    return {};
  }
  return Status(Status::Code::kInvalidArgument,
                "partition " + std::to_string(partition) + " is not assigned to this consumer");
}

Status Consumer::seek(std::uint32_t partition, std::uint64_t offset) {
  ConsumerState* st = state_.get();
  if (st == nullptr || !st->log) return Status(Status::Code::kInvalidArgument, "consumer is closed");
  for (auto& part : st->parts) {
    if (part.partition != partition || !part.owned) continue;
    auto start = start_position(*st->log, partition, StartFrom::at(offset));
    if (!start.ok()) return std::move(start).status();
    part.position = *start;
    part.uncommitted = 0;
    part.segment = UINT64_MAX;
    part.stall.position = UINT64_MAX;
    return {};
  }
  return Status(Status::Code::kInvalidArgument,
                "partition " + std::to_string(partition) + " is not assigned to this consumer");
}

namespace {

// The timestamp and offset of the first data record at or after `from` in
// one segment's bytes, with a timestamp at or after `time_ns`.
std::optional<std::uint64_t> first_at_or_after(const detail::LogState& s, const std::byte* bytes,
                                               std::uint64_t from, std::uint64_t end, std::uint64_t time_ns,
                                               std::uint64_t* first_time) {
  std::optional<std::uint64_t> found;
  s.walk_records(bytes, from, end, [&](const record::At& a, std::uint64_t at) {
    if (a.d.kind != record::Kind::kData) return true;
    if (first_time != nullptr && *first_time == UINT64_MAX) *first_time = a.header->timestamp_ns;
    if (a.header->timestamp_ns >= time_ns) found = at;
    return !found;
  });
  return found;
}

}  // namespace

Result<std::uint64_t> Consumer::seek_time(std::uint32_t partition, std::uint64_t time_ns) {
  ConsumerState* st = state_.get();
  if (st == nullptr || !st->log) return Status(Status::Code::kInvalidArgument, "consumer is closed");
  const detail::LogState& s = *st->log;
  for (auto& part : st->parts) {
    if (part.partition != partition || !part.owned) continue;
    auto start_or = detail::checked_position(s, partition, "start position", s.retained_start(partition));
    auto tail_or = detail::checked_position(s, partition, "tail position", s.tail(partition));
    if (!start_or.ok()) return start_or;
    if (!tail_or.ok()) return tail_or;
    const std::uint64_t start = *start_or;
    // Not past what the ring holds: a tail damaged in memory is not walked.
    const std::uint64_t tail = std::min(*tail_or, s.ring_end(partition));
    std::uint64_t found = tail;
    detail::SegmentBuffer buffer;
    // Segments in offset order; timestamps are the producers' clocks, so
    // "first at or after" is in offset order, not the minimum by time.
    std::uint64_t lo = start >> s.segment_shift, hi = tail == 0 ? 0 : (tail - 1) >> s.segment_shift;
    // Binary search for the last segment whose first record is older.
    std::uint64_t from_segment = lo;
    while (lo <= hi && tail > start) {
      const std::uint64_t mid = lo + (hi - lo) / 2;
      const std::byte* bytes = detail::segment_bytes(s, partition, mid, buffer);
      std::uint64_t first = UINT64_MAX;
      const std::uint64_t begin = std::max(start, mid << s.segment_shift);
      if (bytes != nullptr) {
        (void)first_at_or_after(s, bytes, begin, std::min(tail, (mid + 1) << s.segment_shift), 0, &first);
      }
      if (bytes != nullptr && first != UINT64_MAX && first < time_ns) {
        from_segment = mid;
        lo = mid + 1;
      } else {
        if (mid == 0) break;
        hi = mid - 1;
      }
    }
    // Segments from the start to the tail are all in the ring or on disk,
    // but for damage: a run of missing ones longer than the ring means the
    // positions are damaged, and nothing past it is walked.
    std::uint32_t missing = 0;
    for (std::uint64_t segment = from_segment; (segment << s.segment_shift) < tail; ++segment) {
      const std::byte* bytes = detail::segment_bytes(s, partition, segment, buffer);
      if (bytes == nullptr && ++missing > s.ring_segments) break;
      if (bytes == nullptr) continue;
      missing = 0;
      const std::uint64_t begin = std::max(start, segment << s.segment_shift);
      auto hit = first_at_or_after(s, bytes, begin, std::min(tail, (segment + 1) << s.segment_shift), time_ns, nullptr);
      if (hit) {
        found = *hit;
        break;
      }
    }
    part.position = found;
    part.uncommitted = 0;
    part.segment = UINT64_MAX;
    part.stall.position = UINT64_MAX;
    return found;
  }
  return Status(Status::Code::kInvalidArgument,
                "partition " + std::to_string(partition) + " is not assigned to this consumer");
}

std::optional<std::uint64_t> Consumer::position(std::uint32_t partition) const noexcept {
  if (!state_) return std::nullopt;
  for (const auto& part : state_->parts) {
    if (part.partition == partition && part.owned) return part.position;
  }
  return std::nullopt;
}

std::vector<std::uint32_t> Consumer::assignment() const {
  std::vector<std::uint32_t> owned;
  if (!state_) return owned;
  for (const auto& part : state_->parts) {
    if (part.owned) owned.push_back(part.partition);
  }
  return owned;
}

std::uint64_t Consumer::lost_bytes() const noexcept { return state_ ? state_->lost_bytes : 0; }

std::vector<Damage> Consumer::take_damage() {
  if (!state_) return {};
  return std::exchange(state_->damage, {});
}

void Consumer::close() noexcept {
  if (state_) state_->close();
}

}  // namespace shmlog
