// Log::info: a log's configuration, partitions, groups (lag in records and
// time) and producers, read from shared memory without changing anything.
#include <algorithm>
#include <cstring>

#include "log_state.h"
#include "owner.h"
#include "record.h"
#include "shmlog/log.h"
#include "shmlog/shm/process.h"

namespace shmlog {

using detail::LogState;
using format::atomic;

namespace {

constexpr auto kActiveSlot = static_cast<std::uint32_t>(format::SlotState::kActive);

template <typename T>
T load_relaxed(const T& shared) noexcept {
  return atomic(const_cast<T&>(shared)).load(std::memory_order_relaxed);
}
template <typename T>
T load_acquire(const T& shared) noexcept {
  return atomic(const_cast<T&>(shared)).load(std::memory_order_acquire);
}

LogInfo::Partition partition_info(const LogState& s, std::uint32_t p) {
  LogInfo::Partition part;
  const auto& ph = s.partition(p);
  part.index = p;
  part.earliest_offset = s.earliest(p);
  part.end_offset = s.tail(p);
  const std::uint32_t writers = load_acquire(ph.writers);
  part.exclusive = (writers & format::kExclusiveWriter) != 0;
  part.writers = part.exclusive ? 1 : writers;
  part.abandoned_claims = load_relaxed(ph.abandoned_total);
  part.counted = s.append_counts(0) != nullptr;
  const detail::AppendTotals totals = detail::partition_totals(s, p);
  part.appends = totals.appends;
  part.bytes = totals.bytes;
  if (!s.durable()) return part;
  part.written_offset = load_acquire(ph.written_position);
  part.durable_offset = load_acquire(ph.durable_position);
  part.disk_start = load_acquire(ph.disk_start);
  part.disk_bytes = load_relaxed(ph.disk_bytes);
  part.disk_segments = load_relaxed(ph.disk_segments);
  part.fsyncs = load_relaxed(ph.fsyncs_total);
  part.disk_full = load_relaxed(ph.disk_full_total);
  part.io_errors = load_relaxed(ph.io_errors_total);
  part.flush_errno = static_cast<int>(load_relaxed(ph.flush_errno));
  return part;
}

// A group's lag in records (and the age of its oldest unconsumed record),
// walking partition p's ring from the committed offset: at most one ring's
// worth, and not at all from positions damaged in memory. A claim in
// flight is stepped over (its record counts once committed); a free word
// below the tail (a claim not registered yet), an unblocking or a damaged
// one counts once and ends the walk.
void count_lag(const LogState& s, std::uint32_t p, LogInfo::GroupPartition& gp) {
  const std::uint64_t now_ns = detail::now_realtime_ns();
  std::uint64_t pos = std::max(gp.committed_offset, s.earliest(p));
  const std::uint64_t stop = std::min(gp.end_offset, pos + s.geometry.ring_bytes);
  if (!format::plausible_position(pos) || !format::plausible_position(gp.end_offset)) return;
  auto count = [&](const record::At& a, std::uint64_t) {
    if (a.d.kind != record::Kind::kData) return true;
    if (gp.lag_records == 0) {  // the oldest unconsumed record: its age is the lag in time
      const std::uint64_t t = a.header->timestamp_ns;
      if (t != 0 && t < now_ns) gp.lag_ns = now_ns - t;
    }
    ++gp.lag_records;
    return true;
  };
  while (pos < stop) {
    const std::uint64_t segment_end = (pos | s.segment_mask) + 1;
    pos = s.walk_records(s.segment_base(p, pos >> s.segment_shift), pos, stop, count);
    if (pos >= stop || pos == segment_end) continue;  // the end, or the next segment
    const record::At a = s.ring_record_at(p, pos);
    if (a.d.kind == record::Kind::kInProgress) {
      pos += a.d.aligned_length;
      continue;
    }
    if (!a.committed()) {
      ++gp.lag_records;
      return;
    }
  }
}

LogInfo::Group group_info(const LogState& s, std::uint32_t g) {
  const auto& group = s.group(g);
  LogInfo::Group gi;
  gi.name.assign(group.name, strnlen(group.name, sizeof group.name));
  gi.membership_epoch = load_acquire(group.membership_epoch);
  for (std::uint32_t m = 0; m < s.options.max_members; ++m) {
    if (load_acquire(s.member(g, m).state) == kActiveSlot) ++gi.members;
  }
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
    const auto& slot = s.offset_slot(p, g);
    LogInfo::GroupPartition gp;
    gp.partition = p;
    gp.committed_offset = load_acquire(slot.committed_offset);
    gp.end_offset = s.tail(p);
    gp.lag_bytes = gp.end_offset > gp.committed_offset ? gp.end_offset - gp.committed_offset : 0;
    const std::uint32_t owner = format::ownership_owner(load_acquire(slot.ownership));
    gp.owner = owner == 0 ? -1 : static_cast<int>(owner - 1);
    gp.lost_bytes = load_relaxed(slot.lost_bytes_total);
    count_lag(s, p, gp);
    gi.partitions.push_back(gp);
  }
  return gi;
}

LogInfo::ProducerInfo producer_info(const LogState& s, std::uint32_t id, bool running) {
  const auto& slot = s.producer_slot(id);
  LogInfo::ProducerInfo pi;
  pi.id = static_cast<std::uint16_t>(id);
  pi.idempotent = (slot.flags & format::kProducerIdempotent) != 0;
  pi.epoch = load_acquire(slot.epoch);
  const std::uint64_t last = load_acquire(slot.last_sequence_plus_one);
  if (pi.idempotent && last != 0) pi.last_sequence = last - 1;
  const std::uint64_t txn = load_acquire(slot.txn_word);
  switch (format::txn_state(txn)) {
    case format::TxnState::kOpen: pi.transaction = "open"; break;
    case format::TxnState::kCommitting: pi.transaction = "committing"; break;
    case format::TxnState::kAborting: pi.transaction = "aborting"; break;
    default: break;
  }
  pi.transaction_epoch = format::txn_epoch(txn);
  pi.name.assign(slot.name, strnlen(slot.name, sizeof slot.name));
  const shm::ProcessId owner = detail::load_owner(slot);
  pi.pid = owner.pid;
  pi.alive = running && shm::is_alive(owner);
  pi.exclusive = (slot.flags & format::kProducerExclusive) != 0;
  if (s.append_counts(id) != nullptr) {
    // The row's counts since this instance opened the slot (a named
    // producer that exited: what its last instance appended).
    const detail::AppendTotals now = detail::row_totals(s, id);
    pi.appends = now.appends - load_relaxed(slot.appends_at_open);
    pi.bytes = now.bytes - load_relaxed(slot.bytes_at_open);
  } else {
    pi.appends = load_relaxed(slot.appends_total);
    pi.bytes = load_relaxed(slot.bytes_total);
  }
  pi.revoked = load_relaxed(slot.revoked_total);
  pi.backpressure_waits = load_relaxed(slot.backpressure_waits_total);
  pi.backpressure_wait_ns = load_relaxed(slot.backpressure_wait_ns_total);
  pi.wakeups = load_relaxed(slot.wakeups_total);
  return pi;
}

}  // namespace

