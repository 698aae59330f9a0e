// A small io_uring front: batches of writes and fdatasyncs submitted
// together, chains linked so that a sync runs only after the writes before
// it succeeded. Writes go straight from the caller's memory (shared memory,
// for the flusher): no intermediate copy.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "shmlog/status.h"

namespace shmlog::io {

struct IoOp {
  enum class Kind : std::uint8_t { kWrite, kDataSync };
  Kind kind = Kind::kWrite;
  int fd = -1;
  const void* data = nullptr;  // kWrite
  std::uint32_t size = 0;
  std::uint64_t offset = 0;    // file offset
  bool link = false;           // the next op runs only if this one succeeds
  // Filled by run(): bytes written (0 for a sync), or -errno; a linked op
  // whose predecessor failed or wrote short gets -ECANCELED.
  int result = 0;
};

class Uring {
 public:
  // An io_uring with room for `depth` operations in flight; the error says
  // when the kernel refuses io_uring (old kernel, seccomp).
  static Result<Uring> create(unsigned depth);
  Uring(Uring&&) noexcept;
  Uring& operator=(Uring&&) noexcept;
  ~Uring();

  // Submits every op (at most `depth` in flight; a chain is never split
  // across submissions, so chains must be shorter than depth) and waits for
  // all of them. Returns an error only when io_uring itself fails (each
  // op's own outcome is in its `result`); such an error may leave work in
  // the ring, which then refuses more: make a new Uring.
  Status run(std::span<IoOp> ops);
  unsigned depth() const noexcept { return depth_; }

 private:
  struct Ring;
  explicit Uring(std::unique_ptr<Ring> ring, unsigned depth) noexcept;
  std::unique_ptr<Ring> ring_;
  unsigned depth_ = 0;
};

// Runs ops one after another with pwrite and fdatasync in the calling
// thread, with run()'s results and link semantics. For a small chain that a
// caller waits on: io_uring hands every fsync to a kernel worker thread, and
// the two wake-ups cost as much as a fast disk's sync.
void run_inline(std::span<IoOp> ops) noexcept;

}  // namespace shmlog::io
