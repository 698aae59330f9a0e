#include "shmlog/file_sink.h"

#include <cerrno>
#include <cstring>
#include <utility>

#include "durability.h"
#include "shmlog/io/crc32c.h"
#include "shmlog/io/files.h"
#include "shmlog/io/file_layer.h"
#include "sink_journal.h"
#include "shmlog/shm/process.h"
#include "test_hooks.h"

namespace shmlog {
namespace {

constexpr std::uint32_t kMagic = 0x4B43534C;  // "LSCK"
constexpr std::uint16_t kVersion = 1;
constexpr std::size_t kFixed = 32;                    // magic .. reserved, before the offsets
constexpr std::uint64_t kCompactAt = 1u << 20;         // journal bytes before it is rewritten

std::size_t entry_size(std::uint32_t partitions) { return kFixed + 8u * partitions + 4; }

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
template <class T>
T get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

namespace detail {

std::string encode_journal_entry(std::uint64_t log_id, std::uint64_t length, const std::vector<std::uint64_t>& offsets) {
  std::string e;
  put(e, kMagic);
  put(e, kVersion);
  put(e, std::uint16_t{0});
  put(e, log_id);
  put(e, length);
  put(e, static_cast<std::uint32_t>(offsets.size()));
  put(e, std::uint32_t{0});
  for (auto o : offsets) put(e, o);
  put(e, crc32c::mask(crc32c::value(e.data(), e.size())));
  return e;
}

}  // namespace detail

namespace {

// Writes `n` bytes at `at` and, when `synced`, fdatasyncs the file: with
// plain calls, or through the file layer tests put in their place (a
// fault-injecting one simulates what a host crash keeps).
Status put(io::FileLayer* layer, int fd, const char* data, std::size_t n, std::uint64_t at, const std::string& path,
           bool synced) {
  if (layer == nullptr || n > UINT32_MAX) {
    SHMLOG_RETURN_IF_ERROR(io::pwrite_all(fd, data, n, at, path));
    return synced ? io::data_sync(fd, path) : Status();
  }
  io::IoOp ops[2];
  ops[0].kind = io::IoOp::Kind::kWrite;
  ops[0].fd = fd;
  ops[0].data = data;
  ops[0].size = static_cast<std::uint32_t>(n);
  ops[0].offset = at;
  ops[0].link = synced;
  ops[1].kind = io::IoOp::Kind::kDataSync;
  ops[1].fd = fd;
  SHMLOG_RETURN_IF_ERROR(layer->run(std::span(ops, synced ? 2 : 1), /*inline_run=*/true));
  if (ops[0].result != static_cast<int>(n)) {
    return Status::from_errno("writing " + path, ops[0].result < 0 ? -ops[0].result : EIO);
  }
  if (synced && ops[1].result != 0) return Status::from_errno("syncing " + path, -ops[1].result);
  return {};
}

// The journal's entry at `e` (`n` bytes: `partitions` offsets), if whole:
// magic, version, partition count and CRC good.
bool good_entry(const char* e, std::size_t n, std::uint32_t partitions) {
  return get<std::uint32_t>(e) == kMagic && get<std::uint16_t>(e + 4) == kVersion &&
         get<std::uint32_t>(e + 24) == partitions && crc32c::unmask(get<std::uint32_t>(e + n - 4)) == crc32c::value(e, n - 4);
}

}  // namespace

Result<detail::JournalState> detail::decode_journal(std::string_view text, std::uint32_t partitions,
                                                    std::uint64_t log_id, const std::string& name) {
  if (text.size() > kMaxJournalBytes) {
    return Status(Status::Code::kCorrupt, name + " is " + std::to_string(text.size()) +
                                              " bytes: too large to be an exactly-once journal");
  }
  JournalState out;
  out.offsets.assign(partitions, UINT64_MAX);
  // Entries are all of one size: whole entries of another partition count
  // are a journal of another log's shape.
  if (text.size() >= kFixed) {
    const auto theirs = get<std::uint32_t>(text.data() + 24);
    if (theirs != partitions && theirs <= 65536 && entry_size(theirs) <= text.size() &&
        good_entry(text.data(), entry_size(theirs), theirs)) {
      return Status(Status::Code::kCorrupt, name + " has offsets of " + std::to_string(theirs) +
                                                " partitions, the log has " + std::to_string(partitions));
    }
  }
  const std::size_t n = entry_size(partitions);
  for (std::size_t at = 0; at + n <= text.size(); at += n) {
    const char* e = text.data() + at;
    if (!good_entry(e, n, partitions)) continue;
    if (get<std::uint64_t>(e + 8) != log_id) {
      return Status(Status::Code::kInvalidArgument, name + " belongs to another log");
    }
    out.length = get<std::uint64_t>(e + 16);
    for (std::uint32_t p = 0; p < partitions; ++p) out.offsets[p] = get<std::uint64_t>(e + kFixed + 8u * p);
    out.end = at + n;
  }
  return out;
}

namespace {

// Opens and locks the journal, making sure the lock is on the file that
// has the name: compaction renames a new journal over it, and an opener
// that opened the old one would otherwise get the old one's lock.
Result<int> open_locked_journal(const std::string& journal, const std::string& path, std::uint32_t mode) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto fd = io::open_read_write(journal, mode);
    if (!fd.ok()) return fd;
    // One writer per file: a second one would cut output the first has not
    // checkpointed yet.
    auto locked = io::try_lock_file(*fd, journal);
    if (!locked.ok() || !*locked) {
      io::close_file(*fd);
      if (!locked.ok()) return std::move(locked).status();
      return Status(Status::Code::kBusy, path + " is being written by another exactly-once consumer");
    }
    if (io::names_same_file(*fd, journal)) return fd;
    io::close_file(*fd);  // replaced meanwhile: lock the one that has the name
  }
  return Status(Status::Code::kBusy, journal + " keeps being replaced: another exactly-once consumer compacts it");
}

}  // namespace

