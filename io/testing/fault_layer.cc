#include "fault_layer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

namespace shmlog::io {
namespace {

constexpr std::uint64_t kSector = 512;

struct FileId {
  std::uint64_t dev = 0, ino = 0;
  std::string path;
};

FileId identify(int fd) {
  FileId id;
  struct stat st {};
  if (::fstat(fd, &st) == 0) {
    id.dev = st.st_dev;
    id.ino = st.st_ino;
  }
  char buf[PATH_MAX];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  if (n > 0) id.path.assign(buf, static_cast<std::size_t>(n));
  return id;
}

// pread that leaves zeros where the file ends.
void read_at(int fd, std::uint64_t offset, std::vector<std::byte>& out) {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
}

void write_at(int fd, std::uint64_t offset, const std::byte* data, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
}

bool counts_down(std::uint64_t& at) {
  if (at == 0) return false;
  return --at == 0;
}

}  // namespace

void FaultLayer::fail_write(std::uint64_t nth, int err) {
  std::lock_guard lock(mu_);
  write_fault_at_ = nth;
  write_err_ = err;
}

void FaultLayer::short_write(std::uint64_t nth) {
  std::lock_guard lock(mu_);
  short_write_at_ = nth;
}

void FaultLayer::fail_sync(std::uint64_t nth, int err) {
  std::lock_guard lock(mu_);
  sync_fault_at_ = nth;
  sync_err_ = err;
}

void FaultLayer::fail_directory_sync(std::uint64_t nth, int err, bool sticky) {
  std::lock_guard lock(mu_);
  dir_sync_fault_at_ = nth;
  dir_sync_err_ = err;
  dir_sync_sticky_ = sticky;
  dir_sync_failing_ = false;
}

FaultLayer::Counts FaultLayer::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
}

void FaultLayer::write(IoOp& op) {
  ++counts_.writes;
  const bool fail = counts_down(write_fault_at_);
  const bool half = counts_down(short_write_at_);
  if (fail) {
    ++counts_.faults;
    op.result = -write_err_;
    return;
  }
  std::size_t size = op.size;
  if (half && size > 1) {
    ++counts_.faults;
    size /= 2;
  }
  const FileId id = identify(op.fd);
  Pending p{id.dev, id.ino, id.path, op.offset, std::vector<std::byte>(size), {}, false};
  read_at(op.fd, op.offset, p.before);
  const auto* data = static_cast<const std::byte*>(op.data);
  p.after.assign(data, data + size);
  const ssize_t n = ::pwrite(op.fd, data, size, static_cast<off_t>(op.offset));
  op.result = n < 0 ? -errno : static_cast<int>(n);
  if (n > 0) {
    p.after.resize(static_cast<std::size_t>(n));
    p.before.resize(static_cast<std::size_t>(n));
    pending_.push_back(std::move(p));
  }
}

void FaultLayer::sync(IoOp& op) {
  if (counts_down(crash_at_sync_)) {
    crash_locked(Crash::kRandom);
    op.result = -EIO;
    return;
  }
  ++counts_.syncs;
  const FileId id = identify(op.fd);
  const auto same_file = [&](const Pending& p) { return p.dev == id.dev && p.ino == id.ino; };
  if (counts_down(sync_fault_at_)) {
    ++counts_.faults;
    // Linux marks the pages clean after a writeback error: those writes
    // may never reach the disk, whatever later syncs say.
    for (Pending& p : pending_) {
      if (same_file(p)) p.lost = true;
    }
    op.result = -sync_err_;
    return;
  }
  const int rc = ::fdatasync(op.fd);
  op.result = rc < 0 ? -errno : 0;
  if (rc != 0) return;
  // The file's unsynced writes are on disk now, and so are the bytes they
  // wrote over lost writes (a rewrite after a failed sync): those parts of
  // the lost writes are no longer at risk.
  std::vector<Pending> kept;
  for (Pending& p : pending_) {
    if (!same_file(p)) {
      kept.push_back(std::move(p));
      continue;
    }
    if (!p.lost) {
      for (Pending& older : kept) {
        if (!older.lost || older.dev != p.dev || older.ino != p.ino) continue;
        const std::uint64_t from = std::max(older.offset, p.offset);
        const std::uint64_t to = std::min(older.offset + older.after.size(), p.offset + p.after.size());
        if (from >= to) continue;
        // Keep the larger uncovered piece (writes here are whole records:
        // a rewrite covers a lost write from its start or to its end).
        const std::uint64_t left = from - older.offset, right = older.offset + older.after.size() - to;
        const std::uint64_t keep_from = left >= right ? 0 : to - older.offset;
        const std::uint64_t keep_size = std::max(left, right);
        older.before = std::vector<std::byte>(older.before.begin() + static_cast<std::ptrdiff_t>(keep_from),
                                              older.before.begin() + static_cast<std::ptrdiff_t>(keep_from + keep_size));
        older.after = std::vector<std::byte>(older.after.begin() + static_cast<std::ptrdiff_t>(keep_from),
                                             older.after.begin() + static_cast<std::ptrdiff_t>(keep_from + keep_size));
        older.offset += keep_from;
      }
      continue;  // synced
    }
    kept.push_back(std::move(p));
  }
  std::erase_if(kept, [](const Pending& p) { return p.after.empty(); });
  pending_ = std::move(kept);
  std::erase_if(made_, [&](const Made& m) { return m.dev == id.dev && m.ino == id.ino; });
}

