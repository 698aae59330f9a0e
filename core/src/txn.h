// Transactions spanning several logs: the coordinator (the first log) holds
// the decision; each participant names it in kTxnPrepare records, and the
// coordinator lists its participants in a kTxnParticipants record, so that
// whoever finds a transaction abandoned can finish it the same way
// everywhere. Used by producers (commit, restart) and read_committed readers.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "format.h"
#include "log_state.h"
#include "shmlog/log.h"

namespace shmlog::detail {

// One log's part of a transaction: the log, the producer slot, the epoch.
struct TxnRef {
  std::uint64_t log_id = 0;
  std::uint16_t slot = 0;
  std::uint16_t epoch = 0;
  std::string dir;  // the log directory, to open it
};
// Entries: u64 log_id, u16 slot, u16 epoch, u16 dir length, dir bytes.
std::string encode_refs(const std::vector<TxnRef>& refs);
std::vector<TxnRef> decode_refs(std::string_view bytes);

// The offsets a transaction commits, as the value of its kTxnOffsets
// record: per entry u16 group length, the group's bytes, u32 partition,
// u64 offset (little endian; see core/README.md). Decoding keeps `group`'s
// entries and stops at the first that does not fit (pure).
using TxnOffsets = std::map<std::pair<std::string, std::uint32_t>, std::uint64_t>;
std::string encode_offsets(const TxnOffsets& offsets);
std::vector<std::pair<std::uint32_t, std::uint64_t>> decode_offsets(std::string_view bytes, const std::string& group);

// Decides "abort" for the open transaction `open_word` of producer slot
// `slot`: one CAS of its txn_word from that word to aborting, stamping
// txn_changed_ns when it moved the word. False if the word had moved on.
bool decide_abort(format::ProducerSlot& slot, std::uint64_t open_word) noexcept;

// How a coordinator named in a record is reached: a restarting producer
// opens it as any opener does; a reader (read_committed, inside poll) only
// maps memory that exists, of a log its own log's owner owns, without
// blocking, recovering, sweeping or keeping (a record is input: its path
// may name anything).
enum class Reach : std::uint8_t { kOpen, kExistingOnly };

// The coordinator's decision on transaction `ref`, opening its log (cached
// in `open_logs`). Undecided and its producer dead (or `decide_abort`):
// decides abort by CAS. Returns kCommitting, kAborting, kOpen (undecided,
// producer alive, or the coordinator not reachable) or kDone (the
// coordinator finished: markers everywhere). `owner`: the uid whose logs
// kExistingOnly may reach.
format::TxnState coordinator_decision(const TxnRef& ref, bool decide_abort, std::map<std::uint64_t, Log>& open_logs,
                                      Reach reach = Reach::kOpen, std::uint32_t owner = 0);

// Writes `decision`'s markers of transaction (slot, epoch) to every
// partition of `log` (through a producer slot of its own), then marks the
// transaction done in `slot`.
Status finish_part(const Log& log, std::uint16_t slot, std::uint16_t epoch, format::TxnState decision);

// The marker a decided transaction gets: commit for committing, else abort.
inline format::RecordType marker_for(format::TxnState decision) noexcept {
  return decision == format::TxnState::kCommitting ? format::RecordType::kTxnCommit : format::RecordType::kTxnAbort;
}

struct Internals {
  static const LogState& state(const Log& log);
  // Reach::kExistingOnly (log.cc): the log at `dir` if it is `owner`'s and
  // its memory exists; never makes, recovers, sweeps, keeps or blocks.
  static Result<Log> open_existing(const std::string& dir, std::uint32_t owner);
};

}  // namespace shmlog::detail
