#include "shmlog/io/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "shmlog/io/crc32c.h"

namespace shmlog::io {
namespace {

std::string dir_name(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Status pwrite_all(int fd, const void* data, std::size_t n, std::uint64_t at, const std::string& path) {
  const auto* p = static_cast<const std::byte*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(at));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno("writing " + path, errno);
    }
    p += w;
    n -= static_cast<std::size_t>(w);
    at += static_cast<std::uint64_t>(w);
  }
  return {};
}

Status data_sync(int fd, const std::string& path) {
  while (::fdatasync(fd) != 0) {
    if (errno != EINTR) return Status::from_errno("syncing " + path, errno);
  }
  return {};
}

Status sync_directory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::from_errno("opening directory " + dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::from_errno("syncing directory " + dir, err);
  return Status();
}

namespace {

bool valid_key(const std::string& key) {
  if (key.empty()) return false;
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

namespace {

// The last line: the masked CRC32C of every byte before it, so that a flipped
// bit in an offset or an option is damage, not a different value.
constexpr std::string_view kChecksumKey = "crc32c";

std::string checksum_line(std::string_view text) {
  char line[32];
  std::snprintf(line, sizeof line, "%s=%08x\n", kChecksumKey.data(),
                crc32c::mask(crc32c::value(text.data(), text.size())));
  return line;
}

}  // namespace

Status write_key_value_file(const std::string& path, const std::string& header,
                         const KeyValues& values, std::uint32_t mode) {
  std::string text = header + "\n";
  for (const auto& [key, value] : values) {
    if (!valid_key(key) || value.find('\n') != std::string::npos) {
      return Status(Status::Code::kInvalidArgument, "bad metadata entry '" + key + "' for " + path);
    }
    text += key + "=" + value + "\n";
  }
  text += checksum_line(text);
  // A new file, never one found at the name (a symlink planted in a
  // group-writable directory must not redirect the write); a temporary file
  // left by a crash is removed first.
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0 && errno == EEXIST && ::unlink(tmp.c_str()) == 0) {
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  }
  if (fd < 0) return Status::from_errno("creating " + tmp, errno);
  Status s = ::fchmod(fd, mode & 0777) == 0 ? Status() : Status::from_errno("setting the mode of " + tmp, errno);
  if (s.ok()) s = pwrite_all(fd, text.data(), text.size(), 0, tmp);
  if (s.ok()) s = data_sync(fd, tmp);
  ::close(fd);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = Status::from_errno("renaming " + tmp + " to " + path, errno);
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  return sync_directory(dir_name(path));
}

Result<KeyValues> read_key_value_file(const std::string& path, const std::string& header) {
  // Not through a symlink, and never blocking on a FIFO planted at the name.
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP) return Status(Status::Code::kCorrupt, path + " is a symbolic link, not a shmlog metadata file");
    return Status::from_errno("opening " + path, errno);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status(Status::Code::kCorrupt, path + " is not a regular file");
  }
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Status::from_errno("reading " + path, err);
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxKeyValueFile) {
      ::close(fd);
      return Status(Status::Code::kCorrupt, path + " is larger than 1 MiB: not a shmlog metadata file");
    }
  }
  ::close(fd);
  return parse_key_values(text, header, path);
}

