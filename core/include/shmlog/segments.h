// Reading a durable log's segment files directly: decode, verify, repair.
// For tools (`shmlog dump`, `verify`, `repair`) and tests; consumers read
// segment files through Consumer without knowing it.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "shmlog/status.h"

namespace shmlog {

// One record found in a segment.
struct SegmentRecord {
  std::uint64_t offset = 0;  // in the partition
  std::uint32_t length = 0;  // header + key + value
  std::uint8_t type = 0;     // 1 data, 2 padding, 3 abandoned, 4.. transaction control
  bool transactional = false;
  std::uint16_t producer_id = 0;
  std::uint16_t producer_epoch = 0;
  std::uint64_t sequence = 0;
  std::uint64_t timestamp_ns = 0;
  enum class Check : std::uint8_t { kGood, kNone, kBad } check = Check::kNone;  // CRC status
  std::uint64_t token_hash = 0;  // of its uniqueness token (append_unique); 0: none
  std::span<const std::byte> key, value;  // valid during the callback
};

// Bytes that are not a good record.
struct SegmentProblem {
  std::uint64_t offset = 0;  // in the partition
  std::uint64_t bytes = 0;
  std::string reason;
};

struct SegmentScan {
  std::uint64_t base_offset = 0;
  std::uint64_t records = 0;  // good records (all types)
  // The partition offset right after the last good record: everything from
  // here to the segment's end is zero in a clean file.
  std::uint64_t end = 0;
  // Damage before `end` (a bad checksum, a hole): readers skip it, nothing
  // is cut. Damage at or after `end` is the torn tail.
  std::vector<SegmentProblem> problems;
  std::vector<SegmentProblem> torn;
  bool complete = false;  // the records run to the segment's end (end == base + size)
};

// Scans one segment's data region (a pure function: reads only `data`).
// After a damaged record it resynchronises on the next record whose length
// and checksum are good. `each`, when given, sees every good record.
SegmentScan scan_segment(std::span<const std::byte> data, std::uint64_t base_offset, std::uint32_t max_frame,
                         const std::function<void(const SegmentRecord&)>& each = {});

// Where reading resumes after damage at `from` in a segment's data: the
// first good record (length, type, and checksum where it has one) past
// `from`, in 32-byte steps; data.size() when none follows. Pure.
std::uint64_t next_good_record(std::span<const std::byte> data, std::uint64_t from, std::uint32_t max_frame) noexcept;

// A segment file's header and scan.
struct SegmentFileScan {
  std::string path;
  std::uint32_t partition = 0;
  std::uint64_t segment_size = 0;
  std::uint64_t log_id = 0;
  SegmentScan scan;
};
// Reads and scans one segment file (`max_frame` 0: as large as the segment).
Result<SegmentFileScan> scan_segment_file(const std::string& path, std::uint32_t max_frame = 0,
                                          const std::function<void(const SegmentRecord&)>& each = {});

// Every segment file of the log at `path`, in partition and offset order.
// A file whose header is bad is reported as a problem of that file.
struct LogScan {
  std::vector<SegmentFileScan> files;
  std::vector<SegmentProblem> bad_files;  // reason names the file
};
Result<LogScan> scan_log_files(const std::string& path);

// Zeroes the torn tail of each partition's last segment with records (and
// any damage in the empty files after it), and returns what was removed.
// Damage before the tail is reported by scan_log_files, not cut. Refuses
// (kBusy) while a live keeper holds the log: repair is for a stopped log.
Result<std::vector<SegmentProblem>> repair_log_files(const std::string& path);

}  // namespace shmlog
