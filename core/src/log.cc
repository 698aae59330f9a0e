// Opening, creating, attaching and removing a log: the meta file, the
// shared memory's mapping and checks, and LogState's queries over it.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "durability.h"
#include "log_state.h"
#include "meta.h"
#include "owner.h"
#include "txn.h"
#include "shmlog/io/files.h"
#include "shmlog/io/segment_file.h"
#include "shmlog/log.h"

namespace shmlog {
namespace {

using detail::kMetaFile;
using detail::kMetaHeader;
using detail::LogState;
using detail::memory_path_for;
using detail::Meta;
using detail::random_nonzero;
using detail::read_meta;
using detail::to_meta;
using format::atomic;

constexpr const char* kLockFile = "shmlog.lock";

std::string join(const std::string& dir, const char* name) { return dir + "/" + name; }


// The log directory's canonical path and its metadata.
Result<std::pair<std::string, Meta>> locate(const std::string& path) {
  auto dir = io::canonical_path(path);
  if (!dir.ok()) return std::move(dir).status();
  auto meta = read_meta(*dir);
  if (!meta.ok()) return std::move(meta).status();
  return std::pair<std::string, Meta>(std::move(dir).value(), std::move(meta).value());
}


// Writes a fresh header and the initial segment descriptors into zeroed
// memory, then publishes the magic.
void format_memory(LogState& s, std::uint64_t log_id, std::uint64_t memory_nonce, std::uint32_t features) {
  auto& h = *s.header;
  const auto& o = s.options;
  const auto& g = s.geometry;
  const shm::ProcessId self = shm::self();
  h.version_major = format::kVersionMajor;
  h.version_minor = format::kVersionMinor;
  h.features = features;
  h.total_size = g.total_size;
  h.log_id = log_id;
  h.memory_nonce = memory_nonce;
  h.created_ns = detail::now_realtime_ns();
  h.creator_pid = self.pid;
  h.creator_start_time = self.start_time;
  h.flags = o.checksums ? format::kLogFlagChecksums : 0;
  h.claim_timeout_ns = static_cast<std::uint64_t>(s.claim_timeout.count());
  h.segment_size = o.segment_size;
  h.ring_segments = o.ring_segments;
  h.partitions = o.partitions;
  h.max_record_size = o.max_record_size;
  h.policy = static_cast<std::uint32_t>(o.policy);
  h.max_producers = o.max_producers;
  h.max_groups = o.max_groups;
  h.max_members = o.max_members;
  h.producers_offset = g.producers_offset;
  h.groups_offset = g.groups_offset;
  h.group_stride = g.group_stride;
  h.offset_slots_offset = g.offset_slots_offset;
  h.partitions_offset = g.partitions_offset;
  h.partition_stride = g.partition_stride;
  h.data_offset = g.data_offset;
  h.tokens_offset = g.tokens_offset;
  h.token_slots = g.token_slots;
  h.offsets_buffers_offset = g.offsets_buffers_offset;
  h.token_window = o.token_window;
  h.token_window_ms = static_cast<std::uint32_t>(o.token_window_time.count());
  h.durability = static_cast<std::uint32_t>(o.durability);
  std::snprintf(h.path, sizeof h.path, "%s", s.path.c_str());
  // Slot i starts out holding segment i, zeroed and ready.
  for (std::uint32_t p = 0; p < o.partitions; ++p) {
    for (std::uint32_t i = 0; i < o.ring_segments; ++i) {
      s.descriptor(p, i).state_word = format::make_segment_word(i, format::SegmentState::kReady, 0);
    }
  }
}

// Readers wait while magic is zero (pairs with check_header's acquire).
void publish(LogState& s) { atomic(s.header->magic).store(format::kLogMagic, std::memory_order_release); }

// `creator_may_run`: without the log's exclusive lock a creator may still
// be at work; under it, one that has not published the magic died, and
// the object is as good as absent (kNotFound: made anew).
Status check_header(const LogState& s, const Meta& meta, bool creator_may_run) {
  const std::uint64_t log_id = meta.log_id;
  const auto& h = *s.header;
  const std::string where = "shared memory " + s.memory_path;
  // A creator publishes magic last; wait briefly for one that is still at it.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(creator_may_run ? 2 : 0);
  std::uint64_t magic;
  while ((magic = atomic(const_cast<std::uint64_t&>(h.magic)).load(std::memory_order_acquire)) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status(Status::Code::kNotFound, where + " was never initialised (its creator died?)");
    }
    shm::sleep_for(std::chrono::milliseconds(1));
  }
  if (magic != format::kLogMagic) {
    return Status(Status::Code::kCorrupt, where + " is not a shmlog log (bad magic)");
  }
  if (h.version_major != meta.version_major) {
    return Status(Status::Code::kVersionMismatch,
                  where + " has format version " + std::to_string(h.version_major) + "." +
                      std::to_string(h.version_minor) + ", its meta file " + std::to_string(meta.version_major) +
                      ".x (this shmlog reads " + std::to_string(format::kOldestMajorRead) + ".x to " +
                      std::to_string(format::kVersionMajor) + "." + std::to_string(format::kVersionMinor) + ")");
  }
  if ((h.features & ~format::kKnownFeatures) != 0) {
    return Status(Status::Code::kVersionMismatch, where + " uses features (bits " + std::to_string(h.features) +
                                                      ") this shmlog does not know (upgrade it)");
  }
  const std::uint32_t features = meta.version_major >= 2 ? detail::features_of(meta) : 0;
  const auto& g = s.geometry;
  const auto& o = s.options;
  bool same = h.log_id == log_id && h.memory_nonce == meta.memory_nonce && h.features == features && h.total_size == g.total_size && h.segment_size == o.segment_size &&
              h.ring_segments == o.ring_segments && h.partitions == o.partitions &&
              h.max_record_size == o.max_record_size && h.max_producers == o.max_producers &&
              h.max_groups == o.max_groups && h.max_members == o.max_members &&
              h.producers_offset == g.producers_offset && h.groups_offset == g.groups_offset &&
              h.group_stride == g.group_stride && h.offset_slots_offset == g.offset_slots_offset &&
              h.partitions_offset == g.partitions_offset && h.partition_stride == g.partition_stride &&
              h.data_offset == g.data_offset && h.policy == static_cast<std::uint32_t>(o.policy) &&
              h.tokens_offset == g.tokens_offset && h.token_slots == g.token_slots &&
              h.offsets_buffers_offset == g.offsets_buffers_offset &&
              h.token_window == o.token_window && h.durability == static_cast<std::uint32_t>(o.durability);
  if (!same) {
    return Status(Status::Code::kCorrupt,
                  where + " does not match " + join(s.path, kMetaFile) + " (foreign or corrupt object)");
  }
  return {};
}

// The positions in shared memory, as far as they can be checked without
// stopping writers: each on the record alignment and below 2^62, and in
// the order they move in (read in the reverse order, so that concurrent
// progress cannot break it): committed offsets and the keeper's durable
// and written positions at or below the tail.
Status check_positions(const LogState& s) {
  auto bad = [&](std::uint32_t p, const char* what, std::uint64_t v) { return detail::damaged_position(s, p, what, v); };
  const auto active = static_cast<std::uint32_t>(format::SlotState::kActive);
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
    std::vector<std::uint64_t> committed;
    for (std::uint32_t g = 0; g < s.options.max_groups; ++g) {
      if (atomic(s.group(g).state).load(std::memory_order_acquire) != active) continue;
      const std::uint64_t c = atomic(s.offset_slot(p, g).committed_offset).load(std::memory_order_acquire);
      if (!format::plausible_position(c)) return bad(p, "committed offset", c);
      committed.push_back(c);
    }
    const auto& ph = s.partition(p);
    const std::uint64_t durable = atomic(ph.durable_position).load(std::memory_order_acquire);
    const std::uint64_t written = atomic(ph.written_position).load(std::memory_order_acquire);
    const std::uint64_t tail = s.tail(p);
    if (!format::plausible_position(tail)) return bad(p, "tail position", tail);
    for (std::uint64_t c : committed) {
      // A reader may have read (and committed) past the tail a record whose
      // exclusive writer died before moving the tail: the sweep moves it.
      if (c > tail && detail::committed_end(s, p, tail, c - tail) < c) {
        return bad(p, "committed offset (past the tail)", c);
      }
    }
    if (s.durable()) {
      if (!format::plausible_position(written) || written > tail) return bad(p, "written position", written);
      if (!format::plausible_position(durable) || durable > written) return bad(p, "durable position", durable);
    }
  }
  return {};
}

