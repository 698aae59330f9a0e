#include "shmlog/segments.h"

#include <algorithm>
#include <cstring>

#include "checkpoint.h"
#include "format.h"
#include "log_state.h"
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

Result<LogScan> scan_log_files(const std::string& path) {
  auto meta = detail::read_log_meta(path);
  if (!meta.ok()) return std::move(meta).status();
  const auto max_frame = static_cast<std::uint32_t>(format::kRecordHeaderSize + meta->options.max_record_size);
  LogScan out;
  // The checkpoint says where retention's start was and what was durable:
  // files missing from there on are damage, at either end.
  std::optional<detail::Checkpoint> checkpoint;
  if (auto c = detail::read_checkpoint(meta->dir, meta->options, meta->log_id); c.ok()) {
    checkpoint = std::move(c).value();
  } else {
    out.bad_files.push_back({0, 0, c.status().message()});
  }
  for (std::uint32_t p = 0; p < meta->options.partitions; ++p) {
    const std::string dir = io::partition_directory(meta->dir, p);
    auto bases = io::list_segment_files(dir);
    if (!bases.ok()) return std::move(bases).status();
    const std::uint64_t size = meta->options.segment_size;
    std::uint64_t expected = bases->empty() ? UINT64_MAX : bases->front();
    if (checkpoint) expected = std::min(expected, checkpoint->start[p] & ~(size - 1));
    // Files missing from `expected` up to `base`: each named, or one entry
    // for a gap of more than 64 (a checkpoint can name any position).
    auto missing_before = [&](std::uint64_t base) {
      if (expected >= base) return;
      if ((base - expected) / size > 64) {
        out.bad_files.push_back({expected, base - expected,
                                 dir + "/" + io::segment_file_name(expected) + " to " + io::segment_file_name(base - size) +
                                     ": " + std::to_string((base - expected) / size) + " files missing (offsets " +
                                     std::to_string(expected) + ".." + std::to_string(base) + " lost)"});
        expected = base;
        return;
      }
      for (; expected < base; expected += size) {
        out.bad_files.push_back({expected, size, dir + "/" + io::segment_file_name(expected) + ": missing (offsets " +
                                                     std::to_string(expected) + ".." + std::to_string(expected + size) +
                                                     " lost)"});
      }
    };
    for (std::uint64_t base : *bases) {
      const std::string file = dir + "/" + io::segment_file_name(base);
      // Retention removes files from the front only: a gap is damage.
      missing_before(base);
      expected = base + size;
      auto scanned = scan_segment_file(file, max_frame);
      if (!scanned.ok()) {
        out.bad_files.push_back({base, 0, scanned.status().message()});
        continue;
      }
      if (scanned->partition != p || scanned->scan.base_offset != base || scanned->log_id != meta->log_id) {
        out.bad_files.push_back({base, 0, file + ": belongs to another partition or log"});
        continue;
      }
      out.files.push_back(std::move(scanned).value());
    }
    // Records run to a segment's end when a later file holds records, and
    // to the durable position in the file holding it.
    const std::uint64_t durable = checkpoint ? checkpoint->durable[p] : 0;
    std::uint64_t last_with_records = 0;
    for (const SegmentFileScan& f : out.files) {
      if (f.partition == p && f.scan.records > 0) last_with_records = std::max(last_with_records, f.scan.base_offset);
    }
    for (const SegmentFileScan& f : out.files) {
      if (f.partition != p) continue;
      const std::uint64_t base = f.scan.base_offset;
      const std::uint64_t should_end = base < last_with_records ? base + size : std::min(base + size, std::max(durable, base));
      if (!f.scan.complete && f.scan.end < should_end) {
        out.bad_files.push_back({f.scan.end, should_end - f.scan.end,
                                 f.path + ": records end at offset " + std::to_string(f.scan.end) + ", before " +
                                     std::to_string(should_end) + " (offsets lost)"});
      }
    }
    if (checkpoint && expected != UINT64_MAX) missing_before(checkpoint->durable[p]);  // up to what was durable
  }
  return out;
}

Result<std::vector<SegmentProblem>> repair_log_files(const std::string& path) {
  auto meta = detail::read_log_meta(path);
  if (!meta.ok()) return std::move(meta).status();
  if (auto attached = Log::attach(meta->dir); attached.ok()) {
    const LogInfo info = attached->info();
    if (info.keeper_alive) {
      return Status(Status::Code::kBusy, meta->dir + " is kept by process " + std::to_string(info.keeper_pid) +
                                             ": stop the log's processes before repairing it");
    }
  }
  // Every file read and writable first: "nothing to repair" is said only
  // of files that were looked at.
  for (std::uint32_t p = 0; p < meta->options.partitions; ++p) {
    const std::string dir = io::partition_directory(meta->dir, p);
    auto bases = io::list_segment_files(dir);
    if (!bases.ok()) return std::move(bases).status();
    for (std::uint64_t base : *bases) {
      const std::string file = dir + "/" + io::segment_file_name(base);
      if (::access(file.c_str(), R_OK | W_OK) != 0) return Status::from_errno("repair needs to read and write " + file, errno);
    }
  }
  auto scan = scan_log_files(meta->dir);
  if (!scan.ok()) return std::move(scan).status();
  std::vector<SegmentProblem> removed;
  for (const auto& f : scan->files) {
    if (f.scan.torn.empty()) continue;
    auto file = io::SegmentFile::open(f.path, /*writable=*/true, f.segment_size);
    if (!file.ok()) return std::move(file).status();
    SHMLOG_RETURN_IF_ERROR(file->zero_from(f.scan.end - f.scan.base_offset));
    for (const auto& t : f.scan.torn) removed.push_back({t.offset, t.bytes, f.path + ": " + t.reason});
    // What was cut below the checkpointed durable position is gone by the
    // operator's choice: the checkpoint says so (recovery and verify then
    // take the cut end for the partition's durable end).
    const std::string state = meta->dir + "/" + detail::kStateFile;
    if (!io::file_exists(state)) continue;
    auto kv = io::read_key_value_file(state, detail::kStateHeader);
    if (!kv.ok()) return std::move(kv).status();
    const std::string key = "partition." + std::to_string(f.partition) + ".durable";
    const auto it = kv->find(key);
    const std::uint64_t durable = it == kv->end() ? 0 : std::strtoull(it->second.c_str(), nullptr, 10);
    if (durable > f.scan.end && durable < f.scan.base_offset + f.segment_size) {
      (*kv)[key] = std::to_string(f.scan.end);
      SHMLOG_RETURN_IF_ERROR(io::write_key_value_file(state, detail::kStateHeader, *kv, meta->options.mode & 0666));
      removed.push_back({f.scan.end, durable - f.scan.end,
                         state + ": durable offset of partition " + std::to_string(f.partition) + " lowered from " +
                             std::to_string(durable) + " to " + std::to_string(f.scan.end)});
    }
  }
  return removed;
}

}  // namespace shmlog
