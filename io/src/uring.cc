#include "shmlog/io/uring.h"

#include <liburing.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shmlog::io {

struct Uring::Ring {
  struct io_uring ring {};
  bool live = false;
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
  return Uring(std::move(ring), depth);
}

Status Uring::run(std::span<IoOp> ops) {
  io_uring* ring = &ring_->ring;
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
    for (std::size_t i = next; i < end; ++i) {
      IoOp& op = ops[i];
      io_uring_sqe* sqe = io_uring_get_sqe(ring);
      if (sqe == nullptr) return Status(Status::Code::kIoError, "io_uring submission queue full");
      if (op.kind == IoOp::Kind::kWrite) {
        io_uring_prep_write(sqe, op.fd, op.data, op.size, op.offset);
      } else {
        io_uring_prep_fsync(sqe, op.fd, IORING_FSYNC_DATASYNC);
      }
      // A chain stops at the batch end (the last op's link is dropped).
      if (op.link && i + 1 < end) sqe->flags |= IOSQE_IO_LINK;
      io_uring_sqe_set_data64(sqe, i);
      op.result = -ECANCELED;
    }
    std::size_t pending = end - next;
    int rc;
    do {
      rc = io_uring_submit_and_wait(ring, static_cast<unsigned>(pending));
    } while (rc == -EINTR);
    if (rc < 0) return Status::from_errno("submitting to io_uring", -rc);
    while (pending > 0) {
      io_uring_cqe* cqe = nullptr;
      rc = io_uring_wait_cqe(ring, &cqe);
      if (rc == -EINTR) continue;
      if (rc < 0) return Status::from_errno("waiting for io_uring", -rc);
      const auto index = static_cast<std::size_t>(io_uring_cqe_get_data64(cqe));
      if (index < ops.size()) ops[index].result = cqe->res;
      io_uring_cqe_seen(ring, cqe);
      --pending;
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
