// The state behind a Log handle: the mapping, the geometry derived from the
// log's options (never from the shared header, which is only checked
// against it) and typed accessors into shared memory.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "format.h"
#include "record.h"
#include "shmlog/detail/consumer_hot.h"
#include "shmlog/log.h"
#include "shmlog/shm/process.h"
#include "shmlog/shm/shared_memory.h"

namespace shmlog::detail {

// Zeroes with 32-byte stores where the CPU has AVX2 (prepare.cc): as fast
// as memset, whose `rep stosb` valgrind counts as an instruction per byte.
void zero_wide(std::byte* at, std::size_t n) noexcept;

// Zeroes ring bytes that other processes may be loading: a reader that
// lapped, or looks ahead, checks what it loaded against the slot's word
// afterwards (as a seqlock reader does). ThreadSanitizer takes a plain
// memset for a race with those atomic loads, so its builds zero with
// relaxed 8-byte atomic stores (`at` and `n` are 8-byte aligned); the
// others use zero_wide for a chunk of a segment and memset for less.
inline void zero_shared(std::byte* at, std::size_t n) noexcept {
#ifdef SHMLOG_TSAN
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(at + i)).store(0, std::memory_order_relaxed);
  }
#else
  if (n >= 4096) {
    zero_wide(at, n);
  } else {
    std::memset(at, 0, n);
  }
#endif
}

// SHMLOG_TSAN and SpeculativeReads, the other side of zero_shared: in
// shmlog/detail/consumer_hot.h (the inline poll reads speculatively too).

// A uniqueness token's hash: its home in the token table. Never 0 (empty).
inline std::uint64_t token_hash(Bytes token) noexcept { return format::key_hash(token) | 1; }

class Keeper;  // durability.cc: this process's keeper thread

