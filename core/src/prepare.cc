// Segment preparation: before a producer writes into a segment, the
// segment's ring slot must hold it, zeroed. Whoever first needs the slot
// takes it (one CAS of its state word, with its owner stamp), makes sure
// nothing of the previous lap still needs it (the reuse floor of the
// ring's policy, or every claim in it resolved), zeroes it and publishes it
// ready. A dead preparer's slot is taken over; exclusive producers zero
// the next segment ahead, a chunk per record.
#include <algorithm>
#include <chrono>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "durability.h"
#include "owner.h"
#include "producer_state.h"
#include "record.h"
#include "test_hooks.h"
#include "tokens.h"
#include "word_pair.h"
#include "shmlog/shm/process.h"

namespace shmlog::detail {

using format::atomic;

namespace {

#if defined(__x86_64__)
[[gnu::target("avx2")]] void zero_avx2(std::byte* at, std::size_t n) noexcept {
  const __m256i zero = _mm256_setzero_si256();
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(at + i), zero);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(at + i + 32), zero);
    asm volatile("" ::: "memory");  // a loop of stores, not a call to memset
  }
  std::memset(at + i, 0, n - i);
}
#endif

}  // namespace

void zero_wide(std::byte* at, std::size_t n) noexcept {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) {
    zero_avx2(at, n);
    return;
  }
#endif
  std::memset(at, 0, n);
}

Errc ProducerState::ensure_ready(std::uint32_t p, std::uint64_t begin, std::uint64_t end) noexcept {
  Cursor& c = cursors[p];
  if (begin >= c.ready_begin && end <= c.ready_end) return Errc::kOk;
  const std::uint64_t segment = begin >> log->segment_shift;
  Errc e = prepare(p, segment, /*may_wait=*/true);
  if (e != Errc::kOk) return e;
  c.fast_limit = 0;  // claim_exclusive sets it again
  c.ready_begin = segment << log->segment_shift;
  c.ready_end = c.ready_begin + log->segment_size;
  c.ready_base = log->segment_base(p, segment);
  return Errc::kOk;
}