// Maps the log's memory, making it (`create`) or opening it; `locked`: the
// caller holds the log's exclusive lock (no creator can be at work).
Result<std::shared_ptr<LogState>> map_log(const std::string& dir, const Meta& meta, bool create,
                                          bool read_only = false, bool locked = false) {
  auto s = std::make_shared<LogState>();
  s->path = dir;
  s->owner = meta.owner;
  s->options = meta.options;
  s->memory_path = memory_path_for(meta);
  s->init_geometry(meta.version_major >= 2 ? detail::features_of(meta) : 0);
  if (create) {
    auto mem = shm::SharedMemory::create(s->memory_path, s->geometry.total_size, meta.options.mode,
                                         {meta.options.pages, meta.options.numa_node});
    if (!mem.ok()) return std::move(mem).status();
    s->shm = std::move(mem).value();
    s->base = s->shm.data();
    s->header = reinterpret_cast<format::LogHeader*>(s->base);
    format_memory(*s, meta.log_id, meta.memory_nonce, detail::features_of(meta));
    if (s->durable()) {
      // After a host crash: the ring comes back from the segment files.
      Status recovered = detail::recover_from_disk(*s);
      if (!recovered.ok()) {
        (void)shm::SharedMemory::unlink(s->memory_path);
        return std::move(recovered).with_context("recovering " + dir + " from its segment files");
      }
    }
    publish(*s);
    return s;
  }
  // Made by the log's owner, with no more permission than the log has.
  const shm::SharedMemory::Expected expected{meta.owner, meta.options.mode & 0777};
  auto mem = shm::SharedMemory::open(s->memory_path, sizeof(format::LogHeader), read_only, &expected);
  if (!mem.ok()) return std::move(mem).status();
  s->read_only = read_only;
  s->shm = std::move(mem).value();
  s->base = s->shm.data();
  s->header = reinterpret_cast<format::LogHeader*>(s->base);
  // The file is a whole number of its file system's pages (huge pages on hugetlbfs).
  if (s->shm.size() < s->geometry.total_size || s->shm.size() - s->geometry.total_size >= (1u << 30)) {
    return Status(Status::Code::kCorrupt,
                  "shared memory " + s->memory_path + " is " +
                      std::to_string(s->shm.size()) + " bytes, expected " +
                      std::to_string(s->geometry.total_size) + " (truncated or foreign object)");
  }
  SHMLOG_RETURN_IF_ERROR(check_header(*s, meta, /*creator_may_run=*/!locked));
  SHMLOG_RETURN_IF_ERROR(check_positions(*s));
  return s;
}

