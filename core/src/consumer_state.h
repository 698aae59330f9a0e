// A consumer's state behind the public Consumer handle. Its units:
//   consumer.cc        the read path in two levels (read_physical: the ring
//                      or a segment file; delivery: the rules of this
//                      reader), poll and commits, Log::consumer, the API
//   read_committed.cc  transactions as a reader sees them: outcomes from
//                      the markers ahead, finishing abandoned ones
//   groups.cc          group membership: taking and releasing partitions,
//                      members' liveness, rebalancing
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "durability.h"
#include "format.h"
#include "log_state.h"
#include "record.h"
#include "shmlog/log.h"
#include "shmlog/wait.h"

namespace shmlog::detail {

using Clock = std::chrono::steady_clock;

// ConsumerHot (shmlog/detail/consumer_hot.h): what the inline poll reads.
struct ConsumerState : ConsumerHot {
  std::shared_ptr<LogState> log;
  bool grouped = false;
  std::uint32_t group = 0;
  std::uint32_t member = 0;
  std::uint64_t joined_ns = 0;  // the member slot's join stamp when this member took it
  bool released = false;        // the others released this member (judged dead): it reads no more
  DeliveryMode mode = DeliveryMode::kAtLeastOnce;
  WaitStrategy wait;
  std::chrono::nanoseconds short_poll_backoff{};  // ConsumerOptions'
  Clock::time_point back_off_until{};  // the next poll_wait waits until then (its last call came back short)
  Clock::time_point last_liveness_check{};
  std::uint64_t lost_bytes = 0;
  std::size_t next = 0;  // round-robin start among partitions

  // How long reading has been stuck at one position (see stalled()).
  struct Stall {
    std::uint64_t position = UINT64_MAX;
    std::uint32_t polls = 0;
    Clock::time_point since{};
  };
  // ReadCursor: partition, position, uncommitted, and the slot last
  // validated (segment, segment_base, descriptor).
  struct Part : ReadCursor {
    bool owned = false;
    std::uint64_t ownership = 0;  // grouped: the slot's ownership word this member acquired it with
    std::uint64_t committed = 0;
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
  [[gnu::noinline]] Read read_slow(Part& part, std::uint64_t& position, Record* out, bool stay_in_file) noexcept;
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
  // Whether the slot that held `position`'s segment still holds it (an
  // overwrite ring may have lapped this reader). Inline: twice per record.
  bool still_valid(const Part& part, std::uint64_t position) const noexcept {
    const std::uint64_t segment = position >> log->segment_shift;
    if (segment == part.segment && part.descriptor == nullptr) return true;  // a file's copy
    return slot_holds(segment == part.segment ? part.descriptor : &log->descriptor(part.partition, segment).state_word,
                      segment);
  }
  // False when another member owns the partition now (this one was
  // released, judged dead): nothing is written, and the partition is no
  // longer this member's.
  bool commit_position(Part& part, std::uint64_t position) noexcept;
  std::size_t poll_partition(Part& part, RecordHandler& handler, std::size_t max);
  // Sets `fast` (ConsumerHot) to the one partition the inline poll may
  // read next, or nullptr.
  void refresh_fast() noexcept;
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

// Whether the committed record at `at` (commit word `word`, decoded as
// `d`) passes its checksum. In a log with checksums every record with a
// payload carries one (producers set the flag there and only there), so a
// record without (its flags torn on disk) is as bad as a wrong one. Data
// records and transaction control records alike: a damaged abort marker
// must not read as a commit.
inline bool intact(const LogState& s, const record::At& a) noexcept {
  const bool has_checksum = (a.d.flags & format::kRecordFlagChecksum) != 0;
  if (!has_checksum) return !s.options.checksums;
  return record::checksum(*a.header, a.word, a.body(), a.d.frame_length - format::kRecordHeaderSize) ==
         a.header->checksum;
}

// A record boundary at or before `target` in partition p, found by walking
// from the start of target's segment; stops early at an unresolved record.
Result<std::uint64_t> find_boundary(const LogState& s, std::uint32_t p, std::uint64_t target);

}  // namespace shmlog::detail
