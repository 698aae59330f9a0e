#include "record.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <span>
#include <string>

#include "shmlog/io/crc32c.h"

namespace shmlog::record {
namespace {

using format::make_commit_word;
using format::RecordType;
constexpr std::uint64_t kSegment = 64 * 1024;
constexpr std::uint32_t kMaxFrame = 4096;

// The key hash is part of the format: producers in every process and
// language send a key to the same partition, and tokens find their slot.
TEST(KeyHash, IsPinned) {
  const std::string key = "user-42";
  const auto bytes = std::as_bytes(std::span(key.data(), key.size()));
  EXPECT_EQ(shmlog::format::key_hash(bytes), 15993482117825954359ull);
}

TEST(RecordDecode, ZeroWordIsEmpty) { EXPECT_EQ(decode(0, 0, kSegment, kMaxFrame).kind, Kind::kEmpty); }

TEST(RecordDecode, NegativeLengthIsInProgressWithItsLength) {
  auto d = decode(make_commit_word(-40, RecordType::kNone, 0, 7), 64, kSegment, kMaxFrame);
  EXPECT_EQ(d.kind, Kind::kInProgress);
  EXPECT_EQ(d.frame_length, 40u);
  EXPECT_EQ(d.aligned_length, 64u);
}

TEST(RecordDecode, PoisonIsUnblocking) {
  EXPECT_EQ(decode(static_cast<std::uint32_t>(format::kPoison), 0, kSegment, kMaxFrame).kind, Kind::kUnblocking);
}

TEST(RecordDecode, CommittedDataRecordCarriesKeyLengthAndFlags) {
  auto d = decode(make_commit_word(32 + 3 + 10, RecordType::kData, format::kRecordFlagChecksum, 3), 0, kSegment,
                  kMaxFrame);
  EXPECT_EQ(d.kind, Kind::kData);
  EXPECT_EQ(d.key_length, 3);
  EXPECT_EQ(d.flags, format::kRecordFlagChecksum);
  EXPECT_EQ(d.aligned_length, 64u);
}

TEST(RecordDecode, PaddingAndAbandonedAreSkipped) {
  EXPECT_EQ(decode(make_commit_word(96, RecordType::kPadding, 0, 0), 0, kSegment, kMaxFrame).kind, Kind::kSkip);
  EXPECT_EQ(decode(make_commit_word(96, RecordType::kAbandoned, 0, 0), 0, kSegment, kMaxFrame).kind, Kind::kSkip);
}

TEST(RecordDecode, LengthPastSegmentEndIsCorrupt) {
  EXPECT_EQ(decode(make_commit_word(64, RecordType::kData, 0, 0), kSegment - 32, kSegment, kMaxFrame).kind,
            Kind::kCorrupt);
}

TEST(RecordDecode, LengthBelowHeaderIsCorrupt) {
  EXPECT_EQ(decode(make_commit_word(31, RecordType::kData, 0, 0), 0, kSegment, kMaxFrame).kind, Kind::kCorrupt);
}

TEST(RecordDecode, KeyLongerThanRecordIsCorrupt) {
  EXPECT_EQ(decode(make_commit_word(40, RecordType::kData, 0, 9), 0, kSegment, kMaxFrame).kind, Kind::kCorrupt);
}

// Control records' keys and values are read too (transaction markers).
TEST(RecordDecode, ControlRecordKeyLongerThanRecordIsCorrupt) {
  for (RecordType t : {RecordType::kTxnCommit, RecordType::kTxnAbort, RecordType::kTxnOffsets,
                       RecordType::kTxnPrepare, RecordType::kTxnParticipants}) {
    EXPECT_EQ(decode(make_commit_word(40, t, 0, 9), 0, kSegment, kMaxFrame).kind, Kind::kCorrupt);
    EXPECT_EQ(decode(make_commit_word(40, t, 0, 8), 0, kSegment, kMaxFrame).kind, Kind::kSkip);
  }
}

TEST(RecordDecode, DataLongerThanMaxFrameIsCorrupt) {
  EXPECT_EQ(decode(make_commit_word(kMaxFrame + 32, RecordType::kData, 0, 0), 0, kSegment, kMaxFrame).kind,
            Kind::kCorrupt);
}

TEST(RecordDecode, UnknownTypeIsCorrupt) {
  EXPECT_EQ(decode(make_commit_word(64, static_cast<RecordType>(77), 0, 0), 0, kSegment, kMaxFrame).kind,
            Kind::kCorrupt);
}

TEST(RecordDecode, MisalignedOffsetIsCorrupt) {
  EXPECT_EQ(decode(make_commit_word(64, RecordType::kData, 0, 0), 8, kSegment, kMaxFrame).kind, Kind::kCorrupt);
}

// Whatever another process wrote, a decoded record never reaches past the
// segment and never claims a length below the header.
TEST(RecordDecode, RandomWordsNeverPointOutsideTheSegment) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 2'000'000; ++i) {
    const std::uint64_t word = rng();
    const std::uint64_t offset = (rng() % (kSegment / 32)) * 32;
    auto d = decode(word, offset, kSegment, kMaxFrame);
    if (d.kind == Kind::kData || d.kind == Kind::kSkip || d.kind == Kind::kInProgress) {
      ASSERT_GE(d.frame_length, format::kRecordHeaderSize);
      ASSERT_LE(offset + d.aligned_length, kSegment);
      ASSERT_EQ(d.aligned_length % 32, 0u);
    }
    if (d.kind == Kind::kData) {
      ASSERT_LE(d.key_length + format::kRecordHeaderSize, d.frame_length);
    }
  }
}