// Under the log's exclusive lock, with no shared memory of the log's at its
// name: makes it under a new random name, which the meta file then names
// (a planted object at the old name stays unused).
Result<std::shared_ptr<LogState>> make_memory_anew(const std::string& dir, Meta& meta) {
  // An object of the log's owner left there (a creator that died before
  // publishing it) goes; a planted one stays, unused.
  const std::string old_path = memory_path_for(meta);
  struct stat st {};
  if (::lstat(old_path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == meta.owner) {
    (void)shm::SharedMemory::unlink(old_path);
  }
  Meta next = meta;
  next.memory_nonce = random_nonzero();
  next.owner = ::geteuid();
  // New memory: its slots follow this binary's protocols (a binary that
  // does not know them refuses the log from now on).
  next.features |= format::kFeaturesOfThisBinary;
  // The name first: a crash before the memory exists leaves a name with
  // nothing at it (made anew by the next open), never an object no one names.
  Status written = io::write_key_value_file(join(dir, kMetaFile), kMetaHeader, to_meta(next), next.options.mode & 0666);
  if (!written.ok()) return std::move(written).with_context("naming the new shared memory in " + join(dir, kMetaFile));
  meta = std::move(next);
  return map_log(dir, meta, /*create=*/true);
}

}  // namespace

// ----------------------------------------------------------------------------

