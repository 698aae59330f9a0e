// Where a log's memory lives: NUMA node binding checked against what the
// kernel reports, explicit huge pages (hugetlbfs) and transparent huge
// pages (tmpfs with huge=), and the errors that name the fix.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "shmlog/log.h"
#include "shmlog/io/files.h"
#include "test_util.h"

namespace shmlog {
namespace {

LogOptions small() {
  LogOptions o;
  o.segment_size = 1 << 20;
  o.ring_segments = 2;
  o.max_record_size = 1024;
  return o;
}

std::string read_text(const std::string& file) {
  std::ifstream in(file);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool roundtrip(const Log& log) {
  auto producer = log.producer().value();
  if (!producer.append(as_bytes("placed"))) return false;
  auto consumer = log.consumer().value();
  std::string got;
  consumer.poll([&](const Record& r) { got = std::string(as_string(r.value)); });
  return got == "placed";
}

TEST(Placement, BoundToNodeZeroThePagesAreThereAsTheKernelSays) {
  test::TempLogPath path;
  LogOptions o = small();
  o.numa_node = 0;
  auto log = Log::create(path.str(), o);
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  const auto where = log->memory_report();
  if (!where.nodes_error.empty()) GTEST_SKIP() << where.nodes_error;
  ASSERT_FALSE(where.pages_on_node.empty());
  const std::uint64_t pages = log->info().shm_bytes / where.kernel_page_bytes;
  EXPECT_EQ(where.pages_on_node[0], pages) << "every page pre-faulted on node 0";
  for (std::size_t n = 1; n < where.pages_on_node.size(); ++n) EXPECT_EQ(where.pages_on_node[n], 0u) << "node " << n;
  EXPECT_EQ(where.pages_not_present, 0u);
  // The placement is part of the log: a reopen (or a recreate) knows it.
  EXPECT_NE(read_text(path.str() + "/shmlog.meta").find("numa_node=0\n"), std::string::npos);
  auto reopened = Log::open(path.str());
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(reopened->options().numa_node, 0);
  EXPECT_TRUE(roundtrip(*reopened));
  ASSERT_TRUE(Log::remove(path.str()).ok());
}

TEST(Placement, AMissingNodeIsAClearErrorAndLeavesNothing) {
  test::TempLogPath path;
  LogOptions o = small();
  o.numa_node = 4000;
  auto log = Log::create(path.str(), o);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(log.status().message().find("NUMA node 4000 does not exist"), std::string::npos) << log.status().message();
  o.numa_node = -2;
  EXPECT_NE(validate(o).message().find("NUMA node must be"), std::string::npos);
  // Nothing half-made: the same directory takes a log without placement.
  EXPECT_TRUE(Log::create(path.str(), small()).ok());
  ASSERT_TRUE(Log::remove(path.str()).ok());
}

TEST(Placement, BadPlacementKeysInMetadataAreCorrupt) {
  test::TempLogPath path;
  ASSERT_TRUE(Log::create(path.str(), small()).ok());
  const std::string meta = path.str() + "/shmlog.meta";
  const std::string text = read_text(meta);
  auto kv = io::read_key_value_file(meta, "shmlog-log 1").value();
  ASSERT_EQ(kv["pages"], "normal");
  kv["pages"] = "gigantic";  // as a (newer) shmlog would write it, checksum and all
  ASSERT_TRUE(io::write_key_value_file(meta, "shmlog-log 1", kv, 0600).ok());
  auto r = Log::open(path.str());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorrupt);
  EXPECT_NE(r.status().message().find("gigantic"), std::string::npos) << r.status().message();
  std::ofstream(meta, std::ios::trunc) << text;
  ASSERT_TRUE(Log::remove(path.str()).ok());
}

TEST(Placement, RelativeMemoryDirIsRefused) {
  LogOptions o = small();
  o.memory_dir = "shm";
  EXPECT_NE(validate(o).message().find("absolute"), std::string::npos);
}

// Huge pages need a hugetlbfs mount and a reserved pool: mounted here in a
// private mount namespace; the pool is grown by what the test needs and
// put back afterwards.
TEST(Placement, HugePagesNameTheFixWhenMissingAndBackTheRingWhenReserved) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount hugetlbfs and reserve huge pages";
  const std::string pool = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
  if (::access(pool.c_str(), W_OK) != 0) GTEST_SKIP() << "no 2 MiB huge page pool here";
  const long before = std::strtol(read_text(pool).c_str(), nullptr, 10);
  // The mount point is made (and removed) here: the mount lives only in
  // the child's namespace.
  char dir[] = "/tmp/shmlog-hugetlbfs-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::uint32_t pid = test::spawn([&] {
    if (::unshare(CLONE_NEWNS) != 0) return 77;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 77;
    if (::mount("none", dir, "hugetlbfs", 0, "pagesize=2M") != 0) return 77;
    test::TempLogPath path;
    LogOptions o = small();
    o.pages = Pages::kHuge;
    o.memory_dir = dir;
    // More pages than the pool has: refused before anything is mapped.
    const auto free_pages = std::strtoull(read_text("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages").c_str(), nullptr, 10);
    LogOptions big = o;
    big.ring_segments = static_cast<std::uint32_t>(free_pages / 2 + 2);
    big.segment_size = 4 << 20;
    auto refused = Log::create(path.str(), big);
    if (refused.ok()) return 1;
    if (refused.status().code() != Status::Code::kNoSpace) return 2;
    if (refused.status().message().find("nr_hugepages") == std::string::npos) return 3;
    // Reserve what a small log needs and create it on huge pages.
    std::ofstream(pool) << before + 4;
    auto log = Log::create(path.str(), o);
    if (!log.ok()) {
      std::fprintf(stderr, "%s\n", log.status().to_string().c_str());
      return 4;
    }
    const auto where = log->memory_report();
    if (where.kernel_page_bytes != (2u << 20)) return 5;
    if (where.huge_bytes != log->info().shm_bytes) return 6;
    if (!roundtrip(*log)) return 7;
    if (log->info().memory_path.rfind(dir, 0) != 0) return 8;
    return Log::remove(path.str()).ok() ? 0 : 9;
  });
  const int code = test::join(pid);
  ::rmdir(dir);
  std::ofstream(pool) << before;
  if (code == 77) GTEST_SKIP() << "mount namespaces or hugetlbfs are not available here";
  EXPECT_EQ(code, 0);
}

