// The keeper's way to the disk: batches of segment writes and syncs, segment
// files made and removed, and small files replaced atomically (the
// checkpoint). The disk layer sends
// batches to io_uring; tests put a fault-injecting layer in its place
// (io/testing/fault_layer.h), the way LevelDB's tests swap its Env.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "shmlog/io/files.h"
#include "shmlog/io/segment_file.h"
#include "shmlog/io/uring.h"
#include "shmlog/status.h"

namespace shmlog::io {

class FileLayer {
 public:
  virtual ~FileLayer() = default;
  // Runs `ops` with IoOp's semantics (each op's outcome in its result).
  // `inline_run`: a caller waits on this small batch, run it in the calling
  // thread (see run_inline). An error means the layer itself failed; the
  // ops then count as not done.
  virtual Status run(std::span<IoOp> ops, bool inline_run) = 0;
  // fsyncs a directory (see io::sync_directory).
  virtual Status sync_directory(const std::string& dir) = 0;
  // write_key_value_file through this layer.
  virtual Status replace_file(const std::string& path, const std::string& header, const KeyValues& values,
                              std::uint32_t mode) = 0;
  // SegmentFile::create without the directory sync: the caller syncs the
  // directory through this layer (once for several files).
  virtual Result<SegmentFile> create_segment_file(const std::string& partition_dir, const SegmentFileHeader& header,
                                                  std::uint32_t mode) = 0;
  // Removes a file; its name is gone from the disk once the directory is
  // synced through this layer.
  virtual Status remove_file(const std::string& path) = 0;
};

// The real disk: io_uring with room for `depth` ops in flight, made anew
// after an io_uring error.
Result<std::unique_ptr<FileLayer>> make_disk_layer(unsigned depth);

}  // namespace shmlog::io