namespace {

// Marks the ring slot of `segment` as being prepared by this process if it
// still holds (w, stamp). The word (with our pid) and our stamp (owner.h)
// change in one 16-byte CAS: a reader of the word always finds the stamp of
// the process it names, never the previous preparer's, which would make a
// live preparer look dead and its slot free to take.
//
// Taking the previous lap's slot, it looks at the reuse floor again after
// the CAS and gives the slot back if it dropped below the old segment's
// end: a group member sets its hold before it reads a slot's state, so
// either it sees the slot taken (and reads the segment's file) or this
// sees its hold (Dekker's order: each stores, then loads the other's).
bool take_slot(const LogState& s, std::uint32_t p, std::uint64_t segment, std::uint64_t w,
               std::uint64_t stamp) noexcept {
  auto& d = s.descriptor(p, segment);
  const std::uint64_t mine = format::make_segment_word(segment, format::SegmentState::kPreparing, shm::self().pid);
  const std::uint64_t mine_stamp = own_stamp(s);
  const std::uint64_t old = w, old_stamp = stamp;
  if (!cas_pair(&d.state_word, w, stamp, mine, mine_stamp)) return false;
  if (format::segment_index(old) + s.ring_segments == segment) {
    const std::uint64_t floor = s.reuse_floor(p);
    if (floor != UINT64_MAX && floor < (format::segment_index(old) + 1) << s.segment_shift) {
      std::uint64_t taken = mine, taken_stamp = mine_stamp;
      (void)cas_pair(&d.state_word, taken, taken_stamp, old, old_stamp);  // ours: nobody else changes it
      return false;
    }
  }
  if constexpr (hooks::kEnabled) {
    if (hooks::after_taking_slot != nullptr) hooks::after_taking_slot(p, segment);
  }
  // Ours now, the previous lap still in it: count its pending claims before
  // anything is zeroed. Taking over a dead preparer's slot counts again
  // what it left: it counted before it zeroed anything.
  if (segment >= s.ring_segments) {
    count_pending_claims(s, p, segment - s.ring_segments);
    resolve_tokens(s, p, segment - s.ring_segments);
  }
  return true;
}

// Zeroes the slot this process took for `segment` (from `zeroed`, what is
// zeroed already) and publishes it ready.
void zero_and_publish(const LogState& s, std::uint32_t p, std::uint64_t segment, std::uint64_t zeroed = 0) noexcept {
  auto& d = s.descriptor(p, segment);
  if (zeroed < s.segment_size) zero_shared(s.segment_base(p, segment) + zeroed, s.segment_size - zeroed);
  atomic(d.prepared_ns).store(now_realtime_ns(), std::memory_order_relaxed);
  // Pairs with the acquire of producers and consumers checking the slot.
  atomic(d.state_word).store(format::make_segment_word(segment, format::SegmentState::kReady, 0),
                             std::memory_order_release);
}

// True once every claim in `segment` is resolved (committed, padding or
// abandoned): nothing in it needs protecting from zeroing. Waits for
// (and unblocks) claims in flight if may_wait, until `deadline`.
bool seal_segment(const LogState& s, std::uint32_t p, std::uint64_t segment, bool may_wait,
                  std::chrono::steady_clock::time_point deadline) noexcept {
  std::uint64_t position = segment << s.segment_shift;
  const std::uint64_t end = position + s.segment_size;
  auto stall_since = std::chrono::steady_clock::time_point{};
  std::uint64_t stall_position = UINT64_MAX;
  const std::byte* base = s.segment_base(p, segment);
  while (position < end) {
    position = s.walk_records(base, position, end, [](const record::At&, std::uint64_t) { return true; });
    if (position >= end) break;
    const record::At a = s.record_at(base, position);
    if (a.committed()) continue;  // committed since the walk stopped
    if (a.d.kind == record::Kind::kCorrupt) return true;  // nothing valid to protect beyond
    if (a.d.kind == record::Kind::kEmpty && s.tail(p) <= position) return true;
    if (!may_wait) return false;
    const auto now = std::chrono::steady_clock::now();
    if (now > deadline) return false;  // a word that never resolves (damage): the append times out
    if (stall_position != position) {
      stall_position = position;
      stall_since = now;
    }
    if (!unblock(s, p, position, now - stall_since)) shm::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

}  // namespace

bool prepare_unprepared(const LogState& s, std::uint32_t p, std::uint64_t segment) noexcept {
  auto& d = s.descriptor(p, segment);
  const std::uint64_t w = atomic(d.state_word).load(std::memory_order_acquire);
  const std::uint64_t stamp = atomic(d.preparer_stamp).load(std::memory_order_relaxed);
  const std::uint64_t held = format::segment_index(w);
  const bool ready = format::segment_state(w) == format::SegmentState::kReady;
  if (held == segment && ready) return true;
  if (held == segment) {  // being prepared: only a dead preparer's is taken over
    if (!preparer_dead(s, w, stamp) || !take_slot(s, p, segment, w, stamp)) return false;
    zero_and_publish(s, p, segment);
    return true;
  }
  if (held + s.ring_segments != segment || !ready) return false;
  const std::uint64_t floor = s.reuse_floor(p);
  const bool reusable = floor != UINT64_MAX ? floor >= (held + 1) << s.segment_shift
                                            : seal_segment(s, p, held, /*may_wait=*/false, {});
  if (!reusable || !take_slot(s, p, segment, w, stamp)) return false;
  zero_and_publish(s, p, segment);
  return true;
}

// Makes the ring slot of `segment` hold it, zeroed: waits for the policy to
// allow reuse of the slot's previous segment, checks that every claim in
// that segment is resolved, zeroes it and publishes it.
Errc ProducerState::prepare(std::uint32_t p, std::uint64_t segment, bool may_wait) noexcept {
  const LogState& s = *log;
  auto state = atomic(s.descriptor(p, segment).state_word);
  const auto deadline = std::chrono::steady_clock::now() + backpressure_timeout;
  Waiter waiter(wait);
  for (;;) {
    // Pairs with the release that publishes a prepared slot.
    std::uint64_t w = state.load(std::memory_order_acquire);
    const std::uint64_t held = format::segment_index(w);
    const bool ready = format::segment_state(w) == format::SegmentState::kReady;
    if (held == segment && ready) return Errc::kOk;
    if (held > segment) return Errc::kRevoked;  // the ring lapped this claim
    if (cursors[p].ahead_segment == segment) {  // we have been zeroing it: finish
      finish_zeroing_ahead(p);
      continue;
    }
    // Read after the word, so never older than it (both change in one CAS).
    const std::uint64_t stamp = atomic(s.descriptor(p, segment).preparer_stamp).load(std::memory_order_relaxed);
    bool take = false;
    if (held == segment) {
      // Another producer zeroes it; take over only if that process died.
      take = preparer_dead(s, w, stamp);
    } else if (held + s.ring_segments == segment && ready) {
      const std::uint64_t old_end = (held + 1) << s.segment_shift;
      const std::uint64_t committed = s.reuse_floor(p);
      if (committed != UINT64_MAX && committed < old_end) {
        if (!may_wait) return Errc::kBackpressureTimeout;
        if (!wait_for_space_counted(p, old_end, deadline)) return full_error(p);
        continue;
      }
      // With no group holding it, the old segment may still have claims in
      // flight: wait for each to commit or be abandoned before zeroing.
      // An exclusive producer is the only live writer: nothing to wait for.
      // (A group's offset, or the written position of a durable log, past
      // the segment means every claim in it is resolved.)
      take = committed != UINT64_MAX || exclusive || seal_segment(s, p, held, may_wait, deadline);
      if (!take && !may_wait) return Errc::kBackpressureTimeout;
      if (!take && std::chrono::steady_clock::now() > deadline) return full_error(p);
    }
    if (take) {
      if (take_slot(s, p, segment, w, stamp)) {
        zero_and_publish(s, p, segment);
        return Errc::kOk;
      }
      continue;
    }
    if (!may_wait) return Errc::kBackpressureTimeout;
    if (std::chrono::steady_clock::now() > deadline) return full_error(p);
    if (waiter.idle(0)) shm::sleep_for(std::chrono::microseconds(50));
  }
}

bool ProducerState::wait_for_space_counted(std::uint32_t p, std::uint64_t needed,
                                           std::chrono::steady_clock::time_point deadline) noexcept {
  // Counted when the wait begins (a stall in progress shows), timed when it ends.
  auto& sl = slot();  // single writer: relaxed stores
  atomic(sl.backpressure_waits_total).store(sl.backpressure_waits_total + 1, std::memory_order_relaxed);
  const auto started = std::chrono::steady_clock::now();
  const bool room = wait_for_space(p, needed, deadline);
  atomic(sl.backpressure_wait_ns_total)
      .store(sl.backpressure_wait_ns_total +
                 static_cast<std::uint64_t>((std::chrono::steady_clock::now() - started).count()),
             std::memory_order_relaxed);
  return room;
}

// A shared claim's fetch_add takes its positions for good: one that then
// times out waiting for room leaves a hole that every reader waits out
// (the claim timeout) before stepping over it. A producer that retries
// against a full ring would fill the ring with such holes, so the wait
// for the policy comes first. (Another claim can still take the room
// between this and the fetch_add; then prepare() waits as before.)
Errc ProducerState::wait_for_room(std::uint32_t p, std::uint64_t end) noexcept {
  const LogState& s = *log;
  const std::uint64_t segment = (end - 1) >> s.segment_shift;
  const std::uint64_t w = atomic(s.descriptor(p, segment).state_word).load(std::memory_order_acquire);
  const std::uint64_t held = format::segment_index(w);
  if (held >= segment) return Errc::kOk;  // ready or being prepared: prepare() sees to it
  const std::uint64_t old_end = (held + 1) << s.segment_shift;
  if (s.reuse_floor(p) >= old_end) return Errc::kOk;  // UINT64_MAX: no floor holds it
  if (!wait_for_space_counted(p, old_end, std::chrono::steady_clock::now() + backpressure_timeout)) {
    return full_error(p);
  }
  return Errc::kOk;
}

bool ProducerState::wait_for_space(std::uint32_t p, std::uint64_t needed,
                                   std::chrono::steady_clock::time_point deadline) noexcept {
  const LogState& s = *log;
  Waiter waiter(wait);
  for (;;) {
    if (s.reuse_floor(p) >= needed) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    if (!waiter.idle(0)) continue;
    // A durable log's ring moves on once the keeper wrote (fsync: synced)
    // the old segment: ask for that.
    if (s.durable()) detail::request_sync(s, p, needed);
    // Park until a consumer commits, or the keeper writes (either wakes us
    // when waiters > 0).
    auto waiters = atomic(s.header->space_waiters);
    auto seq = atomic(s.header->space_seq);
    waiters.fetch_add(1, std::memory_order_seq_cst);
    const std::uint32_t seen = seq.load(std::memory_order_seq_cst);
    if (s.reuse_floor(p) < needed) {
      const auto left = std::min<std::chrono::nanoseconds>(deadline - now, std::chrono::milliseconds(10));
      shm::futex_wait(&s.header->space_seq, seen, left);
    }
    waiters.fetch_sub(1, std::memory_order_seq_cst);
  }
}

// Takes the slot of `segment` (the next one) for zeroing in chunks, if the
// policy allows its reuse right now; otherwise the crossing prepares it.
void ProducerState::start_zeroing_ahead(std::uint32_t p, std::uint64_t segment) noexcept {
  const LogState& s = *log;
  Cursor& c = cursors[p];
  c.ahead_zeroed = s.segment_size;  // "nothing to do" unless taken below
  auto state = atomic(s.descriptor(p, segment).state_word);
  std::uint64_t w = state.load(std::memory_order_acquire);
  if (format::segment_index(w) + s.ring_segments != segment ||
      format::segment_state(w) != format::SegmentState::kReady) {
    return;
  }
  const std::uint64_t stamp = atomic(s.descriptor(p, segment).preparer_stamp).load(std::memory_order_relaxed);
  const std::uint64_t old_end = (format::segment_index(w) + 1) << s.segment_shift;
  if (s.reuse_floor(p) < old_end) return;
  if (!take_slot(s, p, segment, w, stamp)) return;
  c.ahead_segment = segment;
  c.ahead_zeroed = 0;
}

void ProducerState::zero_ahead(std::uint32_t p, std::uint64_t upto) noexcept {
  const LogState& s = *log;
  Cursor& c = cursors[p];
  upto = std::min(upto, s.segment_size);
  if (c.ahead_segment == UINT64_MAX || upto <= c.ahead_zeroed) return;
  zero_shared(s.segment_base(p, c.ahead_segment) + c.ahead_zeroed, upto - c.ahead_zeroed);
  c.ahead_zeroed = upto;
  if (upto == s.segment_size) finish_zeroing_ahead(p);
}

void ProducerState::finish_zeroing_ahead(std::uint32_t p) noexcept {
  const LogState& s = *log;
  Cursor& c = cursors[p];
  if (c.ahead_segment == UINT64_MAX) return;
  zero_and_publish(s, p, c.ahead_segment, c.ahead_zeroed);
  c.fast_limit = 0;  // claim_exclusive sets it again
  c.ahead_segment = UINT64_MAX;
  c.ahead_zeroed = s.segment_size;
}

}  // namespace shmlog::detail
