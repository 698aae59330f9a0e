#include "crash_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "shmlog/io/files.h"

namespace shmlog::test {

Status lose_shared_memory(const std::string& path) {
  std::string memory;
  {
    auto attached = Log::attach(path);
    if (!attached.ok()) return std::move(attached).status();
    memory = attached->info().memory_path;
  }
  if (::unlink(memory.c_str()) != 0) return Status::from_errno("removing " + memory, errno);
  return {};
}

void remove_log_and_its_memory(const std::string& path) {
  (void)Log::remove(path);
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr) return;
  while (const dirent* e = ::readdir(dir)) {
    if (std::strncmp(e->d_name, "shmlog-", 7) != 0) continue;
    const std::string object = std::string("/dev/shm/") + e->d_name;
    const int fd = ::open(object.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    char named[1024] = {};  // LogHeader::path, at 1344
    const bool ours = ::fstat(fd, &st) == 0 && st.st_uid == ::geteuid() &&
                      ::pread(fd, named, sizeof named - 1, 1344) > 0 && path == named;
    ::close(fd);
    if (ours) (void)::unlink(object.c_str());
  }
  ::closedir(dir);
}

Status rewind_checkpoint(const std::string& path, std::uint32_t p, std::uint64_t durable,
                         std::uint64_t sequence_plus_one) {
  const std::string file = path + "/shmlog.state";
  auto kv = io::read_key_value_file(file, "shmlog-state 1");
  if (!kv.ok()) return std::move(kv).status();
  (*kv)["partition." + std::to_string(p) + ".durable"] = std::to_string(durable);
  for (auto& [key, value] : *kv) {
    if (key.rfind("producer.", 0) != 0) continue;
    // hexname,epoch,first_epoch,last_sequence_plus_one,...
    std::vector<std::string> fields;
    for (std::size_t at = 0; at <= value.size();) {
      const std::size_t comma = std::min(value.find(',', at), value.size());
      fields.push_back(value.substr(at, comma - at));
      at = comma + 1;
    }
    if (fields.size() < 4) return Status(Status::Code::kCorrupt, file + ": bad entry " + key);
    fields[3] = std::to_string(std::min<std::uint64_t>(std::stoull(fields[3]), sequence_plus_one));
    value.clear();
    for (std::size_t i = 0; i < fields.size(); ++i) value += (i == 0 ? "" : ",") + fields[i];
  }
  return io::write_key_value_file(file, "shmlog-state 1", *kv, 0600);
}

}  // namespace shmlog::test