Result<KeyValues> parse_key_values(std::string_view text, const std::string& header, const std::string& name) {
  if (text.size() > kMaxKeyValueFile) {
    return Status(Status::Code::kCorrupt, name + " is larger than 1 MiB: not a shmlog metadata file");
  }
  KeyValues values;
  std::size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) {
      return Status(Status::Code::kCorrupt, name + ": line " + std::to_string(line_no + 1) +
                                                " has no newline (torn write?)");
    }
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line_no == 1) {
      if (line != header) {
        return Status(Status::Code::kCorrupt, name + ": first line is " + quoted(line, 40) + ", expected '" + header + "'");
      }
      continue;
    }
    auto eq = line.find('=');
    const std::string key(eq == std::string::npos ? line : line.substr(0, eq));
    if (key == kChecksumKey) {  // files of earlier versions have none
      const std::string_view before = text.substr(0, pos - line.size() - 1);
      if (pos != text.size()) {
        return Status(Status::Code::kCorrupt, name + ": line " + std::to_string(line_no) + ": the checksum is not the last line");
      }
      if (checksum_line(before) != std::string(line) + "\n") {
        return Status(Status::Code::kCorrupt, name + ": checksum mismatch (the file is damaged)");
      }
      continue;
    }
    if (eq == std::string::npos || !valid_key(key)) {
      return Status(Status::Code::kCorrupt, name + ": line " + std::to_string(line_no) + " is not key=value");
    }
    if (!values.emplace(key, line.substr(eq + 1)).second) {
      return Status(Status::Code::kCorrupt, name + ": line " + std::to_string(line_no) + " repeats key " + quoted(key, 40));
    }
  }
  if (line_no == 0) return Status(Status::Code::kCorrupt, name + " is empty");
  return values;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Result<int> open_read_write(const std::string& path, std::uint32_t mode, bool exclusive) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (exclusive ? O_EXCL : 0), mode);
  if (fd < 0) return Status::from_errno((exclusive ? "creating " : "opening ") + path, errno);
  return fd;
}

Result<int> open_read_only(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Status::from_errno("opening " + path, errno);
  return fd;
}

void close_file(int fd) noexcept {
  if (fd >= 0) ::close(fd);
}

Result<bool> try_lock_file(int fd, const std::string& path) {
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return true;
  if (errno == EWOULDBLOCK) return false;
  return Status::from_errno("locking " + path, errno);
}

bool names_same_file(int fd, const std::string& path) {
  struct stat held {}, named {};
  return ::fstat(fd, &held) == 0 && ::stat(path.c_str(), &named) == 0 && held.st_dev == named.st_dev &&
         held.st_ino == named.st_ino;
}

Result<std::uint64_t> file_size(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::from_errno("inspecting " + path, errno);
  return static_cast<std::uint64_t>(st.st_size);
}

Result<std::string> read_whole_file(int fd, const std::string& path, std::size_t limit) {
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(text.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno("reading " + path, errno);
    }
    if (n == 0) return text;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > limit) return text;
  }
}

Status truncate_file(int fd, std::uint64_t length, const std::string& what) {
  if (::ftruncate(fd, static_cast<off_t>(length)) != 0) return Status::from_errno(what, errno);
  return {};
}

Status rename_file(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return Status::from_errno("replacing " + to, errno);
  return {};
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Result<bool> path_exists(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return true;
  if (errno == ENOENT || errno == ENOTDIR) return false;
  return Status::from_errno("cannot look at " + path, errno);
}

Status create_empty_directory(const std::string& path, std::uint32_t mode) {
  // The mode exactly (not narrowed by the umask), and only on a directory
  // of the caller's: one another user made could be changed under them.
  auto own = [&]() -> Status {
    if (::chmod(path.c_str(), mode & 07777) != 0) return Status::from_errno("setting the mode of " + path, errno);
    return Status();
  };
  if (::mkdir(path.c_str(), mode) == 0) return own();
  if (errno != EEXIST) return Status::from_errno("creating directory " + path, errno);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status(Status::Code::kAlreadyExists, path + " exists and is not a directory");
  }
  if (st.st_uid != ::geteuid()) {
    return Status(Status::Code::kPermissionDenied, "directory " + path + " belongs to uid " + std::to_string(st.st_uid) +
                                                        ": a log's directory must be its owner's");
  }
  auto entries = list_directory(path);
  if (!entries.ok()) return std::move(entries).status();
  if (!entries->empty()) {
    return Status(Status::Code::kAlreadyExists, "directory " + path + " exists and is not empty");
  }
  return own();
}

Result<std::vector<std::string>> list_directory(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return Status::from_errno("listing " + path, errno);
  std::vector<std::string> names;
  while (struct dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(dir);
  return names;
}

Status remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::from_errno("removing " + path, errno);
  }
  return Status();
}

Status remove_directory(const std::string& path) {
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) {
    return Status::from_errno("removing directory " + path, errno);
  }
  return Status();
}

Result<std::string> canonical_path(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) return Status::from_errno("resolving " + path, errno);
  return std::string(buf);
}

}  // namespace shmlog::io
