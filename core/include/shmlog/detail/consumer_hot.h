// What a consumer's poll touches on every record, public so that the poll
// of a consumer reading one partition is inline (Consumer::poll in
// shmlog/detail/inline_paths.h) while the next record is a plain committed data record of
// the ring slot it last validated: no call into the library. The library's
// ConsumerState (core/src/consumer_state.h) derives from ConsumerHot, its
// Part from ReadCursor, and it decides when the inline poll may run
// (ConsumerHot::fast); everything else (control records, transactions,
// checksums, padding, segment ends, laps, stuck claims, damage) is left to
// the library's poll. Not an API: what is here may change with any release.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "shmlog/detail/record_header.h"
#include "shmlog/detail/segment_word.h"

#if defined(__SANITIZE_THREAD__)
#define SHMLOG_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHMLOG_TSAN 1
#endif
#endif

#ifdef SHMLOG_TSAN
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
#endif

namespace shmlog::detail {

// A reader's plain loads of a record's header and bytes, which a producer
// that took the slot may be zeroing or rewriting under it (zero_shared in
// core/src/log_state.h). The reader checks the slot's word afterwards and
// drops what it read if the slot moved on (a seqlock reader's retry);
// ThreadSanitizer, which cannot see that check, is told to ignore the
// loads of this thread while a SpeculativeReads lives. Nothing in other
// builds.
class SpeculativeReads {
 public:
#ifdef SHMLOG_TSAN
  SpeculativeReads() noexcept { AnnotateIgnoreReadsBegin(__FILE__, __LINE__); }
  ~SpeculativeReads() { AnnotateIgnoreReadsEnd(__FILE__, __LINE__); }
#else
  SpeculativeReads() noexcept {}  // (user-provided: a scope guard, not an unused variable)
#endif
  SpeculativeReads(const SpeculativeReads&) = delete;
  SpeculativeReads& operator=(const SpeculativeReads&) = delete;
};

// Per partition a consumer reads: its position and the ring slot it last
// validated (see ConsumerState::enter_segment).
struct ReadCursor {
  std::uint64_t position = 0;
  std::uint64_t segment = UINT64_MAX;  // segment whose slot was last validated
  std::byte* segment_base = nullptr;
  // That slot's state word; nullptr while reading a segment file's copy
  // (durable logs: the ring has moved on; the copy does not change).
  const std::uint64_t* descriptor = nullptr;
  std::uint32_t partition = 0;
  std::uint32_t uncommitted = 0;  // records handed out since the last commit
};

// A group member checks the group's liveness every this many polls.
inline constexpr std::uint32_t kPollsPerLivenessCheck = 1024;

struct ConsumerHot {
  // The cursor of the one partition the inline poll may read, or nullptr:
  // set by the library's poll (ConsumerState::refresh_fast) for a reader of
  // one owned partition of a log without checksums or durability that
  // drops no duplicates and, in a group, commits after reading (or
  // manually); cleared wherever the partitions change.
  ReadCursor* fast = nullptr;
  // Group members: the group's membership epoch (a change means the
  // library's poll must rebalance first) and the last one seen.
  const std::uint64_t* membership_epoch = nullptr;
  std::uint64_t epoch_seen = UINT64_MAX;
  std::uint32_t polls_since_check = 0;
  // Inline polls that found nothing committed at the position, and whether
  // the next poll must look at a stall (poll_wait sets it after parking).
  std::uint32_t empty_polls = 0;
  bool force_stall_check = false;
  // The log's geometry (LogState's, copied).
  std::uint64_t segment_size = 0;
  unsigned segment_shift = 0;
  std::uint32_t max_frame = 0;  // header + max_record_size
  std::uint32_t commit_every = 1;
  // An at-least-once group member: commits every commit_every records.
  bool commits_as_it_reads = false;
  // Whether the ring can reuse a slot under this consumer: always under
  // overwrite, and for a reader without a group (no commit holds its slot).
  bool may_be_lapped = true;
};

// Whether the slot whose state word is `descriptor` still holds `segment`
// (a ring that may lap its reader reuses slots under it). Pairs with the
// release that publishes a prepared slot.
inline bool slot_holds(const std::uint64_t* descriptor, std::uint64_t segment) noexcept {
  return format::segment_index(std::atomic_ref<std::uint64_t>(*const_cast<std::uint64_t*>(descriptor))
                                   .load(std::memory_order_acquire)) == segment;
}

// Whether this poll may start inline: the library has set `fast`, no
// stall is to be timed and, for a group member, no membership change or
// liveness check is due (those are the library poll's first step).
inline bool may_poll_inline(ConsumerHot& h) noexcept {
  if (h.fast == nullptr || h.force_stall_check) return false;
  if (h.membership_epoch != nullptr) {
    if (h.polls_since_check + 1 >= kPollsPerLivenessCheck) return false;
    // Pairs with the acq_rel increment of a member joining or leaving.
    if (std::atomic_ref<std::uint64_t>(*const_cast<std::uint64_t*>(h.membership_epoch))
            .load(std::memory_order_acquire) != h.epoch_seen) {
      return false;
    }
    ++h.polls_since_check;
  }
  return true;
}

// Whether an inline poll that found nothing committed may return without
// the library's poll: every 64th time it looks too, since a claim whose
// producer died is found (timed) and unblocked there.
inline bool may_skip_library(ConsumerHot& h) noexcept { return (++h.empty_polls & 63) != 0; }

// Commits the inline poll's partition at its position (an at-least-once
// member's commit_every reached). False when the partition is another
// member's now: the inline poll stops (and `fast` is cleared).
bool commit_fast(ConsumerHot& h) noexcept;

}  // namespace shmlog::detail
