// Segment files: a partition's history on disk, one file per segment of the
// ring, named by the segment's base offset. A 4 KiB header, then the
// segment's bytes exactly as they are in shared memory (records in the core
// format; zeros where nothing was written yet). The format is in io/README.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmlog/status.h"

namespace shmlog::io {

// "SHMLSEG\1" little-endian.
inline constexpr std::uint64_t kSegmentMagic = 0x014745534C4D4853ULL;
inline constexpr std::uint16_t kSegmentVersionMajor = 1;
// 1.1: the incarnation (the shared memory's nonce) in the header.
inline constexpr std::uint16_t kSegmentVersionMinor = 1;
// The data region starts at this file offset (a page: O_DIRECT-friendly).
inline constexpr std::uint64_t kSegmentHeaderSize = 4096;
// The encoded fields occupy the first bytes of the header page; the rest is zero.
inline constexpr std::size_t kSegmentHeaderFields = 64;
// The largest segment a log may have: a header naming more is damaged or
// forged (readers allocate a segment's size to scan it).
inline constexpr std::uint64_t kMaxSegmentSize = 1ull << 30;

struct SegmentFileHeader {
  std::uint32_t partition = 0;
  std::uint64_t base_offset = 0;   // offset of the segment's first byte in its partition
  std::uint64_t segment_size = 0;  // bytes of the data region
  std::uint64_t log_id = 0;        // the log it belongs to
  std::uint64_t created_ns = 0;    // CLOCK_REALTIME
  // The memory_nonce of the log's shared memory whose keeper writes the
  // file (recovery stamps the files the new memory goes on writing); 0:
  // a 1.0 file, made before files carried it.
  std::uint64_t incarnation = 0;
};

// Fills `out` (kSegmentHeaderFields bytes) with the encoded header.
void encode_segment_header(const SegmentFileHeader& header, std::span<std::byte, kSegmentHeaderFields> out) noexcept;
// Decodes and checks a header: magic, major version, CRC, a power-of-two
// segment size and a base offset on a segment boundary. Pure; never reads
// past `bytes`.
Result<SegmentFileHeader> decode_segment_header(std::span<const std::byte> bytes);

// <log_dir>/partition-<p>
std::string partition_directory(const std::string& log_dir, std::uint32_t partition);
// "<base offset, 20 decimal digits>.seg", so names sort as offsets do.
std::string segment_file_name(std::uint64_t base_offset);
std::optional<std::uint64_t> parse_segment_file_name(std::string_view name);
// Base offsets of the segment files in a partition directory, ascending
// (an absent directory has none). Temporary files are ignored.
Result<std::vector<std::uint64_t>> list_segment_files(const std::string& partition_dir);

// An open segment file. Move-only; closes on destruction.
class SegmentFile {
 public:
  // Creates the file whole or not at all: the header and the preallocated
  // data region are written under a temporary name and renamed into place;
  // the directory is synced unless `sync_directory` is false (the caller
  // syncs it once for several files). Out of space is kNoSpace naming the
  // file.
  static Result<SegmentFile> create(const std::string& partition_dir, const SegmentFileHeader& header,
                                    std::uint32_t mode, bool sync_directory = true);
  // Opens and checks the header (also against `expect_segment_size` when
  // non-zero); the file must hold the whole data region, unless
  // `extend_short` (recovery, writable): a file cut short after its header
  // is extended with zeros (its lost tail reads as "nothing written").
  static Result<SegmentFile> open(const std::string& path, bool writable, std::uint64_t expect_segment_size = 0,
                                  bool extend_short = false);

  SegmentFile(SegmentFile&& other) noexcept;
  SegmentFile& operator=(SegmentFile&& other) noexcept;
  SegmentFile(const SegmentFile&) = delete;
  SegmentFile& operator=(const SegmentFile&) = delete;
  ~SegmentFile();

  int fd() const noexcept { return fd_; }
  const std::string& path() const noexcept { return path_; }
  const SegmentFileHeader& header() const noexcept { return header_; }
  // Reads data-region bytes [from, from + out.size()).
  Status read(std::uint64_t from, std::span<std::byte> out) const;
  // Overwrites the data region from `from` to its end with zeros and syncs.
  Status zero_from(std::uint64_t from);
  // Writes `bytes` at data-region offset `from` and syncs.
  Status write(std::uint64_t from, std::span<const std::byte> bytes);
  // Rewrites the header naming `incarnation` and syncs (writable files).
  Status stamp(std::uint64_t incarnation);
  // Whether the file's path still names this open file: a file renamed
  // over it (or removed) means another writer took the name.
  bool still_at_path() const noexcept;

 private:
  SegmentFile(int fd, std::string path, const SegmentFileHeader& header) noexcept
      : fd_(fd), path_(std::move(path)), header_(header) {}
  int fd_ = -1;
  std::string path_;
  SegmentFileHeader header_;
};

// Bytes the file system holds for a file (allocated blocks), or 0.
std::uint64_t allocated_bytes(const std::string& path) noexcept;
// Modification time of a file (CLOCK_REALTIME ns), or 0.
std::uint64_t modified_ns(const std::string& path) noexcept;

}  // namespace shmlog::io
