// Segment files from disk: the header decoder, the record scan (also used
// by recovery's tail walk and the reader's resynchronisation), and a whole
// file read through scan_segment_file. Input: a flags byte, max_frame,
// a resync position, then the header fields and the data region.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "format.h"
#include "fuzz_util.h"
#include "shmlog/io/crc32c.h"
#include "shmlog/io/segment_file.h"
#include "shmlog/segments.h"

using namespace shmlog;

namespace {

void check_scan(const SegmentScan& scan, std::uint64_t base, std::uint64_t size) {
  FUZZ_CHECK(scan.end >= base && scan.end - base <= size);
  FUZZ_CHECK(scan.complete == (scan.end - base == (size & ~std::uint64_t{31})));
  for (const auto& p : scan.problems) FUZZ_CHECK(p.offset >= base && p.offset + p.bytes <= scan.end);
  for (const auto& t : scan.torn) FUZZ_CHECK(t.offset >= scan.end && t.offset - base + t.bytes <= size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const auto flags = in.take<std::uint8_t>();
  const auto max_frame = in.take<std::uint32_t>();
  const auto resync_from = in.take<std::uint32_t>();
  const auto rest = in.rest_bytes();
  const std::size_t header_bytes = std::min(rest.size(), io::kSegmentHeaderFields);
  std::byte header[io::kSegmentHeaderFields] = {};
  std::copy_n(rest.begin(), header_bytes, header);
  if ((flags & 1) != 0) {  // a forged header with a good checksum reaches the field checks
    const std::uint32_t crc = crc32c::mask(crc32c::value(header, 48));
    std::memcpy(header + 48, &crc, sizeof crc);
  }
  const auto body = rest.subspan(header_bytes);

  // The header decoder accepts only what a writer could have produced.
  auto decoded = io::decode_segment_header(std::span<const std::byte>(header, header_bytes));
  std::uint64_t base = 0;
  if (decoded.ok()) {
    const auto& h = *decoded;
    FUZZ_CHECK(h.segment_size >= 4096 && h.segment_size <= io::kMaxSegmentSize);
    FUZZ_CHECK((h.segment_size & (h.segment_size - 1)) == 0 && (h.base_offset & (h.segment_size - 1)) == 0);
    base = h.base_offset;
  }

  // The pure scan, and resynchronisation after damage.
  std::uint64_t records = 0;
  const auto scan = scan_segment(body, base, max_frame, [&](const SegmentRecord& r) {
    ++records;
    FUZZ_CHECK(r.offset >= base && r.offset - base + r.length <= body.size());
    FUZZ_CHECK(r.key.size() + r.value.size() + format::kRecordHeaderSize <= r.length || r.key.empty());
  });
  FUZZ_CHECK(records == scan.records);
  check_scan(scan, base, body.size());
  const std::uint64_t next = next_good_record(body, resync_from, max_frame);
  FUZZ_CHECK(next == body.size() || (next > resync_from && next < body.size()));

  // The same bytes as a file: header page, then the data region, padded
  // with zeros to the size the header names when that is small.
  if ((flags & 2) != 0) {
    const std::string path = fuzz::scratch_path("segment.seg");
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(::pwrite(fd, header, sizeof header, 0) == static_cast<ssize_t>(sizeof header));
    if (!body.empty()) {
      FUZZ_CHECK(::pwrite(fd, body.data(), body.size(), io::kSegmentHeaderSize) == static_cast<ssize_t>(body.size()));
    }
    if (decoded.ok() && decoded->segment_size <= (1u << 20) && (flags & 4) != 0) {
      FUZZ_CHECK(::ftruncate(fd, static_cast<off_t>(io::kSegmentHeaderSize + decoded->segment_size)) == 0);
    }
    ::close(fd);
    auto file_scan = scan_segment_file(path, max_frame);
    if (file_scan.ok()) {
      FUZZ_CHECK(decoded.ok() && file_scan->segment_size == decoded->segment_size);
      check_scan(file_scan->scan, base, file_scan->segment_size);
    }
    ::unlink(path.c_str());
  }
  return 0;
}
