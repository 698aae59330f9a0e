// The commit-word protocol of a partition's ring (format.h draws the word):
// the sign of a record's length *is* the protocol. 0: free; negative: a
// claim in flight, naming its producer id; positive: committed (data, a
// control record, padding or an abandoned claim). Each step is one store or
// one CAS of that word. Pure mechanism: who claims where, when a stuck
// claim is given up and who waits are the callers' policy (producer.cc,
// prepare.cc, unblock in reaper.cc).
#pragma once

#include <atomic>
#include <cstdint>

#include "format.h"

namespace shmlog::detail {
struct LogState;
}  // namespace shmlog::detail

namespace shmlog::detail::ring {

// The word of a shared claim in flight: its negated frame length and the
// claimer's producer id (for liveness and fencing).
inline std::uint64_t claimed_word(std::uint32_t frame, std::uint16_t id) noexcept {
  return format::make_commit_word(-static_cast<std::int32_t>(frame), format::RecordType::kNone, 0, id);
}

// Registers a shared claim at its (zeroed) word. seq_cst, the same
// instruction as release on x86: a named producer's fencing relies on this
// registration and its epoch check being ordered. False when an unblocker
// poisoned the word first (the claim is lost: claim again).
inline bool register_claim(std::uint64_t& word, std::uint32_t frame, std::uint16_t id) noexcept {
  std::uint64_t expected = 0;
  return format::atomic(word).compare_exchange_strong(expected, claimed_word(frame, id), std::memory_order_seq_cst,
                                                      std::memory_order_relaxed);
}

// Publishes a registered shared claim as `final_word`. seq_cst: ordered
// before the publisher's check for sleeping readers. False when the claim
// was revoked (abandoned by an unblocker, or by a newer instance that
// fenced its producer): nothing was published.
inline bool publish_shared(std::uint64_t& word, std::uint32_t frame, std::uint16_t id,
                           std::uint64_t final_word) noexcept {
  std::uint64_t expected = claimed_word(frame, id);
  return format::atomic(word).compare_exchange_strong(expected, final_word, std::memory_order_seq_cst);
}

// An exclusive producer's publish (a plain store of the word, then the
// tail) is publish_exclusive in shmlog/detail/producer_hot.h: the inline
// append does it too.

// Gives a registered shared claim up: it becomes padding of its length
// (readers pass it). Fails harmlessly if an unblocker abandoned it first.
inline void abort_shared(std::uint64_t& word, std::uint32_t frame, std::uint16_t id) noexcept {
  std::uint64_t expected = claimed_word(frame, id);
  format::atomic(word).compare_exchange_strong(
      expected, format::make_commit_word(static_cast<std::int32_t>(frame), format::RecordType::kPadding, 0, 0),
      std::memory_order_seq_cst);
}

// Fills `length` bytes from `word` with one padding record (the rest of a
// segment a record does not fit in). A shared producer's CAS from 0 fails
// only if an unblocker poisoned the word first, which abandons it: fine.
inline void pad(std::uint64_t& word, std::uint64_t length, bool exclusive) noexcept {
  const std::uint64_t padding =
      format::make_commit_word(static_cast<std::int32_t>(length), format::RecordType::kPadding, 0, 0);
  if (exclusive) {
    format::atomic(word).store(padding, std::memory_order_release);  // pairs with readers' acquire
  } else {
    std::uint64_t expected = 0;
    format::atomic(word).compare_exchange_strong(expected, padding, std::memory_order_release,
                                                 std::memory_order_relaxed);
  }
}

// What abandon() did.
enum class Unblocked : std::uint8_t {
  kNoAction,   // nothing claimed there yet (a free word at or past the tail)
  kCommitted,  // the word is committed now (by its owner, or by another unblocker)
  kAbandoned,  // this call abandoned the claim, or the unregistered region
};

// Abandons the stuck claim at `position` of partition p, whose word the
// caller saw as `seen` and gave up on (unblock in reaper.cc decides when):
//  - a registered claim becomes an abandoned record of its length;
//  - a free word below the tail (a claim whose producer stopped between the
//    tail and the registration) is poisoned, so that its registration now
//    fails, and the region of poisoned words up to the next registered
//    claim (or the tail, or the segment's end) becomes one abandoned record;
//  - a poisoned word (an unblocker died mid-way) is finished the same way.
Unblocked abandon(const LogState& log, std::uint32_t p, std::uint64_t position, std::uint64_t seen) noexcept;

}  // namespace shmlog::detail::ring
