// Logs backed by real shared memory and a real directory: create, open,
// delete, and every way opening can meet bad input.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>

#include "log_access.h"
#include "shmlog/io/files.h"
#include "shmlog/shm/shared_memory.h"
#include "test_util.h"

namespace shmlog {
namespace {

LogOptions small() {
  LogOptions o;
  o.segment_size = 64 * 1024;
  o.ring_segments = 2;
  o.max_record_size = 1024;
  return o;
}

std::string shm_path(const Log& log) { return log.info().memory_path; }

TEST(LogFiles, CreateOpenAppendFromAnotherHandleAndDelete) {
  test::TempLogPath path;
  auto created = Log::create(path.str(), small());
  ASSERT_TRUE(created.ok()) << created.status().to_string();
  auto producer = created->producer().value();
  ASSERT_TRUE(producer.append(as_bytes("persisted in shm")));
  auto opened = Log::open(path.str());
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  auto consumer = opened->consumer().value();
  std::string got;
  consumer.poll([&](const Record& r) { got = test::bytes_to_string(r.value); });
  EXPECT_EQ(got, "persisted in shm");
  const std::string shm = shm_path(*opened);
  ASSERT_TRUE(Log::remove(path.str()).ok());
  struct stat st {};
  EXPECT_NE(::stat(shm.c_str(), &st), 0);
  EXPECT_NE(::stat(path.str().c_str(), &st), 0);
}

TEST(LogFiles, ProducersAndConsumersOutliveTheLogHandleTheyCameFrom) {
  test::TempLogPath path;
  std::optional<Producer> producer;
  std::optional<Consumer> consumer;
  {
    auto log = Log::create(path.str(), small()).value();
    producer.emplace(log.producer().value());
    consumer.emplace(log.consumer({.group = "g"}).value());
  }  // the Log handle is gone; the handles keep the mapping
  ASSERT_TRUE(producer->append(as_bytes("still here")));
  std::string got;
  consumer->poll([&](const Record& r) { got = test::bytes_to_string(r.value); });
  EXPECT_EQ(got, "still here");
  consumer.reset();
  producer.reset();  // the last holder: closes, then unmaps

}

TEST(LogFiles, AttachedReadOnlySeesCountersAndRefusesToWrite) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small()).value();
  auto producer = log.producer({.name = "counted"}).value();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(producer.append(as_bytes("0123456789")));
  auto watcher = Log::attach(path.str());
  ASSERT_TRUE(watcher.ok()) << watcher.status().to_string();
  const auto info = watcher->info();
  ASSERT_EQ(info.producers.size(), 1u);
  EXPECT_EQ(info.producers[0].name, "counted");
  EXPECT_EQ(info.producers[0].appends, 100u);
  EXPECT_EQ(info.producers[0].bytes, 1000u);
  auto refused = watcher->producer();
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("read-only"), std::string::npos);
  EXPECT_FALSE(watcher->consumer().ok());
}

TEST(LogFiles, SharedMemoryAndFilesHaveTheRequestedPermissions) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small()).value();
  struct stat st {};
  ASSERT_EQ(::stat(shm_path(log).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  test::TempLogPath shared;
  auto o = small();
  o.mode = 0660;
  auto group_log = Log::create(shared.str(), o).value();
  ASSERT_EQ(::stat(shm_path(group_log).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST(LogFiles, CreatingOverAnExistingLogOrNonEmptyDirectoryFails) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small()).value();
  auto again = Log::create(path.str(), small());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Status::Code::kAlreadyExists);
  EXPECT_NE(again.status().message().find(path.str()), std::string::npos);
}

TEST(LogFiles, OpeningANonLogDirectoryNamesTheMissingFile) {
  test::TempLogPath path;
  ASSERT_EQ(::mkdir(path.str().c_str(), 0700), 0);
  auto r = Log::open(path.str());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_NE(r.status().message().find("is not a shmlog log"), std::string::npos) << r.status().message();
  ::rmdir(path.str().c_str());
  auto missing = Log::open(path.str());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(path.str()), std::string::npos);
}

// Removes a shared-memory object whose metadata a test damaged (so that
// Log::remove can no longer find its name).
struct UnlinkOnExit {
  std::string name;
  ~UnlinkOnExit() { (void)shm::SharedMemory::unlink(name); }
};

TEST(LogFiles, CorruptMetadataFileIsAClearError) {
  test::TempLogPath path;
  UnlinkOnExit shm_object{Log::create(path.str(), small()).value().info().memory_path};
  const std::string meta = path.str() + "/shmlog.meta";
  {
    std::ofstream f(meta, std::ios::trunc);
    f << "shmlog-log 1\npartitions=banana\n";
  }
  auto r = Log::open(path.str());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorrupt);
  EXPECT_NE(r.status().message().find("shmlog.meta"), std::string::npos) << r.status().message();
  {
    std::ofstream f(meta, std::ios::trunc);
    f << "something else entirely\n";
  }
  r = Log::open(path.str());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("first line"), std::string::npos) << r.status().message();
}

