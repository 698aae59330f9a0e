// Durable logs: the keeper (lease, io_uring flusher, retention, offset
// checkpoints: durability.cc), recovery of the ring from segment files
// after a host crash, and reading segments that are no longer in the ring
// (disk_recovery.cc).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "log_state.h"

namespace shmlog::io {
class FileLayer;
}

namespace shmlog::detail {

// A keeper thread for one handle of a log: it waits for the lease (taking
// it when free, when its holder died, or when another handle in this
// process let it go), then runs the keeper until the handle goes away.
class Keeper {
 public:
  static std::unique_ptr<Keeper> start(const LogState& log);
  Keeper(const Keeper&) = delete;
  Keeper& operator=(const Keeper&) = delete;
  ~Keeper();

 private:
  Keeper(const LogState& log);
  const LogState& log_;
  std::atomic<bool> stop_{false};
  int pid_ = 0;  // the process that started the thread (a forked child must not join it)
  std::thread thread_;
};

// Runs the keeper in the calling thread until `stop`: waits for the lease,
// then flushes; on stop, writes and syncs what is committed, checkpoints
// and releases the lease.
Status keep(const LogState& log, const std::atomic<bool>& stop);

// Tests: keepers started and FileSinks opened from now on write through
// `layer` (nullptr: the disk, through io_uring for keepers). A seam for
// fault injection; never used by the library itself.
void set_file_layer_for_testing(std::shared_ptr<io::FileLayer> layer);
// The layer set above, or nullptr.
std::shared_ptr<io::FileLayer> file_layer_for_testing();

// Rebuilds a durable log's freshly zeroed shared memory from its segment
// files and its checkpoint, before the header's magic is published: cuts a
// torn tail, loads the last segments into the ring, restores group offsets
// and producer ids. A log without files is left empty.
Status recover_from_disk(LogState& log);

// The bytes of segment `segment` of a partition: the ring slot while it
// holds the segment, else (durable logs) the segment's file, read into
// `buffer`. nullptr when neither has it (deleted by retention, or not
// written yet). Ring bytes may change under the caller once the slot is
// reused; file bytes do not.
struct SegmentBuffer {
  std::uint32_t partition = UINT32_MAX;
  std::uint64_t segment = UINT64_MAX;
  std::vector<std::byte> data;
  std::string path;     // the file `data` came from
  std::string failure;  // why the last disk_segment found no copy (one line, naming the file)
};
const std::byte* disk_segment(const LogState& log, std::uint32_t p, std::uint64_t segment, SegmentBuffer& buffer);
const std::byte* segment_bytes(const LogState& log, std::uint32_t p, std::uint64_t segment, SegmentBuffer& buffer);

// The segment file of `segment` of partition p.
std::string segment_path(const LogState& log, std::uint32_t p, std::uint64_t segment);

// Durable producers: raises the partition's sync request to `end` and
// wakes the keeper.
void request_sync(const LogState& log, std::uint32_t p, std::uint64_t end) noexcept;
// Raises the sync request only, for a waiter that runs the round itself.
void raise_sync_request(const LogState& log, std::uint32_t p, std::uint64_t end) noexcept;

// A durable waiter's own flush round, run in its thread while this
// process's keeper holds the lease and is not in a round or its
// housekeeping: writes and syncs what is committed (and asked for) as the
// keeper would. False when it ran none (another process keeps the log, or
// the keeper is busy) or the round moved nothing.
bool run_keeper_round(const LogState& log) noexcept;

}  // namespace shmlog::detail
