// The shared-memory format of a log: an ABI between processes and builds.
// Every struct here lives in shared memory, is accessed through
// std::atomic_ref where more than one thread touches a field, and holds
// offsets, never pointers. Byte layouts are drawn below and documented in
// core/README.md; the static_asserts at the end pin every field, and
// compute_geometry (constexpr) is pinned on an example log.
//
// One shared-memory object per log (every offset from compute_geometry,
// at the end of this file, from the log's options alone; the header's
// copy is only checked against it):
//
//   +-------------------+ 0
//   | LogHeader  (4 KiB)|
//   +-------------------+ producers_offset
//   | ProducerSlot x max_producers       (256 B each)
//   +-------------------+ groups_offset (4 KiB aligned)
//   | GroupHeader + MemberSlot x max_members, x max_groups (128 B + 64 B each)
//   +-------------------+ offset_slots_offset (4 KiB aligned)
//   | OffsetSlot [partition][group]       (64 B each)
//   +-------------------+ partitions_offset (4 KiB aligned)
//   | PartitionHeader x partitions (512 B + ring_segments x SegmentDescriptor,
//   |                               rounded up to 4 KiB)
//   +-------------------+ data_offset (4 KiB aligned)
//   | ring of partition 0: ring_segments x segment_size
//   | ring of partition 1 ...
//   +-------------------+ tokens_offset
//   | TokenSlot x token_slots             (64 B each; a token window only)
//   +-------------------+ offsets_buffers_offset (4 KiB aligned)
//   | OffsetsBuffer x 2 per producer slot (1 KiB each; committed_offsets)
//   +-------------------+ append_counts_offset (4 KiB aligned)
//   | AppendCounts [producer slot][partition] (16 B each; a slot's row
//   |                               rounded up to 64 B)
//   +-------------------+ total_size
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

#include "shmlog/detail/record_header.h"
#include "shmlog/detail/segment_word.h"
#include "shmlog/log.h"

