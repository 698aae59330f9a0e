// What another local user can do to a log: plant an object or a symlink at
// its shared-memory name, or forge its header. The owner's processes never
// run on memory they did not make. (The tests as another user, with
// setpriv, are in tests/tools/security_test.sh.)
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <string>

#include "log_access.h"
#include "meta.h"
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

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::string& path, const std::string& bytes, mode_t mode) {
  std::ofstream(path, std::ios::binary) << bytes;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

// Creates a log with one record, closes it and removes its shared memory
// (as a reboot would); returns the old object's path and bytes.
std::pair<std::string, std::string> create_then_lose_memory(const std::string& path) {
  auto log = Log::create(path, small()).value();
  EXPECT_TRUE(log.producer().value().append(as_bytes("before")));
  const std::string memory = log.info().memory_path;
  std::string bytes = read_file(memory);
  EXPECT_EQ(::unlink(memory.c_str()), 0);
  return {memory, bytes};
}

// The log reopened works on memory of its own: appends and reads there,
// and the planted file at `planted` keeps its bytes.
void expect_runs_on_its_own_memory(const std::string& path, const std::string& planted,
                                   const std::string& planted_bytes) {
  auto log = Log::open(path);
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  EXPECT_NE(log->info().memory_path, planted);
  ASSERT_TRUE(log->producer().value().append(as_bytes("after")));
  auto consumer = log->consumer().value();
  std::string got;
  consumer.poll([&](const Record& r) { got += test::bytes_to_string(r.value); });
  EXPECT_EQ(got, "after");  // a memory-only log starts empty after its memory is lost
  EXPECT_EQ(read_file(planted), planted_bytes);
}

TEST(Security, AnObjectOfAnotherOwnerAtTheMemoryNameIsNotUsed) {
  test::TempLogPath path;
  const auto [memory, bytes] = create_then_lose_memory(path.str());
  // Planted: the header copied (as anyone who read the object could), but
  // owned by someone else and writable by all.
  write_file(memory, bytes, 0666);
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(memory.c_str(), 65534, 65534), 0);
  }
  expect_runs_on_its_own_memory(path.str(), memory, bytes);
  ::unlink(memory.c_str());
  ASSERT_TRUE(Log::remove(path.str()).ok());
}

TEST(Security, ASymlinkAtTheMemoryNameIsNotFollowed) {
  test::TempLogPath path;
  const auto [memory, bytes] = create_then_lose_memory(path.str());
  const std::string target = path.str() + "-target";
  write_file(target, bytes, 0600);
  ASSERT_EQ(::symlink(target.c_str(), memory.c_str()), 0);
  expect_runs_on_its_own_memory(path.str(), target, bytes);
  ::unlink(memory.c_str());
  ::unlink(target.c_str());
  ASSERT_TRUE(Log::remove(path.str()).ok());
}

TEST(Security, TheMemoryNameChangesEachTimeItIsMadeAnewAndOnlyTheMetaFileHasIt) {
  test::TempLogPath path;
  const auto [memory, bytes] = create_then_lose_memory(path.str());
  auto log = Log::open(path.str()).value();
  const std::string next = log.info().memory_path;
  EXPECT_NE(next, memory);
  auto meta = detail::read_meta(path.str());
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(detail::memory_path_for(*meta), next);
  EXPECT_NE(meta->memory_nonce, 0u);
  EXPECT_NE(next.find(detail::to_meta(*meta).at("memory_nonce")), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat((path.str() + "/shmlog.meta").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0u);  // the name's random part is the owner's to read
  ASSERT_TRUE(Log::remove(path.str()).ok());
}

TEST(Security, AHeaderWithAnotherNonceIsRefused) {
  test::TempLogPath path;
  auto log = Log::create(path.str(), small()).value();
  test::state(log).header->memory_nonce ^= 1;  // a forged header that guessed everything else
  auto opened = Log::open(path.str());
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), Status::Code::kCorrupt);
  EXPECT_NE(opened.status().message().find("foreign or corrupt object"), std::string::npos) << opened.status().message();
  test::state(log).header->memory_nonce ^= 1;
  ASSERT_TRUE(Log::remove(path.str()).ok());
}

TEST(Security, AMetaFileFromBeforeNoncesStillOpens) {
  test::TempLogPath path;
  create_then_lose_memory(path.str());
  auto meta = detail::read_meta(path.str()).value();
  meta.memory_nonce = 0;  // as format 1.2 wrote it
  auto kv = detail::to_meta(meta);
  EXPECT_EQ(kv.count("memory_nonce"), 0u);
  ASSERT_TRUE(io::write_key_value_file(path.str() + "/shmlog.meta", detail::kMetaHeader, kv, 0600).ok());
  auto log = Log::open(path.str());
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  EXPECT_NE(detail::read_meta(path.str()).value().memory_nonce, 0u);  // named anew, with a nonce
  ASSERT_TRUE(Log::remove(path.str()).ok());
}

TEST(Security, MemoryWhoseCreatorDiedBeforePublishingItIsMadeAnew) {
  test::TempLogPath path;
  std::string memory;
  {
    auto log = Log::create(path.str(), small()).value();
    memory = log.info().memory_path;
    // As a process that made the memory anew and died before its last
    // store would leave it: everything but the magic.
    format::atomic(test::state(log).header->magic).store(0);
  }
  auto log = Log::open(path.str());
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  EXPECT_NE(log->info().memory_path, memory);
  struct stat st {};
  EXPECT_NE(::stat(memory.c_str(), &st), 0) << "the dead creator's object is left behind";
  ASSERT_TRUE(log->producer().value().append(as_bytes("works")));
  ASSERT_TRUE(Log::remove(path.str()).ok());
}

}  // namespace
}  // namespace shmlog