namespace detail {

Result<Log> Internals::open_existing(const std::string& dir, std::uint32_t owner) {
  if (dir.empty() || dir.front() != '/') return Status(Status::Code::kInvalidArgument, "not an absolute path: " + quoted(dir));
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != owner) {
    return Status(Status::Code::kPermissionDenied, quoted(dir) + " is not a log directory of uid " + std::to_string(owner));
  }
  auto meta = read_meta(dir);
  if (!meta.ok()) return std::move(meta).status();
  if (meta->owner != owner) return Status(Status::Code::kPermissionDenied, quoted(dir) + "'s meta file is another user's");
  auto state = map_log(dir, *meta, /*create=*/false);
  if (!state.ok()) return std::move(state).status();
  // Held shared like any handle's, so the memory is not made anew under
  // this one; not waited for.
  auto in_use = shm::FileLock::try_acquire_shared(join(dir, kLockFile), meta->options.mode, std::chrono::milliseconds(0));
  if (!in_use.ok()) return std::move(in_use).status();
  (*state)->in_use = std::move(in_use).value();
  if (!(*state)->shm.still_at_path()) return Status(Status::Code::kBusy, dir + "'s memory was just replaced");
  return Log(std::move(state).value());
}

Result<LogMeta> read_log_meta(const std::string& path) {
  auto found = locate(path);
  if (!found.ok()) return std::move(found).status();
  return LogMeta{found->first, found->second.options, found->second.log_id};
}

LogState::LogState() = default;
LogState::~LogState() = default;

void LogState::init_geometry(std::uint32_t features) {
  geometry = format::compute_geometry(options, features);
  segment_size = options.segment_size;
  segment_mask = segment_size - 1;
  segment_shift = static_cast<unsigned>(__builtin_ctzll(segment_size));
  ring_segments = options.ring_segments;
  max_frame = static_cast<std::uint32_t>(format::kRecordHeaderSize + options.max_record_size);
  claim_timeout = options.claim_timeout;
}

std::uint64_t LogState::earliest(std::uint32_t p) const noexcept {
  std::uint64_t oldest = UINT64_MAX;
  for (std::uint32_t i = 0; i < ring_segments; ++i) {
    // Pairs with the release publishing a prepared slot.
    std::uint64_t w = atomic(descriptor(p, i).state_word).load(std::memory_order_acquire);
    if (format::segment_state(w) == format::SegmentState::kReady) {
      oldest = std::min(oldest, format::segment_index(w));
    }
  }
  return oldest == UINT64_MAX ? tail(p) : oldest << segment_shift;
}

std::uint64_t LogState::ring_end(std::uint32_t p) const noexcept {
  std::uint64_t newest = 0;
  for (std::uint32_t i = 0; i < ring_segments; ++i) {
    const std::uint64_t index = format::segment_index(atomic(descriptor(p, i).state_word).load(std::memory_order_acquire));
    if (index % ring_segments == i) newest = std::max(newest, index + 1);
  }
  return newest << segment_shift;
}

std::uint64_t LogState::min_committed(std::uint32_t p, bool holds_only) const noexcept {
  std::uint64_t least = UINT64_MAX;
  for (std::uint32_t g = 0; g < options.max_groups; ++g) {
    // Pairs with the release that activates a group after its slots are set.
    if (atomic(group(g).state).load(std::memory_order_acquire) !=
        static_cast<std::uint32_t>(format::SlotState::kActive)) {
      continue;
    }
    // The committed offset first: an at-most-once member sets its hold
    // before it commits past the records its handler still reads.
    const auto& slot = offset_slot(p, g);
    if (!holds_only) least = std::min(least, atomic(slot.committed_offset).load(std::memory_order_seq_cst));
    const std::uint64_t hold = atomic(slot.hold).load(std::memory_order_seq_cst);
    if (hold != 0) least = std::min(least, hold - 1);
  }
  return least;
}

void LogState::wake_consumers() const noexcept {
  atomic(header->data_seq).fetch_add(1, std::memory_order_seq_cst);
  shm::futex_wake_all(&header->data_seq);
}

void LogState::wake_producers() const noexcept {
  atomic(header->space_seq).fetch_add(1, std::memory_order_seq_cst);
  shm::futex_wake_all(&header->space_seq);
}