namespace shmlog::format {

inline constexpr std::size_t kCacheLine = 64;
// The hottest words (a partition's tail, the futex words) get two lines so
// that the adjacent-line prefetcher does not couple them to a neighbour.
inline constexpr std::size_t kHotLine = 128;
inline constexpr std::size_t kPage = 4096;

// "SHMLOG\0\1" little-endian; written last at create (release).
inline constexpr std::uint64_t kLogMagic = 0x0100474F4C4D4853ULL;
// 1.1: placement keys in shmlog.meta; 1.2: durability; 2.0: the memory
// nonce and incompatible-feature flags. Major 2, because a 1.x binary
// would ignore the nonce (and open or make the memory under the old name,
// a second incarnation of the log) and reuse ring slots of a durable log
// before they are on disk. Logs of major 1 are still read.
inline constexpr std::uint32_t kVersionMajor = 2;
inline constexpr std::uint32_t kVersionMinor = 0;
inline constexpr std::uint32_t kOldestMajorRead = 1;

// Incompatible features: what a log uses that a binary must understand to
// open it at all (the meta file names them, the header has the bits). A
// binary refuses a log with one it does not know, naming it; features that
// older binaries may safely ignore need no flag.
inline constexpr std::uint32_t kFeatureDurability = 1u << 0;   // segment files: ring reuse waits for the keeper
inline constexpr std::uint32_t kFeatureMemoryNonce = 1u << 1;  // the memory's name has a random part
inline constexpr std::uint32_t kFeatureFences = 1u << 2;  // the fence in txn_word; acquisitions in ownership
// A named producer's slot names its claim in flight (pending_position);
// ring reuse counts it before the old lap goes.
inline constexpr std::uint32_t kFeaturePendingClaims = 1u << 3;
// Two buffers per producer slot keep a named producer's last committed
// transaction offsets (the OffsetsBuffer table after the token table).
inline constexpr std::uint32_t kFeatureCommittedOffsets = 1u << 4;
// Records appended with a uniqueness token end in its hash
// (kRecordFlagToken): an older binary would hand it out as value.
inline constexpr std::uint32_t kFeatureTokenHashes = 1u << 5;
// The admin lock and the keeper lease are owner pairs {pid, stamp}, and a
// segment descriptor keeps its preparer's stamp (shm::stamp_of): the pid
// namespace is part of every holder's name (core/src/owner.h).
inline constexpr std::uint32_t kFeatureOwnerPairs = 1u << 6;
// Records and bytes appended are counted per producer slot and partition
// (the AppendCounts table), where they outlive the producer: an older
// binary would count into the slot, where the next producer resets them.
inline constexpr std::uint32_t kFeatureAppendCounts = 1u << 7;
// The features no option chooses: every log made, or whose memory is made
// anew, by this binary uses them.
inline constexpr std::uint32_t kFeaturesOfThisBinary =
    kFeatureFences | kFeaturePendingClaims | kFeatureCommittedOffsets | kFeatureTokenHashes | kFeatureOwnerPairs |
    kFeatureAppendCounts;
inline constexpr std::uint32_t kKnownFeatures = kFeatureDurability | kFeatureMemoryNonce | kFeaturesOfThisBinary;

// The hash of a record's key or a uniqueness token, part of the format
// (producers in every process and language must agree): a keyed record
// goes to partition key_hash(key) % partitions, and a token's home in the
// token table is key_hash(token) | 1 (never 0: empty). FNV-1a, then a
// final mix so that similar keys spread.
constexpr std::uint64_t key_hash(std::span<const std::byte> bytes) noexcept {
  std::uint64_t h = 1469598103934665603ull;
  for (std::byte b : bytes) h = (h ^ static_cast<std::uint8_t>(b)) * 1099511628211ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

// No position of a partition reaches this (2^62 bytes: 14 years at 10 GB/s);
// one at or past it in shared memory is damage, and so is one off the
// record alignment.
inline constexpr std::uint64_t kMaxPosition = 1ull << 62;
constexpr bool plausible_position(std::uint64_t pos) noexcept {
  return pos < kMaxPosition && (pos & (kRecordAlignment - 1)) == 0;
}
inline constexpr std::size_t kNameCapacity = 64;  // NUL-terminated, so 63 chars

enum class Policy : std::uint32_t { kOverwrite = 1, kBackpressure = 2 };

// LogHeader flags.
inline constexpr std::uint32_t kLogFlagChecksums = 1u << 0;


// Record flags (in the commit word).
inline constexpr std::uint8_t kRecordFlagChecksum = 1u << 0;       // checksum field is valid
inline constexpr std::uint8_t kRecordFlagTransactional = 1u << 1;  // visible to read_committed after its commit marker
// The frame's last 8 bytes are the hash of the record's uniqueness token
// (Producer::append_unique), not value: recovery rebuilds the token table
// from them after a host crash.
inline constexpr std::uint8_t kRecordFlagToken = 1u << 2;
inline constexpr std::uint32_t kTokenTrailer = 8;

// The record header (32 bytes) and its commit word are drawn in
// shmlog/detail/record_header.h, with the commit word's accessors
// (word_length, ...): the public inline append writes them, the inline
// poll reads them.

inline constexpr std::int32_t kPoison = INT32_MIN;


// ---------------------------------------------------------------------------
// Segment descriptor, 64 bytes, one per ring slot. Its `state_word` is
// drawn in shmlog/detail/segment_word.h: the public inline poll checks it.
// ---------------------------------------------------------------------------
struct SegmentDescriptor {
  std::uint64_t state_word;
  std::uint64_t preparer_stamp;  // with the pid: who prepares (liveness; owner.h)
  std::uint64_t prepared_ns;          // when the slot was last made ready
  std::uint8_t reserved[40];
};

// ---------------------------------------------------------------------------
// Partition header: the tail on a hot line of its own, the writer mode, the
// flusher's positions (durable logs), and the segment descriptors.
//
//   0    tail_position      (uint64; every shared producer fetch-adds it)
//   128  writers            (uint32; kExclusiveWriter|producer_id, or count)
//   136  abandoned_total    (uint64; claims turned into abandoned records)
//   144  appends_before_total, bytes_before_total (uint64; appended
//        before the log's memory was made: a durable log's checkpoint)
//   256  written_position   (uint64; committed prefix written to segment files)
//   264  durable_position   (uint64; ... and synced as the durability policy says)
//   272  sync_request       (uint64; the highest offset a producer waits to be durable)
//   280  disk_start         (uint64; first offset still in a segment file)
//   320  flusher counters and the last error (single writer: the keeper)
//   512  SegmentDescriptor[ring_segments]
//
// Positions only grow. With durability, a ring slot is reused only once
// written_position is past the segment it held.
// ---------------------------------------------------------------------------
struct PartitionHeader {
  alignas(kHotLine) std::uint64_t tail_position;
  std::uint8_t pad0[kHotLine - 8];
  std::uint32_t writers;
  std::uint32_t reserved0;
  std::uint64_t abandoned_total;
  std::uint64_t appends_before_total;
  std::uint64_t bytes_before_total;
  std::uint8_t pad1[kHotLine - 32];
  // 256: the keeper publishes, producers and readers load (acquire).
  std::uint64_t written_position;
  std::uint64_t durable_position;
  std::uint64_t sync_request;
  std::uint64_t disk_start;
  std::uint8_t pad2[kCacheLine - 32];
  // 320: the keeper's counters (relaxed).
  std::uint64_t disk_bytes;          // bytes the segment files take
  std::uint32_t disk_segments;       // segment files kept
  std::uint32_t flush_errno;         // the last write or preallocation error (0: none since)
  std::uint64_t disk_full_total;     // times a write or preallocation found no space
  std::uint64_t fsyncs_total;        // fdatasyncs of segment files
  std::uint64_t flushed_bytes_total; // bytes written to segment files
  std::uint64_t io_errors_total;     // failed writes or syncs (other than no space)
  std::uint64_t last_sync_ns;        // CLOCK_REALTIME of the last completed sync
  std::uint8_t reserved_durability[512 - 2 * kHotLine - kCacheLine - 56];
  // SegmentDescriptor[ring_segments] follows.
};
inline constexpr std::uint32_t kExclusiveWriter = 1u << 31;

// ---------------------------------------------------------------------------
// Producer slot, 256 bytes: who holds a producer id, and its own counters
// (single writer, relaxed).
//   0   state, flags, pid, start_time, opened_ns, epoch
//   64  name (NUL-terminated)
//   128 counters: appends, bytes (logs without the AppendCounts table),
//       claims revoked, backpressure waits and time waited, consumer
//       wake-ups; the AppendCounts row's sums at open
//   192 idempotence: last sequence committed (+1; 0: none), the epoch the
//       named identity started at. A named (idempotent) producer's slot
//       keeps its name and these when it is freed, so that a restart under
//       the same name finds them; the slot's epoch fences older instances.
// ---------------------------------------------------------------------------
enum class SlotState : std::uint32_t { kFree = 0, kActive = 1, kReaping = 2 };
inline constexpr std::uint32_t kProducerExclusive = 1u << 0;
inline constexpr std::uint32_t kProducerIdempotent = 1u << 1;  // name is an identity

struct ProducerSlot {
  std::uint32_t state;
  std::uint32_t flags;
  std::uint32_t pid;
  std::uint16_t epoch;
  std::uint16_t reserved0;
  std::uint64_t start_time;
  std::uint64_t opened_ns;
  std::uint64_t pid_namespace;  // whose pid and start time (0: unknown)
  std::uint8_t pad0[kCacheLine - 40];
  char name[kNameCapacity];
  std::uint64_t appends_total;
  std::uint64_t bytes_total;
  std::uint64_t revoked_total;
  std::uint64_t backpressure_waits_total;
  std::uint64_t backpressure_wait_ns_total;
  std::uint64_t wakeups_total;
  // With the AppendCounts table: its row's sums when this producer opened
  // the slot (what it appended is the row's sums less these); appends_total
  // and bytes_total above are then unused. Without it: 0.
  std::uint64_t appends_at_open;
  std::uint64_t bytes_at_open;
  std::uint64_t last_sequence_plus_one;  // raised only (CAS max) by the identity's instances
  std::uint16_t first_epoch;
  std::uint16_t reserved1;
  std::uint32_t txn_timeout_ms;          // an open transaction older than this may be aborted
  std::uint64_t txn_word;                // the fence and the last transaction (see below)
  std::uint64_t txn_changed_ns;          // when txn_word last changed (CLOCK_REALTIME)
  // The last sequence + 1 of the transaction in txn_word, written before
  // its decision: a restart counts it when the decision was commit.
  std::uint64_t txn_sequence_plus_one;
  // The claim a named producer registers next or last registered (position
  // + 1; 0: none), stored before the claim's registration: the one record
  // that may be published but not yet counted in last_sequence_plus_one.
  // Whoever reuses the ring slot holding it, and a restart, count it.
  std::uint32_t pending_partition;
  // Which OffsetsBuffer of this slot holds the last committed transaction's
  // offsets (index + 1; 0: none).
  std::uint32_t committed_offsets_buffer;
  std::uint64_t pending_position_plus_one;
  std::uint8_t pad2[kCacheLine - 56];
};

// The outcome of a transaction is decided by one CAS on txn_word (open ->
// committing, or open -> aborting); markers follow the decision, written by
// the producer or, when it died, by whoever completes the transaction.
//
//   63                    32 31        24 23                 8 7        0
//  +------------------------+------------+--------------------+----------+
//  |   fence (32 bits)      |  reserved  |  transaction epoch |  state   |
//  +------------------------+------------+--------------------+----------+
//
// The fence is bumped only when an instance opens the slot, and every
// instance checks it (in this word) before a commit publishes: a fenced
// instance never passes again until 2^32 more instances have opened. The
// 16-bit epoch (bumped by each open and each begin_transaction) only names
// a transaction in its records, which match their marker by the first one
// of that epoch ahead in the partition; it may wrap.
enum class TxnState : std::uint8_t { kNone = 0, kOpen = 1, kCommitting = 2, kAborting = 3, kDone = 4, kPrepared = 5 };
constexpr std::uint64_t make_txn_word(std::uint32_t fence, std::uint16_t epoch, TxnState state) noexcept {
  return static_cast<std::uint64_t>(fence) << 32 | static_cast<std::uint64_t>(epoch) << 8 |
         static_cast<std::uint8_t>(state);
}
constexpr std::uint32_t txn_fence(std::uint64_t w) noexcept { return static_cast<std::uint32_t>(w >> 32); }
constexpr std::uint16_t txn_epoch(std::uint64_t w) noexcept { return static_cast<std::uint16_t>(w >> 8); }
constexpr TxnState txn_state(std::uint64_t w) noexcept { return static_cast<TxnState>(static_cast<std::uint8_t>(w)); }
// The same transaction (fence and epoch kept) in another state.
constexpr std::uint64_t with_txn_state(std::uint64_t w, TxnState state) noexcept {
  return (w & ~std::uint64_t{0xff}) | static_cast<std::uint8_t>(state);
}
// A named identity's epochs in use lie less than twice this past its first
// epoch (an open or begin_transaction that reaches twice this moves the
// first epoch up to `epoch - kEpochWindow`), so "age = epoch - first"
// orders them without wrapping.
inline constexpr std::uint16_t kEpochWindow = 0x4000;

// ---------------------------------------------------------------------------
// Consumer group slot: 128-byte header, then MemberSlot[max_members].
//   0   state, membership_epoch (bumped on every join/leave/death), created_ns
//   64  name (NUL-terminated)
// ---------------------------------------------------------------------------
struct GroupHeader {
  std::uint32_t state;
  std::uint32_t flags;
  std::uint64_t membership_epoch;
  std::uint64_t created_ns;
  std::uint8_t pad0[kCacheLine - 24];
  char name[kNameCapacity];
};

struct MemberSlot {
  std::uint32_t state;
  std::uint32_t pid;
  std::uint64_t start_time;
  std::uint64_t joined_ns;
  std::uint64_t pid_namespace;  // whose pid and start time (0: unknown)
  std::uint8_t pad[kCacheLine - 32];
};

// ---------------------------------------------------------------------------
// Offset slot, 64 bytes per (partition, group): the committed offset, written
// only by the member that owns the partition. `ownership` holds the owner
// (member index + 1; 0: none) and, above it, how many times the partition
// was acquired: a member commits by one 16-byte CAS of (committed_offset,
// ownership) that expects its own acquisition, so a member the others
// released (judged dead) can never move the offset again, even after its
// member index was reused.
// ---------------------------------------------------------------------------
struct OffsetSlot {
  std::uint64_t committed_offset;  // with `ownership`, a 16-byte pair (word_pair.h)
  std::uint64_t ownership;
  std::uint64_t commit_time_ns;
  std::uint64_t lost_bytes_total;  // skipped because the ring lapped the owner
  // At-most-once commits before its handler runs: while it runs, the first
  // record handed out + 1 (0: none) holds the ring like a committed offset
  // would, so the views stay valid (set before the commit, cleared after).
  std::uint64_t hold;
  std::uint8_t reserved[kCacheLine - 40];
};

constexpr std::uint64_t make_ownership(std::uint32_t owner, std::uint32_t acquisitions) noexcept {
  return static_cast<std::uint64_t>(acquisitions) << 32 | owner;
}
constexpr std::uint32_t ownership_owner(std::uint64_t w) noexcept { return static_cast<std::uint32_t>(w); }
constexpr std::uint32_t ownership_acquisitions(std::uint64_t w) noexcept { return static_cast<std::uint32_t>(w >> 32); }

// ---------------------------------------------------------------------------
// Log header, the first 4 KiB. Lines 0-1 are written once at create; the
// futex lines and the admin lock follow, each on lines of their own.
// ---------------------------------------------------------------------------
struct LogHeader {
  // line 0: identity; magic is published last.
  std::uint64_t magic;
  std::uint32_t version_major;
  std::uint32_t version_minor;
  std::uint64_t total_size;
  std::uint64_t log_id;
  std::uint64_t created_ns;
  std::uint32_t creator_pid;
  std::uint32_t flags;
  std::uint64_t creator_start_time;
  std::uint64_t claim_timeout_ns;
  // line 1: geometry
  std::uint64_t segment_size;
  std::uint32_t ring_segments;
  std::uint32_t partitions;
  std::uint32_t max_record_size;
  std::uint32_t policy;
  std::uint32_t max_producers;
  std::uint32_t max_groups;
  std::uint32_t max_members;
  std::uint32_t token_window_ms;  // uniqueness tokens older than this are forgotten (0: by count only)
  std::uint64_t token_window;     // how many recent tokens are remembered (0: no token table)
  std::uint64_t token_slots;      // slots of the token table (a power of two, 2x the window)
  std::uint32_t durability;       // Durability: 0 none, 1 flush, 2 fsync
  std::uint32_t features;         // incompatible features (kFeature*), as the meta file names them (2.0)
  // line 2: where the tables are (byte offsets from the start)
  std::uint64_t producers_offset;
  std::uint64_t groups_offset;
  std::uint64_t group_stride;
  std::uint64_t offset_slots_offset;
  std::uint64_t partitions_offset;
  std::uint64_t partition_stride;
  std::uint64_t data_offset;
  std::uint64_t tokens_offset;  // the token table, after the rings
  // line 3: the random part of the object's name, as the meta file has it
  // (0 in logs of format 1.x): an opener compares the two.
  std::uint64_t memory_nonce;
  // Past the highest producer slot a named producer ever held: the slots
  // ring reuse looks at for pending claims (raised under the admin lock).
  std::uint32_t named_slots_end;
  // Past the highest producer slot that ever held a producer: the rows of
  // the AppendCounts table readers sum (raised under the admin lock).
  std::uint32_t used_slots_end;
  std::uint64_t offsets_buffers_offset;  // the OffsetsBuffer table (0: none, before `committed_offsets`)
  std::uint8_t pad0[1024 - 3 * kCacheLine - 24];
  // 1024: consumers sleep on data_seq; producers wake them when waiters > 0.
  // `sleepers` is set (for good) before any consumer first parks: until
  // then producers publish with a plain release store, no full barrier.
  alignas(kHotLine) std::uint32_t data_seq;
  std::uint32_t data_waiters;
  std::uint32_t sleepers;
  std::uint8_t pad1[kHotLine - 12];
  // 1152: producers blocked by backpressure sleep on space_seq.
  std::uint32_t space_seq;
  std::uint32_t space_waiters;
  std::uint8_t pad2[kHotLine - 8];
  // 1280: the admin lock for the cold paths: registering producers,
  // joining groups, reaping dead processes. An owner pair {pid, stamp}
  // (1296) in memory with kFeatureOwnerPairs, else the word at 1280
  // (pid << 32 | low bits of the start time); see owner.h.
  std::uint64_t admin_lock;
  std::uint64_t reserved_admin;
  std::uint64_t admin_owner[2];
  std::uint8_t pad3[kCacheLine - 32];
  // 1344: the log directory, for tools that find orphaned objects.
  char path[1024];
  // 2368: numbers every token insertion (the window counts in these).
  std::uint64_t token_seq;
  std::uint8_t pad4[kCacheLine - 8];
  // 2432: the keeper's lease (durable logs), held by the process whose
  // keeper runs the flusher, taken over by CAS from a dead holder: an owner
  // pair {pid, stamp} (2464) in memory with kFeatureOwnerPairs, else the
  // word at 2432 (pid << 32 | low bits of the start time); see owner.h.
  std::uint64_t keeper_lease;
  std::uint64_t keeper_since_ns;      // when the holder took it
  std::uint64_t keeper_heartbeat_ns;  // the holder's last round (for tools)
  std::uint64_t keeper_takeovers;     // leases taken from a dead holder
  std::uint64_t keeper_owner[2];
  std::uint8_t pad5[kCacheLine - 48];
  // 2496: producers waiting for durability wake the keeper here, and park
  // on durable_seq until it publishes.
  std::uint32_t keeper_seq;
  std::uint32_t keeper_waiters;
  std::uint32_t durable_seq;
  std::uint32_t durable_waiters;
  std::uint8_t reserved_tail[kPage - 2496 - 16];
};

// ---------------------------------------------------------------------------
// Token table slot, one cache line: open addressing by the token's 64-bit
// hash, within 64 slots of its home. (hash, seq) change together by a
// 16-byte CAS, so exactly one inserter takes a slot; it then writes
// `time_ns` and publishes (position, published_seq = seq) by a second
// 16-byte CAS from the pair it saw before taking the slot, so a late
// publisher whose slot was taken over meanwhile fails instead of
// overwriting. `position` is partition + 1 << 48 | offset / 32: the claim
// that carries the token; until published the slot is pending. A later
// inserter reads the claim's fate there: kept, or gone (token free again).
// ---------------------------------------------------------------------------
struct TokenSlot {
  alignas(64) std::uint64_t hash;  // 0: empty
  std::uint64_t seq;               // token_seq at insertion
  std::uint64_t position;          // with published_seq: one 16-byte pair
  std::uint64_t published_seq;     // == seq once published
  std::uint64_t time_ns;           // CLOCK_REALTIME at insertion
  // The fate of the claim `seq` names, learnt before its ring slot was
  // reused: seq | kTokenKept (committed), or seq (aborted, abandoned).
  std::uint64_t resolved_seq;
  std::uint8_t pad[16];
};
inline constexpr std::uint64_t kTokenKept = 1ull << 63;
// ---------------------------------------------------------------------------
// Offsets buffer, 1 KiB, two per producer slot: the consumer offsets a named
// producer's transaction commits (encoded as its kTxnOffsets record's
// value). Written before the transaction's decision into the buffer the
// slot does not name (with length 0 when it has none), named by the slot
// after the decision; a restart that finds the decision "commit" but the
// slot naming the other buffer takes this one. So the last committed
// offsets outlive their record in the ring.
// ---------------------------------------------------------------------------
inline constexpr std::size_t kOffsetsBufferSize = 1024;
inline constexpr std::uint32_t kOffsetsTooLarge = 0xffffffffu;  // length: in the ring's record only
// The buffer a transaction writes its offsets to: the one a slot's
// committed_offsets_buffer (index + 1; 0: none) does not name.
constexpr std::uint32_t unnamed_offsets_buffer(std::uint32_t named) noexcept { return named == 1 ? 1 : 0; }
struct OffsetsBuffer {
  std::uint32_t length;  // bytes used (0: none; kOffsetsTooLarge: they did not fit)
  std::uint16_t epoch;   // the transaction's
  std::uint16_t reserved;
  std::uint64_t reserved2;
  std::byte bytes[kOffsetsBufferSize - 16];
};

// ---------------------------------------------------------------------------
// Append counts, 16 bytes, one per (producer slot, partition): what every
// producer that held the slot appended there since the log's memory was
// made. Only grows: the next producer in the slot counts on from it, so a
// partition's total (its before-totals plus its column of this table)
// never goes back when producers exit or die. A slot's row is its own
// (rounded up to a cache line); its producer counts with relaxed stores,
// or fetch_add when it is named (a fenced older instance of the name may
// still count its last record into the same row).
// ---------------------------------------------------------------------------
struct AppendCounts {
  std::uint64_t appends_total;
  std::uint64_t bytes_total;
};

// A token slot's position word: partition + 1 in the top 16 bits (0: none),
// the record's offset in 32-byte units below (records are 32-byte aligned).
constexpr std::uint64_t encode_token_position(std::uint32_t partition, std::uint64_t offset) noexcept {
  return static_cast<std::uint64_t>(partition + 1) << 48 | offset >> 5;
}
struct TokenPosition {
  std::uint32_t partition;  // UINT32_MAX when the word names none
  std::uint64_t offset;
};
constexpr TokenPosition decode_token_position(std::uint64_t encoded) noexcept {
  return {static_cast<std::uint32_t>((encoded >> 48) - 1), (encoded & ((std::uint64_t{1} << 48) - 1)) << 5};
}
static_assert(decode_token_position(encode_token_position(3, 4096)).partition == 3);
static_assert(decode_token_position(encode_token_position(3, 4096)).offset == 4096);
static_assert(kRecordAlignment == 32, "token positions count 32-byte units");

#define SHMLOG_ASSERT_SHARED(T)                                                  \
  static_assert(std::is_standard_layout_v<T>, #T " must be standard layout");   \
  static_assert(std::is_trivially_copyable_v<T>, #T " must be trivially copyable")

SHMLOG_ASSERT_SHARED(RecordHeader);
SHMLOG_ASSERT_SHARED(SegmentDescriptor);
SHMLOG_ASSERT_SHARED(PartitionHeader);
SHMLOG_ASSERT_SHARED(ProducerSlot);
SHMLOG_ASSERT_SHARED(TokenSlot);
SHMLOG_ASSERT_SHARED(OffsetsBuffer);
SHMLOG_ASSERT_SHARED(AppendCounts);
SHMLOG_ASSERT_SHARED(GroupHeader);
SHMLOG_ASSERT_SHARED(MemberSlot);
SHMLOG_ASSERT_SHARED(OffsetSlot);
SHMLOG_ASSERT_SHARED(LogHeader);
#undef SHMLOG_ASSERT_SHARED

static_assert(sizeof(RecordHeader) == kRecordHeaderSize);
static_assert(offsetof(RecordHeader, checksum) == 8);
static_assert(offsetof(RecordHeader, producer_id) == 12);
static_assert(offsetof(RecordHeader, producer_epoch) == 14);
static_assert(offsetof(RecordHeader, timestamp_ns) == 16);
static_assert(offsetof(RecordHeader, sequence) == 24);
static_assert(sizeof(SegmentDescriptor) == kCacheLine);
static_assert(offsetof(SegmentDescriptor, preparer_stamp) == 8);  // a 16-byte pair with state_word
static_assert(offsetof(OffsetSlot, ownership) == 8);  // a 16-byte pair with committed_offset
static_assert(sizeof(PartitionHeader) == 512);
static_assert(alignof(PartitionHeader) == kHotLine);
static_assert(offsetof(PartitionHeader, writers) == kHotLine);
static_assert(offsetof(PartitionHeader, written_position) == 256);
static_assert(offsetof(PartitionHeader, disk_bytes) == 320);
static_assert(sizeof(ProducerSlot) == 4 * kCacheLine);
static_assert(offsetof(ProducerSlot, name) == kCacheLine);
static_assert(offsetof(ProducerSlot, appends_total) == 2 * kCacheLine);
static_assert(offsetof(ProducerSlot, last_sequence_plus_one) == 3 * kCacheLine);
static_assert(offsetof(ProducerSlot, pending_position_plus_one) == 3 * kCacheLine + 48);
static_assert(sizeof(GroupHeader) == 2 * kCacheLine);
static_assert(offsetof(GroupHeader, name) == kCacheLine);
static_assert(sizeof(MemberSlot) == kCacheLine);
static_assert(sizeof(OffsetSlot) == kCacheLine);
static_assert(sizeof(LogHeader) == kPage);
static_assert(offsetof(LogHeader, segment_size) == kCacheLine);
static_assert(offsetof(LogHeader, producers_offset) == 2 * kCacheLine);
static_assert(offsetof(LogHeader, memory_nonce) == 3 * kCacheLine);
static_assert(offsetof(LogHeader, named_slots_end) == 3 * kCacheLine + 8);
static_assert(offsetof(LogHeader, offsets_buffers_offset) == 3 * kCacheLine + 16);
static_assert(sizeof(OffsetsBuffer) == kOffsetsBufferSize);
static_assert(offsetof(LogHeader, data_seq) == 1024);
static_assert(offsetof(LogHeader, sleepers) == 1032);
static_assert(offsetof(LogHeader, space_seq) == 1152);
static_assert(offsetof(LogHeader, admin_lock) == 1280);
static_assert(offsetof(LogHeader, admin_owner) == 1296);  // 16-byte aligned: one cmpxchg16b
static_assert(offsetof(LogHeader, path) == 1344);
static_assert(offsetof(LogHeader, token_seq) == 2368);
static_assert(offsetof(LogHeader, keeper_lease) == 2432);
static_assert(offsetof(LogHeader, keeper_owner) == 2464);  // 16-byte aligned: one cmpxchg16b
static_assert(offsetof(LogHeader, keeper_seq) == 2496);
static_assert(sizeof(TokenSlot) == kCacheLine);
static_assert(offsetof(TokenSlot, hash) == 0 && offsetof(TokenSlot, seq) == 8);  // a 16-byte pair
static_assert(offsetof(TokenSlot, position) == 16 && offsetof(TokenSlot, published_seq) == 24);  // a 16-byte pair
static_assert(offsetof(TokenSlot, time_ns) == 32 && offsetof(TokenSlot, resolved_seq) == 40);
static_assert(alignof(TokenSlot) % 16 == 0);  // cmpxchg16b needs both pairs 16-byte aligned
static_assert(offsetof(PartitionHeader, durable_position) == 264 && offsetof(PartitionHeader, sync_request) == 272 &&
              offsetof(PartitionHeader, disk_start) == 280);
static_assert(offsetof(PartitionHeader, disk_segments) == 328 && offsetof(PartitionHeader, flush_errno) == 332 &&
              offsetof(PartitionHeader, last_sync_ns) == 368);
static_assert(offsetof(ProducerSlot, txn_timeout_ms) == 3 * kCacheLine + 12 &&
              offsetof(ProducerSlot, txn_word) == 3 * kCacheLine + 16 &&
              offsetof(ProducerSlot, txn_changed_ns) == 3 * kCacheLine + 24 &&
              offsetof(ProducerSlot, txn_sequence_plus_one) == 3 * kCacheLine + 32 &&
              offsetof(ProducerSlot, pending_partition) == 3 * kCacheLine + 40 &&
              offsetof(ProducerSlot, committed_offsets_buffer) == 3 * kCacheLine + 44);
// The rest of every shared struct, so that no field moves unnoticed.
static_assert(offsetof(ProducerSlot, flags) == 4 && offsetof(ProducerSlot, pid) == 8 &&
              offsetof(ProducerSlot, epoch) == 12 && offsetof(ProducerSlot, start_time) == 16 &&
              offsetof(ProducerSlot, opened_ns) == 24 && offsetof(ProducerSlot, pid_namespace) == 32);
static_assert(offsetof(ProducerSlot, bytes_total) == 2 * kCacheLine + 8 &&
              offsetof(ProducerSlot, revoked_total) == 2 * kCacheLine + 16 &&
              offsetof(ProducerSlot, backpressure_waits_total) == 2 * kCacheLine + 24 &&
              offsetof(ProducerSlot, backpressure_wait_ns_total) == 2 * kCacheLine + 32 &&
              offsetof(ProducerSlot, wakeups_total) == 2 * kCacheLine + 40);
static_assert(offsetof(ProducerSlot, first_epoch) == 3 * kCacheLine + 8);
static_assert(offsetof(GroupHeader, flags) == 4 && offsetof(GroupHeader, membership_epoch) == 8 &&
              offsetof(GroupHeader, created_ns) == 16);
static_assert(offsetof(MemberSlot, pid) == 4 && offsetof(MemberSlot, start_time) == 8 &&
              offsetof(MemberSlot, joined_ns) == 16 && offsetof(MemberSlot, pid_namespace) == 24);
static_assert(offsetof(OffsetSlot, commit_time_ns) == 16 && offsetof(OffsetSlot, lost_bytes_total) == 24 &&
              offsetof(OffsetSlot, hold) == 32);
static_assert(offsetof(SegmentDescriptor, prepared_ns) == 16);
static_assert(offsetof(PartitionHeader, abandoned_total) == kHotLine + 8);
static_assert(offsetof(PartitionHeader, appends_before_total) == kHotLine + 16 &&
              offsetof(PartitionHeader, bytes_before_total) == kHotLine + 24);
static_assert(offsetof(LogHeader, used_slots_end) == 3 * kCacheLine + 12);
static_assert(offsetof(ProducerSlot, appends_at_open) == 2 * kCacheLine + 48 &&
              offsetof(ProducerSlot, bytes_at_open) == 2 * kCacheLine + 56);
static_assert(sizeof(AppendCounts) == 16 && offsetof(AppendCounts, bytes_total) == 8);
static_assert(offsetof(OffsetsBuffer, epoch) == 4 && offsetof(OffsetsBuffer, bytes) == 16);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

// Byte offsets of every table (drawn at the top of this file).
struct Geometry {
  std::uint64_t producers_offset = 0;
  std::uint64_t groups_offset = 0;
  std::uint64_t group_stride = 0;
  std::uint64_t offset_slots_offset = 0;
  std::uint64_t partitions_offset = 0;
  std::uint64_t partition_stride = 0;
  std::uint64_t data_offset = 0;
  std::uint64_t ring_bytes = 0;
  std::uint64_t tokens_offset = 0;
  std::uint64_t token_slots = 0;
  std::uint64_t offsets_buffers_offset = 0;  // 0: none (a log without `committed_offsets`)
  std::uint64_t append_counts_offset = 0;    // 0: none (a log without `append_counts`)
  std::uint64_t append_counts_stride = 0;    // one producer slot's row
  std::uint64_t total_size = 0;
};

// The options that size the object. (LogOptions holds strings, which
// clang 14 with libstdc++ 12 cannot build in a constant expression: the
// geometry is computed from these numbers, so that it is constexpr.)
struct Dimensions {
  std::uint32_t partitions = 0;
  std::uint32_t ring_segments = 0;
  std::uint64_t segment_size = 0;
  std::uint32_t max_producers = 0;
  std::uint32_t max_groups = 0;
  std::uint32_t max_members = 0;
  std::uint64_t token_window = 0;
};

// The offsets from the dimensions alone. `features`: the log's kFeature*
// (the table of offsets buffers exists only with kFeatureCommittedOffsets).
constexpr Geometry compute_geometry(const Dimensions& d, std::uint32_t features) noexcept {
  auto round_up = [](std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; };
  Geometry g;
  g.producers_offset = sizeof(LogHeader);
  g.groups_offset = round_up(g.producers_offset + std::uint64_t{d.max_producers} * sizeof(ProducerSlot), kPage);
  g.group_stride = sizeof(GroupHeader) + std::uint64_t{d.max_members} * sizeof(MemberSlot);
  g.offset_slots_offset = round_up(g.groups_offset + d.max_groups * g.group_stride, kPage);
  g.partitions_offset =
      round_up(g.offset_slots_offset + std::uint64_t{d.partitions} * d.max_groups * sizeof(OffsetSlot), kPage);
  g.partition_stride =
      round_up(sizeof(PartitionHeader) + std::uint64_t{d.ring_segments} * sizeof(SegmentDescriptor), kPage);
  g.data_offset = g.partitions_offset + d.partitions * g.partition_stride;
  g.ring_bytes = d.segment_size * d.ring_segments;
  g.tokens_offset = g.data_offset + d.partitions * g.ring_bytes;
  g.token_slots = d.token_window == 0 ? 0 : std::bit_ceil(2 * d.token_window);
  g.total_size = g.tokens_offset + g.token_slots * sizeof(TokenSlot);
  if ((features & kFeatureCommittedOffsets) != 0) {
    g.offsets_buffers_offset = round_up(g.total_size, kPage);
    g.total_size = g.offsets_buffers_offset + 2 * std::uint64_t{d.max_producers} * sizeof(OffsetsBuffer);
  }
  if ((features & kFeatureAppendCounts) != 0) {
    g.append_counts_offset = round_up(g.total_size, kPage);
    g.append_counts_stride = round_up(std::uint64_t{d.partitions} * sizeof(AppendCounts), kCacheLine);
    g.total_size = g.append_counts_offset + std::uint64_t{d.max_producers} * g.append_counts_stride;
  }
  return g;
}

inline Geometry compute_geometry(const LogOptions& o, std::uint32_t features) noexcept {
  return compute_geometry(Dimensions{o.partitions, o.ring_segments, o.segment_size, o.max_producers, o.max_groups,
                                     o.max_members, o.token_window},
                          features);
}

// The map drawn at the top, pinned for one log: 2 partitions of 4 x 64 KiB,
// 3 producers, 2 groups of 5 members, a window of 100 tokens.
namespace pinned {
inline constexpr Geometry kExample = compute_geometry(Dimensions{2, 4, 64 * 1024, 3, 2, 5, 100}, kKnownFeatures);
static_assert(kExample.producers_offset == 4096);                      // after the 4 KiB header
static_assert(kExample.groups_offset == 8192);                         // 3 x 256 B, page-aligned
static_assert(kExample.group_stride == 128 + 5 * 64);                  // header + member slots
static_assert(kExample.offset_slots_offset == 8192 + 4096);            // 2 x 448 B
static_assert(kExample.partitions_offset == 12288 + 4096);             // 2 x 2 x 64 B
static_assert(kExample.partition_stride == 4096);                      // 512 B + 4 x 64 B
static_assert(kExample.data_offset == 16384 + 2 * 4096);
static_assert(kExample.ring_bytes == 4 * 64 * 1024);
static_assert(kExample.tokens_offset == 24576 + 2 * 4 * 64 * 1024);
static_assert(kExample.token_slots == 256);                            // 2 x 100, a power of two
static_assert(kExample.offsets_buffers_offset == kExample.tokens_offset + 256 * 64);
static_assert(kExample.append_counts_offset == kExample.offsets_buffers_offset + 8192);  // 6 KiB, page-aligned
static_assert(kExample.append_counts_stride == 64);                   // 2 x 16 B, a cache line
static_assert(kExample.total_size == kExample.append_counts_offset + 3 * 64);
}  // namespace pinned

// Atomic access to a field of a shared struct.
template <class T>
inline std::atomic_ref<T> atomic(T& field) noexcept {
  return std::atomic_ref<T>(field);
}

}  // namespace shmlog::format