struct LogState {
  std::string path;
  std::string memory_path;  // the shared-memory file (empty in memory)
  LogOptions options;
  format::Geometry geometry;
  shm::SharedMemory shm;               // the shared mapping, or
  struct FreeDeleter {
    void operator()(std::byte* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<std::byte, FreeDeleter> heap;  // process-private memory (in-memory logs)
  std::byte* base = nullptr;
  format::LogHeader* header = nullptr;
  std::uint64_t segment_size = 0;
  std::uint64_t segment_mask = 0;
  unsigned segment_shift = 0;
  std::uint32_t ring_segments = 0;
  std::uint32_t max_frame = 0;  // header + max_record_size
  std::chrono::nanoseconds claim_timeout{};
  bool read_only = false;  // attached by a watching tool
  std::uint32_t owner = 0;  // uid of the log's owner (of its meta file; this process for in-memory logs)
  // Held shared (flock on shmlog.lock) for as long as the handle lives: the
  // shared memory is made anew only under the exclusive lock, so never
  // while any process still runs on an object that was removed under it.
  shm::FileLock in_use;
  // While this process's keeper holds the lease: one flush round of its
  // (durability.cc), run under keeper_mu as the keeper runs its own, so
  // that a durable waiter of this process writes and syncs its record
  // itself instead of waking the keeper and waiting to be woken.
  mutable std::mutex keeper_mu;
  mutable std::function<bool()> keeper_round;  // empty: no keeper here holds the lease
  mutable int keeper_round_pid = 0;            // whose it is (a forked child's copy is not its own)
  // Declared last: stopped and joined first, while the mapping still exists.
  std::unique_ptr<Keeper> keeper;

  LogState();
  ~LogState();
  void init_geometry(std::uint32_t features);
  bool durable() const noexcept { return options.durability != Durability::kNone; }

  format::PartitionHeader& partition(std::uint32_t p) const noexcept {
    return *reinterpret_cast<format::PartitionHeader*>(base + geometry.partitions_offset +
                                                       p * geometry.partition_stride);
  }
  format::SegmentDescriptor& descriptor(std::uint32_t p, std::uint64_t segment) const noexcept {
    auto* first = reinterpret_cast<format::SegmentDescriptor*>(
        base + geometry.partitions_offset + p * geometry.partition_stride +
        sizeof(format::PartitionHeader));
    return first[segment % ring_segments];
  }
  // Start of the ring slot holding `segment`.
  std::byte* segment_base(std::uint32_t p, std::uint64_t segment) const noexcept {
    return base + geometry.data_offset + p * geometry.ring_bytes +
           (segment % ring_segments) * segment_size;
  }
  format::TokenSlot* tokens() const noexcept {
    return reinterpret_cast<format::TokenSlot*>(base + geometry.tokens_offset);
  }
  // Producer slot i's two offsets buffers, or nullptr (no table).
  format::OffsetsBuffer* offsets_buffers(std::uint32_t i) const noexcept {
    if (geometry.offsets_buffers_offset == 0) return nullptr;
    return reinterpret_cast<format::OffsetsBuffer*>(base + geometry.offsets_buffers_offset) + 2 * std::uint64_t{i};
  }
  // Producer slot i's row of the AppendCounts table (one per partition), or
  // nullptr (a log without it: counts are the slot's own).
  format::AppendCounts* append_counts(std::uint32_t i) const noexcept {
    if (geometry.append_counts_offset == 0) return nullptr;
    return reinterpret_cast<format::AppendCounts*>(base + geometry.append_counts_offset +
                                                   i * geometry.append_counts_stride);
  }
  format::ProducerSlot& producer_slot(std::uint32_t i) const noexcept {
    return reinterpret_cast<format::ProducerSlot*>(base + geometry.producers_offset)[i];
  }
  format::GroupHeader& group(std::uint32_t g) const noexcept {
    return *reinterpret_cast<format::GroupHeader*>(base + geometry.groups_offset +
                                                   g * geometry.group_stride);
  }
  format::MemberSlot& member(std::uint32_t g, std::uint32_t m) const noexcept {
    return reinterpret_cast<format::MemberSlot*>(base + geometry.groups_offset +
                                                 g * geometry.group_stride +
                                                 sizeof(format::GroupHeader))[m];
  }
  format::OffsetSlot& offset_slot(std::uint32_t p, std::uint32_t g) const noexcept {
    return reinterpret_cast<format::OffsetSlot*>(
        base + geometry.offset_slots_offset)[static_cast<std::size_t>(p) * options.max_groups + g];
  }

  // The record cursor (record.h) over this log's segments: what `segment`
  // (a ring slot or a file's copy) holds at `position`; the same in
  // partition p's ring slot for position; a walk over one segment.
  record::At record_at(const std::byte* segment, std::uint64_t position) const noexcept {
    return record::at(segment, position, segment_size, max_frame);
  }
  record::At ring_record_at(std::uint32_t p, std::uint64_t position) const noexcept {
    return record_at(segment_base(p, position >> segment_shift), position);
  }
  template <typename Visit>
  std::uint64_t walk_records(const std::byte* segment, std::uint64_t position, std::uint64_t end,
                             Visit&& visit) const {
    return record::walk(segment, position, end, segment_size, max_frame, visit);
  }

  std::uint64_t tail(std::uint32_t p) const noexcept {
    // Pairs with the release stores/fetch-adds of producers.
    return format::atomic(partition(p).tail_position).load(std::memory_order_acquire);
  }
  // Oldest position still in partition p's ring (start of its oldest segment).
  std::uint64_t earliest(std::uint32_t p) const noexcept;
  // End of the newest segment partition p's ring holds (ready or being
  // prepared): nothing past it was written, whatever the tail says.
  // Descriptors that name a segment their slot cannot hold are ignored.
  std::uint64_t ring_end(std::uint32_t p) const noexcept;
  // The smallest committed offset of all active groups for p (and of their
  // holds), or UINT64_MAX; with holds_only, of their holds alone.
  std::uint64_t min_committed(std::uint32_t p, bool holds_only = false) const noexcept;
  // Ring slots holding segments that end at or below this may be reused:
  // the durable position of a fsync log, the written position of a flush
  // log (either below a group member's hold: its handler's views), else the
  // groups' committed minimum (backpressure) or anything (overwrite).
  std::uint64_t reuse_floor(std::uint32_t p) const noexcept;
  // The oldest offset a reader can still get: in the ring, or (durable
  // logs) in the oldest segment file.
  std::uint64_t retained_start(std::uint32_t p) const noexcept;

  void wake_consumers() const noexcept;
  void wake_producers() const noexcept;
};

// Records and bytes appended (format.h's AppendCounts).
struct AppendTotals {
  std::uint64_t appends = 0;
  std::uint64_t bytes = 0;
};
// Producer slot i's row, summed over the partitions (zero without the table).
inline AppendTotals row_totals(const LogState& s, std::uint32_t i) noexcept {
  AppendTotals t;
  const format::AppendCounts* row = s.append_counts(i);
  if (row == nullptr) return t;
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
    t.appends += format::atomic(const_cast<std::uint64_t&>(row[p].appends_total)).load(std::memory_order_relaxed);
    t.bytes += format::atomic(const_cast<std::uint64_t&>(row[p].bytes_total)).load(std::memory_order_relaxed);
  }
  return t;
}
// Partition p's totals since the log was created: its before-totals plus
// every slot's count. Never less than an earlier call's (counts only grow).
inline AppendTotals partition_totals(const LogState& s, std::uint32_t p) noexcept {
  const format::PartitionHeader& ph = s.partition(p);
  AppendTotals t{format::atomic(const_cast<std::uint64_t&>(ph.appends_before_total)).load(std::memory_order_relaxed),
                 format::atomic(const_cast<std::uint64_t&>(ph.bytes_before_total)).load(std::memory_order_relaxed)};
  const std::uint32_t used = std::min(
      s.options.max_producers, format::atomic(s.header->used_slots_end).load(std::memory_order_acquire));
  for (std::uint32_t i = 0; i < used; ++i) {
    const format::AppendCounts* row = s.append_counts(i);
    if (row == nullptr) break;
    t.appends += format::atomic(const_cast<std::uint64_t&>(row[p].appends_total)).load(std::memory_order_relaxed);
    t.bytes += format::atomic(const_cast<std::uint64_t&>(row[p].bytes_total)).load(std::memory_order_relaxed);
  }
  return t;
}

// A position read from shared memory that format::plausible_position
// refuses, or that is out of order: kCorrupt naming the memory, the
// partition and what the position is.
inline Status damaged_position(const LogState& s, std::uint32_t p, const std::string& what, std::uint64_t v) {
  return Status(Status::Code::kCorrupt, "shared memory " + s.memory_path + ": partition " + std::to_string(p) + "'s " +
                                            what + " " + std::to_string(v) + " cannot be right (damaged or foreign)");
}
// `v` if plausible, else damaged_position.
inline Result<std::uint64_t> checked_position(const LogState& s, std::uint32_t p, const std::string& what,
                                              std::uint64_t v) {
  if (format::plausible_position(v)) return v;
  return damaged_position(s, p, what, v);
}

// A log directory's canonical path, options and id, from its shmlog.meta.
struct LogMeta {
  std::string dir;
  LogOptions options;
  std::uint64_t log_id = 0;
};
Result<LogMeta> read_log_meta(const std::string& path);

// Resolves the record at `position` of partition p when it is stuck, once
// the claim there is given up (reaper.cc: a dead producer's, or one past the
// claim timeout): ring::abandon turns it into an abandoned record.
// `stalled_for` is how long the caller has seen it stuck. True if the
// position now holds a committed word.
bool unblock(const LogState& log, std::uint32_t p, std::uint64_t position,
             std::chrono::nanoseconds stalled_for) noexcept;
std::uint64_t* word_at(const LogState& log, std::uint32_t p, std::uint64_t position) noexcept;
// Where the committed records that follow `position` in partition `p`
// end, walking at most `limit` bytes: a dead exclusive writer may have
// committed a record without moving the tail past it.
std::uint64_t committed_end(const LogState& log, std::uint32_t p, std::uint64_t position, std::uint64_t limit) noexcept;

// Reaps producer ids and group members of dead processes. Cold path; takes
// the admin lock. (A dead process's segment preparation is taken over by the
// next producer that needs the slot; nobody else waits on it.)
void sweep(const LogState& log);

// A segment claimed into (below the tail) whose ring slot still holds the
// previous lap, or is being prepared by a process that died: its producer
// died waiting for room or preparing, and no other claim falls in it. A
// reader stuck there past the claim timeout prepares it (takes the slot,
// zeroes it, publishes it) if the ring may reuse the slot now. True if the
// slot holds `segment`, ready.
bool prepare_unprepared(const LogState& log, std::uint32_t p, std::uint64_t segment) noexcept;

void release_member(const LogState& log, std::uint32_t g, std::uint32_t m) noexcept;

}  // namespace shmlog::detail
