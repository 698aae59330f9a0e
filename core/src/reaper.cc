// What is done about processes that died or stall: a claim given up is
// abandoned (unblock: the policy; ring::abandon: the mechanism), dead
// producers' and members' slots are reaped (sweep), and a dead exclusive
// writer's tail is repaired.
#include <algorithm>
#include <chrono>

#include "log_state.h"
#include "owner.h"
#include "record.h"
#include "ring.h"
#include "shmlog/shm/process.h"

namespace shmlog::detail {

using format::atomic;

// The policy of giving a claim up (ring::abandon is the mechanism): a
// registered claim once its producer is dead (seen stuck for 1 ms at least,
// so that a claim a moment old costs no look at /proc) or past the claim
// timeout; an unregistered or poisoned one, whose producer is unknown, only
// past the claim timeout.
bool claim_given_up(const LogState& log, std::uint64_t seen, std::chrono::nanoseconds stalled_for) noexcept {
  if (stalled_for >= log.claim_timeout) return true;
  const std::int32_t length = format::word_length(seen);
  if (length >= 0 || length == format::kPoison || stalled_for < std::chrono::milliseconds(1)) return false;
  const std::uint16_t id = format::word_key_length(seen);  // a registered claim's producer id
  return id < log.options.max_producers && !shm::is_alive(load_owner(log.producer_slot(id)));
}

bool unblock(const LogState& log, std::uint32_t p, std::uint64_t position,
             std::chrono::nanoseconds stalled_for) noexcept {
  // Pairs with the producers' release CAS on the commit word.
  const std::uint64_t seen = atomic(*word_at(log, p, position)).load(std::memory_order_acquire);
  if (format::word_length(seen) > 0) return true;
  if (!claim_given_up(log, seen, stalled_for)) return false;
  return ring::abandon(log, p, position, seen) != ring::Unblocked::kNoAction;
}

void release_member(const LogState& log, std::uint32_t g, std::uint32_t m) noexcept {
  for (std::uint32_t p = 0; p < log.options.partitions; ++p) {
    auto& slot = log.offset_slot(p, g);
    auto ownership = atomic(slot.ownership);
    std::uint64_t w = ownership.load(std::memory_order_acquire);
    if (format::ownership_owner(w) == m + 1 &&
        ownership.compare_exchange_strong(w, format::make_ownership(0, format::ownership_acquisitions(w)),
                                          std::memory_order_acq_rel)) {
      atomic(slot.hold).store(0, std::memory_order_release);  // its handler is gone
    }
  }
  atomic(log.member(g, m).state).store(static_cast<std::uint32_t>(format::SlotState::kFree),
                                       std::memory_order_release);
  atomic(log.group(g).membership_epoch).fetch_add(1, std::memory_order_acq_rel);
  log.wake_consumers();  // members parked on data_seq re-check their assignment
}

std::uint64_t committed_end(const LogState& log, std::uint32_t p, std::uint64_t position, std::uint64_t limit) noexcept {
  const std::uint64_t end = limit > UINT64_MAX - position ? UINT64_MAX : position + limit;
  while (position < end) {
    const std::uint64_t segment = position >> log.segment_shift;
    const std::uint64_t w = atomic(log.descriptor(p, segment).state_word).load(std::memory_order_acquire);
    if (format::segment_index(w) != segment || format::segment_state(w) != format::SegmentState::kReady) break;
    const std::uint64_t stopped = log.walk_records(log.segment_base(p, segment), position, end,
                                                   [](const record::At&, std::uint64_t) { return true; });
    // Stopped inside the segment (a record not committed, or the limit):
    // the end; else on into the next segment.
    const bool to_its_end = stopped > position && (stopped & log.segment_mask) == 0;
    position = stopped;
    if (!to_its_end) break;
  }
  return position;
}

namespace {

// A dead exclusive writer may have committed a record without moving the
// tail, and may have written bytes past the tail: move the tail past its
// committed records and zero what lies beyond, before anyone writes there.
void repair_exclusive_tail(const LogState& log, std::uint32_t p) noexcept {
  auto tail = atomic(log.partition(p).tail_position);
  const std::uint64_t pos = committed_end(log, p, tail.load(std::memory_order_acquire), UINT64_MAX);
  const std::uint64_t segment = pos >> log.segment_shift;
  const std::uint64_t w = atomic(log.descriptor(p, segment).state_word).load(std::memory_order_acquire);
  if (format::segment_index(w) == segment && format::segment_state(w) == format::SegmentState::kReady) {
    const std::uint64_t offset = pos & log.segment_mask;
    const std::uint64_t n = std::min<std::uint64_t>(format::align_record(log.max_frame), log.segment_size - offset);
    zero_shared(log.segment_base(p, segment) + offset, n);
  }
  tail.store(pos, std::memory_order_release);
}

void reap_producer(const LogState& log, std::uint32_t id) {
  auto& slot = log.producer_slot(id);
  std::uint32_t active = static_cast<std::uint32_t>(format::SlotState::kActive);
  if (!atomic(slot.state).compare_exchange_strong(active, static_cast<std::uint32_t>(format::SlotState::kReaping),
                                                  std::memory_order_acq_rel)) {
    return;
  }
  for (std::uint32_t p = 0; p < log.options.partitions; ++p) {
    auto writers = atomic(log.partition(p).writers);
    if (slot.flags & format::kProducerExclusive) {
      if (writers.load(std::memory_order_acquire) == (format::kExclusiveWriter | id)) {
        repair_exclusive_tail(log, p);
        writers.store(0, std::memory_order_release);
      }
    } else {
      writers.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
  atomic(slot.state).store(static_cast<std::uint32_t>(format::SlotState::kFree), std::memory_order_release);
}

}  // namespace

void sweep(const LogState& log) {
  AdminLock lock(log);
  const auto active = static_cast<std::uint32_t>(format::SlotState::kActive);
  for (std::uint32_t id = 0; id < log.options.max_producers; ++id) {
    auto& slot = log.producer_slot(id);
    if (atomic(slot.state).load(std::memory_order_acquire) == active &&
        !shm::is_alive(load_owner(slot))) {
      reap_producer(log, id);
    }
  }
  for (std::uint32_t g = 0; g < log.options.max_groups; ++g) {
    if (atomic(log.group(g).state).load(std::memory_order_acquire) != active) continue;
    for (std::uint32_t m = 0; m < log.options.max_members; ++m) {
      auto& member = log.member(g, m);
      if (atomic(member.state).load(std::memory_order_acquire) == active &&
          !shm::is_alive(load_owner(member))) {
        release_member(log, g, m);
      }
    }
  }
}

}  // namespace shmlog::detail
