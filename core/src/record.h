// Decoding what is at a position of a segment: a pure function over a byte
// span and a commit word, so that whatever another process wrote, nothing
// is read outside the segment. Fuzzed by tests/core/record_test.cc.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "format.h"

namespace shmlog::record {

enum class Kind : std::uint8_t {
  kEmpty,       // commit word 0
  kInProgress,  // claimed, not yet committed (length known)
  kUnblocking,  // poisoned: an unblocker is taking over
  kData,
  kSkip,        // padding or abandoned: step over it
  kCorrupt,     // a length or type that cannot be right
};

struct Decoded {
  Kind kind = Kind::kEmpty;
  std::uint32_t frame_length = 0;    // header + key + value
  std::uint32_t aligned_length = 0;  // distance to the next record
  std::uint16_t key_length = 0;
  std::uint8_t flags = 0;
  format::RecordType type = format::RecordType::kNone;
};

// Interprets `commit_word`, read at byte `offset` of a segment of
// `segment_size` bytes whose records hold at most `max_frame` bytes.
// Inline: it runs once per record on the consumer's hot path.
[[gnu::always_inline]] inline Decoded decode(std::uint64_t word, std::uint64_t offset, std::uint64_t segment_size,
                                             std::uint32_t max_frame) noexcept {
  Decoded d;
  if (word == 0) return d;
  const std::int32_t length = format::word_length(word);
  // Fast path: a committed data record that fits (the common case).
  if (const std::uint32_t aligned = format::data_record_extent(word, offset, segment_size, max_frame); aligned != 0) {
    d.kind = Kind::kData;
    d.type = format::RecordType::kData;
    d.flags = format::word_flags(word);
    d.key_length = format::word_key_length(word);
    d.frame_length = static_cast<std::uint32_t>(length);
    d.aligned_length = aligned;
    return d;
  }
  if (length == format::kPoison) {
    d.kind = Kind::kUnblocking;
    return d;
  }
  // Every record lies inside its segment: bound the length by what is left.
  const std::uint64_t room = offset < segment_size ? segment_size - offset : 0;
  const std::uint64_t magnitude =
      length < 0 ? static_cast<std::uint64_t>(-static_cast<std::int64_t>(length)) : static_cast<std::uint64_t>(length);
  const std::uint64_t aligned = format::align_record(magnitude);
  if (offset % format::kRecordAlignment != 0 || magnitude < format::kRecordHeaderSize || aligned > room) {
    d.kind = Kind::kCorrupt;
    return d;
  }
  d.frame_length = static_cast<std::uint32_t>(magnitude);
  d.aligned_length = static_cast<std::uint32_t>(aligned);
  if (length < 0) {
    d.kind = Kind::kInProgress;
    return d;
  }
  d.type = format::word_type(word);
  d.flags = format::word_flags(word);
  d.key_length = format::word_key_length(word);
  switch (d.type) {
    case format::RecordType::kData:
      d.kind = magnitude > max_frame || d.key_length > magnitude - format::kRecordHeaderSize ? Kind::kCorrupt
                                                                                              : Kind::kData;
      return d;
    case format::RecordType::kPadding:
    case format::RecordType::kAbandoned:
      d.kind = Kind::kSkip;
      return d;
    case format::RecordType::kTxnCommit:  // control records: only read_committed looks (d.type says which)
    case format::RecordType::kTxnAbort:
    case format::RecordType::kTxnOffsets:
    case format::RecordType::kTxnPrepare:
    case format::RecordType::kTxnParticipants:
      // Their key and value are read: the key must fit in the frame.
      d.kind = d.key_length > magnitude - format::kRecordHeaderSize ? Kind::kCorrupt : Kind::kSkip;
      return d;
    default:
      d.kind = Kind::kCorrupt;
      return d;
  }
}

// What a segment holds at a position: its commit word, decoded, and the
// header the word heads. The record cursor: at() is the one place a commit
// word is loaded, walk() the one loop that steps over records; every
// reader, scan and count over a segment's records goes through them.
struct At {
  std::uint64_t word = 0;
  Decoded d;
  const format::RecordHeader* header = nullptr;
  // Committed and well formed: a data or skip record, to hand out or step over.
  bool committed() const noexcept { return d.kind == Kind::kData || d.kind == Kind::kSkip; }
  const std::byte* body() const noexcept { return reinterpret_cast<const std::byte*>(header) + format::kRecordHeaderSize; }
};

// The record at absolute `position` of the segment whose first byte is
// `segment` (a ring slot, or a segment file's copy) of `segment_size`
// bytes, a power of two. The word is loaded with acquire: it pairs with
// the producer's release store (or CAS) that committed it, so the bytes
// behind a committed word are the producer's, unless the slot was reused
// meanwhile (a reader that may be lapped checks the slot afterwards).
[[gnu::always_inline]] inline At at(const std::byte* segment, std::uint64_t position, std::uint64_t segment_size,
                                    std::uint32_t max_frame) noexcept {
  const std::uint64_t offset = position & (segment_size - 1);
  const auto* header = reinterpret_cast<const format::RecordHeader*>(segment + offset);
  const std::uint64_t word =
      std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(header->commit_word)).load(std::memory_order_acquire);
  return {word, decode(word, offset, segment_size, max_frame), header};
}

// Steps over the committed records of one segment from `position` while
// the position is below `end` (and the segment's end) and visit(at,
// position) returns true. Returns where it stopped: at the end, before the
// first record that is not committed (empty, in progress, damaged), or
// before the record visit declined.
template <typename Visit>
std::uint64_t walk(const std::byte* segment, std::uint64_t position, std::uint64_t end, std::uint64_t segment_size,
                   std::uint32_t max_frame, Visit&& visit) {
  end = std::min(end, (position | (segment_size - 1)) + 1);
  while (position < end) {
    const At a = at(segment, position, segment_size, max_frame);
    if (!a.committed() || !visit(a, position)) break;
    position += a.d.aligned_length;
  }
  return position;
}

// The checksum a producer stores: over type, flags, key_length, header bytes
// 12..31 and the key and value.
std::uint32_t checksum(const format::RecordHeader& header, std::uint64_t commit_word,
                       const std::byte* body, std::size_t body_size) noexcept;

}  // namespace shmlog::record
