// Reading segments the ring no longer holds, and rebuilding a durable
// log's shared memory from its segment files and checkpoint after a host
// crash (recover_from_disk).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "checkpoint.h"
#include "durability.h"
#include "owner.h"
#include "record.h"
#include "test_hooks.h"
#include "shmlog/io/files.h"
#include "shmlog/io/segment_file.h"
#include "shmlog/segments.h"
#include "shmlog/shm/process.h"

namespace shmlog::detail {

using format::atomic;

const std::byte* disk_segment(const LogState& s, std::uint32_t p, std::uint64_t segment, SegmentBuffer& buffer) {
  if (buffer.partition == p && buffer.segment == segment) return buffer.data.data();
  if (!s.durable()) return nullptr;
  const std::string path = segment_path(s, p, segment);
  auto file = io::SegmentFile::open(path, /*writable=*/false, s.segment_size);
  if (!file.ok()) {
    buffer.failure = file.status().message();
    return nullptr;
  }
  // A file under this segment's name whose header names another segment,
  // partition or log (a stray copy) is not this segment.
  const auto& h = file->header();
  if (h.base_offset != segment << s.segment_shift || h.partition != p || h.log_id != s.header->log_id) {
    buffer.failure = path + " holds offset " + std::to_string(h.base_offset) + " of partition " +
                     std::to_string(h.partition) + (h.log_id != s.header->log_id ? " of another log" : "") +
                     ", not this segment";
    return nullptr;
  }
  buffer.data.resize(s.segment_size);
  if (Status read = file->read(0, buffer.data); !read.ok()) {
    buffer.segment = UINT64_MAX;
    buffer.failure = read.message();
    return nullptr;
  }
  buffer.partition = p;
  buffer.segment = segment;
  buffer.path = path;
  return buffer.data.data();
}

const std::byte* segment_bytes(const LogState& s, std::uint32_t p, std::uint64_t segment, SegmentBuffer& buffer) {
  const std::uint64_t w = atomic(s.descriptor(p, segment).state_word).load(std::memory_order_acquire);
  if (format::segment_index(w) == segment && format::segment_state(w) == format::SegmentState::kReady) {
    return s.segment_base(p, segment);
  }
  if (format::segment_index(w) < segment) return nullptr;  // not written yet
  return disk_segment(s, p, segment, buffer);
}

namespace {

// True when a file's header page is all zeros (or the file is shorter).
bool header_never_written(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  std::byte fields[io::kSegmentHeaderFields] = {};
  const std::size_t n = std::fread(fields, 1, sizeof fields, f);
  std::fclose(f);
  (void)n;  // a short read leaves zeros
  return std::all_of(std::begin(fields), std::end(fields), [](std::byte b) { return b == std::byte{0}; });
}


// The end of partition p's records after a host crash, with the files
// made to agree. Below `durable_from` (its checkpointed durable position)
// every byte was synced before the crash: damage there is damage, left for
// readers to report and step over. Past it, writeback may have reached the
// disk in any order within and across files, so records after a hole are
// not evidence of anything: the partition ends at the first hole, torn
// record, missing or foreign file, and whatever lies past that end is
// zeroed (its file) or removed (later files). Acknowledged records were
// synced, so they are all before the end. `bases` loses the removed files.
Result<std::uint64_t> recover_tail(const LogState& s, std::uint32_t p, std::vector<std::uint64_t>& bases,
                                   std::uint64_t durable_from, std::uint64_t start) {
  const std::string dir = io::partition_directory(s.path, p);
  auto path_of = [&](std::uint64_t base) { return dir + "/" + io::segment_file_name(base); };
  // Records are contiguous from the durable position, or from retention's
  // start (a checkpoint without it: the first file) when that is later: a
  // file missing after it is a hole, not retention's doing.
  const std::uint64_t floor =
      std::max(durable_from, start != UINT64_MAX ? start : bases.empty() ? 0 : bases.front());
  // A file created ahead of need may have its name on disk but not its
  // header (the header is synced with the file's first data): it never
  // held a durable byte. Below the durable position it is damage.
  for (std::uint64_t base : std::vector<std::uint64_t>(bases)) {
    if (base + s.segment_size > floor && header_never_written(path_of(base))) {
      SHMLOG_RETURN_IF_ERROR(io::remove_file(path_of(base)));
      std::erase(bases, base);
    }
  }
  std::uint64_t pos = floor;  // records are contiguous up to here
  std::uint64_t tail = pos;
  bool cut_inside = false;     // the file holding `tail` has bytes past it
  bool damaged_below = false;  // and damage below it
  for (;;) {
    const std::uint64_t base = pos & ~s.segment_mask;
    if (std::find(bases.begin(), bases.end(), base) == bases.end()) {
      tail = base == pos ? pos : base;  // nothing of the segment without its file
      break;
    }
    const std::string path = path_of(base);
    {  // A file cut short (a crash while the file system extended it) reads as zeros past its end.
      auto file = io::SegmentFile::open(path, /*writable=*/true, s.segment_size, /*extend_short=*/true);
      if (!file.ok()) {
        tail = base;
        break;
      }
    }
    auto scanned = scan_segment_file(path, s.max_frame);
    if (!scanned.ok() || scanned->partition != p || scanned->scan.base_offset != base ||
        scanned->log_id != s.header->log_id) {
      tail = base;  // unreadable, or another segment's file under this name
      break;
    }
    const SegmentScan& scan = scanned->scan;
    std::uint64_t cut = scan.complete ? base + s.segment_size : std::max(scan.end, base);
    for (const auto* problems : {&scan.problems, &scan.torn}) {
      for (const SegmentProblem& problem : *problems) {
        if (problem.offset + problem.bytes > pos) cut = std::min(cut, problem.offset);
      }
    }
    if (cut < base + s.segment_size) {
      tail = cut;
      cut_inside = scan.end > cut || !scan.torn.empty();
      damaged_below = std::any_of(scan.problems.begin(), scan.problems.end(),
                                  [&](const SegmentProblem& problem) { return problem.offset < cut; });
      break;
    }
    pos = base + s.segment_size;
    tail = pos;
  }
  if (cut_inside && tail >= durable_from) {
    auto file = io::SegmentFile::open(path_of(tail & ~s.segment_mask), /*writable=*/true, s.segment_size);
    if (!file.ok()) return std::move(file).status();
    SHMLOG_RETURN_IF_ERROR(file->zero_from(tail & s.segment_mask));
  }
  if (tail < durable_from || damaged_below) {
    // The file holding the durable position is gone (retention, or every
    // file), cut short, damaged across that position, or the tail's file
    // is damaged below the tail. Bytes below those positions were on disk:
    // the damage is left for readers to report (from the file: the ring
    // is not loaded with a damaged segment), nothing of it is cut, and
    // offsets never go back below it: the segment ends in padding where
    // its file takes it, and the partition goes on at the next one.
    const std::uint64_t last = std::max(tail, durable_from);
    tail = (last + s.segment_mask) & ~s.segment_mask;
    if (auto file = io::SegmentFile::open(path_of(last & ~s.segment_mask), /*writable=*/true, s.segment_size);
        file.ok() && last < tail) {
      const auto pad = format::make_commit_word(static_cast<std::int32_t>(tail - last), format::RecordType::kPadding, 0, 0);
      SHMLOG_RETURN_IF_ERROR(file->write(last & s.segment_mask, std::as_bytes(std::span(&pad, 1))));
    }
  }
  // Later files hold nothing durable. Ours with any bytes go, empty ones
  // (made ahead of need) stay for the keeper; one whose header names
  // another segment, partition or log, or is damaged, is not known to be
  // ours to delete: it is set aside as NAME.foreign or NAME.damaged.
  bool changed = false;
  for (std::uint64_t base : std::vector<std::uint64_t>(bases)) {
    if (base < tail) continue;
    const std::string path = path_of(base);
    auto scanned = scan_segment_file(path, s.max_frame);
    const bool ours = scanned.ok() && scanned->partition == p && scanned->scan.base_offset == base &&
                      scanned->log_id == s.header->log_id;
    if (ours && scanned->scan.records == 0 && scanned->scan.torn.empty() && scanned->scan.problems.empty()) continue;
    if (ours) {
      SHMLOG_RETURN_IF_ERROR(io::remove_file(path));
    } else if (const std::string aside = path + (scanned.ok() ? ".foreign" : ".damaged");
               std::rename(path.c_str(), aside.c_str()) != 0) {
      return Status::from_errno("setting aside " + path + " as " + aside, errno);
    }
    std::erase(bases, base);
    changed = true;
  }
  if (changed) SHMLOG_RETURN_IF_ERROR(io::sync_directory(dir));
  // The files this memory's keeper goes on writing (the tail's, and those
  // made ahead) now belong to it: a keeper writes only files that name its
  // memory.
  for (std::uint64_t base : bases) {
    if (base + s.segment_size <= tail) continue;
    auto file = io::SegmentFile::open(path_of(base), /*writable=*/true, s.segment_size);
    if (!file.ok()) return std::move(file).status();
    SHMLOG_RETURN_IF_ERROR(file->stamp(s.header->memory_nonce));
  }
  return tail;
}

}  // namespace

// What the recovered ring says of the producer ids that wrote to it: the
// epochs seen (with whether each wrote transactional records, which marker
// ended them, and the highest sequences of each kind). The checkpoint is up
// to 100 ms old, and every begin_transaction moves an epoch: the records
// are the truth.
struct EpochSeen {
  bool transactional = false, committed = false, aborted = false;
  std::uint64_t plain_plus_one = 0, transactional_plus_one = 0;  // highest sequence + 1 (0: none)
};
using EpochsSeen = std::map<std::uint16_t, std::map<std::uint16_t, EpochSeen>>;  // id -> epoch -> seen

void note_epochs(const LogState& s, std::uint32_t p, std::uint64_t first_segment, std::uint64_t tail, EpochsSeen& seen) {
  for (std::uint64_t segment = first_segment; (segment << s.segment_shift) < tail; ++segment) {
    const std::uint64_t base = segment << s.segment_shift;
    const std::span<const std::byte> bytes(s.segment_base(p, segment), std::min(s.segment_size, tail - base));
    (void)scan_segment(bytes, base, s.max_frame, [&](const SegmentRecord& r) {
      const auto type = static_cast<format::RecordType>(r.type);
      if (type == format::RecordType::kPadding || type == format::RecordType::kAbandoned) return;
      EpochSeen& e = seen[r.producer_id][r.producer_epoch];
      if (type == format::RecordType::kData) {
        auto& highest = r.transactional ? e.transactional_plus_one : e.plain_plus_one;
        highest = std::max(highest, r.sequence + 1);
      }
      e.transactional |= type == format::RecordType::kData && r.transactional;
      e.committed |= type == format::RecordType::kTxnCommit;
      e.aborted |= type == format::RecordType::kTxnAbort;
    });
  }
}

// Each named producer's epoch becomes at least the newest its records carry
// (so the next instance fences them), its last sequence at least the
// highest its records carry (plain ones, and those of transactions that
// committed), and its newest transaction is set to what its markers say:
// open when none was written (no process holds it after a crash: its first
// read_committed reader aborts it), never the older transaction the
// checkpoint names.
void restore_epochs(LogState& s, const EpochsSeen& seen) {
  for (const auto& [id, epochs] : seen) {
    if (id >= s.options.max_producers) continue;
    auto& slot = s.producer_slot(id);
    if ((slot.flags & format::kProducerIdempotent) == 0 || slot.name[0] == '\0') continue;
    const std::uint16_t first = slot.first_epoch;
    const auto checkpointed = static_cast<std::uint16_t>(slot.epoch - first);
    std::uint16_t newest = checkpointed;
    const EpochSeen* newest_txn = nullptr;
    std::uint16_t newest_txn_epoch = 0;
    // A transaction the checkpoint says was decided "commit".
    const bool committing = format::txn_state(slot.txn_word) == format::TxnState::kCommitting;
    std::uint64_t sequence_plus_one = slot.last_sequence_plus_one;
    for (const auto& [epoch, e] : epochs) {
      const auto age = static_cast<std::uint16_t>(epoch - first);
      // Records of an older identity of the slot lie "behind" its first
      // epoch, far round the 16-bit circle: not this identity's.
      if (static_cast<std::uint16_t>(age - checkpointed) >= 0x8000u) continue;
      newest = std::max(newest, age);
      sequence_plus_one = std::max(sequence_plus_one, e.plain_plus_one);
      if (e.committed || (committing && format::txn_epoch(slot.txn_word) == epoch)) {
        sequence_plus_one = std::max(sequence_plus_one, e.transactional_plus_one);
      }
      if (e.transactional && (newest_txn == nullptr || age >= static_cast<std::uint16_t>(newest_txn_epoch - first))) {
        newest_txn = &e;
        newest_txn_epoch = epoch;
      }
    }
    slot.epoch = static_cast<std::uint16_t>(first + newest);
    slot.last_sequence_plus_one = sequence_plus_one;
    if (newest_txn == nullptr || (format::txn_epoch(slot.txn_word) == newest_txn_epoch &&
                                  format::txn_state(slot.txn_word) != format::TxnState::kOpen)) {
      continue;  // the checkpoint already knows how it ended
    }
    const auto state = newest_txn->committed ? format::TxnState::kCommitting
                       : newest_txn->aborted ? format::TxnState::kAborting
                                             : format::TxnState::kOpen;
    slot.txn_word = format::make_txn_word(format::txn_fence(slot.txn_word), newest_txn_epoch, state);
    slot.txn_changed_ns = 0;
  }
}

// The uniqueness-token window after a host crash (the table starts
// empty): the newest token_window records that end in a token's hash
// (kRecordFlagToken), from the ring just restored and the segment files
// behind it, go back into the table in the order they were appended (by
// timestamp), so that a resend of a token whose record survived is a
// duplicate again. Tokens of records that did not survive are free. The
// walk back stops at the window's count, at its time span (when it has
// one), or after kMaxSegments segments per partition, so that recovery
// never reads a long retention's every file for a few tokens.
void restore_tokens(LogState& s) {
  constexpr std::uint64_t kMaxSegments = 256;
  if (s.geometry.token_slots == 0) return;
  struct Token {
    std::uint64_t time_ns, position, hash;
    std::uint32_t partition;
  };
  const std::uint64_t window = s.options.token_window;
  std::vector<Token> found;
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
    const auto& ph = s.partition(p);
    const std::uint64_t tail = ph.tail_position;
    std::vector<Token> partition;  // newest segments first
    SegmentBuffer buffer;
    const std::uint64_t span_ns = static_cast<std::uint64_t>(s.options.token_window_time.count()) * 1000000;
    std::uint64_t newest_ns = 0;
    for (std::uint64_t segment = tail >> s.segment_shift, walked = 0; partition.size() < window && walked < kMaxSegments;
         --segment, ++walked) {
      if (const std::byte* bytes = segment_bytes(s, p, segment, buffer)) {
        std::vector<Token> in_segment;
        scan_segment({bytes, s.segment_size}, segment << s.segment_shift, s.max_frame, [&](const SegmentRecord& r) {
          if (r.token_hash != 0 && r.type == static_cast<std::uint8_t>(format::RecordType::kData) && r.offset < tail) {
            in_segment.push_back({r.timestamp_ns, r.offset, r.token_hash, p});
          }
        });
        partition.insert(partition.end(), in_segment.rbegin(), in_segment.rend());
        if (!partition.empty()) newest_ns = std::max(newest_ns, partition.front().time_ns);
        // Every token of this segment out of the time span: older ones are too.
        if (span_ns != 0 && !in_segment.empty() && in_segment.back().time_ns + span_ns < newest_ns) break;
      }
      if (segment == 0 || (segment << s.segment_shift) <= ph.disk_start) break;
    }
    if (partition.size() > window) partition.resize(window);
    found.insert(found.end(), partition.begin(), partition.end());
  }
  std::sort(found.begin(), found.end(), [](const Token& a, const Token& b) {
    return std::tie(a.time_ns, a.partition, a.position) < std::tie(b.time_ns, b.partition, b.position);
  });
  if (found.size() > window) found.erase(found.begin(), found.end() - static_cast<std::ptrdiff_t>(window));
  format::TokenSlot* table = s.tokens();
  const std::uint64_t mask = s.geometry.token_slots - 1;
  const std::uint64_t now = now_realtime_ns();
  std::uint64_t seq = 0;
  for (const Token& t : found) {
    ++seq;
    // The table holds at most `window` of its 2 x window slots: a free one
    // is near (the probe length take_token uses).
    for (std::uint64_t i = 0; i < std::min<std::uint64_t>(64, mask + 1); ++i) {
      format::TokenSlot& slot = table[(t.hash + i) & mask];
      if (slot.hash != 0 && slot.hash != t.hash) continue;
      slot.hash = t.hash;
      slot.seq = seq;
      slot.position = format::encode_token_position(t.partition, t.position);
      slot.published_seq = seq;
      slot.time_ns = t.time_ns != 0 ? t.time_ns : now;
      break;
    }
  }
  s.header->token_seq = seq;
}

