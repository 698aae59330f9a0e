#include "record.h"

#include <cstring>

#include "crc32c.h"

namespace shmlog::record {

Decoded decode(std::uint64_t word, std::uint64_t offset, std::uint64_t segment_size,
               std::uint32_t max_frame) noexcept {
  Decoded d;
  if (word == 0) return d;
  const std::int32_t length = format::word_length(word);
  if (length == format::kPoison) {
    d.kind = Kind::kUnblocking;
    return d;
  }
  // Every record lies inside its segment: bound the length by what is left.
  const std::uint64_t room = offset < segment_size ? segment_size - offset : 0;
  const std::uint64_t magnitude = length < 0 ? static_cast<std::uint64_t>(-static_cast<std::int64_t>(length))
                                             : static_cast<std::uint64_t>(length);
  const std::uint64_t aligned = format::align_record(magnitude);
  if (offset % format::kRecordAlignment != 0 || magnitude < format::kRecordHeaderSize ||
      aligned > room) {
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
      if (magnitude > max_frame ||
          d.key_length > magnitude - format::kRecordHeaderSize) {
        d.kind = Kind::kCorrupt;
      } else {
        d.kind = Kind::kData;
      }
      return d;
    case format::RecordType::kPadding:
    case format::RecordType::kAbandoned:
      d.kind = Kind::kSkip;
      return d;
    default:
      d.kind = Kind::kCorrupt;
      return d;
  }
}

std::uint32_t checksum(const format::RecordHeader& header, std::uint64_t commit_word,
                       const std::byte* body, std::size_t body_size) noexcept {
  const std::uint32_t meta = static_cast<std::uint32_t>(commit_word >> 32);
  std::uint32_t crc = crc32c::value(&meta, sizeof meta);
  const auto* raw = reinterpret_cast<const std::byte*>(&header);
  crc = crc32c::extend(crc, raw + offsetof(format::RecordHeader, producer_id),
                       format::kRecordHeaderSize - offsetof(format::RecordHeader, producer_id));
  crc = crc32c::extend(crc, body, body_size);
  return crc32c::mask(crc);
}

}  // namespace shmlog::record
