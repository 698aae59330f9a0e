// Shared memory backed by a file in a memory file system (tmpfs such as
// /dev/shm, or hugetlbfs), mapped whole. The only place that creates, sizes
// and maps such files. Nothing here knows the log's format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "shmlog/status.h"

namespace shmlog::shm {

enum class PageKind : std::uint8_t {
  kNormal,           // the kernel's base pages (4 KiB)
  kTransparentHuge,  // tmpfs transparent huge pages (needs a mount with huge=)
  kHuge,             // explicit huge pages: a file on a hugetlbfs mount
};
const char* page_kind_name(PageKind kind) noexcept;  // "normal", "thp", "huge"

struct MemoryOptions {
  PageKind pages = PageKind::kNormal;
  // >= 0: bind the memory to this NUMA node and pre-fault it from a thread
  // running on that node; -1: the kernel's default policy.
  int numa_node = -1;
};

// The directory a kind of memory lives in by default: /dev/shm, or the
// first hugetlbfs mount for kHuge (kNotFound naming the mount command when
// there is none).
Result<std::string> default_memory_dir(PageKind kind);

// A mapped memory file; unmapped on destruction. Move-only.
class SharedMemory {
 public:
  SharedMemory() = default;
  SharedMemory(SharedMemory&& other) noexcept;
  SharedMemory& operator=(SharedMemory&& other) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  ~SharedMemory();

  // Creates the file `path` exclusively with permission bits `mode`,
  // reserves `size` bytes (rounded up to the file system's page size) so
  // that a full file system or a lack of huge pages fails here, never as
  // SIGBUS later, and maps it pre-faulted, placed as `options` say. The
  // contents are zero. On failure nothing is left behind.
  static Result<SharedMemory> create(const std::string& path, std::size_t size, std::uint32_t mode,
                                     const MemoryOptions& options = {});
  // Who may have made an object that is opened: its owner, and the
  // permission bits it may have at most.
  struct Expected {
    std::uint32_t owner = 0;
    std::uint32_t max_mode = 0600;
  };
  // Maps an existing file read-write (or read-only); its size must be at
  // least `min_size` bytes, else kCorrupt naming both sizes. A symlink, a
  // non-regular file, or (with `expected`) an object of another owner or
  // with more permission bits is kPermissionDenied saying so: another user
  // may have planted it.
  static Result<SharedMemory> open(const std::string& path, std::size_t min_size, bool read_only = false,
                                   const Expected* expected = nullptr);
  static Status unlink(const std::string& path);
  static bool exists(const std::string& path);

  std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  const std::string& path() const noexcept { return path_; }
  // Whether the file at path() is still the one mapped (not removed, nor
  // removed and made anew).
  bool still_at_path() const noexcept;

 private:
  SharedMemory(std::string path, std::byte* data, std::size_t size, std::uint64_t dev, std::uint64_t ino)
      : path_(std::move(path)), data_(data), size_(size), dev_(dev), ino_(ino) {}
  void reset() noexcept;

  std::string path_;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::uint64_t dev_ = 0, ino_ = 0;  // the file mapped
};

// Where a mapping's pages really are, as the kernel reports them.
struct PageReport {
  std::uint64_t kernel_page_bytes = 0;  // the mapping's page size (2 MiB for hugetlbfs)
  std::uint64_t huge_bytes = 0;         // bytes mapped by huge pages (hugetlbfs or THP)
  // Pages per NUMA node (index = node); empty when the kernel cannot say,
  // and then `nodes_error` says why.
  std::vector<std::uint64_t> pages_on_node;
  std::uint64_t pages_not_present = 0;
  std::string nodes_error;
};
// Asks the kernel (move_pages without a target, /proc/self/smaps) about
// the mapping that starts at `data`.
PageReport report_pages(const std::byte* data, std::size_t size);

}  // namespace shmlog::shm