TEST(Placement, TransparentHugePagesNeedATmpfsWithHugeAndThenBackTheRing) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a tmpfs in a private namespace";
  if (read_text("/sys/kernel/mm/transparent_hugepage/shmem_enabled").find("[deny]") != std::string::npos) {
    GTEST_SKIP() << "shmem transparent huge pages are denied on this host";
  }
  char never[] = "/tmp/shmlog-tmpfs-XXXXXX";
  char always[] = "/tmp/shmlog-tmpfs-XXXXXX";
  ASSERT_NE(::mkdtemp(never), nullptr);
  ASSERT_NE(::mkdtemp(always), nullptr);
  const std::uint32_t pid = test::spawn([&] {
    if (::unshare(CLONE_NEWNS) != 0) return 77;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 77;
    if (::mount("tmpfs", never, "tmpfs", 0, "size=64m,huge=never") != 0) return 77;
    if (::mount("tmpfs", always, "tmpfs", 0, "size=64m,huge=always") != 0) return 77;
    const bool forced = read_text("/sys/kernel/mm/transparent_hugepage/shmem_enabled").find("[force]") != std::string::npos;
    test::TempLogPath path;
    LogOptions o = small();
    o.pages = Pages::kTransparentHuge;
    o.memory_dir = never;
    auto refused = Log::create(path.str(), o);
    if (!forced) {
      if (refused.ok()) return 1;
      if (refused.status().message().find("huge=within_size") == std::string::npos) return 2;
    } else if (refused.ok()) {
      (void)Log::remove(path.str());
    }
    o.memory_dir = always;
    auto log = Log::create(path.str(), o);
    if (!log.ok()) {
      std::fprintf(stderr, "%s\n", log.status().to_string().c_str());
      return 3;
    }
    // The ring is 2 MiB-aligned and whole: the kernel maps it with huge pages.
    if (log->memory_report().huge_bytes < (2u << 20)) return 4;
    if (!roundtrip(*log)) return 5;
    return Log::remove(path.str()).ok() ? 0 : 6;
  });
  const int code = test::join(pid);
  ::rmdir(never);
  ::rmdir(always);
  if (code == 77) GTEST_SKIP() << "mount namespaces are not available here";
  EXPECT_EQ(code, 0);
}

}  // namespace
}  // namespace shmlog
