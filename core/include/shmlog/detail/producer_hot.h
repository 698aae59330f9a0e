// What a producer's append touches on every record, public so that an
// exclusive producer's append is inline (Producer::append in
// shmlog/detail/inline_paths.h) with no call into the library: the
// partition cursor and the fields of the producer's state that the record
// header and the commit need. The library's ProducerState
// (core/src/producer_state.h) derives from ProducerHot and its commit uses
// the same steps below, so that they are written once. Not an API: what is
// here may change with any release.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>

#include "shmlog/detail/record_header.h"

#ifndef SHMLOG_HOT_COUNTERS
#define SHMLOG_HOT_COUNTERS 1
#endif

namespace shmlog::detail {

// CLOCK_REALTIME in nanoseconds.
inline std::uint64_t now_realtime_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// The CPU's time stamp counter; 0 where there is none this code reads.
inline std::uint64_t read_ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_ia32_rdtsc();
#else
  return 0;
#endif
}

// Records' timestamps: CLOCK_REALTIME, extrapolated from the invariant TSC
// for up to 2^25 ticks (~13 ms at 2.5 GHz) past an anchor (a pair of
// readings of both clocks), so that a record pays a TSC read (~10 ns)
// instead of clock_gettime (~25).
// Each re-anchor measures the TSC's rate against CLOCK_REALTIME over the
// span just ended, so NTP's slewing is followed span by span. One per
// producer: no sharing on the hot path.
struct RecordClock {
  std::uint64_t anchor_ticks = 0;
  std::uint64_t anchor_ns = 0;
  std::uint64_t ns_per_tick_q32 = 0;  // ns per tick, 32.32 fixed point; 0: not calibrated
  // Extrapolate this far past the anchor, then re-anchor; 0: every read
  // goes to reanchor_clock (no usable TSC, or not calibrated yet).
  std::uint64_t span_ticks = 0;
};

// Out of line, in the library: takes a new anchor and returns its
// CLOCK_REALTIME (also when the TSC is not used).
std::uint64_t reanchor_clock(RecordClock& clock) noexcept;
// Whether the CPU's TSC ticks at one rate in every power state (x86's
// invariant TSC); the benchmarks' clock asks too.
bool invariant_tsc() noexcept;
// Whether this process reads records' timestamps through the TSC: an
// invariant TSC that the kernel keeps time with.
bool tsc_timestamps() noexcept;

// The time extrapolated from the anchor into `ns`; false when a re-anchor
// is due instead.
inline bool extrapolate_time(const RecordClock& clock, std::uint64_t& ns) noexcept {
  // Unsigned: a TSC read behind the anchor (another core's) re-anchors too.
  const std::uint64_t elapsed = read_ticks() - clock.anchor_ticks;
  if (elapsed >= clock.span_ticks) return false;
  ns = clock.anchor_ns + ((elapsed * clock.ns_per_tick_q32) >> 32);  // reanchor_clock bounds the product
  return true;
}

inline std::uint64_t record_time_ns(RecordClock& clock) noexcept {
  std::uint64_t ns;
  if (extrapolate_time(clock, ns)) [[likely]] return ns;
  return reanchor_clock(clock);
}

// The longest value the inline append copies without a call.
inline constexpr std::size_t kShortValue = 64;

// Copies a record's bytes: up to 64 with two overlapping copies of a
// fixed size (a few moves, no call; a 32-byte value is two 32-byte
// copies of the same bytes), more through memcpy.
template <std::size_t kWidth>
[[gnu::always_inline]] inline void copy_ends(std::byte* to, const std::byte* from, std::size_t n) noexcept {
  std::memcpy(to, from, kWidth);
  std::memcpy(to + n - kWidth, from + n - kWidth, kWidth);
}

[[gnu::always_inline]] inline void copy_value(std::byte* to, const std::byte* from, std::size_t n) noexcept {
  if (n > kShortValue) {
    std::memcpy(to, from, n);
  } else if (n >= 32) {
    copy_ends<32>(to, from, n);
  } else if (n >= 16) {
    copy_ends<16>(to, from, n);
  } else if (n >= 8) {
    copy_ends<8>(to, from, n);
  } else if (n >= 4) {
    copy_ends<4>(to, from, n);
  } else if (n != 0) {
    to[0] = from[0];
    to[n / 2] = from[n / 2];
    to[n - 1] = from[n - 1];
  }
}

