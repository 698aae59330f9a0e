// Group membership as a consumer sees it: a member takes the partitions
// assigned to it (the offset slot's ownership word, by CAS), releases
// those it no longer has, judges the other members' liveness and
// rebalances when the membership changes. And deleting a group.
#include <algorithm>

#include "consumer_state.h"
#include "owner.h"

namespace shmlog::detail {

using format::atomic;

namespace {
constexpr auto kActive = static_cast<std::uint32_t>(format::SlotState::kActive);
constexpr auto kFree = static_cast<std::uint32_t>(format::SlotState::kFree);
constexpr auto kLivenessInterval = std::chrono::milliseconds(100);
}  // namespace

bool ConsumerState::try_acquire(Part& part) {
  const LogState& s = *log;
  auto ownership = atomic(slot(part).ownership);
  std::uint64_t current = ownership.load(std::memory_order_acquire);
  const std::uint32_t owner = format::ownership_owner(current);
  const std::uint32_t acquisitions = format::ownership_acquisitions(current);
  if (owner != 0 && owner != member + 1) {
    // Held by another member: it lets go when it sees the new membership,
    // or is reaped when it is dead.
    const std::uint32_t m = owner - 1;
    const bool gone = m >= s.options.max_members ||  // garbage
                      atomic(const_cast<std::uint32_t&>(s.member(group, m).state)).load(std::memory_order_acquire) == kFree;
    if (gone) ownership.compare_exchange_strong(current, format::make_ownership(0, acquisitions), std::memory_order_acq_rel);
    return false;
  }
  // A new acquisition (also over an earlier holder of this member index):
  // commits of any earlier one fail from here on.
  const std::uint64_t mine = format::make_ownership(member + 1, acquisitions + 1);
  if (!ownership.compare_exchange_strong(current, mine, std::memory_order_acq_rel)) return false;
  part.ownership = mine;
  // Resume from the group's committed offset (pairs with commit_position's CAS).
  std::uint64_t committed = atomic(slot(part).committed_offset).load(std::memory_order_acquire);
  const std::uint64_t earliest = s.retained_start(part.partition);
  const std::uint64_t tail = s.tail(part.partition);
  if (committed < earliest) {
    lost_bytes += earliest - committed;
    if (result != nullptr) result->lost_bytes += earliest - committed;
    committed = earliest;
  }
  if (committed > tail) committed = tail;
  // Damaged positions: at least stay on the record alignment, below 2^62.
  if (!format::plausible_position(committed)) committed = std::min(committed, format::kMaxPosition) & ~std::uint64_t{format::kRecordAlignment - 1};
  // Shared memory is written by others: resume only at a record boundary.
  auto boundary = find_boundary(s, part.partition, committed);
  part.position = boundary.ok() ? *boundary : committed;
  part.committed = part.position;
  part.uncommitted = 0;
  part.segment = UINT64_MAX;
  part.stall.position = UINT64_MAX;
  part.owned = true;
  return true;
}

void ConsumerState::release(Part& part) noexcept {
  if (!part.owned) return;
  if (mode == DeliveryMode::kAtLeastOnce) commit_position(part, part.position);
  std::uint64_t mine = part.ownership;
  atomic(slot(part).ownership)
      .compare_exchange_strong(mine, format::make_ownership(0, format::ownership_acquisitions(part.ownership)),
                               std::memory_order_acq_rel);
  part.owned = false;
}

void ConsumerState::check_liveness() {
  const LogState& s = *log;
  for (std::uint32_t m = 0; m < s.options.max_members; ++m) {
    if (m == member) continue;
    const auto& other = s.member(group, m);
    if (atomic(const_cast<std::uint32_t&>(other.state)).load(std::memory_order_acquire) != kActive) continue;
    if (shm::is_alive(load_owner(other))) continue;
    AdminLock lock(s);
    if (atomic(const_cast<std::uint32_t&>(other.state)).load(std::memory_order_acquire) == kActive &&
        !shm::is_alive(load_owner(other))) {
      release_member(s, group, m);
    }
  }
}

void ConsumerState::rebalance() {
  if (!grouped || released) return;
  const LogState& s = *log;
  // The clock is read every 1024 polls (or before parking), not every poll.
  if (++polls_since_check >= kPollsPerLivenessCheck || force_stall_check) {
    polls_since_check = 0;
    const auto now = Clock::now();
    if (now - last_liveness_check >= kLivenessInterval) {
      last_liveness_check = now;
      check_liveness();
    }
  }
  const std::uint64_t epoch = atomic(s.group(group).membership_epoch).load(std::memory_order_acquire);
  if (epoch != epoch_seen) {
    epoch_seen = epoch;
    fast = nullptr;  // the partitions change: refresh_fast sets it again after the poll
    // Released by the others (judged dead while it ran; its slot may be
    // another member's now): it owns nothing and must not act as a member.
    const auto& me = s.member(group, member);
    if (atomic(const_cast<std::uint32_t&>(me.state)).load(std::memory_order_acquire) != kActive ||
        atomic(const_cast<std::uint64_t&>(me.joined_ns)).load(std::memory_order_acquire) != joined_ns) {
      released = true;
      for (Part& part : parts) part.owned = false;  // their acquisitions are stale: commits fail anyway
      parts.clear();
      return;
    }
    // Partition p goes to the (p mod n)-th live member, in slot order.
    std::uint32_t rank = 0, live = 0;
    for (std::uint32_t m = 0; m < s.options.max_members; ++m) {
      if (atomic(s.member(group, m).state).load(std::memory_order_acquire) != kActive) continue;
      if (m == member) rank = live;
      ++live;
    }
    live = std::max<std::uint32_t>(live, 1);
    std::vector<Part> kept;
    for (Part& part : parts) {
      if (part.partition % live == rank) {
        kept.push_back(part);
      } else {
        release(part);
      }
    }
    for (std::uint32_t p = rank; p < s.options.partitions; p += live) {
      if (std::none_of(kept.begin(), kept.end(), [&](const Part& x) { return x.partition == p; })) {
        Part part;
        part.partition = p;
        kept.push_back(part);
      }
    }
    std::sort(kept.begin(), kept.end(), [](const Part& a, const Part& b) { return a.partition < b.partition; });
    parts = std::move(kept);
    // Others waiting for partitions we let go of: wake them.
    s.wake_consumers();
  }
  for (Part& part : parts) {
    if (!part.owned) try_acquire(part);
  }
}

}  // namespace shmlog::detail