Result<FileSink> FileSink::open(const std::string& path, const Log& log, Survives survives) {
  const std::string journal = path + ".offsets";
  const std::uint32_t log_partitions = log.options().partitions;
  FileSink sink;
  sink.path_ = path;
  sink.log_id_ = log.id();
  sink.survives_ = survives;
  sink.layer_ = detail::file_layer_for_testing();
  sink.mode_ = log.options().mode & 0666;  // the log's records: no more readers than the log has
  sink.offsets_.assign(log_partitions, UINT64_MAX);
  const bool had_journal = io::file_exists(journal);
  auto data_fd = io::open_read_write(path, sink.mode_);
  if (!data_fd.ok()) return std::move(data_fd).status();
  sink.data_fd_ = *data_fd;
  auto data_size = io::file_size(sink.data_fd_, path);
  if (!data_size.ok()) return std::move(data_size).status();
  const std::uint64_t size = *data_size;
  if (!had_journal && size > 0) {
    return Status(Status::Code::kInvalidArgument,
                  path + " holds data but has no " + journal +
                      ": it was not written by an exactly-once consumer (move it away, or start from an empty file)");
  }
  auto locked = open_locked_journal(journal, path, sink.mode_);
  if (!locked.ok()) return std::move(locked).status();
  sink.journal_fd_ = *locked;
  auto text = io::read_whole_file(sink.journal_fd_, journal, detail::kMaxJournalBytes);  // the decoder refuses more
  if (!text.ok()) return std::move(text).status();
  auto decoded = detail::decode_journal(*text, log_partitions, sink.log_id_, journal);
  if (!decoded.ok()) return std::move(decoded).status();
  const std::size_t newest_end = decoded->end;
  sink.length_ = decoded->length;
  sink.offsets_ = std::move(decoded->offsets);
  if (newest_end == 0 && !text->empty() && size > 0) {
    return Status(Status::Code::kCorrupt,
                  journal + " holds no readable checkpoint (" + std::to_string(text->size()) + " bytes, damaged) but " +
                      path + " holds " + std::to_string(size) +
                      " bytes of output: where to resume cannot be told, so nothing is cut (restore the journal, or "
                      "move both files away to start over)");
  }
  sink.journal_length_ = newest_end;
  if (newest_end < text->size()) {
    SHMLOG_RETURN_IF_ERROR(io::truncate_file(sink.journal_fd_, newest_end, "cutting the torn end of " + journal));
  }
  if (size < sink.length_) {
    return Status(Status::Code::kCorrupt, path + " is " + std::to_string(size) + " bytes, shorter than the " +
                                              std::to_string(sink.length_) + " its last checkpoint in " + journal +
                                              " names: it was changed outside shmlog");
  }
  sink.truncated_ = size - sink.length_;
  if (sink.truncated_ > 0) {
    SHMLOG_RETURN_IF_ERROR(io::truncate_file(sink.data_fd_, sink.length_, "cutting " + path + " back to its last checkpoint"));
  }
  return sink;
}

