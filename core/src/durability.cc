// The keeper of a durable log: the lease, the io_uring flusher that writes
// and syncs the ring's committed records to segment files, retention, and
// the offset checkpoint. Recovery from the files is disk_recovery.cc.
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

namespace shmlog::detail {

std::string segment_path(const LogState& s, std::uint32_t p, std::uint64_t segment) {
  return io::partition_directory(s.path, p) + "/" + io::segment_file_name(segment << s.segment_shift);
}

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
    if (s.append_counts(0) != nullptr) c.appended.push_back(partition_totals(s, p));
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

// The producers' sequences and kept offsets in the checkpoint file, by
// slot (none when it is missing or unreadable).
SequenceSnapshot checkpointed_sequences(const LogState& s) {
  SequenceSnapshot out;
  auto c = read_checkpoint(s.path, s.options, s.header->log_id);
  if (!c.ok() || !*c) return out;
  for (const auto& e : (*c)->producers) {
    out.sequences[e.slot] = e.next_sequence;
    if (e.has_offsets) out.offsets[e.slot] = KeptOffsets{e.name, e.offsets_epoch, e.offsets};
  }
  return out;
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
  {
    // From here this process's durable waiters may run a round themselves.
    std::lock_guard lock(s.keeper_mu);
    s.keeper_round = [&flusher] { return flusher.round(); };
    s.keeper_round_pid = ::getpid();
  }
  auto keeper_seq = atomic(s.header->keeper_seq);
  auto keeper_waiters = atomic(s.header->keeper_waiters);
  while (!stop.load(std::memory_order_acquire)) {
    // A request made after this load is never slept through: it changes
    // keeper_seq, and the futex below does not wait on a changed word.
    const std::uint32_t seen = keeper_seq.load(std::memory_order_seq_cst);
    bool moved = false;
    {
      std::lock_guard lock(s.keeper_mu);
      moved = flusher.round();
      flusher.housekeeping(false);
    }
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
  {
    // Leave nothing committed behind: write and sync it all, checkpoint.
    // Waiters wake the keeper of whichever process takes the lease next.
    std::lock_guard lock(s.keeper_mu);
    s.keeper_round = nullptr;
    for (int i = 0; i < 64 && flusher.has_work(); ++i) {
      if (!flusher.round()) break;
    }
    flusher.housekeeping(true);
  }
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

void raise_sync_request(const LogState& s, std::uint32_t p, std::uint64_t end) noexcept {
  auto request = atomic(s.partition(p).sync_request);
  std::uint64_t current = request.load(std::memory_order_relaxed);
  while (current < end && !request.compare_exchange_weak(current, end, std::memory_order_seq_cst)) {
  }
}

bool run_keeper_round(const LogState& s) noexcept {
  std::unique_lock lock(s.keeper_mu, std::try_to_lock);
  if (!lock.owns_lock() || !s.keeper_round || s.keeper_round_pid != ::getpid()) return false;
  return s.keeper_round();
}

void request_sync(const LogState& s, std::uint32_t p, std::uint64_t end) noexcept {
  raise_sync_request(s, p, end);
  atomic(s.header->keeper_seq).fetch_add(1, std::memory_order_seq_cst);
  if (atomic(s.header->keeper_waiters).load(std::memory_order_seq_cst) != 0) shm::futex_wake_all(&s.header->keeper_seq);
}

}  // namespace shmlog::detail
