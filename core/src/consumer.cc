// A consumer's read path (consumer_state.h names the other units): the
// physical read of the ring or a segment file, the delivery rules over it,
// poll and commits; Log::consumer; the public Consumer API.
#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "consumer_state.h"
#include "owner.h"
#include "record.h"
#include "shmlog/segments.h"
#include "txn.h"
#include "word_pair.h"
#include "shmlog/log.h"

namespace shmlog {
namespace detail {

using format::atomic;

namespace {
constexpr std::size_t kBatch = 256;
}  // namespace

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

// The logical level: the physical records (read_physical) that this
// reader's delivery rules let through. `position` ends past every record
// passed over. Inline, the common case only: a committed data record
// without checksum in the segment last validated, when no rule applies
// (fast_unchecked); everything else out of line (read_slow), so that the
// common case pays for no more than it does.
inline ConsumerState::Read ConsumerState::read_at(Part& part, std::uint64_t& position, Record* out,
                                                  bool stay_in_file) noexcept {
  const LogState& s = *log;
  if ((position >> s.segment_shift) == part.segment && fast_unchecked) {
    const SpeculativeReads speculative;  // checked against the slot's word before use
    const record::At a = s.record_at(part.segment_base, position);
    if (a.d.kind == record::Kind::kData && a.d.flags == 0) {
      fill_record(out, part.partition, position, a.d, *a.header);
      if (!may_be_lapped || still_valid(part, position)) return Read::kRecord;
    }
  }
  return read_slow(part, position, out, stay_in_file);
}

ConsumerState::Read ConsumerState::read_slow(Part& part, std::uint64_t& position, Record* out,
                                             bool stay_in_file) noexcept {
  const SpeculativeReads speculative;  // checked against the slot's word before use
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
      fast = nullptr;
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

bool commit_fast(ConsumerHot& h) noexcept {
  auto& part = static_cast<ConsumerState::Part&>(*h.fast);
  return static_cast<ConsumerState&>(h).commit_position(part, part.position);
}

// The inline poll (Consumer::poll in shmlog/log.h) reads a plain data
// record of the slot last validated and leaves all else to the library's
// poll, as read_at's inline part does; it reads one partition, and only
// where no rule of this reader applies to such a record: no checksums, no
// duplicates dropped, not durable (segment files, holds, read_durable),
// and no commit before handing out (at-most-once).
void ConsumerState::refresh_fast() noexcept {
  fast = nullptr;
  if (!log || released || parts.size() != 1 || !parts.front().owned) return;
  if (!fast_unchecked || read_durable || log->durable() || (grouped && mode == DeliveryMode::kAtMostOnce)) return;
  fast = &parts.front();
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
    if (commits_as_it_reads && ++part.uncommitted >= commit_every &&
        !commit_position(part, part.position)) {
      break;  // not ours now: its new owner resumes at the last commit
    }
  }
  return delivered;
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
  fast = nullptr;
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
  if (options.short_poll_backoff.count() < 0) {
    return Status(Status::Code::kInvalidArgument, "short_poll_backoff must not be negative");
  }
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
  st->segment_size = s.segment_size;
  st->segment_shift = s.segment_shift;
  st->max_frame = s.max_frame;
  st->read_committed = options.isolation == Isolation::kReadCommitted;
  st->read_durable = options.read_durable;
  if (options.read_durable && !s.durable()) {
    return Status(Status::Code::kInvalidArgument, "read_durable needs a durable log; " + s.path + " has durability none");
  }
  st->wait = options.wait;
  st->short_poll_backoff = options.short_poll_backoff;
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
    st->membership_epoch = &s.group(g).membership_epoch;
    st->commits_as_it_reads = st->mode == DeliveryMode::kAtLeastOnce;
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

Consumer::Consumer(std::unique_ptr<ConsumerState> state) : state_(std::move(state)), hot_(state_.get()) {}
Consumer::Consumer(Consumer&& other) noexcept
    : state_(std::move(other.state_)), hot_(std::exchange(other.hot_, nullptr)) {}
Consumer& Consumer::operator=(Consumer&& other) noexcept {
  state_ = std::move(other.state_);
  hot_ = std::exchange(other.hot_, nullptr);
  return *this;
}
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
  st->refresh_fast();
  return result;
}

namespace {

// poll_wait's loop: polls until a record comes or `deadline` passes, with
// the consumer's wait strategy, parking where it says so.
PollResult wait_and_poll(Consumer& consumer, ConsumerState* st, RecordHandler& handler, std::size_t max,
                         detail::Clock::time_point deadline) {
  const detail::LogState& s = *st->log;
  Waiter waiter(st->wait);
  for (std::uint32_t round = 0;; ++round) {
    PollResult r = consumer.poll<RecordHandler&>(handler, max);  // inline while it may
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
      PollResult last = consumer.poll<RecordHandler&>(handler, max);
      st->force_stall_check = false;
      return last;
    }
  }
}

}  // namespace

PollResult Consumer::poll_wait(RecordHandler handler, std::size_t max, std::chrono::nanoseconds timeout) {
  ConsumerState* st = state_.get();
  if (st == nullptr || !st->log) return {};
  const auto deadline = detail::Clock::now() + timeout;
  if (st->back_off_until != detail::Clock::time_point{}) {
    // The last call came back short: let the producers run ahead first.
    const auto until = std::min(st->back_off_until, deadline);
    st->back_off_until = {};
    while (detail::Clock::now() < until) shm::cpu_relax();
  }
  PollResult r = wait_and_poll(*this, st, handler, max, deadline);
  if (st->short_poll_backoff.count() > 0 && r.records > 0 && r.records < max) {
    st->back_off_until = detail::Clock::now() + st->short_poll_backoff;
  }
  return r;
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

