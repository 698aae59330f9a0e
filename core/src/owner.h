// Owners: how a log's shared memory names the process that holds
// something, and the one judgement of whether that process still runs.
//
// A holder is named by its pid and its stamp (shm::stamp_of: the low bits
// of its pid namespace and of its start time), so that neither a pid that
// another process reused nor a process of another pid namespace passes for
// it. Three shapes hold them:
//  - owner pairs {pid, stamp}, taken and freed by one 16-byte CAS: the
//    admin lock and the keeper lease (OwnerLock, OwnerWait, AdminLock);
//  - a segment descriptor's {state word, with the pid in its low 22 bits;
//    stamp}: who prepares the ring slot (own_stamp, preparer_dead);
//  - producer and member slots' pid, start_time and pid_namespace fields
//    (store_owner, load_owner).
// A holder is dead only on proof (shm::is_alive): one this process cannot
// judge (shm::Liveness::kUnknown: of another pid namespace, behind a /proc
// that cannot be read, or bytes in damaged memory that name no process)
// keeps what it holds, and only a process of its own namespace can find it
// dead. Locks that others wait for are taken from such a holder only after
// it held them, unchanged, for kUnjudgedPatience (the admin lock, held for
// microseconds) or five times that with a heartbeat that stood still (the
// keeper lease: a keeper beats it every round).
//
// Memory made before format::kFeatureOwnerPairs (by an older binary, which
// may still run on it) keeps the older shapes, which only this unit reads
// and writes: lock words pid << 32 | low 32 bits of the start time, and a
// preparer's full start time, neither with the namespace.
#pragma once

#include <chrono>
#include <cstdint>

#include "log_state.h"
#include "shmlog/shm/process.h"

namespace shmlog::detail {

inline constexpr std::chrono::seconds kUnjudgedPatience{2};

// This process's stamp in the shape s's segment descriptors keep.
std::uint64_t own_stamp(const LogState& s) noexcept;
// Whether the preparation a segment descriptor's (state word, stamp) names
// may be taken over: its preparer is proved dead.
bool preparer_dead(const LogState& s, std::uint64_t word, std::uint64_t stamp) noexcept;

// A lock in the log header that names its holder: the admin lock or the
// keeper lease. Never waits; AdminLock and the keeper wait on it.
class OwnerLock {
 public:
  static OwnerLock admin(const LogState& s) noexcept;
  static OwnerLock keeper_lease(const LogState& s) noexcept;

  enum class Taken : std::uint8_t { kNo, kFree, kFromDead };
  // Takes it for this process if it is free or its holder is dead.
  Taken try_take() const noexcept;
  // Frees it if this process holds it.
  void release() const noexcept;
  // Who holds it (pid 0: no one). Only loads: read-only attachments may ask.
  shm::ProcessId holder() const noexcept;

 private:
  friend class OwnerWait;
  OwnerLock(std::uint64_t* pair, std::uint64_t* word) noexcept : pair_(pair), word_(word) {}
  // Takes it if `holder` (as holder() gave it) still holds it.
  bool take_from(shm::ProcessId holder) const noexcept;
  std::uint64_t* pair_;  // {pid, stamp}; nullptr in memory without owner pairs
  std::uint64_t* word_;  // pid << 32 | low start bits, in memory without them
};

// Waiting for an OwnerLock: take() tries it, and takes it from a holder no
// one here can judge once that holder kept it, unchanged and with `beat`
// (a heartbeat it advances, or 0) standing still, for `patience`.
class OwnerWait {
 public:
  OwnerWait(OwnerLock lock, std::chrono::nanoseconds patience) noexcept;
  OwnerLock::Taken take(std::uint64_t beat = 0) noexcept;

 private:
  OwnerLock lock_;
  std::chrono::nanoseconds patience_;
  shm::ProcessId seen_;
  std::uint64_t beat_ = 0;
  std::chrono::steady_clock::time_point since_;
};

// The admin lock: serialises registration of producers and group members
// and reaping. Held briefly; waited for while a live process holds it.
class AdminLock {
 public:
  explicit AdminLock(const LogState& log);
  AdminLock(const AdminLock&) = delete;
  AdminLock& operator=(const AdminLock&) = delete;
  ~AdminLock();

 private:
  OwnerLock lock_;
};

// A producer or member slot's owner: store_owner writes the start time and
// namespace first and the pid last with release; load_owner reads the pid
// with acquire, then the rest, so a reader that sees a new owner's pid
// sees the rest of it too. A reader that still sees the old pid may pair
// it with the new start time and judge the old owner gone, which it is:
// a slot is reused only after its owner left, died or was fenced.
template <typename Slot>
void store_owner(Slot& slot, shm::ProcessId who) noexcept {
  format::atomic(slot.start_time).store(who.start_time, std::memory_order_relaxed);
  format::atomic(slot.pid_namespace).store(who.pid_namespace, std::memory_order_relaxed);
  format::atomic(slot.pid).store(who.pid, std::memory_order_release);
}
template <typename Slot>
shm::ProcessId load_owner(const Slot& slot) noexcept {
  auto& s = const_cast<Slot&>(slot);
  const std::uint32_t pid = format::atomic(s.pid).load(std::memory_order_acquire);
  return {pid, format::atomic(s.start_time).load(std::memory_order_relaxed),
          format::atomic(s.pid_namespace).load(std::memory_order_relaxed)};
}

}  // namespace shmlog::detail