namespace shmlog {

using format::atomic;

namespace {

// Before an administrative change of a group: the log is writable, and
// dead members are reaped (they do not count as live).
Status ready_to_change_groups(const detail::LogState& s) {
  if (s.read_only) return Status(Status::Code::kPermissionDenied, s.path + " is attached read-only");
  detail::sweep(s);
  return {};
}

// The slot of the active group `name` (admin lock held): kNotFound when
// there is none; kBusy, naming how many, while it has live members unless
// `unless` is nullptr (live members allowed), else `unless` ends the message.
Result<std::uint32_t> idle_group(const detail::LogState& s, const std::string& name, const char* unless) {
  for (std::uint32_t g = 0; g < s.options.max_groups; ++g) {
    const auto& group = s.group(g);
    if (atomic(const_cast<std::uint32_t&>(group.state)).load(std::memory_order_acquire) != detail::kActive ||
        name != std::string(group.name, strnlen(group.name, sizeof group.name))) {
      continue;
    }
    std::uint32_t live = 0;
    for (std::uint32_t m = 0; m < s.options.max_members; ++m) {
      if (atomic(s.member(g, m).state).load(std::memory_order_acquire) == detail::kActive) ++live;
    }
    if (live != 0 && unless != nullptr) {
      return Status(Status::Code::kBusy, "group '" + name + "' of " + s.path + " has " + std::to_string(live) +
                                             " live member(s): stop them first" + unless);
    }
    return g;
  }
  return Status(Status::Code::kNotFound, "no group '" + name + "' in " + s.path);
}

}  // namespace

Status Log::delete_group(const std::string& name, bool force) const {
  const detail::LogState& s = *state_;
  SHMLOG_RETURN_IF_ERROR(ready_to_change_groups(s));
  detail::AdminLock lock(s);
  auto found = idle_group(s, name, force ? nullptr : ", or force it");
  if (!found.ok()) return std::move(found).status();
  const std::uint32_t g = *found;
  // Members of the deleted group find their slot free (released: they read
  // no more), and every acquisition changes, so no commit of theirs lands.
  for (std::uint32_t m = 0; m < s.options.max_members; ++m) {
    atomic(s.member(g, m).state).store(detail::kFree, std::memory_order_release);
  }
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
    auto& slot = s.offset_slot(p, g);
    auto ownership = atomic(slot.ownership);
    const std::uint64_t w = ownership.load(std::memory_order_acquire);
    ownership.store(format::make_ownership(0, format::ownership_acquisitions(w) + 1), std::memory_order_release);
    atomic(slot.hold).store(0, std::memory_order_release);
  }
  // The ring's reuse floor no longer counts it (min_committed reads active groups).
  atomic(s.group(g).state).store(detail::kFree, std::memory_order_release);
  atomic(s.group(g).membership_epoch).fetch_add(1, std::memory_order_acq_rel);
  s.wake_consumers();
  s.wake_producers();  // producers waiting for room the group held
  return {};
}

Result<std::vector<std::uint64_t>> Log::reset_group(const std::string& name, GroupReset to) const {
  const detail::LogState& s = *state_;
  SHMLOG_RETURN_IF_ERROR(ready_to_change_groups(s));
  {
    detail::AdminLock lock(s);
    auto found = idle_group(s, name, "");
    if (!found.ok()) return std::move(found).status();
  }
  // The group's only member for a moment: it moves each partition's
  // position as asked and commits it (a member that joins meanwhile takes
  // partitions away, and the reset fails naming it).
  auto member = consumer({.group = name, .mode = DeliveryMode::kManual});
  if (!member.ok()) return std::move(member).status().with_context("joining group '" + name + "' to reset it");
  std::vector<std::uint64_t> offsets;
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
    const auto assigned = member->assignment();
    if (std::find(assigned.begin(), assigned.end(), p) == assigned.end()) {
      return Status(Status::Code::kBusy, "another member joined group '" + name + "' while it was being reset (" +
                                             std::to_string(p) + " of " + std::to_string(s.options.partitions) +
                                             " partitions done)");
    }
    Status moved;
    switch (to.kind) {
      case GroupReset::Kind::kEarliest: moved = member->seek(p, s.retained_start(p)); break;
      case GroupReset::Kind::kLatest: moved = member->seek(p, s.tail(p)); break;
      case GroupReset::Kind::kOffset: moved = member->seek(p, to.value); break;
      case GroupReset::Kind::kTime: moved = member->seek_time(p, to.value).status(); break;
    }
    if (!moved.ok()) return std::move(moved).with_context("resetting group '" + name + "'");
    const std::uint64_t offset = member->position(p).value_or(0);
    Status committed = member->commit(p, offset);
    if (!committed.ok()) return std::move(committed).with_context("resetting group '" + name + "'");
    offsets.push_back(offset);
  }
  return offsets;
}

}  // namespace shmlog