std::uint64_t LogState::reuse_floor(std::uint32_t p) const noexcept {
  // Pairs with the keeper's release stores after its writes (syncs)
  // completed. A fsync log keeps unsynced bytes in the ring: after a failed
  // sync they are the known-good copy the keeper writes again.
  if (durable()) {
    const std::uint64_t on_disk = atomic(options.durability == Durability::kFsync ? partition(p).durable_position
                                                                                 : partition(p).written_position)
                                      .load(std::memory_order_acquire);
    return std::min(on_disk, min_committed(p, /*holds_only=*/true));
  }
  return options.policy == Policy::kBackpressure ? min_committed(p) : UINT64_MAX;
}

std::uint64_t LogState::retained_start(std::uint32_t p) const noexcept {
  const std::uint64_t ring = earliest(p);
  if (!durable()) return ring;
  return std::min(ring, atomic(partition(p).disk_start).load(std::memory_order_acquire));
}

}  // namespace detail

// ----------------------------------------------------------------------------

Result<Log> Log::create(const std::string& path, const LogOptions& requested) {
  const std::string context = "creating log " + path;
  LogOptions options = requested;
  if (options.durability != Durability::kNone) options.checksums = true;  // torn records must show
  Status valid = validate(options);
  if (!valid.ok()) return std::move(valid).with_context(context);
  const bool existed = io::is_directory(path);
  Status made = io::create_empty_directory(path, 0700 | (options.mode & 0070) | ((options.mode & 0060) ? 0010 : 0));
  if (!made.ok()) return std::move(made).with_context(context);
  // On failure, leave the directory as it was found.
  auto undo = [&](Status s) {
    (void)io::remove_file(join(path, kLockFile));
    if (!existed) (void)io::remove_directory(path);
    return std::move(s).with_context(context);
  };
  // A log that exists may be open (its lock held shared): say so at once.
  if (io::file_exists(join(path, kMetaFile))) {
    return Status(Status::Code::kAlreadyExists, context + ": a log already exists there");
  }
  auto lock = shm::FileLock::acquire(join(path, kLockFile), options.mode);
  if (!lock.ok()) return undo(std::move(lock).status());
  if (io::file_exists(join(path, kMetaFile))) {
    return Status(Status::Code::kAlreadyExists, context + ": a log already exists there");
  }
  auto dir = io::canonical_path(path);
  if (!dir.ok()) return undo(std::move(dir).status());
  Meta meta{options, random_nonzero(), random_nonzero(), ::geteuid()};
  meta.features = format::kFeaturesOfThisBinary;
  if (meta.options.memory_dir.empty()) {
    auto memory = shm::default_memory_dir(options.pages);
    if (!memory.ok()) return undo(std::move(memory).status());
    meta.options.memory_dir = *memory;
  }
  auto state = map_log(*dir, meta, /*create=*/true);
  if (!state.ok()) return undo(std::move(state).status());
  Status written = io::write_key_value_file(join(*dir, kMetaFile), kMetaHeader, to_meta(meta),
                                            options.mode & 0666);
  if (!written.ok()) {
    (void)shm::SharedMemory::unlink((*state)->memory_path);
    return undo(std::move(written));
  }
  lock = shm::FileLock();  // the exclusive lock goes; the handle's shared one comes
  auto in_use = shm::FileLock::acquire_shared(join(*dir, kLockFile), options.mode);
  if (!in_use.ok()) return std::move(in_use).status().with_context(context);
  (*state)->in_use = std::move(in_use).value();
  if ((*state)->durable()) (*state)->keeper = detail::Keeper::start(**state);
  return Log(std::move(state).value());
}