// Bytes from a damaged file reach a one-line error escaped and cut, never
// raw (a damaged meta file once printed binary into the message).
TEST(LogFiles, DamagedMetadataErrorIsOneLineOfPrintableText) {
  test::TempLogPath path;
  UnlinkOnExit shm_object{Log::create(path.str(), small()).value().info().memory_path};
  const std::string meta = path.str() + "/shmlog.meta";
  for (const std::string& damage : {std::string("\x01\xff\x1b[2J") + std::string(200, 'z') + "\n",
                                    std::string("partitions=\x02\x7f\xc3\n")}) {
    {
      std::ofstream f(meta, std::ios::trunc | std::ios::binary);
      f << damage;
    }
    auto r = Log::open(path.str());
    ASSERT_FALSE(r.ok());
    const std::string& m = r.status().message();
    for (char c : m) {
      const auto u = static_cast<unsigned char>(c);
      ASSERT_TRUE(u >= 0x20 && u < 0x7f) << "raw byte " << static_cast<int>(u) << " in: " << quoted(m, 400);
    }
    EXPECT_LT(m.size(), 300u) << m;
    EXPECT_NE(m.find("\\x"), std::string::npos) << m;
  }
}

// Another user looking at a 0700 log is told "permission denied", naming
// the path, not that the log is missing.
TEST(LogFiles, ALogAnotherUserMayNotReadIsPermissionDeniedNotMissing) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to become another user";
  test::TempLogPath path;
  UnlinkOnExit shm_object{Log::create(path.str(), small()).value().info().memory_path};
  ASSERT_EQ(::chmod(path.str().c_str(), 0700), 0);
  const auto child = test::spawn([&] {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 3;  // nobody
    auto r = Log::open(path.str());
    if (r.ok()) return 1;
    const std::string& m = r.status().message();
    const bool right = r.status().code() == Status::Code::kPermissionDenied &&
                       m.find("Permission denied") != std::string::npos && m.find(path.str()) != std::string::npos &&
                       m.find("missing") == std::string::npos;
    if (!right) std::fprintf(stderr, "%s\n", r.status().to_string().c_str());
    return right ? 0 : 2;
  });
  EXPECT_EQ(test::join(child), 0) << "1: opened; 2: wrong words (see stderr); 3: could not become nobody";
}

TEST(LogFiles, NewerFormatVersionIsRefusedNamingBothVersions) {
  test::TempLogPath path;
  UnlinkOnExit shm_object{Log::create(path.str(), small()).value().info().memory_path};
  const std::string meta = path.str() + "/shmlog.meta";
  auto kv = io::read_key_value_file(meta, "shmlog-log 1").value();
  ASSERT_EQ(kv["format_version"], "2.0");
  kv["format_version"] = "7.2";  // as a newer shmlog would write it
  ASSERT_TRUE(io::write_key_value_file(meta, "shmlog-log 1", kv, 0600).ok());
  auto r = Log::open(path.str());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kVersionMismatch);
  EXPECT_NE(r.status().message().find("7.2"), std::string::npos);
  EXPECT_NE(r.status().message().find("2.0"), std::string::npos);
}

// Rewrites a log's meta file with `edit` applied to its keys.
void edit_meta(const std::string& dir, const std::function<void(io::KeyValues&)>& edit) {
  auto kv = io::read_key_value_file(dir + "/shmlog.meta", "shmlog-log 1").value();
  edit(kv);
  ASSERT_TRUE(io::write_key_value_file(dir + "/shmlog.meta", "shmlog-log 1", kv, 0600).ok());
}

// A meta file's keys as a 1.2 binary wrote them: no nonce, no features.
void as_written_by_1_2(io::KeyValues& kv) {
  kv.erase("memory_nonce");
  kv.erase("features");
  kv["format_version"] = "1.2";
}

// A log of format 1.2 as a 1.2 binary left it: its meta file without the
// nonce and features, its memory under the old name with a 1.x header.
TEST(LogFiles, ALogOfFormatOneIsStillReadAsItIs) {
  test::TempLogPath path;
  std::string legacy;
  {
    auto log = Log::create(path.str(), small()).value();
    ASSERT_TRUE(log.producer().value().append(as_bytes("written by 1.2")));
    auto& h = *test::state(log).header;
    h.version_major = 1;
    h.version_minor = 2;
    h.features = 0;
    h.memory_nonce = 0;
    h.total_size = h.offsets_buffers_offset;  // 1.x has no offsets buffers
    h.offsets_buffers_offset = 0;
    const std::string memory = log.info().memory_path;
    legacy = memory.substr(0, memory.rfind('-'));
    ASSERT_EQ(::rename(memory.c_str(), legacy.c_str()), 0);
  }
  UnlinkOnExit shm_object{legacy};
  edit_meta(path.str(), as_written_by_1_2);
  auto log = Log::open(path.str());
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  EXPECT_EQ(log->info().memory_path, legacy);
  auto consumer = log->consumer().value();
  std::string got;
  consumer.poll([&](const Record& r) { got = test::bytes_to_string(r.value); });
  EXPECT_EQ(got, "written by 1.2");
}

