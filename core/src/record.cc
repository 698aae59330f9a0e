#include "record.h"

#include <cstring>

#include "shmlog/io/crc32c.h"

namespace shmlog::record {

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
