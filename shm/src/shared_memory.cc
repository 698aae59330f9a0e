#include "shmlog/shm/shared_memory.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "hwloc_util.h"

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

std::string directory_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string read_line(const std::string& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

std::uint64_t read_number(const std::string& file) { return std::strtoull(read_line(file).c_str(), nullptr, 10); }

struct Mount {
  std::string point, type, options;
};

std::vector<Mount> mounts() {
  std::vector<Mount> out;
  std::ifstream in("/proc/mounts");
  std::string device, rest;
  Mount m;
  while (in >> device >> m.point >> m.type >> m.options && std::getline(in, rest)) out.push_back(m);
  return out;
}

// The mount that holds `dir` (longest mount point that prefixes it).
Mount mount_of(const std::string& dir) {
  Mount best;
  for (const Mount& m : mounts()) {
    const bool under = dir == m.point || m.point == "/" ||
                       (dir.rfind(m.point, 0) == 0 && dir.size() > m.point.size() && dir[m.point.size()] == '/');
    if (under && m.point.size() >= best.point.size()) best = m;
  }
  return best;
}

std::string mib(std::uint64_t bytes) {
  if (bytes >= (1u << 30) && bytes % (1u << 30) == 0) return std::to_string(bytes >> 30) + " GiB";
  if (bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes >> 10) + " KiB";
}

// Explicit huge pages come from a pool the administrator sizes; say
// exactly how many are missing rather than fail inside mmap.
Status check_huge_page_pool(std::uint64_t page, std::uint64_t bytes, const std::string& path) {
  const std::string pool = "/sys/kernel/mm/hugepages/hugepages-" + std::to_string(page >> 10) + "kB/";
  const std::uint64_t total = read_number(pool + "nr_hugepages");
  const std::uint64_t free = read_number(pool + "free_hugepages");
  const std::uint64_t reserved = read_number(pool + "resv_hugepages");
  const std::uint64_t available = free > reserved ? free - reserved : 0;
  const std::uint64_t needed = bytes / page;
  if (needed <= available) return {};
  return Status(Status::Code::kNoSpace,
                path + " needs " + std::to_string(needed) + " huge pages of " + mib(page) + ", " +
                    std::to_string(available) + " are available: reserve them with `echo " +
                    std::to_string(total + needed - available) + " > " + pool +
                    "nr_hugepages` (or hugepages= on the kernel command line)");
}

// Transparent huge pages for a tmpfs file need a mount with huge= (the
// kernel's shmem_enabled "force" overrides it, "deny" forbids them).
Status check_thp(const std::string& dir) {
  const std::string knob = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
  const std::string shmem = read_line(knob);
  if (shmem.find("[deny]") != std::string::npos) {
    return Status(Status::Code::kInvalidArgument, "transparent huge pages for shared memory are denied by " + knob +
                                                      ": `echo advise > " + knob + "`");
  }
  if (shmem.find("[force]") != std::string::npos) return {};
  const Mount m = mount_of(dir);
  if (m.type != "tmpfs") {
    return Status(Status::Code::kInvalidArgument, dir + " is on " + m.type + ", not tmpfs: transparent huge pages for a log need a tmpfs mounted with huge=");
  }
  const auto at = m.options.find("huge=");
  const std::string huge = at == std::string::npos ? "never" : m.options.substr(at + 5, m.options.find(',', at) - at - 5);
  if (huge == "never" || huge == "deny") {
    return Status(Status::Code::kInvalidArgument,
                  m.point + " is a tmpfs without transparent huge pages (huge=" + huge +
                      "): `mount -o remount,huge=within_size " + m.point +
                      "`, or mount a tmpfs with huge=within_size and give it as the memory directory");
  }
  return {};
}

// Binds the mapping to `node`, then reserves the file's memory from a thread
// running on that node; *fallocate_error is posix_fallocate's result.
Status reserve_on_node(void* data, std::size_t bytes, int node, int fd, int* fallocate_error) {
  auto topology = detail::load_hwloc();
  if (!topology.ok()) return std::move(topology).status();
  hwloc_topology_t t = topology->get();
  auto found = detail::find_numa_node(t, node);
  if (!found.ok()) return std::move(found).status();
  hwloc_obj_t obj = *found;
  // mbind on a shared tmpfs mapping sets the file's own policy: the pages
  // fallocate is about to allocate come from `node` whoever touches them.
  if (hwloc_set_area_membind(t, data, bytes, obj->nodeset, HWLOC_MEMBIND_BIND, HWLOC_MEMBIND_BYNODESET) != 0 &&
      detail::numa_node_count(t) > 1) {
    return Status::from_errno("binding shared memory to NUMA node " + std::to_string(node), errno);
  }
  // Allocate from a thread running on the node, so that first-touch
  // placement agrees with the binding where the kernel cannot bind.
  std::thread([t, obj, fd, bytes, fallocate_error] {
    if (!hwloc_bitmap_iszero(obj->cpuset)) (void)hwloc_set_cpubind(t, obj->cpuset, HWLOC_CPUBIND_THREAD);
    *fallocate_error = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  }).join();
  return {};
}

void prefault(std::byte* data, std::size_t size, std::size_t page) {
#ifdef MADV_POPULATE_WRITE
  if (::madvise(data, size, MADV_POPULATE_WRITE) == 0) return;
#endif
  // Older kernels: write each page once (it is zero and nobody else has it yet).
  for (std::size_t i = 0; i < size; i += page) {
    auto* p = reinterpret_cast<volatile std::uint8_t*>(data + i);
    *p = 0;
  }
}

Result<std::byte*> map_fd(int fd, std::size_t size, bool read_only, bool populate, const std::string& path) {
  int prot = read_only ? PROT_READ : PROT_READ | PROT_WRITE;
  // MAP_POPULATE pre-faults every page so that the hot path takes no faults.
  void* p = ::mmap(nullptr, size, prot, MAP_SHARED | (populate ? MAP_POPULATE : 0), fd, 0);
  if (p == MAP_FAILED) return Status::from_errno("mapping " + path, errno);
  return static_cast<std::byte*>(p);
}

}  // namespace