LogInfo Log::info() const {
  const LogState& s = *state_;
  LogInfo info;
  info.path = s.path;
  info.memory_path = s.memory_path;
  info.log_id = s.header->log_id;
  info.version_major = s.header->version_major;
  info.version_minor = s.header->version_minor;
  info.options = s.options;
  info.shm_bytes = s.shm.data() != nullptr ? s.shm.size() : s.geometry.total_size;
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) info.partitions.push_back(partition_info(s, p));
  if (s.durable()) {
    const shm::ProcessId keeper = detail::OwnerLock::keeper_lease(s).holder();
    info.keeper_pid = keeper.pid;
    info.keeper_alive = keeper.pid != 0 && shm::is_alive(keeper);
    info.keeper_heartbeat_ns = load_relaxed(s.header->keeper_heartbeat_ns);
    info.keeper_takeovers = load_relaxed(s.header->keeper_takeovers);
  }
  for (std::uint32_t g = 0; g < s.options.max_groups; ++g) {
    if (load_acquire(s.group(g).state) == kActiveSlot) info.groups.push_back(group_info(s, g));
  }
  for (std::uint32_t id = 0; id < s.options.max_producers; ++id) {
    const auto& slot = s.producer_slot(id);
    const bool running = load_acquire(slot.state) == kActiveSlot;
    // A named producer's slot keeps its identity (and last sequence) after it exits.
    if (running || (slot.flags & format::kProducerIdempotent) != 0) info.producers.push_back(producer_info(s, id, running));
  }
  return info;
}

}  // namespace shmlog