// Per partition: the ready segment this producer last wrote into, and for
// an exclusive producer its own copy of the tail.
struct ProducerCursor {
  std::uint64_t ready_begin = 1;  // empty range until the first check
  std::uint64_t ready_end = 0;
  std::byte* ready_base = nullptr;  // where ready_begin lies in memory
  std::uint64_t tail = 0;
  std::uint64_t* tail_position = nullptr;  // the partition's shared tail
  // An exclusive producer's inline append takes a record that starts at
  // `tail` and ends at or below this: no padding, preparation or zeroing
  // due before it. 0 until the library's claim (which does those) sets it.
  std::uint64_t fast_limit = 0;
  // Exclusive producers zero the next segment a chunk at a time while
  // they write the current one, instead of all at once at the crossing.
  std::uint64_t ahead_segment = UINT64_MAX;
  std::uint64_t ahead_zeroed = 0;  // bytes of ahead_segment zeroed so far
  // Where this producer counts its records and bytes in the partition:
  // its slot's AppendCounts (or the slot's own counters, in a log
  // without the table).
  std::uint64_t* appends_total = nullptr;
  std::uint64_t* bytes_total = nullptr;
};

struct ProducerHot {
  // The default partition's cursor while append may take the inline path
  // (an exclusive producer with no checksums, transactions or durable
  // acks), else nullptr.
  ProducerCursor* fast = nullptr;
  const std::uint32_t* sleepers_flag = nullptr;  // the log header's `sleepers`: set once a consumer may park
  std::uint64_t next_sequence = 0;
  std::uint32_t default_partition = 0;
  std::uint32_t max_record = 0;
  std::uint16_t id = 0;
  std::uint16_t epoch = 0;  // names this instance's records (and its transaction's)
  bool timestamps = true;
  bool claim_open = false;
  RecordClock clock;
};

// A new record's timestamp: 0 unless the producer stamps records.
inline std::uint64_t record_timestamp(ProducerHot& producer) noexcept {
  return producer.timestamps ? record_time_ns(producer.clock) : 0;
}

// A data record's identity, its sequence (the producer's next) and its time.
inline void stamp_data_header(format::RecordHeader& header, ProducerHot& producer, std::uint64_t timestamp_ns) noexcept {
  header.producer_id = producer.id;
  header.producer_epoch = producer.epoch;
  header.sequence = producer.next_sequence++;
  header.timestamp_ns = timestamp_ns;
}

// Whether a consumer may sleep: the commit then is seq_cst, ordered before
// the publisher's check of data_waiters; until then release is enough.
inline bool consumers_may_sleep(const ProducerHot& producer) noexcept {
  return std::atomic_ref<std::uint32_t>(*const_cast<std::uint32_t*>(producer.sleepers_flag))
             .load(std::memory_order_relaxed) != 0;
}

// Publishes an exclusive producer's record (nobody else writes the word),
// then moves the tail past it. Release pairs with readers' acquire; a
// publisher that must be ordered before its check for sleepers asks for
// seq_cst.
inline void publish_exclusive(std::uint64_t& word, std::uint64_t final_word, ProducerCursor& cursor,
                              std::uint64_t new_tail, bool sleepers) noexcept {
  cursor.tail = new_tail;
  std::atomic_ref<std::uint64_t>(word).store(final_word,
                                             sleepers ? std::memory_order_seq_cst : std::memory_order_release);
  std::atomic_ref<std::uint64_t>(*cursor.tail_position).store(new_tail, std::memory_order_release);
}

// Counts a record of `bytes` (key and value) appended by the row's only
// writer: relaxed stores, no read-modify-write.
inline void count_append(ProducerCursor& cursor, std::uint64_t bytes) noexcept {
  if constexpr (SHMLOG_HOT_COUNTERS != 0) {
    std::atomic_ref<std::uint64_t>(*cursor.appends_total).store(*cursor.appends_total + 1, std::memory_order_relaxed);
    std::atomic_ref<std::uint64_t>(*cursor.bytes_total).store(*cursor.bytes_total + bytes, std::memory_order_relaxed);
  }
}

}  // namespace shmlog::detail
