#include "shmlog/io/uring.h"

#include <liburing.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shmlog::io {

struct Uring::Ring {
  struct io_uring ring {};
  bool live = false;
  bool broken = false;         // an error left work in it: make a new one
  std::uint32_t generation = 0;  // tags completions with the run() they belong to
  ~Ring() {
    if (live) io_uring_queue_exit(&ring);
  }
};

Uring::Uring(std::unique_ptr<Ring> ring, unsigned depth) noexcept : ring_(std::move(ring)), depth_(depth) {}
Uring::Uring(Uring&&) noexcept = default;
Uring& Uring::operator=(Uring&&) noexcept = default;
Uring::~Uring() = default;

Result<Uring> Uring::create(unsigned depth) {
  auto ring = std::make_unique<Ring>();
  const int rc = io_uring_queue_init(depth, &ring->ring, 0);
  if (rc < 0) {
    return Status::from_errno("setting up io_uring (" + std::to_string(depth) + " entries)", -rc);
  }
  ring->live = true;
  // The kernel's worker threads (every fsync runs on one) run where the
  // creating thread may: a keeper pinned to a housekeeping core keeps its
  // syncs off the cores of spinning consumers. Best effort (kernel 5.14+).
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  if (::sched_getaffinity(0, sizeof cpus, &cpus) == 0) (void)io_uring_register_iowq_aff(&ring->ring, sizeof cpus, &cpus);
  return Uring(std::move(ring), depth);
}

Status Uring::run(std::span<IoOp> ops) {
  if (ring_->broken) return Status(Status::Code::kIoError, "io_uring left unusable by an earlier error");
  io_uring* ring = &ring_->ring;
  const std::uint64_t generation = ++ring_->generation;
  for (IoOp& op : ops) op.result = -ECANCELED;
  std::size_t next = 0;
  while (next < ops.size()) {
    // Take whole chains while they fit.
    std::size_t end = next;
    while (end < ops.size()) {
      std::size_t chain_end = end;
      while (chain_end < ops.size() && ops[chain_end].link) ++chain_end;
      if (chain_end < ops.size()) ++chain_end;  // the chain's last op
      if (chain_end - next > depth_ && end > next) break;
      end = chain_end;
    }
    std::size_t prepared = next;
    for (; prepared < end; ++prepared) {
      IoOp& op = ops[prepared];
      io_uring_sqe* sqe = io_uring_get_sqe(ring);
      if (sqe == nullptr) break;  // cannot happen: every run() drains what it submitted
      if (op.kind == IoOp::Kind::kWrite) {
        io_uring_prep_write(sqe, op.fd, op.data, op.size, op.offset);
      } else {
        io_uring_prep_fsync(sqe, op.fd, IORING_FSYNC_DATASYNC);
      }
      // A chain stops at the batch end (the last op's link is dropped).
      if (op.link && prepared + 1 < end) sqe->flags |= IOSQE_IO_LINK;
      io_uring_sqe_set_data64(sqe, generation << 32 | prepared);
    }
    // Submit everything prepared, then reap exactly what was submitted:
    // nothing of this call is left in the ring for the next one.
    Status failed;
    std::size_t submitted = 0;
    while (submitted < prepared - next) {
      const int rc = io_uring_submit(ring);
      if (rc == -EINTR || rc == -EAGAIN) continue;
      if (rc <= 0) {
        failed = Status::from_errno("submitting to io_uring", rc < 0 ? -rc : EIO);
        break;
      }
      submitted += static_cast<std::size_t>(rc);
    }
    std::size_t reaped = 0;
    while (reaped < submitted) {
      io_uring_cqe* cqe = nullptr;
      const int rc = io_uring_wait_cqe(ring, &cqe);
      if (rc == -EINTR || rc == -EAGAIN) continue;
      if (rc < 0) {
        ring_->broken = true;
        return Status::from_errno("waiting for io_uring", -rc);
      }
      const std::uint64_t tag = io_uring_cqe_get_data64(cqe);
      const int res = cqe->res;
      io_uring_cqe_seen(ring, cqe);
      if ((tag >> 32) != generation) continue;  // not this call's
      const auto index = static_cast<std::size_t>(tag & 0xffffffffu);
      if (index < ops.size()) ops[index].result = res;
      ++reaped;
    }
    if (!failed.ok() || prepared < end) {
      // Prepared entries may still sit in the submission queue.
      ring_->broken = true;
      return failed.ok() ? Status(Status::Code::kIoError, "io_uring submission queue full") : failed;
    }
    next = end;
  }
  return {};
}

void run_inline(std::span<IoOp> ops) noexcept {
  bool cancel = false;  // the previous op was linked and failed
  for (IoOp& op : ops) {
    if (cancel) {
      op.result = -ECANCELED;
    } else if (op.kind == IoOp::Kind::kWrite) {
      ssize_t rc;
      do {
        rc = ::pwrite(op.fd, op.data, op.size, static_cast<off_t>(op.offset));
      } while (rc < 0 && errno == EINTR);
      op.result = rc < 0 ? -errno : static_cast<int>(rc);
    } else {
      int rc;
      do {
        rc = ::fdatasync(op.fd);
      } while (rc < 0 && errno == EINTR);
      op.result = rc < 0 ? -errno : 0;
    }
    const bool failed = op.result < 0 || (op.kind == IoOp::Kind::kWrite && op.result != static_cast<int>(op.size));
    cancel = op.link && failed;
  }
}

}  // namespace shmlog::io