Status FaultLayer::run(std::span<IoOp> ops, bool /*inline_run*/) {
  std::lock_guard lock(mu_);
  bool cancel = false;  // the previous op was linked and failed
  for (IoOp& op : ops) {
    if (cancel) {
      op.result = -ECANCELED;
    } else if (crashed_) {
      op.result = -EIO;
    } else if (op.kind == IoOp::Kind::kWrite) {
      write(op);
    } else {
      sync(op);
    }
    const bool failed = op.result < 0 || (op.kind == IoOp::Kind::kWrite && op.result != static_cast<int>(op.size));
    cancel = op.link && failed;
  }
  return {};
}

Status FaultLayer::sync_directory(const std::string& dir) {
  std::lock_guard lock(mu_);
  if (crashed_) return Status::from_errno("syncing directory " + dir + " (host crashed)", EIO);
  if (counts_down(dir_sync_fault_at_)) dir_sync_failing_ = true;
  if (dir_sync_failing_) {
    dir_sync_failing_ = dir_sync_sticky_;
    ++counts_.faults;
    return Status::from_errno("syncing directory " + dir + " (injected)", dir_sync_err_);
  }
  Status synced = io::sync_directory(dir);
  if (synced.ok()) {
    for (const Removed& r : removed_[dir]) {
      ::unlink(r.kept_as.c_str());
      removed_for_good_.push_back(r.path);
    }
    removed_.erase(dir);
    auto names = list_directory(dir);
    if (names.ok()) synced_entries_[dir] = std::set<std::string>(names->begin(), names->end());
  }
  return synced;
}

Status FaultLayer::replace_file(const std::string& path, const std::string& header, const KeyValues& values,
                                std::uint32_t mode) {
  std::lock_guard lock(mu_);
  if (crashed_) return Status::from_errno("replacing " + path + " (host crashed)", EIO);
  return write_key_value_file(path, header, values, mode);
}

Result<SegmentFile> FaultLayer::create_segment_file(const std::string& partition_dir, const SegmentFileHeader& header,
                                                    std::uint32_t mode) {
  std::lock_guard lock(mu_);
  if (crashed_) return Status::from_errno("creating a segment file in " + partition_dir + " (host crashed)", EIO);
  auto file = SegmentFile::create(partition_dir, header, mode, /*sync_directory=*/false);
  if (!file.ok()) return file;
  // The header is written but not synced (the file's first fdatasync
  // covers it): a crash may drop or tear it like any other write.
  const FileId id = identify(file->fd());
  Pending p{id.dev, id.ino, id.path, 0, std::vector<std::byte>(kSegmentHeaderFields),
            std::vector<std::byte>(kSegmentHeaderFields), false};
  read_at(file->fd(), 0, p.after);
  pending_.push_back(std::move(p));
  made_.push_back({id.dev, id.ino, id.path});
  return file;
}

Status FaultLayer::remove_file(const std::string& path) {
  std::lock_guard lock(mu_);
  if (crashed_) return Status::from_errno("removing " + path + " (host crashed)", EIO);
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  // Not a segment file name: readers and recovery never see it.
  const std::string kept_as = dir + "/.removed-" + std::to_string(++removals_) + "-" + path.substr(slash + 1);
  const bool kept = ::link(path.c_str(), kept_as.c_str()) == 0;
  Status removed = io::remove_file(path);
  if (!removed.ok()) {
    if (kept) ::unlink(kept_as.c_str());
    return removed;
  }
  if (kept) removed_[dir].push_back({path, kept_as});
  return removed;
}

void FaultLayer::crash_before_sync(std::uint64_t nth) {
  std::lock_guard lock(mu_);
  crash_at_sync_ = nth;
}

