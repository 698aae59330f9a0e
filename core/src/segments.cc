#include "shmlog/segments.h"

#include <algorithm>
#include <cstring>

#include "format.h"
#include "record.h"
#include "shmlog/io/files.h"
#include "shmlog/io/segment_file.h"

namespace shmlog {
namespace {

std::uint64_t load_word(std::span<const std::byte> data, std::uint64_t at) noexcept {
  std::uint64_t w;
  std::memcpy(&w, data.data() + at, sizeof w);
  return w;
}

// A record at `at` whose length and (if present) checksum are good.
bool good_record(std::span<const std::byte> data, std::uint64_t at, std::uint32_t max_frame,
                 record::Decoded* out, SegmentRecord::Check* check) noexcept {
  const std::uint64_t w = load_word(data, at);
  const auto d = record::decode(w, at, data.size(), max_frame);
  if (d.kind != record::Kind::kData && d.kind != record::Kind::kSkip) return false;
  *out = d;
  // Durable logs always carry checksums: only padding and abandoned
  // records (no payload) have none, so a missing flag is damage.
  const bool payload = d.type != format::RecordType::kPadding && d.type != format::RecordType::kAbandoned;
  *check = payload ? SegmentRecord::Check::kBad : SegmentRecord::Check::kNone;
  if ((d.flags & format::kRecordFlagChecksum) != 0) {
    format::RecordHeader h;
    std::memcpy(&h, data.data() + at, sizeof h);
    const std::byte* body = data.data() + at + format::kRecordHeaderSize;
    const bool ok = record::checksum(h, w, body, d.frame_length - format::kRecordHeaderSize) == h.checksum;
    *check = ok ? SegmentRecord::Check::kGood : SegmentRecord::Check::kBad;
  }
  return true;
}

}  // namespace

std::uint64_t next_good_record(std::span<const std::byte> data, std::uint64_t from, std::uint32_t max_frame) noexcept {
  const std::uint64_t size = data.size() & ~std::uint64_t{format::kRecordAlignment - 1};
  std::uint64_t pos = (from + format::kRecordAlignment) & ~std::uint64_t{format::kRecordAlignment - 1};
  for (; pos < size; pos += format::kRecordAlignment) {
    record::Decoded d;
    SegmentRecord::Check check;
    if (good_record(data, pos, max_frame, &d, &check) && check != SegmentRecord::Check::kBad) return pos;
  }
  return data.size();
}

SegmentScan scan_segment(std::span<const std::byte> data, std::uint64_t base_offset, std::uint32_t max_frame,
                         const std::function<void(const SegmentRecord&)>& each) {
  SegmentScan scan;
  scan.base_offset = base_offset;
  std::vector<SegmentProblem> damage;
  const std::uint64_t size = data.size() & ~std::uint64_t{format::kRecordAlignment - 1};
  std::uint64_t pos = 0;
  std::uint64_t good_end = 0;
  std::uint64_t bad_from = UINT64_MAX;  // start of the damage being stepped over
  std::string bad_reason;
  auto close_damage = [&](std::uint64_t upto) {
    if (bad_from == UINT64_MAX) return;
    damage.push_back({base_offset + bad_from, upto - bad_from, bad_reason});
    bad_from = UINT64_MAX;
  };
  while (pos < size) {
    record::Decoded d;
    SegmentRecord::Check check;
    if (good_record(data, pos, max_frame, &d, &check) && check != SegmentRecord::Check::kBad) {
      close_damage(pos);
      if (each) {
        format::RecordHeader h;
        std::memcpy(&h, data.data() + pos, sizeof h);
        SegmentRecord r;
        r.offset = base_offset + pos;
        r.length = d.frame_length;
        r.type = static_cast<std::uint8_t>(d.type);
        r.transactional = (d.flags & format::kRecordFlagTransactional) != 0;
        r.producer_id = h.producer_id;
        r.producer_epoch = h.producer_epoch;
        r.sequence = h.sequence;
        r.timestamp_ns = h.timestamp_ns;
        r.check = check;
        if (d.kind == record::Kind::kData || d.type >= format::RecordType::kTxnCommit) {
          const std::byte* body = data.data() + pos + format::kRecordHeaderSize;
          r.key = {body, d.key_length};
          const std::uint32_t rest = d.frame_length - static_cast<std::uint32_t>(format::kRecordHeaderSize) - d.key_length;
          if ((d.flags & format::kRecordFlagToken) != 0 && rest >= format::kTokenTrailer) {
            std::memcpy(&r.token_hash, body + d.key_length + rest - format::kTokenTrailer, sizeof r.token_hash);
            r.value = {body + d.key_length, rest - format::kTokenTrailer};
          } else {
            r.value = {body + d.key_length, rest};
          }
        }
        each(r);
      }
      ++scan.records;
      pos += d.aligned_length;
      good_end = pos;
      continue;
    }
    const std::uint64_t w = load_word(data, pos);
    if (w == 0 && bad_from == UINT64_MAX) {
      // Zeros: the end, unless a good record follows (then a hole).
      std::uint64_t next = pos;
      while (next < size && load_word(data, next) == 0) next += format::kRecordAlignment;
      if (next >= size) break;
      bad_from = pos;
      bad_reason = "zeros where records should be (a hole)";
      pos = next;
      continue;
    }
    if (bad_from == UINT64_MAX) {
      bad_from = pos;
      const auto d2 = record::decode(w, pos, data.size(), max_frame);
      bad_reason = d2.kind == record::Kind::kData || d2.kind == record::Kind::kSkip ? "checksum mismatch"
                   : d2.kind == record::Kind::kInProgress                           ? "a claim that was never committed"
                                                                                    : "bad length or type";
    }
    pos += format::kRecordAlignment;  // resynchronise on the next good record
  }
  close_damage(pos < size ? pos : size);
  scan.end = base_offset + good_end;
  scan.complete = good_end == size;
  for (auto& problem : damage) {
    (problem.offset >= scan.end ? scan.torn : scan.problems).push_back(std::move(problem));
  }
  // Trailing damage ends at its last non-zero byte, not at the segment's end.
  for (auto& t : scan.torn) {
    const std::uint64_t from = t.offset - base_offset;
    std::uint64_t last = from + t.bytes;
    while (last > from && data[last - 1] == std::byte{0}) --last;
    t.bytes = last - from;
  }
  std::erase_if(scan.torn, [](const SegmentProblem& t) { return t.bytes == 0; });
  return scan;
}

Result<SegmentFileScan> scan_segment_file(const std::string& path, std::uint32_t max_frame,
                                          const std::function<void(const SegmentRecord&)>& each) {
  auto file = io::SegmentFile::open(path, /*writable=*/false);
  if (!file.ok()) return std::move(file).status();
  const auto& h = file->header();
  std::vector<std::byte> data(h.segment_size);
  SHMLOG_RETURN_IF_ERROR(file->read(0, data));
  SegmentFileScan out;
  out.path = path;
  out.partition = h.partition;
  out.segment_size = h.segment_size;
  out.log_id = h.log_id;
  const std::uint32_t frame = max_frame != 0 ? max_frame : static_cast<std::uint32_t>(std::min<std::uint64_t>(h.segment_size, INT32_MAX));
  out.scan = scan_segment(data, h.base_offset, frame, each);
  return out;
}

}  // namespace shmlog
