#include "txn.h"

#include <cstring>

#include "owner.h"
#include "shmlog/shm/process.h"

namespace shmlog::detail {

using format::atomic;

const LogState& Internals::state(const Log& log) { return *log.state_; }

std::string encode_refs(const std::vector<TxnRef>& refs) {
  std::string out;
  for (const auto& r : refs) {
    const auto n = static_cast<std::uint16_t>(r.dir.size());
    out.append(reinterpret_cast<const char*>(&r.log_id), 8);
    out.append(reinterpret_cast<const char*>(&r.slot), 2);
    out.append(reinterpret_cast<const char*>(&r.epoch), 2);
    out.append(reinterpret_cast<const char*>(&n), 2);
    out.append(r.dir);
  }
  return out;
}

std::vector<TxnRef> decode_refs(std::string_view in) {
  std::vector<TxnRef> out;
  while (in.size() >= 14) {
    TxnRef r;
    std::uint16_t n = 0;
    std::memcpy(&r.log_id, in.data(), 8);
    std::memcpy(&r.slot, in.data() + 8, 2);
    std::memcpy(&r.epoch, in.data() + 10, 2);
    std::memcpy(&n, in.data() + 12, 2);
    if (in.size() < 14u + n) break;
    r.dir.assign(in.substr(14, n));
    out.push_back(std::move(r));
    in.remove_prefix(14u + n);
  }
  return out;
}

std::string encode_offsets(const std::map<std::pair<std::string, std::uint32_t>, std::uint64_t>& offsets) {
  std::string out;
  for (const auto& [key, offset] : offsets) {
    const auto& [group, partition] = key;
    const auto n = static_cast<std::uint16_t>(group.size());
    out.append(reinterpret_cast<const char*>(&n), 2);
    out.append(group);
    out.append(reinterpret_cast<const char*>(&partition), 4);
    out.append(reinterpret_cast<const char*>(&offset), 8);
  }
  return out;
}

std::vector<std::pair<std::uint32_t, std::uint64_t>> decode_offsets(std::string_view in, const std::string& group) {
  std::vector<std::pair<std::uint32_t, std::uint64_t>> out;
  while (in.size() >= 2) {
    std::uint16_t n = 0;
    std::memcpy(&n, in.data(), 2);
    if (in.size() < 2u + n + 12u) break;  // damaged: stop (the record had a whole commit word)
    const std::string_view name = in.substr(2, n);
    std::uint32_t partition = 0;
    std::uint64_t offset = 0;
    std::memcpy(&partition, in.data() + 2 + n, 4);
    std::memcpy(&offset, in.data() + 6 + n, 8);
    if (name == group) out.emplace_back(partition, offset);
    in.remove_prefix(2u + n + 12u);
  }
  return out;
}

format::TxnState coordinator_decision(const TxnRef& ref, bool decide_abort, std::map<std::uint64_t, Log>& open_logs,
                                      Reach reach, std::uint32_t owner) {
  auto it = open_logs.find(ref.log_id);
  if (it == open_logs.end()) {
    auto log = reach == Reach::kOpen ? Log::open(ref.dir) : Internals::open_existing(ref.dir, owner);
    if (!log.ok() || log->id() != ref.log_id) return format::TxnState::kOpen;  // not reachable now: wait
    it = open_logs.emplace(ref.log_id, std::move(log).value()).first;
  }
  const LogState& s = Internals::state(it->second);
  if (ref.slot >= s.options.max_producers) return format::TxnState::kAborting;  // cannot be: treat as never decided commit
  auto& slot = s.producer_slot(ref.slot);
  auto word = atomic(slot.txn_word);
  std::uint64_t w = word.load(std::memory_order_acquire);
  if (format::txn_epoch(w) != ref.epoch) return format::TxnState::kDone;  // moved on: it finished everywhere first
  const auto state = format::txn_state(w);
  if (state != format::TxnState::kOpen) return state;
  const bool alive = atomic(slot.state).load(std::memory_order_acquire) == static_cast<std::uint32_t>(format::SlotState::kActive) &&
                     shm::is_alive(load_owner(slot));
  if (alive && !decide_abort) return format::TxnState::kOpen;
  std::uint64_t open = w;
  word.compare_exchange_strong(open, format::with_txn_state(w, format::TxnState::kAborting), std::memory_order_acq_rel);
  w = word.load(std::memory_order_acquire);
  return format::txn_epoch(w) == ref.epoch ? format::txn_state(w) : format::TxnState::kDone;
}

bool decide_abort(format::ProducerSlot& slot, std::uint64_t open_word) noexcept {
  if (!atomic(slot.txn_word)
           .compare_exchange_strong(open_word, format::with_txn_state(open_word, format::TxnState::kAborting),
                                    std::memory_order_acq_rel)) {
    return false;
  }
  atomic(slot.txn_changed_ns).store(now_realtime_ns(), std::memory_order_relaxed);
  return true;
}

Status finish_part(const Log& log, std::uint16_t slot_id, std::uint16_t epoch, format::TxnState decision) {
  const LogState& s = Internals::state(log);
  if (slot_id >= s.options.max_producers) return {};
  ProducerOptions po;
  po.name = "shmlog: finishes transactions";
  auto helper = log.producer(po);
  if (!helper.ok()) return std::move(helper).status();
  const auto type = marker_for(decision);
  for (std::uint32_t p = 0; p < s.options.partitions; ++p) {
    Errc e = append_control(*helper, p, static_cast<std::uint8_t>(type), slot_id, epoch, {});
    if (e != Errc::kOk) return Status(Status::Code::kBusy, "writing a transaction marker in " + s.path + ": " + errc_name(e));
  }
  auto word = atomic(s.producer_slot(slot_id).txn_word);
  std::uint64_t w = word.load(std::memory_order_acquire);
  if (format::txn_epoch(w) == epoch && format::txn_state(w) != format::TxnState::kDone) {
    word.compare_exchange_strong(w, format::with_txn_state(w, format::TxnState::kDone), std::memory_order_acq_rel);
  }
  return {};
}

}  // namespace shmlog::detail
