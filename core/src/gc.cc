// find_stale_memory: shared-memory objects whose log is gone, judged by the
// header's path (LogHeader::path) against what that directory's meta file
// names now. Reads at most one header page per object; changes nothing.
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "format.h"
#include "meta.h"
#include "shmlog/io/files.h"
#include "shmlog/log.h"

namespace shmlog {
namespace {

// Why the object at `object`, whose header says it belongs to log `log`
// with id `log_id`, is stale; empty when it is not (or cannot be told).
std::string stale_because(const std::string& object, const std::string& log, std::uint64_t log_id) {
  auto exists = io::path_exists(log);
  if (!exists.ok()) return {};  // cannot be told: kept
  if (!*exists) return "its log directory " + log + " is gone";
  auto meta = detail::read_meta(log);
  // No readable meta file: a directory being made, or damage: kept.
  if (!meta.ok()) return {};
  if (meta->log_id != log_id) return log + " holds another log now";
  const std::string named = detail::memory_path_for(*meta);
  if (named != object) return log + " uses " + named + " now (this is an earlier incarnation's)";
  return {};
}

}  // namespace

Result<std::vector<StaleMemory>> find_stale_memory(const std::string& memory_dir) {
  auto names = io::list_directory(memory_dir);
  if (!names.ok()) return std::move(names).status();
  std::vector<StaleMemory> out;
  for (const std::string& name : *names) {
    if (name.rfind("shmlog-", 0) != 0) continue;
    const std::string object = memory_dir + "/" + name;
    auto fd = io::open_read_only(object);
    if (!fd.ok()) continue;  // another user's, or gone meanwhile
    format::LogHeader header;
    struct stat st {};
    const bool readable = ::fstat(*fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid() &&
                          ::pread(*fd, &header, sizeof header, 0) == static_cast<ssize_t>(sizeof header);
    io::close_file(*fd);
    // Only a log's, made whole (a header still being made, or recovered
    // from segment files, has no magic yet: left alone).
    if (!readable || header.magic != format::kLogMagic) continue;
    const std::string log(header.path, strnlen(header.path, sizeof header.path));
    if (log.empty() || log.front() != '/') continue;  // a log of one process's memory names none
    std::string why = stale_because(object, log, header.log_id);
    if (why.empty()) continue;
    out.push_back({object, log, std::move(why), static_cast<std::uint64_t>(st.st_size)});
  }
  return out;
}

}  // namespace shmlog
