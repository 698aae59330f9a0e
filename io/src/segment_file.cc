#include "shmlog/io/segment_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "shmlog/io/crc32c.h"
#include "shmlog/io/files.h"

namespace shmlog::io {
namespace {

// Field offsets in the header page (little-endian, as the host).
constexpr std::size_t kMagicAt = 0;
constexpr std::size_t kMajorAt = 8;
constexpr std::size_t kMinorAt = 10;
constexpr std::size_t kPartitionAt = 12;
constexpr std::size_t kBaseAt = 16;
constexpr std::size_t kSizeAt = 24;
constexpr std::size_t kLogIdAt = 32;
constexpr std::size_t kCreatedAt = 40;
constexpr std::size_t kCrcAt = 48;  // masked CRC32C of bytes [0, 48)
// Since 1.1 (1.0 readers ignore them; 1.0 files have zeros):
constexpr std::size_t kIncarnationAt = 52;
constexpr std::size_t kCrc2At = 60;  // masked CRC32C of bytes [48, 60)

template <class T>
void put(std::span<std::byte> out, std::size_t at, T v) noexcept {
  std::memcpy(out.data() + at, &v, sizeof v);
}
template <class T>
T get(std::span<const std::byte> in, std::size_t at) noexcept {
  T v;
  std::memcpy(&v, in.data() + at, sizeof v);
  return v;
}


}  // namespace

void encode_segment_header(const SegmentFileHeader& h, std::span<std::byte, kSegmentHeaderFields> out) noexcept {
  std::memset(out.data(), 0, out.size());
  put(out, kMagicAt, kSegmentMagic);
  put(out, kMajorAt, kSegmentVersionMajor);
  put(out, kMinorAt, kSegmentVersionMinor);
  put(out, kPartitionAt, h.partition);
  put(out, kBaseAt, h.base_offset);
  put(out, kSizeAt, h.segment_size);
  put(out, kLogIdAt, h.log_id);
  put(out, kCreatedAt, h.created_ns);
  put(out, kCrcAt, crc32c::mask(crc32c::value(out.data(), kCrcAt)));
  put(out, kIncarnationAt, h.incarnation);
  put(out, kCrc2At, crc32c::mask(crc32c::value(out.data() + kCrcAt, kCrc2At - kCrcAt)));
}

Result<SegmentFileHeader> decode_segment_header(std::span<const std::byte> in) {
  if (in.size() < kSegmentHeaderFields) {
    return Status(Status::Code::kCorrupt, "segment header cut short (" + std::to_string(in.size()) + " bytes)");
  }
  if (get<std::uint64_t>(in, kMagicAt) != kSegmentMagic) {
    return Status(Status::Code::kCorrupt, "not a shmlog segment file (bad magic)");
  }
  const auto major = get<std::uint16_t>(in, kMajorAt);
  if (major != kSegmentVersionMajor) {
    return Status(Status::Code::kVersionMismatch,
                  "segment format version " + std::to_string(major) + "." +
                      std::to_string(get<std::uint16_t>(in, kMinorAt)) + ", this shmlog reads " +
                      std::to_string(kSegmentVersionMajor) + "." + std::to_string(kSegmentVersionMinor));
  }
  if (crc32c::unmask(get<std::uint32_t>(in, kCrcAt)) != crc32c::value(in.data(), kCrcAt)) {
    return Status(Status::Code::kCorrupt, "segment header checksum mismatch");
  }
  SegmentFileHeader h;
  h.partition = get<std::uint32_t>(in, kPartitionAt);
  h.base_offset = get<std::uint64_t>(in, kBaseAt);
  h.segment_size = get<std::uint64_t>(in, kSizeAt);
  h.log_id = get<std::uint64_t>(in, kLogIdAt);
  h.created_ns = get<std::uint64_t>(in, kCreatedAt);
  if (get<std::uint16_t>(in, kMinorAt) >= 1) {
    if (crc32c::unmask(get<std::uint32_t>(in, kCrc2At)) != crc32c::value(in.data() + kCrcAt, kCrc2At - kCrcAt)) {
      return Status(Status::Code::kCorrupt, "segment header checksum mismatch (incarnation)");
    }
    h.incarnation = get<std::uint64_t>(in, kIncarnationAt);
  }
  if (h.segment_size < 4096 || (h.segment_size & (h.segment_size - 1)) != 0 || h.segment_size > kMaxSegmentSize) {
    return Status(Status::Code::kCorrupt, "segment header: bad segment size " + std::to_string(h.segment_size) +
                                              " (a power of two from 4096 to " + std::to_string(kMaxSegmentSize) + ")");
  }
  if ((h.base_offset & (h.segment_size - 1)) != 0) {
    return Status(Status::Code::kCorrupt, "segment header: base offset " + std::to_string(h.base_offset) +
                                              " is not on a segment boundary");
  }
  return h;
}

std::string partition_directory(const std::string& log_dir, std::uint32_t partition) {
  return log_dir + "/partition-" + std::to_string(partition);
}

std::string segment_file_name(std::uint64_t base_offset) {
  char name[32];
  std::snprintf(name, sizeof name, "%020" PRIu64 ".seg", base_offset);
  return name;
}

std::optional<std::uint64_t> parse_segment_file_name(std::string_view name) {
  if (name.size() != 24 || name.substr(20) != ".seg") return std::nullopt;
  std::uint64_t v = 0;
  for (char c : name.substr(0, 20)) {
    if (c < '0' || c > '9') return std::nullopt;
    const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

Result<std::vector<std::uint64_t>> list_segment_files(const std::string& partition_dir) {
  std::vector<std::uint64_t> bases;
  if (!is_directory(partition_dir)) return bases;
  auto names = list_directory(partition_dir);
  if (!names.ok()) return std::move(names).status();
  for (const auto& n : *names) {
    if (auto base = parse_segment_file_name(n)) bases.push_back(*base);
  }
  std::sort(bases.begin(), bases.end());
  return bases;
}

Result<SegmentFile> SegmentFile::create(const std::string& partition_dir, const SegmentFileHeader& header,
                                        std::uint32_t mode, bool sync_dir) {
  // The log's mode exactly (not narrowed by the umask): group members'
  // keepers write here too.
  const std::uint32_t dir_mode = 0700 | (mode & 0070) | ((mode & 0060) ? 0010 : 0);
  if (::mkdir(partition_dir.c_str(), dir_mode) == 0) {
    if (::chmod(partition_dir.c_str(), dir_mode) != 0) return Status::from_errno("setting the mode of " + partition_dir, errno);
  } else if (errno != EEXIST) {
    return Status::from_errno("creating " + partition_dir, errno);
  }
  const std::string path = partition_dir + "/" + segment_file_name(header.base_offset);
  const std::string tmp = path + ".tmp";
  // A new file, never one found at the name (a symlink planted in a
  // group-writable directory); a temporary file left by a crash goes first.
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0 && errno == EEXIST && ::unlink(tmp.c_str()) == 0) {
    fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  }
  if (fd < 0) return Status::from_errno("creating " + tmp, errno);
  if (::fchmod(fd, mode & 0777) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Status::from_errno("setting the mode of " + tmp, err);
  }
  auto fail = [&](Status s) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  std::byte fields[kSegmentHeaderFields];
  encode_segment_header(header, std::span<std::byte, kSegmentHeaderFields>(fields));
  // Reserve every block now: running out of space shows here, as an error,
  // not later as a failed write in the middle of a segment.
  const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(kSegmentHeaderSize + header.segment_size));
  if (rc != 0) {
    return fail(Status(rc == ENOSPC ? Status::Code::kNoSpace : Status::Code::kIoError,
                       "preallocating " + std::to_string(kSegmentHeaderSize + header.segment_size) + " bytes for " +
                           path + ": " + std::strerror(rc)));
  }
  Status s = pwrite_all(fd, fields, sizeof fields, 0, tmp);
  if (!s.ok()) return fail(std::move(s));
  // No sync of the header here: the first fdatasync of the file's data
  // writes it too, and until then the file holds nothing durable (recovery
  // drops a segment file whose header never reached the disk).
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(Status::from_errno("renaming " + tmp, errno));
  Status synced = sync_dir ? sync_directory(partition_dir) : Status();
  if (!synced.ok()) {
    ::close(fd);
    return synced;
  }
  return SegmentFile(fd, path, header);
}

Result<SegmentFile> SegmentFile::open(const std::string& path, bool writable, std::uint64_t expect_segment_size,
                                      bool extend_short) {
  const int fd = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return Status::from_errno("opening " + path, errno);
  SegmentFile file(fd, path, {});
  std::byte fields[kSegmentHeaderFields];
  const ssize_t n = ::pread(fd, fields, sizeof fields, 0);
  if (n < 0) return Status::from_errno("reading " + path, errno);
  auto header = decode_segment_header(std::span<const std::byte>(fields, static_cast<std::size_t>(n)));
  if (!header.ok()) return std::move(header).status().with_context(path);
  if (expect_segment_size != 0 && header->segment_size != expect_segment_size) {
    return Status(Status::Code::kCorrupt, path + ": segment size " + std::to_string(header->segment_size) +
                                              ", the log's is " + std::to_string(expect_segment_size));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::from_errno("stat " + path, errno);
  const std::uint64_t want = kSegmentHeaderSize + header->segment_size;
  if (static_cast<std::uint64_t>(st.st_size) < want && extend_short && writable) {
    if (::ftruncate(fd, static_cast<off_t>(want)) != 0) return Status::from_errno("extending " + path, errno);
    SHMLOG_RETURN_IF_ERROR(data_sync(fd, path));
  } else if (static_cast<std::uint64_t>(st.st_size) < want) {
    return Status(Status::Code::kCorrupt, path + " is " + std::to_string(st.st_size) + " bytes, expected " +
                                              std::to_string(want) + " (truncated)");
  }
  file.header_ = *header;
  return file;
}

SegmentFile::SegmentFile(SegmentFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)), header_(other.header_) {}

SegmentFile& SegmentFile::operator=(SegmentFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    header_ = other.header_;
  }
  return *this;
}