std::vector<std::string> FaultLayer::removed_files() const {
  std::lock_guard lock(mu_);
  return removed_for_good_;
}

bool FaultLayer::crashed() const {
  std::lock_guard lock(mu_);
  return crashed_;
}

FaultLayer::CrashReport FaultLayer::crash_report() const {
  std::lock_guard lock(mu_);
  return report_;
}

FaultLayer::CrashReport FaultLayer::crash(Crash how) {
  std::lock_guard lock(mu_);
  crash_locked(how);
  return report_;
}

void FaultLayer::crash_locked(Crash how) {
  if (crashed_) return;
  crashed_ = true;
  CrashReport& report = report_;
  // The disk holds, per sector, the newest write that reached it, else what
  // was there before the first unsynced write: put every range back as it
  // was (newest first), then replay the surviving sectors (oldest first).
  enum class Fate { kKept, kDropped, kTorn };
  std::vector<std::vector<bool>> survives;  // per write, per sector of its range
  for (const Pending& p : pending_) {
    const auto pick = how == Crash::kKeepAll ? 0 : how == Crash::kDropAll ? 1 : static_cast<int>(rng_() % 3);
    const Fate fate = pick == 0 ? Fate::kKept : pick == 1 ? Fate::kDropped : Fate::kTorn;
    const std::uint64_t first = p.offset / kSector, last = (p.offset + p.after.size() - 1) / kSector;
    std::vector<bool> sectors(last - first + 1, fate == Fate::kKept);
    if (fate == Fate::kTorn) {
      for (std::size_t i = 0; i < sectors.size(); ++i) sectors[i] = (rng_() & 1) != 0;
    }
    survives.push_back(std::move(sectors));
    ++(fate == Fate::kKept ? report.kept : fate == Fate::kDropped ? report.dropped : report.torn);
  }
  auto open = [](const std::string& path) { return ::open(path.c_str(), O_WRONLY | O_CLOEXEC); };
  for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) {
    const int fd = open(it->path);
    if (fd < 0) continue;  // the file is gone: nothing of it survives anyway
    write_at(fd, it->offset, it->before.data(), it->before.size());
    ::close(fd);
  }
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    const Pending& p = pending_[i];
    const int fd = open(p.path);
    if (fd < 0) continue;
    const std::uint64_t first = p.offset / kSector;
    for (std::size_t s = 0; s < survives[i].size(); ++s) {
      if (!survives[i][s]) continue;
      const std::uint64_t from = std::max(p.offset, (first + s) * kSector);
      const std::uint64_t to = std::min(p.offset + p.after.size(), (first + s + 1) * kSector);
      write_at(fd, from, p.after.data() + (from - p.offset), to - from);
    }
    ::close(fd);
  }
  pending_.clear();
  // A new file whose size no sync covered: it keeps its size, or is left
  // empty or a header page long (what was written past it is gone).
  for (const Made& m : made_) {
    struct stat st {};
    if (::stat(m.path.c_str(), &st) != 0 || st.st_dev != m.dev || st.st_ino != m.ino) continue;
    const auto pick = how == Crash::kKeepAll ? 0 : how == Crash::kDropAll ? 1 : rng_() % 3;
    if (pick == 0) continue;
    if (::truncate(m.path.c_str(), pick == 1 ? 0 : static_cast<off_t>(kSegmentHeaderSize)) == 0) ++report.sizes_lost;
  }
  made_.clear();
  // Removals since their directory's last sync: the latest ones, from a
  // point chosen at random, are undone (the file comes back whole).
  for (auto& [dir, removals] : removed_) {
    const std::size_t undone_from =
        how == Crash::kKeepAll ? removals.size() : how == Crash::kDropAll ? 0 : rng_() % (removals.size() + 1);
    for (std::size_t i = 0; i < removals.size(); ++i) {
      const Removed& r = removals[i];
      if (i < undone_from) {
        removed_for_good_.push_back(r.path);
      } else if (::link(r.kept_as.c_str(), r.path.c_str()) == 0) {
        ++report.removals_undone;
      }
      ::unlink(r.kept_as.c_str());
    }
  }
  removed_.clear();
  // A name created since its directory's last sync may not have reached
  // the disk: it goes (the worst case).
  for (const auto& [dir, names] : synced_entries_) {
    auto now = list_directory(dir);
    if (!now.ok()) continue;
    for (const std::string& name : *now) {
      if (names.count(name) != 0) continue;
      if (::unlink((dir + "/" + name).c_str()) == 0) ++report.entries_lost;
    }
  }
  synced_entries_.clear();
}

}  // namespace shmlog::io