Result<Log> Log::open(const std::string& path, const OpenOptions& options) {
  // Maps tried before open gives up on memory that keeps going away.
  constexpr int kOpenAttempts = 3;
  const std::string context = "opening log " + path;
  auto found = locate(path);
  if (!found.ok()) return std::move(found).status().with_context(context);
  const std::string dir = found->first;
  Meta meta = found->second;
  const std::string lock_path = join(dir, kLockFile);
  Result<std::shared_ptr<LogState>> state = Status(Status::Code::kNotFound, "");
  // Gone (reboot, or removed), or an object that is not this log's at its
  // name (planted by another user): the memory is made anew.
  auto absent = [](const Status& s) {
    return s.code() == Status::Code::kNotFound || s.code() == Status::Code::kPermissionDenied;
  };
  for (int attempt = 0;; ++attempt) {
    state = map_log(dir, meta, /*create=*/false);
    if (!state.ok() && absent(state.status())) {
      // Made anew from the segment files if durable, under the exclusive
      // lock, which no one gets while a process still has the log open:
      // two incarnations of one log would append at the same offsets.
      // (Patient: other openers hold the lock shared for a moment.)
      auto lock = shm::FileLock::try_acquire(lock_path, meta.options.mode, std::chrono::seconds(1));
      if (!lock.ok() && lock.status().code() == Status::Code::kBusy) {
        // Held exclusively: another process makes the memory (or creates,
        // repairs or deletes the log): wait for it, then map what it made.
        // Held shared only: handles are open on memory removed under them.
        auto shared = shm::FileLock::try_acquire_shared(lock_path, meta.options.mode, std::chrono::milliseconds(0));
        const bool made_by_another = !shared.ok() && shared.status().code() == Status::Code::kBusy;
        if (made_by_another) {
          shared = shm::FileLock::try_acquire_shared(lock_path, meta.options.mode, options.maker_patience);
          if (!shared.ok() && shared.status().code() == Status::Code::kBusy) {
            return Status(Status::Code::kBusy, "another process has held the log's lock exclusively for " +
                                                   std::to_string(options.maker_patience.count()) +
                                                   " ms (making its memory from the segment files?)")
                .with_context(context);
          }
        }
        if (!shared.ok()) return std::move(shared).status().with_context(context);
        // Under the shared lock no one makes it: map what is there now (a
        // maker may have finished just before).
        auto fresh = read_meta(dir);
        if (!fresh.ok()) return std::move(fresh).status().with_context(context);
        meta = std::move(fresh).value();
        const bool made =
            made_by_another || map_log(dir, meta, /*create=*/false, /*read_only=*/false, /*locked=*/true).ok();
        if (made && attempt + 1 < kOpenAttempts) continue;
        return Status(Status::Code::kBusy,
                      "the shared memory " + memory_path_for(meta) + " cannot be used (" + state.status().message() +
                          ") and processes still have the log open: it was removed under them (systemd-logind's "
                          "RemoveIPC, or a cleaner of /dev/shm?): it is not made anew under them; stop them, then "
                          "open again")
            .with_context(context);
      }
      if (!lock.ok()) return std::move(lock).status().with_context(context);
      // Another opener may have made it meanwhile: its meta file says where.
      auto fresh = read_meta(dir);
      if (!fresh.ok()) return std::move(fresh).status().with_context(context);
      meta = std::move(fresh).value();
      state = map_log(dir, meta, /*create=*/false, /*read_only=*/false, /*locked=*/true);
      if (!state.ok() && absent(state.status())) state = make_memory_anew(dir, meta);
    }
    if (!state.ok()) return std::move(state).status().with_context(context);
    auto in_use = shm::FileLock::acquire_shared(lock_path, meta.options.mode);
    if (!in_use.ok()) return std::move(in_use).status().with_context(context);
    // Under the shared lock the object cannot be made anew: make sure the
    // one mapped is still the one there (else map again).
    if ((*state)->shm.still_at_path()) {
      (*state)->in_use = std::move(in_use).value();
      break;
    }
    if (attempt + 1 >= kOpenAttempts) {
      return Status(Status::Code::kBusy, "the shared memory " + (*state)->memory_path +
                                             " keeps being removed or replaced while it is opened")
          .with_context(context);
    }
  }
  detail::sweep(**state);
  if ((*state)->durable() && options.keeper) (*state)->keeper = detail::Keeper::start(**state);
  return Log(std::move(state).value());
}

Result<Log> Log::attach(const std::string& path) {
  const std::string context = "attaching to log " + path;
  auto found = locate(path);
  if (!found.ok()) return std::move(found).status().with_context(context);
  auto state = map_log(found->first, found->second, /*create=*/false, /*read_only=*/true);
  if (!state.ok() && state.status().code() == Status::Code::kNotFound) {
    // Not waited for (a watcher tries again): held exclusively, the lock
    // says another process is making the memory.
    auto probe = shm::FileLock::try_acquire_shared(join(found->first, kLockFile), found->second.options.mode,
                                                   std::chrono::milliseconds(0));
    if (!probe.ok() && probe.status().code() == Status::Code::kBusy) {
      return Status(Status::Code::kBusy, "another process is making its shared memory (from its segment files?); "
                                         "try again")
          .with_context(context);
    }
  }
  if (!state.ok()) return std::move(state).status().with_context(context);
  return Log(std::move(state).value());
}