FileSink::FileSink(FileSink&& other) noexcept { *this = std::move(other); }

FileSink& FileSink::operator=(FileSink&& other) noexcept {
  if (this != &other) {
    reset();
    path_ = std::move(other.path_);
    data_fd_ = std::exchange(other.data_fd_, -1);
    journal_fd_ = std::exchange(other.journal_fd_, -1);
    log_id_ = other.log_id_;
    length_ = other.length_;
    journal_length_ = other.journal_length_;
    truncated_ = other.truncated_;
    offsets_ = std::move(other.offsets_);
    survives_ = other.survives_;
    mode_ = other.mode_;
    layer_ = std::move(other.layer_);
    buffer_ = std::move(other.buffer_);
    dirty_ = other.dirty_;
  }
  return *this;
}

FileSink::~FileSink() { reset(); }

void FileSink::reset() noexcept {
  io::close_file(data_fd_);
  io::close_file(journal_fd_);
  data_fd_ = journal_fd_ = -1;
}

std::optional<std::uint64_t> FileSink::offset(std::uint32_t partition) const {
  if (partition >= offsets_.size() || offsets_[partition] == UINT64_MAX) return std::nullopt;
  return offsets_[partition];
}

void FileSink::write(std::string_view bytes) {
  buffer_.append(bytes);
  dirty_ = true;
}

void FileSink::advance(std::uint32_t partition, std::uint64_t next_offset) {
  if (partition < offsets_.size()) offsets_[partition] = next_offset;
  dirty_ = true;
}

Status FileSink::checkpoint() {
  if (!dirty_) return {};
  const bool syncs = survives_ == Survives::kHostCrash;
  // The data first, on disk before the entry that names it: a checkpoint
  // never names bytes that are not in FILE, even after a host crash.
  SHMLOG_RETURN_IF_ERROR(put(layer_.get(), data_fd_, buffer_.data(), buffer_.size(), length_, path_, syncs));
  length_ += buffer_.size();
  buffer_.clear();
  if constexpr (detail::hooks::kEnabled) {
    if (detail::hooks::die_between_output_and_checkpoint) shm::kill_self();
  }
  const std::string journal = path_ + ".offsets";
  const std::string entry = detail::encode_journal_entry(log_id_, length_, offsets_);
  if (journal_length_ + entry.size() > kCompactAt) {
    // Rewrite the journal as its last entry (rename is atomic). A leftover
    // temporary file (or anything planted there) goes first: created
    // exclusively, never followed.
    const std::string tmp = journal + ".tmp";
    (void)io::remove_file(tmp);
    auto fd = io::open_read_write(tmp, mode_, /*exclusive=*/true);
    if (!fd.ok()) return std::move(fd).status();
    Status s = io::pwrite_all(*fd, entry.data(), entry.size(), 0, tmp);
    if (s.ok() && syncs) s = io::data_sync(*fd, tmp);
    // The writer's lock moves to the new journal before it takes the name.
    if (s.ok()) {
      auto locked = io::try_lock_file(*fd, tmp);
      if (!locked.ok()) s = std::move(locked).status();
      else if (!*locked) s = Status(Status::Code::kBusy, "locking " + tmp + ": another process holds its lock");
    }
    if (s.ok()) s = io::rename_file(tmp, journal);
    if (!s.ok()) {
      io::close_file(*fd);
      (void)io::remove_file(tmp);
      return s;
    }
    io::close_file(journal_fd_);
    journal_fd_ = *fd;
    journal_length_ = entry.size();
  } else {
    SHMLOG_RETURN_IF_ERROR(put(layer_.get(), journal_fd_, entry.data(), entry.size(), journal_length_, journal, syncs));
    journal_length_ += entry.size();
  }
  dirty_ = false;
  return {};
}

}  // namespace shmlog
