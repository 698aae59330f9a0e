// The io_uring front and its inline twin: results per op, chains cut at the
// first failure, chains longer than the ring split only between chains, and
// nothing of one run() left in the ring for the next.
#include "shmlog/io/uring.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

namespace shmlog::io {
namespace {

class TempFile {
 public:
  TempFile() : path_("/tmp/shmlog-uring-test-" + std::to_string(::getpid())) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  }
  ~TempFile() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  int fd() const { return fd_; }
  std::string read_all() const {
    std::string out(static_cast<std::size_t>(::lseek(fd_, 0, SEEK_END)), '\0');
    EXPECT_EQ(::pread(fd_, out.data(), out.size(), 0), static_cast<ssize_t>(out.size()));
    return out;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

IoOp write_op(int fd, const std::string& data, std::uint64_t offset, bool link) {
  IoOp op;
  op.fd = fd;
  op.data = data.data();
  op.size = static_cast<std::uint32_t>(data.size());
  op.offset = offset;
  op.link = link;
  return op;
}

IoOp sync_op(int fd) {
  IoOp op;
  op.kind = IoOp::Kind::kDataSync;
  op.fd = fd;
  return op;
}

// Both ways of running ops must agree.
using Runner = void (*)(Uring&, std::vector<IoOp>&);
void through_uring(Uring& ring, std::vector<IoOp>& ops) { ASSERT_TRUE(ring.run(ops).ok()); }
void inline_calls(Uring&, std::vector<IoOp>& ops) { run_inline(ops); }

class UringRun : public ::testing::TestWithParam<Runner> {};

TEST_P(UringRun, WritesThenLinkedSyncReportBytesAndZero) {
  TempFile f;
  auto ring = Uring::create(8).value();
  const std::string a = "hello ", b = "world";
  std::vector<IoOp> ops{write_op(f.fd(), a, 0, true), write_op(f.fd(), b, 6, true), sync_op(f.fd())};
  GetParam()(ring, ops);
  EXPECT_EQ(ops[0].result, 6);
  EXPECT_EQ(ops[1].result, 5);
  EXPECT_EQ(ops[2].result, 0);
  EXPECT_EQ(f.read_all(), "hello world");
}

TEST_P(UringRun, FailedWriteCancelsTheRestOfItsChainOnly) {
  TempFile f;
  auto ring = Uring::create(8).value();
  const std::string a = "aaaa", b = "bbbb";
  std::vector<IoOp> ops{write_op(-1, a, 0, true), sync_op(f.fd()),  // chain 1: a bad fd
                        write_op(f.fd(), b, 0, true), sync_op(f.fd())};
  GetParam()(ring, ops);
  EXPECT_EQ(ops[0].result, -EBADF);
  EXPECT_EQ(ops[1].result, -ECANCELED);
  EXPECT_EQ(ops[2].result, 4);
  EXPECT_EQ(ops[3].result, 0);
  // The ring is clean for the next run: its results are its own.
  std::vector<IoOp> again{write_op(f.fd(), a, 4, false)};
  GetParam()(ring, again);
  EXPECT_EQ(again[0].result, 4);
  EXPECT_EQ(f.read_all(), "bbbbaaaa");
}

INSTANTIATE_TEST_SUITE_P(BothWays, UringRun, ::testing::Values(&through_uring, &inline_calls),
                         [](const ::testing::TestParamInfo<Runner>& param) {
                           return std::string(param.param == &through_uring ? "Uring" : "Inline");
                         });

TEST(Uring, MoreOpsThanTheRingHoldsRunInSeveralSubmissions) {
  TempFile f;
  auto ring = Uring::create(4).value();
  std::vector<std::string> pieces;
  for (int i = 0; i < 40; ++i) pieces.push_back(std::string(1, static_cast<char>('a' + i % 26)));
  std::vector<IoOp> ops;
  for (int i = 0; i < 40; ++i) {
    // Chains of three writes and a sync: never split across submissions.
    ops.push_back(write_op(f.fd(), pieces[static_cast<std::size_t>(i)], static_cast<std::uint64_t>(i), true));
    if (i % 3 == 2) ops.push_back(sync_op(f.fd()));
  }
  ops.back().link = false;
  ASSERT_TRUE(ring.run(ops).ok());
  std::string expected;
  for (const auto& p : pieces) expected += p;
  for (const IoOp& op : ops) EXPECT_EQ(op.result, op.kind == IoOp::Kind::kWrite ? 1 : 0);
  EXPECT_EQ(f.read_all(), expected);
}

}  // namespace
}  // namespace shmlog::io