const char* page_kind_name(PageKind kind) noexcept {
  switch (kind) {
    case PageKind::kTransparentHuge: return "thp";
    case PageKind::kHuge: return "huge";
    case PageKind::kNormal: break;
  }
  return "normal";
}

Result<std::string> default_memory_dir(PageKind kind) {
  if (kind != PageKind::kHuge) return std::string("/dev/shm");
  for (const Mount& m : mounts()) {
    if (m.type == "hugetlbfs") return m.point;
  }
  return Status(Status::Code::kNotFound,
                "no hugetlbfs file system is mounted for huge pages: `mkdir -p /dev/hugepages && mount -t "
                "hugetlbfs none /dev/hugepages`");
}

SharedMemory::SharedMemory(SharedMemory&& other) noexcept
    : path_(std::move(other.path_)), data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)), dev_(other.dev_), ino_(other.ino_) {}

SharedMemory& SharedMemory::operator=(SharedMemory&& other) noexcept {
  if (this != &other) {
    reset();
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    dev_ = other.dev_;
    ino_ = other.ino_;
  }
  return *this;
}

SharedMemory::~SharedMemory() { reset(); }

void SharedMemory::reset() noexcept {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

Result<SharedMemory> SharedMemory::create(const std::string& path, std::size_t size, std::uint32_t mode,
                                          const MemoryOptions& options) {
  const std::string dir = directory_of(path);
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) != 0) return Status::from_errno("inspecting memory directory " + dir, errno);
  const bool hugetlbfs = fs.f_type == static_cast<decltype(fs.f_type)>(HUGETLBFS_MAGIC);
  if (options.pages == PageKind::kHuge && !hugetlbfs) {
    return Status(Status::Code::kInvalidArgument, "huge pages: " + dir + " is not a hugetlbfs mount");
  }
  const std::size_t page = hugetlbfs ? static_cast<std::size_t>(fs.f_bsize) : static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t bytes = (size + page - 1) / page * page;
  if (hugetlbfs) SHMLOG_RETURN_IF_ERROR(check_huge_page_pool(page, bytes, path));
  if (options.pages == PageKind::kTransparentHuge) SHMLOG_RETURN_IF_ERROR(check_thp(dir));

  int raw = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (raw < 0) return Status::from_errno("creating shared memory " + path, errno);
  Fd fd(raw);
  std::byte* data = nullptr;
  auto fail = [&](const std::string& what, int err) {
    if (data != nullptr) ::munmap(data, bytes);
    ::unlink(path.c_str());
    return Status::from_errno(what + " " + path, err);
  };
  // open applies the umask; the caller's mode is what the user asked for.
  if (::fchmod(fd.get(), mode) != 0) return fail("setting permissions of", errno);
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) return fail("sizing", errno);
  auto mapped = map_fd(fd.get(), bytes, false, /*populate=*/false, path);
  if (!mapped.ok()) {
    ::unlink(path.c_str());
    return std::move(mapped).status();
  }
  data = *mapped;
  if (options.pages == PageKind::kTransparentHuge && ::madvise(data, bytes, MADV_HUGEPAGE) != 0) {
    return fail("asking for transparent huge pages for", errno);
  }
  // Reserve the pages now: on tmpfs this fails with ENOSPC when the file
  // system is full, where a plain ftruncate would succeed and a later store
  // SIGBUS.
  int err = 0;
  if (options.numa_node >= 0) {
    Status placed = reserve_on_node(data, bytes, options.numa_node, fd.get(), &err);
    if (!placed.ok()) {
      (void)fail("placing", 0);
      return std::move(placed).with_context("placing " + path);
    }
  } else {
    err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(bytes));
  }
  if (err != 0) {
    Status s = fail("reserving memory for", err);
    if (err == ENOSPC || err == ENOMEM) {
      return Status(Status::Code::kNoSpace,
                    s.message() + " (" + std::to_string(bytes) + " bytes needed; free space in " + dir +
                        " or lower --ring-segments/--segment-size)");
    }
    return s;
  }
  prefault(data, bytes, page);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail("inspecting", errno);
  return SharedMemory(path, data, bytes, st.st_dev, st.st_ino);
}