SegmentFile::~SegmentFile() {
  if (fd_ >= 0) ::close(fd_);
}

Status SegmentFile::read(std::uint64_t from, std::span<std::byte> out) const {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd_, out.data() + done, out.size() - done,
                              static_cast<off_t>(kSegmentHeaderSize + from + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno("reading " + path_, errno);
    }
    if (n == 0) {
      return Status(Status::Code::kCorrupt, path_ + " ends at data byte " + std::to_string(from + done));
    }
    done += static_cast<std::size_t>(n);
  }
  return {};
}

Status SegmentFile::zero_from(std::uint64_t from) {
  if (from >= header_.segment_size) return {};
  std::vector<std::byte> zeros(std::min<std::uint64_t>(1u << 20, header_.segment_size - from));
  for (std::uint64_t at = from; at < header_.segment_size;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(zeros.size(), header_.segment_size - at));
    SHMLOG_RETURN_IF_ERROR(pwrite_all(fd_, zeros.data(), n, kSegmentHeaderSize + at, path_));
    at += n;
  }
  SHMLOG_RETURN_IF_ERROR(data_sync(fd_, path_));
  return {};
}

Status SegmentFile::write(std::uint64_t from, std::span<const std::byte> bytes) {
  if (from > header_.segment_size || bytes.size() > header_.segment_size - from) {
    return Status(Status::Code::kInvalidArgument, "writing past the end of " + path_);
  }
  SHMLOG_RETURN_IF_ERROR(pwrite_all(fd_, bytes.data(), bytes.size(), kSegmentHeaderSize + from, path_));
  SHMLOG_RETURN_IF_ERROR(data_sync(fd_, path_));
  return {};
}

Status SegmentFile::stamp(std::uint64_t incarnation) {
  SegmentFileHeader h = header_;
  h.incarnation = incarnation;
  std::byte fields[kSegmentHeaderFields];
  encode_segment_header(h, std::span<std::byte, kSegmentHeaderFields>(fields));
  SHMLOG_RETURN_IF_ERROR(pwrite_all(fd_, fields, sizeof fields, 0, path_));
  SHMLOG_RETURN_IF_ERROR(data_sync(fd_, path_));
  header_ = h;
  return {};
}

bool SegmentFile::still_at_path() const noexcept {
  struct stat named {}, open {};
  return ::stat(path_.c_str(), &named) == 0 && ::fstat(fd_, &open) == 0 && named.st_dev == open.st_dev &&
         named.st_ino == open.st_ino;
}

std::uint64_t allocated_bytes(const std::string& path) noexcept {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

std::uint64_t modified_ns(const std::string& path) noexcept {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_mtim.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(st.st_mtim.tv_nsec);
}

}  // namespace shmlog::io
