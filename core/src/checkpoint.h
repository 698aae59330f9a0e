// The checkpoint file (shmlog.state) of a durable log: what a host crash
// would otherwise lose from shared memory (group offsets, named producers'
// identities, partitions' durable positions). key=value lines, replaced
// atomically by the keeper (durability.cc), read by recovery
// (disk_recovery.cc). The format is in io/README.md ("shmlog.state").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmlog/io/files.h"
#include "log_state.h"
#include "shmlog/log.h"

namespace shmlog::detail {

inline constexpr const char* kStateFile = "shmlog.state";
inline constexpr const char* kStateHeader = "shmlog-state 1";

struct Checkpoint {
  std::uint64_t log_id = 0;
  std::vector<std::uint64_t> durable;  // by partition: every byte below was synced
  // By partition: the first offset retention kept (files below it were
  // removed on purpose); UINT64_MAX where the checkpoint does not say
  // (written before it did).
  std::vector<std::uint64_t> start;
  // By partition: records and bytes appended since the log was created
  // (`appended.p`; absent in older checkpoints: empty).
  std::vector<AppendTotals> appended;
  struct Group {
    std::uint32_t slot = 0;
    std::string name;
    std::vector<std::uint64_t> offsets;  // committed, by partition
  };
  std::vector<Group> groups;
  struct Producer {
    std::uint32_t slot = 0;
    std::string name;
    std::uint16_t epoch = 0, first_epoch = 0;
    std::uint64_t next_sequence = 0;  // last durable sequence + 1
    std::uint64_t txn_word = 0;
    std::uint32_t txn_timeout_ms = 0;
    std::uint64_t txn_changed_ns = 0;
    // The last committed transaction offsets (an OffsetsBuffer's bytes),
    // when kept: `producer.N.offsets` = epoch,hex.
    bool has_offsets = false;
    std::uint16_t offsets_epoch = 0;
    std::string offsets;
  };
  std::vector<Producer> producers;
};

io::KeyValues encode_checkpoint(const Checkpoint& c);
// Every entry checked against the log's options (slots, partitions, names,
// number ranges); anything else is kCorrupt naming the file and the entry.
// Keys this version does not know are ignored. Pure.
Result<Checkpoint> decode_checkpoint(const io::KeyValues& values, const LogOptions& options, const std::string& file);
Result<Checkpoint> decode_checkpoint(std::string_view text, const LogOptions& options, const std::string& file);

// The checkpoint file of the log in `dir` (none when there is none); one of
// another log is kCorrupt.
Result<std::optional<Checkpoint>> read_checkpoint(const std::string& dir, const LogOptions& options,
                                                   std::uint64_t log_id);

// Restores the log's checkpoint into fresh memory (no process attached
// yet): groups, named producers, the partitions' append totals; and gives
// each partition's checkpointed durable position (0 when absent) and
// retained start (UINT64_MAX when absent).
Status restore_checkpoint(LogState& s, std::vector<std::uint64_t>& durable, std::vector<std::uint64_t>& start);

}  // namespace shmlog::detail