Status recover_from_disk(LogState& s) {
  if constexpr (hooks::kEnabled) {
    if (const auto pause = hooks::pause_in_recovery_ms.load(); pause > 0) shm::sleep_for(std::chrono::milliseconds(pause));
  }
  EpochsSeen epochs;
  std::vector<std::uint64_t> durable_from, start;
  SHMLOG_RETURN_IF_ERROR(restore_checkpoint(s, durable_from, start));
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
    const std::string dir = io::partition_directory(s.path, p);
    auto bases = io::list_segment_files(dir);
    if (!bases.ok()) return std::move(bases).status();
    if (bases->empty() && durable_from[p] == 0) continue;
    auto found = recover_tail(s, p, *bases, durable_from[p], start[p]);
    if (!found.ok()) return std::move(found).status();
    const std::uint64_t tail = *found;
    auto& ph = s.partition(p);
    // The first file, unless files from the checkpointed start on are
    // missing (lost, not removed by retention): readers report those. No
    // file left (retention removed them all): empty, at its tail.
    const std::uint64_t first = std::min({bases->empty() ? tail : bases->front(), start[p], tail});
    const std::uint64_t tail_segment = tail >> s.segment_shift;
    const std::uint64_t lowest = tail_segment + 1 >= s.ring_segments ? tail_segment + 1 - s.ring_segments : 0;
    for (std::uint64_t segment = lowest; segment < lowest + s.ring_segments; ++segment) {
      std::byte* base = s.segment_base(p, segment);
      s.descriptor(p, segment).state_word = format::make_segment_word(segment, format::SegmentState::kReady, 0);
      if (segment > tail_segment) continue;  // zero: ready for producers
      const std::string path = dir + "/" + io::segment_file_name(segment << s.segment_shift);
      auto file = io::SegmentFile::open(path, /*writable=*/false, s.segment_size);
      const auto& h = file.ok() ? file->header() : io::SegmentFileHeader{};
      if (file.ok() && h.base_offset == segment << s.segment_shift && h.partition == p && h.log_id == s.header->log_id) {
        SHMLOG_RETURN_IF_ERROR(file->read(0, {base, s.segment_size}));
        // Whole below the tail, or read from its file, where readers
        // report the damage with the file's name.
        const std::uint64_t below = std::min(s.segment_size, tail - (segment << s.segment_shift));
        const SegmentScan scan = scan_segment({base, below}, segment << s.segment_shift, s.max_frame);
        if (scan.problems.empty() && scan.torn.empty() && scan.end == (segment << s.segment_shift) + below) continue;
        std::memset(base, 0, s.segment_size);
      }
      // Missing (retention, or lost) or unreadable: the slot holds the
      // segment a lap on instead (zeros, ready for producers), so readers
      // take this one from disk, where its damage is reported (and a
      // segment below the first file is skipped as retention's).
      if ((segment << s.segment_shift) < tail) {
        s.descriptor(p, segment).state_word =
            format::make_segment_word(segment + s.ring_segments, format::SegmentState::kReady, 0);
      }
    }
    note_epochs(s, p, lowest, tail, epochs);
    ph.tail_position = tail;
    ph.written_position = tail;
    ph.durable_position = tail;
    ph.disk_start = first;
    // Offsets past what survived resume at the tail.
    for (std::uint32_t g = 0; g < s.options.max_groups; ++g) {
      auto& slot = s.offset_slot(p, g);
      if (slot.committed_offset > tail) slot.committed_offset = tail;
    }
  }
  restore_epochs(s, epochs);
  restore_tokens(s);
  return {};
}

}  // namespace shmlog::detail
