#include "durability.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>

#include "checkpoint.h"
#include "owner.h"
#include "record.h"
#include "shmlog/io/file_layer.h"
#include "shmlog/io/files.h"
#include "shmlog/io/segment_file.h"
#include "shmlog/segments.h"
#include "test_hooks.h"

namespace shmlog::detail {
namespace {

using format::atomic;
using Clock = std::chrono::steady_clock;

std::mutex g_test_file_layer_mu;
std::shared_ptr<io::FileLayer> g_test_file_layer;  // see set_file_layer_for_testing


constexpr std::uint64_t kMaxRoundBytes = 8u << 20;  // per partition and round
constexpr auto kLeaseCheck = std::chrono::milliseconds(100);
constexpr auto kCheckpointEvery = std::chrono::milliseconds(100);
constexpr auto kRetentionEvery = std::chrono::milliseconds(1000);
constexpr auto kRetryAfterError = std::chrono::milliseconds(50);
// A round a producer waits on with at most this much to do runs inline
// (pwrite, fdatasync) rather than through io_uring (see io::run_inline).
constexpr std::size_t kInlineOps = 4;
constexpr std::uint64_t kInlineBytes = 64u << 10;

std::string segment_path(const LogState& s, std::uint32_t p, std::uint64_t segment) {
  return io::partition_directory(s.path, p) + "/" + io::segment_file_name(segment << s.segment_shift);
}

std::string name_of(const char* field, std::size_t capacity) { return std::string(field, strnlen(field, capacity)); }

// Named producers' last sequences with the tails they were read before:
// once every partition is durable up to those tails, the records that
// carried the sequences are too (a producer raises its sequence after its
// record's claim moved the tail past it).
//
// Likewise each slot's last committed transaction offsets, once the
// transaction's markers are written (then below the tails): a checkpoint
// that named offsets whose commit marker a host crash lost would resume
// the input past output that a restore aborts.
struct KeptOffsets {
  std::string name;  // the identity they belong to
  std::uint16_t epoch = 0;
  std::string bytes;
};
struct SequenceSnapshot {
  std::vector<std::uint64_t> tails;                 // by partition
  std::map<std::uint32_t, std::uint64_t> sequences;  // slot -> last sequence + 1
  std::map<std::uint32_t, KeptOffsets> offsets;      // slot -> last committed offsets
};

// Slot i's last committed offsets if its transaction is done (its markers
// written) and nothing changed while they were read.
std::optional<KeptOffsets> done_offsets(const LogState& s, std::uint32_t i) {
  const format::OffsetsBuffer* buffers = s.offsets_buffers(i);
  if (buffers == nullptr) return std::nullopt;
  auto& slot = s.producer_slot(i);
  auto word = atomic(slot.txn_word);
  const std::uint64_t before = word.load(std::memory_order_acquire);
  const std::uint32_t named = atomic(slot.committed_offsets_buffer).load(std::memory_order_acquire);
  if (named == 0 || named > 2) return std::nullopt;
  const format::OffsetsBuffer& b = buffers[named - 1];
  if (b.length == 0 || b.length > sizeof b.bytes) return std::nullopt;
  KeptOffsets kept{name_of(slot.name, sizeof slot.name), b.epoch,
                   std::string(reinterpret_cast<const char*>(b.bytes), b.length)};
  const std::uint64_t after = word.load(std::memory_order_acquire);
  if (before != after) return std::nullopt;  // a decision moved on: the buffers may have changed
  if (format::txn_epoch(after) == kept.epoch && format::txn_state(after) != format::TxnState::kDone) return std::nullopt;
  return kept;
}

// `previous`: the newest snapshot before this one, whose offsets stand for
// a slot whose transaction is being committed right now.
SequenceSnapshot take_sequence_snapshot(const LogState& s, const SequenceSnapshot& previous) {
  SequenceSnapshot snap;
  for (std::uint32_t i = 0; i < s.options.max_producers; ++i) {
    auto& slot = s.producer_slot(i);
    if ((atomic(slot.flags).load(std::memory_order_acquire) & format::kProducerIdempotent) == 0) continue;
    snap.sequences[i] = atomic(slot.last_sequence_plus_one).load(std::memory_order_acquire);
    if (auto kept = done_offsets(s, i)) {
      snap.offsets[i] = std::move(*kept);
    } else if (auto it = previous.offsets.find(i);
               it != previous.offsets.end() && it->second.name == name_of(slot.name, sizeof slot.name)) {
      snap.offsets[i] = it->second;
    }
  }
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) snap.tails.push_back(s.tail(p));
  return snap;
}

bool snapshot_durable(const LogState& s, const SequenceSnapshot& snap) {
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
    if (atomic(s.partition(p).durable_position).load(std::memory_order_acquire) < snap.tails[p]) return false;
  }
  return true;
}