Result<SharedMemory> SharedMemory::open(const std::string& path, std::size_t min_size, bool read_only,
                                        const Expected* expected) {
  auto foreign = [&](const std::string& why) {
    return Status(Status::Code::kPermissionDenied,
                  "shared memory " + path + " " + why + ": not made by shmlog for this log (planted by another user?)");
  };
  int raw = ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (raw < 0 && errno == ELOOP) return foreign("is a symbolic link");
  if (raw < 0) return Status::from_errno("opening shared memory " + path, errno);
  Fd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::from_errno("inspecting " + path, errno);
  if (!S_ISREG(st.st_mode)) return foreign("is not a regular file");
  if (expected != nullptr && st.st_uid != expected->owner) {
    return foreign("belongs to uid " + std::to_string(st.st_uid) + ", the log to uid " +
                   std::to_string(expected->owner));
  }
  if (expected != nullptr && (st.st_mode & 07777 & ~expected->max_mode) != 0) {
    char modes[64];
    std::snprintf(modes, sizeof modes, "has mode %04o, more than the log's %04o", st.st_mode & 07777,
                  expected->max_mode);
    return foreign(modes);
  }
  auto size = static_cast<std::size_t>(st.st_size);
  if (size < min_size) {
    return Status(Status::Code::kCorrupt, "shared memory " + path + " is " + std::to_string(size) +
                                              " bytes, expected at least " + std::to_string(min_size) +
                                              " (truncated or foreign object)");
  }
  auto mapped = map_fd(fd.get(), size, read_only, /*populate=*/true, path);
  if (!mapped.ok()) return std::move(mapped).status();
  return SharedMemory(path, mapped.value(), size, st.st_dev, st.st_ino);
}

bool SharedMemory::still_at_path() const noexcept {
  struct stat st {};
  return ::stat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_;
}

Status SharedMemory::unlink(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::from_errno("removing shared memory " + path, errno);
  }
  return Status();
}

bool SharedMemory::exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

PageReport report_pages(const std::byte* data, std::size_t size) {
  PageReport r;
  // /proc/self/smaps: the mapping's header line starts with its address.
  char start[32];
  std::snprintf(start, sizeof start, "%lx-", reinterpret_cast<unsigned long>(data));
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    // Field lines start with "Name:"; a mapping's header line does not.
    const std::string first = line.substr(0, line.find(' '));
    if (!first.empty() && first.back() != ':') {
      if (inside) break;
      inside = line.rfind(start, 0) == 0;
      continue;
    }
    if (!inside) continue;
    std::istringstream in(line);
    std::string key;
    std::uint64_t kb = 0;
    in >> key >> kb;
    if (key == "KernelPageSize:") r.kernel_page_bytes = kb << 10;
    if (key == "ShmemPmdMapped:" || key == "FilePmdMapped:" || key == "Shared_Hugetlb:" || key == "Private_Hugetlb:") {
      r.huge_bytes += kb << 10;
    }
  }
  const std::size_t page = r.kernel_page_bytes != 0 ? r.kernel_page_bytes : static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  constexpr std::size_t kBatch = 1024;
  void* pages[kBatch];
  int status[kBatch];
  for (std::size_t at = 0; at < size; at += kBatch * page) {
    std::size_t n = 0;
    for (; n < kBatch && at + n * page < size; ++n) pages[n] = const_cast<std::byte*>(data + at + n * page);
    // move_pages with no target nodes only reports where each page is.
    if (::syscall(SYS_move_pages, 0, n, pages, nullptr, status, 0) != 0) {
      r.nodes_error = errno == ENOSYS ? "the kernel has no NUMA support (move_pages: " + std::string(std::strerror(errno)) + ")"
                                      : "move_pages: " + std::string(std::strerror(errno));
      r.pages_on_node.clear();
      return r;
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (status[i] < 0) {
        ++r.pages_not_present;
        continue;
      }
      const auto node = static_cast<std::size_t>(status[i]);
      if (r.pages_on_node.size() <= node) r.pages_on_node.resize(node + 1);
      ++r.pages_on_node[node];
    }
  }
  return r;
}

}  // namespace shmlog::shm
