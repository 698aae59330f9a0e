// Decoding what is at a position of a segment: a pure function over a byte
// span and a commit word, so that whatever another process wrote, nothing
// is read outside the segment. Fuzzed by tests/core/record_test.cc.
#pragma once

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
Decoded decode(std::uint64_t commit_word, std::uint64_t offset, std::uint64_t segment_size,
               std::uint32_t max_frame) noexcept;

// The checksum a producer stores: over type, flags, key_length, header bytes
// 12..31 and the key and value.
std::uint32_t checksum(const format::RecordHeader& header, std::uint64_t commit_word,
                       const std::byte* body, std::size_t body_size) noexcept;

}  // namespace shmlog::record