// The state a host crash would otherwise lose: each active group's
// committed offsets and each producer id's identity, epochs, last durable
// sequence (`durable`) and last transaction.
io::KeyValues checkpoint_values(const LogState& s, const SequenceSnapshot& durable) {
  Checkpoint c;
  c.log_id = s.header->log_id;
  const auto active = static_cast<std::uint32_t>(format::SlotState::kActive);
  for (std::uint32_t g = 0; g < s.options.max_groups; ++g) {
    auto& group = s.group(g);
    if (atomic(group.state).load(std::memory_order_acquire) != active) continue;
    Checkpoint::Group entry{g, name_of(group.name, sizeof group.name), {}};
    for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
      entry.offsets.push_back(atomic(s.offset_slot(p, g).committed_offset).load(std::memory_order_acquire));
    }
    c.groups.push_back(std::move(entry));
  }
  // Every byte below a partition's durable position was synced: recovery
  // treats damage there as damage, and cuts only past it.
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
    c.durable.push_back(atomic(s.partition(p).durable_position).load(std::memory_order_acquire));
    // Recovery tells files retention removed from files lost by this.
    c.start.push_back(atomic(s.partition(p).disk_start).load(std::memory_order_acquire));
  }
  for (std::uint32_t i = 0; i < s.options.max_producers; ++i) {
    auto& slot = s.producer_slot(i);
    if ((atomic(slot.flags).load(std::memory_order_acquire) & format::kProducerIdempotent) == 0) continue;
    Checkpoint::Producer e;
    e.slot = i;
    e.name = name_of(slot.name, sizeof slot.name);
    if (e.name.empty()) continue;
    e.epoch = atomic(slot.epoch).load(std::memory_order_acquire);
    e.first_epoch = atomic(slot.first_epoch).load(std::memory_order_relaxed);
    e.next_sequence = durable.sequences.count(i) != 0 ? durable.sequences.at(i) : 0;
    e.txn_word = atomic(slot.txn_word).load(std::memory_order_acquire);
    e.txn_timeout_ms = atomic(slot.txn_timeout_ms).load(std::memory_order_relaxed);
    e.txn_changed_ns = atomic(slot.txn_changed_ns).load(std::memory_order_relaxed);
    if (auto kept = durable.offsets.find(i); kept != durable.offsets.end() && kept->second.name == e.name) {
      e.has_offsets = true;
      e.offsets_epoch = kept->second.epoch;
      e.offsets = kept->second.bytes;
    }
    c.producers.push_back(std::move(e));
  }
  return encode_checkpoint(c);
}

// Each named producer's slot, name and first epoch.
using Identities = std::vector<std::tuple<std::uint32_t, std::string, std::uint16_t>>;
Identities named_identities(const LogState& s) {
  Identities out;
  for (std::uint32_t i = 0; i < s.options.max_producers; ++i) {
    auto& slot = s.producer_slot(i);
    if ((atomic(slot.flags).load(std::memory_order_acquire) & format::kProducerIdempotent) == 0) continue;
    std::string name = name_of(slot.name, sizeof slot.name);
    if (!name.empty()) out.emplace_back(i, std::move(name), atomic(slot.first_epoch).load(std::memory_order_relaxed));
  }
  return out;
}

// The checkpoint file, if there is one.
// The checkpoint file of the log in `dir` (none when there is none).
Result<std::optional<Checkpoint>> read_checkpoint(const std::string& dir, const LogOptions& options,
                                                   std::uint64_t log_id) {
  const std::string file = dir + "/" + kStateFile;
  if (!io::file_exists(file)) return std::optional<Checkpoint>();
  auto kv = io::read_key_value_file(file, kStateHeader);
  if (!kv.ok()) return std::move(kv).status();
  auto c = decode_checkpoint(*kv, options, file);
  if (!c.ok()) return std::move(c).status();
  if (c->log_id != 0 && c->log_id != log_id) {
    return Status(Status::Code::kCorrupt, file + " belongs to another log (its log id is not this log's)");
  }
  return std::optional<Checkpoint>(std::move(c).value());
}

Result<std::optional<Checkpoint>> read_checkpoint(const LogState& s) {
  return read_checkpoint(s.path, s.options, s.header->log_id);
}

// The producers' sequences and kept offsets in the checkpoint file, by
// slot (none when it is missing or unreadable).
SequenceSnapshot checkpointed_sequences(const LogState& s) {
  SequenceSnapshot out;
  auto c = read_checkpoint(s);
  if (!c.ok() || !*c) return out;
  for (const auto& e : (*c)->producers) {
    out.sequences[e.slot] = e.next_sequence;
    if (e.has_offsets) out.offsets[e.slot] = KeptOffsets{e.name, e.offsets_epoch, e.offsets};
  }
  return out;
}

// Restores a checkpoint into fresh memory (no process attached yet), and
// gives each partition's checkpointed durable position (0 when absent) and
// retained start (UINT64_MAX when absent).
Status restore_checkpoint(LogState& s, std::vector<std::uint64_t>& durable, std::vector<std::uint64_t>& start) {
  durable.assign(s.options.partitions, 0);
  start.assign(s.options.partitions, UINT64_MAX);
  auto read = read_checkpoint(s);
  if (!read.ok()) return std::move(read).status();
  if (!*read) return {};
  const Checkpoint& c = **read;
  durable = c.durable;
  start = c.start;
  const auto active = static_cast<std::uint32_t>(format::SlotState::kActive);
  for (const auto& g : c.groups) {
    auto& group = s.group(g.slot);
    std::memcpy(group.name, g.name.data(), g.name.size());
    group.created_ns = now_realtime_ns();
    for (std::uint32_t p = 0; p < s.options.partitions; ++p) s.offset_slot(p, g.slot).committed_offset = g.offsets[p];
    group.state = active;
  }
  for (const auto& e : c.producers) {
    auto& slot = s.producer_slot(e.slot);
    std::memcpy(slot.name, e.name.data(), e.name.size());
    slot.flags = format::kProducerIdempotent;
    slot.epoch = e.epoch;
    slot.first_epoch = e.first_epoch;
    slot.last_sequence_plus_one = e.next_sequence;
    slot.txn_word = e.txn_word;  // an open transaction is aborted by its first reader (no process holds it)
    slot.txn_timeout_ms = e.txn_timeout_ms;
    slot.txn_changed_ns = e.txn_changed_ns;
    if (format::OffsetsBuffer* buffers = s.offsets_buffers(e.slot); buffers != nullptr && e.has_offsets) {
      buffers[0].epoch = e.offsets_epoch;
      buffers[0].length = static_cast<std::uint32_t>(e.offsets.size());  // at most 1008: the decoder checked
      std::memcpy(buffers[0].bytes, e.offsets.data(), e.offsets.size());
      slot.committed_offsets_buffer = 1;
    }
  }
  return {};
}

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

