#include "shmlog/io/file_layer.h"

namespace shmlog::io {
namespace {

class DiskLayer final : public FileLayer {
 public:
  explicit DiskLayer(Uring ring) : ring_(std::move(ring)) {}

  Status run(std::span<IoOp> ops, bool inline_run) override {
    if (inline_run) {
      run_inline(ops);
      return {};
    }
    Status ran = ring_.run(ops);
    if (!ran.ok()) {
      // The ring refuses more work after an error: the next run gets a new one.
      if (auto fresh = Uring::create(ring_.depth()); fresh.ok()) ring_ = std::move(fresh).value();
    }
    return ran;
  }

  Status sync_directory(const std::string& dir) override { return io::sync_directory(dir); }

  Status replace_file(const std::string& path, const std::string& header, const KeyValues& values,
                      std::uint32_t mode) override {
    return write_key_value_file(path, header, values, mode);
  }

  Result<SegmentFile> create_segment_file(const std::string& partition_dir, const SegmentFileHeader& header,
                                          std::uint32_t mode) override {
    return SegmentFile::create(partition_dir, header, mode, /*sync_directory=*/false);
  }

  Status remove_file(const std::string& path) override { return io::remove_file(path); }

 private:
  Uring ring_;
};

}  // namespace

Result<std::unique_ptr<FileLayer>> make_disk_layer(unsigned depth) {
  auto ring = Uring::create(depth);
  if (!ring.ok()) return std::move(ring).status();
  return std::unique_ptr<FileLayer>(new DiskLayer(std::move(ring).value()));
}

}  // namespace shmlog::io