// The same log after its memory was lost: made anew, it becomes a 2.0 log
// (a nonce, features named, producers fenced by the fence in their
// transaction word), which 1.x binaries refuse.
TEST(LogFiles, ALogOfFormatOneBecomesTwoWhenItsMemoryIsMadeAnew) {
  test::TempLogPath path;
  {
    auto log = Log::create(path.str(), small()).value();
    ASSERT_EQ(::unlink(log.info().memory_path.c_str()), 0);
  }
  edit_meta(path.str(), as_written_by_1_2);
  auto log = Log::open(path.str());
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  UnlinkOnExit shm_object{log->info().memory_path};
  auto kv = io::read_key_value_file(path.str() + "/shmlog.meta", "shmlog-log 1").value();
  EXPECT_EQ(kv["format_version"], "2.0");
  EXPECT_EQ(kv["features"], "memory_nonce,fences,pending_claims,committed_offsets,token_hashes,owner_pairs,append_counts");
  EXPECT_EQ(kv.count("memory_nonce"), 1u);
}

TEST(LogFiles, AFeatureThisShmlogDoesNotKnowIsRefusedNamingIt) {
  test::TempLogPath path;
  UnlinkOnExit shm_object{Log::create(path.str(), small()).value().info().memory_path};
  edit_meta(path.str(), [](io::KeyValues& kv) { kv["features"] = "memory_nonce,time_travel"; });
  auto r = Log::open(path.str());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kVersionMismatch);
  EXPECT_NE(r.status().message().find("time_travel"), std::string::npos) << r.status().message();
}

TEST(LogFiles, AHeaderWithAFeatureBitThisShmlogDoesNotKnowIsRefused) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small()).value();
  UnlinkOnExit shm_object{log.info().memory_path};
  test::state(log).header->features |= 1u << 31;
  auto r = Log::open(path.str());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kVersionMismatch);
  EXPECT_NE(r.status().message().find("does not know"), std::string::npos) << r.status().message();
  test::state(log).header->features &= ~(1u << 31);
}

TEST(LogFiles, TruncatedSharedMemoryObjectIsRefused) {
  test::TempLogPath path;
  std::string shm;
  {
    auto log = Log::create(path.str(), small()).value();
    shm = shm_path(log);
  }
  ASSERT_EQ(::truncate(shm.c_str(), 8192), 0);
  auto r = Log::open(path.str());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorrupt);
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status().message();
}

TEST(LogFiles, ForeignSharedMemoryObjectIsRefused) {
  test::TempLogPath path;
  std::string shm;
  {
    auto log = Log::create(path.str(), small()).value();
    shm = shm_path(log);
  }
  int fd = ::open(shm.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const char junk[] = "this is not a shmlog header";
  ASSERT_EQ(::pwrite(fd, junk, sizeof junk, 0), static_cast<ssize_t>(sizeof junk));
  ::close(fd);
  auto r = Log::open(path.str());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorrupt);
  EXPECT_NE(r.status().message().find("bad magic"), std::string::npos) << r.status().message();
}

TEST(LogFiles, VanishedSharedMemoryIsRecreatedEmptyOnOpen) {
  test::TempLogPath path;
  std::string shm;
  {
    auto log = Log::create(path.str(), small()).value();
    auto producer = log.producer().value();
    ASSERT_TRUE(producer.append(as_bytes("gone with the memory")));
    shm = shm_path(log);
  }
  ASSERT_EQ(::unlink(shm.c_str()), 0);
  auto r = Log::open(path.str());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->info().partitions[0].end_offset, 0u);
  auto producer = r->producer().value();
  EXPECT_TRUE(producer.append(as_bytes("works again")));
}

// /dev/shm full: a private mount namespace with a tiny tmpfs over /dev/shm
// makes it real. Creating must fail with kNoSpace, and nothing is left.
TEST(LogFiles, FullDevShmIsAClearErrorAtCreate) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs in a private namespace";
  const std::uint32_t pid = test::spawn([] {
    if (::unshare(CLONE_NEWNS) != 0) return 77;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 77;
    if (::mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=1m") != 0) return 77;
    test::TempLogPath path;
    LogOptions o;  // 64 MiB ring: cannot fit in 1 MiB
    auto r = Log::create(path.str(), o);
    if (r.ok()) return 1;
    if (r.status().code() != Status::Code::kNoSpace) return 2;
    if (r.status().message().find("/dev/shm") == std::string::npos) return 3;
    // Nothing half-made remains: the directory can take a smaller log.
    o.segment_size = 64 * 1024;
    o.ring_segments = 2;
    o.max_record_size = 1024;
    auto ok = Log::create(path.str(), o);
    return ok.ok() ? 0 : 4;
  });
  const int code = test::join(pid);
  if (code == 77) GTEST_SKIP() << "mount namespaces are not available here";
  EXPECT_EQ(code, 0);
}

}  // namespace
}  // namespace shmlog