// ---------------------------------------------------------------------------
// The flusher: writes each partition's committed prefix from the ring into
// its segment files with io_uring, syncs as the policy says, publishes.
// ---------------------------------------------------------------------------
class Flusher {
 public:
  Flusher(const LogState& s, io::FileLayer& files) : s_(s), files_(files), parts_(s.options.partitions) {
    for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
      auto& ph = s.partition(p);
      Part& part = parts_[p];
      part.written = atomic(ph.written_position).load(std::memory_order_acquire);
      part.durable = atomic(ph.durable_position).load(std::memory_order_acquire);
      part.scanned = part.written;
      // A keeper before this one may have written past the durable offset
      // without syncing: those files are dirty until this one syncs them.
      if (part.written > part.durable) {
        // At most a ring's worth: ring slots wait for durability, so more
        // between the two positions is damage, not files to sync.
        const std::uint64_t last = (part.written - 1) >> s.segment_shift;
        const std::uint64_t first = std::max(part.durable >> s.segment_shift, last < s.ring_segments ? 0 : last - s.ring_segments);
        for (std::uint64_t g = first; g <= last; ++g) part.dirty.insert(g);
        part.oldest_unsynced = Clock::now();
      }
    }
    // Until a snapshot of its own is durable, the last checkpoint's
    // sequences and offsets stand (they were durable when it was written).
    durable_sequences_ = checkpointed_sequences(s);
  }

  // One round over every partition. Returns whether anything moved.
  bool round();
  // Retention, disk usage, file preallocation and the checkpoint.
  void housekeeping(bool force);
  // Writes the checkpoint if it changed; false when that failed.
  bool checkpoint();
  // Whether a round would find work now (before parking).
  bool has_work() const noexcept;

 private:
  struct Part {
    std::uint64_t scanned = 0;  // committed prefix found (>= written)
    std::uint64_t written = 0;
    std::uint64_t durable = 0;
    Clock::time_point oldest_unsynced{};
    std::map<std::uint64_t, io::SegmentFile> files;  // open for writing, by segment
    std::set<std::uint64_t> dirty;                   // segments written since their last sync
    // Whether the directory is known synced since files were last created
    // in it: a file whose name may not be on disk takes no writes.
    bool directory_synced = false;
    bool made_files = false;  // since retention last looked (disk use grows only then)
    // Files this keeper made whose header no good sync covered yet (the
    // header is written at creation and synced with the first data), and
    // those of them a failed sync may have lost: written again with the
    // file's next data.
    std::set<std::uint64_t> headers_unsynced, headers_lost;
    std::uint64_t stall_position = UINT64_MAX;
    Clock::time_point stall_since{};
    Clock::time_point retry_at{};
  };

  void scan(std::uint32_t p);
  // The open file of a segment, created (and the directory synced, unless
  // the caller does it) when missing.
  io::SegmentFile* file_for(std::uint32_t p, std::uint64_t segment, bool sync_dir = true);
  void note_error(std::uint32_t p, int err) noexcept;
  bool sync_directory(std::uint32_t p);
  // Whether every named producer's identity (its slot, name and first
  // epoch) is in the checkpoint on disk, writing it if not. A record is
  // never written before its producer's identity: recovery could not tell
  // whose sequence it carries.
  bool identities_durable();
  void rewrite_unsynced(std::uint32_t p);
  // Whether the files this round wrote or synced in partition p are still
  // at their names (notes ESTALE if not).
  bool files_still_named(std::uint32_t p);
  bool wants_sync(const Part& part, std::uint64_t upto) const noexcept;
  void apply_retention(std::uint32_t p);

  const LogState& s_;
  io::FileLayer& files_;
  std::vector<Part> parts_;
  std::vector<io::IoOp> ops_;
  std::vector<std::uint32_t> op_partition_;
  std::vector<std::uint64_t> op_end_;  // a write's end position in its partition (0: a header)
  std::deque<std::array<std::byte, io::kSegmentHeaderFields>> header_writes_;  // this round's
  Clock::time_point next_checkpoint_{};
  Clock::time_point next_retention_{};
  std::deque<SequenceSnapshot> pending_sequences_;  // taken, not yet durable, oldest first
  SequenceSnapshot durable_sequences_;
  io::KeyValues last_checkpoint_;
  Identities checkpointed_identities_;  // named_identities() as last_checkpoint_ has them
};

