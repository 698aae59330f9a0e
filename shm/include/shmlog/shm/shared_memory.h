// POSIX shared-memory objects (/dev/shm), mapped whole. The only place that
// calls shm_open, fallocate and mmap. Nothing here knows the log's format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "shmlog/status.h"

namespace shmlog::shm {

// A mapped shared-memory object; unmapped on destruction. Move-only.
class SharedMemory {
 public:
  SharedMemory() = default;
  SharedMemory(SharedMemory&& other) noexcept;
  SharedMemory& operator=(SharedMemory&& other) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  ~SharedMemory();

  // Creates `name` (e.g. "/shmlog-0123abcd") exclusively with permission bits
  // `mode`, reserves `size` bytes of memory for it (so a full /dev/shm fails
  // here, never as SIGBUS later) and maps it pre-faulted. The contents are
  // zero. On failure nothing is left behind.
  static Result<SharedMemory> create(const std::string& name, std::size_t size,
                                     std::uint32_t mode);
  // Maps an existing object read-write (or read-only); its size must be at
  // least `min_size` bytes, else kCorrupt naming both sizes.
  static Result<SharedMemory> open(const std::string& name, std::size_t min_size,
                                   bool read_only = false);
  static Status unlink(const std::string& name);
  static bool exists(const std::string& name);
  // Where the object lives in the file system, for messages.
  static std::string path_of(const std::string& name);

  std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  const std::string& name() const noexcept { return name_; }

 private:
  SharedMemory(std::string name, std::byte* data, std::size_t size)
      : name_(std::move(name)), data_(data), size_(size) {}
  void reset() noexcept;

  std::string name_;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace shmlog::shm
