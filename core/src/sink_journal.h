// The file sink's journal (<output>.offsets): fixed-size entries appended
// after each checkpoint, each with the output's length and the offsets it
// holds up to, and a CRC (the format is in core/README.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shmlog/status.h"

namespace shmlog::detail {

// A journal larger than this is not one (it is compacted at 1 MiB).
inline constexpr std::size_t kMaxJournalBytes = 16u << 20;

std::string encode_journal_entry(std::uint64_t log_id, std::uint64_t length, const std::vector<std::uint64_t>& offsets);

struct JournalState {
  std::size_t end = 0;                 // bytes up to the end of the newest whole entry (0: none)
  std::uint64_t length = 0;            // the output's length it names
  std::vector<std::uint64_t> offsets;  // by partition; UINT64_MAX where none
};
// The newest whole entry wins: damage to an older one does not matter, and
// what follows the newest (a crash mid-write, or damage) is for the caller
// to cut. Entries of another partition count are kCorrupt, of another log
// kInvalidArgument (`name` names the journal in errors). Pure.
Result<JournalState> decode_journal(std::string_view text, std::uint32_t partitions, std::uint64_t log_id,
                                   const std::string& name);

}  // namespace shmlog::detail