void Flusher::note_error(std::uint32_t p, int err) noexcept {
  auto& ph = s_.partition(p);
  atomic(ph.flush_errno).store(static_cast<std::uint32_t>(err), std::memory_order_release);
  auto& counter = err == ENOSPC ? ph.disk_full_total : ph.io_errors_total;
  atomic(counter).store(counter + 1, std::memory_order_relaxed);
  // ESTALE: another incarnation of the log writes this partition's files;
  // this keeper stops writing them (a restart looks at the files anew).
  parts_[p].retry_at = err == ESTALE ? Clock::time_point::max() : Clock::now() + kRetryAfterError;
}

// Syncs partition p's directory through the file layer. A failure leaves
// it unsynced: files in it take no writes until a later sync succeeds.
bool Flusher::sync_directory(std::uint32_t p) {
  Part& part = parts_[p];
  part.directory_synced = files_.sync_directory(io::partition_directory(s_.path, p)).ok();
  if (!part.directory_synced) note_error(p, EIO);
  return part.directory_synced;
}

io::SegmentFile* Flusher::file_for(std::uint32_t p, std::uint64_t segment, bool sync_dir) {
  Part& part = parts_[p];
  if (auto it = part.files.find(segment); it != part.files.end()) return &it->second;
  const std::string path = segment_path(s_, p, segment);
  const bool exists = io::file_exists(path);
  Result<io::SegmentFile> file = exists ? io::SegmentFile::open(path, /*writable=*/true, s_.segment_size)
                                        : files_.create_segment_file(io::partition_directory(s_.path, p),
                                                                     {p, segment << s_.segment_shift, s_.segment_size,
                                                                      s_.header->log_id, now_realtime_ns(),
                                                                      s_.header->memory_nonce},
                                                                     s_.options.mode & 0666);
  if (!file.ok()) {
    note_error(p, file.status().code() == Status::Code::kNoSpace ? ENOSPC : EIO);
    return nullptr;
  }
  // A file another incarnation of the log made (its memory, made anew
  // beside this one, writes the same names) is not ours to write.
  if (const std::uint64_t made_by = file->header().incarnation; made_by != 0 && made_by != s_.header->memory_nonce) {
    note_error(p, ESTALE);
    return nullptr;
  }
  if (!exists) {
    part.directory_synced = false;
    part.made_files = true;
    part.headers_unsynced.insert(segment);
  }
  // The caller syncs the directory once for several new files; a file
  // found unsynced (a failed sync, or made by an earlier keeper) is synced
  // here before it takes a write.
  if ((sync_dir || exists) && !part.directory_synced && !sync_directory(p)) return nullptr;
  return &part.files.emplace(segment, std::move(file).value()).first->second;
}

// After a failed sync, nothing written since the last good one may be
// called durable: Linux may have dropped those pages and reports the error
// once, so a later sync that succeeds proves nothing. The bytes are still
// in the ring (a fsync log's ring slots wait for durability): write them
// again, through fresh descriptors, and sync again.
void Flusher::rewrite_unsynced(std::uint32_t p) {
  Part& part = parts_[p];
  for (std::uint64_t g = part.durable >> s_.segment_shift; part.written > part.durable &&
                                                           g <= (part.written - 1) >> s_.segment_shift;
       ++g) {
    part.dirty.insert(g);
  }
  part.written = part.durable;
  part.files.clear();
  part.headers_lost = part.headers_unsynced;
}

bool Flusher::files_still_named(std::uint32_t p) {
  for (const auto& entry : parts_[p].files) {
    const io::SegmentFile& file = entry.second;
    const bool used = std::any_of(ops_.begin(), ops_.end(), [&](const io::IoOp& op) { return op.fd == file.fd(); });
    if (used && !file.still_at_path()) {
      note_error(p, ESTALE);
      return false;
    }
  }
  return true;
}

// Extends the committed prefix of partition p from where it stopped, within
// the ring slots that hold their segments.
void Flusher::scan(std::uint32_t p) {
  Part& part = parts_[p];
  const std::uint64_t tail = s_.tail(p);
  const std::uint64_t limit = part.written + kMaxRoundBytes;
  std::uint64_t pos = part.scanned;
  while (pos < tail && pos < limit) {
    const std::uint64_t segment = pos >> s_.segment_shift;
    // Producers may have claimed into a slot they still wait to reuse.
    const std::uint64_t w = atomic(s_.descriptor(p, segment).state_word).load(std::memory_order_acquire);
    if (format::segment_index(w) != segment || format::segment_state(w) != format::SegmentState::kReady) break;
    const std::uint64_t end = std::min(tail, limit);
    const std::uint64_t segment_end = (pos | s_.segment_mask) + 1;
    pos = s_.walk_records(s_.segment_base(p, segment), pos, end, [](const record::At&, std::uint64_t) { return true; });
    if (pos >= end || pos == segment_end) continue;  // the end, or the next segment
    const record::At a = s_.ring_record_at(p, pos);
    if (a.committed()) continue;  // committed since the walk stopped
    if (a.d.kind == record::Kind::kCorrupt) {  // written as it is; readers skip it
      pos = (pos | s_.segment_mask) + 1;
      continue;
    }
    // Not committed yet. A claim of a dead or stalled producer would hold
    // the flusher (and, with it, ring reuse) forever: unblock it in time.
    const auto now = Clock::now();
    if (part.stall_position != pos) {
      part.stall_position = pos;
      part.stall_since = now;
      break;
    }
    if (!unblock(s_, p, pos, now - part.stall_since)) break;
  }
  part.scanned = pos;
}

