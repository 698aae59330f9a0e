// A ring slot's state word (format::SegmentDescriptor::state_word), public
// because the inline poll of a consumer (Consumer::poll in
// shmlog/detail/inline_paths.h)
// checks that the slot it reads still holds its segment; core/src/format.h
// has the rest of the shared-memory format. Not an API: what is here may
// change with the format.
#pragma once

#include <cstdint>

namespace shmlog::format {

// ---------------------------------------------------------------------------
// `state_word` says which segment (by index = position / segment_size) the
// slot holds and whether it is ready (zeroed, writable) or being prepared:
//
//   63                                      24 23 22 21             0
//  +------------------------------------------+-----+----------------+
//  |          segment_index (40 bits)         |state| preparer pid   |
//  +------------------------------------------+-----+----------------+
//
// A slot moves from (s - ring_segments, READY) to (s, PREPARING) by a 16-byte
// CAS that writes the preparer's stamp with the word (so the pid and the
// stamp are never seen apart; core/src/owner.h), is zeroed by the preparer, and is
// published as (s, READY) with release. A preparation whose process died is
// taken over (the same CAS) by the next producer that needs the slot.
// ---------------------------------------------------------------------------
enum class SegmentState : std::uint64_t { kReady = 0, kPreparing = 1 };

inline constexpr unsigned kSegmentPidBits = 22;
inline constexpr unsigned kSegmentStateShift = 22;
inline constexpr unsigned kSegmentIndexShift = 24;

constexpr std::uint64_t make_segment_word(std::uint64_t index, SegmentState state,
                                          std::uint32_t pid) noexcept {
  return index << kSegmentIndexShift | static_cast<std::uint64_t>(state) << kSegmentStateShift |
         (pid & ((1u << kSegmentPidBits) - 1));
}
constexpr std::uint64_t segment_index(std::uint64_t w) noexcept { return w >> kSegmentIndexShift; }
constexpr SegmentState segment_state(std::uint64_t w) noexcept {
  return static_cast<SegmentState>((w >> kSegmentStateShift) & 3u);
}
constexpr std::uint32_t segment_pid(std::uint64_t w) noexcept {
  return static_cast<std::uint32_t>(w & ((1u << kSegmentPidBits) - 1));
}

}  // namespace shmlog::format