// What the inline poll takes (shmlog/detail/record_header.h) is exactly
// what decode calls a data record, and never reaches past the segment:
// random words at random offsets, aligned or not, inside the segment or
// past it.
TEST(RecordDecode, InlinePollTakesOnlyWholeDataRecordsInsideTheSegment) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2'000'000; ++i) {
    std::uint64_t word = rng();
    if (i % 2 == 0) {  // a plausible data record
      word = make_commit_word(static_cast<std::int32_t>(rng() % 5000), RecordType::kData,
                              static_cast<std::uint8_t>(rng() % 3 == 0 ? rng() : 0),
                              static_cast<std::uint16_t>(rng() % 3 == 0 ? rng() : rng() % 64));
    }
    const std::uint64_t offset = i % 3 == 0 ? rng() % (2 * kSegment) : (rng() % (kSegment / 32)) * 32;
    const std::uint32_t extent = format::data_record_extent(word, offset, kSegment, kMaxFrame);
    if (offset < kSegment) {
      const auto d = decode(word, offset, kSegment, kMaxFrame);
      ASSERT_EQ(extent != 0, d.kind == Kind::kData) << std::hex << word << " at " << std::dec << offset;
      if (extent != 0) {
        ASSERT_EQ(extent, d.aligned_length);
      }
    }
    if (extent != 0) {
      ASSERT_LE(offset + extent, kSegment);
      ASSERT_LE(format::word_key_length(word) + format::kRecordHeaderSize,
                static_cast<std::uint32_t>(format::word_length(word)));
      ASSERT_LE(static_cast<std::uint32_t>(format::word_length(word)), kMaxFrame);
    }
  }
}

// The inline poll's own check (format::plain_data_extent) takes exactly
// the records data_record_extent takes that have no flags, at the aligned
// offsets inside the segment it is given: random words, plausible data
// records, words with the type's or the flags' byte off by one, lengths
// around the header's size, the frame's limit and a claim's negatives.
TEST(RecordDecode, InlinePollsCheckIsTheFullCheckWithoutFlags) {
  std::mt19937_64 rng(11);
  const std::int32_t lengths[] = {0, 1, 31, 32, 33, 63, 64, static_cast<std::int32_t>(kMaxFrame) - 1,
                                  static_cast<std::int32_t>(kMaxFrame), static_cast<std::int32_t>(kMaxFrame) + 1,
                                  -32, -64, INT32_MIN};
  for (int i = 0; i < 2'000'000; ++i) {
    std::uint64_t word = rng();
    if (i % 4 != 0) {
      const std::int32_t length = i % 4 == 1 ? lengths[rng() % std::size(lengths)] : static_cast<std::int32_t>(rng() % 5000);
      const auto type = static_cast<RecordType>(rng() % 4 == 0 ? rng() % 10 : 1);
      const auto flags = static_cast<std::uint8_t>(rng() % 4 == 0 ? rng() % 3 : 0);
      word = make_commit_word(length, type, flags, static_cast<std::uint16_t>(rng() % 3 == 0 ? rng() : rng() % 64));
    }
    const std::uint64_t offset = (rng() % (kSegment / 32)) * 32;
    const std::uint32_t full = format::word_flags(word) == 0 ? format::data_record_extent(word, offset, kSegment, kMaxFrame) : 0;
    ASSERT_EQ(format::plain_data_extent(word, kSegment - offset, kMaxFrame), full)
        << std::hex << word << " at " << std::dec << offset;
  }
}

TEST(Crc32c, MatchesTheStandardCheckValue) {
  // The CRC32C of "123456789" is 0xE3069283 (RFC 3720).
  EXPECT_EQ(crc32c::value("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c::extend(crc32c::value("1234", 4), "56789", 5), 0xE3069283u);
}

TEST(Crc32c, MaskRoundTrips) {
  for (std::uint32_t v : {0u, 1u, 0xE3069283u, 0xffffffffu}) {
    EXPECT_EQ(crc32c::unmask(crc32c::mask(v)), v);
    EXPECT_NE(crc32c::mask(v), v);
  }
}

TEST(RecordChecksum, ChangesWithAnyByteOfBodyOrHeader) {
  format::RecordHeader h{};
  h.producer_id = 3;
  h.sequence = 9;
  std::byte body[40];
  std::memset(body, 7, sizeof body);
  const std::uint64_t word = make_commit_word(72, RecordType::kData, 1, 4);
  const std::uint32_t base = checksum(h, word, body, sizeof body);
  for (std::size_t i = 0; i < sizeof body; ++i) {
    body[i] = std::byte{8};
    EXPECT_NE(checksum(h, word, body, sizeof body), base) << "body byte " << i;
    body[i] = std::byte{7};
  }
  h.sequence = 10;
  EXPECT_NE(checksum(h, word, body, sizeof body), base);
  h.sequence = 9;
  EXPECT_NE(checksum(h, make_commit_word(72, RecordType::kData, 1, 5), body, sizeof body), base);
}

}  // namespace
}  // namespace shmlog::record
