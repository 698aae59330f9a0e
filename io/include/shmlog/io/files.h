// Files of a log directory: the durable, atomically replaced metadata file
// and directory housekeeping. Knows nothing of what the keys mean. Also the
// plain file operations the rest of shmlog needs (the file sink's output
// and journal): core calls the OS for files only through here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "shmlog/status.h"

namespace shmlog::io {

// An ordered set of `key=value` lines. Keys are [a-z0-9_.-]+; values end at
// the newline.
using KeyValues = std::map<std::string, std::string>;

// Writes `header` as the first line, then the pairs, to `path` atomically: a
// temporary file is written and fdatasync'ed, renamed over `path`, and the
// directory is fsync'ed, so a crash leaves the old or the new file, whole.
// The last line is `crc32c=` and the masked CRC32C (8 hex digits) of the
// bytes before it.
Status write_key_value_file(const std::string& path, const std::string& header,
                         const KeyValues& values, std::uint32_t mode);
// Reads a file written by write_key_value_file. The first line must equal
// `header`; any malformed line is kCorrupt naming the file and line number,
// and so is a checksum that does not match (a file without one, written by
// an earlier shmlog, is read as it is).
// Only a regular file is read (not a symlink or FIFO), at most 1 MiB.
Result<KeyValues> read_key_value_file(const std::string& path, const std::string& header);
// The same for text already read; `name` names it in errors. A repeated key
// is damage. Pure.
Result<KeyValues> parse_key_values(std::string_view text, const std::string& header, const std::string& name);
inline constexpr std::size_t kMaxKeyValueFile = 1u << 20;

bool is_directory(const std::string& path);
bool file_exists(const std::string& path);
// Whether `path` exists; an error (e.g. permission denied) when that
// cannot be told, so that "missing" is never said of what could not be seen.
Result<bool> path_exists(const std::string& path);
// Creates `path` (one level) with `mode`; an existing empty directory is
// accepted, a non-empty one is kAlreadyExists.
Status create_empty_directory(const std::string& path, std::uint32_t mode);
// Names of the entries in a directory (without "." and "..").
Result<std::vector<std::string>> list_directory(const std::string& path);
Status remove_file(const std::string& path);
// Writes all `n` bytes at offset `at` (pwrite, again after EINTR and short
// writes); errors name `path`.
Status pwrite_all(int fd, const void* data, std::size_t n, std::uint64_t at, const std::string& path);
// fdatasync, again after EINTR; errors name `path`.
Status data_sync(int fd, const std::string& path);
// fsyncs a directory, so that entries created or renamed in it persist.
Status sync_directory(const std::string& dir);
Status remove_directory(const std::string& path);
// Opens `path` for reading and writing, never through a symlink,
// close-on-exec; made with `mode` when missing (`exclusive`: it must not
// exist yet). Errors name the path.
Result<int> open_read_write(const std::string& path, std::uint32_t mode, bool exclusive = false);
// Opens `path` for reading only, never through a symlink, close-on-exec.
Result<int> open_read_only(const std::string& path);
void close_file(int fd) noexcept;
// Takes the file's advisory lock (flock, exclusive) without waiting: false
// while another open file holds it. The kernel drops it when its holder dies.
Result<bool> try_lock_file(int fd, const std::string& path);
// Whether `fd` is the file `path` names now (a rename may have replaced it).
bool names_same_file(int fd, const std::string& path);
Result<std::uint64_t> file_size(int fd, const std::string& path);
// The file's bytes from offset 0 (pread, again after EINTR), stopping once
// past `limit` bytes.
Result<std::string> read_whole_file(int fd, const std::string& path, std::size_t limit);
// ftruncate; `what` says why in the error ("cutting ... back to ...").
Status truncate_file(int fd, std::uint64_t length, const std::string& what);
// rename(2): atomic within a file system.
Status rename_file(const std::string& from, const std::string& to);
// Absolute, symlink-free path of an existing file or directory.
Result<std::string> canonical_path(const std::string& path);

}  // namespace shmlog::io
