// Named producers (idempotence): the last sequence that reached the log,
// kept in the producer's slot across its instances, and what a restart
// learns from the slot and the ring. A named producer counts its record
// itself just after publishing it; recovery covers an instance that died or
// was fenced between the two, and a transaction it left behind (txn.cc
// finishes that).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "format.h"
#include "log_state.h"
#include "shmlog/log.h"

namespace shmlog::detail {

// The instances of one named producer may overlap briefly (a fenced one
// finishing a commit): the recorded last sequence only ever goes up.
inline void raise_last_sequence(format::ProducerSlot& slot, std::uint64_t plus_one) noexcept {
  auto last = format::atomic(slot.last_sequence_plus_one);
  std::uint64_t seen = last.load(std::memory_order_relaxed);
  while (seen < plus_one &&
         !last.compare_exchange_weak(seen, plus_one, std::memory_order_release, std::memory_order_relaxed)) {
  }
}

// Moves a named identity's first epoch up once `epoch` is half the 16-bit
// circle past it (see recovery.cc).
void keep_epoch_window(format::ProducerSlot& slot, std::uint16_t epoch) noexcept;

// When the ring slot holding `segment` of partition p was taken for its
// next lap, before it is zeroed: counts the pending claims of named
// producers that lie in it (prepare.cc calls it).
void count_pending_claims(const LogState& s, std::uint32_t p, std::uint64_t segment) noexcept;

// What a named producer's restart learns from the ring.
struct Recovered {
  std::uint64_t last_sequence_plus_one = 0;  // 0: none
  std::string committed_offsets;             // of the last committed transaction that had any
  // Transactions spanning logs, by epoch: the coordinator a participant
  // named (kTxnPrepare), the participants a coordinator listed.
  std::map<std::uint16_t, std::string> prepared, participants;
};

// What the restart of named producer `id` (its new instance's `epoch`, its
// new fence stored) learns: see recovery.cc.
Result<Recovered> recover(const Log& log, const LogState& s, std::uint32_t id, std::uint16_t epoch, bool transactional);

}  // namespace shmlog::detail