bool Flusher::wants_sync(const Part& part, std::uint64_t upto) const noexcept {
  if (s_.options.durability != Durability::kFsync || upto <= part.durable) return false;
  const auto& o = s_.options;
  if (o.fsync_interval_bytes == 0 && o.fsync_interval.count() == 0) return true;
  if (o.fsync_interval_bytes != 0 && upto - part.durable >= o.fsync_interval_bytes) return true;
  if (o.fsync_interval.count() != 0 && part.oldest_unsynced != Clock::time_point{} &&
      Clock::now() - part.oldest_unsynced >= o.fsync_interval) {
    return true;
  }
  return false;
}

bool Flusher::has_work() const noexcept {
  for (std::uint32_t p = 0; p < s_.options.partitions; ++p) {
    const Part& part = parts_[p];
    if (s_.tail(p) > part.scanned || part.scanned > part.written) return true;
    if (atomic(s_.partition(p).sync_request).load(std::memory_order_acquire) > part.durable &&
        part.written > part.durable) {
      return true;
    }
    if (part.written > part.durable && wants_sync(part, part.written)) return true;
  }
  return false;
}

bool Flusher::round() {
  ops_.clear();
  header_writes_.clear();
  op_partition_.clear();
  op_end_.clear();
  const auto now = Clock::now();
  std::vector<bool> syncing(s_.options.partitions, false);
  bool any_asked = false;  // a producer waits for a sync
  for (std::uint32_t p = 0; p < s_.options.partitions; ++p) {
    if (now >= parts_[p].retry_at) scan(p);
  }
  // No record reaches a file (where a crash may keep it, synced or not)
  // before the checkpoint names its producer. Looked at after the scans: a
  // producer registers before it claims, so every record scanned has its
  // identity in the slots read then.
  bool writes = false;
  for (std::uint32_t p = 0; p < s_.options.partitions; ++p) {
    writes |= now >= parts_[p].retry_at && parts_[p].scanned > parts_[p].written;
  }
  if (writes && !identities_durable()) return false;
  for (std::uint32_t p = 0; p < s_.options.partitions; ++p) {
    Part& part = parts_[p];
    if (now < part.retry_at) continue;
    // Writes: [written, scanned), one op per segment piece.
    std::uint64_t from = part.written;
    std::vector<std::uint64_t> touched;
    while (from < part.scanned) {
      const std::uint64_t segment = from >> s_.segment_shift;
      const std::uint64_t end = std::min(part.scanned, (segment + 1) << s_.segment_shift);
      io::SegmentFile* file = file_for(p, segment);
      if (file == nullptr) break;
      if (part.headers_lost.count(segment) != 0) {  // before the data, in the same linked chain
        auto& fields = header_writes_.emplace_back();
        io::encode_segment_header(file->header(), std::span<std::byte, io::kSegmentHeaderFields>(fields));
        io::IoOp header;
        header.kind = io::IoOp::Kind::kWrite;
        header.fd = file->fd();
        header.data = fields.data();
        header.size = io::kSegmentHeaderFields;
        header.offset = 0;
        ops_.push_back(header);
        op_partition_.push_back(p);
        op_end_.push_back(0);  // a header: no position in the partition
      }
      io::IoOp op;
      op.kind = io::IoOp::Kind::kWrite;
      op.fd = file->fd();
      op.data = s_.segment_base(p, segment) + (from & s_.segment_mask);
      op.size = static_cast<std::uint32_t>(end - from);
      op.offset = io::kSegmentHeaderSize + (from & s_.segment_mask);
      ops_.push_back(op);
      op_partition_.push_back(p);
      op_end_.push_back(end);
      touched.push_back(segment);
      from = end;
    }
    const std::uint64_t upto = from;
    const bool asked = atomic(s_.partition(p).sync_request).load(std::memory_order_acquire) > part.durable;
    any_asked |= asked;
    if (s_.options.durability == Durability::kFsync && upto > part.durable && (asked || wants_sync(part, upto))) {
      syncing[p] = true;
      // Each file's writes are linked to its sync; files only dirty from
      // earlier rounds get a sync of their own.
      std::set<std::uint64_t> files(part.dirty.begin(), part.dirty.end());
      files.insert(touched.begin(), touched.end());
      for (std::uint64_t segment : files) {
        io::SegmentFile* file = file_for(p, segment);
        if (file == nullptr) {
          syncing[p] = false;  // a dirty file left unsynced: nothing becomes durable this round
          continue;
        }
        // Link this file's writes (already queued, in order) to the sync.
        for (std::size_t i = 0; i < ops_.size(); ++i) {
          if (op_partition_[i] == p && ops_[i].fd == file->fd()) ops_[i].link = true;
        }
        io::IoOp sync;
        sync.kind = io::IoOp::Kind::kDataSync;
        sync.fd = file->fd();
        // Place it right after the file's last write (or at the end).
        std::size_t at = ops_.size();
        for (std::size_t i = 0; i < ops_.size(); ++i) {
          if (op_partition_[i] == p && ops_[i].fd == file->fd()) at = i + 1;
        }
        ops_.insert(ops_.begin() + static_cast<std::ptrdiff_t>(at), sync);
        op_partition_.insert(op_partition_.begin() + static_cast<std::ptrdiff_t>(at), p);
        op_end_.insert(op_end_.begin() + static_cast<std::ptrdiff_t>(at), 0);
      }
    }
  }
  if (ops_.empty()) return false;
  std::uint64_t bytes = 0;
  for (const io::IoOp& op : ops_) bytes += op.size;
  const Status ran = files_.run(ops_, any_asked && ops_.size() <= kInlineOps && bytes <= kInlineBytes);
  if (!ran.ok()) {
    // Nothing of this round is published, and a sync in it may have failed
    // unseen: everything unsynced is written again.
    for (std::uint32_t p = 0; p < s_.options.partitions; ++p) {
      note_error(p, EIO);
      rewrite_unsynced(p);
    }
    return false;
  }
  bool moved = false;
  const auto done = Clock::now();
  for (std::uint32_t p = 0; p < s_.options.partitions; ++p) {
    Part& part = parts_[p];
    auto& ph = s_.partition(p);
    std::uint64_t written = part.written;
    bool writes_ok = true, syncs_ok = true, any_sync = false, sync_failed = false;
    for (std::size_t i = 0; i < ops_.size(); ++i) {
      if (op_partition_[i] != p) continue;
      const io::IoOp& op = ops_[i];
      if (op.kind == io::IoOp::Kind::kWrite) {
        if (!writes_ok) continue;
        if (op_end_[i] == 0 && op.result == static_cast<int>(op.size)) continue;  // a header written again
        if (op.result == static_cast<int>(op.size)) {
          written = op_end_[i];
          part.dirty.insert((op_end_[i] - 1) >> s_.segment_shift);
        } else {
          // A short write counts for nothing: positions stay on record
          // boundaries (a scan resumes there, acks compare against them).
          writes_ok = false;
          note_error(p, op.result < 0 ? -op.result : EIO);
        }
      } else {
        any_sync = true;
        if (op.result != 0) {
          syncs_ok = false;
          if (op.result != -ECANCELED) {
            sync_failed = true;
            note_error(p, -op.result);
          }
        }
      }
    }
    // What went into a file whose name another writer took since (a file
    // renamed over it, or removed) is in no file of the log: not durable,
    // written again, and the name is looked at anew (file_for).
    if (writes_ok && syncs_ok && !files_still_named(p)) {
      writes_ok = syncs_ok = false;
      sync_failed = true;
      written = part.written;
    }
    if (written > part.written) {
      atomic(ph.flushed_bytes_total).store(ph.flushed_bytes_total + (written - part.written), std::memory_order_relaxed);
      if (part.oldest_unsynced == Clock::time_point{}) part.oldest_unsynced = done;
      part.written = written;
      // Pairs with the acquire in reuse_floor(): the bytes are in the files.
      // (Never backwards: a rewrite after a failed sync starts lower.)
      if (written > atomic(ph.written_position).load(std::memory_order_relaxed)) {
        atomic(ph.written_position).store(written, std::memory_order_release);
      }
      moved = true;
    }
    // [written, scanned) is written again next round.
    if (part.scanned < part.written) part.scanned = part.written;
    std::uint64_t durable = part.durable;
    if (s_.options.durability == Durability::kFlush) {
      durable = part.written;
    } else if (syncing[p] && any_sync && syncs_ok && writes_ok) {
      durable = part.written;
      for (const auto& [segment, file] : part.files) {  // headers the syncs covered
        if (part.dirty.count(segment) == 0) continue;
        part.headers_unsynced.erase(segment);
        part.headers_lost.erase(segment);
      }
      part.dirty.clear();
      part.oldest_unsynced = {};
      atomic(ph.fsyncs_total).store(ph.fsyncs_total + 1, std::memory_order_relaxed);
      atomic(ph.last_sync_ns).store(now_realtime_ns(), std::memory_order_relaxed);
    }
    if (writes_ok && syncs_ok && (written > part.durable || durable > part.durable)) {
      atomic(ph.flush_errno).store(0, std::memory_order_relaxed);
    }
    if (durable > part.durable) {
      part.durable = durable;
      atomic(ph.durable_position).store(durable, std::memory_order_release);
      moved = true;
    }
    if (sync_failed) rewrite_unsynced(p);
  }
  if (moved) {
    // Producers waiting for ring space or for durability, readers of
    // durable records: wake whoever sleeps. The waiter counts are read with
    // a read-modify-write (a waiter counts itself, then looks at the
    // offsets): a plain load could pass the release stores above, and
    // ThreadSanitizer does not take fences.
    const auto waiting = [](std::uint32_t& count) {
      return atomic(count).fetch_add(0, std::memory_order_seq_cst) != 0;
    };
    if (waiting(s_.header->space_waiters)) s_.wake_producers();
    if (waiting(s_.header->durable_waiters)) {
      atomic(s_.header->durable_seq).fetch_add(1, std::memory_order_seq_cst);
      shm::futex_wake_all(&s_.header->durable_seq);
    }
    if (waiting(s_.header->data_waiters)) s_.wake_consumers();
  }
  return moved;
}

