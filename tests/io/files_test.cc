#include "shmlog/io/files.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace shmlog::io {
namespace {

std::string temp_file() { return "/tmp/shmlog-io-test-" + std::to_string(::getpid()); }

TEST(KeyValueFile, RoundTrips) {
  const std::string path = temp_file();
  KeyValues kv{{"a", "1"}, {"b_c", "two words"}};
  ASSERT_TRUE(write_key_value_file(path, "hdr 1", kv, 0600).ok());
  auto back = read_key_value_file(path, "hdr 1");
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, kv);
  EXPECT_FALSE(file_exists(path + ".tmp"));
  ::unlink(path.c_str());
}

// The file ends in the checksum of what comes before it: any change to a
// key or value is damage; a file without one (an earlier shmlog's) reads
// as it is; the checksum must be the last line.
TEST(KeyValueFile, EndsInAChecksumThatCatchesAnyChange) {
  const std::string path = temp_file();
  ASSERT_TRUE(write_key_value_file(path, "h", {{"offset", "4096"}}, 0600).ok());
  std::string text;
  {
    std::ifstream in(path);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_EQ(text.rfind("crc32c="), text.size() - 16) << text;
  EXPECT_EQ(parse_key_values(text, "h", "f").value(), (KeyValues{{"offset", "4096"}}));
  std::string changed = text;
  changed[text.find("4096")] = '5';
  auto r = parse_key_values(changed, "h", "f");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorrupt);
  EXPECT_EQ(r.status().message(), "f: checksum mismatch (the file is damaged)");
  EXPECT_EQ(parse_key_values("h\noffset=4096\n", "h", "f").value(), (KeyValues{{"offset", "4096"}}));
  r = parse_key_values(text + "more=1\n", "h", "f");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("the checksum is not the last line"), std::string::npos) << r.status().message();
  ::unlink(path.c_str());
}

TEST(KeyValueFile, RefusesBadKeysAndValues) {
  const std::string path = temp_file();
  EXPECT_FALSE(write_key_value_file(path, "h", {{"Bad Key", "x"}}, 0600).ok());
  EXPECT_FALSE(write_key_value_file(path, "h", {{"k", "two\nlines"}}, 0600).ok());
}

TEST(KeyValueFile, TornLastLineIsCorruptNamingTheLine) {
  const std::string path = temp_file();
  std::ofstream(path) << "h\nk=v\nhalf";
  auto r = read_key_value_file(path, "h");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorrupt);
  EXPECT_NE(r.status().message().find("line 3"), std::string::npos) << r.status().message();
  ::unlink(path.c_str());
}

TEST(KeyValueFile, WrongHeaderOrEmptyFileIsCorrupt) {
  const std::string path = temp_file();
  std::ofstream(path) << "other\n";
  EXPECT_EQ(read_key_value_file(path, "h").status().code(), Status::Code::kCorrupt);
  std::ofstream(path, std::ios::trunc) << "";
  EXPECT_EQ(read_key_value_file(path, "h").status().code(), Status::Code::kCorrupt);
  ::unlink(path.c_str());
}

TEST(Directory, CreateAcceptsEmptyAndRefusesNonEmpty) {
  const std::string dir = temp_file() + "-dir";
  ASSERT_TRUE(create_empty_directory(dir, 0700).ok());
  EXPECT_TRUE(create_empty_directory(dir, 0700).ok());
  std::ofstream(dir + "/x") << "x";
  auto s = create_empty_directory(dir, 0700);
  EXPECT_EQ(s.code(), Status::Code::kAlreadyExists);
  EXPECT_TRUE(remove_file(dir + "/x").ok());
  EXPECT_TRUE(remove_directory(dir).ok());
}

// The plain file operations the file sink uses: a symlink is never
// followed, an exclusive create refuses an existing file, the lock is one
// holder's, a rename is seen, reads stop past their limit, and every error
// names its file.
TEST(PlainFile, OpensLocksReadsAndCutsWithErrorsNamingTheFile) {
  const std::string path = temp_file() + "-plain";
  const std::string link = path + "-link";
  ::unlink(path.c_str());
  ::unlink(link.c_str());
  auto fd = open_read_write(path, 0600);
  ASSERT_TRUE(fd.ok()) << fd.status().to_string();
  auto again = open_read_write(path, 0600, /*exclusive=*/true);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("creating " + path), std::string::npos) << again.status().message();
  ASSERT_EQ(::symlink(path.c_str(), link.c_str()), 0);
  EXPECT_FALSE(open_read_write(link, 0600).ok());

  EXPECT_TRUE(try_lock_file(*fd, path).value());
  auto other = open_read_write(path, 0600);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(try_lock_file(*other, path).value());  // held by the first open file

  ASSERT_TRUE(pwrite_all(*fd, "0123456789", 10, 0, path).ok());
  EXPECT_EQ(file_size(*fd, path).value(), 10u);
  EXPECT_EQ(read_whole_file(*fd, path, 1 << 20).value(), "0123456789");
  ASSERT_TRUE(truncate_file(*fd, 4, "cutting " + path).ok());
  EXPECT_EQ(read_whole_file(*other, path, 1 << 20).value(), "0123");

  EXPECT_TRUE(names_same_file(*fd, path));
  const std::string replacement = path + "-new";
  auto fresh = open_read_write(replacement, 0600, /*exclusive=*/true);
  ASSERT_TRUE(fresh.ok());
  ASSERT_TRUE(rename_file(replacement, path).ok());
  EXPECT_FALSE(names_same_file(*fd, path));
  EXPECT_TRUE(names_same_file(*fresh, path));
  auto missing = rename_file(replacement, path);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("replacing " + path), std::string::npos) << missing.message();
  auto bad = truncate_file(-1, 0, "cutting nothing");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("cutting nothing"), std::string::npos);

  for (int f : {*fd, *other, *fresh}) close_file(f);
  ::unlink(path.c_str());
  ::unlink(link.c_str());
}

}  // namespace
}  // namespace shmlog::io
