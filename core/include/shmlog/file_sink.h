// Exactly-once output to a file: the output and the offsets it came from
// advance together, so a consumer killed at any point and restarted writes
// every record once.
//
//   auto sink = shmlog::FileSink::open("out.txt", log).value();
//   for each owned partition p with sink.offset(p): consumer.seek(p, *sink.offset(p));
//   consumer.poll([&](const shmlog::Record& r) { sink.write(r.value); sink.write("\n");
//                                                sink.advance(r.partition, r.next_offset); });
//   sink.checkpoint();  // after each poll: the data, then the offsets
//
// FILE holds the output; FILE.offsets is a journal of checkpoints (file
// length and one offset per partition, with a CRC), appended after the data
// it covers. Opening cuts FILE back to the length of the last whole
// checkpoint, so whatever was written after it (and will be read again) is
// gone. A process crash (kill -9) loses nothing committed to the file; a
// host crash needs the file system to keep the order of the two writes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmlog/log.h"

namespace shmlog {

class FileSink {
 public:
  // Opens or creates FILE and FILE.offsets for `log`. Refuses a FILE with
  // data but no journal, a journal of another log, or a FILE shorter than
  // its checkpoint (changed outside shmlog), naming the file.
  static Result<FileSink> open(const std::string& path, const Log& log);
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
};

}  // namespace shmlog