void Flusher::apply_retention(std::uint32_t p) {
  auto& ph = s_.partition(p);
  const std::string dir = io::partition_directory(s_.path, p);
  auto bases = io::list_segment_files(dir);
  if (!bases.ok()) return;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> files;  // base, bytes
  std::uint64_t total = 0;
  for (std::uint64_t base : *bases) {
    const std::uint64_t bytes = io::allocated_bytes(dir + "/" + io::segment_file_name(base));
    files.emplace_back(base, bytes);
    total += bytes;
  }
  // Never a segment still in the ring (recovery rebuilds the ring from
  // them) nor one not completely written.
  std::uint64_t keep_from = std::min(s_.earliest(p), parts_[p].written & ~s_.segment_mask);
  // Nor records whose producers' sequences the checkpoint does not hold
  // yet: a named producer learns its sequence from its records, and from
  // the checkpoint once they are gone (a re-send would be written twice).
  keep_from = std::min(keep_from, p < durable_sequences_.tails.size() ? durable_sequences_.tails[p] : 0);
  const auto& o = s_.options;
  const std::uint64_t now = now_realtime_ns();
  std::size_t drop = 0;
  while (drop < files.size() && files[drop].first + s_.segment_size <= keep_from) {
    const std::string path = dir + "/" + io::segment_file_name(files[drop].first);
    const bool too_big = o.retention_bytes != 0 && total > o.retention_bytes;
    const std::uint64_t age_limit = static_cast<std::uint64_t>(o.retention_time.count()) * 1000000ull;
    const bool too_old = age_limit != 0 && io::modified_ns(path) + age_limit < now;
    if (!too_big && !too_old) break;
    total -= files[drop].second;
    ++drop;
  }
  if (drop > 0) {
    // Readers learn the new start before the files go (a reader that
    // still finds a file gone treats it as lapped and moves on), and so
    // does the checkpoint: recovery takes files missing from the start on
    // for damage. Without it on disk, nothing goes.
    const std::uint64_t start = drop < files.size() ? files[drop].first : keep_from;
    atomic(ph.disk_start).store(start, std::memory_order_release);
    if (!checkpoint()) return;
    for (std::size_t i = 0; i < drop; ++i) {
      parts_[p].files.erase(files[i].first >> s_.segment_shift);
      (void)files_.remove_file(dir + "/" + io::segment_file_name(files[i].first));
    }
    (void)files_.sync_directory(dir);
  }
  atomic(ph.disk_bytes).store(total, std::memory_order_relaxed);
  atomic(ph.disk_segments).store(static_cast<std::uint32_t>(files.size() - drop), std::memory_order_relaxed);
}

