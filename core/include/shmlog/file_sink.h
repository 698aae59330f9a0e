// Exactly-once output to a file: the output and the offsets it came from
// advance together, so a consumer killed at any point and restarted writes
// every record once.
//
//   auto sink = shmlog::FileSink::open("out.txt", log).value();
//   for each owned partition p with sink.offset(p): consumer.seek(p, *sink.offset(p));
//   consumer.poll([&](const shmlog::Record& r) { sink.write(r.value); sink.write("\n");
//                                                sink.advance(r.partition, r.next_offset); });
//   for each owned partition p: sink.advance(p, *consumer.position(p));
//   sink.checkpoint();  // after each poll: the data, then the offsets
//   consumer.commit();
//
// (The position after the poll, which commit() gives the group: a poll may
// step over a segment's end padding after its last record, and once the
// group is past it the ring may reuse that segment, so the last record's
// next_offset may no longer be retained when a restart seeks to it.)
//
// FILE holds the output; FILE.offsets is a journal of checkpoints (file
// length and one offset per partition, with a CRC), appended after the data
// it covers, both synced (fdatasync) before the next: a host crash leaves
// the journal at most one entry ahead of being written, never ahead of the
// data. Opening takes the newest whole checkpoint (damaged older entries
// do not matter, damaged newer ones are a torn tail and cut) and cuts FILE
// back to its length: whatever was written after it is read again. FILE's
// output is never cut without a checkpoint saying where to read it again
// from: a journal with no readable entry beside a FILE with data is
// refused. Survives::kProcessCrash skips the syncs (a kill -9 still loses
// nothing; a host crash may).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmlog/log.h"

namespace shmlog {

namespace io {
class FileLayer;
}

class FileSink {
 public:
  // What a checkpoint survives: kHostCrash syncs the output, then the
  // journal; kProcessCrash writes both without syncing.
  enum class Survives : std::uint8_t { kHostCrash, kProcessCrash };

  // Opens or creates FILE and FILE.offsets for `log` (with the log's file
  // mode). Refuses a FILE with data but no journal or no readable
  // checkpoint, a journal of another log, or a FILE shorter than its
  // checkpoint (changed outside shmlog), naming the file.
  static Result<FileSink> open(const std::string& path, const Log& log, Survives survives = Survives::kHostCrash);
  FileSink(FileSink&&) noexcept;
  FileSink& operator=(FileSink&&) noexcept;
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;
  ~FileSink();

  // Where reading of partition p resumes (from the last checkpoint), if any.
  std::optional<std::uint64_t> offset(std::uint32_t partition) const;
  // Buffers output; it reaches FILE at the next checkpoint.
  void write(std::string_view bytes);
  void write(Bytes bytes) { write(as_string(bytes)); }
  // Records that partition p has been consumed up to `next_offset`.
  void advance(std::uint32_t partition, std::uint64_t next_offset);
  // Writes the buffered output, then a checkpoint entry naming the new file
  // length and the offsets. Idempotent when nothing changed.
  Status checkpoint();
  std::uint64_t file_length() const noexcept { return length_; }
  // Bytes cut off FILE at open: output written after the last checkpoint.
  std::uint64_t truncated_at_open() const noexcept { return truncated_; }

 private:
  FileSink() = default;
  void reset() noexcept;
  std::string path_;
  int data_fd_ = -1;
  int journal_fd_ = -1;
  std::uint64_t log_id_ = 0;
  std::uint64_t length_ = 0;           // FILE's length up to the last checkpoint
  std::uint64_t journal_length_ = 0;
  std::uint64_t truncated_ = 0;
  std::vector<std::uint64_t> offsets_;  // UINT64_MAX: none yet
  std::string buffer_;
  bool dirty_ = false;
  Survives survives_ = Survives::kHostCrash;
  std::shared_ptr<io::FileLayer> layer_;  // tests: writes and syncs go through it (a fault-injecting layer)
  std::uint32_t mode_ = 0600;
};

}  // namespace shmlog
