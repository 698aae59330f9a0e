// Helpers for host-crash tests: a durable log's keeper writing through a
// fault-injecting file layer (io/testing/fault_layer.h), and what a host
// crash does to the shared memory.
#pragma once

#include <memory>
#include <string>

#include "durability.h"
#include "fault_layer.h"
#include "shmlog/log.h"
#include "shmlog/status.h"

namespace shmlog::test {

// Keepers started while this lives write through `layer`.
class FileLayerScope {
 public:
  explicit FileLayerScope(std::shared_ptr<io::FileLayer> layer) {
    detail::set_file_layer_for_testing(std::move(layer));
  }
  FileLayerScope(const FileLayerScope&) = delete;
  FileLayerScope& operator=(const FileLayerScope&) = delete;
  ~FileLayerScope() { detail::set_file_layer_for_testing(nullptr); }
};

// A host crash empties /dev/shm: removes the shared memory of the log at
// `path` (no process may still have it open for this to mean anything).
Status lose_shared_memory(const std::string& path);

// Removes the log at `path` (its directory too) and every shared-memory
// object of this user in /dev/shm whose header names it: a log whose meta
// file a trial damaged, or whose memory a simulated crash left behind, is
// not found by Log::remove alone, and the objects would pile up in memory.
void remove_log_and_its_memory(const std::string& path);

// Makes the log's checkpoint one taken earlier: partition p durable up to
// `durable` (recovery trusts every byte below it and cuts at the first hole
// past it) and each named producer's durable sequence at most
// `sequence_plus_one`, as a checkpoint of that time holds.
Status rewind_checkpoint(const std::string& path, std::uint32_t p, std::uint64_t durable,
                         std::uint64_t sequence_plus_one);

}  // namespace shmlog::test