void Flusher::housekeeping(bool force) {
  const auto now = Clock::now();
  atomic(s_.header->keeper_heartbeat_ns).store(now_realtime_ns(), std::memory_order_relaxed);
  for (std::uint32_t p = 0; p < s_.options.partitions; ++p) {
    Part& part = parts_[p];
    if (now < part.retry_at) continue;
    // Preallocate the next segments' files ahead of need (16 MiB, 1 to 4
    // files; one directory sync for all), and close files that are behind
    // the written position and synced.
    const std::uint64_t current = part.written >> s_.segment_shift;
    const std::uint64_t ahead = std::clamp<std::uint64_t>((16u << 20) / s_.segment_size, 1, 4);
    bool created = false;
    for (std::uint64_t k = 1; k <= ahead && now >= part.retry_at; ++k) {
      if (part.files.count(current + k) != 0) continue;
      created |= file_for(p, current + k, /*sync_dir=*/false) != nullptr;
    }
    if (created && !sync_directory(p)) {
      // Files not known to be on disk may not take writes: close them (a
      // later file_for syncs the directory before it opens them again).
      for (std::uint64_t k = 1; k <= ahead; ++k) part.files.erase(current + k);
    }
    for (auto it = part.files.begin(); it != part.files.end() && it->first < current;) {
      if (part.dirty.count(it->first) != 0) break;
      it = part.files.erase(it);
    }
  }
  // Retention: when a partition made files (size limits hold within a
  // file) and every second (age limits).
  const bool every = force || now >= next_retention_;
  if (every) next_retention_ = now + kRetentionEvery;
  for (std::uint32_t p = 0; p < s_.options.partitions; ++p) {
    if (every || parts_[p].made_files) apply_retention(p);
    parts_[p].made_files = false;
  }
  if (every) {
    // Liveness sweep: producer slots, group members and preparations of
    // dead processes are reaped even when no process opens the log.
    sweep(s_);
  }
  if (force || now >= next_checkpoint_) {
    next_checkpoint_ = now + kCheckpointEvery;
    (void)checkpoint();
  }
}

bool Flusher::checkpoint() {
  io::KeyValues values;
  Identities identities;
  {
    // Slots are filled in under the admin lock: read them under it too.
    AdminLock lock(s_);
    pending_sequences_.push_back(
        take_sequence_snapshot(s_, pending_sequences_.empty() ? durable_sequences_ : pending_sequences_.back()));
    while (!pending_sequences_.empty() && snapshot_durable(s_, pending_sequences_.front())) {
      durable_sequences_ = std::move(pending_sequences_.front());
      pending_sequences_.pop_front();
    }
    if (pending_sequences_.size() > 64) pending_sequences_.pop_front();  // durability stalled: keep the newest
    values = checkpoint_values(s_, durable_sequences_);
    identities = named_identities(s_);
  }
  if (values == last_checkpoint_) return true;
  if (!files_.replace_file(s_.path + "/" + kStateFile, kStateHeader, values, s_.options.mode & 0666).ok()) return false;
  last_checkpoint_ = std::move(values);
  checkpointed_identities_ = std::move(identities);
  return true;
}

