// The record header's layout and commit word, public because the inline
// append of an exclusive producer (Producer::append in
// shmlog/detail/inline_paths.h)
// writes them and the inline poll (Consumer::poll) reads them; core/src/format.h has the rest of the shared-memory
// format and pins these with static_asserts. Not an API: what is here may
// change with the format.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shmlog::format {

inline constexpr std::size_t kRecordAlignment = 32;
inline constexpr std::size_t kRecordHeaderSize = 32;

// Record types (in the commit word). 0 means "no record here yet".
enum class RecordType : std::uint8_t {
  kNone = 0,
  kData = 1,
  kPadding = 2,    // fills a segment's end, or an aborted claim
  kAbandoned = 3,  // a claim whose producer died or stalled past the timeout
  // Control records of transactions; the header's producer id and epoch
  // name the transaction. Readers that do not look for them step over them.
  kTxnCommit = 4,   // the transaction's records in this partition are committed
  kTxnAbort = 5,    // ... are aborted
  kTxnOffsets = 6,  // consumer offsets committed with the transaction (value: see core/README.md)
  kTxnPrepare = 7,       // a participant of a transaction spanning logs: names the coordinator
  kTxnParticipants = 8,  // in the coordinator's log: the participants to finish after a crash
  // 9.. reserved.
};

// ---------------------------------------------------------------------------
// Record header, 32 bytes, at a 32-byte aligned position.
//
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                 frame_length (int32, commit word)             |  0
//  +---------------+---------------+-------------------------------+
//  |     type      |     flags     |          key_length           |  4
//  +---------------+---------------+-------------------------------+
//  |                 checksum (masked CRC32C, or 0)                |  8
//  +-------------------------------+-------------------------------+
//  |          producer_id          |        producer_epoch         | 12
//  +-------------------------------+-------------------------------+
//  |                       timestamp_ns (uint64)                   | 16
//  +---------------------------------------------------------------+
//  |                       sequence (uint64)                       | 24
//  +---------------------------------------------------------------+
//  |            key (key_length bytes), then value ...             | 32
//
// Bytes 0..7 are one 64-bit commit word, written only atomically, so that
// length and type are published together and a revoked claim cannot have
// its type overwritten:
//   frame_length == 0          nothing claimed here (yet)
//   frame_length <  0          claimed, being written; -frame_length bytes;
//                              key_length holds the producer id (liveness)
//   frame_length == kPoison    an unblocker is taking over an unregistered claim
//   frame_length >  0          committed: header + key + value bytes
// The next record starts at position + align32(frame_length).
// ---------------------------------------------------------------------------
struct RecordHeader {
  std::uint64_t commit_word;
  std::uint32_t checksum;
  std::uint16_t producer_id;
  std::uint16_t producer_epoch;
  std::uint64_t timestamp_ns;
  std::uint64_t sequence;
};

constexpr std::uint64_t make_commit_word(std::int32_t frame_length, RecordType type,
                                         std::uint8_t flags, std::uint16_t key_length) noexcept {
  return static_cast<std::uint64_t>(static_cast<std::uint32_t>(frame_length)) |
         static_cast<std::uint64_t>(static_cast<std::uint8_t>(type)) << 32 |
         static_cast<std::uint64_t>(flags) << 40 | static_cast<std::uint64_t>(key_length) << 48;
}
constexpr std::int32_t word_length(std::uint64_t w) noexcept {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(w));
}
constexpr RecordType word_type(std::uint64_t w) noexcept {
  return static_cast<RecordType>(static_cast<std::uint8_t>(w >> 32));
}
// 0: no checksum, token or transaction (core/src/format.h names the flags).
constexpr std::uint8_t word_flags(std::uint64_t w) noexcept {
  return static_cast<std::uint8_t>(w >> 40);
}
constexpr std::uint16_t word_key_length(std::uint64_t w) noexcept {
  return static_cast<std::uint16_t>(w >> 48);
}
constexpr std::uint64_t align_record(std::uint64_t n) noexcept {
  return (n + kRecordAlignment - 1) & ~static_cast<std::uint64_t>(kRecordAlignment - 1);
}

// The distance to the next record (the aligned frame) when `word`, read at
// byte `offset` of a segment of `segment_size` bytes, commits a data record
// of at most `max_frame` bytes whose key fits in its frame and which ends
// inside the segment; else 0 (nothing yet, in progress, another type, or
// damage: record::decode in core/src/record.h tells which). A pure
// function of what another process wrote: record::decode starts with it
// (and is fuzzed), and the inline poll reads nothing it has not bounded.
constexpr std::uint32_t data_record_extent(std::uint64_t word, std::uint64_t offset, std::uint64_t segment_size,
                                           std::uint32_t max_frame) noexcept {
  const std::int32_t length = word_length(word);
  if (length < static_cast<std::int32_t>(kRecordHeaderSize) || static_cast<std::uint32_t>(length) > max_frame ||
      word_type(word) != RecordType::kData || word_key_length(word) > static_cast<std::uint32_t>(length) - kRecordHeaderSize ||
      (offset & (kRecordAlignment - 1)) != 0 || offset > segment_size) {
    return 0;
  }
  const std::uint64_t aligned = align_record(static_cast<std::uint64_t>(length));
  return aligned <= segment_size - offset ? static_cast<std::uint32_t>(aligned) : 0;
}

// data_record_extent for the inline poll, with its flags checked too: the
// aligned frame of a committed data record with no flags whose key fits in
// its frame, of at most `max_frame` bytes, at a record-aligned offset with
// `room` bytes of the segment from it; else 0. The caller vouches for the
// offset (inside the segment, aligned: a reader's positions always are),
// so the word alone is checked: type and flags in one compare, the length
// in one unsigned compare (one below the header, or a claim's negative,
// wraps high).
constexpr std::uint32_t plain_data_extent(std::uint64_t word, std::uint64_t room, std::uint32_t max_frame) noexcept {
  const std::uint32_t length = static_cast<std::uint32_t>(word);
  const std::uint32_t body = length - static_cast<std::uint32_t>(kRecordHeaderSize);
  if (static_cast<std::uint16_t>(word >> 32) != static_cast<std::uint16_t>(RecordType::kData) ||
      body > max_frame - static_cast<std::uint32_t>(kRecordHeaderSize) || word_key_length(word) > body) {
    return 0;
  }
  const std::uint64_t aligned = align_record(length);
  return aligned <= room ? static_cast<std::uint32_t>(aligned) : 0;
}

}  // namespace shmlog::format
