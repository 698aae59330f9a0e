#include "ring.h"

#include <algorithm>

#include "log_state.h"

namespace shmlog::detail {

std::uint64_t* word_at(const LogState& log, std::uint32_t p, std::uint64_t position) noexcept {
  return reinterpret_cast<std::uint64_t*>(log.segment_base(p, position >> log.segment_shift) +
                                          (position & log.segment_mask));
}

namespace ring {

using format::atomic;

namespace {
constexpr std::uint64_t kPoisonWord = static_cast<std::uint32_t>(format::kPoison);

// Once `seen`'s CAS lost: committed by its owner or another unblocker, or
// (a free word) registered meanwhile.
Unblocked after_lost_race(std::uint64_t now) noexcept {
  return format::word_length(now) > 0 ? Unblocked::kCommitted : Unblocked::kNoAction;
}
}  // namespace

Unblocked abandon(const LogState& log, std::uint32_t p, std::uint64_t position, std::uint64_t seen) noexcept {
  auto word = atomic(*word_at(log, p, position));
  const std::int32_t length = format::word_length(seen);
  if (length > 0) return Unblocked::kCommitted;
  if (length < 0 && length != format::kPoison) {
    if (!word.compare_exchange_strong(seen, format::make_commit_word(-length, format::RecordType::kAbandoned, 0, 0),
                                      std::memory_order_acq_rel)) {
      return after_lost_race(seen);
    }
    atomic(log.partition(p).abandoned_total).fetch_add(1, std::memory_order_relaxed);  // rare: any process
    return Unblocked::kAbandoned;
  }
  if (seen == 0) {
    if (log.tail(p) <= position) return Unblocked::kNoAction;  // nothing claimed here
    // Fence off the unregistered claim: its owner's registration now fails.
    if (!word.compare_exchange_strong(seen, kPoisonWord, std::memory_order_acq_rel)) return after_lost_race(seen);
  }
  // The word is poisoned (by us, or by an unblocker that died). The stuck
  // region runs to the first registered claim, the tail, or the segment end.
  const std::uint64_t segment_end = (position | log.segment_mask) + 1;
  const std::uint64_t limit = std::min(log.tail(p), segment_end);
  std::uint64_t end = position + format::kRecordAlignment;
  while (end < limit) {
    auto next = atomic(*word_at(log, p, end));
    std::uint64_t w = next.load(std::memory_order_acquire);
    if (w == 0 && next.compare_exchange_strong(w, kPoisonWord, std::memory_order_acq_rel)) w = kPoisonWord;
    if (w != kPoisonWord) break;  // a claim starts here: the region ends
    end += format::kRecordAlignment;
  }
  std::uint64_t expected = kPoisonWord;
  if (!word.compare_exchange_strong(
          expected,
          format::make_commit_word(static_cast<std::int32_t>(end - position), format::RecordType::kAbandoned, 0, 0),
          std::memory_order_acq_rel)) {
    return Unblocked::kCommitted;  // another unblocker finished the region
  }
  atomic(log.partition(p).abandoned_total).fetch_add(1, std::memory_order_relaxed);
  return Unblocked::kAbandoned;
}

}  // namespace ring
}  // namespace shmlog::detail