bool Flusher::identities_durable() {
  {
    AdminLock lock(s_);
    if (named_identities(s_) == checkpointed_identities_) return true;
  }
  return checkpoint();
}

// Takes the keeper lease (free, or its holder dead); waits while a live
// process holds it. Returns false when stopped first.
bool take_lease(const LogState& s, const std::atomic<bool>& stop) {
  // A holder no one here can judge whose heartbeat stood still for ten
  // seconds (a sync may take seconds) loses it (see owner.h).
  OwnerWait lease(OwnerLock::keeper_lease(s), 5 * kUnjudgedPatience);
  for (;;) {
    // Tried once more after a stop: a keeper stopped before its first look
    // must still write what was committed when no one else keeps the log.
    const OwnerLock::Taken taken = lease.take(atomic(s.header->keeper_heartbeat_ns).load(std::memory_order_relaxed));
    if (taken != OwnerLock::Taken::kNo) {
      if (taken == OwnerLock::Taken::kFromDead) atomic(s.header->keeper_takeovers).fetch_add(1, std::memory_order_relaxed);
      atomic(s.header->keeper_since_ns).store(now_realtime_ns(), std::memory_order_relaxed);
      return true;
    }
    if (stop.load(std::memory_order_acquire)) return false;
    for (int i = 0; i < 10 && !stop.load(std::memory_order_acquire); ++i) shm::sleep_for(kLeaseCheck / 10);
  }
}

}  // namespace

Status keep(const LogState& s, const std::atomic<bool>& stop) {
  if (!s.durable()) return Status(Status::Code::kInvalidArgument, s.path + " is not durable (created with durability none)");
  if (s.read_only) return Status(Status::Code::kInvalidArgument, "a read-only attachment cannot keep " + s.path);
  std::shared_ptr<io::FileLayer> files = file_layer_for_testing();
  if (files == nullptr) {
    auto disk = io::make_disk_layer(64);
    if (!disk.ok()) return std::move(disk).status();
    files = std::move(disk).value();
  }
  if (!take_lease(s, stop)) return {};
  Flusher flusher(s, *files);
  auto keeper_seq = atomic(s.header->keeper_seq);
  auto keeper_waiters = atomic(s.header->keeper_waiters);
  while (!stop.load(std::memory_order_acquire)) {
    // A request made after this load is never slept through: it changes
    // keeper_seq, and the futex below does not wait on a changed word.
    const std::uint32_t seen = keeper_seq.load(std::memory_order_seq_cst);
    const bool moved = flusher.round();
    flusher.housekeeping(false);
    if (moved) continue;
    // Idle: park until a producer asks (a durable wait, or ring space), or
    // a millisecond passes (new records are found by polling: producers
    // that do not wait never pay to wake the keeper). Parked at once, not
    // after yielding: a yielding keeper takes the core that a waiting
    // producer or the sync needs (bench/durability_bench.cc part 1).
    // Work that did not move (a claim still being written, a retry after
    // an error) is looked at again a millisecond later, not in a spin.
    keeper_waiters.fetch_add(1, std::memory_order_seq_cst);
    shm::futex_wait(&s.header->keeper_seq, seen, std::chrono::milliseconds(1));
    keeper_waiters.fetch_sub(1, std::memory_order_seq_cst);
  }
  // Leave nothing committed behind: write and sync it all, checkpoint.
  for (int i = 0; i < 64 && flusher.has_work(); ++i) {
    if (!flusher.round()) break;
  }
  flusher.housekeeping(true);
  OwnerLock::keeper_lease(s).release();
  return {};
}

void set_file_layer_for_testing(std::shared_ptr<io::FileLayer> layer) {
  std::lock_guard lock(g_test_file_layer_mu);
  g_test_file_layer = std::move(layer);
}

std::shared_ptr<io::FileLayer> file_layer_for_testing() {
  std::lock_guard lock(g_test_file_layer_mu);
  return g_test_file_layer;
}

std::unique_ptr<Keeper> Keeper::start(const LogState& log) { return std::unique_ptr<Keeper>(new Keeper(log)); }

Keeper::Keeper(const LogState& log) : log_(log), pid_(::getpid()) {
  thread_ = std::thread([this] {
    // Background duty inside an application: an application thread waking
    // on this core runs first (`shmlog keeper` runs at normal priority).
    (void)shm::lower_thread_priority(10);
    (void)keep(log_, stop_);
  });
}

Keeper::~Keeper() {
  if (::getpid() != pid_) {  // a forked child: the thread lives only in the parent
    thread_.detach();
    return;
  }
  stop_.store(true, std::memory_order_release);
  atomic(log_.header->keeper_seq).fetch_add(1, std::memory_order_seq_cst);
  shm::futex_wake_all(&log_.header->keeper_seq);
  thread_.join();
}

void request_sync(const LogState& s, std::uint32_t p, std::uint64_t end) noexcept {
  auto request = atomic(s.partition(p).sync_request);
  std::uint64_t current = request.load(std::memory_order_relaxed);
  while (current < end && !request.compare_exchange_weak(current, end, std::memory_order_seq_cst)) {
  }
  atomic(s.header->keeper_seq).fetch_add(1, std::memory_order_seq_cst);
  if (atomic(s.header->keeper_waiters).load(std::memory_order_seq_cst) != 0) shm::futex_wake_all(&s.header->keeper_seq);
}

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

namespace shmlog {

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