Result<Log> Log::create_in_memory(const LogOptions& options) {
  Status valid = options.durability != Durability::kNone
                     ? Status(Status::Code::kInvalidArgument, "an in-memory log cannot be durable (it has no directory)")
                     : validate(options);
  if (!valid.ok()) return std::move(valid).with_context("creating in-memory log");
  auto s = std::make_shared<LogState>();
  s->path = "(memory)";
  s->options = options;
  // Without a directory: no durability, no memory name.
  s->init_geometry(format::kFeaturesOfThisBinary);
  // aligned_alloc wants a whole number of alignments.
  const std::size_t pages = (s->geometry.total_size + format::kPage - 1) / format::kPage * format::kPage;
  auto* memory = static_cast<std::byte*>(std::aligned_alloc(format::kPage, pages));
  if (memory == nullptr) {
    return Status(Status::Code::kNoSpace, "creating in-memory log: cannot allocate " +
                                              std::to_string(s->geometry.total_size) + " bytes");
  }
  std::memset(memory, 0, s->geometry.total_size);
  s->heap.reset(memory);
  s->base = memory;
  s->header = reinterpret_cast<format::LogHeader*>(s->base);
  s->owner = ::geteuid();
  format_memory(*s, random_nonzero(), 0, format::kFeaturesOfThisBinary);
  publish(*s);
  return Log(std::move(s));
}

Status Log::remove(const std::string& path) {
  const std::string context = "deleting log " + path;
  auto found = locate(path);
  if (!found.ok()) return std::move(found).status().with_context(context);
  const auto& [dir, meta] = *found;
  {
    // Processes that still have the log open hold the lock shared: the log
    // is deleted under them (they keep their mapping; with the meta file
    // gone nothing can make its memory anew), without the exclusive lock.
    auto lock = shm::FileLock::try_acquire(join(dir, kLockFile), meta.options.mode, std::chrono::milliseconds(100));
    if (!lock.ok() && lock.status().code() != Status::Code::kBusy) return std::move(lock).status().with_context(context);
    SHMLOG_RETURN_IF_ERROR(shm::SharedMemory::unlink(memory_path_for(meta)));
    // Durable logs: segment files, their directories and the checkpoint.
    for (std::uint32_t p = 0; p < meta.options.partitions; ++p) {
      const std::string part_dir = io::partition_directory(dir, p);
      if (!io::is_directory(part_dir)) continue;
      auto names = io::list_directory(part_dir);
      if (!names.ok()) return std::move(names).status().with_context(context);
      for (const auto& name : *names) {
        if (io::parse_segment_file_name(name) || name.ends_with(".seg.tmp")) {
          SHMLOG_RETURN_IF_ERROR(io::remove_file(part_dir + "/" + name));
        }
      }
      SHMLOG_RETURN_IF_ERROR(io::remove_directory(part_dir));
    }
    if (io::file_exists(join(dir, "shmlog.state"))) SHMLOG_RETURN_IF_ERROR(io::remove_file(join(dir, "shmlog.state")));
    SHMLOG_RETURN_IF_ERROR(io::remove_file(join(dir, kMetaFile)));
    SHMLOG_RETURN_IF_ERROR(io::remove_file(join(dir, kLockFile)));
  }
  Status removed = io::remove_directory(dir);
  if (!removed.ok()) return std::move(removed).with_context(context + " (other files remain in it)");
  return {};
}

shm::PageReport Log::memory_report() const { return shm::report_pages(state_->base, state_->geometry.total_size); }

const LogOptions& Log::options() const noexcept { return state_->options; }
const std::string& Log::path() const noexcept { return state_->path; }
std::uint64_t Log::id() const noexcept { return state_->header->log_id; }
void Log::sweep() const { detail::sweep(*state_); }
Status Log::keep(const std::atomic<bool>& stop) const { return detail::keep(*state_, stop); }

}  // namespace shmlog
