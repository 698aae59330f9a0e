#include "shmlog/shm/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace shmlog::shm {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

Result<std::byte*> map_fd(int fd, std::size_t size, bool read_only, const std::string& path) {
  int prot = read_only ? PROT_READ : PROT_READ | PROT_WRITE;
  // MAP_POPULATE pre-faults every page so that the hot path takes no faults.
  void* p = ::mmap(nullptr, size, prot, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) return Status::from_errno("mapping " + path, errno);
  return static_cast<std::byte*>(p);
}

}  // namespace

SharedMemory::SharedMemory(SharedMemory&& other) noexcept
    : name_(std::move(other.name_)), data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

SharedMemory& SharedMemory::operator=(SharedMemory&& other) noexcept {
  if (this != &other) {
    reset();
    name_ = std::move(other.name_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SharedMemory::~SharedMemory() { reset(); }

void SharedMemory::reset() noexcept {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

std::string SharedMemory::path_of(const std::string& name) { return "/dev/shm" + name; }

Result<SharedMemory> SharedMemory::create(const std::string& name, std::size_t size,
                                          std::uint32_t mode) {
  const std::string path = path_of(name);
  int raw = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (raw < 0) return Status::from_errno("creating shared memory " + path, errno);
  Fd fd(raw);
  auto fail = [&](const char* what, int err) {
    ::shm_unlink(name.c_str());
    return Status::from_errno(std::string(what) + " " + path, err);
  };
  // shm_open applies the umask; the caller's mode is what the user asked for.
  if (::fchmod(fd.get(), mode) != 0) return fail("setting permissions of", errno);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return fail("sizing", errno);
  // Reserve the pages now: on tmpfs this fails with ENOSPC when /dev/shm is
  // full, where a plain ftruncate would succeed and a later store SIGBUS.
  int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(size));
  if (err != 0) {
    Status s = fail("reserving memory for", err);
    if (err == ENOSPC) {
      return Status(Status::Code::kNoSpace,
                    s.message() + " (" + std::to_string(size) + " bytes needed; free space in /dev/shm or lower --ring-segments/--segment-size)");
    }
    return s;
  }
  auto mapped = map_fd(fd.get(), size, false, path);
  if (!mapped.ok()) {
    ::shm_unlink(name.c_str());
    return std::move(mapped).status();
  }
  return SharedMemory(name, mapped.value(), size);
}

Result<SharedMemory> SharedMemory::open(const std::string& name, std::size_t min_size,
                                        bool read_only) {
  const std::string path = path_of(name);
  int raw = ::shm_open(name.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC, 0);
  if (raw < 0) return Status::from_errno("opening shared memory " + path, errno);
  Fd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::from_errno("inspecting " + path, errno);
  auto size = static_cast<std::size_t>(st.st_size);
  if (size < min_size) {
    return Status(Status::Code::kCorrupt, "shared memory " + path + " is " + std::to_string(size) +
                                              " bytes, expected at least " +
                                              std::to_string(min_size) + " (truncated or foreign object)");
  }
  auto mapped = map_fd(fd.get(), size, read_only, path);
  if (!mapped.ok()) return std::move(mapped).status();
  return SharedMemory(name, mapped.value(), size);
}

Status SharedMemory::unlink(const std::string& name) {
  if (::shm_unlink(name.c_str()) != 0 && errno != ENOENT) {
    return Status::from_errno("removing shared memory " + path_of(name), errno);
  }
  return Status();
}

bool SharedMemory::exists(const std::string& name) {
  struct stat st {};
  return ::stat(path_of(name).c_str(), &st) == 0;
}

}  // namespace shmlog::shm
