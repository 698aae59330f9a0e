#include "owner.h"

#include <algorithm>
#include <chrono>

#include "word_pair.h"

namespace shmlog::detail {
namespace {

bool has_owner_pairs(const LogState& s) noexcept {
  return (s.header->features & format::kFeatureOwnerPairs) != 0;
}

// The older lock word: pid << 32 | low 32 bits of the start time.
std::uint64_t lock_word_of(shm::ProcessId p) noexcept { return std::uint64_t{p.pid} << 32 | (p.start_time & 0xffffffffu); }
shm::ProcessId from_lock_word(std::uint64_t w) noexcept {
  return {static_cast<std::uint32_t>(w >> 32), w & 0xffffffffu, 0};
}

// A pair's holder; a pid word past any pid (damage) names none that runs.
shm::ProcessId from_pair(std::uint64_t pid, std::uint64_t stamp) noexcept {
  return shm::from_stamp(static_cast<std::uint32_t>(std::min(pid, shm::kPidLimit)), stamp);
}

}  // namespace

std::uint64_t own_stamp(const LogState& s) noexcept {
  const shm::ProcessId self = shm::self();
  // An older binary on the same memory compares the whole start time.
  return has_owner_pairs(s) ? shm::stamp_of(self) : self.start_time;
}

bool preparer_dead(const LogState& s, std::uint64_t word, std::uint64_t stamp) noexcept {
  const std::uint32_t pid = format::segment_pid(word);
  if (pid == 0 || stamp == 0) return false;  // no preparer named (yet)
  return !shm::is_alive(has_owner_pairs(s) ? shm::from_stamp(pid, stamp) : shm::ProcessId{pid, stamp, 0});
}

OwnerLock OwnerLock::admin(const LogState& s) noexcept {
  return has_owner_pairs(s) ? OwnerLock(s.header->admin_owner, nullptr) : OwnerLock(nullptr, &s.header->admin_lock);
}

OwnerLock OwnerLock::keeper_lease(const LogState& s) noexcept {
  return has_owner_pairs(s) ? OwnerLock(s.header->keeper_owner, nullptr)
                            : OwnerLock(nullptr, &s.header->keeper_lease);
}

OwnerLock::Taken OwnerLock::try_take() const noexcept {
  const shm::ProcessId self = shm::self();
  if (pair_ != nullptr) {
    // A failed CAS leaves the holder in (pid, stamp): judged, then replaced
    // only if it still holds.
    std::uint64_t pid = 0, stamp = 0;
    if (cas_pair(pair_, pid, stamp, self.pid, shm::stamp_of(self))) return Taken::kFree;
    if (shm::is_alive(from_pair(pid, stamp))) return Taken::kNo;
    return cas_pair(pair_, pid, stamp, self.pid, shm::stamp_of(self)) ? Taken::kFromDead : Taken::kNo;
  }
  auto word = format::atomic(*word_);
  const std::uint64_t mine = lock_word_of(self);
  std::uint64_t current = 0;
  if (word.compare_exchange_strong(current, mine, std::memory_order_acq_rel)) return Taken::kFree;
  if (shm::is_alive(from_lock_word(current))) return Taken::kNo;
  return word.compare_exchange_strong(current, mine, std::memory_order_acq_rel) ? Taken::kFromDead : Taken::kNo;
}

bool OwnerLock::take_from(shm::ProcessId holder) const noexcept {
  const shm::ProcessId self = shm::self();
  if (pair_ != nullptr) {
    std::uint64_t pid = holder.pid, stamp = shm::stamp_of(holder);
    return cas_pair(pair_, pid, stamp, self.pid, shm::stamp_of(self));
  }
  std::uint64_t theirs = lock_word_of(holder);
  return format::atomic(*word_).compare_exchange_strong(theirs, lock_word_of(self), std::memory_order_acq_rel);
}

void OwnerLock::release() const noexcept {
  const shm::ProcessId self = shm::self();
  if (pair_ != nullptr) {
    std::uint64_t pid = self.pid, stamp = shm::stamp_of(self);
    (void)cas_pair(pair_, pid, stamp, 0, 0);
    return;
  }
  std::uint64_t mine = lock_word_of(self);
  format::atomic(*word_).compare_exchange_strong(mine, 0, std::memory_order_acq_rel);
}

shm::ProcessId OwnerLock::holder() const noexcept {
  if (pair_ == nullptr) return from_lock_word(format::atomic(*word_).load(std::memory_order_acquire));
  // Loads, not a CAS (the mapping may be read-only); the pid read again
  // after the stamp, so a holder that changed between is read again (a
  // few times: memory someone keeps scribbling on gets a guess).
  std::uint64_t pid = 0, stamp = 0;
  for (int tries = 0; tries < 16; ++tries) {
    pid = format::atomic(pair_[0]).load(std::memory_order_acquire);
    stamp = format::atomic(pair_[1]).load(std::memory_order_acquire);
    if (format::atomic(pair_[0]).load(std::memory_order_acquire) == pid) break;
  }
  return from_pair(pid, stamp);
}

OwnerWait::OwnerWait(OwnerLock lock, std::chrono::nanoseconds patience) noexcept
    : lock_(lock), patience_(patience), since_(std::chrono::steady_clock::now()) {}

OwnerLock::Taken OwnerWait::take(std::uint64_t beat) noexcept {
  const OwnerLock::Taken taken = lock_.try_take();
  if (taken != OwnerLock::Taken::kNo) return taken;
  const shm::ProcessId holder = lock_.holder();
  const auto now = std::chrono::steady_clock::now();
  if (holder != seen_ || beat != beat_) {
    seen_ = holder;
    beat_ = beat;
    since_ = now;
    return OwnerLock::Taken::kNo;
  }
  const bool taken_over = now - since_ >= patience_ && shm::liveness(holder) == shm::Liveness::kUnknown &&
                          lock_.take_from(holder);
  return taken_over ? OwnerLock::Taken::kFromDead : OwnerLock::Taken::kNo;
}

AdminLock::AdminLock(const LogState& log) : lock_(OwnerLock::admin(log)) {
  OwnerWait wait(lock_, kUnjudgedPatience);
  for (std::uint32_t attempt = 0; wait.take() == OwnerLock::Taken::kNo; ++attempt) {
    if (attempt < 64) {
      shm::yield_now();
    } else {
      shm::sleep_for(std::chrono::microseconds(100));
    }
  }
}

AdminLock::~AdminLock() { lock_.release(); }

}  // namespace shmlog::detail
